//! What the kernel sends back, parsed in safe code that never panics: netlink
//! headers, `NLMSG_ERROR` acknowledgements (with extended-ACK attributes),
//! the verdict on a batch, and the set and element messages of a dump.
//!
//! Every read is a checked `get`; anything malformed is an error value or is
//! skipped, never a panic.

use std::ops::Range;

use thiserror::Error;

/// `sizeof(struct nlmsghdr)`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nfgenmsg)`, which follows the header of every nf_tables message.
pub(crate) const NFGENMSG_LEN: usize = 4;
/// Netlink alignment.
const ALIGN: usize = 4;
/// Attribute header: `nla_len`, `nla_type`.
const NLA_HDRLEN: usize = 4;
/// `nla_type` without the NESTED and NET_BYTEORDER bits.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `NLMSGERR_ATTR_MSG`: the kernel's text for an error.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: where in the request the offending attribute is.
const NLMSGERR_ATTR_OFFS: u16 = 2;

/// Byte ranges of `struct nlmsghdr`.
mod field {
    use std::ops::Range;
    /// `nlmsg_len`.
    pub(super) const LEN: Range<usize> = 0..4;
    /// `nlmsg_type`.
    pub(super) const TYPE: Range<usize> = 4..6;
    /// `nlmsg_flags`.
    pub(super) const FLAGS: Range<usize> = 6..8;
    /// `nlmsg_seq`.
    pub(super) const SEQ: Range<usize> = 8..12;
    /// `struct nlmsgerr.error`, right after the header.
    pub(super) const ERROR: Range<usize> = 16..20;
}

/// nf_tables attribute numbers (`linux/netfilter/nf_tables.h`).
pub(crate) mod attr {
    /// `NFTA_SET_ELEM_LIST_TABLE`.
    pub(crate) const LIST_TABLE: u16 = 1;
    /// `NFTA_SET_ELEM_LIST_SET`.
    pub(crate) const LIST_SET: u16 = 2;
    /// `NFTA_SET_ELEM_LIST_ELEMENTS`.
    pub(crate) const LIST_ELEMENTS: u16 = 3;
    /// `NFTA_LIST_ELEM`.
    pub(crate) const LIST_ELEM: u16 = 1;
    /// `NFTA_SET_ELEM_KEY`.
    pub(crate) const ELEM_KEY: u16 = 1;
    /// `NFTA_SET_ELEM_TIMEOUT` (big-endian u64, ms).
    pub(crate) const ELEM_TIMEOUT: u16 = 4;
    /// `NFTA_SET_ELEM_EXPIRATION` (big-endian u64, ms left).
    pub(crate) const ELEM_EXPIRATION: u16 = 5;
    /// `NFTA_DATA_VALUE`.
    pub(crate) const DATA_VALUE: u16 = 1;
    /// `NFTA_SET_NAME`.
    #[cfg(test)]
    pub(crate) const SET_NAME: u16 = 2;
    /// `NFTA_SET_FLAGS` (big-endian u32).
    pub(crate) const SET_FLAGS: u16 = 3;
    /// `NFTA_SET_KEY_TYPE` (big-endian u32).
    pub(crate) const SET_KEY_TYPE: u16 = 4;
    /// `NFTA_SET_KEY_LEN` (big-endian u32).
    pub(crate) const SET_KEY_LEN: u16 = 5;
}

/// A reply that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed netlink reply: {0}")]
pub(crate) struct Malformed(pub(crate) &'static str);

fn bytes<const N: usize>(b: &[u8], r: Range<usize>) -> Option<[u8; N]> {
    b.get(r)?.try_into().ok()
}

fn u16_ne(b: &[u8], r: Range<usize>) -> Option<u16> {
    bytes(b, r).map(u16::from_ne_bytes)
}

fn u32_ne(b: &[u8], r: Range<usize>) -> Option<u32> {
    bytes(b, r).map(u32::from_ne_bytes)
}

fn align(n: usize) -> usize {
    n.next_multiple_of(ALIGN)
}

/// The fields of a netlink header that the backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// `nlmsg_len`.
    pub(crate) len: usize,
    /// `nlmsg_type`.
    pub(crate) ty: u16,
    /// `nlmsg_flags`.
    pub(crate) flags: u16,
    /// `nlmsg_seq`.
    pub(crate) seq: u32,
}

