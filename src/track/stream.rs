//! One direction of a TCP connection: its bytes, in order, once each.

use std::collections::BTreeMap;

use crate::decode::TcpFlags;

/// Bounds on what one direction may hold while waiting for a missing segment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Bytes held out of order before the gap is given up.
    pub(super) max_bytes: usize,
    /// Segments held out of order before the gap is given up.
    pub(super) max_segments: usize,
}

/// What happened to a segment offered to a [`Stream`], for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Outcome {
    /// Every byte had been delivered before: a retransmission or a copy seen
    /// on a second interface.
    pub(super) duplicate: bool,
    /// Part of the segment had been delivered before and was cut off.
    pub(super) trimmed: bool,
    /// Held until the bytes before it arrive.
    pub(super) buffered: bool,
    /// Too far ahead of the stream to be plausible; dropped.
    pub(super) out_of_window: bool,
    /// Bytes given up as lost to deliver what followed them.
    pub(super) gap_bytes: u64,
}

/// What a [`Stream`] hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Chunk<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// `n` bytes are missing here and will never be delivered.
    Gap(u64),
    /// The sender closed this direction (FIN reached in order).
    Fin,
}

/// A segment that arrived ahead of the bytes before it.
#[derive(Debug)]
struct Held {
    data: Vec<u8>,
    fin: bool,
}

/// Reassembly state for one direction.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Initial sequence number, once a SYN was seen.
    isn: Option<u32>,
    /// Sequence number of the next byte to deliver; `None` until the first
    /// SYN or data segment (a connection picked up mid-stream).
    next_seq: Option<u32>,
    /// Bytes delivered or skipped so far: the stream offset of `next_seq`.
    offset: u64,
    /// Held segments by stream offset.
    held: BTreeMap<u64, Held>,
    /// Sum of the held segments' lengths.
    held_bytes: usize,
    /// The FIN was delivered.
    finished: bool,
}

/// Farthest ahead of the next expected byte a segment may start: TCP's
/// largest scaled window (2^30); anything beyond is not part of this stream.
const MAX_AHEAD: u64 = 1 << 30;

impl Stream {
    /// The initial sequence number, if the SYN was seen.
    pub(super) fn isn(&self) -> Option<u32> {
        self.isn
    }

    /// Whether this direction's FIN was delivered.
    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    /// Whether `seq` is within `window` of the next expected sequence number
    /// (true while nothing is known yet), to sanity-check RSTs.
    pub(super) fn near(&self, seq: u32, window: u32) -> bool {
        match self.next_seq {
            None => true,
            Some(next) => {
                let d = seq.wrapping_sub(next) as i32;
                d.unsigned_abs() <= window
            }
        }
    }

