//! The address/port notations of FTP: RFC 959 `h1,h2,h3,h4,p1,p2`, RFC 1639
//! long form `af,hal,h...,pal,p...`, and RFC 2428 `<d>af<d>addr<d>port<d>`.
//!
//! Each parser takes the text where the notation starts (or the whole reply
//! text, for the scanners) and returns a validated [`SocketAddr`] or says why
//! not. They read bytes, never index past a checked length, and bound every
//! number, so that hostile lines yield a [`ParseError`] and nothing else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ParseError;

/// Most numbers read in one tuple: the longest legal one is LPRT for IPv6
/// (2 + 16 + 1 + 2 = 21 fields); anything longer is an error anyway.
const MAX_FIELDS: usize = 24;
/// A field's value is capped here while parsing; above 65535 is never valid.
const CAP: u32 = 1_000_000;

/// A run of comma-separated decimal numbers.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    values: [u32; MAX_FIELDS],
    /// How many numbers the run holds (may exceed MAX_FIELDS; the excess is not stored).
    count: usize,
    /// Index just past the run.
    end: usize,
}

impl Run {
    fn values(&self) -> &[u32] {
        &self.values[..self.count.min(MAX_FIELDS)]
    }
}

/// Read `d+ (\s* , \s* d+)*` starting at `start`, which must be a digit.
fn read_run(text: &[u8], start: usize) -> Run {
    let mut run = Run { values: [0; MAX_FIELDS], count: 0, end: start };
    let mut i = start;
    loop {
        let mut value: u32 = 0;
        let digits_start = i;
        while let Some(d) = text.get(i).filter(|b| b.is_ascii_digit()) {
            value = (value * 10 + u32::from(d - b'0')).min(CAP);
            i += 1;
        }
        if i == digits_start {
            break;
        }
        if run.count < MAX_FIELDS {
            run.values[run.count] = value;
        }
        run.count += 1;
        run.end = i;
        // Optional blanks around the comma: some servers write "1, 2, 3".
        let mut j = i;
        while text.get(j) == Some(&b' ') {
            j += 1;
        }
        if text.get(j) != Some(&b',') {
            break;
        }
        j += 1;
        while text.get(j) == Some(&b' ') {
            j += 1;
        }
        i = j;
    }
    run
}

fn octet(v: u32) -> Result<u8, ParseError> {
    u8::try_from(v).map_err(|_| ParseError::OctetRange(v))
}

/// Port from its high and low bytes; zero is refused.
fn port_from_bytes(hi: u32, lo: u32) -> Result<u16, ParseError> {
    let (hi, lo) = (octet(hi)?, octet(lo)?);
    let port = u16::from_be_bytes([hi, lo]);
    if port == 0 {
        return Err(ParseError::PortRange(0));
    }
    Ok(port)
}

/// Decode six numbers `h1,h2,h3,h4,p1,p2` into an IPv4 endpoint.
fn decode_rfc959(v: &[u32]) -> Result<SocketAddr, ParseError> {
    let [h1, h2, h3, h4, p1, p2] = v else {
        return Err(ParseError::FieldCount { expected: 6, found: v.len() });
    };
    let ip = Ipv4Addr::new(octet(*h1)?, octet(*h2)?, octet(*h3)?, octet(*h4)?);
    Ok(SocketAddr::new(IpAddr::V4(ip), port_from_bytes(*p1, *p2)?))
}

