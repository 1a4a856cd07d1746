//! The two directions between the tokio I/O thread and the asyncio loop
//! thread, with as few wakeups as possible.
//!
//! tokio → loop: one [`LoopQueue`] per worker. Events are plain Rust data
//! (the I/O thread never takes the GIL); the loop is woken through an
//! `eventfd` registered with `loop.add_reader`, written only when the
//! queue goes from empty to non-empty, so under load one wakeup carries
//! many events.
//!
//! loop → tokio: one unbounded channel of [`FromApp`] per request, with a
//! byte credit ([`ReplyShared`]): `send()` only suspends the app while more
//! than [`WRITE_CREDIT`] bytes wait for the client. The app's messages do
//! not go into those channels from the loop thread (each would wake the
//! I/O thread): they collect in the worker's [`Outbox`] for one turn of the
//! loop, and one wakeup per turn has a task on the I/O thread deliver them.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyConnectionError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::{mpsc, Notify};

use super::scope::ScopeData;

/// Response bytes allowed to wait for a slow client before `send()` waits.
pub const WRITE_CREDIT: usize = 64 * 1024;
/// Request body bytes read ahead of the app before the socket is left alone.
pub const READ_AHEAD: usize = 256 * 1024;

/// What the I/O thread tells the loop.
pub enum ToLoop {
    /// A request head arrived; the app should be called.
    Request {
        /// The connection-unique request id.
        id: u64,
        /// Everything the scope is built from.
        scope: Box<ScopeData>,
        /// Where the app's response goes.
        reply: Reply,
    },
    /// A piece of request body (`more`: not the last).
    Body {
        /// The request.
        id: u64,
        /// Decoded body bytes.
        data: Vec<u8>,
        /// More body follows.
        more: bool,
    },
    /// The client went away.
    Disconnect {
        /// The request.
        id: u64,
    },
    /// The client caught up: a `send()` waiting for write credit may go on.
    Writable {
        /// The request.
        id: u64,
    },
    /// A whole WebSocket message from the client.
    WsMessage {
        /// The connection.
        id: u64,
        /// A text message.
        text: Option<String>,
        /// A binary message.
        bytes: Option<Vec<u8>>,
    },
    /// The WebSocket closed (the client's close code, 1005 if it sent none,
    /// 1006 if the connection just ended).
    WsClosed {
        /// The connection.
        id: u64,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The worker is stopping: no more requests will come.
    Stop,
}

/// How stale the loop's last drain may be before [`LoopQueue::loop_alive`]
/// wakes it to prove it still turns.
const NUDGE_AFTER_MS: u64 = 250;
/// A loop that has not drained its queue for this long is stuck: an app
/// blocking it in synchronous code (or holding the GIL). A few nudges, so
/// an ordinary busy turn never trips it.
const STUCK_AFTER_MS: u64 = 1500;

/// The tokio → loop queue and its wakeup descriptor, and the loop → tokio
/// [`Outbox`].
pub struct LoopQueue {
    queue: Mutex<VecDeque<ToLoop>>,
    wake: OwnedFd,
    out: Outbox,
    epoch: std::time::Instant,
    /// Milliseconds after `epoch` of the loop's last drain.
    drained_ms: std::sync::atomic::AtomicU64,
}

/// One request's channel to its connection task.
type ReplyTx = Arc<mpsc::UnboundedSender<FromApp>>;

/// The app's messages of the current turn of the loop, on their way to the
/// I/O thread.
///
/// The first message of a turn schedules a flush with `loop.call_soon`
/// (it runs once the callbacks ready now have run, so it carries every
/// message they send); the flush wakes [`LoopQueue::dispatch`] on the I/O
/// thread, which hands the batch to the connections' channels (wakeups
/// there are local to that thread).
struct Outbox {
    batch: Mutex<Vec<(ReplyTx, FromApp)>>,
    ready: Notify,
    /// The dispatcher task was spawned.
    dispatching: AtomicBool,
    /// `loop.call_soon` and the flush callable, while the loop serves.
    flusher: Mutex<Option<(Py<PyAny>, Py<PyAny>)>>,
}

impl LoopQueue {
    /// A queue with a fresh non-blocking `eventfd`.
    pub fn new() -> std::io::Result<Arc<Self>> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is
        // checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            wake,
            out: Outbox {
                batch: Mutex::new(Vec::new()),
                ready: Notify::new(),
                dispatching: AtomicBool::new(false),
                flusher: Mutex::new(None),
            },
            epoch: std::time::Instant::now(),
            drained_ms: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the asyncio loop still turns, for the worker's heartbeat:
    /// the I/O thread never waits on the loop, so without this a loop
    /// stuck in an app's blocking call would look alive to the master
    /// while it serves nothing (gunicorn's ASGI worker beats from its
    /// loop and is replaced after `--timeout`). Wakes an idle loop when
    /// its last drain is getting old, so the next call can tell.
    pub fn loop_alive(&self) -> bool {
        use std::sync::atomic::Ordering;
        let age = self
            .now_ms()
            .saturating_sub(self.drained_ms.load(Ordering::Relaxed));
        if age >= NUDGE_AFTER_MS {
            self.wake_loop();
        }
        age <= STUCK_AFTER_MS
    }

