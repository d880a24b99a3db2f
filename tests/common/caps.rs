//! Dropping capabilities on the current thread only (capabilities are per
//! thread: the rest of the test process keeps them), to test what the
//! program says without them.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

/// Bit of CAP_NET_ADMIN (linux/capability.h).
pub(crate) const CAP_NET_ADMIN: u32 = 12;
/// Bit of CAP_NET_RAW.
pub(crate) const CAP_NET_RAW: u32 = 13;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two `CapData`, 64 capability bits.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Keep in the calling thread's effective set only the capabilities `keep`,
/// and check that the kernel agrees.
pub(crate) fn keep_only_effective(keep: &[u32]) {
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are live and of the layout version 3 expects
    // (one header, two data structs); capget writes only into them.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    let mask = keep.iter().fold(0u32, |m, c| m | 1 << c);
    data[0].effective &= mask;
    data[1].effective = 0;
    // SAFETY: as above; capset only reads them; pid 0 is this thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
    let eff = status.lines().find(|l| l.starts_with("CapEff:")).expect("CapEff");
    let bits = u64::from_str_radix(eff.split_whitespace().nth(1).expect("bits"), 16).expect("hex");
    assert_eq!(bits & !u64::from(mask), 0, "capabilities still effective: {eff}");
}