    /// Offer one segment; in-order bytes go to `out` at once, bytes ahead of
    /// a hole are held within `limits`.
    pub(super) fn receive(
        &mut self,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        limits: Limits,
        out: &mut dyn FnMut(Chunk<'_>),
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let mut data_seq = seq;
        if flags.syn {
            if self.isn.is_some() {
                // A retransmitted SYN (a new ISN is handled by the tracker).
                outcome.duplicate = true;
                return outcome;
            }
            self.isn = Some(seq);
            data_seq = seq.wrapping_add(1);
            if self.next_seq.is_none() {
                self.next_seq = Some(data_seq);
            }
        }
        if payload.is_empty() && !flags.fin {
            return outcome;
        }
        if self.finished {
            outcome.duplicate = true;
            return outcome;
        }
        let next = *self.next_seq.get_or_insert(data_seq);
        let ahead = i64::from(data_seq.wrapping_sub(next) as i32);
        let mut payload = payload;
        if ahead < 0 {
            let old = ahead.unsigned_abs();
            let len = payload.len() as u64;
            if old >= len {
                // Everything seen before. A FIN right at the end is new, though.
                if !(flags.fin && old == len) {
                    outcome.duplicate = true;
                    return outcome;
                }
                payload = &[];
            } else {
                payload = &payload[old as usize..];
                outcome.trimmed = true;
            }
        } else if ahead > 0 {
            let ahead = ahead as u64;
            if ahead > MAX_AHEAD {
                outcome.out_of_window = true;
                return outcome;
            }
            self.hold(self.offset + ahead, payload, flags.fin, limits, &mut outcome, out);
            return outcome;
        }
        self.deliver(payload, flags.fin, out);
        self.drain(out);
        outcome
    }

    /// The receiver acknowledged everything before `ack`. If bytes are held
    /// beyond a hole that the acknowledgement covers, the hole was delivered
    /// but never captured and no retransmission will fill it: give it up now
    /// rather than when the limits force it. Returns the bytes given up.
    pub(super) fn acked(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) -> u64 {
        let (Some(next), Some((&first, _))) = (self.next_seq, self.held.first_key_value()) else {
            return 0;
        };
        let acked_ahead = ack.wrapping_sub(next) as i32;
        if acked_ahead <= 0 || self.finished {
            return 0;
        }
        // Skip no further than the first held byte: what lies beyond it is
        // known, and a hole between held segments is judged on its own.
        let missing = (acked_ahead as u64).min(first - self.offset);
        out(Chunk::Gap(missing));
        self.advance(missing);
        self.drain(out);
        missing
    }

    /// Hand on `data` (and the FIN) at the stream's current position.
    fn deliver(&mut self, data: &[u8], fin: bool, out: &mut dyn FnMut(Chunk<'_>)) {
        if !data.is_empty() {
            out(Chunk::Data(data));
            self.advance(data.len() as u64);
        }
        if fin && !self.finished {
            self.finished = true;
            self.next_seq = self.next_seq.map(|s| s.wrapping_add(1));
            out(Chunk::Fin);
        }
    }

    /// Move the stream position forward by `n` bytes (delivered or skipped).
    fn advance(&mut self, n: u64) {
        self.offset += n;
        // Sequence numbers wrap at 2^32: truncation is the arithmetic.
        self.next_seq = self.next_seq.map(|s| s.wrapping_add(n as u32));
    }

    /// Deliver held segments that the stream has now reached.
    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while !self.finished {
            let Some(entry) = self.held.first_entry() else {
                break;
            };
            let at = *entry.key();
            if at > self.offset {
                break;
            }
            let held = entry.remove();
            self.held_bytes -= held.data.len();
            let skip = (self.offset - at) as usize;
            if skip < held.data.len() {
                self.deliver(&held.data[skip..], held.fin, out);
            } else if held.fin && skip == held.data.len() {
                self.deliver(&[], true, out);
            }
        }
    }

    /// Keep a segment that starts `at` (stream offset) beyond a hole. When the
    /// limits are reached, the hole is given up: skip to the first held bytes.
    fn hold(
        &mut self,
        at: u64,
        data: &[u8],
        fin: bool,
        limits: Limits,
        outcome: &mut Outcome,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        if let Some(existing) = self.held.get(&at) {
            if existing.data.len() >= data.len() && (existing.fin || !fin) {
                outcome.duplicate = true;
                return;
            }
        }
        let replaced = self.held.insert(at, Held { data: data.to_vec(), fin });
        if let Some(old) = replaced {
            self.held_bytes -= old.data.len();
        }
        self.held_bytes += data.len();
        outcome.buffered = true;
        // Give up holes, oldest first, until the held data fits the limits again.
        while self.held_bytes > limits.max_bytes || self.held.len() > limits.max_segments {
            let Some((&first, _)) = self.held.first_key_value() else {
                break;
            };
            let missing = first - self.offset;
            outcome.gap_bytes += missing;
            out(Chunk::Gap(missing));
            self.advance(missing);
            self.drain(out);
            if self.finished {
                self.held.clear();
                self.held_bytes = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_bytes: 64, max_segments: 4 };
    const DATA: TcpFlags = TcpFlags { syn: false, ack: true, fin: false, rst: false };
    const SYN: TcpFlags = TcpFlags { syn: true, ack: false, fin: false, rst: false };
    const FIN: TcpFlags = TcpFlags { syn: false, ack: true, fin: true, rst: false };

    /// Feed segments, collect what comes out as text ("[gap N]", "[fin]").
    fn run(stream: &mut Stream, segs: &[(u32, TcpFlags, &str)]) -> (String, Vec<Outcome>) {
        let mut text = String::new();
        let mut outcomes = Vec::new();
        for &(seq, flags, payload) in segs {
            let o = stream.receive(seq, flags, payload.as_bytes(), LIMITS, &mut |c| match c {
                Chunk::Data(d) => text.push_str(&String::from_utf8_lossy(d)),
                Chunk::Gap(n) => text.push_str(&format!("[gap {n}]")),
                Chunk::Fin => text.push_str("[fin]"),
            });
            outcomes.push(o);
        }
        (text, outcomes)
    }

    #[test]
    fn in_order_after_syn() {
        let mut s = Stream::default();
        let (text, _) = run(&mut s, &[(100, SYN, ""), (101, DATA, "USER a\r\n"), (109, FIN, "")]);
        assert_eq!(text, "USER a\r\n[fin]");
        assert_eq!(s.isn(), Some(100));
        assert!(s.finished());
    }

    #[test]
    fn retransmission_is_delivered_once() {
        let mut s = Stream::default();
        let (text, o) = run(&mut s, &[(1, SYN, ""), (2, DATA, "PASV\r\n"), (2, DATA, "PASV\r\n")]);
        assert_eq!(text, "PASV\r\n");
        assert!(o[2].duplicate);
    }

    #[test]
    fn overlap_is_trimmed() {
        let mut s = Stream::default();
        let (text, o) = run(&mut s, &[(1, SYN, ""), (2, DATA, "PORT 1,"), (2, DATA, "PORT 1,2\r\n")]);
        assert_eq!(text, "PORT 1,2\r\n");
        assert!(o[2].trimmed);
    }

    #[test]
    fn out_of_order_is_reordered() {
        let mut s = Stream::default();
        let (text, o) = run(&mut s, &[(1, SYN, ""), (8, DATA, "EF"), (5, DATA, "BCD"), (2, DATA, "A\r\n")]);
        assert_eq!(text, "A\r\nBCDEF");
        assert!(o[1].buffered && o[2].buffered);
    }

    #[test]
    fn overlapping_held_segments_are_trimmed_on_drain() {
        let mut s = Stream::default();
        let (text, _) = run(&mut s, &[(1, SYN, ""), (4, DATA, "CDE"), (3, DATA, "BC"), (2, DATA, "A")]);
        assert_eq!(text, "ABCDE");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = Stream::default();
        let isn = u32::MAX - 2;
        let (text, _) =
            run(&mut s, &[(isn, SYN, ""), (u32::MAX - 1, DATA, "AB"), (1, DATA, "DE"), (0, DATA, "C"), (0, DATA, "C")]);
        assert_eq!(text, "ABCDE");
    }

    #[test]
    fn midstream_pickup_starts_at_first_data() {
        let mut s = Stream::default();
        let (text, _) = run(&mut s, &[(5000, DATA, "227 x\r\n"), (4990, DATA, "old")]);
        assert_eq!(text, "227 x\r\n");
    }

    #[test]
    fn hole_is_given_up_when_limits_are_reached() {
        let mut s = Stream::default();
        let segs = [
            (1, SYN, ""),
            (2, DATA, "A"),
            (10, DATA, "1"),
            (11, DATA, "2"),
            (12, DATA, "3"),
            (13, DATA, "4"),
            (14, DATA, "5"),
        ];
        let (text, o) = run(&mut s, &segs);
        // Five held segments exceed max_segments (4): the 7-byte hole goes.
        assert_eq!(text, "A[gap 7]12345");
        assert_eq!(o[6].gap_bytes, 7);
        // The bytes of the hole, arriving late, are old now.
        let (late, o) = run(&mut s, &[(3, DATA, "lost")]);
        assert_eq!(late, "");
        assert!(o[0].duplicate);
    }

    #[test]
    fn held_bytes_are_bounded() {
        let mut s = Stream::default();
        let big = "x".repeat(40);
        let (text, _) = run(&mut s, &[(1, SYN, ""), (50, DATA, &big), (100, DATA, &big)]);
        // 80 held bytes exceed max_bytes (64): the first hole is given up,
        // which leaves 40 held bytes, within the limit.
        assert_eq!(text, format!("[gap 48]{big}"));
        assert_eq!(s.held_bytes, 40);
    }

    #[test]
    fn an_ack_past_a_hole_gives_it_up_at_once() {
        let mut s = Stream::default();
        let (text, _) = run(&mut s, &[(1, SYN, ""), (2, DATA, "200 ok\r\n"), (20, DATA, "227 x\r\n")]);
        assert_eq!(text, "200 ok\r\n");
        let mut got = String::new();
        // An ACK short of the hole proves nothing.
        assert_eq!(s.acked(10, &mut |_| panic!("nothing to give up")), 0);
        // The peer acknowledged through the held segment: the hole is lost.
        let lost = s.acked(27, &mut |c| match c {
            Chunk::Data(d) => got.push_str(&String::from_utf8_lossy(d)),
            Chunk::Gap(n) => got.push_str(&format!("[gap {n}]")),
            Chunk::Fin => got.push_str("[fin]"),
        });
        assert_eq!(lost, 10);
        assert_eq!(got, "[gap 10]227 x\r\n");
        // Nothing held: an ACK never skips ahead on its own.
        assert_eq!(s.acked(1000, &mut |_| panic!("nothing held")), 0);
    }

    #[test]
    fn far_future_segment_is_dropped() {
        let mut s = Stream::default();
        let (text, o) = run(&mut s, &[(1, SYN, ""), (1u32 << 31, DATA, "evil")]);
        assert_eq!(text, "");
        assert!(o[1].out_of_window, "{:?}", o[1]);
    }

    #[test]
    fn fin_ahead_of_data_waits() {
        let mut s = Stream::default();
        let (text, _) = run(&mut s, &[(1, SYN, ""), (4, FIN, ""), (2, DATA, "AB")]);
        assert_eq!(text, "AB[fin]");
        let (after, o) = run(&mut s, &[(2, DATA, "AB")]);
        assert_eq!(after, "");
        assert!(o[0].duplicate);
    }

    #[test]
    fn retransmitted_syn_changes_nothing() {
        let mut s = Stream::default();
        let (text, o) = run(&mut s, &[(7, SYN, ""), (7, SYN, ""), (8, DATA, "A")]);
        assert_eq!(text, "A");
        assert!(o[1].duplicate);
    }
}