impl Header {
    /// The header at the start of `b`, if `b` holds one.
    pub(crate) fn parse(b: &[u8]) -> Option<Header> {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        Some(Header {
            len: u32_ne(b, field::LEN)? as usize,
            ty: u16_ne(b, field::TYPE)?,
            flags: u16_ne(b, field::FLAGS)?,
            seq: u32_ne(b, field::SEQ)?,
        })
    }
}

/// The messages of one datagram, each exactly `nlmsg_len` bytes; stops with
/// an error at the first length that does not fit.
pub(crate) fn messages(datagram: &[u8]) -> impl Iterator<Item = Result<&[u8], Malformed>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(h) = Header::parse(rest) else {
            rest = &[];
            return Some(Err(Malformed("datagram ends inside a header")));
        };
        let Some(msg) = rest.get(..h.len).filter(|_| h.len >= NLMSG_HDRLEN) else {
            rest = &[];
            return Some(Err(Malformed("message length does not fit its datagram")));
        };
        rest = rest.get(align(h.len)..).unwrap_or(&[]);
        Some(Ok(msg))
    })
}

/// One netlink attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr<'a> {
    /// Type, flag bits removed.
    pub(crate) ty: u16,
    /// Payload.
    pub(crate) payload: &'a [u8],
    /// Where its header starts in the buffer given to [`attrs`].
    pub(crate) offset: usize,
    /// `nla_len` (header and payload, unpadded).
    pub(crate) len: usize,
}

/// The attributes in `b`, in order; an error item at the first malformed one.
pub(crate) fn attrs(b: &[u8]) -> impl Iterator<Item = Result<Attr<'_>, Malformed>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= b.len() {
            return None;
        }
        let parsed = (|| {
            let len = u16_ne(b, offset..offset + 2)? as usize;
            let ty = u16_ne(b, offset + 2..offset + 4)? & NLA_TYPE_MASK;
            let payload = b.get(offset + NLA_HDRLEN..offset.checked_add(len)?).filter(|_| len >= NLA_HDRLEN)?;
            Some(Attr { ty, payload, offset, len })
        })();
        match parsed {
            Some(a) => {
                offset += align(a.len);
                Some(Ok(a))
            }
            None => {
                offset = b.len();
                Some(Err(Malformed("attribute length does not fit its message")))
            }
        }
    })
}

/// The attributes of an nf_tables message (after header and `nfgenmsg`).
fn nft_attrs(msg: &[u8]) -> Result<impl Iterator<Item = Result<Attr<'_>, Malformed>>, Malformed> {
    let body = msg.get(NLMSG_HDRLEN + NFGENMSG_LEN..).ok_or(Malformed("nf_tables message without nfgenmsg"))?;
    Ok(attrs(body))
}

fn be32(a: &Attr<'_>) -> Result<u32, Malformed> {
    bytes(a.payload, 0..4).map(u32::from_be_bytes).ok_or(Malformed("u32 attribute too short"))
}

fn be64(a: &Attr<'_>) -> Result<u64, Malformed> {
    bytes(a.payload, 0..8).map(u64::from_be_bytes).ok_or(Malformed("u64 attribute too short"))
}

/// A decoded `NLMSG_ERROR`: an error, or an acknowledgement when `errno` is 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    /// Sequence number of the request it answers.
    pub(crate) seq: u32,
    /// Positive errno; 0 for success.
    pub(crate) errno: i32,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute in the request.
    pub(crate) offset: Option<u32>,
    /// `NLMSGERR_ATTR_MSG`: the kernel's words, if it gave any.
    pub(crate) text: Option<String>,
}

