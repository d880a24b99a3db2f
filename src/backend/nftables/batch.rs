//! One nf_tables batch, built as a pure function of the messages to send:
//! `BATCH_BEGIN`, one set-element message per step, `BATCH_END`, as one
//! buffer for one `send()`.
//!
//! Only the batch begin and end ask for an acknowledgement: the kernel
//! reports every failing message anyway (with its sequence number), acks
//! the begin, and (kernel >= 6.10) acks the end only when the batch
//! committed. A successful batch of any size costs two small replies.

use std::ffi::CString;
use std::io;

use super::ffi::{self, ElemAttrs, Header, Scratch};
use super::keys::Key;
use super::reply::Seqs;
use crate::backend::{TableFamily, TableSpec, SETS};

/// `NFT_MSG_DESTROYSETELEM`: delete, and succeed if absent (kernel >= 6.3;
/// not in libc).
pub(crate) const NFT_MSG_DESTROYSETELEM: u16 = 30;

/// What one message does to one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// `NEWSETELEM` with `NLM_F_CREATE`, TIMEOUT and EXPIRATION: adds the
    /// element, or (kernel >= 6.12) resets its timeout if it is there.
    Upsert,
    /// `NEWSETELEM` with `NLM_F_CREATE | NLM_F_EXCL` and TIMEOUT: adds the
    /// element; EEXIST if it is there.
    Create,
    /// `DELSETELEM`: removes the element; ENOENT if it is absent.
    Delete,
    /// `DESTROYSETELEM`: removes the element if it is there.
    Destroy,
}

impl Step {
    /// The `NFT_MSG_*` type.
    pub(crate) const fn msg_type(self) -> u16 {
        match self {
            Step::Upsert | Step::Create => libc::NFT_MSG_NEWSETELEM as u16,
            Step::Delete => libc::NFT_MSG_DELSETELEM as u16,
            Step::Destroy => NFT_MSG_DESTROYSETELEM,
        }
    }

    /// The `NLM_F_*` flags (libnftnl adds `NLM_F_REQUEST`).
    pub(crate) const fn flags(self) -> u16 {
        match self {
            Step::Upsert => libc::NLM_F_CREATE as u16,
            Step::Create => (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
            Step::Delete | Step::Destroy => 0,
        }
    }

    /// Name for logs.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Step::Upsert => "upsert",
            Step::Create => "create",
            Step::Delete => "delete",
            Step::Destroy => "destroy",
        }
    }
}

/// The `NFPROTO_*` number of a table family.
pub(crate) const fn nfproto(family: TableFamily) -> u16 {
    match family {
        TableFamily::Inet => libc::NFPROTO_INET as u16,
        TableFamily::Ip => libc::NFPROTO_IPV4 as u16,
        TableFamily::Ip6 => libc::NFPROTO_IPV6 as u16,
    }
}

/// Where messages go: the table's family and name, and the set names, as
/// the C strings libnftnl takes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `NFPROTO_*` of the table.
    pub(crate) family: u16,
    /// The table's name.
    pub(crate) table: CString,
    /// [`SETS`], in order.
    sets: Vec<CString>,
}

impl Target {
    /// The target for `table`; `None` if its name cannot be a kernel object
    /// name (a NUL byte, or longer than nf_tables allows).
    pub(crate) fn new(table: &TableSpec) -> Option<Target> {
        let name = CString::new(table.name.as_str()).ok()?;
        if name.as_bytes_with_nul().len() > ffi::MAX_NAME_LEN {
            return None;
        }
        let sets = SETS.iter().map(|s| CString::new(*s)).collect::<Result<_, _>>().ok()?;
        Some(Target { family: nfproto(table.family), table: name, sets })
    }

    /// The C name of one of [`SETS`]; `None` for another name.
    pub(crate) fn set(&self, set: &str) -> Option<&CString> {
        self.sets.get(SETS.iter().position(|s| *s == set)?)
    }
}

