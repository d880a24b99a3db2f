//! Requests sent on their own, outside a batch: does the table exist, what
//! is this set, and a dump of a set's elements. Pure functions of the target.

use std::io;

use super::batch::Target;
use super::ffi::{self, Header, Scratch};

/// The `NFT_MSG_*` and `NLM_F_*` of a request.
fn header(ty: i32, flags: i32, family: u16, seq: u32) -> Header {
    Header { ty: ty as u16, family, flags: flags as u16, seq }
}

/// The C name of `set`, or an error if it is not a pinhole set.
fn set_name<'t>(target: &'t Target, set: &str) -> io::Result<&'t std::ffi::CString> {
    target.set(set).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{set:?} is not a pinhole set")))
}

/// `GETTABLE` for the target's table, acknowledged: the table, then an ACK
/// (or ENOENT).
pub(crate) fn get_table(target: &Target, seq: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let hdr = header(libc::NFT_MSG_GETTABLE, libc::NLM_F_ACK, target.family, seq);
    ffi::write_get_table(&mut out, &mut Scratch::new(), hdr, &target.table)?;
    Ok(out)
}

/// `GETSET` for one set, acknowledged: the set, then an ACK (or ENOENT).
pub(crate) fn get_set(target: &Target, set: &str, seq: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let hdr = header(libc::NFT_MSG_GETSET, libc::NLM_F_ACK, target.family, seq);
    ffi::write_get_set(&mut out, &mut Scratch::new(), hdr, &target.table, set_name(target, set)?)?;
    Ok(out)
}

/// `GETSETELEM` dump of one set: `NEWSETELEM` messages, then `NLMSG_DONE`.
pub(crate) fn dump_elements(target: &Target, set: &str, seq: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let hdr = header(libc::NFT_MSG_GETSETELEM, libc::NLM_F_DUMP, target.family, seq);
    ffi::write_set_elems(&mut out, &mut Scratch::new(), hdr, &target.table, set_name(target, set)?, None)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nftables::reply::{attr, attrs, Header as Parsed, NFGENMSG_LEN, NLMSG_HDRLEN};
    use crate::backend::{TableFamily, TableSpec, SET_PASSIVE6};

    const NFT: u16 = (libc::NFNL_SUBSYS_NFTABLES as u16) << 8;

    fn target() -> Target {
        Target::new(&TableSpec::new(TableFamily::Ip6, "edge").expect("name")).expect("valid")
    }

    fn top(msg: &[u8]) -> Vec<(u16, Vec<u8>)> {
        attrs(&msg[NLMSG_HDRLEN + NFGENMSG_LEN..])
            .map(|a| a.expect("attr"))
            .map(|a| (a.ty, a.payload.to_vec()))
            .collect()
    }

    #[test]
    fn a_table_request_names_the_table_and_asks_for_an_ack() {
        let m = get_table(&target(), 5).expect("builds");
        let h = Parsed::parse(&m).expect("header");
        assert_eq!((h.len, h.ty, h.seq), (m.len(), NFT | libc::NFT_MSG_GETTABLE as u16, 5));
        assert_eq!(h.flags, (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16);
        assert_eq!(m[16], libc::NFPROTO_IPV6 as u8);
        assert_eq!(top(&m), [(1, b"edge\0".to_vec())], "NFTA_TABLE_NAME only");
    }

    #[test]
    fn a_set_request_names_table_and_set() {
        let m = get_set(&target(), SET_PASSIVE6, 6).expect("builds");
        let h = Parsed::parse(&m).expect("header");
        assert_eq!((h.ty, h.seq), (NFT | libc::NFT_MSG_GETSET as u16, 6));
        let a = top(&m);
        assert!(a.contains(&(1, b"edge\0".to_vec())), "NFTA_SET_TABLE: {a:?}");
        assert!(a.contains(&(2, b"passive6\0".to_vec())), "NFTA_SET_NAME: {a:?}");
    }

    #[test]
    fn a_dump_request_has_no_elements() {
        let m = dump_elements(&target(), SET_PASSIVE6, 0x8000_0001).expect("builds");
        let h = Parsed::parse(&m).expect("header");
        assert_eq!(
            (h.ty, h.flags),
            (NFT | libc::NFT_MSG_GETSETELEM as u16, (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16)
        );
        let a = top(&m);
        assert!(a.iter().all(|(t, _)| *t != attr::LIST_ELEMENTS));
        assert!(a.contains(&(attr::LIST_SET, b"passive6\0".to_vec())));
        assert!(dump_elements(&target(), "other", 1).is_err());
    }
}
