//! The `sync` worker class: one event-loop thread, the app called inline on
//! it, one request at a time, the connection closed after each response.
//!
//! The event loop reads request heads (and small bodies) of any number of
//! connections, so slow clients wait on the loop, not on the app. A worker
//! busy in the app does not poll its listeners, leaving new connections in
//! the kernel queue for an idle sibling. A freshly accepted connection gets
//! a short grace to deliver its head before the worker accepts another, so
//! two simultaneous requests land on two workers, as with gunicorn.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::admission::{out_of_descriptors, AcceptErrors, Admitted, IdleSet};
use crate::exchange::{self, Ending, ExchangeContext, Peer};
use crate::head::{read_available, refuse_head, HeadReader, Progress, ReadyHead, PREREAD_LIMIT};
use crate::http1::read_request;
use crate::io::{Accepted, AsyncListener, AsyncStream};
use crate::outbuf::{self, Direct, OutBuf};
use crate::shutdown::{ConnLimit, Shutdown};
use crate::stream::SharedStream;
use crate::{ClassOptions, WorkerError};

/// How long a new connection may take to send its first bytes before the
/// worker stops waiting for it and accepts others, when it holds no other
/// connection: long enough for a client that connects and then sends, so a
/// sibling worker takes the next connection instead of this one.
const FIRST_BYTES_GRACE: Duration = Duration::from_millis(200);
/// The same grace while other connections are already waiting on this
/// worker (slow clients, perhaps an attack): short, so accepting goes on.
const FIRST_BYTES_GRACE_BUSY: Duration = Duration::from_millis(5);

/// A request whose head is complete, waiting for the app.
struct Ready {
    stream: AsyncStream,
    peer: Peer,
    head: ReadyHead,
    _admitted: Admitted,
}

/// Runs the sync worker until `TERM`.
pub fn run(
    ctx: ExchangeContext,
    listeners: Vec<AsyncListenerSeed>,
    options: ClassOptions,
) -> Result<(), WorkerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WorkerError::Runtime)?;
    runtime.block_on(serve(Arc::new(ctx), listeners, options))
}

/// A listener not yet registered with a runtime.
pub type AsyncListenerSeed = crate::stream::Listener;

async fn serve(
    ctx: Arc<ExchangeContext>,
    seeds: Vec<AsyncListenerSeed>,
    options: ClassOptions,
) -> Result<(), WorkerError> {
    let listeners = AsyncListener::register_all(seeds)?;
    let mut shutdown = Shutdown::listen(options.graceful_timeout)?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Ready>();
    let limit = ConnLimit::new(options.max_connections);
    let mut tick = tokio::time::interval(crate::BEAT_INTERVAL);
    let state = Arc::new(LoopState {
        options,
        idle: Arc::new(IdleSet::default()),
        stopping: shutdown.notice(),
        ready_tx,
    });
    let mut errors = AcceptErrors::default();
    ctx.heartbeat.ready();
    {
        // Kept across turns of the loop: a connection accepted while
        // waiting for a slot to free must not be dropped when another
        // branch wins.
        let accept = crate::admission::accept(&listeners, &limit, &state.idle);
        tokio::pin!(accept);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                Some(ready) = ready_rx.recv() => state.serve(&ctx, ready),
                accepted = &mut accept => {
                    accept.set(crate::admission::accept(&listeners, &limit, &state.idle));
                    match accepted {
                        Ok((conn, admitted)) => {
                            let grace = if limit.at_cap() || errors.recently_exhausted() {
                                // Out of slots or descriptors, a flood may
                                // fill the kernel queue: a silent connection
                                // waits on a reader task, not on the loop.
                                Duration::ZERO
                            } else if limit.held() == 1 {
                                FIRST_BYTES_GRACE
                            } else {
                                FIRST_BYTES_GRACE_BUSY
                            };
                            on_accept(&ctx, &state, conn, admitted, grace).await
                        }
                        Err(error) => errors.recover(error, &state.idle).await,
                    }
                },
                _ = tick.tick() => {}
            }
            ctx.heartbeat.beat();
        }
    }
    // Graceful stop: no new connections (siblings take them). Requests
    // whose heads arrive within `--graceful-timeout` are still served and
    // responses going out to slow readers may finish; silent connections
    // close now (their reader tasks watch the notice).
    drop(listeners);
    shutdown.begin();
    let deadline = shutdown.deadline();
    loop {
        tokio::select! {
            biased;
            Some(ready) = ready_rx.recv() => state.serve(&ctx, ready),
            _ = limit.all_closed() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => {}
        }
        ctx.heartbeat.beat();
    }
    Ok(())
}

/// What the loop and its reader tasks share.
struct LoopState {
    options: ClassOptions,
    idle: Arc<IdleSet>,
    /// Turns `true` when the worker stops.
    stopping: watch::Receiver<bool>,
    /// Where reader tasks hand complete heads back to the loop.
    ready_tx: mpsc::UnboundedSender<Ready>,
}

impl LoopState {
    /// Serves `ready` inline, or queues it again once a descriptor frees.
    fn serve(self: &Arc<Self>, ctx: &Arc<ExchangeContext>, ready: Ready) {
        if let Some(ready) = serve_inline(ctx, &self.options, ready) {
            retry_when_freed(ready, self);
        }
    }
}

