//! The `gthread` and `async` worker classes: one event-loop thread owns
//! every socket; complete requests run on a pool of app threads.
//!
//! Each connection is a task on the loop, driven by [`crate::http1`]. For
//! each request this class hands the request to the pool, then relays:
//! response frames from the app thread to the socket, and (once the app
//! starts reading) body chunks from the socket to the app thread, through
//! bounded channels, so a 1 GB upload never sits in memory and a slow
//! client never blocks an app thread.
//!
//! gthread and async share this relay and differ in the pool: `--threads`
//! threads started up front, or threads grown on demand up to
//! `--worker-connections` (gevent-style concurrency for blocking WSGI apps).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferricorn_http::{BodyDecoder, BodyKind, HttpError};
use tokio::sync::{mpsc, watch};

use crate::admission::IdleSet;
use crate::body::DRAIN_LIMIT;
use crate::channel_io::{BodyChunk, ChannelBody, Frame, NoticeRead};
use crate::exchange::{self, Ending, Exchange, ExchangeContext, Next, Peer, Pending};
use crate::gil_probe::GilProbe;
use crate::head::{ReadyHead, PREREAD_LIMIT};
use crate::http1::{Front, Http1Service};
use crate::io::{AsyncListener, AsyncStream};
use crate::outbuf::{self, BufferedWriter, OutBuf};
use crate::pool::AppPool;
use crate::quiet_end::{self, Outcome, QuietEnd};
use crate::shutdown::{ConnLimit, Shutdown};
use crate::sink::HttpSink;
use crate::stream::Listener;
use crate::{ClassOptions, WorkerError};

/// Body chunks buffered between the socket and the app thread.
const BODY_CHANNEL: usize = 4;
/// Response frames buffered between the app thread and the socket.
const FRAME_CHANNEL: usize = 16;
/// Largest body chunk read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// The pool shape of a threaded class.
#[derive(Debug)]
pub struct PoolShape {
    /// Threads started with the worker.
    pub initial: usize,
    /// Most threads the pool may grow to.
    pub max: usize,
}

/// What every connection task of a threaded worker shares.
pub(crate) struct Shared {
    pub(crate) ctx: Arc<ExchangeContext>,
    pub(crate) options: ClassOptions,
    pub(crate) pool: AppPool,
    pub(crate) shutdown: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Set while a task watches the pool's waiting jobs (see [`Shared::submit`]).
    growth_watch: std::sync::atomic::AtomicBool,
    /// Connections waiting for a request's first bytes, evictable.
    idle: Arc<IdleSet>,
    probe: GilProbe,
}

impl Shared {
    /// Beats the heartbeat, unless the app threads cannot get the GIL
    /// (see [`crate::gil_probe`]): then the master replaces the worker.
    fn beat(&self) {
        if self.probe.fresh() {
            self.ctx.heartbeat.beat();
        }
    }

    /// Hands `job` to the pool. While jobs wait for a busy thread, one
    /// task on the loop checks every [`crate::pool::STALL`] whether the
    /// threads are blocked and parked ones should be woken or the pool
    /// grown (async's on-demand threads).
    pub(crate) fn submit(self: &Arc<Self>, job: crate::pool::Job) {
        use std::sync::atomic::Ordering;
        let waits = self.pool.submit(job);
        if waits && !self.growth_watch.swap(true, Ordering::SeqCst) {
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    while shared.pool.has_waiting() {
                        tokio::time::sleep(crate::pool::STALL).await;
                        shared.pool.relieve();
                    }
                    shared.growth_watch.store(false, Ordering::SeqCst);
                    // A submit between the last check and the store saw the
                    // flag still set: look once more before leaving.
                    if !shared.pool.has_waiting()
                        || shared.growth_watch.swap(true, Ordering::SeqCst)
                    {
                        break;
                    }
                }
            });
        }
    }
}

/// Runs a threaded worker until `TERM`, then lets in-flight requests finish.
pub fn run(
    ctx: ExchangeContext,
    listeners: Vec<Listener>,
    options: ClassOptions,
    shape: PoolShape,
) -> Result<(), WorkerError> {
    let pool = AppPool::new(shape.initial, shape.max).map_err(WorkerError::Runtime)?;
    let probe = GilProbe::start().map_err(WorkerError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WorkerError::Runtime)?;
    runtime.block_on(serve(Arc::new(ctx), listeners, options, pool, probe))
}

