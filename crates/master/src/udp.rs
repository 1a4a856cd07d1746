//! The connected, non-blocking UDP socket that StatsD metrics and syslog
//! lines are sent on: a collector that is slow or gone never blocks.

use std::io;
use std::net::{ToSocketAddrs, UdpSocket};

/// Binds an ephemeral local port of the collector's address family and
/// connects it to `host:port` (the first address the name resolves to).
pub fn connect(host: &str, port: u16) -> io::Result<UdpSocket> {
    let target = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("no address"))?;
    let local = if target.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(target)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
