//! The bounded per-connection response buffer, for every HTTP/1.1 class.
//!
//! The app side ([`BufferedWriter`], a [`Transport`] under the response
//! sink) writes straight to the socket without waiting while it can; what
//! the socket does not take is queued here, up to `--response-buffer`
//! bytes, and the connection's event-loop task sends it ([`drain`]) as the
//! client reads. A `wsgi.file_wrapper` file is queued as a descriptor and
//! an offset, never as bytes. Past the limit the sink says it wants no
//! more, so the bridge suspends an iterable response until the buffer has
//! drained: a client that does not read costs this buffer, never an app
//! thread, and never more memory than the limit.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::io::AsyncStream;
use crate::sink::Transport;

/// Largest piece of a file read at once when it cannot be `sendfile`d.
const FILE_CHUNK: usize = 64 * 1024;

/// The socket, as the app side writes to it.
pub type Direct = Arc<dyn AsFd + Send + Sync>;

/// Something queued for the client.
enum Piece {
    /// Bytes, sent from `pos`.
    Bytes(Vec<u8>, usize),
    /// `left` bytes of a file from `offset` (a descriptor of our own).
    File { fd: OwnedFd, offset: u64, left: u64 },
}

#[derive(Default)]
struct State {
    pieces: VecDeque<Piece>,
    /// Unsent bytes in `pieces` (files not counted: they cost no memory).
    bytes: usize,
    /// Once anything is queued, the app side stops writing directly, so
    /// the bytes keep their order.
    spilled: bool,
    /// Set when the client is gone or too slow: later writes fail.
    broken: Option<io::ErrorKind>,
}

/// One connection's outgoing queue, shared by the app side and the loop.
pub struct OutBuf {
    state: Mutex<State>,
    /// Most bytes queued before the sink asks the app to wait.
    limit: usize,
    /// How long the client may take no bytes before it is dropped.
    send_timeout: Duration,
    /// The socket, for writes from the app side; `None` for TLS, whose
    /// bytes only the loop can encrypt.
    direct: Option<Direct>,
    /// Wakes the loop when something was queued.
    queued: Notify,
    /// Wakes an app thread waiting for room (the `write()` callable).
    room: Condvar,
}