/// A new connection: serve it right away when its head is already here,
/// else leave it to a reader task on the loop.
async fn on_accept(
    ctx: &Arc<ExchangeContext>,
    state: &Arc<LoopState>,
    conn: Accepted,
    admitted: Admitted,
    grace: Duration,
) {
    let options = &state.options;
    let (mut stream, mut peer) = conn.into_parts();
    let mut reader = HeadReader::new(&options.parser, &options.proxy, PREREAD_LIMIT);
    // Readiness can be reported before any byte is there: wait for bytes.
    let deadline = Instant::now() + grace;
    loop {
        if !read_available(&stream, &mut reader.buf) {
            return;
        }
        if !reader.buf.is_empty()
            || tokio::time::timeout_at(deadline, stream.readable())
                .await
                .is_err()
        {
            break;
        }
    }
    match reader.advance(&mut peer) {
        Progress::Ready(head) => {
            let ready = Ready {
                stream,
                peer,
                head,
                _admitted: admitted,
            };
            state.serve(ctx, ready);
        }
        Progress::Invalid(error) => {
            let answer = refuse_head(ctx.access_format.as_ref(), &peer, &error, &reader.buf);
            let _ = stream.write_all(&answer).await;
        }
        Progress::NeedMore => {
            let ctx = Arc::clone(ctx);
            let state = Arc::clone(state);
            let buffered = std::mem::take(&mut reader.buf);
            tokio::spawn(async move {
                let options = &state.options;
                let mut reader = HeadReader::new(&options.parser, &options.proxy, PREREAD_LIMIT);
                reader.buf = buffered;
                let deadline = Instant::now() + options.header_timeout;
                if reader.buf.is_empty() {
                    // Silent so far: the accept path may close it for room,
                    // and a stopping worker does not wait for it.
                    let entry = state.idle.enter();
                    let mut stopping = state.stopping.clone();
                    tokio::select! {
                        _ = tokio::time::timeout_at(deadline, stream.has_data()) => {}
                        _ = entry.evicted() => return,
                        _ = stopping.wait_for(|stopping| *stopping) => return,
                    }
                }
                let access = ctx.access_format.as_ref();
                let timeout = options.header_timeout;
                let read = read_request(
                    &mut stream,
                    &mut reader,
                    &mut peer,
                    deadline,
                    access,
                    timeout,
                );
                if let Some(head) = read.await {
                    let _ = state.ready_tx.send(Ready {
                        stream,
                        peer,
                        head,
                        _admitted: admitted,
                    });
                }
            });
        }
    }
}

/// Hands the connection to the app on this thread; the loop waits for the
/// app, never for the client: what the client does not take at once stays
/// in the connection's bounded buffer, and a task on the loop sends it
/// (pulling more of an iterable response as it drains), while the loop
/// goes back to accepting.
///
/// Gives the request back when the app's descriptor for the connection
/// cannot be had because the process is out of descriptors.
fn serve_inline(ctx: &Arc<ExchangeContext>, options: &ClassOptions, ready: Ready) -> Option<Ready> {
    let app_side = match ready.stream.dup_std() {
        Ok(app_side) => app_side,
        Err(error) if out_of_descriptors(&error) => return Some(ready),
        Err(error) => {
            tracing::debug!("cannot take over the connection: {error}");
            return None;
        }
    };
    let Ready {
        stream,
        peer,
        head,
        _admitted,
    } = ready;
    // `--timeout` counts from here: the loop may have been idle since its
    // last beat, and it cannot beat again until the app returns.
    ctx.heartbeat.beat();
    let app_side = Arc::new(app_side);
    let shared = SharedStream::new(Arc::clone(&app_side), options.body_timeout);
    let direct: Direct = app_side;
    let out = OutBuf::new(options.response_buffer, options.send_timeout, Some(direct));
    // gunicorn's sync worker never keeps a connection alive.
    let ending = exchange::serve_blocking(
        ctx,
        shared,
        Arc::clone(&out),
        peer,
        head.head,
        head.pending,
        false,
    );
    if matches!(ending, Ending::Done(_)) && out.is_empty() {
        close(stream);
        return None;
    }
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        // The slot is held until the response is out: the graceful stop
        // waits for it.
        let _admitted = _admitted;
        let mut stream = stream;
        let mut ending = ending;
        loop {
            let drained = outbuf::drain(&out, &mut stream).await;
            match (ending, drained) {
                (Ending::Done(_), _) => break,
                (Ending::Pending(pending), Ok(())) => ending = pending.resume(&ctx),
                (Ending::Pending(pending), Err(error)) => {
                    pending.abort(&ctx, error);
                    break;
                }
            }
        }
        close(stream);
    });
    None
}

/// A request whose connection could not be handed to the app for want of
/// a descriptor: frees one (closing the oldest idle connection, or waiting
/// for one of ours to close) and queues the request again, until its
/// `--header-timeout` has passed.
fn retry_when_freed(ready: Ready, state: &Arc<LoopState>) {
    let idle = Arc::clone(&state.idle);
    let ready_tx = state.ready_tx.clone();
    let deadline = Instant::now() + state.options.header_timeout;
    tokio::spawn(async move {
        loop {
            idle.free_one().await;
            match ready.stream.dup_std() {
                // A descriptor is free again: serve it on the loop.
                Ok(_probe) => break,
                Err(error) if out_of_descriptors(&error) && Instant::now() < deadline => {}
                Err(error) => {
                    tracing::debug!("cannot take over the connection: {error}");
                    return;
                }
            }
        }
        let _ = ready_tx.send(ready);
    });
}

/// Ends the response: the client sees the end now, even while a copy of
/// the descriptor lives on in a Python object (a traceback cycle).
fn close(stream: AsyncStream) {
    if let Ok(std) = stream.into_std() {
        let _ = std.shutdown_write();
    }
}
