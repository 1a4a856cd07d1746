//! Binding the listening sockets before any worker is forked.

use std::fmt;
use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use ferricorn_config::Bind;
use socket2::{Domain, Socket, Type};

/// A bound, listening socket owned by the master.
#[derive(Debug)]
pub enum BoundListener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix-domain listener and its path (removed at exit unless inherited).
    Unix(UnixListener, Option<PathBuf>),
}

/// A listener that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {bind}: {source}")]
pub struct BindError {
    bind: String,
    source: io::Error,
}

impl BindError {
    /// An error about `bind` (an address or descriptor) for `reason`.
    pub(crate) fn new(bind: &str, reason: String) -> Self {
        Self {
            bind: bind.to_string(),
            source: io::Error::other(reason),
        }
    }
}

impl AsRawFd for BoundListener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            BoundListener::Tcp(l) => l.as_raw_fd(),
            BoundListener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

impl fmt::Display for BoundListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundListener::Tcp(l) => match l.local_addr() {
                Ok(addr) => write!(f, "http://{addr}"),
                Err(_) => write!(f, "http://?"),
            },
            BoundListener::Unix(l, path) => {
                let shown = path.clone().or_else(|| {
                    l.local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                });
                match shown {
                    Some(path) => write!(f, "unix:{}", path.display()),
                    None => write!(f, "unix:?"),
                }
            }
        }
    }
}

/// How the listening sockets are set up.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// The listen queue length (`--backlog`).
    pub backlog: u32,
    /// Set `SO_REUSEPORT` on TCP sockets (`--reuse-port`).
    pub reuse_port: bool,
}

/// Binds every configured address, in order.
pub fn bind_all(binds: &[Bind], options: ListenOptions) -> Result<Vec<BoundListener>, BindError> {
    binds
        .iter()
        .map(|bind| {
            bind_one(bind, options).map_err(|source| BindError {
                bind: bind.to_string(),
                source,
            })
        })
        .collect()
}

fn backlog_i32(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}

fn bind_one(bind: &Bind, options: ListenOptions) -> io::Result<BoundListener> {
    let backlog = options.backlog;
    match bind {
        Bind::Tcp { host, port } => {
            let addr = (host.trim_start_matches('[').trim_end_matches(']'), *port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| io::Error::other(format!("{host} resolves to no address")))?;
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            if options.reuse_port {
                set_reuse_port(&socket)?;
            }
            socket.set_cloexec(true)?;
            socket.bind(&addr.into())?;
            defer_accept(&socket);
            socket.listen(backlog_i32(backlog))?;
            Ok(BoundListener::Tcp(socket.into()))
        }
        Bind::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    // A stale socket from an earlier run.
                    std::fs::remove_file(path)?;
                } else {
                    return Err(io::Error::other(format!(
                        "{} exists and is not a socket",
                        path.display()
                    )));
                }
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            socket.set_cloexec(true)?;
            socket.bind(&socket2::SockAddr::unix(path)?)?;
            socket.listen(backlog_i32(backlog))?;
            Ok(BoundListener::Unix(socket.into(), Some(path.clone())))
        }
        Bind::Fd(fd) => from_fd(*fd),
    }
}

/// `--reuse-port`: lets other sockets (another ferricorn, a new version
/// started beside this one) bind the same address; the kernel spreads new
/// connections among them. As gunicorn, a kernel without the option
/// (`ENOPROTOOPT`, `EINVAL`) is not an error.
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    match socket.set_reuse_port(true) {
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL)) => {
            tracing::warn!("SO_REUSEPORT is not available here: {error}");
            Ok(())
        }
        other => other,
    }
}

/// Seconds the kernel holds a new TCP connection that has sent nothing.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Asks the kernel to wake `accept` only once a connection has data, so a
/// worker is not woken (and a sync worker not occupied) by connections
/// that have nothing to say yet. Best effort: without it, the workers'
/// own first-bytes grace still applies.
fn defer_accept(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let value = DEFER_ACCEPT_SECS;
    // SAFETY: FFI call with a valid socket and a pointer to a live c_int
    // of the size passed.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        tracing::debug!("TCP_DEFER_ACCEPT not set: {}", io::Error::last_os_error());
    }
}

/// Takes over an open listening socket passed to this process.
pub(crate) fn from_fd(fd: RawFd) -> io::Result<BoundListener> {
    // Reject descriptors that are not open sockets before taking ownership.
    let kind = nix::sys::socket::getsockopt(
        // SAFETY: borrowing only for this call; ownership is taken below.
        &unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::sys::socket::sockopt::SockType,
    )
    .map_err(|e| io::Error::other(format!("fd {fd} is not a socket: {e}")))?;
    if kind != nix::sys::socket::SockType::Stream {
        return Err(io::Error::other(format!("fd {fd} is not a stream socket")));
    }
    // SAFETY: the descriptor was handed to us (fd://N) and is an open socket.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    socket.set_cloexec(true)?;
    let local = socket.local_addr()?;
    if local.as_socket().is_some() {
        Ok(BoundListener::Tcp(socket.into()))
    } else {
        Ok(BoundListener::Unix(socket.into(), None))
    }
}

/// Removes unix socket files this process created (not when an upgraded
/// master serves them on).
pub fn remove_socket_files(listeners: &[BoundListener]) {
    for listener in listeners {
        if let BoundListener::Unix(_, Some(path)) = listener {
            let _ = std::fs::remove_file(path);
        }
    }
}
