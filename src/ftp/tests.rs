use super::*;

fn control() -> ControlConn {
    ControlConn { client: "192.0.2.10:40000".parse().expect("addr"), server: "198.51.100.20:21".parse().expect("addr") }
}

fn control6() -> ControlConn {
    ControlConn {
        client: "[2001:db8:1::10]:40000".parse().expect("addr"),
        server: "[2001:db8:2::20]:21".parse().expect("addr"),
    }
}

/// Feed (direction, bytes) chunks; collect events.
fn run(control: ControlConn, chunks: &[(Direction, &[u8])]) -> (Vec<FtpEvent>, FtpStats) {
    let mut s = Session::new(control, FtpConfig { max_line: 128 });
    let mut stats = FtpStats::default();
    let mut events = Vec::new();
    for (dir, bytes) in chunks {
        s.handle_data(*dir, bytes, &mut stats, &mut |e| events.push(e));
    }
    (events, stats)
}

use Direction::{ToClient as S, ToServer as C};

fn negotiations(events: &[FtpEvent]) -> Vec<(NegotiationKind, Result<SocketAddr, ParseError>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            FtpEvent::Negotiation(n) => Some((n.kind, n.announced.clone(), n.unsolicited)),
            _ => None,
        })
        .collect()
}

fn ep(s: &str) -> Result<SocketAddr, ParseError> {
    Ok(s.parse().expect("endpoint"))
}

#[test]
fn pasv_then_227() {
    let (ev, _) = run(control(), &[(C, b"PASV\r\n"), (S, b"227 Entering Passive Mode (198,51,100,20,195,80).\r\n")]);
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, ep("198.51.100.20:50000"), false)]);
    let FtpEvent::Negotiation(n) = &ev[0] else { panic!("expected a negotiation") };
    assert_eq!(n.line, "227 Entering Passive Mode (198,51,100,20,195,80).");
}

#[test]
fn a_227_nobody_asked_for_is_unsolicited() {
    let (ev, _) = run(control(), &[(S, b"227 (198,51,100,20,195,80)\r\n")]);
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, ep("198.51.100.20:50000"), true)]);
    // One PASV answers one 227.
    let (ev, _) =
        run(control(), &[(C, b"PASV\r\n"), (S, b"227 (198,51,100,20,195,80)\r\n227 (198,51,100,20,195,81)\r\n")]);
    let n = negotiations(&ev);
    assert!(!n[0].2 && n[1].2);
}

#[test]
fn wrong_direction_is_not_a_negotiation() {
    let (ev, stats) = run(
        control(),
        &[(C, b"PASV\r\n227 (192,0,2,10,195,80)\r\n"), (S, b"PORT 192,0,2,10,195,80\r\nEPRT |1|192.0.2.10|5|\r\n")],
    );
    assert!(negotiations(&ev).is_empty());
    assert_eq!(stats.replies_from_client, 1);
    assert_eq!(stats.commands_from_server, 2);
}

#[test]
fn active_commands() {
    let (ev, _) = run(
        control(),
        &[(C, b"PORT 192,0,2,10,195,80\r\nEPRT |1|192.0.2.10|50001|\r\nLPRT 4,4,192,0,2,10,2,195,82\r\n")],
    );
    assert_eq!(
        negotiations(&ev),
        [
            (NegotiationKind::Port, ep("192.0.2.10:50000"), false),
            (NegotiationKind::Eprt, ep("192.0.2.10:50001"), false),
            (NegotiationKind::Lprt, ep("192.0.2.10:50002"), false),
        ]
    );
}

#[test]
fn epsv_uses_the_control_servers_address() {
    let (ev, _) = run(control6(), &[(C, b"EPSV\r\n"), (S, b"229 Entering Extended Passive Mode (|||50000|)\r\n")]);
    assert_eq!(negotiations(&ev), [(NegotiationKind::Epsv, ep("[2001:db8:2::20]:50000"), false)]);
}

#[test]
fn eprt_ipv6_and_lpsv() {
    let (ev, _) = run(
        control6(),
        &[
            (C, b"EPRT |2|2001:db8:1::10|50000|\r\nLPSV\r\n"),
            (S, b"200 ok\r\n228 Entering Long Passive Mode (6,16,32,1,13,184,0,2,0,0,0,0,0,0,0,0,0,32,2,195,80)\r\n"),
        ],
    );
    assert_eq!(
        negotiations(&ev),
        [
            (NegotiationKind::Eprt, ep("[2001:db8:1::10]:50000"), false),
            (NegotiationKind::Lpsv, ep("[2001:db8:2::20]:50000"), false),
        ]
    );
}

