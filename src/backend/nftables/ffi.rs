//! The backend's only unsafe code: libnftnl (`nftnl-sys`) writing nf_tables
//! request messages, and the system calls on the netlink socket.
//!
//! libnftnl writes; it never reads what the kernel sends (replies are parsed
//! in safe code, `reply.rs`). Each function here owns the C objects it
//! allocates and frees them before returning, and copies the message it wrote
//! out of an aligned scratch buffer, so nothing C-owned outlives a call.

use std::ffi::{c_int, c_void, CStr};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nftnl_sys as sys;

/// Longest key libnftnl copies into an element (`NFT_DATA_VALUE_MAXLEN`);
/// libnftnl itself does not check it.
const MAX_KEY_LEN: usize = 64;

/// Longest table or set name the kernel accepts, terminating NUL included
/// (`NFT_NAME_MAXLEN`). Bounds what a message can hold.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// Bytes of the scratch buffer: more than the largest message written here
/// (header 20, two names of at most [`MAX_NAME_LEN`] with their attribute
/// headers 520, one element with a key of at most [`MAX_KEY_LEN`], a timeout
/// and an expiration under 120: about 660 bytes).
pub(crate) const SCRATCH_LEN: usize = 4096;

/// A 4-byte aligned buffer where libnftnl writes one message before it is
/// copied out.
pub(crate) struct Scratch {
    words: Vec<u32>,
}

impl Scratch {
    /// A zeroed scratch buffer.
    pub(crate) fn new() -> Self {
        Scratch { words: vec![0; SCRATCH_LEN / size_of::<u32>()] }
    }

    /// Copies the message libnftnl wrote (its `nlmsg_len` bytes) to `out`.
    fn copy_message(&self, len: usize, out: &mut Vec<u8>) {
        let words = len.div_ceil(size_of::<u32>()).min(self.words.len());
        let bytes = self.words[..words].iter().flat_map(|w| w.to_ne_bytes());
        out.extend(bytes.take(len));
    }
}

/// The netlink header of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    /// `NFT_MSG_*` (libnftnl adds the nf_tables subsystem).
    pub(crate) ty: u16,
    /// `NFPROTO_*` of the table.
    pub(crate) family: u16,
    /// `NLM_F_*` (libnftnl adds `NLM_F_REQUEST`).
    pub(crate) flags: u16,
    /// Sequence number.
    pub(crate) seq: u32,
}

/// One element of a set-element message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElemAttrs<'a> {
    /// `NFTA_SET_ELEM_KEY` bytes.
    pub(crate) key: &'a [u8],
    /// `NFTA_SET_ELEM_TIMEOUT`, milliseconds.
    pub(crate) timeout_ms: Option<u64>,
    /// `NFTA_SET_ELEM_EXPIRATION`, milliseconds.
    pub(crate) expiration_ms: Option<u64>,
}

/// Checks what libnftnl will copy without bounds of its own.
fn check_lengths(names: &[&CStr], key: Option<&[u8]>) -> io::Result<()> {
    if let Some(n) = names.iter().find(|n| n.to_bytes_with_nul().len() > MAX_NAME_LEN) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("name {n:?} is too long for nf_tables")));
    }
    match key {
        Some(k) if k.len() > MAX_KEY_LEN => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a set key of {} bytes is longer than {MAX_KEY_LEN}", k.len()),
        )),
        _ => Ok(()),
    }
}

/// Appends one set-element message to `out`: table, set and, if given, one
/// element (`NEWSETELEM`, `DELSETELEM`, `DESTROYSETELEM`; a `GETSETELEM` dump
/// request has none).
pub(crate) fn write_set_elems(
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
    hdr: Header,
    table: &CStr,
    set: &CStr,
    elem: Option<ElemAttrs<'_>>,
) -> io::Result<()> {
    check_lengths(&[table, set], elem.map(|e| e.key))?;
    // SAFETY: `nftnl_set_alloc`/`nftnl_set_elem_alloc` results are checked for
    // NULL; the strings are NUL-terminated and outlive the calls (libnftnl copies
    // them); the key pointer and length describe a live slice of at most
    // MAX_KEY_LEN bytes, which libnftnl copies into the element. Once added, the
    // element is owned by the set, and `nftnl_set_free` frees both on every path.
    // `scratch` is 4-byte aligned and SCRATCH_LEN bytes long, more than a header,
    // two names of at most MAX_NAME_LEN and one element (checked above); the header
    // pointer returned points into it and is read before `scratch` is touched again.
    let len = unsafe {
        let s = sys::nftnl_set_alloc();
        if s.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, u32::from(hdr.family));
        sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, set.as_ptr());
        if let Some(e) = elem {
            let el = sys::nftnl_set_elem_alloc();
            if el.is_null() {
                sys::nftnl_set_free(s);
                return Err(io::Error::from(io::ErrorKind::OutOfMemory));
            }
            sys::nftnl_set_elem_set(
                el,
                sys::NFTNL_SET_ELEM_KEY as u16,
                e.key.as_ptr().cast::<c_void>(),
                e.key.len() as u32,
            );
            if let Some(ms) = e.timeout_ms {
                sys::nftnl_set_elem_set_u64(el, sys::NFTNL_SET_ELEM_TIMEOUT as u16, ms);
            }
            if let Some(ms) = e.expiration_ms {
                sys::nftnl_set_elem_set_u64(el, sys::NFTNL_SET_ELEM_EXPIRATION as u16, ms);
            }
            sys::nftnl_set_elem_add(s, el);
        }
        let nlh = sys::nftnl_nlmsg_build_hdr(scratch.words.as_mut_ptr().cast(), hdr.ty, hdr.family, hdr.flags, hdr.seq);
        sys::nftnl_set_elems_nlmsg_build_payload(nlh, s);
        sys::nftnl_set_free(s);
        (*nlh).nlmsg_len as usize
    };
    scratch.copy_message(len, out);
    Ok(())
}