/// One message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// What it does.
    pub(crate) step: Step,
    /// In which of [`SETS`].
    pub(crate) set: &'static str,
    /// To which element.
    pub(crate) key: Key,
    /// `NFTA_SET_ELEM_TIMEOUT`, ms.
    pub(crate) timeout_ms: Option<u64>,
    /// `NFTA_SET_ELEM_EXPIRATION`, ms.
    pub(crate) expiration_ms: Option<u64>,
}

impl Message {
    /// The message for `step` on an element whose time to live is `ttl_ms`:
    /// an upsert sets timeout and expiration (so that it resets the clock of
    /// an element that is there), a create the timeout, a removal neither.
    pub(crate) fn new(step: Step, set: &'static str, key: Key, ttl_ms: u64) -> Message {
        let (timeout_ms, expiration_ms) = match step {
            Step::Upsert => (Some(ttl_ms), Some(ttl_ms)),
            Step::Create => (Some(ttl_ms), None),
            Step::Delete | Step::Destroy => (None, None),
        };
        Message { step, set, key, timeout_ms, expiration_ms }
    }
}

/// A batch ready to send in one datagram.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// Begin, messages, end.
    pub(crate) bytes: Vec<u8>,
    /// Their sequence numbers; message `i` has `seqs.first + i`.
    pub(crate) seqs: Seqs,
}

