//! Tokio-side sockets: listeners and connections of either family, and
//! accepting from several listeners at once.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::stream::{Listener, Stream};

/// A listener registered with the event loop.
pub enum AsyncListener {
    /// TCP, and its address when bound to one IP (every connection's local
    /// address then; with a wildcard it is asked per connection).
    Tcp(tokio::net::TcpListener, Option<SocketAddr>),
    /// Unix domain.
    Unix(tokio::net::UnixListener),
}

/// A connection registered with the event loop.
pub enum AsyncStream {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// Unix domain.
    Unix(tokio::net::UnixStream),
    /// TLS over either of the above.
    Tls(Box<tokio_rustls::server::TlsStream<AsyncStream>>),
    /// Bytes already read (an HTTP/2 preface) put back in front of a stream.
    Rewound(Vec<u8>, Box<AsyncStream>),
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

impl Accepted {
    /// The connection and who is on the other end (before any PROXY
    /// header or TLS handshake says more).
    pub fn into_parts(self) -> (AsyncStream, crate::exchange::Peer) {
        let peer = crate::exchange::Peer {
            remote: self.remote,
            local: self.local,
            transport_remote: self.remote,
            secure: false,
        };
        (self.stream, peer)
    }
}

impl AsyncListener {
    /// Registers an inherited listener with the current runtime.
    pub fn register(listener: Listener) -> io::Result<Self> {
        Ok(match listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true)?;
                // Accepted sockets inherit it (Linux): no setsockopt per
                // connection. Best effort, as it was per connection.
                let _ = socket2::SockRef::from(&l).set_nodelay(true);
                let local = l.local_addr().ok().filter(|a| !a.ip().is_unspecified());
                AsyncListener::Tcp(tokio::net::TcpListener::from_std(l)?, local)
            }
            Listener::Unix(l) => {
                l.set_nonblocking(true)?;
                AsyncListener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
        })
    }

    /// Registers every inherited listener, or fails the worker's start.
    pub(crate) fn register_all(listeners: Vec<Listener>) -> Result<Vec<Self>, crate::WorkerError> {
        listeners
            .into_iter()
            .map(Self::register)
            .collect::<Result<Vec<_>, _>>()
            .map_err(crate::WorkerError::Runtime)
    }
}

/// Accepts one connection from whichever listener has one first.
pub async fn accept_any(listeners: &[AsyncListener]) -> io::Result<Accepted> {
    poll_fn(|cx| poll_accept_any(listeners, cx)).await
}

/// Accepts a connection already queued on one of `listeners`, if any,
/// without waiting for one.
pub async fn accept_queued(listeners: &[AsyncListener]) -> Option<io::Result<Accepted>> {
    poll_fn(|cx| match poll_accept_any(listeners, cx) {
        Poll::Ready(result) => Poll::Ready(Some(result)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

fn poll_accept_any(
    listeners: &[AsyncListener],
    cx: &mut Context<'_>,
) -> Poll<io::Result<Accepted>> {
    for listener in listeners {
        let polled = match listener {
            AsyncListener::Tcp(l, bound) => l.poll_accept(cx).map_ok(|(stream, remote)| {
                let local = bound.or_else(|| stream.local_addr().ok());
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
        if polled.is_ready() {
            return polled;
        }
    }
    Poll::Pending
}

impl AsyncStream {
    /// Waits until the connection has bytes (or EOF) to read. Layered
    /// streams report ready at once; callers then read with a deadline.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            AsyncStream::Tcp(s) => s.readable().await,
            AsyncStream::Unix(s) => s.readable().await,
            AsyncStream::Tls(_) | AsyncStream::Rewound(..) => Ok(()),
        }
    }

    /// Waits until the client has sent a byte (or closed), without taking
    /// it: unlike [`AsyncStream::readable`], which may report a fresh
    /// connection ready before anything came, a TCP peek really waits.
    /// Returns false if the connection ended first.
    pub async fn has_data(&self) -> bool {
        match self {
            AsyncStream::Tcp(s) => {
                let mut byte = [0u8; 1];
                matches!(s.peek(&mut byte).await, Ok(n) if n > 0)
            }
            _ => self.readable().await.is_ok(),
        }
    }

    /// Reads at least one byte (0 at EOF), growing `buf`.
    pub async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8192);
        }
        AsyncReadExt::read_buf(self, buf).await
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        AsyncWriteExt::write_all(self, data).await
    }

    /// A blocking-capable handle of its own on a plain socket (a duplicate
    /// descriptor, still non-blocking), for the app's turn in the sync
    /// class while the loop keeps this one; `Unsupported` for layered streams.
    pub fn dup_std(&self) -> io::Result<Stream> {
        use std::os::fd::AsFd;
        Ok(match self {
            AsyncStream::Tcp(s) => Stream::Tcp(s.as_fd().try_clone_to_owned()?.into()),
            AsyncStream::Unix(s) => Stream::Unix(s.as_fd().try_clone_to_owned()?.into()),
            AsyncStream::Tls(_) | AsyncStream::Rewound(..) => {
                return Err(io::ErrorKind::Unsupported.into())
            }
        })
    }

    /// A descriptor of its own on a plain socket, for writing from an app
    /// thread; `None` for layered streams (their bytes need the loop).
    pub fn dup_plain(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        match self {
            AsyncStream::Tcp(s) => s.as_fd().try_clone_to_owned().ok(),
            AsyncStream::Unix(s) => s.as_fd().try_clone_to_owned().ok(),
            AsyncStream::Tls(_) | AsyncStream::Rewound(..) => None,
        }
    }

    /// The ALPN protocol agreed in the TLS handshake, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            AsyncStream::Tls(s) => s.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

impl AsyncRead for AsyncStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            AsyncStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            AsyncStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            AsyncStream::Rewound(prefix, inner) => {
                if prefix.is_empty() {
                    return Pin::new(inner.as_mut()).poll_read(cx, buf);
                }
                let n = prefix.len().min(buf.remaining());
                buf.put_slice(&prefix[..n]);
                prefix.drain(..n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => Pin::new(s).poll_write(cx, data),
            AsyncStream::Unix(s) => Pin::new(s).poll_write(cx, data),
            AsyncStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            AsyncStream::Rewound(_, inner) => Pin::new(inner.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            AsyncStream::Unix(s) => Pin::new(s).poll_flush(cx),
            AsyncStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            AsyncStream::Rewound(_, inner) => Pin::new(inner.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            AsyncStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            AsyncStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            AsyncStream::Rewound(_, inner) => Pin::new(inner.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Runs the TLS handshake on `stream` until `deadline`; `None` when it
/// fails (logged at debug with the peer `remote`) or times out.
pub(crate) async fn tls_handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: AsyncStream,
    deadline: tokio::time::Instant,
    remote: Option<SocketAddr>,
) -> Option<AsyncStream> {
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(AsyncStream::Tls(Box::new(tls))),
        Ok(Err(error)) => {
            tracing::debug!("TLS handshake with {remote:?} failed: {error}");
            None
        }
        Err(_) => None,
    }
}