async fn serve(
    ctx: Arc<ExchangeContext>,
    listeners: Vec<Listener>,
    options: ClassOptions,
    pool: AppPool,
    probe: GilProbe,
) -> Result<(), WorkerError> {
    let listeners = AsyncListener::register_all(listeners)?;
    let mut shutdown = Shutdown::listen(options.graceful_timeout)?;
    let limit = ConnLimit::new(options.max_connections);
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let shared = Arc::new(Shared {
        ctx,
        options,
        pool,
        shutdown: shutdown.notice(),
        tls,
        growth_watch: std::sync::atomic::AtomicBool::new(false),
        idle: Arc::new(IdleSet::default()),
        probe,
    });
    shared.ctx.heartbeat.ready();
    let idle = Arc::clone(&shared.idle);
    crate::admission::accept_until_stopped(
        listeners,
        &limit,
        &idle,
        &mut shutdown,
        |conn, admitted| {
            tokio::spawn(crate::http1::connection(
                Arc::clone(&shared),
                conn,
                admitted,
            ));
        },
        || shared.beat(),
    )
    .await;
    // Idle connections close now, busy ones after their current response.
    shutdown.drain(&limit, || shared.beat()).await;
    Ok(())
}

/// A threaded connection's relay, kept from request to request.
pub(crate) struct Relay {
    /// The bounded response buffer app threads write into.
    out: Arc<OutBuf>,
    /// Response frames from the app thread. One channel per connection:
    /// each exchange ends with `End`, so it is empty when the next starts.
    frames_tx: mpsc::Sender<Frame>,
    frames_rx: mpsc::Receiver<Frame>,
    /// Where an app thread leaves a keep-alive response's end without
    /// waking the loop; `None` where it cannot write directly (TLS) or
    /// keep-alive is off.
    quiet: Option<QuietSlot>,
}

/// A connection's [`QuietEnd`], and the stop notice its wait watches
/// (one per connection, not cloned per request).
struct QuietSlot {
    end: Arc<QuietEnd>,
    stopping: watch::Receiver<bool>,
}

impl Http1Service for Shared {
    type Conn = Relay;

    const PREREAD: u64 = PREREAD_LIMIT;

    fn front(&self) -> Front<'_> {
        Front {
            options: &self.options,
            idle: &self.idle,
            stopping: &self.shutdown,
            tls: self.tls.as_ref(),
            access_format: self.ctx.access_format.as_ref(),
        }
    }

    fn serve_h2(
        self: Arc<Self>,
        stream: AsyncStream,
        peer: Peer,
    ) -> impl Future<Output = ()> + Send {
        crate::h2::serve(self, stream, peer)
    }

    fn open(&self, stream: &AsyncStream) -> Relay {
        // One duplicate descriptor per connection lets app threads write
        // responses without a hop through the loop (see BufferedWriter);
        // what the client does not take waits in this bounded buffer.
        let direct = stream
            .dup_plain()
            .map(|fd| Arc::new(fd) as Arc<dyn std::os::fd::AsFd + Send + Sync>);
        let options = &self.options;
        let (frames_tx, frames_rx) = mpsc::channel::<Frame>(FRAME_CHANNEL);
        let quiet = (direct.is_some() && !options.keepalive.is_zero()).then(|| QuietSlot {
            end: Arc::new(QuietEnd::new(Arc::clone(&self.idle))),
            stopping: self.shutdown.clone(),
        });
        Relay {
            out: OutBuf::new(options.response_buffer, options.send_timeout, direct),
            frames_tx,
            frames_rx,
            quiet,
        }
    }

    fn exchange<'a>(
        self: &'a Arc<Self>,
        conn: &'a mut Relay,
        stream: &'a mut AsyncStream,
        peer: Peer,
        ready: ReadyHead,
        _spare: Vec<u8>,
        keep_alive: bool,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send + 'a {
        exchange(self, stream, conn, peer, ready, keep_alive)
    }

    fn abandon(self: &Arc<Self>, conn: &mut Relay) {
        abandon(self, &mut conn.frames_rx);
    }
}

