//! The `sync` worker class: one event-loop thread, the app called inline on
//! it, one request at a time, the connection closed after each response.
//!
//! The event loop reads request heads (and small bodies) of any number of
//! connections, so slow clients wait on the loop, not on the app. A worker
//! busy in the app does not poll its listeners, leaving new connections in
//! the kernel queue for an idle sibling. A freshly accepted connection gets
//! a short grace to deliver its head before the worker accepts another, so
//! two simultaneous requests land on two workers, as with gunicorn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::admission::{out_of_descriptors, AcceptErrors, Admitted, IdleSet};
use crate::exchange::{self, Ending, ExchangeContext, Peer};
use crate::head::{
    read_available, read_head, refuse_head, timeout_error, HeadError, HeadReader, Progress,
    ReadyHead, PREREAD_LIMIT,
};
use crate::io::{Accepted, AsyncListener, AsyncStream};
use crate::outbuf::{self, Direct, OutBuf};
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
    let listeners = seeds
        .into_iter()
        .map(AsyncListener::register)
        .collect::<Result<Vec<_>, _>>()
        .map_err(WorkerError::Runtime)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(WorkerError::Runtime)?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Ready>();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut tick = tokio::time::interval(crate::BEAT_INTERVAL);
    let options = Arc::new(options);
    let idle = Arc::new(IdleSet::default());
    let mut errors = AcceptErrors::default();
    ctx.heartbeat.ready();
    // Kept across turns of the loop: a connection accepted while waiting
    // for a slot to free must not be dropped when another branch wins.
    let accept = crate::admission::accept(&listeners, &slots, &idle);
    tokio::pin!(accept);

    loop {
        tokio::select! {
            biased;
            _ = terminate.recv() => break,
            Some(ready) = ready_rx.recv() => {
                if let Some(ready) = serve_inline(&ctx, &options, ready) {
                    retry_when_freed(ready, &options, &idle, &ready_tx);
                }
            }
            accepted = &mut accept => {
                accept.set(crate::admission::accept(&listeners, &slots, &idle));
                match accepted {
                Ok((conn, admitted)) => {
                    // Permits held besides this connection's own.
                    let others = options.max_connections.max(1) - slots.available_permits() - 1;
                    let at_cap = slots.available_permits() == 0;
                    let grace = if at_cap || errors.recently_exhausted() {
                        // Out of slots or descriptors, a flood may fill
                        // the kernel queue: a silent connection waits on
                        // a reader task, not on the loop.
                        Duration::ZERO
                    } else if others == 0 {
                        FIRST_BYTES_GRACE
                    } else {
                        FIRST_BYTES_GRACE_BUSY
                    };
                    on_accept(&ctx, &options, conn, admitted, &ready_tx, grace, &idle).await
                }
                Err(error) => errors.recover(error, &idle).await,
            }},
            _ = tick.tick() => {}
        }
        ctx.heartbeat.beat();
    }
    // Graceful stop: responses still going out to slow readers get up to
    // `--graceful-timeout` to finish.
    let drained = async {
        while SENDING.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ctx.heartbeat.beat();
        }
    };
    let _ = tokio::time::timeout(options.graceful_timeout, drained).await;
    Ok(())
}

/// Responses whose rest the loop is sending (one sync worker per process).
static SENDING: AtomicUsize = AtomicUsize::new(0);

/// Counts one response in [`SENDING`] while it lives.
struct Sending;

impl Sending {
    fn start() -> Self {
        SENDING.fetch_add(1, Ordering::SeqCst);
        Sending
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        SENDING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A new connection: serve it right away when its head is already here,
/// else leave it to a reader task on the loop.
async fn on_accept(
    ctx: &Arc<ExchangeContext>,
    options: &Arc<ClassOptions>,
    conn: Accepted,
    admitted: Admitted,
    ready_tx: &mpsc::UnboundedSender<Ready>,
    grace: Duration,
    idle: &Arc<IdleSet>,
) {
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
            if let Some(ready) = serve_inline(ctx, options, ready) {
                retry_when_freed(ready, options, idle, ready_tx);
            }
        }
        Progress::Invalid(error) => {
            let answer = refuse_head(ctx.access_format.as_ref(), &peer, &error, &reader.buf);
            let _ = stream.write_all(&answer).await;
        }
        Progress::NeedMore => {
            let options = Arc::clone(options);
            let ctx = Arc::clone(ctx);
            let ready_tx = ready_tx.clone();
            let idle = Arc::clone(idle);
            let buffered = std::mem::take(&mut reader.buf);
            tokio::spawn(async move {
                let mut reader = HeadReader::new(&options.parser, &options.proxy, PREREAD_LIMIT);
                reader.buf = buffered;
                let deadline = Instant::now() + options.header_timeout;
                if reader.buf.is_empty() {
                    // Silent so far: the accept path may close it for room.
                    let entry = idle.enter();
                    tokio::select! {
                        _ = tokio::time::timeout_at(deadline, stream.has_data()) => {}
                        _ = entry.evicted() => return,
                    }
                }
                match read_head(&mut stream, &mut reader, &mut peer, deadline).await {
                    Ok(head) => {
                        let _ = ready_tx.send(Ready {
                            stream,
                            peer,
                            head,
                            _admitted: admitted,
                        });
                    }
                    Err(HeadError::Invalid(error)) => {
                        let access = ctx.access_format.as_ref();
                        let answer = refuse_head(access, &peer, &error, &reader.buf);
                        let _ = stream.write_all(&answer).await;
                    }
                    Err(HeadError::Timeout) => {
                        let error = timeout_error(options.header_timeout);
                        let _ = stream.write_all(&error.to_response()).await;
                    }
                    Err(HeadError::Closed) => {}
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
    let sending = Sending::start();
    tokio::spawn(async move {
        let _sending = sending;
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
fn retry_when_freed(
    ready: Ready,
    options: &Arc<ClassOptions>,
    idle: &Arc<IdleSet>,
    ready_tx: &mpsc::UnboundedSender<Ready>,
) {
    let idle = Arc::clone(idle);
    let ready_tx = ready_tx.clone();
    let deadline = Instant::now() + options.header_timeout;
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
