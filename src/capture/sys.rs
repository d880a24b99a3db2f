//! Every `unsafe` block of the capture module: thin wrappers over the system
//! calls an AF_PACKET socket needs. Each returns `io::Result` built from errno
//! and none panics on what the kernel answers.
//!
//! Descriptors are borrowed (`BorrowedFd`), so none of these can act on a
//! closed or foreign descriptor; memory safety then rests on the pointers and
//! lengths each `SAFETY` comment justifies.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::bpf::Insn;

/// `ETH_P_ALL` as `bind` wants it: every protocol, network byte order.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Control buffer for `recvmsg`: room for a `timespec` and a `tpacket_auxdata`
/// message with their headers (72 bytes on x86_64), as `u64`s so that it is
/// aligned for `cmsghdr`.
type ControlBuffer = [u64; 32];

/// `-1` to the last OS error, anything else to itself.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `size_of::<T>()` as a `socklen_t` (every type here is a few bytes long).
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// A packet socket that receives nothing yet: `socket(AF_PACKET, SOCK_RAW,
/// 0)`. With protocol 0 the kernel hooks it to no interface and no protocol,
/// so nothing is queued before [`bind_all`] names one; by then the filter is
/// attached and no unfiltered packet can slip in.
pub(crate) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; no memory is shared with the kernel.
    let fd =
        check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) })?;
    // SAFETY: `fd` was just returned by socket(2): open, and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The index of interface `name` in the socket's network namespace
/// (`SIOCGIFINDEX`); ENODEV when there is none. `name` must be 1 to 15
/// bytes without NUL (the caller checks).
pub(crate) fn ifindex(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut req = named_ifreq(name)?;
    // SAFETY: SIOCGIFINDEX reads the NUL-terminated name (the zeroed tail
    // terminates it) and writes an int into `req`, which lives across the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req as *mut libc::ifreq) })?;
    // SAFETY: after a successful SIOCGIFINDEX the union holds `ifru_ifindex`.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    u32::try_from(index).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))
}

/// An `ifreq` naming interface `name`; ENODEV for a name no interface can have.
fn named_ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.bytes().any(|b| b == 0) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// The link-layer type (`ARPHRD_*`) of interface `name` (`SIOCGIFHWADDR`).
pub(crate) fn hardware_type(fd: BorrowedFd<'_>, name: &str) -> io::Result<u16> {
    let mut req = named_ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name and writes a
    // sockaddr into `req`, which lives across the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req as *mut libc::ifreq) })?;
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// `setsockopt(fd, level, name, &value)` for an `int` option.
pub(crate) fn set_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: pointer and length describe the local `value`.
    check(unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (&value as *const libc::c_int).cast(), socklen::<libc::c_int>())
    })?;
    Ok(())
}

/// `getsockopt(fd, level, name)` for an `int` option.
pub(crate) fn get_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = socklen::<libc::c_int>();
    // SAFETY: pointer and length describe the local `value`; `len` is in/out.
    check(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut libc::c_int).cast(), &mut len) })?;
    Ok(value)
}

/// Attaches a classic BPF program (`SO_ATTACH_FILTER`); the kernel checks and
/// copies it, and replaces any previous filter atomically.
pub(crate) fn attach_filter(fd: BorrowedFd<'_>, program: &[Insn]) -> io::Result<()> {
    let mut raw: Vec<libc::sock_filter> =
        program.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
    let len = u16::try_from(raw.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog { len, filter: raw.as_mut_ptr() };
    // SAFETY: `prog` points at `raw` (`len` entries); both live across the
    // call, and the kernel copies the program before returning.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            socklen::<libc::sock_fprog>(),
        )
    })?;
    Ok(())
}

/// Binds the socket to one interface, every protocol: reception starts here.
pub(crate) fn bind_all(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = ETH_P_ALL_BE;
    addr.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: pointer and length describe the local `addr`.
    check(unsafe {
        libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_ll).cast(), socklen::<libc::sockaddr_ll>())
    })?;
    Ok(())
}

/// `PACKET_STATISTICS`: (packets, drops) since the previous call; the kernel
/// resets both when read.
pub(crate) fn statistics(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: tpacket_stats is plain old data; all-zero is a valid value.
    let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = socklen::<libc::tpacket_stats>();
    // SAFETY: pointer and length describe the local `stats`; `len` is in/out.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    })?;
    Ok((stats.tp_packets, stats.tp_drops))
}

/// What the kernel said about one received packet, besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes placed in the buffer.
    pub(crate) copied: usize,
    /// Length of the packet as queued (`MSG_TRUNC`: even when the buffer was smaller).
    pub(crate) queued: usize,
    /// Length before the filter cut it (`tp_len`, from `PACKET_AUXDATA`).
    pub(crate) original: Option<u32>,
    /// `sll_pkttype`: `PACKET_HOST`, `PACKET_OUTGOING`, ...
    pub(crate) pkttype: u8,
    /// Kernel receive time (`SCM_TIMESTAMPNS`): seconds and nanoseconds.
    pub(crate) stamp: Option<(i64, i64)>,
    /// VLAN TCI the kernel holds in packet metadata (`PACKET_AUXDATA`).
    pub(crate) vlan_tci: Option<u16>,
}

/// One packet, without waiting: `recvmsg(MSG_DONTWAIT | MSG_TRUNC)` with the
/// sender's address and control messages. `Ok(None)` when nothing is queued.
pub(crate) fn receive(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<Received>> {
    // SAFETY: sockaddr_ll and msghdr are plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut control: ControlBuffer = [0; 32];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = socklen::<libc::sockaddr_ll>();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of::<ControlBuffer>() as _;
    // SAFETY: every pointer in `msg` refers to a live local (`addr`, `iov`
    // which points into `buf`, `control`) with its true length; the kernel
    // writes within those lengths.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        };
    }
    let queued = usize::try_from(n).unwrap_or(0);
    let mut got = Received { copied: queued.min(buf.len()), queued, pkttype: addr.sll_pkttype, ..Received::default() };

    // SAFETY: CMSG_FIRSTHDR reads `msg`, whose control pointer and length
    // (set by the kernel to the bytes it wrote) describe `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null results of CMSG_FIRSTHDR/CMSG_NXTHDR point at a
        // complete header inside `control`; read_unaligned avoids assuming
        // more alignment than the control buffer guarantees.
        let header: libc::cmsghdr = unsafe { cmsg.read_unaligned() };
        // SAFETY: the header is inside `control`, so is its data pointer.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        // Bytes of data this message really carries.
        let carried = (header.cmsg_len as usize).saturating_sub((data as usize).saturating_sub(cmsg as usize));
        match (header.cmsg_level, header.cmsg_type) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if carried >= mem::size_of::<libc::timespec>() => {
                // SAFETY: the message carries a whole timespec (checked above).
                let ts: libc::timespec = unsafe { data.cast::<libc::timespec>().read_unaligned() };
                got.stamp = Some((ts.tv_sec, ts.tv_nsec));
            }
            (libc::SOL_PACKET, libc::PACKET_AUXDATA) if carried >= mem::size_of::<libc::tpacket_auxdata>() => {
                // SAFETY: the message carries a whole tpacket_auxdata (checked above).
                let aux: libc::tpacket_auxdata = unsafe { data.cast::<libc::tpacket_auxdata>().read_unaligned() };
                got.original = Some(aux.tp_len);
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    got.vlan_tci = Some(aux.tp_vlan_tci);
                }
            }
            _ => {}
        }
        // SAFETY: as for CMSG_FIRSTHDR; `cmsg` is a header inside `control`.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(Some(got))
}
