//! Synthetic control conversations, as captured frames.
//!
//! Tests, benchmarks and fuzz seeds need FTP control traffic with correct
//! TCP sequence numbers: [`Conversation`] keeps both sides' sequence numbers
//! and turns each step (handshake, a command, a reply, a retransmission, a
//! close) into a frame with a timestamp.

use std::net::SocketAddr;
use std::time::Duration;

use crate::decode::{emit, EmitError, LinkType, Segment, TcpFlags};
use crate::time::Timestamp;

/// One synthesized frame and when it was "captured".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthFrame {
    /// Capture time.
    pub at: Timestamp,
    /// The frame's bytes, of the conversation's link type.
    pub bytes: Vec<u8>,
}

/// One TCP control connection between a client and a server, step by step.
#[derive(Debug, Clone)]
pub struct Conversation {
    client: SocketAddr,
    server: SocketAddr,
    link: LinkType,
    vlans: Vec<u16>,
    client_seq: u32,
    server_seq: u32,
    now: Timestamp,
    step: Duration,
    frames: Vec<SynthFrame>,
}

impl Conversation {
    /// A conversation on Ethernet, starting at `start`, 1 ms between frames.
    pub fn new(client: SocketAddr, server: SocketAddr, start: Timestamp) -> Self {
        Conversation {
            client,
            server,
            link: LinkType::Ethernet,
            vlans: Vec::new(),
            client_seq: 1_000_000,
            server_seq: 3_000_000_000,
            now: start,
            step: Duration::from_millis(1),
            frames: Vec::new(),
        }
    }

    /// Use another link type for the frames that follow.
    pub fn link(mut self, link: LinkType) -> Self {
        self.link = link;
        self
    }

    /// Put the frames that follow inside these 802.1Q tags (Ethernet only).
    pub fn vlans(mut self, vlans: &[u16]) -> Self {
        self.vlans = vlans.to_vec();
        self
    }

    /// Set the initial sequence numbers (for wrap-around cases).
    pub fn isns(mut self, client: u32, server: u32) -> Self {
        self.client_seq = client;
        self.server_seq = server;
        self
    }

    /// The frames so far.
    pub fn frames(&self) -> &[SynthFrame] {
        &self.frames
    }

    /// The frames so far, taken.
    pub fn into_frames(self) -> Vec<SynthFrame> {
        self.frames
    }

    /// The link type of the frames.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Let `d` pass before the next frame.
    pub fn wait(&mut self, d: Duration) -> &mut Self {
        self.now = self.now.saturating_add(d);
        self
    }

    fn push(&mut self, from_client: bool, flags: TcpFlags, seq: u32, payload: &[u8]) -> Result<(), EmitError> {
        let (src, dst, ack) = if from_client {
            (self.client, self.server, self.server_seq)
        } else {
            (self.server, self.client, self.client_seq)
        };
        let segment = Segment { src, dst, seq, ack, flags, payload };
        let bytes = emit(self.link, &self.vlans, &segment)?;
        self.frames.push(SynthFrame { at: self.now, bytes });
        self.now = self.now.saturating_add(self.step);
        Ok(())
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Result<&mut Self, EmitError> {
        let syn = TcpFlags { syn: true, ..TcpFlags::default() };
        let syn_ack = TcpFlags { syn: true, ack: true, ..TcpFlags::default() };
        let ack = TcpFlags { ack: true, ..TcpFlags::default() };
        self.push(true, syn, self.client_seq, &[])?;
        self.client_seq = self.client_seq.wrapping_add(1);
        self.push(false, syn_ack, self.server_seq, &[])?;
        self.server_seq = self.server_seq.wrapping_add(1);
        self.push(true, ack, self.client_seq, &[])?;
        Ok(self)
    }

    /// The client sends `bytes` in one segment.
    pub fn client(&mut self, bytes: &[u8]) -> Result<&mut Self, EmitError> {
        let ack = TcpFlags { ack: true, ..TcpFlags::default() };
        self.push(true, ack, self.client_seq, bytes)?;
        self.client_seq = self.client_seq.wrapping_add(bytes.len() as u32);
        Ok(self)
    }

    /// The server sends `bytes` in one segment.
    pub fn server(&mut self, bytes: &[u8]) -> Result<&mut Self, EmitError> {
        let ack = TcpFlags { ack: true, ..TcpFlags::default() };
        self.push(false, ack, self.server_seq, bytes)?;
        self.server_seq = self.server_seq.wrapping_add(bytes.len() as u32);
        Ok(self)
    }

    /// Repeat the last frame (a retransmission, or the same frame captured
    /// on a second interface).
    pub fn repeat_last(&mut self) -> &mut Self {
        if let Some(last) = self.frames.last().cloned() {
            self.frames.push(SynthFrame { at: self.now, bytes: last.bytes });
            self.now = self.now.saturating_add(self.step);
        }
        self
    }

    /// Swap the last two frames (out-of-order arrival).
    pub fn swap_last_two(&mut self) -> &mut Self {
        let n = self.frames.len();
        if n >= 2 {
            let (a, b) = (self.frames[n - 2].bytes.clone(), self.frames[n - 1].bytes.clone());
            self.frames[n - 2].bytes = b;
            self.frames[n - 1].bytes = a;
        }
        self
    }

    /// FIN from the client, then FIN from the server.
    pub fn close(&mut self) -> Result<&mut Self, EmitError> {
        let fin = TcpFlags { fin: true, ack: true, ..TcpFlags::default() };
        self.push(true, fin, self.client_seq, &[])?;
        self.client_seq = self.client_seq.wrapping_add(1);
        self.push(false, fin, self.server_seq, &[])?;
        self.server_seq = self.server_seq.wrapping_add(1);
        Ok(self)
    }

    /// RST from the client.
    pub fn reset(&mut self) -> Result<&mut Self, EmitError> {
        let rst = TcpFlags { rst: true, ..TcpFlags::default() };
        self.push(true, rst, self.client_seq, &[])?;
        Ok(self)
    }
}