#[test]
fn multi_line_227_with_the_tuple_on_a_later_line() {
    let (ev, _) = run(
        control(),
        &[(C, b"PASV\r\n"), (S, b"227-Entering Passive Mode\r\n 227 (198,51,100,20,195,80)\r\n227 done\r\n")],
    );
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, ep("198.51.100.20:50000"), false)]);
    let FtpEvent::Negotiation(n) = &ev[0] else { panic!("expected a negotiation") };
    assert_eq!(n.line, " 227 (198,51,100,20,195,80)");
}

#[test]
fn multi_line_reply_is_reported_when_it_ends() {
    let (ev, _) = run(control(), &[(C, b"PASV\r\n"), (S, b"227-(198,51,100,20,195,80)\r\nmore\r\n")]);
    assert!(ev.is_empty(), "not before the last line");
    let (ev, _) = run(control(), &[(C, b"PASV\r\n"), (S, b"227-(198,51,100,20,195,80)\r\nmore\r\n227 end\r\n")]);
    assert_eq!(ev.len(), 1);
}

#[test]
fn a_227_without_a_tuple_is_reported_as_malformed() {
    let (ev, _) = run(control(), &[(C, b"PASV\r\n"), (S, b"227 Response to PASV command\r\n")]);
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, Err(ParseError::NoTuple), false)]);
}

#[test]
fn lines_split_across_segments() {
    let (ev, _) = run(control(), &[(C, b"PO"), (C, b"RT 192,0,2,"), (C, b"10,195,80\r"), (C, b"\n")]);
    assert_eq!(negotiations(&ev), [(NegotiationKind::Port, ep("192.0.2.10:50000"), false)]);
}

#[test]
fn pipelined_commands_and_replies() {
    let (ev, _) = run(
        control(),
        &[
            (C, b"TYPE I\r\nPASV\r\n"),
            (S, b"200 Switching to Binary mode.\r\n227 Entering Passive Mode (198,51,100,20,195,80).\r\n"),
        ],
    );
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, ep("198.51.100.20:50000"), false)]);
}

#[test]
fn over_long_negotiation_lines_are_refused_not_parsed() {
    let mut long_port = b"PORT 192,0,2,10,195,80".to_vec();
    long_port.extend(std::iter::repeat_n(b' ', 200));
    long_port.extend_from_slice(b"\r\n");
    let mut long_227 = b"227 (198,51,100,20,195,80) ".to_vec();
    long_227.extend(std::iter::repeat_n(b'A', 200));
    long_227.extend_from_slice(b"\r\n");
    let (ev, stats) = run(control(), &[(C, &long_port), (S, b"500 too long\r\n"), (C, b"PASV\r\n"), (S, &long_227)]);
    assert_eq!(
        negotiations(&ev),
        [
            (NegotiationKind::Port, Err(ParseError::LineTooLong(128)), false),
            (NegotiationKind::Pasv, Err(ParseError::LineTooLong(128)), false),
        ]
    );
    assert_eq!(stats.long_lines, 2);
}

#[test]
fn auth_tls_makes_the_session_blind() {
    let (ev, stats) = run(
        control(),
        &[
            (C, b"AUTH TLS\r\n"),
            (S, b"234 Proceed with negotiation.\r\n"),
            (C, b"\x16\x03\x01PORT 192,0,2,10,195,80\r\n"),
        ],
    );
    assert_eq!(ev, [FtpEvent::Encrypted]);
    assert!(stats.encrypted_bytes > 0);
}

#[test]
fn refused_auth_keeps_the_session_readable() {
    let (ev, _) = run(
        control(),
        &[
            (C, b"AUTH TLS\r\n"),
            (S, b"530 Please login with USER and PASS.\r\n"),
            (S, b"234 stray\r\n"),
            (C, b"PORT 192,0,2,10,195,80\r\n"),
        ],
    );
    assert_eq!(negotiations(&ev).len(), 1);
    assert!(!ev.contains(&FtpEvent::Encrypted));
}

#[test]
fn user_names_are_reported_sanitized() {
    let (ev, _) = run(control(), &[(C, b"USER alice\x07bob\r\nPASS secret\r\n")]);
    assert_eq!(ev, [FtpEvent::Login { user: "alice?bob".into() }]);
}