/// Decode the RFC 1639 long form `af,hal,h1..hN,pal,p1,p2`.
fn decode_rfc1639(v: &[u32]) -> Result<SocketAddr, ParseError> {
    let (&af, rest) = v.split_first().ok_or(ParseError::FieldCount { expected: 9, found: 0 })?;
    let (&hal, rest) = rest.split_first().ok_or(ParseError::FieldCount { expected: 9, found: 1 })?;
    let expected_hal = match af {
        4 => 4,
        6 => 16,
        _ => return Err(ParseError::Family(format!("LPRT family {af}"))),
    };
    if hal != expected_hal {
        return Err(ParseError::Family(format!("LPRT family {af} with address length {hal}")));
    }
    let n = expected_hal as usize;
    let expected = 2 + n + 3;
    if v.len() != expected {
        return Err(ParseError::FieldCount { expected, found: v.len() });
    }
    let (host, rest) = rest.split_at(n);
    let [pal, p1, p2] = rest else {
        return Err(ParseError::FieldCount { expected, found: v.len() });
    };
    if *pal != 2 {
        return Err(ParseError::Family(format!("LPRT port length {pal}")));
    }
    let mut bytes = [0u8; 16];
    for (b, &h) in bytes.iter_mut().zip(host) {
        *b = octet(h)?;
    }
    let ip = if n == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    };
    Ok(SocketAddr::new(ip, port_from_bytes(*p1, *p2)?))
}

/// Skip blanks; refuse anything but digits, commas and blanks up to the end.
fn whole_argument(arg: &[u8]) -> Result<Run, ParseError> {
    let arg = arg.trim_ascii();
    let Some(&first) = arg.first() else {
        return Err(ParseError::NoArgument);
    };
    if !first.is_ascii_digit() {
        return Err(ParseError::Syntax(char::from(first)));
    }
    let run = read_run(arg, 0);
    if let Some(&extra) = arg.get(run.end) {
        return Err(ParseError::Syntax(char::from(extra)));
    }
    Ok(run)
}

/// The argument of `PORT`: exactly `h1,h2,h3,h4,p1,p2`.
pub(super) fn parse_port_argument(arg: &[u8]) -> Result<SocketAddr, ParseError> {
    let run = whole_argument(arg)?;
    if run.count != 6 {
        return Err(ParseError::FieldCount { expected: 6, found: run.count });
    }
    decode_rfc959(run.values())
}

/// The argument of `LPRT`: the RFC 1639 long form, nothing else.
pub(super) fn parse_lprt_argument(arg: &[u8]) -> Result<SocketAddr, ParseError> {
    let run = whole_argument(arg)?;
    if run.count > MAX_FIELDS {
        return Err(ParseError::FieldCount { expected: 21, found: run.count });
    }
    decode_rfc1639(run.values())
}

/// Scan reply text for the first run of comma-separated numbers that has
/// `fields` numbers (RFC 1123 4.1.2.12: the 227 text around the tuple is free).
fn scan(text: &[u8], accept: impl Fn(usize) -> bool) -> Result<Run, ParseError> {
    let mut first_run_error = None;
    let mut i = 0;
    while i < text.len() {
        let starts_number = text[i].is_ascii_digit() && (i == 0 || !text[i - 1].is_ascii_digit());
        if !starts_number {
            i += 1;
            continue;
        }
        let run = read_run(text, i);
        if accept(run.count) {
            return Ok(run);
        }
        if run.count > 1 && first_run_error.is_none() {
            first_run_error = Some(run.count);
        }
        i = run.end.max(i + 1);
    }
    Err(match first_run_error {
        Some(found) => ParseError::FieldCount { expected: 6, found },
        None => ParseError::NoTuple,
    })
}

/// Find and decode the `h1,h2,h3,h4,p1,p2` tuple in a 227 reply's text.
pub(super) fn scan_227(text: &[u8]) -> Result<SocketAddr, ParseError> {
    let run = scan(text, |n| n == 6)?;
    decode_rfc959(run.values())
}

/// Find and decode the RFC 1639 tuple in a 228 reply's text.
pub(super) fn scan_228(text: &[u8]) -> Result<SocketAddr, ParseError> {
    let run = scan(text, |n| n == 9 || n == 21).map_err(|e| match e {
        ParseError::FieldCount { found, .. } => ParseError::FieldCount { expected: 9, found },
        other => other,
    })?;
    decode_rfc1639(run.values())
}

/// What an RFC 2428 argument names: an address and port, or (EPSV) a port
/// on the control connection's own server address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Extended {
    /// `|1|addr|port|` or `|2|addr|port|`.
    Endpoint(SocketAddr),
    /// `|||port|`.
    PortOnly(u16),
}

