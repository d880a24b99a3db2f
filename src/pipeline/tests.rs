use std::time::Duration;

use super::*;
use crate::ftp::NegotiationKind;
use crate::synth::Conversation;

const CLIENT: &str = "192.0.2.10:40000";
const SERVER: &str = "198.51.100.20:21";

fn conversation() -> Conversation {
    Conversation::new(
        CLIENT.parse().expect("addr"),
        SERVER.parse().expect("addr"),
        Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
    )
}

fn run(conv: &Conversation) -> (Vec<Event>, Stats) {
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut out = Vec::new();
    for f in conv.frames() {
        p.handle_frame(f.at, conv.link_type(), &f.bytes, &mut out);
    }
    (out, p.stats())
}

/// Events as short strings.
fn render(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::SessionOpened { midstream } => format!("opened mid={midstream}"),
            EventKind::Login { user } => format!("login {user}"),
            EventKind::Encrypted => "encrypted".into(),
            EventKind::Negotiated { negotiation, decision } => match decision {
                Decision::Open(p) => format!("{} open {p}", negotiation.kind),
                Decision::Refuse(r) => format!("{} refuse {}", negotiation.kind, r.reason.code()),
            },
            EventKind::Withdrawn { pinhole, reason } => {
                format!("withdraw {pinhole} {}", reason.code())
            }
            EventKind::StreamGap { bytes, .. } => format!("gap {bytes}"),
            EventKind::SessionClosed { reason, user, .. } => {
                format!("closed {} {user:?}", reason.code())
            }
        })
        .collect()
}

#[test]
fn a_passive_session_end_to_end() -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?
        .server(b"220 ready\r\n")?
        .client(b"USER anonymous\r\n")?
        .server(b"331 ok\r\n")?
        .client(b"PASV\r\n")?
        .server(b"227 Entering Passive Mode (198,51,100,20,195,80).\r\n")?
        .close()?;
    let (events, stats) = run(&c);
    assert_eq!(
        render(&events),
        [
            "opened mid=false",
            "login anonymous",
            "PASV open tcp 192.0.2.10:any -> 198.51.100.20:50000",
            "withdraw tcp 192.0.2.10:any -> 198.51.100.20:50000 session-ended",
            "closed fin Some(\"anonymous\")",
        ]
    );
    assert_eq!((stats.negotiations, stats.opened), (1, 1));
    assert!(events.iter().all(|e| e.session == events[0].session));
    Ok(())
}

#[test]
fn a_newer_negotiation_withdraws_the_older_pinhole() -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?
        .client(b"PORT 192,0,2,10,195,80\r\n")?
        .client(b"PORT 192,0,2,10,195,80\r\n")? // the same flow: refreshed, not withdrawn
        .client(b"PORT 192,0,2,10,195,81\r\n")?;
    let (events, _) = run(&c);
    assert_eq!(
        render(&events),
        [
            "opened mid=false",
            "PORT open tcp 198.51.100.20:20 -> 192.0.2.10:50000",
            "PORT open tcp 198.51.100.20:20 -> 192.0.2.10:50000",
            "withdraw tcp 198.51.100.20:20 -> 192.0.2.10:50000 superseded",
            "PORT open tcp 198.51.100.20:20 -> 192.0.2.10:50001",
        ]
    );
    Ok(())
}

#[test]
fn refusals_are_counted_by_reason() -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?
        .client(b"PORT 203,0,113,5,0,80\r\n")? // bounce
        .client(b"PORT 192,0,2,10,0,22\r\n")? // privileged
        .client(b"PORT 1234\r\n")?; // malformed
    let (events, stats) = run(&c);
    assert_eq!(
        render(&events)[1..],
        ["PORT refuse third-party-address", "PORT refuse privileged-port", "PORT refuse malformed"]
    );
    assert_eq!(stats.opened, 0);
    assert_eq!(stats.refused.get("third-party-address"), Some(&1));
    assert_eq!(stats.refused.values().sum::<u64>(), 3);
    Ok(())
}

