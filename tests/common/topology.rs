//! Client -- gateway -- server, three namespaces joined by veth pairs, with
//! IPv4 and IPv6 documentation addresses and routing through the gateway.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::netns::{addr, enter, veth, Netns};

/// Client address, IPv4.
pub(crate) const CLIENT4: &str = "192.0.2.2";
/// A second address on the client host (a "neighbour").
pub(crate) const CLIENT4_OTHER: &str = "192.0.2.3";
/// Client address, IPv6.
pub(crate) const CLIENT6: &str = "2001:db8:1::2";
/// Server address, IPv4.
pub(crate) const SERVER4: &str = "198.51.100.2";
/// Server address, IPv6.
pub(crate) const SERVER6: &str = "2001:db8:2::2";
/// Gateway interface facing the client.
pub(crate) const GW_CLIENT_IF: &str = "gc0";
/// Gateway interface facing the server.
pub(crate) const GW_SERVER_IF: &str = "gs0";

/// Long enough to show a SYN is dropped (no retransmission within it).
pub(crate) const QUICK: Duration = Duration::from_millis(700);
/// Long enough for a connection that must pass, even on a loaded machine.
pub(crate) const SURE: Duration = Duration::from_secs(3);

/// `ip:port` as a socket address.
pub(crate) fn ep(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// The three hosts.
pub(crate) struct Topology {
    pub(crate) client: Netns,
    pub(crate) gateway: Netns,
    pub(crate) server: Netns,
}

impl Topology {
    /// Build it; everything is removed when dropped.
    pub(crate) fn new(tag: &str) -> Topology {
        let client = Netns::new(&format!("{tag}c"));
        let gateway = Netns::new(&format!("{tag}g"));
        let server = Netns::new(&format!("{tag}s"));
        veth(&client, "eth0", &gateway, GW_CLIENT_IF);
        veth(&server, "eth0", &gateway, GW_SERVER_IF);
        addr(&client, "eth0", &format!("{CLIENT4}/24"));
        addr(&client, "eth0", &format!("{CLIENT4_OTHER}/24"));
        addr(&client, "eth0", &format!("{CLIENT6}/64"));
        addr(&gateway, GW_CLIENT_IF, "192.0.2.1/24");
        addr(&gateway, GW_CLIENT_IF, "2001:db8:1::1/64");
        addr(&gateway, GW_SERVER_IF, "198.51.100.1/24");
        addr(&gateway, GW_SERVER_IF, "2001:db8:2::1/64");
        addr(&server, "eth0", &format!("{SERVER4}/24"));
        addr(&server, "eth0", &format!("{SERVER6}/64"));
        for (ns, v4, v6) in [(&client, "192.0.2.1", "2001:db8:1::1"), (&server, "198.51.100.1", "2001:db8:2::1")] {
            ns.ok(&["ip", "route", "add", "default", "via", v4]);
            ns.ok(&["ip", "-6", "route", "add", "default", "via", v6]);
        }
        gateway.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        gateway.ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        Topology { client, gateway, server }
    }
}

/// Listen on `addr:port` in `ns`; accept connections in the background for
/// `life`, counting them. Returns a handle to read the count.
pub(crate) fn listen(ns: &Netns, ip: &str, port: u16, life: Duration) -> std::sync::mpsc::Receiver<u32> {
    let ep = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port);
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        enter(&path);
        let listener = TcpListener::bind(ep).expect("bind listener");
        listener.set_nonblocking(true).expect("nonblocking");
        ready_tx.send(()).expect("ready");
        let start = std::time::Instant::now();
        let mut accepted = 0;
        while start.elapsed() < life {
            match listener.accept() {
                Ok(_) => {
                    accepted += 1;
                    let _ = tx.send(accepted);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("listener ready");
    rx
}

/// Connect from `ns` (optionally from `from`, e.g. port 20) to `to`, waiting
/// at most `timeout` (a dropped SYN is retransmitted within it if it is over
/// one second). Whether the connection was established.
pub(crate) fn connect(ns: &Netns, from: Option<SocketAddr>, to: SocketAddr, timeout: Duration) -> bool {
    ns.within(move || match from {
        None => TcpStream::connect_timeout(&to, timeout).is_ok(),
        Some(local) => connect_from(local, to, timeout),
    })
}

/// Connect from a bound local address (port 20 needs root: the tests have it).
fn connect_from(local: SocketAddr, to: SocketAddr, timeout: Duration) -> bool {
    let socket = socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&local.into()).expect("bind local");
    socket.connect_timeout(&to.into(), timeout).is_ok()
}
