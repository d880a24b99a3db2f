//! Server reply lines and multi-line replies (RFC 959 section 4.2).

/// How a reply line's code is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sep {
    /// `227 text`: a one-line reply, or the last line of a multi-line one.
    Last,
    /// `227-text`: the first line of a multi-line reply.
    More,
}

/// A line that starts with a reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodeLine<'a> {
    /// The three-digit code.
    pub(crate) code: u16,
    /// Whether more lines follow.
    pub(crate) sep: Sep,
    /// The text after the code and its separator.
    pub(crate) text: &'a [u8],
}

/// Read the code of a reply line: three digits, then a space, a hyphen or
/// the end of the line. Anything else is not a reply line.
pub(crate) fn code_line(line: &[u8]) -> Option<CodeLine<'_>> {
    let (digits, rest) = line.split_first_chunk::<3>()?;
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return None;
    }
    let code = digits.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let (sep, text) = match rest {
        [] => (Sep::Last, rest),
        [b' ', text @ ..] => (Sep::Last, text),
        [b'-', text @ ..] => (Sep::More, text),
        _ => return None,
    };
    Some(CodeLine { code, sep, text })
}

/// Where a reply line stands in the reply it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A line that is part of no reply (garbage between replies).
    Stray,
    /// A line of the reply with `code`; `last` when it ends the reply.
    /// `text` is the part of the line after the code, or the whole line
    /// for continuation lines.
    Line {
        /// The reply's code.
        code: u16,
        /// The line completes the reply.
        last: bool,
        /// The line's text.
        text: &'a [u8],
    },
}

/// Follows replies line by line: which reply each line belongs to, and when
/// a multi-line reply ends (at a line with the same code and a space).
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// The code of the multi-line reply under way.
    open: Option<u16>,
}

impl Replies {
    /// Place one line.
    pub(crate) fn line<'a>(&mut self, line: &'a [u8]) -> Step<'a> {
        let parsed = code_line(line);
        match (self.open, parsed) {
            (Some(code), Some(cl)) if cl.code == code && cl.sep == Sep::Last => {
                self.open = None;
                Step::Line { code, last: true, text: cl.text }
            }
            (Some(code), _) => Step::Line { code, last: false, text: line },
            (None, Some(cl)) => {
                if cl.sep == Sep::More {
                    self.open = Some(cl.code);
                }
                Step::Line { code: cl.code, last: cl.sep == Sep::Last, text: cl.text }
            }
            (None, None) => Step::Stray,
        }
    }

    /// Forget the reply under way (after a hole in the stream).
    pub(crate) fn reset(&mut self) {
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_lines() {
        assert_eq!(code_line(b"227 Entering"), Some(CodeLine { code: 227, sep: Sep::Last, text: b"Entering" }));
        assert_eq!(code_line(b"227-Entering"), Some(CodeLine { code: 227, sep: Sep::More, text: b"Entering" }));
        assert_eq!(code_line(b"200"), Some(CodeLine { code: 200, sep: Sep::Last, text: b"" }));
        assert_eq!(code_line(b"227Entering"), None);
        assert_eq!(code_line(b"22 x"), None);
        assert_eq!(code_line(b"abc x"), None);
        assert_eq!(code_line(b"027 x"), None);
        assert_eq!(code_line(b""), None);
    }

    #[test]
    fn multi_line_reply_ends_at_same_code_and_space() {
        let mut r = Replies::default();
        let lines: [&[u8]; 5] = [b"227-first", b" (192,0,2,1,4,5)", b"200 not the end", b"227-still not", b"227 end"];
        let steps: Vec<Step<'_>> = lines.iter().map(|l| r.line(l)).collect();
        assert_eq!(steps[0], Step::Line { code: 227, last: false, text: b"first" });
        assert_eq!(steps[1], Step::Line { code: 227, last: false, text: b" (192,0,2,1,4,5)" });
        assert_eq!(steps[2], Step::Line { code: 227, last: false, text: b"200 not the end" });
        assert_eq!(steps[3], Step::Line { code: 227, last: false, text: b"227-still not" });
        assert_eq!(steps[4], Step::Line { code: 227, last: true, text: b"end" });
        assert_eq!(r.line(b"garbage"), Step::Stray);
        assert_eq!(r.line(b"200 ok"), Step::Line { code: 200, last: true, text: b"ok" });
    }

    #[test]
    fn reset_forgets_an_open_reply() {
        let mut r = Replies::default();
        r.line(b"211-Features:");
        r.reset();
        assert_eq!(r.line(b"227 (192,0,2,1,4,5)"), Step::Line { code: 227, last: true, text: b"(192,0,2,1,4,5)" });
    }
}
