//! Splitting one direction's byte stream into lines.

/// One line of a control connection, without its line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The line's bytes (at most the splitter's limit), CR LF removed.
    pub(crate) text: &'a [u8],
    /// The line was longer than the limit; `text` is its beginning.
    pub(crate) too_long: bool,
    /// The line ended with CR LF (not a bare LF).
    pub(crate) crlf: bool,
}

/// Splits a byte stream at LF (a CR before it is dropped; a bare LF is
/// accepted, as servers and clients send both). Lines are bounded: a line
/// longer than `max` is handed on, cut and flagged `too_long`, as soon as it
/// is known to be too long, and the rest of it is discarded.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    /// Bytes of the current, unfinished line (at most `max` + 1, for a CR).
    partial: Vec<u8>,
    /// The current line was handed on as too long; drop bytes up to its LF.
    overflow: bool,
    /// After a hole in the stream: drop everything up to the next LF, since
    /// the line it ends lost its beginning.
    resync: bool,
    max: usize,
}

impl LineSplitter {
    /// A splitter keeping lines of up to `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        LineSplitter { partial: Vec::new(), overflow: false, resync: false, max: max.max(1) }
    }

    /// Bytes were lost before the next ones: the line under way is damaged.
    pub(crate) fn gap(&mut self) {
        self.partial.clear();
        self.overflow = false;
        self.resync = true;
    }

    /// Feed bytes; `out` gets every line they complete, in order.
    pub(crate) fn push(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(Line<'_>)) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&bytes[..nl], &bytes[nl + 1..]);
            bytes = rest;
            if std::mem::take(&mut self.resync) || std::mem::take(&mut self.overflow) {
                // The end of a damaged or already reported line.
                self.partial.clear();
                continue;
            }
            if self.partial.is_empty() {
                // Fast path: the whole line is in this chunk, no copy.
                out(self.finish(head));
            } else {
                self.partial.extend_from_slice(&head[..head.len().min(self.max + 1)]);
                let line = std::mem::take(&mut self.partial);
                out(self.finish(&line));
                self.partial = line;
                self.partial.clear();
            }
        }
        if self.resync || self.overflow {
            return;
        }
        // Keep up to `max` bytes of the line, plus one for a CR before the LF.
        let room = (self.max + 1).saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room {
            // Too long whatever follows: say so now, not at its distant LF.
            self.overflow = true;
            out(Line { text: &self.partial[..self.max], too_long: true, crlf: false });
            self.partial.clear();
        }
    }

    /// The line `raw` (LF removed), cut to the limit.
    fn finish<'a>(&self, raw: &'a [u8]) -> Line<'a> {
        let (text, crlf) = match raw.strip_suffix(b"\r") {
            Some(text) => (text, true),
            None => (raw, false),
        };
        let too_long = text.len() > self.max;
        Line { text: &text[..text.len().min(self.max)], too_long, crlf }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut s = LineSplitter::new(max);
        let mut lines = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| lines.push((String::from_utf8_lossy(l.text).into_owned(), l.too_long)));
        }
        lines
    }

    fn texts(lines: &[(String, bool)]) -> Vec<&str> {
        lines.iter().map(|(t, _)| t.as_str()).collect()
    }

    #[test]
    fn crlf_and_bare_lf() {
        let lines = split(100, &[b"USER a\r\nPASS b\nPASV\r\n"]);
        assert_eq!(texts(&lines), ["USER a", "PASS b", "PASV"]);
    }

    #[test]
    fn lines_split_across_chunks() {
        let lines = split(100, &[b"PORT 192,0,", b"2,1,4,5\r", b"\nNOOP", b"\r\n"]);
        assert_eq!(texts(&lines), ["PORT 192,0,2,1,4,5", "NOOP"]);
    }

    #[test]
    fn empty_lines_are_lines() {
        assert_eq!(texts(&split(100, &[b"\r\n\n"])), ["", ""]);
    }

    #[test]
    fn unfinished_line_is_held() {
        assert!(split(100, &[b"PORT 1,2,3"]).is_empty());
    }

    #[test]
    fn long_lines_are_cut_and_flagged() {
        let lines = split(8, &[b"PORT 1,2,3,4,5,6\r\nok\r\n"]);
        assert_eq!(lines, [("PORT 1,2".to_string(), true), ("ok".to_string(), false)]);
        let lines = split(8, &[b"PORT 1,2,", b"3,4,5,6", b"\r\nok\r\n"]);
        assert_eq!(lines, [("PORT 1,2".to_string(), true), ("ok".to_string(), false)]);
        // Reported as soon as it is too long, before its end arrives.
        assert_eq!(split(8, &[b"227 AAAA", b"AAAAAAAA"]), [("227 AAAA".to_string(), true)]);
        // Exactly the limit, line ending excluded, is not too long.
        for chunks in [&[&b"NOOP x\r\n"[..]][..], &[b"NO", b"OP x\r", b"\n"]] {
            assert_eq!(split(6, chunks), [("NOOP x".to_string(), false)]);
        }
        assert_eq!(split(6, &[b"NO", b"OP xy\r\n"]), [("NOOP x".to_string(), true)]);
    }

    #[test]
    fn memory_stays_bounded_without_newlines() {
        let mut s = LineSplitter::new(16);
        let mut reported = 0;
        for _ in 0..1000 {
            s.push(&[b'A'; 1000], &mut |l| {
                assert!(l.too_long && l.text.len() == 16);
                reported += 1;
            });
        }
        assert_eq!(reported, 1, "an endless line is reported once");
        assert!(s.partial.len() <= 17);
        assert!(s.overflow);
    }

    #[test]
    fn a_gap_discards_the_damaged_line() {
        let mut s = LineSplitter::new(100);
        let mut lines = Vec::new();
        s.push(b"PORT 192,0", &mut |l| lines.push(l.text.to_vec()));
        s.gap();
        s.push(b"2,1,4,5\r\nPASV\r\n", &mut |l| lines.push(l.text.to_vec()));
        assert_eq!(lines, [b"PASV".to_vec()]);
    }
}
