//! Real FTP software at both ends: vsftpd and pyftpdlib in the server
//! namespace, curl and Python's ftplib in the client namespace (installed by
//! scripts/setup), with a 1 MiB file whose checksum each transfer checks.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::netns::{wait_until, Netns};
use super::Scratch;

/// Control port of vsftpd.
pub(crate) const VSFTPD_PORT: u16 = 21;
/// Control port of pyftpdlib.
pub(crate) const PYFTPD_PORT: u16 = 2121;
/// The interpreter with Debian's python3-pyftpdlib.
const PYTHON: &str = "/usr/bin/python3";

fn support(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(file)
}

/// The served directory: a 1 MiB file of pseudo-random bytes, and its hash.
pub(crate) struct Files {
    pub(crate) root: PathBuf,
    pub(crate) sha256: String,
}

/// Write the served files under `dir` (world-readable: the servers drop
/// privileges).
pub(crate) fn files(dir: &Scratch) -> Files {
    let root = dir.path("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(dir.path("empty")).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(root.join("1M.bin"), &data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.0.clone(), root.clone(), dir.path("empty")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(root.join("1M.bin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let sha256 = sha256_of(&root.join("1M.bin"));
    Files { root, sha256 }
}

/// SHA-256 of a file, by `sha256sum`.
pub(crate) fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Start vsftpd (port 21: active from port 20, passive 50000-50100).
pub(crate) fn start_vsftpd(server: &mut Netns, dir: &Scratch) {
    let conf = std::fs::read_to_string(support("vsftpd.conf.in")).unwrap();
    let conf = conf.replace("@RUNDIR@", dir.0.to_str().unwrap());
    let path = dir.path("vsftpd.conf");
    std::fs::write(&path, conf).unwrap();
    server.spawn(&["/usr/sbin/vsftpd", path.to_str().unwrap()]);
    wait_listening(server, VSFTPD_PORT);
}

/// Start pyftpdlib (port 2121: active from an ephemeral port, passive 50200-50300).
pub(crate) fn start_pyftpd(server: &mut Netns, dir: &Scratch) {
    let log = dir.path("pyftpd.log");
    server.spawn(&[
        PYTHON,
        support("pyftpd.py").to_str().unwrap(),
        dir.path("root").to_str().unwrap(),
        &PYFTPD_PORT.to_string(),
        "50200",
        "50300",
        log.to_str().unwrap(),
    ]);
    wait_listening(server, PYFTPD_PORT);
}

fn wait_listening(ns: &Netns, port: u16) {
    let listening =
        wait_until(Duration::from_secs(10), || ns.ok(&["ss", "-Hltn", &format!("sport = :{port}")]).contains("LISTEN"));
    assert!(listening, "no FTP server listening on port {port} in {}", ns.name);
}

/// A data-connection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// PASV / 227.
    Pasv,
    /// EPSV / 229.
    Epsv,
    /// PORT.
    Port,
    /// EPRT.
    Eprt,
}

impl Mode {
    pub(crate) const ALL: [Mode; 4] = [Mode::Pasv, Mode::Epsv, Mode::Port, Mode::Eprt];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Pasv => "pasv",
            Mode::Epsv => "epsv",
            Mode::Port => "port",
            Mode::Eprt => "eprt",
        }
    }
}

/// How a transfer went.
#[derive(Debug)]
pub(crate) struct Transfer {
    /// The file arrived whole (checksum matches).
    pub(crate) ok: bool,
    /// What the client printed, for failure messages.
    pub(crate) log: String,
    /// How long it took.
    pub(crate) elapsed: Duration,
}

/// Download the file with Python's ftplib, forcing the command of `mode`
/// (PORT on IPv6 is impossible: use EPRT).
pub(crate) fn ftplib(
    client: &Netns,
    host: &str,
    port: u16,
    mode: Mode,
    dir: &Scratch,
    files: &Files,
    timeout_s: u32,
) -> Transfer {
    let out = output(dir, "ftplib", mode, host, port);
    let start = std::time::Instant::now();
    let o = client.run(&[
        "timeout",
        &(timeout_s + 5).to_string(),
        PYTHON,
        support("ftpclient.py").to_str().unwrap(),
        host,
        &port.to_string(),
        mode.name(),
        "1M.bin",
        out.to_str().unwrap(),
        &timeout_s.to_string(),
    ]);
    finish(o, &out, files, start)
}

/// Download the file with curl in `mode`. curl sends EPSV/EPRT on IPv6
/// whatever is asked.
pub(crate) fn curl(
    client: &Netns,
    host: &str,
    port: u16,
    mode: Mode,
    dir: &Scratch,
    files: &Files,
    timeout_s: u32,
) -> Transfer {
    let out = output(dir, "curl", mode, host, port);
    let url_host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let url = format!("ftp://{url_host}:{port}/1M.bin");
    let mut args = vec!["curl", "-sS", "-v", "--connect-timeout"];
    let t = timeout_s.to_string();
    let m = (timeout_s * 2).to_string();
    args.extend([t.as_str(), "-m", m.as_str()]);
    match mode {
        Mode::Pasv => args.extend(["--ftp-pasv", "--disable-epsv"]),
        Mode::Epsv => args.push("--ftp-pasv"),
        Mode::Port => args.extend(["-P", "-", "--disable-eprt"]),
        Mode::Eprt => args.extend(["-P", "-"]),
    }
    args.extend(["-o", out.to_str().unwrap(), url.as_str()]);
    let start = std::time::Instant::now();
    let o = client.run(&args);
    finish(o, &out, files, start)
}

/// Where a client writes its download (any earlier copy removed).
fn output(dir: &Scratch, client: &str, mode: Mode, host: &str, port: u16) -> PathBuf {
    let out = dir.path(&format!("{client}-{}-{}-{port}.bin", mode.name(), host.replace(':', "_")));
    let _ = std::fs::remove_file(&out);
    out
}

fn finish(o: std::process::Output, out: &Path, files: &Files, start: std::time::Instant) -> Transfer {
    let elapsed = start.elapsed();
    let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let ok = o.status.success() && out.exists() && sha256_of(out) == files.sha256;
    Transfer { ok, log, elapsed }
}

/// Download the file with lftp in `mode` (lftp sends EPSV/EPRT on IPv6 and
/// has no EPRT on IPv4: it sends PORT).
pub(crate) fn lftp(
    client: &Netns,
    host: &str,
    port: u16,
    mode: Mode,
    dir: &Scratch,
    files: &Files,
    timeout_s: u32,
) -> Transfer {
    let out = output(dir, "lftp", mode, host, port);
    let (passive, epsv) = match mode {
        Mode::Pasv => ("on", "no"),
        Mode::Epsv => ("on", "yes"),
        Mode::Port | Mode::Eprt => ("off", "no"),
    };
    let script = format!(
        "set cmd:fail-exit yes; set ftp:ssl-allow no; set ftp:passive-mode {passive}; set ftp:prefer-epsv {epsv}; \
         set ftp:auto-passive-mode no; set net:timeout {timeout_s}; set net:max-retries 1; set xfer:clobber on; \
         get 1M.bin -o {}; bye",
        out.display()
    );
    let url_host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let start = std::time::Instant::now();
    let o = client.run(&[
        "timeout",
        &(timeout_s * 3).to_string(),
        "lftp",
        "-e",
        &script,
        &format!("ftp://{url_host}:{port}"),
    ]);
    finish(o, &out, files, start)
}