fn decimal_port(text: &[u8]) -> Result<u16, ParseError> {
    if text.is_empty() || text.len() > 5 || !text.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Delimiters);
    }
    let value = text.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ParseError::PortRange(value)),
    }
}

/// Parse `<d>af<d>addr<d>port<d>` exactly (the delimiter is the first byte,
/// any of ASCII 33-126). Returns the value and the length consumed.
fn parse_extended_at(text: &[u8]) -> Result<(Extended, usize), ParseError> {
    let Some(&d) = text.first() else {
        return Err(ParseError::NoArgument);
    };
    if !(33..=126).contains(&d) || d.is_ascii_digit() {
        return Err(ParseError::Delimiters);
    }
    let mut fields = [&text[0..0]; 3];
    let mut pos = 1;
    for field in fields.iter_mut() {
        let len = text[pos..].iter().position(|&b| b == d).ok_or(ParseError::Delimiters)?;
        *field = &text[pos..pos + len];
        pos += len + 1;
    }
    let [af, addr, port] = fields;
    let port = decimal_port(port)?;
    let value = match (af, addr) {
        (b"", b"") => Extended::PortOnly(port),
        (b"1", a) => {
            let ip: Ipv4Addr = parse_text(a)?;
            Extended::Endpoint(SocketAddr::new(IpAddr::V4(ip), port))
        }
        (b"2", a) => {
            let ip: Ipv6Addr = parse_text(a)?;
            Extended::Endpoint(SocketAddr::new(IpAddr::V6(ip), port))
        }
        (af, _) => return Err(ParseError::Family(format!("network protocol {:?}", String::from_utf8_lossy(af)))),
    };
    Ok((value, pos))
}

fn parse_text<T: std::str::FromStr>(text: &[u8]) -> Result<T, ParseError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ParseError::Address(String::from_utf8_lossy(text).into_owned()))
}

/// The argument of `EPRT`: `<d>af<d>addr<d>port<d>` and nothing after it.
pub(super) fn parse_eprt_argument(arg: &[u8]) -> Result<SocketAddr, ParseError> {
    let arg = arg.trim_ascii();
    let (value, used) = parse_extended_at(arg)?;
    if used != arg.len() {
        return Err(ParseError::Delimiters);
    }
    match value {
        Extended::Endpoint(ep) => Ok(ep),
        // EPRT must name the address: the server connects to it.
        Extended::PortOnly(_) => Err(ParseError::Address(String::new())),
    }
}

