//! Any bytes as a capture file: the reader returns frames or an error, never
//! panics, and never returns more bytes than the file holds.
#![no_main]

use ftp_pinhole::pcap::CaptureReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::new(std::io::Cursor::new(data)) else { return };
    let mut total = 0usize;
    while let Ok(Some(frame)) = reader.next_frame() {
        total += frame.data.len();
        assert!(total <= data.len());
    }
});