impl OutBuf {
    /// A buffer of `limit` bytes for a connection; `direct` is a
    /// descriptor of the (plain, non-blocking) socket when there is one.
    pub fn new(limit: usize, send_timeout: Duration, direct: Option<Direct>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            limit,
            send_timeout,
            direct,
            queued: Notify::new(),
            room: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent queue: every
        // update is a single push or pop.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new response on the connection (keep-alive): writes may go
    /// straight to the socket again.
    pub fn reset(&self) {
        let mut state = self.lock();
        if state.pieces.is_empty() {
            state.spilled = false;
        }
    }

    /// Whether everything queued has been sent.
    pub fn is_empty(&self) -> bool {
        self.lock().pieces.is_empty()
    }

    /// Marks the connection as given up on; wakes anyone waiting.
    pub fn fail(&self, kind: io::ErrorKind) {
        let mut state = self.lock();
        state.broken.get_or_insert(kind);
        state.pieces.clear();
        state.bytes = 0;
        drop(state);
        self.room.notify_all();
    }

    fn push(&self, state: &mut State, piece: Piece) {
        if let Piece::Bytes(bytes, pos) = &piece {
            state.bytes += bytes.len() - pos;
        }
        state.pieces.push_back(piece);
        state.spilled = true;
        self.queued.notify_one();
    }

    /// Sends queued pieces with non-blocking writes on `fd` until the queue
    /// is empty (`Ok(true)`) or the socket is full (`Ok(false)`).
    fn send_queued(&self, state: &mut State, fd: BorrowedFd<'_>) -> io::Result<bool> {
        let before = (state.bytes, state.pieces.len());
        let result = loop {
            let Some(piece) = state.pieces.front_mut() else {
                break Ok(true);
            };
            let is_bytes = matches!(piece, Piece::Bytes(..));
            match send_piece(fd, piece) {
                Ok((sent, finished)) => {
                    if is_bytes {
                        state.bytes -= sent;
                    }
                    if finished {
                        state.pieces.pop_front();
                    }
                }
                Err(e) if would_block(&e) => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        if (state.bytes, state.pieces.len()) != before {
            self.room.notify_all();
        }
        result
    }
}

fn would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

/// One non-blocking attempt at the front piece: the bytes sent and whether
/// the piece is finished; `WouldBlock` when the socket took nothing.
fn send_piece(fd: BorrowedFd<'_>, piece: &mut Piece) -> io::Result<(usize, bool)> {
    match piece {
        Piece::Bytes(bytes, pos) => {
            let n = write_fd(fd, &bytes[*pos..])?;
            *pos += n;
            Ok((n, *pos == bytes.len()))
        }
        Piece::File {
            fd: file,
            offset,
            left,
        } => {
            if *left == 0 {
                return Ok((0, true));
            }
            let n = if crate::sendfile::enabled() {
                sendfile_fd(fd, file.as_fd(), offset, *left)?
            } else {
                copy_chunk(fd, file.as_fd(), offset, *left)?
            };
            if n == 0 {
                // The file is shorter than it said when the response began.
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            *left -= n as u64;
            Ok((n, *left == 0))
        }
    }
}

fn write_fd(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::write(fd, data) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

fn sendfile_fd(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    left: u64,
) -> io::Result<usize> {
    let mut off = i64::try_from(*offset).map_err(|_| io::Error::other("offset too large"))?;
    let count = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
    loop {
        match nix::sys::sendfile::sendfile(socket, file, Some(&mut off), count) {
            Ok(n) => {
                *offset += n as u64;
                return Ok(n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// `--no-sendfile`: one chunk read and written; what the socket did not
/// take is read again next time (the offset only moves by what was sent).
fn copy_chunk(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    left: u64,
) -> io::Result<usize> {
    let mut buf = vec![0u8; FILE_CHUNK.min(usize::try_from(left).unwrap_or(FILE_CHUNK))];
    let off = i64::try_from(*offset).map_err(|_| io::Error::other("offset too large"))?;
    let n = nix::sys::uio::pread(file, &mut buf, off)?;
    if n == 0 {
        return Ok(0);
    }
    let sent = write_fd(socket, &buf[..n])?;
    *offset += sent as u64;
    Ok(sent)
}

/// The app side: a [`Transport`] that never waits on the client.
pub struct BufferedWriter {
    out: Arc<OutBuf>,
}

impl BufferedWriter {
    /// Writes into `out`.
    pub fn new(out: Arc<OutBuf>) -> Self {
        Self { out }
    }

    fn broken(state: &State) -> io::Result<()> {
        match state.broken {
            Some(kind) => Err(kind.into()),
            None => Ok(()),
        }
    }
}

impl Write for BufferedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = &self.out;
        let mut state = out.lock();
        Self::broken(&state)?;
        let mut written = 0;
        if let (false, Some(fd)) = (state.spilled, &out.direct) {
            while written < buf.len() {
                match write_fd(fd.as_fd(), &buf[written..]) {
                    Ok(n) => written += n,
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if written < buf.len() {
            out.push(&mut state, Piece::Bytes(buf[written..].to_vec(), 0));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for BufferedWriter {
    fn send_file(&mut self, fd: RawFd, offset: u64, count: u64) -> io::Result<()> {
        let out = &self.out;
        let mut state = out.lock();
        Self::broken(&state)?;
        // SAFETY: the Python file object that owns `fd` outlives this call;
        // the queue keeps a duplicate of its own, so the app may close it.
        let file = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut piece = Piece::File {
            fd: file.try_clone_to_owned()?,
            offset,
            left: count,
        };
        if let (false, Some(socket)) = (state.spilled, &out.direct) {
            loop {
                match send_piece(socket.as_fd(), &mut piece) {
                    Ok((_, true)) => return Ok(()),
                    Ok((_, false)) => {}
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        out.push(&mut state, piece);
        Ok(())
    }

    fn may_block(&self) -> bool {
        false
    }

    fn wants_more(&self) -> bool {
        self.out.lock().bytes < self.out.limit
    }

    fn wait_for_room(&mut self) -> io::Result<()> {
        let out = &self.out;
        let mut state = out.lock();
        let mut last_progress = Instant::now();
        loop {
            Self::broken(&state)?;
            if state.bytes < out.limit {
                return Ok(());
            }
            if last_progress.elapsed() >= out.send_timeout {
                drop(state);
                out.fail(io::ErrorKind::TimedOut);
                return Err(io::ErrorKind::TimedOut.into());
            }
            let before = state.bytes;
            match &out.direct {
                // The app side sends for itself: in the sync class it is
                // the loop, so nobody else would.
                Some(fd) => {
                    let fd = Arc::clone(fd);
                    if !out.send_queued(&mut state, fd.as_fd())? {
                        drop(state);
                        poll_writable(fd.as_fd(), out.send_timeout)?;
                        state = out.lock();
                    }
                }
                None => {
                    let wait = out.send_timeout.saturating_sub(last_progress.elapsed());
                    state = out
                        .room
                        .wait_timeout(state, wait)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
            if state.bytes < before {
                last_progress = Instant::now();
            }
        }
    }
}

/// Waits up to `limit` for `fd` to take bytes.
fn poll_writable(fd: BorrowedFd<'_>, limit: Duration) -> io::Result<()> {
    let millis = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Sends everything queued in `out` to `stream`, on the event loop; fails
/// (and marks `out` broken) when the client goes away or takes nothing for
/// `--send-timeout`.
pub async fn drain(out: &OutBuf, stream: &mut AsyncStream) -> io::Result<()> {
    let result = drain_inner(out, stream).await;
    if let Err(error) = &result {
        out.fail(error.kind());
    }
    result
}

async fn drain_inner(out: &OutBuf, stream: &mut AsyncStream) -> io::Result<()> {
    loop {
        if let Some(done) = stream.try_send(out)? {
            if done {
                return Ok(());
            }
            match tokio::time::timeout(out.send_timeout, stream.writable()).await {
                Ok(ready) => ready?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
            continue;
        }
        // A layered stream (TLS): copy a piece out and write it.
        let Some(chunk) = take_chunk(out)? else {
            return Ok(());
        };
        let write = stream.write_all(&chunk);
        match tokio::time::timeout(out.send_timeout, write).await {
            Ok(written) => written?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Takes up to [`FILE_CHUNK`] bytes off the front of the queue.
fn take_chunk(out: &OutBuf) -> io::Result<Option<Vec<u8>>> {
    let mut state = out.lock();
    let Some(piece) = state.pieces.front_mut() else {
        return Ok(None);
    };
    let chunk = match piece {
        Piece::Bytes(bytes, pos) => {
            let end = bytes.len().min(*pos + FILE_CHUNK);
            let chunk = bytes[*pos..end].to_vec();
            *pos = end;
            chunk
        }
        Piece::File { fd, offset, left } => {
            let want = FILE_CHUNK.min(usize::try_from(*left).unwrap_or(FILE_CHUNK));
            let mut buf = vec![0u8; want];
            let off = i64::try_from(*offset).map_err(|_| io::Error::other("offset too large"))?;
            let n = nix::sys::uio::pread(fd.as_fd(), &mut buf, off)?;
            if n == 0 && want > 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.truncate(n);
            *offset += n as u64;
            *left -= n as u64;
            buf
        }
    };
    let finished = match piece {
        Piece::Bytes(bytes, pos) => *pos == bytes.len(),
        Piece::File { left, .. } => *left == 0,
    };
    if let Piece::Bytes(..) = piece {
        state.bytes -= chunk.len();
    }
    if finished {
        state.pieces.pop_front();
    }
    drop(state);
    out.room.notify_all();
    Ok(Some(chunk))
}

impl AsyncStream {
    /// For a plain socket: one round of non-blocking sends of `out`'s
    /// queue; `Some(true)` when it is empty, `Some(false)` when the socket
    /// is full. `None` for layered streams.
    fn try_send(&self, out: &OutBuf) -> io::Result<Option<bool>> {
        use tokio::io::Interest;
        let attempt = |fd: BorrowedFd<'_>| {
            let mut state = out.lock();
            match out.send_queued(&mut state, fd)? {
                true => Ok(true),
                // Tells tokio the socket is full, so `writable` waits.
                false => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            }
        };
        let result = match self {
            AsyncStream::Tcp(s) => s.try_io(Interest::WRITABLE, || attempt(s.as_fd())),
            AsyncStream::Unix(s) => s.try_io(Interest::WRITABLE, || attempt(s.as_fd())),
            AsyncStream::Tls(_) | AsyncStream::Rewound(..) => return Ok(None),
        };
        match result {
            Ok(done) => Ok(Some(done)),
            Err(e) if would_block(&e) => Ok(Some(false)),
            Err(e) => Err(e),
        }
    }

    /// Waits until a plain socket can take bytes.
    async fn writable(&self) -> io::Result<()> {
        match self {
            AsyncStream::Tcp(s) => s.writable().await,
            AsyncStream::Unix(s) => s.writable().await,
            AsyncStream::Tls(_) | AsyncStream::Rewound(..) => Ok(()),
        }
    }
}

/// Waits until the app side queued something (or returns at once if the
/// queue is not empty).
pub async fn queued(out: &OutBuf) {
    let notified = out.queued.notified();
    if !out.is_empty() {
        return;
    }
    notified.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// A connected pair: the server end as the app and the loop see it,
    /// and the client end.
    fn pair(limit: usize, timeout: Duration) -> (Arc<OutBuf>, UnixStream, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let direct: Direct = Arc::new(server.try_clone().unwrap());
        (OutBuf::new(limit, timeout, Some(direct)), server, client)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn what_the_socket_does_not_take_is_queued_and_drained_in_order() {
        let (out, server, mut client) = pair(64 * 1024, Duration::from_secs(5));
        let mut writer = BufferedWriter::new(Arc::clone(&out));
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        // Never blocks, however little the socket takes.
        writer.write_all(&data).unwrap();
        assert!(!out.is_empty());
        assert!(!writer.wants_more());
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 4_000_000];
            client.read_exact(&mut got).unwrap();
            got
        });
        runtime().block_on(async {
            let mut stream = AsyncStream::Unix(tokio::net::UnixStream::from_std(server).unwrap());
            drain(&out, &mut stream).await.unwrap();
        });
        assert!(out.is_empty() && writer.wants_more());
        assert!(reader.join().unwrap() == data);
    }

    #[test]
    fn a_client_that_takes_nothing_times_out_and_later_writes_fail() {
        let (out, server, _client) = pair(64 * 1024, Duration::from_millis(200));
        let mut writer = BufferedWriter::new(Arc::clone(&out));
        writer.write_all(&vec![7u8; 4_000_000]).unwrap();
        let started = Instant::now();
        let result = runtime().block_on(async {
            let mut stream = AsyncStream::Unix(tokio::net::UnixStream::from_std(server).unwrap());
            drain(&out, &mut stream).await
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(writer.write_all(b"more").is_err());
    }

    #[test]
    fn wait_for_room_sends_for_itself_and_gives_up_after_the_timeout() {
        let (out, _server, _client) = pair(16 * 1024, Duration::from_millis(200));
        let mut writer = BufferedWriter::new(Arc::clone(&out));
        writer.write_all(&vec![1u8; 4_000_000]).unwrap();
        let started = Instant::now();
        let error = writer.wait_for_room().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