/// Find the `(<d><d><d>port<d>)` of a 229 reply (RFC 2428 section 3), or the
/// same with an address in it.
pub(super) fn scan_229(text: &[u8]) -> Result<Extended, ParseError> {
    let mut first_error = None;
    for (i, _) in text.iter().enumerate().filter(|(_, &b)| b == b'(') {
        match parse_extended_at(&text[i + 1..]) {
            Ok((value, used)) if text.get(i + 1 + used) == Some(&b')') => return Ok(value),
            Ok(_) => first_error = first_error.or(Some(ParseError::Delimiters)),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    Err(first_error.unwrap_or(ParseError::NoTuple))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> SocketAddr {
        s.parse().expect("test endpoint")
    }

    #[test]
    fn port_argument() {
        assert_eq!(parse_port_argument(b"192,0,2,10,195,80"), Ok(ep("192.0.2.10:50000")));
        assert_eq!(parse_port_argument(b" 192, 0, 2, 10, 0, 255 "), Ok(ep("192.0.2.10:255")));
        assert_eq!(parse_port_argument(b"010,0,2,1,0,21"), Ok(ep("10.0.2.1:21")));
    }

    #[test]
    fn port_argument_errors() {
        assert_eq!(parse_port_argument(b""), Err(ParseError::NoArgument));
        assert_eq!(parse_port_argument(b"1234"), Err(ParseError::FieldCount { expected: 6, found: 1 }));
        assert_eq!(parse_port_argument(b"114,115"), Err(ParseError::FieldCount { expected: 6, found: 2 }));
        assert_eq!(parse_port_argument(b"1,2,3,4,5,6,7"), Err(ParseError::FieldCount { expected: 6, found: 7 }));
        assert_eq!(parse_port_argument(b"256,0,2,1,4,5"), Err(ParseError::OctetRange(256)));
        assert_eq!(parse_port_argument(b"192,0,2,1,256,5"), Err(ParseError::OctetRange(256)));
        assert_eq!(parse_port_argument(b"192,0,2,1,0,0"), Err(ParseError::PortRange(0)));
        assert_eq!(parse_port_argument(b"192,0,2,1,4,5x"), Err(ParseError::Syntax('x')));
        assert_eq!(parse_port_argument(b"-1,0,2,1,4,5"), Err(ParseError::Syntax('-')));
        assert_eq!(parse_port_argument(b"192,0,2,1,4,"), Err(ParseError::Syntax(',')));
        let huge = "1234".repeat(17);
        assert_eq!(parse_port_argument(huge.as_bytes()), Err(ParseError::FieldCount { expected: 6, found: 1 }));
        let many = vec!["1"; 100].join(",");
        assert_eq!(parse_port_argument(many.as_bytes()), Err(ParseError::FieldCount { expected: 6, found: 100 }));
    }

    #[test]
    fn reply_227_forms() {
        let cases: &[(&[u8], &str)] = &[
            (b"Entering Passive Mode (192,0,2,1,195,80)", "192.0.2.1:50000"),
            (b"Entering Passive Mode (192,0,2,1,195,80).", "192.0.2.1:50000"),
            (b"Entering Passive Mode 192,0,2,1,195,80", "192.0.2.1:50000"),
            (b"=192,0,2,1,195,80", "192.0.2.1:50000"),
            (b"Entering passive mode 2 of 3 (192,0,2,1,195,80)", "192.0.2.1:50000"),
            (b"Port 12,34 then (192, 0, 2, 1, 195, 80)", "192.0.2.1:50000"),
            (b"192,0,2,1,195,80 is the one", "192.0.2.1:50000"),
        ];
        for (text, want) in cases {
            assert_eq!(scan_227(text), Ok(ep(want)), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn reply_227_errors() {
        assert_eq!(scan_227(b"Response to PASV command"), Err(ParseError::NoTuple));
        assert_eq!(scan_227(&[b'A'; 300]), Err(ParseError::NoTuple));
        assert_eq!(scan_227(b"(192,0,2,1,195)"), Err(ParseError::FieldCount { expected: 6, found: 5 }));
        assert_eq!(scan_227(b"(192,0,2,300,1,1)"), Err(ParseError::OctetRange(300)));
        assert_eq!(scan_227(b"(192,0,2,1,0,0)"), Err(ParseError::PortRange(0)));
        assert_eq!(scan_227(b""), Err(ParseError::NoTuple));
    }

    #[test]
    fn lprt_and_228() {
        assert_eq!(parse_lprt_argument(b"4,4,192,0,2,1,2,195,80"), Ok(ep("192.0.2.1:50000")));
        let v6 = "6,16,32,1,13,184,0,1,0,0,0,0,0,0,0,0,0,16,2,195,80";
        assert_eq!(parse_lprt_argument(v6.as_bytes()), Ok(ep("[2001:db8:1::10]:50000")));
        assert_eq!(scan_228(b"Entering Long Passive Mode (4,4,198,51,100,20,2,195,80)"), Ok(ep("198.51.100.20:50000")));
        assert!(matches!(parse_lprt_argument(b"5,4,1,2,3,4,2,1,1"), Err(ParseError::Family(_))));
        assert!(matches!(parse_lprt_argument(b"4,16,1,2,3,4,2,1,1"), Err(ParseError::Family(_))));
        assert!(matches!(parse_lprt_argument(b"4,4,1,2,3,4,3,1,1,1"), Err(ParseError::FieldCount { .. })));
        assert!(matches!(parse_lprt_argument(b"4,4,1,2,3,4,2,1"), Err(ParseError::FieldCount { .. })));
        assert_eq!(parse_lprt_argument(b"4,4,1,2,3,999,2,1,1"), Err(ParseError::OctetRange(999)));
        assert_eq!(scan_228(b"no tuple"), Err(ParseError::NoTuple));
    }

    #[test]
    fn eprt_argument() {
        assert_eq!(parse_eprt_argument(b"|1|192.0.2.10|50000|"), Ok(ep("192.0.2.10:50000")));
        assert_eq!(parse_eprt_argument(b"|2|2001:db8:1::10|50000|"), Ok(ep("[2001:db8:1::10]:50000")));
        assert_eq!(parse_eprt_argument(b"!1!192.0.2.10!50000!"), Ok(ep("192.0.2.10:50000")));
        assert_eq!(parse_eprt_argument(b"~2~2001:db8::1~1~"), Ok(ep("[2001:db8::1]:1")));
    }

    #[test]
    fn eprt_errors() {
        assert_eq!(parse_eprt_argument(b""), Err(ParseError::NoArgument));
        assert_eq!(parse_eprt_argument(b"|1|192.0.2.10|50000"), Err(ParseError::Delimiters));
        assert_eq!(parse_eprt_argument(b"|1|192.0.2.10|50000|x"), Err(ParseError::Delimiters));
        assert_eq!(parse_eprt_argument(b"|1|192.0.2.10|0|"), Err(ParseError::PortRange(0)));
        assert_eq!(parse_eprt_argument(b"|1|192.0.2.10|65536|"), Err(ParseError::PortRange(65536)));
        assert_eq!(parse_eprt_argument(b"|1|192.0.2.10|999999|"), Err(ParseError::Delimiters));
        assert!(matches!(parse_eprt_argument(b"|3|192.0.2.10|5|"), Err(ParseError::Family(_))));
        assert!(matches!(parse_eprt_argument(b"|1|2001:db8::1|5|"), Err(ParseError::Address(_))));
        assert!(matches!(parse_eprt_argument(b"|2|192.0.2.1|5|"), Err(ParseError::Address(_))));
        assert!(matches!(parse_eprt_argument(b"|1|192.0.2.256|5|"), Err(ParseError::Address(_))));
        assert!(matches!(parse_eprt_argument(b"|||5|"), Err(ParseError::Address(_))));
        assert_eq!(parse_eprt_argument(b"\x7f1\x7f1.2.3.4\x7f5\x7f"), Err(ParseError::Delimiters));
        assert_eq!(parse_eprt_argument(b"5152535"), Err(ParseError::Delimiters));
    }

    #[test]
    fn reply_229_forms() {
        assert_eq!(scan_229(b"Entering Extended Passive Mode (|||50000|)"), Ok(Extended::PortOnly(50000)));
        assert_eq!(scan_229(b"Extended Passive mode OK (!!!50000!)"), Ok(Extended::PortOnly(50000)));
        assert_eq!(scan_229(b"x (not) then (|||50001|)."), Ok(Extended::PortOnly(50001)));
        assert_eq!(scan_229(b"(|2|2001:db8:2::20|50000|)"), Ok(Extended::Endpoint(ep("[2001:db8:2::20]:50000"))));
        assert_eq!(scan_229(b"Entering Extended Passive Mode"), Err(ParseError::NoTuple));
        assert_eq!(scan_229(b"(|||0|)"), Err(ParseError::PortRange(0)));
        assert_eq!(scan_229(b"(|||50000|"), Err(ParseError::Delimiters));
        assert_eq!(scan_229(b"(|||50000|x)"), Err(ParseError::Delimiters));
        assert_eq!(scan_229(b"("), Err(ParseError::NoArgument));
    }

    #[test]
    fn no_parser_panics_on_any_short_input() {
        // Every string of up to 3 bytes over an alphabet of the interesting bytes.
        let alphabet = b"0129,|() .:\xff";
        let mut buf = Vec::new();
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    buf.clear();
                    buf.extend_from_slice(&[*a, *b, *c]);
                    for len in 0..=3 {
                        let s = &buf[..len];
                        let _ = parse_port_argument(s);
                        let _ = parse_lprt_argument(s);
                        let _ = parse_eprt_argument(s);
                        let _ = scan_227(s);
                        let _ = scan_228(s);
                        let _ = scan_229(s);
                    }
                }
            }
        }
    }
}
