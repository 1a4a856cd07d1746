//! Listening sockets and client connections of either family (TCP or unix).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

/// A listening socket inherited from the master.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix-domain stream listener.
    Unix(UnixListener),
}

/// A blocking client connection, used while the app runs.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix-domain connection.
    Unix(UnixStream),
}

impl Stream {
    /// Closes the sending side, so the client sees the end of the response.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A shared handle on one connection, for the app's turn: the body reader,
/// the response sink and the worker each hold one, without duplicating the
/// descriptor. The socket stays non-blocking; a read or write that would
/// block waits in `poll(2)` for at most `timeout`, which spares switching
/// the socket's mode and timeouts (three syscalls) on every request.
#[derive(Debug, Clone)]
pub struct SharedStream {
    stream: std::sync::Arc<Stream>,
    timeout: std::time::Duration,
}

impl SharedStream {
    /// Wraps a non-blocking connection.
    pub fn new(stream: std::sync::Arc<Stream>, timeout: std::time::Duration) -> Self {
        Self { stream, timeout }
    }

    /// Retries `op` until it stops reporting `WouldBlock`, waiting for
    /// `events` in between (at most the I/O timeout each time, so a client
    /// that reads slowly but steadily is served whatever the total time).
    pub(crate) fn blocking<T>(
        &self,
        events: nix::poll::PollFlags,
        mut op: impl FnMut(&Stream) -> io::Result<T>,
    ) -> io::Result<T> {
        use std::os::fd::AsFd;
        let millis = u16::try_from(self.timeout.as_millis()).unwrap_or(u16::MAX);
        loop {
            match op(&self.stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let fd = self.stream.as_fd();
                    let mut fds = [nix::poll::PollFd::new(fd, events)];
                    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis)) {
                        Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
                        Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                        Err(errno) => return Err(errno.into()),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.blocking(nix::poll::PollFlags::POLLIN, |mut s| s.read(buf))
    }
}

impl Write for SharedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.blocking(nix::poll::PollFlags::POLLOUT, |mut s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.blocking(nix::poll::PollFlags::POLLOUT, |mut s| {
            s.write_vectored(bufs)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for SharedStream {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}
