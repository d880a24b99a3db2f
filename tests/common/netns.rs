//! Network namespaces for end-to-end tests: hosts joined by veth pairs,
//! documentation addresses only, removed even when the test fails.
//!
//! Tests that use this need root. They fail (never skip) without it: CI runs
//! as root, and a skipped test must not look like a pass.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fail loudly unless running as root.
pub(crate) fn require_root() {
    // SAFETY-free check: /proc/self/status has the effective uid.
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let euid =
        status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)).expect("Uid line");
    assert_eq!(euid, "0", "this test builds network namespaces and needs root: run ./scripts/test as root (CI does)");
}

/// One network namespace, deleted on drop with every process started in it.
pub(crate) struct Netns {
    pub(crate) name: String,
    children: Vec<Child>,
    /// Whether dropping this handle deletes the namespace.
    owned: bool,
}

impl Netns {
    /// A fresh namespace named `fp-<tag>-<pid>-<n>`, loopback up.
    pub(crate) fn new(tag: &str) -> Netns {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("fp-{tag}-{}-{n}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &name]).output().expect("run ip");
        assert!(out.status.success(), "ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr));
        let ns = Netns { name, children: Vec::new(), owned: true };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        // No duplicate address detection, link-local addresses included:
        // interfaces created from now on are usable at once.
        ns.ok(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        ns
    }

    /// A handle on a namespace that someone else owns (not deleted on drop
    /// of the owner's handle... this one deletes nothing).
    pub(crate) fn attach(name: &str) -> Netns {
        Netns { name: name.to_string(), children: Vec::new(), owned: false }
    }

    /// Run a command inside; its output.
    pub(crate) fn run(&self, cmd: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(cmd).output().expect("run ip netns exec")
    }

    /// Run a command inside; it must succeed; its standard output.
    pub(crate) fn ok(&self, cmd: &[&str]) -> String {
        let out = self.run(cmd);
        assert!(
            out.status.success(),
            "in {}: {:?} failed: {}{}",
            self.name,
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a command inside with `input` on its standard input.
    pub(crate) fn run_with_input(&self, cmd: &[&str], input: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Load an nftables ruleset inside; it must load.
    pub(crate) fn nft(&self, ruleset: &str) {
        let out = self.run_with_input(&["nft", "-f", "-"], ruleset);
        assert!(
            out.status.success(),
            "nft -f failed in {}: {}\n{ruleset}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start a long-running process inside; killed when the namespace is dropped.
    pub(crate) fn spawn(&mut self, cmd: &[&str]) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Take back a process started with `spawn` (to stop and read it).
    pub(crate) fn take_child(&mut self, pid: u32) -> Option<Child> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        Some(self.children.remove(i))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.owned {
            let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        }
    }
}

/// Join two namespaces with a veth pair: `a_if` in `a`, `b_if` in `b`, both up.
pub(crate) fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ok(&["ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
    a.ok(&["ip", "link", "set", a_if, "up"]);
    b.ok(&["ip", "link", "set", b_if, "up"]);
}

/// Add an address (no IPv6 duplicate address detection: usable at once).
pub(crate) fn addr(ns: &Netns, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        ns.ok(&["ip", "-6", "addr", "add", cidr, "dev", dev, "nodad"]);
    } else {
        ns.ok(&["ip", "addr", "add", cidr, "dev", dev]);
    }
}

/// Wait until `check` holds, polling every 20 ms, for at most `limit`.
pub(crate) fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

impl Netns {
    /// Run `f` on a thread that has entered this namespace (sockets it opens
    /// stay bound to the namespace), and return its result; a panic in `f`
    /// is the caller's panic.
    pub(crate) fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        let thread = std::thread::spawn(move || {
            enter(&path);
            f()
        });
        match thread.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The namespace's file, for setns(2).
    pub(crate) fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

/// Move the current thread into the network namespace at `path`.
pub(crate) fn enter(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns only reads the descriptor, which `file` keeps open for
    // the call; it moves this thread alone into the namespace.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}
