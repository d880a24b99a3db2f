use std::io::Cursor;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::*;

/// A frame's number, time, link type and bytes.
type Owned = (u64, Timestamp, Result<LinkType, u32>, Vec<u8>);

fn frames_of(bytes: Vec<u8>) -> Result<Vec<Owned>, PcapError> {
    let mut r = CaptureReader::new(Cursor::new(bytes))?;
    let mut out = Vec::new();
    while let Some(f) = r.next_frame()? {
        out.push((f.number, f.at, f.link, f.data.to_vec()));
    }
    Ok(out)
}

fn pcap_bytes(endianness: Endianness, ts_resolution: TsResolution, datalink: DataLink) -> Vec<u8> {
    let header = PcapHeader { endianness, ts_resolution, datalink, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(Vec::new(), header).expect("in-memory writer");
    for (i, data) in [&b"first"[..], b"second"].iter().enumerate() {
        let ts = Duration::new(1_700_000_000 + i as u64, 123_456_000);
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, data)).expect("write");
    }
    w.into_writer()
}

#[test]
fn pcap_in_both_byte_orders_and_resolutions() -> Result<(), PcapError> {
    for endian in [Endianness::Little, Endianness::Big] {
        for res in [TsResolution::MicroSecond, TsResolution::NanoSecond] {
            let frames = frames_of(pcap_bytes(endian, res, DataLink::ETHERNET))?;
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[0].0, 1);
            assert_eq!(frames[1].1, Timestamp::from_unix_nanos(1_700_000_001_123_456_000));
            assert_eq!(frames[1].2, Ok(LinkType::Ethernet));
            assert_eq!(frames[1].3, b"second");
        }
    }
    Ok(())
}

#[test]
fn unsupported_link_types_are_reported_not_refused() -> Result<(), PcapError> {
    let frames = frames_of(pcap_bytes(Endianness::Little, TsResolution::MicroSecond, DataLink::IEEE802_11))?;
    assert_eq!(frames[0].2, Err(105));
    Ok(())
}

fn pcapng_bytes(tsresol: Option<u8>) -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).expect("in-memory writer");
    let options = tsresol.map(|r| vec![InterfaceDescriptionOption::IfTsResol(r)]).unwrap_or_default();
    let iface = InterfaceDescriptionBlock { linktype: DataLink::LINUX_SLL2, snaplen: 0, options };
    w.write_pcapng_block(iface).expect("write");
    // pcap-file stores the raw timestamp count as a Duration of nanoseconds.
    let raw_units = 1_700_000_000_250u64; // in ms if tsresol=3
    let epb = EnhancedPacketBlock {
        interface_id: 0,
        timestamp: Duration::from_nanos(raw_units),
        original_len: 3,
        data: std::borrow::Cow::Borrowed(b"abc"),
        options: vec![],
    };
    w.write_pcapng_block(epb).expect("write");
    w.into_inner()
}

#[test]
fn pcapng_timestamps_follow_if_tsresol() -> Result<(), PcapError> {
    let frames = frames_of(pcapng_bytes(Some(3)))?;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1, Timestamp::from_unix_nanos(1_700_000_000_250_000_000));
    assert_eq!(frames[0].2, Ok(LinkType::LinuxSll2));
    assert_eq!(frames[0].3, b"abc");
    // Default resolution: microseconds.
    let frames = frames_of(pcapng_bytes(None))?;
    assert_eq!(frames[0].1, Timestamp::from_unix_nanos(1_700_000_000_250_000));
    Ok(())
}

#[test]
fn errors_name_the_offset() {
    let good = pcap_bytes(Endianness::Little, TsResolution::MicroSecond, DataLink::ETHERNET);
    // Cut inside the second record's data.
    let cut = good[..good.len() - 2].to_vec();
    let err = frames_of(cut).expect_err("cut file");
    let second_record = 24 + 16 + 5;
    assert!(matches!(err, PcapError::CutShort { offset } if offset == second_record as u64), "{err}");
    // An absurd record length.
    let mut bad = good.clone();
    bad[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = frames_of(bad).expect_err("corrupt length");
    assert!(matches!(err, PcapError::Corrupt { offset: 24, .. }), "{err}");
    assert!(err.to_string().contains("offset 24"));
    // Not a capture at all.
    let err = frames_of(b"PK\x03\x04 zip file".to_vec()).expect_err("not a capture");
    assert!(matches!(err, PcapError::NotACapture(0x504b_0304)), "{err}");
    // Empty and header-only files.
    assert!(matches!(frames_of(Vec::new()), Err(PcapError::CutShort { offset: 0 })));
    assert_eq!(frames_of(good[..24].to_vec()).map(|f| f.len()).ok(), Some(0));
}

#[test]
fn pcapng_block_errors_name_the_offset() {
    let good = pcapng_bytes(Some(6));
    let shb_len = u32::from_le_bytes(good[4..8].try_into().expect("4 bytes")) as usize;
    let idb_len = u32::from_le_bytes(good[shb_len + 4..shb_len + 8].try_into().expect("4 bytes")) as usize;
    let epb_at = shb_len + idb_len;
    let mut bad = good.clone();
    let last = bad.len() - 4;
    bad[last..].copy_from_slice(&7u32.to_le_bytes()); // trailing length differs
    let err = frames_of(bad).expect_err("corrupt trailer");
    assert!(matches!(err, PcapError::Corrupt { offset, .. } if offset == epb_at as u64), "{err}");
    let err = frames_of(good[..good.len() - 1].to_vec()).expect_err("cut");
    assert!(matches!(err, PcapError::CutShort { offset } if offset == epb_at as u64), "{err}");
}

#[test]
fn every_prefix_and_bit_flip_of_a_file_is_an_error_or_frames_never_a_panic() {
    let files = [pcap_bytes(Endianness::Big, TsResolution::NanoSecond, DataLink::ETHERNET), pcapng_bytes(Some(9))];
    for file in files {
        for len in 0..file.len() {
            let result = frames_of(file[..len].to_vec());
            assert!(result.is_err() || result.is_ok_and(|f| f.len() <= 2));
        }
        for i in 0..file.len() {
            let mut flipped = file.clone();
            flipped[i] ^= 0xff;
            if let Ok(frames) = frames_of(flipped) {
                assert!(frames.len() <= 2);
            }
        }
    }
}

#[test]
fn public_capture_frames_and_times_match_tshark() -> Result<(), PcapError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/public");
    let mut r = CaptureReader::open(&dir.join("zeek-ipv4.pcap"))?;
    let first = r.next_frame()?.map(|f| (f.number, f.at, f.data.len(), f.link));
    assert_eq!(first, Some((1, Timestamp::from_unix_nanos(1_329_843_161_968_492_000), 74, Ok(LinkType::Ethernet))));
    let mut last = 1;
    while let Some(f) = r.next_frame()? {
        last = f.number;
    }
    assert_eq!(last, 95); // capinfos: 95 packets
    let mut r = CaptureReader::open(&dir.join("suricata-ftp-mode-02.pcap"))?;
    let first = r.next_frame()?.map(|f| (f.at, f.link));
    assert_eq!(first, Some((Timestamp::from_unix_nanos(1_612_510_490_000_000_000), Ok(LinkType::Null))));
    Ok(())
}