/// Appends a `GETTABLE` request for one table to `out`.
pub(crate) fn write_get_table(out: &mut Vec<u8>, scratch: &mut Scratch, hdr: Header, table: &CStr) -> io::Result<()> {
    check_lengths(&[table], None)?;
    // SAFETY: as in `write_set_elems`: the table object is checked for NULL and
    // freed; the name outlives the call and is copied; the scratch buffer is
    // aligned and large enough for a header and one name.
    let len = unsafe {
        let t = sys::nftnl_table_alloc();
        if t.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        sys::nftnl_table_set_u32(t, sys::NFTNL_TABLE_FAMILY as u16, u32::from(hdr.family));
        sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, table.as_ptr());
        let nlh = sys::nftnl_nlmsg_build_hdr(scratch.words.as_mut_ptr().cast(), hdr.ty, hdr.family, hdr.flags, hdr.seq);
        sys::nftnl_table_nlmsg_build_payload(nlh, t);
        sys::nftnl_table_free(t);
        (*nlh).nlmsg_len as usize
    };
    scratch.copy_message(len, out);
    Ok(())
}

/// Appends a `GETSET` request for one set to `out`.
pub(crate) fn write_get_set(
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
    hdr: Header,
    table: &CStr,
    set: &CStr,
) -> io::Result<()> {
    check_lengths(&[table, set], None)?;
    // SAFETY: as in `write_set_elems`: the set object is checked for NULL and
    // freed; the names outlive the call and are copied; the scratch buffer is
    // aligned and large enough for a header and two names.
    let len = unsafe {
        let s = sys::nftnl_set_alloc();
        if s.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, u32::from(hdr.family));
        sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, set.as_ptr());
        let nlh = sys::nftnl_nlmsg_build_hdr(scratch.words.as_mut_ptr().cast(), hdr.ty, hdr.family, hdr.flags, hdr.seq);
        sys::nftnl_set_nlmsg_build_payload(nlh, s);
        sys::nftnl_set_free(s);
        (*nlh).nlmsg_len as usize
    };
    scratch.copy_message(len, out);
    Ok(())
}

/// The result of a system call that returns -1 and sets errno on failure.
fn check(rc: isize) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// A `NETLINK_NETFILTER` socket, bound to a port id the kernel picks.
pub(crate) fn netfilter_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call; on success the descriptor is new and ours.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
    check(fd as isize)?;
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all zero is "any port id, no groups".
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `addr` is a live sockaddr_nl and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    check(rc as isize)?;
    Ok(fd)
}

/// `setsockopt` of an `int` option.
pub(crate) fn set_int_option(fd: BorrowedFd<'_>, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: the value pointer and length describe a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<c_void>(),
            size_of::<c_int>() as libc::socklen_t,
        )
    };
    check(rc as isize).map(|_| ())
}

/// `getsockopt` of an `int` option.
pub(crate) fn int_option(fd: BorrowedFd<'_>, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: value and len point to live locals; the kernel writes at most `len` bytes.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut value).cast::<c_void>(), &mut len) };
    check(rc as isize).map(|_| value)
}

/// Sends `bytes` as one datagram to the kernel; the number of bytes sent.
pub(crate) fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a live slice that the kernel only reads.
    let rc = unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast::<c_void>(), bytes.len(), 0) };
    check(rc)
}

/// Receives one queued datagram into `buf` without waiting (`WouldBlock`
/// when none is queued). Returns the datagram's full length, which exceeds
/// `buf.len()` when it was truncated.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a live, writable slice; with
    // MSG_TRUNC the kernel still writes at most `buf.len()` bytes.
    let rc = unsafe {
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast::<c_void>(), buf.len(), libc::MSG_TRUNC | libc::MSG_DONTWAIT)
    };
    check(rc)
}

/// Waits up to `timeout_ms` for `fd` to have something to read (an error
/// such as ENOBUFS counts). `Ok(false)` on timeout. A signal (SIGHUP for a
/// log rotation) does not cut the wait short: poll is resumed with what is
/// left of the timeout.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: c_int) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms.max(0) as u64);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let left_ms = c_int::try_from(left.as_millis()).unwrap_or(c_int::MAX);
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, left_ms) };
        match check(rc as isize) {
            Ok(n) => return Ok(n > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR) != 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !left.is_zero() => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}