impl Ack {
    /// Decodes an `NLMSG_ERROR` message; `None` for other messages or when truncated.
    pub(crate) fn parse(msg: &[u8]) -> Option<Ack> {
        let h = Header::parse(msg)?;
        if h.ty != libc::NLMSG_ERROR as u16 {
            return None;
        }
        let error = bytes(msg, field::ERROR).map(i32::from_ne_bytes)?;
        let orig_start = field::ERROR.end;
        let orig = Header::parse(msg.get(orig_start..)?)?;
        let mut ack = Ack { seq: orig.seq, errno: error.checked_neg()?, offset: None, text: None };
        if h.flags & libc::NLM_F_ACK_TLVS as u16 != 0 {
            // The request follows whole, or only its header when capped.
            let orig_len = if h.flags & libc::NLM_F_CAPPED as u16 != 0 { NLMSG_HDRLEN } else { orig.len };
            let tlvs = msg.get(orig_start + align(orig_len)..h.len.min(msg.len())).unwrap_or(&[]);
            for a in attrs(tlvs).map_while(Result::ok) {
                match a.ty {
                    NLMSGERR_ATTR_MSG => {
                        let text = a.payload.split(|&c| c == 0).next().unwrap_or(&[]);
                        ack.text = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    NLMSGERR_ATTR_OFFS => ack.offset = bytes(a.payload, 0..4).map(u32::from_ne_bytes),
                    _ => {}
                }
            }
        }
        Some(ack)
    }
}

/// The type of the top-level attribute of `request` that holds byte `offset`
/// (an `NLMSGERR_ATTR_OFFS`), e.g. [`attr::LIST_TABLE`] for a missing table.
pub(crate) fn attr_at(request: &[u8], offset: u32) -> Option<u16> {
    let base = NLMSG_HDRLEN + NFGENMSG_LEN;
    let off = (offset as usize).checked_sub(base)?;
    nft_attrs(request).ok()?.map_while(Result::ok).find(|a| off >= a.offset && off < a.offset + a.len).map(|a| a.ty)
}

/// Sequence numbers of one batch: begin, its messages, end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seqs {
    /// The batch-begin message.
    pub(crate) begin: u32,
    /// The first operation message (`begin + 1`).
    pub(crate) first: u32,
    /// How many operation messages.
    pub(crate) count: u32,
    /// The batch-end message (`first + count`).
    pub(crate) end: u32,
}

impl Seqs {
    /// The layout of a batch of `count` messages starting at `begin`; `None`
    /// if the numbers would wrap.
    pub(crate) fn new(begin: u32, count: u32) -> Option<Seqs> {
        let first = begin.checked_add(1)?;
        let end = first.checked_add(count)?;
        Some(Seqs { begin, first, count, end })
    }

    /// Index of the operation message with sequence number `seq`.
    pub(crate) fn index(&self, seq: u32) -> Option<usize> {
        let i = seq.checked_sub(self.first)?;
        (i < self.count).then_some(i as usize)
    }
}

/// One operation message the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Index of the message in the batch.
    pub(crate) index: usize,
    /// Positive errno.
    pub(crate) errno: i32,
    /// Offending attribute offset, if given.
    pub(crate) offset: Option<u32>,
    /// The kernel's words, if any.
    pub(crate) text: Option<String>,
}

/// How a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Applied whole.
    Committed,
    /// Rolled back whole because these messages failed.
    Rejected(Vec<Refusal>),
    /// Refused as a whole (EPERM, or the commit itself failed): the errno.
    Failed(i32),
    /// Neither a commit confirmation nor an error arrived.
    Unsettled,
}

/// What the kernel said about one batch, gathered reply by reply.
#[derive(Debug, Clone)]
pub(crate) struct BatchReplies {
    seqs: Seqs,
    end: Option<i32>,
    batch_error: Option<i32>,
    refusals: Vec<Refusal>,
    /// Replies to no message of this batch (left over from an earlier request).
    pub(crate) stale: usize,
}