/// Runs one request on the pool and relays its body and response. Returns
/// the bytes read past the body when the connection can carry another
/// request.
///
/// A keep-alive request without a body may end quietly (see
/// [`crate::quiet_end`]): the task then waits for the client's next bytes,
/// the keep-alive time, the stop or an eviction instead of the app's `End`.
async fn exchange(
    shared: &Arc<Shared>,
    stream: &mut AsyncStream,
    conn: &mut Relay,
    peer: Peer,
    ready: ReadyHead,
    keep_alive: bool,
) -> Option<Vec<u8>> {
    let Relay {
        out,
        frames_tx,
        frames_rx,
        quiet,
    } = conn;
    out.reset();
    let ReadyHead { head, pending } = ready;
    let frames_tx = frames_tx.clone();
    let body_error = crate::exchange::BodyError::default();
    let mut body = BodyPump::new(&head.body, pending, Arc::clone(&body_error));
    let (body_tx, body_rx) = if body.is_done() {
        (None, None)
    } else {
        let (tx, rx) = mpsc::channel::<BodyChunk>(BODY_CHANNEL);
        (Some(tx), Some(rx))
    };
    let expect_continue = head.expect_continue;
    // Not with a pipelined request already buffered: it is served as soon
    // as the app is done, with no bytes to come that would say so.
    let quiet = quiet
        .as_mut()
        .filter(|_| keep_alive && head.keep_alive && body.is_done() && body.raw.is_empty());
    let mut sink = HttpSink::new(
        BufferedWriter::new(Arc::clone(out)),
        head.version,
        head.method == "HEAD",
        keep_alive && head.keep_alive,
    );
    let mut reader: Box<dyn std::io::Read + Send> =
        Box::new(ChannelBody::new(body_rx, Some(frames_tx.clone())));
    if expect_continue && !body.is_done() {
        // The body comes only if the app asks for it (see below).
        let requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
        sink = sink.close_unless_body_requested(Arc::clone(&requested));
        reader = Box::new(NoticeRead::new(reader, requested));
    }
    let request = Exchange {
        peer,
        body: reader,
        sink: Box::new(sink),
        head,
        body_error,
    };
    let ctx = Arc::clone(&shared.ctx);
    let errors = Arc::clone(out);
    let frames = frames_tx.clone();
    let keepalive = shared.options.keepalive;
    let quiet_end = quiet
        .as_ref()
        .map(|quiet| (Arc::clone(&quiet.end), Arc::clone(out)));
    let mut armed = quiet.map(|quiet| quiet.end.arm(&mut quiet.stopping, keepalive));
    shared.submit(Box::new(move || {
        // Sends `End` even if the exchange panics, so the connection task,
        // which keeps the channel open, never waits forever.
        let mut end = EndOnDrop::new(frames, Arc::clone(&ctx));
        end.quiet = quiet_end;
        let mut writer = BufferedWriter::new(errors);
        let mut reject = |error: &HttpError| {
            let _ = std::io::Write::write_all(&mut writer, &error.to_response());
        };
        end.ending = Some(exchange::serve(&ctx, request, &mut reject));
    }));

    let mut body_tx = body_tx;
    let mut want_body = false;
    let body_timeout = shared.options.body_timeout;
    let next = loop {
        let may_read = want_body && body_tx.is_some() && !body.is_done();
        tokio::select! {
            outcome = quiet_end::wait(armed.as_mut(), stream), if armed.is_some() => match outcome {
                // The app's end comes through the channel now.
                Outcome::Listen => armed = None,
                Outcome::NextRequest => break Next::KeepAlive,
                Outcome::Close => return None,
            },
            frame = frames_rx.recv() => match frame {
                Some(Frame::WantBody) => {
                    want_body = true;
                    if expect_continue
                        && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
                    {
                        return None;
                    }
                }
                Some(Frame::End(ending)) => {
                    armed = None;
                    // Everything the app produced so far is queued.
                    if let Err(error) = outbuf::drain(out, stream).await {
                        if let Ending::Pending(pending) = ending {
                            abort_on_pool(shared, pending, error);
                        }
                        return None;
                    }
                    match ending {
                        Ending::Done(next) => break next,
                        Ending::Pending(pending) => resume_on_pool(shared, pending, &frames_tx),
                    }
                }
                None => break Next::Close,
            },
            () = outbuf::queued(out) => {
                if outbuf::drain(out, stream).await.is_err() {
                    // The app's next write fails; its End finds no one.
                    return None;
                }
            },
            permit = async { body_tx.clone()?.reserve_owned().await.ok() }, if may_read => {
                let Some(permit) = permit else {
                    body_tx = None;
                    continue;
                };
                match body.next_chunk(stream, body_timeout).await {
                    Ok(Some(chunk)) => {
                        permit.send(Ok(chunk));
                        if body.is_done() {
                            // Closing the channel is the app's end-of-body.
                            body_tx = None;
                        }
                    }
                    Ok(None) => {
                        drop(permit);
                        body_tx = None;
                    }
                    Err(reason) => {
                        let _ = permit.send(Err(reason));
                        body_tx = None;
                    }
                }
            },
        }
    };
    drop(body_tx);
    if next != Next::KeepAlive || body.failed() {
        return None;
    }
    if !body.is_done() {
        if expect_continue && !want_body {
            // The client may still be waiting to send the body we never asked for.
            return None;
        }
        if !body.drain(stream, body_timeout).await {
            return None;
        }
    }
    Some(body.into_leftover())
}

/// Pulls more of a suspended response on an app thread; its `End` comes
/// back through `frames`.
fn resume_on_pool(shared: &Arc<Shared>, pending: Box<Pending>, frames: &mpsc::Sender<Frame>) {
    let ctx = Arc::clone(&shared.ctx);
    let frames = frames.clone();
    shared.submit(Box::new(move || {
        let mut end = EndOnDrop::new(frames, Arc::clone(&ctx));
        end.ending = Some(pending.resume(&ctx));
    }));
}