#[test]
fn a_gap_drops_the_damaged_reply() {
    let mut s = Session::new(control(), FtpConfig::default());
    let mut stats = FtpStats::default();
    let mut ev = Vec::new();
    s.handle_data(C, b"PASV\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_data(S, b"227-Entering (198,51,100,20,195,80)\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_gap(S);
    s.handle_data(S, b"xx\r\n227 end\r\n", &mut stats, &mut |e| ev.push(e));
    // The tuple was in the damaged reply; the stray "227 end" after the hole
    // reads as a reply of its own, with no tuple.
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, Err(ParseError::NoTuple), false)]);
}

#[test]
fn kinds_know_their_mode() {
    assert_eq!(NegotiationKind::Eprt.mode(), Mode::Active);
    assert_eq!(NegotiationKind::Lpsv.mode(), Mode::Passive);
    assert_eq!(NegotiationKind::Epsv.to_string(), "EPSV");
}

#[test]
fn a_refused_pasv_does_not_license_a_later_227() {
    // The server refuses PASV; a 227 that comes later (echoed text, say)
    // answers some other command and is not a negotiation to trust.
    let (ev, _) = run(
        control(),
        &[
            (C, b"PASV\r\n"),
            (S, b"530 Please login with USER and PASS.\r\n"),
            (C, b"SITE x\r\n"),
            (S, b"227 (198,51,100,20,21,56)\r\n"),
        ],
    );
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, ep("198.51.100.20:5432"), true)]);
}

#[test]
fn replies_answer_commands_in_order_preliminary_ones_answer_none() {
    let (ev, _) = run(
        control(),
        &[
            (S, b"220 greeting answers no command\r\n"),
            (C, b"TYPE I\r\nPASV\r\nRETR f\r\n"),
            (S, b"200 type\r\n227 (198,51,100,20,195,80)\r\n150 opening\r\n226 done\r\n"),
            (C, b"EPSV\r\n"),
            (S, b"229 (|||50001|)\r\n"),
        ],
    );
    assert_eq!(
        negotiations(&ev),
        [
            (NegotiationKind::Pasv, ep("198.51.100.20:50000"), false),
            (NegotiationKind::Epsv, ep("198.51.100.20:50001"), false),
        ]
    );
}

#[test]
fn a_negotiation_line_ending_in_a_bare_lf_is_refused() {
    // A server that splits commands at CRLF only would see one line where
    // we see two; what follows the bare LF cannot be trusted.
    let (ev, _) =
        run(control(), &[(C, b"PORT 192,0,2,10,195,80\n"), (C, b"PASV\r\n"), (S, b"227 (198,51,100,20,195,80)\n")]);
    assert_eq!(
        negotiations(&ev),
        [
            (NegotiationKind::Port, Err(ParseError::BareLineFeed), false),
            (NegotiationKind::Pasv, Err(ParseError::BareLineFeed), false)
        ]
    );
}

#[test]
fn after_a_capture_hole_a_passive_reply_pairs_with_the_oldest_matching_request() {
    let mut s = Session::new(control(), FtpConfig::default());
    let mut stats = FtpStats::default();
    let mut ev = Vec::new();
    // TYPE's reply is lost in a hole: the queue holds it one too long.
    s.handle_data(C, b"TYPE I\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_gap(S);
    // The end of the damaged line after the hole is dropped.
    s.handle_data(S, b"e set to I\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_data(C, b"PASV\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_data(S, b"227 (198,51,100,20,195,80)\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_data(C, b"PASV\r\n", &mut stats, &mut |e| ev.push(e));
    s.handle_data(S, b"227 (198,51,100,20,195,81)\r\n", &mut stats, &mut |e| ev.push(e));
    // Both answer their PASV: the stale TYPE was dropped at the first.
    assert_eq!(
        negotiations(&ev),
        [
            (NegotiationKind::Pasv, ep("198.51.100.20:50000"), false),
            (NegotiationKind::Pasv, ep("198.51.100.20:50001"), false),
        ]
    );
    // Without the hole, the same sequence pairs the first 227 with TYPE.
    let (ev, _) = run(control(), &[(C, b"TYPE I\r\nPASV\r\n"), (S, b"227 (198,51,100,20,195,80)\r\n")]);
    assert_eq!(negotiations(&ev), [(NegotiationKind::Pasv, ep("198.51.100.20:50000"), true)]);
}
