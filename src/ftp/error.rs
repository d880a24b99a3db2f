//! Why an announced address could not be read from a line.

use thiserror::Error;

/// Why the address and port in a PORT/EPRT/LPRT command or a 227/228/229
/// reply could not be parsed. Carried into the audit trail as the refusal's
/// detail, so each says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The line has no argument where one is required.
    #[error("no argument")]
    NoArgument,
    /// A reply carries no address/port tuple at all.
    #[error("no address/port tuple in the reply")]
    NoTuple,
    /// The tuple has the wrong number of fields.
    #[error("expected {expected} comma-separated numbers, found {found}")]
    FieldCount {
        /// How many the format needs.
        expected: usize,
        /// How many were there.
        found: usize,
    },
    /// Something other than digits and commas in a numeric tuple.
    #[error("unexpected {0:?} in the address/port tuple")]
    Syntax(char),
    /// An address byte above 255.
    #[error("address byte {0} is above 255")]
    OctetRange(u32),
    /// A port outside 1..=65535 (zero included).
    #[error("port {0} is outside 1-65535")]
    PortRange(u32),
    /// EPRT/EPSV/LPRT/LPSV name an address family other than IPv4 or IPv6,
    /// or a length that does not fit the family.
    #[error("unsupported address family or length: {0}")]
    Family(String),
    /// The address text is not an address of the named family.
    #[error("{0:?} is not a valid address of the named family")]
    Address(String),
    /// EPRT/EPSV delimiters missing, mismatched or out of range.
    #[error("malformed extended (RFC 2428) argument")]
    Delimiters,
    /// The line ended with a bare LF where RFC 959 wants CRLF: a server may
    /// not end the line there, so what follows cannot be trusted.
    #[error("line ends with a bare LF, not CRLF")]
    BareLineFeed,
    /// The line was longer than the configured limit and was cut.
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
}

impl ParseError {
    /// The refusal code this error falls under in the audit trail.
    pub const fn code(&self) -> &'static str {
        match self {
            ParseError::OctetRange(_) | ParseError::PortRange(_) => "out-of-range",
            ParseError::LineTooLong(_) => "line-too-long",
            ParseError::Family(_) => "unsupported-family",
            _ => "malformed",
        }
    }
}