/// The connection is given up on: a suspended response already sent to
/// it (or sent later, see [`EndOnDrop`]) still gets its iterable closed.
fn abandon(shared: &Arc<Shared>, frames: &mut mpsc::Receiver<Frame>) {
    frames.close();
    while let Ok(frame) = frames.try_recv() {
        if let Frame::End(Ending::Pending(pending)) = frame {
            abort_on_pool(shared, pending, std::io::ErrorKind::BrokenPipe.into());
        }
    }
}

/// Closes a suspended response whose client stopped reading, on an app
/// thread (the app's `close()` may take its time).
fn abort_on_pool(shared: &Arc<Shared>, pending: Box<Pending>, why: std::io::Error) {
    let ctx = Arc::clone(&shared.ctx);
    shared.submit(Box::new(move || pending.abort(&ctx, why)));
}

/// Ends an exchange from the app thread's side when dropped.
struct EndOnDrop {
    frames: mpsc::Sender<Frame>,
    ctx: Arc<ExchangeContext>,
    ending: Option<Ending>,
    /// Where a keep-alive end may be left without waking the loop, and the
    /// buffer that must be empty for it (the response written completely).
    quiet: Option<(Arc<QuietEnd>, Arc<OutBuf>)>,
}

impl EndOnDrop {
    fn new(frames: mpsc::Sender<Frame>, ctx: Arc<ExchangeContext>) -> Self {
        Self {
            frames,
            ctx,
            ending: None,
            quiet: None,
        }
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let ending = self.ending.take().unwrap_or(Ending::Done(Next::Close));
        if let (Ending::Done(Next::KeepAlive), Some((quiet, out))) = (&ending, &self.quiet) {
            if out.is_empty() && quiet.finish() {
                return;
            }
        }
        if let Err(mpsc::error::SendError(Frame::End(Ending::Pending(pending)))) =
            self.frames.blocking_send(Frame::End(ending))
        {
            // The connection is gone: the app's iterable still gets closed.
            pending.abort(&self.ctx, std::io::ErrorKind::BrokenPipe.into());
        }
    }
}

/// The request body as it comes off the socket: framing removed, bytes
/// past its end kept for the next request.
struct BodyPump {
    decoder: BodyDecoder,
    raw: Vec<u8>,
    error_slot: crate::exchange::BodyError,
}

impl BodyPump {
    fn new(kind: &BodyKind, pending: Vec<u8>, error_slot: crate::exchange::BodyError) -> Self {
        Self {
            decoder: BodyDecoder::new(kind),
            raw: pending,
            error_slot,
        }
    }

    fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    fn failed(&self) -> bool {
        self.decoder.error().is_some()
    }

    /// Records `error` as the body's failure; what the app's read raises.
    fn fail(&mut self, error: HttpError) -> String {
        let error = self.decoder.fail(error);
        let message = crate::body::read_error(&error).to_string();
        let _ = self.error_slot.set(error);
        message
    }

    /// The next piece of body; `None` at its end.
    async fn next_chunk(
        &mut self,
        stream: &mut AsyncStream,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(error) = self.decoder.error() {
                return Err(crate::body::read_error(error).to_string());
            }
            if self.is_done() {
                return Ok(None);
            }
            if !self.raw.is_empty() {
                let decoded = match self.decoder.decode_in_place(&mut self.raw) {
                    Ok(decoded) => decoded,
                    Err(error) => return Err(self.fail(error)),
                };
                // Body bytes are at the front; what follows the consumed
                // part (the next request) stays raw.
                let rest = self.raw.split_off(decoded.consumed);
                self.raw.truncate(decoded.body);
                let chunk = std::mem::replace(&mut self.raw, rest);
                if !chunk.is_empty() {
                    return Ok(Some(chunk));
                }
                if self.is_done() {
                    return Ok(None);
                }
            }
            self.raw.reserve(READ_CHUNK);
            match tokio::time::timeout(timeout, stream.read_buf(&mut self.raw)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) => {
                    if let Err(error) = self.decoder.end_of_input() {
                        return Err(self.fail(error));
                    }
                }
                Ok(Err(e)) => {
                    let detail = format!("error reading the request body: {e}");
                    return Err(self.fail(HttpError::bad_request(detail)));
                }
                Err(_) => return Err(self.fail(crate::body::timeout_error())),
            }
        }
    }

    /// Reads and discards the rest of the body, within a bound.
    async fn drain(&mut self, stream: &mut AsyncStream, timeout: Duration) -> bool {
        let mut drained = 0u64;
        while !self.is_done() {
            match self.next_chunk(stream, timeout).await {
                Ok(Some(chunk)) => {
                    drained += chunk.len() as u64;
                    if drained > DRAIN_LIMIT {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        true
    }

    fn into_leftover(self) -> Vec<u8> {
        self.raw
    }
}
