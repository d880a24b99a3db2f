//! Write starting corpora for the fuzz targets from real captures:
//! `cargo run --release --bin seeds -- ../tests/data/public corpus`.
//!
//! - capture_file: the capture files themselves;
//! - decode: each frame;
//! - pipeline: each capture as length-prefixed Ethernet frames;
//! - ftp_session: each control connection's payloads, tagged by direction.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use ftp_pinhole::decode::{decode, LinkType};
use ftp_pinhole::pcap::CaptureReader;
use ftp_pinhole::track::ControlPorts;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dst)) = (args.next(), args.next()) else {
        return Err("usage: seeds CAPTURE_DIR CORPUS_DIR".into());
    };
    let dst = PathBuf::from(dst);
    for target in ["capture_file", "decode", "pipeline", "ftp_session"] {
        fs::create_dir_all(dst.join(target))?;
    }
    let ports = ControlPorts::default();
    let mut files: Vec<PathBuf> = fs::read_dir(&src)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"));
    files.sort();
    for path in &files {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        fs::copy(path, dst.join("capture_file").join(&name))?;
        let mut reader = CaptureReader::open(path)?;
        let mut pipeline_seed = Vec::new();
        let mut sessions: HashMap<(std::net::SocketAddr, std::net::SocketAddr), Vec<u8>> = HashMap::new();
        while let Some(frame) = reader.next_frame()? {
            let Ok(link) = frame.link else { continue };
            if frame.number <= 64 {
                write(&dst.join("decode").join(format!("{name}-{}", frame.number)), frame.data)?;
            }
            if link == LinkType::Ethernet && frame.data.len() <= usize::from(u16::MAX) && pipeline_seed.len() < 64 * 1024 {
                pipeline_seed.extend_from_slice(&(frame.data.len() as u16).to_be_bytes());
                pipeline_seed.extend_from_slice(frame.data);
            }
            let Ok(seg) = decode(link, frame.data) else { continue };
            if seg.payload.is_empty() {
                continue;
            }
            let (key, dir) = if ports.contains(seg.dst.port()) {
                ((seg.src, seg.dst), 0u8)
            } else if ports.contains(seg.src.port()) {
                ((seg.dst, seg.src), 1u8)
            } else {
                continue;
            };
            let seed = sessions.entry(key).or_default();
            for chunk in seg.payload.chunks(127) {
                if seed.len() < 16 * 1024 {
                    seed.push(dir | ((chunk.len() as u8) << 1));
                    seed.extend_from_slice(chunk);
                }
            }
        }
        write(&dst.join("pipeline").join(&name), &pipeline_seed)?;
        for (i, seed) in sessions.values().enumerate() {
            write(&dst.join("ftp_session").join(format!("{name}-{i}")), seed)?;
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::write(path, bytes)
}