    /// Counts the loop as turning from now (it is about to serve; the
    /// lifespan startup before it may have taken long).
    pub fn loop_starting(&self) {
        self.drained_ms
            .store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    fn wake_loop(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd.
        // EAGAIN (counter saturated) means a wakeup is pending anyway.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Starts [`dispatch`](Self::dispatch) on the current tokio runtime
    /// the first time (the I/O thread's; a no-op outside a runtime).
    fn ensure_dispatcher(self: &Arc<Self>) {
        if self.out.dispatching.load(Ordering::Acquire) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            if !self.out.dispatching.swap(true, Ordering::AcqRel) {
                runtime.spawn(Arc::clone(self).dispatch());
            }
        }
    }

    /// Delivers the loop's batches to the connections' channels, for as
    /// long as the I/O runtime runs.
    async fn dispatch(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.out.ready.notified().await;
            std::mem::swap(&mut *lock(&self.out.batch), &mut batch);
            for (tx, message) in batch.drain(..) {
                // A connection that ended has dropped its receiver.
                let _ = tx.send(message);
            }
        }
    }

    /// Adds `message` for `tx` to this turn's batch (loop thread).
    fn post(&self, py: Python<'_>, tx: &ReplyTx, message: FromApp) {
        let first = {
            let mut batch = lock(&self.out.batch);
            batch.push((Arc::clone(tx), message));
            batch.len() == 1
        };
        if first {
            self.schedule_flush(py);
        }
    }

    /// Adds `message` for `tx` and wakes the dispatcher now: for a
    /// WebSocket message, which is mostly alone in its turn of the loop
    /// (an echo, a push), so that waiting for the turn's end would add
    /// latency and save no wakeup. A flush already scheduled stays and
    /// finds whatever comes after.
    fn post_now(&self, tx: &ReplyTx, message: FromApp) {
        lock(&self.out.batch).push((Arc::clone(tx), message));
        self.flush();
    }

    /// Has the batch flushed at the end of this turn of the loop, or at
    /// once when no loop is bound (or it refuses callbacks: closed).
    fn schedule_flush(&self, py: Python<'_>) {
        let flusher = lock(&self.out.flusher)
            .as_ref()
            .map(|(call_soon, flush)| (call_soon.clone_ref(py), flush.clone_ref(py)));
        if let Some((call_soon, flush)) = flusher {
            if call_soon.call1(py, (flush,)).is_ok() {
                return;
            }
        }
        self.flush();
    }