#[test]
fn retransmitted_and_reordered_segments_negotiate_once() -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?.client(b"PASV\r\n")?;
    c.server(b"227 Entering Passive Mode ")?.server(b"(198,51,100,20,195,80)\r\n")?;
    c.swap_last_two().repeat_last().repeat_last();
    let (events, stats) = run(&c);
    let n = events.iter().filter(|e| matches!(e.kind, EventKind::Negotiated { .. })).count();
    assert_eq!(n, 1);
    assert_eq!(stats.track.held, 1);
    assert_eq!(stats.track.duplicates, 2);
    Ok(())
}

#[test]
fn vlan_tagged_ipv6_session() -> Result<(), crate::decode::EmitError> {
    let mut c = Conversation::new(
        "[2001:db8:1::10]:40000".parse().expect("addr"),
        "[2001:db8:2::20]:21".parse().expect("addr"),
        Timestamp::EPOCH,
    )
    .vlans(&[10, 20]);
    c.handshake()?.client(b"EPSV\r\n")?.server(b"229 Entering Extended Passive Mode (|||50000|)\r\n")?;
    let (events, _) = run(&c);
    assert_eq!(render(&events)[1], "EPSV open tcp [2001:db8:1::10]:any -> [2001:db8:2::20]:50000");
    Ok(())
}

#[test]
fn idle_sessions_close_on_timeout_and_withdraw_their_pinhole() -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?.client(b"PORT 192,0,2,10,195,80\r\n")?;
    let mut p = Pipeline::new(PipelineConfig {
        tracker: TrackerConfig { idle_timeout: Duration::from_secs(60), ..TrackerConfig::default() },
        ..PipelineConfig::default()
    });
    let mut out = Vec::new();
    for f in c.frames() {
        p.handle_frame(f.at, c.link_type(), &f.bytes, &mut out);
    }
    out.clear();
    let deadline = p.poll_timeout().expect("timer armed");
    p.handle_timeout(deadline.saturating_add(Duration::from_secs(61)), &mut out);
    assert_eq!(render(&out), ["withdraw tcp 198.51.100.20:20 -> 192.0.2.10:50000 session-ended", "closed idle None"]);
    assert_eq!(p.sessions(), 0);
    Ok(())
}

#[test]
fn undecodable_frames_are_counted_by_reason() {
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut out = Vec::new();
    p.handle_frame(Timestamp::EPOCH, LinkType::Ethernet, &[0u8; 10], &mut out);
    p.skip(Skip::UnsupportedLink);
    let stats = p.stats();
    assert_eq!(stats.frames, 1);
    assert_eq!(stats.skipped.get("truncated"), Some(&1));
    assert_eq!(stats.skipped.get("unsupported-link"), Some(&1));
    assert_eq!(stats.skipped_total(), 2);
    assert!(out.is_empty());
}

#[test]
fn auth_tls_session_reports_encrypted_and_nothing_after() -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?
        .client(b"AUTH TLS\r\n")?
        .server(b"234 AUTH TLS OK.\r\n")?
        .client(b"\x16\x03\x01\x02\x00PORT 192,0,2,10,195,80\r\n")?;
    let (events, _) = run(&c);
    assert_eq!(render(&events), ["opened mid=false", "encrypted"]);
    assert!(matches!(NegotiationKind::Port.mode(), crate::ftp::Mode::Active));
    Ok(())
}

#[test]
fn a_capture_hole_acknowledged_by_the_peer_is_reported_and_the_damaged_line_dropped(
) -> Result<(), crate::decode::EmitError> {
    let mut c = conversation();
    c.handshake()?.client(b"PASV\r\n")?;
    c.server(b"200 lost in the capture\r\n")?;
    c.server(b"227 Entering Passive Mode (198,51,100,20,195,80)\r\n")?;
    c.client(b"NOOP\r\n")?; // its ACK covers both replies
    let mut frames: Vec<_> = c.frames().to_vec();
    frames.remove(4); // the capture lost the 200
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut out = Vec::new();
    for f in &frames {
        p.handle_frame(f.at, LinkType::Ethernet, &f.bytes, &mut out);
    }
    // The 227 right after the hole cannot be trusted to start a line.
    assert_eq!(render(&out), ["opened mid=false", "gap 25"]);
    Ok(())
}
