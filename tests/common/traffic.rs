//! TCP traffic between two namespaces: a short line-by-line conversation
//! (what a control connection looks like) and a bulk transfer. Every wait is
//! bounded: connect, accept, reads and writes time out after `LIMIT`.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::netns::enter;
use super::netns::Netns;

/// Longest any single step may take.
const LIMIT: Duration = Duration::from_secs(10);

/// What a conversation exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conversation {
    /// The client's address and port.
    pub(crate) client: SocketAddr,
    /// Bytes the client sent.
    pub(crate) sent: usize,
    /// Bytes the client received.
    pub(crate) received: usize,
}

/// The reply the server gives to `line`.
pub(crate) fn reply_to(line: &str) -> String {
    format!("200 ok {line}\r\n")
}

/// Starts a one-connection server on `at` inside `ns`: `serve` gets the
/// accepted stream. Returns once the listener is bound.
fn serve<T: Send + 'static>(
    ns: &Netns,
    at: SocketAddr,
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/run/netns/{}", ns.name);
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        enter(&path);
        let listener = TcpListener::bind(at).unwrap_or_else(|e| panic!("bind {at}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking listener");
        ready_tx.send(()).expect("ready");
        let start = Instant::now();
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if start.elapsed() < LIMIT => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no connection to {at} within {LIMIT:?}: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking stream");
        stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
        stream.set_write_timeout(Some(LIMIT)).expect("write timeout");
        serve(stream)
    });
    ready_rx.recv_timeout(LIMIT).expect("listener ready");
    handle
}

/// Connects from inside `ns` to `to` and runs `talk` on the stream.
fn client<T: Send + 'static>(ns: &Netns, to: SocketAddr, talk: impl FnOnce(TcpStream) -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name);
    thread::spawn(move || {
        enter(&path);
        let stream = TcpStream::connect_timeout(&to, LIMIT).unwrap_or_else(|e| panic!("connect {to}: {e}"));
        stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
        stream.set_write_timeout(Some(LIMIT)).expect("write timeout");
        talk(stream)
    })
    .join()
    .expect("client thread")
}

/// The client in `client_ns` sends each of `lines` (CRLF added) to a server
/// on `to` in `server_ns`, which answers each with [`reply_to`]; then both
/// close.
pub(crate) fn converse(client_ns: &Netns, server_ns: &Netns, to: SocketAddr, lines: &[&str]) -> Conversation {
    let server = serve(server_ns, to, |stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).expect("server read") > 0 {
            writer.write_all(reply_to(line.trim_end()).as_bytes()).expect("server write");
            line.clear();
        }
    });
    let lines: Vec<String> = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let conversation = client(client_ns, to, move |stream| {
        let local = stream.local_addr().expect("local address");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let (mut sent, mut received) = (0, 0);
        for l in &lines {
            writer.write_all(l.as_bytes()).expect("client write");
            sent += l.len();
            let mut reply = String::new();
            received += reader.read_line(&mut reply).expect("client read");
            assert_eq!(reply, reply_to(l.trim_end()));
        }
        writer.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("read to end");
        Conversation { client: local, sent, received }
    });
    server.join().expect("server thread");
    conversation
}

/// The client in `client_ns` sends `bytes` bytes to a server on `to` in
/// `server_ns`; the bytes the server received.
pub(crate) fn bulk(client_ns: &Netns, server_ns: &Netns, to: SocketAddr, bytes: usize) -> usize {
    let server = serve(server_ns, to, |mut stream| {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match stream.read(&mut buf).expect("bulk read") {
                0 => break total,
                n => total += n,
            }
        }
    });
    client(client_ns, to, move |mut stream| {
        let chunk = vec![0x5au8; 1 << 16];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n]).expect("bulk write");
            left -= n;
        }
        stream.shutdown(Shutdown::Write).expect("shutdown");
    });
    server.join().expect("bulk server thread")
}