    /// Wakes the dispatcher for whatever is batched.
    fn flush(&self) {
        self.out.ready.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<ToLoop>> {
        lock(&self.queue)
    }

    /// Queues `event`; wakes the loop only if the queue was empty (a
    /// non-empty queue already has a wakeup pending).
    pub fn push(&self, event: ToLoop) {
        let was_empty = {
            let mut queue = self.lock();
            let was_empty = queue.is_empty();
            queue.push_back(event);
            was_empty
        };
        if was_empty {
            self.wake_loop();
        }
    }

    fn take(&self) -> VecDeque<ToLoop> {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from our eventfd;
        // EAGAIN just means no wakeup was pending.
        unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        self.drained_ms
            .store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *self.lock())
    }
}

/// Locks `mutex`, whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the app sends, as the I/O thread writes it.
#[derive(Debug)]
pub enum FromApp {
    /// `http.response.start`.
    Start {
        /// Status code.
        status: u16,
        /// Headers, names as the app gave them.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        /// Trailers follow the body (`http.response.trailers`).
        trailers: bool,
    },
    /// `http.response.informational` / `http.response.early_hint`: an
    /// interim 1xx response, before the final head.
    Informational {
        /// A 1xx status.
        status: u16,
        /// Its header fields.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `http.response.trailers`.
    Trailers {
        /// Trailer fields.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        /// More trailers follow.
        more: bool,
    },
    /// `http.response.pathsend`: the whole body is this file.
    PathSend {
        /// An absolute path.
        path: std::path::PathBuf,
    },
    /// `http.response.body`.
    Body {
        /// Bytes.
        data: Vec<u8>,
        /// Not the last piece.
        more: bool,
    },
    /// The first `receive()`: the app wants the body (`100 Continue`).
    WantBody,
    /// `websocket.accept`.
    WsAccept {
        /// The chosen subprotocol.
        subprotocol: Option<String>,
        /// Extra handshake response headers.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `websocket.send`.
    WsSend {
        /// A text message.
        text: Option<String>,
        /// A binary message.
        bytes: Option<Vec<u8>>,
    },
    /// `websocket.close` (before accept: a 403).
    WsClose {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The app failed before starting a response: answer 500.
    Error,
    /// The app failed or returned mid-response: close the connection.
    Abort,
}

/// State both threads see for one request.
#[derive(Default)]
pub struct ReplyShared {
    /// Response bytes queued and not yet written.
    pub unwritten: AtomicUsize,
    /// Set by a `send()` that ran out of credit; the I/O thread answers
    /// with [`ToLoop::Writable`] once below the credit again.
    pub wants_writable: AtomicBool,
    /// Body bytes handed to the loop and not yet `receive()`d.
    pub unread: AtomicUsize,
    /// Wakes the I/O thread when `unread` drops (read-ahead resumes).
    pub read_credit: Notify,
    /// The client is gone: `send()` raises.
    pub closed: AtomicBool,
}

/// The app's handle on one request's response (`send()`'s Rust half).
#[pyclass(module = "ferricorn", name = "AsgiReply")]
pub struct Reply {
    tx: ReplyTx,
    queue: Arc<LoopQueue>,
    shared: Arc<ReplyShared>,
    /// A slot the app call holds until it ends (the reply is dropped with
    /// the call's task), bounding a connection's concurrent app calls.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Reply {
    /// A reply whose messages go through `queue`'s outbox, and the
    /// receiving end the I/O thread keeps. Called on the I/O thread.
    pub fn new(
        queue: &Arc<LoopQueue>,
    ) -> (Self, mpsc::UnboundedReceiver<FromApp>, Arc<ReplyShared>) {
        queue.ensure_dispatcher();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ReplyShared::default());
        let reply = Reply {
            tx: Arc::new(tx),
            queue: Arc::clone(queue),
            shared: Arc::clone(&shared),
            _slot: None,
        };
        (reply, rx, shared)
    }

    /// Holds `slot` for as long as the app call lives.
    pub fn hold(&mut self, slot: tokio::sync::OwnedSemaphorePermit) {
        self._slot = Some(slot);
    }

    fn post(&self, py: Python<'_>, message: FromApp) -> PyResult<()> {
        if self.tx.is_closed() {
            // An OSError, as spec 2.4 promises for a send after the
            // client left (the I/O side dropped the response already).
            return Err(PyConnectionError::new_err("client disconnected"));
        }
        self.queue.post(py, &self.tx, message);
        Ok(())
    }
}

#[pymethods]
impl Reply {
    /// Whether the client is gone (or the I/O side stopped listening).
    #[getter]
    fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// Queues the response head (`trailers`: trailers follow the body).
    #[pyo3(signature = (status, headers, trailers=false))]
    fn start(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        trailers: bool,
    ) -> PyResult<()> {
        self.post(
            py,
            FromApp::Start {
                status,
                headers,
                trailers,
            },
        )
    }

    /// Queues an interim 1xx response.
    fn informational(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> PyResult<()> {
        self.post(py, FromApp::Informational { status, headers })
    }

    /// Queues trailer fields (`more`: more trailers follow).
    fn trailers(
        &self,
        py: Python<'_>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        more: bool,
    ) -> PyResult<()> {
        self.post(py, FromApp::Trailers { headers, more })
    }

    /// Queues the file at `path` as the whole body.
    fn pathsend(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        self.post(py, FromApp::PathSend { path })
    }

    /// Queues body bytes; returns True when the app must wait for
    /// [`ToLoop::Writable`] before sending more.
    fn body(&self, data: &Bound<'_, PyBytes>, more: bool) -> PyResult<bool> {
        let py = data.py();
        let data = data.as_bytes().to_vec();
        let len = data.len();
        let queued = self.shared.unwritten.fetch_add(len, Ordering::AcqRel) + len;
        let wait = more && queued > WRITE_CREDIT;
        if wait {
            self.shared.wants_writable.store(true, Ordering::Release);
        }
        self.post(py, FromApp::Body { data, more })?;
        Ok(wait)
    }

    /// Whether a `send()` that ran out of credit may go on already (the
    /// I/O thread caught up between `body()` and the wait).
    fn writable(&self) -> bool {
        let ok = self.shared.unwritten.load(Ordering::Acquire) <= WRITE_CREDIT;
        if ok {
            self.shared.wants_writable.store(false, Ordering::Release);
        }
        ok
    }

    /// The app took `n` body bytes: the I/O thread may read ahead more.
    fn consumed(&self, n: usize) {
        let _ = self
            .shared
            .unread
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
        self.shared.read_credit.notify_one();
    }

    /// The app called `receive()` for the first time.
    fn want_body(&self, py: Python<'_>) -> PyResult<()> {
        self.post(py, FromApp::WantBody)
    }

    /// `websocket.accept`.
    #[pyo3(signature = (subprotocol, headers))]
    fn ws_accept(
        &self,
        py: Python<'_>,
        subprotocol: Option<String>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> PyResult<()> {
        self.post(
            py,
            FromApp::WsAccept {
                subprotocol,
                headers,
            },
        )
    }

    /// `websocket.send`; True when the app must wait for write credit.
    #[pyo3(signature = (text, bytes))]
    fn ws_send(&self, text: Option<String>, bytes: Option<Vec<u8>>) -> PyResult<bool> {
        let len = text.as_ref().map_or(0, String::len) + bytes.as_ref().map_or(0, Vec::len);
        let queued = self.shared.unwritten.fetch_add(len, Ordering::AcqRel) + len;
        let wait = queued > WRITE_CREDIT;
        if wait {
            self.shared.wants_writable.store(true, Ordering::Release);
        }
        if self.tx.is_closed() {
            return Err(PyConnectionError::new_err("client disconnected"));
        }
        self.queue
            .post_now(&self.tx, FromApp::WsSend { text, bytes });
        Ok(wait)
    }

    /// `websocket.close`.
    fn ws_close(&self, py: Python<'_>, code: u16, reason: String) -> PyResult<()> {
        self.post(py, FromApp::WsClose { code, reason })
    }

    /// The app failed before starting: the client gets a 500.
    fn error(&self, py: Python<'_>) {
        self.queue.post(py, &self.tx, FromApp::Error);
    }

    /// The app failed or stopped mid-response: the connection closes.
    fn abort(&self, py: Python<'_>) {
        self.queue.post(py, &self.tx, FromApp::Abort);
    }
}

/// The loop's end-of-turn callback: hands the batch to the I/O thread.
#[pyclass(module = "ferricorn", name = "AsgiFlush")]
struct Flush {
    queue: Arc<LoopQueue>,
}

#[pymethods]
impl Flush {
    fn __call__(&self) {
        self.queue.flush();
    }
}

/// The loop's end of the [`LoopQueue`]: its descriptor for `add_reader`
/// and the call that turns queued events into Python tuples.
#[pyclass(module = "ferricorn", name = "AsgiInbox")]
pub struct Inbox {
    queue: Arc<LoopQueue>,
    root_path: String,
}

impl Inbox {
    /// The loop's end of `queue`; `root_path` goes into every scope.
    pub fn new(queue: Arc<LoopQueue>, root_path: String) -> Self {
        Self { queue, root_path }
    }
}

#[pymethods]
impl Inbox {
    /// The descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.queue.wake.as_raw_fd()
    }

    /// Binds the outbox's flushes to a loop (its `call_soon`), or, with
    /// None, unbinds it (messages then go out at once).
    fn bind_loop(&self, py: Python<'_>, call_soon: Option<Py<PyAny>>) -> PyResult<()> {
        let flusher = match call_soon {
            Some(call_soon) => {
                let flush = Flush {
                    queue: Arc::clone(&self.queue),
                };
                Some((call_soon, Bound::new(py, flush)?.into_any().unbind()))
            }
            None => None,
        };
        let old = std::mem::replace(&mut *lock(&self.queue.out.flusher), flusher);
        drop(old);
        Ok(())
    }

    /// Everything queued since the last call, as tuples:
    /// `(0, id, scope, reply)`, `(1, id, body, more)`, `(2, id)` disconnect,
    /// `(3, id)` writable, `(4,)` stop, `(5, id, text, bytes)` a WebSocket
    /// message, `(6, id, code, reason)` the WebSocket closed.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = self.queue.take();
        let out = PyList::empty(py);
        for event in events {
            let item = match event {
                ToLoop::Request { id, scope, reply } => {
                    let scope = scope.to_dict(py, &self.root_path)?;
                    let reply = Bound::new(py, reply)?;
                    PyTuple::new(
                        py,
                        [
                            0u8.into_pyobject(py)?.into_any(),
                            id.into_pyobject(py)?.into_any(),
                            scope.into_any(),
                            reply.into_any(),
                        ],
                    )?
                }
                ToLoop::Body { id, data, more } => PyTuple::new(
                    py,
                    [
                        1u8.into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                        PyBytes::new(py, &data).into_any(),
                        pyo3::types::PyBool::new(py, more).to_owned().into_any(),
                    ],
                )?,
                ToLoop::Disconnect { id } => PyTuple::new(
                    py,
                    [
                        2u8.into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                    ],
                )?,
                ToLoop::Writable { id } => PyTuple::new(
                    py,
                    [
                        3u8.into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                    ],
                )?,
                ToLoop::WsMessage { id, text, bytes } => PyTuple::new(
                    py,
                    [
                        5u8.into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                        text.into_pyobject(py)?.into_any(),
                        bytes
                            .map(|b| PyBytes::new(py, &b).into_any())
                            .unwrap_or_else(|| py.None().into_bound(py)),
                    ],
                )?,
                ToLoop::WsClosed { id, code, reason } => PyTuple::new(
                    py,
                    [
                        6u8.into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                        code.into_pyobject(py)?.into_any(),
                        reason.into_pyobject(py)?.into_any(),
                    ],
                )?,
                ToLoop::Stop => PyTuple::new(py, [4u8.into_pyobject(py)?.into_any()])?,
            };
            out.append(item)?;
        }
        Ok(out)
    }
}
