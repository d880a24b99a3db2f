//! Reading pcap and pcapng capture files (the offline source).
//!
//! A small streaming reader of our own rather than a crate's: every error
//! names the byte offset where the file went wrong, timestamps honour the
//! pcapng `if_tsresol`/`if_tsoffset` options, and nothing a file says can
//! make it allocate more than one bounded record or panic.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

use crate::decode::LinkType;
use crate::time::Timestamp;

/// Largest record accepted (pcap's traditional maximum snap length, with room
/// for pcapng block overhead). Anything larger is corruption.
const MAX_RECORD: usize = 256 * 1024 + 64;

/// Most pcapng interfaces in one section (each is a small record, but a
/// crafted file could declare millions).
const MAX_INTERFACES: usize = 65_536;

/// What went wrong reading a capture.
#[derive(Debug, Error)]
pub enum PcapError {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    /// Not a pcap or pcapng file.
    #[error("not a pcap or pcapng file (magic number {0:#010x})")]
    NotACapture(u32),
    /// The file is inconsistent at `offset`.
    #[error("corrupt at byte offset {offset}: {what}")]
    Corrupt {
        /// Byte offset of the record or block that is wrong.
        offset: u64,
        /// What is wrong with it.
        what: String,
    },
    /// The file ends inside a record.
    #[error("cut short inside the record at byte offset {offset}")]
    CutShort {
        /// Byte offset of the incomplete record.
        offset: u64,
    },
}

/// One captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// 1-based number of the frame in the file (as tshark counts).
    pub number: u64,
    /// Capture time.
    pub at: Timestamp,
    /// The frame's link type, or the unsupported `LINKTYPE_*` number.
    pub link: Result<LinkType, u32>,
    /// The captured bytes (maybe fewer than were on the wire).
    pub data: &'a [u8],
    /// The length on the wire.
    pub wire_len: u32,
}

#[derive(Debug, Clone, Copy)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }
    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
}

/// Read a fixed-size field at `at` of a checked slice.
fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// A pcapng interface: its link type and timestamp units.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Result<LinkType, u32>,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

#[derive(Debug)]
enum Format {
    Pcap { endian: Endian, link: Result<LinkType, u32>, nanos: bool },
    PcapNg { endian: Endian, interfaces: Vec<Interface> },
}

/// A capture file, read frame by frame.
#[derive(Debug)]
pub struct CaptureReader<R> {
    source: R,
    format: Format,
    /// Offset of the next unread byte.
    offset: u64,
    /// Frames returned so far.
    frames: u64,
    /// The current record.
    buf: Vec<u8>,
}

impl CaptureReader<BufReader<File>> {
    /// Open a pcap or pcapng file.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        CaptureReader::new(BufReader::with_capacity(256 * 1024, File::open(path)?))
    }
}

const PCAP_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_NANOS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;

impl<R: Read> CaptureReader<R> {
    /// Read the file header of `source`.
    pub fn new(mut source: R) -> Result<Self, PcapError> {
        let mut magic = [0u8; 4];
        read_exact_or(&mut source, &mut magic, 0)?;
        let le = u32::from_le_bytes(magic);
        let mut reader = CaptureReader {
            source,
            format: Format::PcapNg { endian: Endian::Little, interfaces: Vec::new() },
            offset: 4,
            frames: 0,
            buf: Vec::new(),
        };
        if le == PCAPNG_SHB {
            reader.read_section_header(0)?;
            return Ok(reader);
        }
        let (endian, nanos) = match (le, u32::from_be_bytes(magic)) {
            (PCAP_MICROS, _) => (Endian::Little, false),
            (PCAP_NANOS, _) => (Endian::Little, true),
            (_, PCAP_MICROS) => (Endian::Big, false),
            (_, PCAP_NANOS) => (Endian::Big, true),
            _ => return Err(PcapError::NotACapture(u32::from_be_bytes(magic))),
        };
        let mut rest = [0u8; 20];
        reader.read_exact(&mut rest, 0)?;
        // The link type is the low 16 bits; the top bits may carry FCS info.
        let network = endian.u32(field(&rest, 16)) & 0xffff;
        let link = LinkType::from_linktype(network).ok_or(network);
        reader.format = Format::Pcap { endian, link, nanos };
        Ok(reader)
    }

