//! Client commands that matter to the firewall.

use std::net::SocketAddr;

use super::hostport::{parse_eprt_argument, parse_lprt_argument, parse_port_argument};
use super::ParseError;

/// A command line, parsed as far as the firewall cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// `PORT h1,h2,h3,h4,p1,p2` (RFC 959).
    Port(Result<SocketAddr, ParseError>),
    /// `EPRT |af|addr|port|` (RFC 2428).
    Eprt(Result<SocketAddr, ParseError>),
    /// `LPRT af,hal,...` (RFC 1639).
    Lprt(Result<SocketAddr, ParseError>),
    /// `PASV`: a 227 reply should follow.
    Pasv,
    /// `EPSV` (any argument): a 229 reply should follow.
    Epsv,
    /// `LPSV`: a 228 reply should follow.
    Lpsv,
    /// `AUTH <mechanism>`: a 234 reply turns the connection into TLS.
    Auth(&'a [u8]),
    /// `USER <name>`.
    User(&'a [u8]),
    /// Anything else.
    Other,
}

/// The verb of a command line and its argument. Leading Telnet IAC sequences
/// (clients send `IAC IP IAC DM` before ABOR) and blanks are skipped.
pub(crate) fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    let mut line = line;
    loop {
        match line {
            [0xff, _, rest @ ..] => line = rest,
            [b' ' | b'\t', rest @ ..] => line = rest,
            _ => break,
        }
    }
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

/// The verbs that announce an address, for lines too long to parse.
pub(crate) fn is_announcing_verb(verb: &[u8]) -> bool {
    [&b"PORT"[..], b"EPRT", b"LPRT"].iter().any(|v| verb.eq_ignore_ascii_case(v))
}

/// Parse one complete command line.
pub(crate) fn parse_command(line: &[u8]) -> Command<'_> {
    let (verb, arg) = split_verb(line);
    let is = |name: &[u8]| verb.eq_ignore_ascii_case(name);
    if is(b"PORT") {
        Command::Port(parse_port_argument(arg))
    } else if is(b"EPRT") {
        Command::Eprt(parse_eprt_argument(arg))
    } else if is(b"LPRT") {
        Command::Lprt(parse_lprt_argument(arg))
    } else if is(b"PASV") {
        Command::Pasv
    } else if is(b"EPSV") {
        Command::Epsv
    } else if is(b"LPSV") {
        Command::Lpsv
    } else if is(b"AUTH") {
        Command::Auth(arg.trim_ascii())
    } else if is(b"USER") {
        Command::User(arg.trim_ascii())
    } else {
        Command::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> SocketAddr {
        s.parse().expect("test endpoint")
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse_command(b"port 192,0,2,1,4,5"), Command::Port(Ok(ep("192.0.2.1:1029"))));
        assert_eq!(parse_command(b"Eprt |1|192.0.2.1|1029|"), Command::Eprt(Ok(ep("192.0.2.1:1029"))));
        assert_eq!(parse_command(b"lprt 4,4,192,0,2,1,2,4,5"), Command::Lprt(Ok(ep("192.0.2.1:1029"))));
        assert_eq!(parse_command(b"pasv"), Command::Pasv);
        assert_eq!(parse_command(b"EPSV ALL"), Command::Epsv);
        assert_eq!(parse_command(b"EPSV 2"), Command::Epsv);
        assert_eq!(parse_command(b"LPSV"), Command::Lpsv);
        assert_eq!(parse_command(b"AUTH TLS"), Command::Auth(b"TLS"));
        assert_eq!(parse_command(b"USER anonymous "), Command::User(b"anonymous"));
        assert_eq!(parse_command(b"RETR PORT 1,2,3,4,5,6"), Command::Other);
        assert_eq!(parse_command(b"PORTX 1,2,3,4,5,6"), Command::Other);
        assert_eq!(parse_command(b""), Command::Other);
    }

    #[test]
    fn telnet_sequences_and_blanks_before_the_verb_are_skipped() {
        assert_eq!(parse_command(b"\xff\xf4\xff\xf2PASV"), Command::Pasv);
        assert_eq!(parse_command(b"  PASV"), Command::Pasv);
        assert_eq!(parse_command(b"\xff"), Command::Other);
    }

    #[test]
    fn bad_arguments_are_kept_as_errors() {
        assert_eq!(parse_command(b"PORT 1234"), Command::Port(Err(ParseError::FieldCount { expected: 6, found: 1 })));
        assert_eq!(parse_command(b"PORT"), Command::Port(Err(ParseError::NoArgument)));
        assert_eq!(parse_command(b"EPRT"), Command::Eprt(Err(ParseError::NoArgument)));
    }

    #[test]
    fn announcing_verbs() {
        assert!(is_announcing_verb(b"port") && is_announcing_verb(b"EPRT") && is_announcing_verb(b"LPRT"));
        assert!(!is_announcing_verb(b"PASV"));
    }
}