impl BatchReplies {
    /// Nothing heard yet about the batch numbered `seqs`.
    pub(crate) fn new(seqs: Seqs) -> Self {
        BatchReplies { seqs, end: None, batch_error: None, refusals: Vec::new(), stale: 0 }
    }

    /// Takes one received message into account.
    pub(crate) fn feed(&mut self, msg: &[u8]) {
        let Some(ack) = Ack::parse(msg) else {
            self.stale += 1;
            return;
        };
        if ack.seq == self.seqs.end {
            self.end = Some(ack.errno);
        } else if ack.seq == self.seqs.begin {
            if ack.errno != 0 {
                self.batch_error = Some(ack.errno);
            }
        } else if let Some(index) = self.seqs.index(ack.seq) {
            if ack.errno != 0 {
                self.refusals.push(Refusal { index, errno: ack.errno, offset: ack.offset, text: ack.text });
            }
        } else {
            self.stale += 1;
        }
    }

    /// Whether the batch end was acknowledged with success.
    pub(crate) fn end_acked(&self) -> bool {
        self.end == Some(0)
    }

    /// Whether nothing more is needed to decide (with `end_ack`, kernels
    /// >= 6.10 acknowledge the batch end only after a commit).
    pub(crate) fn settled(&self, end_ack: bool) -> bool {
        self.verdict(end_ack) != Verdict::Unsettled
    }

    /// The verdict, once every queued reply has been fed. Without `end_ack`
    /// (kernels < 6.10), a batch with no error is committed: the kernel
    /// handles a batch inside `send()`, so all its errors are queued by then.
    pub(crate) fn verdict(&self, end_ack: bool) -> Verdict {
        if let Some(errno) = self.batch_error {
            Verdict::Failed(errno)
        } else if !self.refusals.is_empty() {
            Verdict::Rejected(self.refusals.clone())
        } else {
            match self.end {
                Some(0) => Verdict::Committed,
                Some(errno) => Verdict::Failed(errno),
                None if end_ack => Verdict::Unsettled,
                None => Verdict::Committed,
            }
        }
    }
}

/// What a set is, as a `GETSET` reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SetInfo {
    /// `NFT_SET_*` flags.
    pub(crate) flags: u32,
    /// nft key type.
    pub(crate) key_type: u32,
    /// Key length in bytes.
    pub(crate) key_len: u32,
}

impl SetInfo {
    /// Decodes a `NEWSET` message.
    pub(crate) fn parse(msg: &[u8]) -> Result<SetInfo, Malformed> {
        let mut info = SetInfo::default();
        for a in nft_attrs(msg)? {
            let a = a?;
            match a.ty {
                attr::SET_FLAGS => info.flags = be32(&a)?,
                attr::SET_KEY_TYPE => info.key_type = be32(&a)?,
                attr::SET_KEY_LEN => info.key_len = be32(&a)?,
                _ => {}
            }
        }
        Ok(info)
    }
}

/// One element of a dump, its key still bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawElement {
    /// The key bytes (`NFTA_DATA_VALUE` inside `NFTA_SET_ELEM_KEY`).
    pub(crate) key: Vec<u8>,
    /// The element's timeout, ms.
    pub(crate) timeout_ms: Option<u64>,
    /// Time left, ms.
    pub(crate) expiration_ms: Option<u64>,
}

