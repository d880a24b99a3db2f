//! `inspect` over captures written by the tests themselves: every link type,
//! every negotiation format, the stream cases and every refusal reason.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{assert_lines, jsonl, run, write_pcap, Scratch};
use ftp_pinhole::decode::LinkType;
use ftp_pinhole::synth::Conversation;
use ftp_pinhole::time::Timestamp;
use serde_json::Value;

const T0: Timestamp = Timestamp::from_unix_nanos(1_764_072_000_000_000_000);

fn v4() -> Conversation {
    Conversation::new("192.0.2.10:40000".parse().unwrap(), "198.51.100.20:21".parse().unwrap(), T0)
}

fn v6() -> Conversation {
    Conversation::new("[2001:db8:1::10]:40000".parse().unwrap(), "[2001:db8:2::20]:21".parse().unwrap(), T0)
}

/// Inspect one conversation written as a pcap; the records as short lines
/// `frame kind announced verdict reason-or-pinhole`.
fn inspect(scratch: &Scratch, name: &str, conv: &Conversation, extra: &[&str]) -> Vec<String> {
    let path = scratch.path(name);
    write_pcap(&path, conv.link_type(), conv.frames());
    let mut args = vec!["inspect", path.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    jsonl(&out.stdout).iter().map(short).collect()
}

fn short(r: &Value) -> String {
    let announced = r["announced"].as_str().unwrap_or("-");
    let outcome = match &r["pinhole"] {
        Value::Null => r["reason"].as_str().unwrap_or("?").to_string(),
        p => format!(
            "{}:{}->{}:{}",
            p["src"].as_str().unwrap(),
            p["sport"].to_string().trim_matches('"'),
            p["dst"].as_str().unwrap(),
            p["dport"]
        ),
    };
    format!(
        "{} {} {} {} {}",
        r["frame"],
        r["kind"].as_str().unwrap(),
        announced,
        r["verdict"].as_str().unwrap(),
        outcome
    )
}

#[test]
fn every_link_type_and_family() {
    let s = Scratch::new("links");
    for link in
        [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null, LinkType::Loop]
    {
        let mut c = v4().link(link);
        c.handshake()
            .unwrap()
            .client(b"PASV\r\n")
            .unwrap()
            .server(b"227 Entering Passive Mode (198,51,100,20,195,80).\r\n")
            .unwrap();
        let got = inspect(&s, &format!("{link:?}.pcap"), &c, &[]);
        assert_lines(&got, &["5 PASV 198.51.100.20:50000 open 192.0.2.10:any->198.51.100.20:50000"]);
        let mut c = v6().link(link);
        c.handshake().unwrap().client(b"EPRT |2|2001:db8:1::10|50000|\r\n").unwrap();
        let got = inspect(&s, &format!("{link:?}-6.pcap"), &c, &[]);
        assert_lines(&got, &["4 EPRT [2001:db8:1::10]:50000 open 2001:db8:2::20:20->2001:db8:1::10:50000"]);
    }
}

#[test]
fn vlan_and_qinq() {
    let s = Scratch::new("vlan");
    let mut c = v4().vlans(&[100, 200]);
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    let got = inspect(&s, "qinq.pcap", &c, &[]);
    assert_lines(&got, &["4 PORT 192.0.2.10:50000 open 198.51.100.20:20->192.0.2.10:50000"]);
}

#[test]
fn every_negotiation_format() {
    let s = Scratch::new("formats");
    let mut c = v4();
    c.handshake().unwrap();
    c.client(b"PORT 192,0,2,10,195,80\r\n").unwrap(); // 4
    c.client(b"EPRT |1|192.0.2.10|50001|\r\n").unwrap(); // 5
    c.client(b"EPRT !1!192.0.2.10!50002!\r\n").unwrap(); // 6
    c.client(b"LPRT 4,4,192,0,2,10,2,195,83\r\n").unwrap(); // 7
                                                            // The server answers the four, in one segment: replies answer commands
                                                            // in order, so the 227 below answers the PASV.
    c.server(b"200 ok\r\n200 ok\r\n200 ok\r\n200 ok\r\n").unwrap(); // 8
    c.client(b"PASV\r\n").unwrap(); // 9
    c.server(b"227 Entering Passive Mode (198,51,100,20,195,84)\r\n").unwrap(); // 10
    c.client(b"PASV\r\n").unwrap(); // 11
    c.server(b"227 Entering Passive Mode 198,51,100,20,195,85\r\n").unwrap(); // 12
    c.client(b"PASV\r\n").unwrap(); // 13
    c.server(b"227 Passive 2 of 3 =198,51,100,20,195,86.\r\n").unwrap(); // 14
    c.client(b"PASV\r\n").unwrap(); // 15
    c.server(b"227-Entering Passive Mode\r\n 198,51,100,20,195,87\r\n227 OK\r\n").unwrap(); // 16
    c.client(b"EPSV\r\n").unwrap(); // 17
    c.server(b"229 Entering Extended Passive Mode (|||50008|)\r\n").unwrap(); // 18
    c.client(b"EPSV\r\n").unwrap(); // 19
    c.server(b"229 Extended Passive mode OK (###50009#)\r\n").unwrap(); // 20
    c.client(b"LPSV\r\n").unwrap(); // 21
    c.server(b"228 Entering Long Passive Mode (4,4,198,51,100,20,2,195,90)\r\n").unwrap(); // 22
    let got = inspect(&s, "formats.pcap", &c, &[]);
    let a = |port: u16| format!("198.51.100.20:20->192.0.2.10:{port}");
    let p = |port: u16| format!("192.0.2.10:any->198.51.100.20:{port}");
    let want = [
        format!("4 PORT 192.0.2.10:50000 open {}", a(50000)),
        format!("5 EPRT 192.0.2.10:50001 open {}", a(50001)),
        format!("6 EPRT 192.0.2.10:50002 open {}", a(50002)),
        format!("7 LPRT 192.0.2.10:50003 open {}", a(50003)),
        format!("10 PASV 198.51.100.20:50004 open {}", p(50004)),
        format!("12 PASV 198.51.100.20:50005 open {}", p(50005)),
        format!("14 PASV 198.51.100.20:50006 open {}", p(50006)),
        format!("16 PASV 198.51.100.20:50007 open {}", p(50007)),
        format!("18 EPSV 198.51.100.20:50008 open {}", p(50008)),
        format!("20 EPSV 198.51.100.20:50009 open {}", p(50009)),
        format!("22 LPSV 198.51.100.20:50010 open {}", p(50010)),
    ];
    assert_lines(&got, &want.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn lines_split_across_segments_retransmitted_and_reordered() {
    let s = Scratch::new("stream");
    let mut c = v4();
    c.handshake().unwrap().client(b"PASV\r\n").unwrap(); // 1-4
    c.server(b"227 Entering Passive Mode (198,51,").unwrap(); // 5
    c.server(b"100,20,195,80)\r\n").unwrap(); // 6
    c.swap_last_two(); // 5 is the second half now: held until 6 fills the hole
    c.repeat_last(); // 7: a retransmission of the first half
    c.client(b"PORT 192,0,2,10,195,81\r\n").unwrap(); // 8
    c.repeat_last(); // 9: the same PORT again (retransmitted)
    let got = inspect(&s, "stream.pcap", &c, &[]);
    assert_lines(
        &got,
        &[
            "6 PASV 198.51.100.20:50000 open 192.0.2.10:any->198.51.100.20:50000",
            "8 PORT 192.0.2.10:50001 open 198.51.100.20:20->192.0.2.10:50001",
        ],
    );
}

#[test]
fn every_refusal_reason() {
    let s = Scratch::new("refusals");
    let mut c = v4();
    c.handshake().unwrap();
    c.client(b"PORT 203,0,113,5,0,80\r\n").unwrap(); // 4 bounce
    c.client(b"PORT 192,0,2,10,0,22\r\n").unwrap(); // 5 privileged
    c.client(b"PORT 192,0,2,10,300,1\r\n").unwrap(); // 6 out of range
    c.client(b"PORT 1234\r\n").unwrap(); // 7 malformed
    c.client(b"EPRT |2|2001:db8:1::10|50000|\r\n").unwrap(); // 8 family
    c.client(b"EPRT |7|x|50000|\r\n").unwrap(); // 9 unsupported family
    c.server(b"227 Entering Passive Mode (198,51,100,20,195,80)\r\n").unwrap(); // 10 unsolicited
    let mut long = b"PORT 192,0,2,10,195,80".to_vec();
    long.extend(std::iter::repeat_n(b'0', 3000));
    long.extend_from_slice(b"\r\n");
    c.client(&long).unwrap(); // 11 too long
    c.server(b"PORT 192,0,2,10,195,80\r\n").unwrap(); // 12: a command from the server, nothing
    c.client(b"227 Entering Passive Mode (198,51,100,20,195,80)\r\n").unwrap(); // 13: a reply from the client, nothing
    let got = inspect(&s, "refusals.pcap", &c, &[]);
    assert_lines(
        &got,
        &[
            "4 PORT 203.0.113.5:80 refuse third-party-address",
            "5 PORT 192.0.2.10:22 refuse privileged-port",
            "6 PORT - refuse out-of-range",
            "7 PORT - refuse malformed",
            "8 EPRT [2001:db8:1::10]:50000 refuse family-mismatch",
            "9 EPRT - refuse unsupported-family",
            "10 PASV 198.51.100.20:50000 refuse unsolicited-reply",
            "11 PORT - refuse line-too-long",
        ],
    );
    // The operator's switches turn two of them into pinholes.
    let got = inspect(&s, "refusals.pcap", &c, &["--allow-third-party", "203.0.113.0/24", "--min-data-port", "1"]);
    assert_eq!(got[0], "4 PORT 203.0.113.5:80 open 198.51.100.20:20->203.0.113.5:80");
    assert_eq!(got[1], "5 PORT 192.0.2.10:22 open 198.51.100.20:20->192.0.2.10:22");
}

#[test]
fn policy_flags_shape_the_pinhole() {
    let s = Scratch::new("flags");
    let mut c = v4();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    let path = s.path("one.pcap");
    write_pcap(&path, c.link_type(), c.frames());
    let out = run(&["inspect", path.to_str().unwrap(), "--quiet", "--active-sport", "any", "--ttl", "2m"]);
    let r = &jsonl(&out.stdout)[0];
    assert_eq!(r["pinhole"]["sport"], "any");
    assert_eq!(r["pinhole"]["ttl_s"], 120);
    assert_eq!(r["time"].as_f64().map(|t| t.round() as u64), Some(1_764_072_000));
    assert_eq!(r["client"], "192.0.2.10:40000");
    assert_eq!(r["server"], "198.51.100.20:21");
    assert_eq!(r["line"], "PORT 192,0,2,10,195,80");
}

#[test]
fn other_control_ports() {
    let s = Scratch::new("ports");
    let mut c = Conversation::new("192.0.2.10:40000".parse().unwrap(), "198.51.100.20:2121".parse().unwrap(), T0);
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    assert!(inspect(&s, "2121.pcap", &c, &[]).is_empty(), "port 2121 is not a control port by default");
    assert_eq!(inspect(&s, "2121.pcap", &c, &["--ports", "21,2121"]).len(), 1);
}

#[test]
fn text_format_is_a_table() {
    let s = Scratch::new("text");
    let mut c = v6();
    c.handshake().unwrap().client(b"EPSV\r\n").unwrap().server(b"229 (|||50000|)\r\n").unwrap();
    let path = s.path("t.pcap");
    write_pcap(&path, c.link_type(), c.frames());
    let out = run(&["inspect", path.to_str().unwrap(), "--format", "text"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "t.pcap:");
    assert!(lines[1].starts_with("FRAME  TIME"), "{text}");
    assert!(lines[2].contains("EPSV") && lines[2].contains("[2001:db8:1::10]:any -> [2001:db8:2::20]:50000 ttl 30s"));
    // The column of VERDICT starts at the same place in header and row.
    assert_eq!(lines[1].find("VERDICT"), lines[2].find("open"));
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(
        summary.contains(
            "t.pcap: 5 frames, 1 control connections (0 picked up mid-stream), 1 negotiations: 1 opened, 0 refused"
        ),
        "{summary}"
    );
}

#[test]
fn unreadable_files_are_reported_and_the_others_still_processed() {
    let s = Scratch::new("corrupt");
    let mut c = v4();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    let good = s.path("good.pcap");
    write_pcap(&good, c.link_type(), c.frames());
    let bytes = std::fs::read(&good).unwrap();
    let cut = s.path("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let junk = s.path("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let missing = s.path("missing.pcap");
    let out = run(&[
        "inspect",
        cut.to_str().unwrap(),
        junk.to_str().unwrap(),
        missing.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last_record = 24 + 3 * (16 + 54);
    assert!(
        stderr.contains(&format!("cut.pcap: cut short inside the record at byte offset {last_record}")),
        "{stderr}"
    );
    assert!(stderr.contains("junk.pcap: not a pcap or pcapng file"), "{stderr}");
    assert!(stderr.contains("missing.pcap: cannot read"), "{stderr}");
    let records = jsonl(&out.stdout);
    // The good file is fully reported; the cut one up to its damage (its
    // PORT is in the record that was cut).
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["pcap"], "good.pcap");
}

#[test]
fn unsupported_link_types_are_counted_not_fatal() {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let s = Scratch::new("wifi");
    let path = s.path("wifi.pcap");
    let header = PcapHeader { datalink: pcap_file::DataLink::IEEE802_11, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(std::fs::File::create(&path).unwrap(), header).unwrap();
    w.write_packet(&PcapPacket::new(std::time::Duration::ZERO, 4, b"abcd")).unwrap();
    drop(w);
    let out = run(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("unsupported-link 1"), "{stderr}");
    assert!(stderr.contains("link type not supported"), "{stderr}");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let s = Scratch::new("pipe");
    let mut c = v4();
    c.handshake().unwrap();
    for i in 0..2000u32 {
        c.client(format!("PORT 192,0,2,10,{},{}\r\n", 4 + i / 256, i % 256).as_bytes()).unwrap();
    }
    let path = s.path("many.pcap");
    write_pcap(&path, c.link_type(), c.frames());
    let mut child = std::process::Command::new(common::binary())
        .args(["inspect", path.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