    fn read_exact(&mut self, buf: &mut [u8], record_start: u64) -> Result<(), PcapError> {
        read_exact_or(&mut self.source, buf, record_start)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Fill `self.buf` with `len` bytes of the record starting at `start`.
    fn read_body(&mut self, len: usize, start: u64) -> Result<(), PcapError> {
        self.buf.clear();
        self.buf.resize(len, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.read_exact(&mut buf, start);
        self.buf = buf;
        result
    }

    /// The next frame, or `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, PcapError> {
        loop {
            let start = self.offset;
            let found = match self.format {
                Format::Pcap { endian, link, nanos } => self.next_pcap_record(start, endian, link, nanos)?,
                Format::PcapNg { endian, .. } => self.next_pcapng_block(start, endian)?,
            };
            match found {
                Record::End => return Ok(None),
                Record::Skip => continue,
                Record::Frame { at, link, caplen, wire_len, data_at } => {
                    self.frames += 1;
                    let data = self.buf.get(data_at..data_at + caplen).unwrap_or(&[]);
                    return Ok(Some(Frame { number: self.frames, at, link, data, wire_len }));
                }
            }
        }
    }

    fn next_pcap_record(
        &mut self,
        start: u64,
        endian: Endian,
        link: Result<LinkType, u32>,
        nanos: bool,
    ) -> Result<Record, PcapError> {
        let mut header = [0u8; 16];
        match read_or_eof(&mut self.source, &mut header) {
            Ok(0) => return Ok(Record::End),
            Ok(16) => self.offset += 16,
            Ok(_) => return Err(PcapError::CutShort { offset: start }),
            Err(e) => return Err(PcapError::Io(e)),
        }
        let secs = u64::from(endian.u32(field(&header, 0)));
        let frac = u64::from(endian.u32(field(&header, 4)));
        let caplen = endian.u32(field(&header, 8)) as usize;
        let wire_len = endian.u32(field(&header, 12));
        if caplen > MAX_RECORD {
            return Err(PcapError::Corrupt { offset: start, what: format!("record length {caplen} is implausible") });
        }
        let sub_nanos = if nanos { frac } else { frac.saturating_mul(1000) };
        if sub_nanos >= 1_000_000_000 {
            return Err(PcapError::Corrupt { offset: start, what: format!("fraction of a second {frac} too large") });
        }
        self.read_body(caplen, start)?;
        let at = Timestamp::from_unix_nanos(secs.saturating_mul(1_000_000_000).saturating_add(sub_nanos));
        Ok(Record::Frame { at, link, caplen, wire_len, data_at: 0 })
    }

    fn next_pcapng_block(&mut self, start: u64, endian: Endian) -> Result<Record, PcapError> {
        let mut head = [0u8; 8];
        match read_or_eof(&mut self.source, &mut head) {
            Ok(0) => return Ok(Record::End),
            Ok(8) => self.offset += 8,
            Ok(_) => return Err(PcapError::CutShort { offset: start }),
            Err(e) => return Err(PcapError::Io(e)),
        }
        let block_type = endian.u32(field(&head, 0));
        if block_type == PCAPNG_SHB {
            // A new section: its byte order may differ; re-read its header.
            self.buf.clear();
            self.buf.extend_from_slice(&head[4..]);
            self.read_section_header(start)?;
            return Ok(Record::Skip);
        }
        let total = endian.u32(field(&head, 4)) as usize;
        if total < 12 || total % 4 != 0 || total > MAX_RECORD {
            return Err(PcapError::Corrupt { offset: start, what: format!("block length {total} is invalid") });
        }
        // Body plus the trailing copy of the length.
        self.read_body(total - 8, start)?;
        let body_len = total - 12;
        let trailer = endian.u32(field(&self.buf, body_len)) as usize;
        if trailer != total {
            return Err(PcapError::Corrupt {
                offset: start,
                what: format!("block length {total} and trailing length {trailer} differ"),
            });
        }
        let corrupt = |what: &str| PcapError::Corrupt { offset: start, what: what.to_string() };
        match block_type {
            1 => {
                let iface =
                    parse_interface(&self.buf[..body_len], endian).ok_or_else(|| corrupt("short interface block"))?;
                if let Format::PcapNg { interfaces, .. } = &mut self.format {
                    if interfaces.len() >= MAX_INTERFACES {
                        return Err(corrupt("more interfaces than any capture has"));
                    }
                    interfaces.push(iface);
                }
                Ok(Record::Skip)
            }
            6 | 2 => {
                // Enhanced (6) and obsolete (2) packet blocks share the layout
                // but for the interface id's width.
                if body_len < 20 {
                    return Err(corrupt("short packet block"));
                }
                let iface_id = if block_type == 6 {
                    endian.u32(field(&self.buf, 0)) as usize
                } else {
                    usize::from(endian.u16(field(&self.buf, 0)))
                };
                let ts =
                    (u64::from(endian.u32(field(&self.buf, 4))) << 32) | u64::from(endian.u32(field(&self.buf, 8)));
                let caplen = endian.u32(field(&self.buf, 12)) as usize;
                let wire_len = endian.u32(field(&self.buf, 16));
                if caplen > body_len - 20 {
                    return Err(corrupt("packet longer than its block"));
                }
                let iface = self.interface(iface_id).ok_or_else(|| corrupt("packet of an undeclared interface"))?;
                let at = iface_timestamp(iface, ts);
                Ok(Record::Frame { at, link: iface.link, caplen, wire_len, data_at: 20 })
            }
            3 => {
                // Simple packet block: interface 0, no timestamp.
                if body_len < 4 {
                    return Err(corrupt("short simple packet block"));
                }
                let wire_len = endian.u32(field(&self.buf, 0));
                let caplen = (wire_len as usize).min(body_len - 4);
                let iface = self.interface(0).ok_or_else(|| corrupt("packet of an undeclared interface"))?;
                Ok(Record::Frame { at: Timestamp::EPOCH, link: iface.link, caplen, wire_len, data_at: 4 })
            }
            _ => Ok(Record::Skip), // statistics, name resolution, custom...
        }
    }

    fn interface(&self, id: usize) -> Option<Interface> {
        match &self.format {
            Format::PcapNg { interfaces, .. } => interfaces.get(id).copied(),
            Format::Pcap { .. } => None,
        }
    }

    /// Read a section header block whose type word (at `start`) is consumed.
    /// `self.buf` may hold bytes of it already read.
    fn read_section_header(&mut self, start: u64) -> Result<(), PcapError> {
        let mut fixed = [0u8; 8]; // total length, byte-order magic
        let have = self.buf.len().min(4);
        fixed[..have].copy_from_slice(&self.buf[..have]);
        let mut rest = [0u8; 8];
        self.read_exact(&mut rest[..8 - have], start)?;
        fixed[have..].copy_from_slice(&rest[..8 - have]);
        let endian = match (u32::from_le_bytes(field(&fixed, 4)), u32::from_be_bytes(field(&fixed, 4))) {
            (PCAPNG_BYTE_ORDER, _) => Endian::Little,
            (_, PCAPNG_BYTE_ORDER) => Endian::Big,
            _ => return Err(PcapError::Corrupt { offset: start, what: "bad pcapng byte-order magic".into() }),
        };
        let total = endian.u32(field(&fixed, 0)) as usize;
        if total < 28 || total % 4 != 0 || total > MAX_RECORD {
            return Err(PcapError::Corrupt {
                offset: start,
                what: format!("section header length {total} is invalid"),
            });
        }
        // Skip the rest: version, section length, options, trailing length.
        self.read_body(total - 12, start)?;
        self.format = Format::PcapNg { endian, interfaces: Vec::new() };
        Ok(())
    }
}

enum Record {
    End,
    Skip,
    Frame { at: Timestamp, link: Result<LinkType, u32>, caplen: usize, wire_len: u32, data_at: usize },
}

/// Parse an interface description block body.
fn parse_interface(body: &[u8], endian: Endian) -> Option<Interface> {
    if body.len() < 8 {
        return None;
    }
    let linktype = u32::from(endian.u16(field(body, 0)));
    let mut iface =
        Interface { link: LinkType::from_linktype(linktype).ok_or(linktype), units_per_sec: 1_000_000, offset_secs: 0 };
    let mut at = 8;
    while at + 4 <= body.len() {
        let code = endian.u16(field(body, at));
        let len = usize::from(endian.u16(field(body, at + 2)));
        let value = body.get(at + 4..at + 4 + len)?;
        match (code, value) {
            (0, _) => break, // opt_endofopt
            (9, [res]) => {
                // if_tsresol: 10^-n, or 2^-n with the top bit set.
                let units = if res & 0x80 == 0 {
                    10u64.checked_pow(u32::from(*res))
                } else {
                    1u64.checked_shl(u32::from(res & 0x7f))
                };
                iface.units_per_sec = units.filter(|&u| u > 0)?;
            }
            (14, v) if v.len() == 8 => {
                let raw: [u8; 8] = field(v, 0);
                iface.offset_secs = match endian {
                    Endian::Little => i64::from_le_bytes(raw),
                    Endian::Big => i64::from_be_bytes(raw),
                };
            }
            _ => {}
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Some(iface)
}

/// A pcapng timestamp in interface units, as a Unix timestamp.
fn iface_timestamp(iface: Interface, ts: u64) -> Timestamp {
    let secs = ts / iface.units_per_sec;
    let frac = ts % iface.units_per_sec;
    let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(iface.units_per_sec)) as u64;
    let secs = secs.saturating_add_signed(iface.offset_secs);
    Timestamp::from_unix_duration(Duration::new(secs, nanos as u32))
}

/// `read_exact`, with an early end reported as a cut-short record.
fn read_exact_or(source: &mut impl Read, buf: &mut [u8], record_start: u64) -> Result<(), PcapError> {
    match read_or_eof(source, buf) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err(PcapError::CutShort { offset: record_start }),
        Err(e) => Err(PcapError::Io(e)),
    }
}

/// Fill `buf` as far as the source goes; returns how much was read.
fn read_or_eof(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