/// The elements of one `NEWSETELEM` message of a dump, with its set's name.
pub(crate) fn set_elements(msg: &[u8]) -> Result<(Option<String>, Vec<RawElement>), Malformed> {
    let mut set = None;
    let mut out = Vec::new();
    for a in nft_attrs(msg)? {
        let a = a?;
        match a.ty {
            attr::LIST_SET => {
                let name = a.payload.split(|&c| c == 0).next().unwrap_or(&[]);
                set = Some(String::from_utf8_lossy(name).into_owned());
            }
            attr::LIST_ELEMENTS => {
                for elem in attrs(a.payload) {
                    let elem = elem?;
                    if elem.ty == attr::LIST_ELEM {
                        out.push(element(elem.payload)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok((set, out))
}

/// One `NFTA_LIST_ELEM`'s content.
fn element(b: &[u8]) -> Result<RawElement, Malformed> {
    let mut e = RawElement { key: Vec::new(), timeout_ms: None, expiration_ms: None };
    let mut has_key = false;
    for a in attrs(b) {
        let a = a?;
        match a.ty {
            attr::ELEM_KEY => {
                for d in attrs(a.payload) {
                    let d = d?;
                    if d.ty == attr::DATA_VALUE {
                        e.key = d.payload.to_vec();
                        has_key = true;
                    }
                }
            }
            attr::ELEM_TIMEOUT => e.timeout_ms = Some(be64(&a)?),
            attr::ELEM_EXPIRATION => e.expiration_ms = Some(be64(&a)?),
            _ => {}
        }
    }
    if has_key {
        Ok(e)
    } else {
        Err(Malformed("set element without a key"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Appends a netlink header.
    pub(crate) fn put_header(m: &mut Vec<u8>, len: usize, ty: u16, flags: u16, seq: u32) {
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
    }

    /// An `NLMSG_ERROR` as the kernel sends it with NETLINK_CAP_ACK and
    /// NETLINK_EXT_ACK: capped request header, then an OFFS attribute if given.
    pub(crate) fn error_reply(seq: u32, errno: i32, offset: Option<u32>) -> Vec<u8> {
        let tlv = if offset.is_some() { 8 } else { 0 };
        let len = NLMSG_HDRLEN + 4 + NLMSG_HDRLEN + tlv;
        let mut flags = libc::NLM_F_CAPPED as u16;
        if offset.is_some() {
            flags |= libc::NLM_F_ACK_TLVS as u16;
        }
        let mut m = Vec::new();
        put_header(&mut m, len, libc::NLMSG_ERROR as u16, flags, seq);
        m.extend_from_slice(&(-errno).to_ne_bytes());
        put_header(&mut m, 100, 0x0a0c, 0, seq);
        if let Some(off) = offset {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&NLMSGERR_ATTR_OFFS.to_ne_bytes());
            m.extend_from_slice(&off.to_ne_bytes());
        }
        m
    }

    fn seqs() -> Seqs {
        Seqs::new(100, 3).expect("no wrap")
    }

    #[test]
    fn sequence_layout_is_begin_messages_end() {
        let s = seqs();
        assert_eq!((s.begin, s.first, s.end), (100, 101, 104));
        assert_eq!((s.index(100), s.index(101), s.index(103), s.index(104)), (None, Some(0), Some(2), None));
        assert_eq!(Seqs::new(u32::MAX - 2, 3), None);
    }

    #[test]
    fn an_error_reply_names_its_request_errno_and_attribute() {
        let a = Ack::parse(&error_reply(42, libc::ENOENT, Some(36))).expect("an ack");
        assert_eq!(a, Ack { seq: 42, errno: libc::ENOENT, offset: Some(36), text: None });
        let ok = Ack::parse(&error_reply(7, 0, None)).expect("an ack");
        assert_eq!((ok.seq, ok.errno), (7, 0));
    }

    #[test]
    fn an_uncapped_error_reply_skips_the_whole_request_before_the_attributes() {
        let mut m = Vec::new();
        let request_len = 24;
        put_header(
            &mut m,
            NLMSG_HDRLEN + 4 + request_len + 8,
            libc::NLMSG_ERROR as u16,
            libc::NLM_F_ACK_TLVS as u16,
            1,
        );
        m.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
        put_header(&mut m, request_len, 0x0a0c, 0, 9);
        m.extend_from_slice(&[0xff; 8]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&NLMSGERR_ATTR_OFFS.to_ne_bytes());
        m.extend_from_slice(&28u32.to_ne_bytes());
        assert_eq!(Ack::parse(&m), Some(Ack { seq: 9, errno: libc::EINVAL, offset: Some(28), text: None }));
    }

    #[test]
    fn truncated_and_foreign_replies_are_not_acks() {
        let full = error_reply(1, libc::EPERM, Some(20));
        for n in 0..NLMSG_HDRLEN + 4 + NLMSG_HDRLEN {
            assert_eq!(Ack::parse(&full[..n]), None, "{n} bytes");
        }
        // Truncated inside the attributes: the ack is kept, the attribute is not.
        assert_eq!(Ack::parse(&full[..full.len() - 2]).map(|a| a.offset), Some(None));
        let mut done = Vec::new();
        put_header(&mut done, 20, libc::NLMSG_DONE as u16, 0, 1);
        done.extend_from_slice(&[0; 4]);
        assert_eq!(Ack::parse(&done), None);
        // An error of i32::MIN cannot be negated: not an ack rather than a panic.
        let mut weird = error_reply(1, 0, None);
        weird[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert_eq!(Ack::parse(&weird), None);
    }

    #[test]
    fn datagrams_split_into_messages_and_stop_at_bad_lengths() {
        let mut d = error_reply(1, 0, None);
        d.extend(error_reply(2, libc::EEXIST, Some(40)));
        let seqs: Vec<u32> = messages(&d).map(|m| Ack::parse(m.expect("well formed")).expect("ack").seq).collect();
        assert_eq!(seqs, [1, 2]);
        let mut bad = error_reply(1, 0, None);
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(messages(&bad).next(), Some(Err(_))));
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(messages(&bad).next(), Some(Err(_))));
        assert!(matches!(messages(&bad[..5]).next(), Some(Err(_))));
        assert_eq!(messages(&[]).count(), 0);
    }

    #[test]
    fn attributes_never_read_past_their_buffer() {
        let b = [8u8, 0, 1, 0, 1, 2, 3, 4, 200, 0, 2, 0];
        let got: Vec<_> = attrs(&b).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(Attr { ty: 1, payload: &[1, 2, 3, 4], offset: 0, len: 8 }));
        assert!(got[1].is_err());
        assert!(attrs(&[2, 0, 1, 0]).next().is_some_and(|a| a.is_err()), "nla_len below the header");
    }

    #[test]
    fn a_committed_batch_is_confirmed_by_its_end_ack() {
        let mut r = BatchReplies::new(seqs());
        r.feed(&error_reply(100, 0, None));
        assert!(!r.settled(true));
        assert_eq!(r.verdict(true), Verdict::Unsettled);
        r.feed(&error_reply(104, 0, None));
        assert_eq!(r.verdict(true), Verdict::Committed);
    }

    #[test]
    fn without_end_acks_silence_means_committed() {
        let r = BatchReplies::new(seqs());
        assert_eq!(r.verdict(false), Verdict::Committed);
    }

    #[test]
    fn errors_are_attributed_to_their_messages() {
        let mut r = BatchReplies::new(seqs());
        r.feed(&error_reply(100, 0, None));
        r.feed(&error_reply(102, libc::ENFILE, Some(48)));
        r.feed(&error_reply(103, libc::EEXIST, None));
        let want = vec![
            Refusal { index: 1, errno: libc::ENFILE, offset: Some(48), text: None },
            Refusal { index: 2, errno: libc::EEXIST, offset: None, text: None },
        ];
        assert_eq!(r.verdict(true), Verdict::Rejected(want.clone()));
        assert_eq!(r.verdict(false), Verdict::Rejected(want));
    }

    #[test]
    fn a_refused_batch_begin_fails_the_whole_batch() {
        let mut r = BatchReplies::new(seqs());
        r.feed(&error_reply(100, libc::EPERM, None));
        assert_eq!(r.verdict(true), Verdict::Failed(libc::EPERM));
    }

    #[test]
    fn replies_to_other_requests_are_counted_and_ignored() {
        let mut r = BatchReplies::new(seqs());
        r.feed(&error_reply(7, libc::ENOENT, None));
        r.feed(&error_reply(105, libc::ENOENT, None));
        r.feed(&[1, 2, 3]);
        assert_eq!(r.stale, 3);
        assert_eq!(r.verdict(true), Verdict::Unsettled);
    }

    /// An nf_tables message of `ty` with the given attribute bytes.
    fn nft_message(ty: u16, attrs: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        put_header(&mut m, NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len(), ty, 0, 1);
        m.extend_from_slice(&[1, 0, 0, 0]);
        m.extend_from_slice(attrs);
        m
    }

    fn attr_bytes(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align(a.len()), 0);
        a
    }

    #[test]
    fn set_info_reads_flags_and_key() {
        let mut a = attr_bytes(attr::SET_NAME, b"passive4\0");
        a.extend(attr_bytes(attr::SET_FLAGS, &0x10u32.to_be_bytes()));
        a.extend(attr_bytes(attr::SET_KEY_TYPE, &0x1c1cdu32.to_be_bytes()));
        a.extend(attr_bytes(attr::SET_KEY_LEN, &12u32.to_be_bytes()));
        let info = SetInfo::parse(&nft_message(0x0a09, &a)).expect("parses");
        assert_eq!(info, SetInfo { flags: 0x10, key_type: 0x1c1cd, key_len: 12 });
        let short = attr_bytes(attr::SET_FLAGS, &[1, 2]);
        assert!(SetInfo::parse(&nft_message(0x0a09, &short)).is_err());
        assert!(SetInfo::parse(&[0; 10]).is_err());
    }

    #[test]
    fn dumped_elements_are_decoded_and_malformed_ones_refused() {
        let key = [0xc0, 0, 2, 1, 0xc6, 0x33, 0x64, 2, 0x08, 0x49, 0, 0];
        let mut elem = attr_bytes(attr::ELEM_KEY | 0x8000, &attr_bytes(attr::DATA_VALUE, &key));
        elem.extend(attr_bytes(attr::ELEM_TIMEOUT, &30_000u64.to_be_bytes()));
        elem.extend(attr_bytes(attr::ELEM_EXPIRATION, &29_996u64.to_be_bytes()));
        let list = attr_bytes(attr::LIST_ELEMENTS | 0x8000, &attr_bytes(attr::LIST_ELEM | 0x8000, &elem));
        let mut a = attr_bytes(attr::LIST_TABLE, b"ftp_pinhole\0");
        a.extend(attr_bytes(attr::LIST_SET, b"passive4\0"));
        a.extend(list);
        let (set, elems) = set_elements(&nft_message(0x0a0c, &a)).expect("parses");
        assert_eq!(set.as_deref(), Some("passive4"));
        assert_eq!(elems, [RawElement { key: key.to_vec(), timeout_ms: Some(30_000), expiration_ms: Some(29_996) }]);

        let keyless = attr_bytes(attr::LIST_ELEMENTS, &attr_bytes(attr::LIST_ELEM, &[]));
        assert!(set_elements(&nft_message(0x0a0c, &keyless)).is_err());
        let msg = nft_message(0x0a0c, &a);
        for n in 0..msg.len() {
            // Any truncation is an error or fewer elements, never a panic.
            let _ = set_elements(&msg[..n]);
        }
    }

    #[test]
    fn an_offset_names_the_attribute_it_points_into() {
        let mut a = attr_bytes(attr::LIST_TABLE, b"ftp_pinhole\0");
        let set_at = (NLMSG_HDRLEN + NFGENMSG_LEN + a.len()) as u32;
        a.extend(attr_bytes(attr::LIST_SET, b"passive4\0"));
        let msg = nft_message(0x0a0d, &a);
        assert_eq!(attr_at(&msg, 20), Some(attr::LIST_TABLE));
        assert_eq!(attr_at(&msg, set_at), Some(attr::LIST_SET));
        assert_eq!(attr_at(&msg, 4), None);
        assert_eq!(attr_at(&msg, 10_000), None);
    }
}
