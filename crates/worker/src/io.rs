//! Tokio-side sockets: listeners and connections of either family, and
//! accepting from several listeners at once.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;

use tokio::io::AsyncReadExt;

use crate::stream::{Listener, Stream};

/// A listener registered with the event loop.
pub enum AsyncListener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// Unix domain.
    Unix(tokio::net::UnixListener),
}

/// A connection registered with the event loop.
pub enum AsyncStream {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// Unix domain.
    Unix(tokio::net::UnixStream),
}

/// A freshly accepted connection.
pub struct Accepted {
    /// The connection.
    pub stream: AsyncStream,
    /// The client address (TCP only).
    pub remote: Option<SocketAddr>,
    /// The local address (TCP only).
    pub local: Option<SocketAddr>,
}

impl AsyncListener {
    /// Registers an inherited listener with the current runtime.
    pub fn register(listener: Listener) -> io::Result<Self> {
        Ok(match listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true)?;
                AsyncListener::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            Listener::Unix(l) => {
                l.set_nonblocking(true)?;
                AsyncListener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
        })
    }
}

/// Accepts one connection from whichever listener has one first.
pub async fn accept_any(listeners: &[AsyncListener]) -> io::Result<Accepted> {
    poll_fn(|cx| {
        for listener in listeners {
            let polled = match listener {
                AsyncListener::Tcp(l) => l.poll_accept(cx).map_ok(|(stream, remote)| {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().ok();
                    Accepted {
                        stream: AsyncStream::Tcp(stream),
                        remote: Some(remote),
                        local,
                    }
                }),
                AsyncListener::Unix(l) => l.poll_accept(cx).map_ok(|(stream, _)| Accepted {
                    stream: AsyncStream::Unix(stream),
                    remote: None,
                    local: None,
                }),
            };
            if let Poll::Ready(result) = polled {
                return Poll::Ready(result);
            }
        }
        Poll::Pending
    })
    .await
}

impl AsyncStream {
    /// Waits until the connection has bytes (or EOF) to read.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            AsyncStream::Tcp(s) => s.readable().await,
            AsyncStream::Unix(s) => s.readable().await,
        }
    }

    /// Reads what is available without waiting.
    pub fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            AsyncStream::Tcp(s) => s.try_read_buf(buf),
            AsyncStream::Unix(s) => s.try_read_buf(buf),
        }
    }

    /// Reads at least one byte (0 at EOF), growing `buf`.
    pub async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8192);
        }
        match self {
            AsyncStream::Tcp(s) => s.read_buf(buf).await,
            AsyncStream::Unix(s) => s.read_buf(buf).await,
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            AsyncStream::Tcp(s) => s.write_all(data).await,
            AsyncStream::Unix(s) => s.write_all(data).await,
        }
    }

    /// Leaves the event loop: a plain blocking-capable connection for the
    /// app's turn.
    pub fn into_std(self) -> io::Result<Stream> {
        Ok(match self {
            AsyncStream::Tcp(s) => Stream::Tcp(s.into_std()?),
            AsyncStream::Unix(s) => Stream::Unix(s.into_std()?),
        })
    }
}