/// The begin or end message of a batch: `nfgenmsg` with the nf_tables
/// subsystem in `res_id`, acknowledgement requested.
fn put_batch_marker(out: &mut Vec<u8>, ty: u16, seq: u32) {
    const LEN: u32 = 20;
    out.extend_from_slice(&LEN.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(libc::AF_UNSPEC as u8);
    out.push(libc::NFNETLINK_V0 as u8);
    out.extend_from_slice(&(libc::NFNL_SUBSYS_NFTABLES as u16).to_be_bytes());
}

/// Builds the batch of `messages`, numbered from `begin_seq`. Errors only if
/// a set name is not one of [`SETS`] or the numbers would wrap.
pub(crate) fn build(target: &Target, begin_seq: u32, messages: &[Message]) -> io::Result<Batch> {
    let count = u32::try_from(messages.len()).ok();
    let seqs = count
        .and_then(|n| Seqs::new(begin_seq, n))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "batch sequence numbers would wrap"))?;
    let mut scratch = Scratch::new();
    let mut bytes = Vec::with_capacity(40 + messages.len() * 96);
    put_batch_marker(&mut bytes, libc::NFNL_MSG_BATCH_BEGIN as u16, seqs.begin);
    for (seq, m) in (seqs.first..).zip(messages) {
        let set = target
            .set(m.set)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{:?} is not a pinhole set", m.set)))?;
        let key = m.key.bytes();
        let hdr = Header { ty: m.step.msg_type(), family: target.family, flags: m.step.flags(), seq };
        let elem = ElemAttrs { key: &key, timeout_ms: m.timeout_ms, expiration_ms: m.expiration_ms };
        ffi::write_set_elems(&mut bytes, &mut scratch, hdr, &target.table, set, Some(elem))?;
        bytes.resize(bytes.len().next_multiple_of(4), 0);
    }
    put_batch_marker(&mut bytes, libc::NFNL_MSG_BATCH_END as u16, seqs.end);
    Ok(Batch { bytes, seqs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nftables::reply::{attr, attrs, messages, Header as Parsed, NFGENMSG_LEN, NLMSG_HDRLEN};
    use crate::backend::{SET_ACTIVE6, SET_PASSIVE4};

    const NFT: u16 = (libc::NFNL_SUBSYS_NFTABLES as u16) << 8;

    fn target() -> Target {
        Target::new(&TableSpec::default()).expect("valid name")
    }

    fn v4() -> Key {
        Key::new("192.0.2.10".parse().expect("ip"), "198.51.100.20".parse().expect("ip"), 2121).expect("key")
    }

    fn v6() -> Key {
        Key::new("2001:db8:1::10".parse().expect("ip"), "2001:db8:2::20".parse().expect("ip"), 50000).expect("key")
    }

    /// Top-level attributes of an nf_tables message, as (type, payload).
    fn body(msg: &[u8]) -> Vec<(u16, Vec<u8>)> {
        attrs(&msg[NLMSG_HDRLEN + NFGENMSG_LEN..])
            .map(|a| a.expect("attr"))
            .map(|a| (a.ty, a.payload.to_vec()))
            .collect()
    }

    fn nested(payload: &[u8]) -> Vec<(u16, Vec<u8>)> {
        attrs(payload).map(|a| a.expect("attr")).map(|a| (a.ty, a.payload.to_vec())).collect()
    }

    fn find(attrs: &[(u16, Vec<u8>)], ty: u16) -> Option<Vec<u8>> {
        attrs.iter().find(|(t, _)| *t == ty).map(|(_, p)| p.clone())
    }

    /// The element of a one-element message: its attributes.
    fn element(msg: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let list = find(&body(msg), attr::LIST_ELEMENTS).expect("elements");
        let elems = nested(&list);
        assert_eq!(elems.len(), 1, "one element per message");
        assert_eq!(elems[0].0, attr::LIST_ELEM);
        nested(&elems[0].1)
    }

    fn key_of(elem: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let key = find(elem, attr::ELEM_KEY).expect("key");
        find(&nested(&key), attr::DATA_VALUE).expect("data value")
    }

    #[test]
    fn steps_use_the_types_and_flags_nft_uses() {
        let new = libc::NFT_MSG_NEWSETELEM as u16;
        assert_eq!((Step::Upsert.msg_type(), Step::Upsert.flags()), (new, 0x400));
        assert_eq!((Step::Create.msg_type(), Step::Create.flags()), (new, 0x600));
        assert_eq!((Step::Delete.msg_type(), Step::Delete.flags()), (libc::NFT_MSG_DELSETELEM as u16, 0));
        assert_eq!((Step::Destroy.msg_type(), Step::Destroy.flags()), (30, 0));
    }

    #[test]
    fn a_batch_is_begin_one_message_per_step_and_end() {
        let msgs = [
            Message::new(Step::Upsert, SET_PASSIVE4, v4(), 30_000),
            Message::new(Step::Create, SET_ACTIVE6, v6(), 1_500),
            Message::new(Step::Delete, SET_PASSIVE4, v4(), 30_000),
            Message::new(Step::Destroy, SET_ACTIVE6, v6(), 0),
        ];
        let b = build(&target(), 7, &msgs).expect("builds");
        assert_eq!((b.seqs.begin, b.seqs.first, b.seqs.count, b.seqs.end), (7, 8, 4, 12));
        let all: Vec<&[u8]> = messages(&b.bytes).map(|m| m.expect("well formed")).collect();
        assert_eq!(all.len(), 6);
        let h: Vec<Parsed> = all.iter().map(|m| Parsed::parse(m).expect("header")).collect();

        // Begin and end: the only messages that ask for an ACK.
        let ack_req = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        assert_eq!((h[0].ty, h[0].flags, h[0].seq), (libc::NFNL_MSG_BATCH_BEGIN as u16, ack_req, 7));
        assert_eq!((h[5].ty, h[5].flags, h[5].seq), (libc::NFNL_MSG_BATCH_END as u16, ack_req, 12));
        assert_eq!(&all[0][16..20], &[0, 0, 0, 10], "nfgenmsg: AF_UNSPEC, v0, res_id NFNL_SUBSYS_NFTABLES (BE)");

        let req = libc::NLM_F_REQUEST as u16;
        let want = [
            (NFT | libc::NFT_MSG_NEWSETELEM as u16, req | 0x400),
            (NFT | libc::NFT_MSG_NEWSETELEM as u16, req | 0x600),
            (NFT | libc::NFT_MSG_DELSETELEM as u16, req),
            (NFT | 30, req),
        ];
        for (i, (ty, flags)) in want.into_iter().enumerate() {
            let m = all[i + 1];
            assert_eq!((h[i + 1].ty, h[i + 1].flags, h[i + 1].seq), (ty, flags, 8 + i as u32), "message {i}");
            assert_eq!(m[16], libc::NFPROTO_INET as u8, "nfgen family of the table");
            let top = body(m);
            assert_eq!(find(&top, attr::LIST_TABLE).as_deref(), Some(&b"ftp_pinhole\0"[..]));
            assert!(top.iter().all(|(t, _)| *t != 4), "no NFTA_SET_ELEM_LIST_SET_ID");
        }
        assert_eq!(find(&body(all[1]), attr::LIST_SET).as_deref(), Some(&b"passive4\0"[..]));
        assert_eq!(find(&body(all[2]), attr::LIST_SET).as_deref(), Some(&b"active6\0"[..]));

        // Upsert: key, timeout and expiration, both big-endian ms.
        let up = element(all[1]);
        assert_eq!(key_of(&up), v4().bytes().to_vec());
        assert_eq!(key_of(&up), [0xc0, 0, 2, 10, 0xc6, 0x33, 0x64, 20, 0x08, 0x49, 0, 0]);
        assert_eq!(find(&up, attr::ELEM_TIMEOUT), Some(30_000u64.to_be_bytes().to_vec()));
        assert_eq!(find(&up, attr::ELEM_EXPIRATION), Some(30_000u64.to_be_bytes().to_vec()));
        // Create: timeout only.
        let cr = element(all[2]);
        assert_eq!(key_of(&cr), v6().bytes().to_vec());
        assert_eq!(find(&cr, attr::ELEM_TIMEOUT), Some(1_500u64.to_be_bytes().to_vec()));
        assert_eq!(find(&cr, attr::ELEM_EXPIRATION), None);
        // Removals: the key alone.
        for m in [all[3], all[4]] {
            let e = element(m);
            assert_eq!(e.len(), 1, "key only: {e:?}");
        }
    }

    #[test]
    fn an_ip6_table_sends_its_family() {
        let t = Target::new(&TableSpec::new(TableFamily::Ip6, "edge").expect("name")).expect("valid");
        let b = build(&t, 1, &[Message::new(Step::Destroy, SET_ACTIVE6, v6(), 0)]).expect("b");
        let m = messages(&b.bytes).nth(1).expect("message").expect("well formed");
        assert_eq!(m[16], libc::NFPROTO_IPV6 as u8);
        assert_eq!(find(&body(m), attr::LIST_TABLE).as_deref(), Some(&b"edge\0"[..]));
    }

    #[test]
    fn an_empty_batch_is_begin_and_end() {
        let b = build(&target(), 1, &[]).expect("builds");
        assert_eq!(b.bytes.len(), 40);
        assert_eq!((b.seqs.begin, b.seqs.end), (1, 2));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let m = Message::new(Step::Upsert, "inflight4", v4(), 1);
        assert!(build(&target(), 1, &[m]).is_err(), "not a pinhole set");
        let m = Message::new(Step::Upsert, SET_PASSIVE4, v4(), 1);
        assert!(build(&target(), u32::MAX - 1, &[m]).is_err(), "sequence numbers wrap");
        let bad = TableSpec { family: TableFamily::Inet, name: "nul\0name".into() };
        assert!(Target::new(&bad).is_none());
        let long = TableSpec { family: TableFamily::Inet, name: "t".repeat(300) };
        assert!(Target::new(&long).is_none());
    }

    #[test]
    fn the_largest_message_fits_the_scratch_buffer_with_room_to_spare() {
        let long = TableSpec { family: TableFamily::Inet, name: "t".repeat(ffi::MAX_NAME_LEN - 1) };
        let t = Target::new(&long).expect("longest name");
        let b = build(&t, 1, &[Message::new(Step::Upsert, SET_ACTIVE6, v6(), u64::MAX)]).expect("builds");
        assert!(b.bytes.len() - 40 <= ffi::SCRATCH_LEN / 4, "{} bytes", b.bytes.len() - 40);
    }
}
