//! The `sync` worker class: one event-loop thread, the app called inline on
//! it, one request at a time, the connection closed after each response.
//!
//! Connections are driven by [`crate::http1`], like every class's: the
//! loop reads request heads (and small bodies) of any number of
//! connections, so slow clients wait on the loop, not on the app. The
//! exchange calls the app right there, on the loop's thread, so a worker
//! busy in the app does not poll its listeners, leaving new connections in
//! the kernel queue for an idle sibling. A freshly accepted connection gets
//! a short grace to deliver its head before the worker accepts another, so
//! two simultaneous requests land on two workers, as with gunicorn.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::admission::{out_of_descriptors, AcceptErrors, IdleSet};
use crate::exchange::{self, Ending, ExchangeContext, Peer};
use crate::head::{ReadyHead, PREREAD_LIMIT};
use crate::http1::{Front, Http1Service};
use crate::io::{AsyncListener, AsyncStream};
use crate::outbuf::{self, Direct, OutBuf};
use crate::shutdown::{ConnLimit, Shutdown};
use crate::stream::{Listener, SharedStream, Stream};
use crate::{ClassOptions, WorkerError};

/// How long a new connection may take to send its first bytes before the
/// worker stops waiting for it and accepts others, when it holds no other
/// connection: long enough for a client that connects and then sends, so a
/// sibling worker takes the next connection instead of this one.
const FIRST_BYTES_GRACE: Duration = Duration::from_millis(200);
/// The same grace while other connections are already waiting on this
/// worker (slow clients, perhaps an attack): short, so accepting goes on.
const FIRST_BYTES_GRACE_BUSY: Duration = Duration::from_millis(5);

/// Runs the sync worker until `TERM`.
pub fn run(
    ctx: ExchangeContext,
    listeners: Vec<Listener>,
    options: ClassOptions,
) -> Result<(), WorkerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WorkerError::Runtime)?;
    runtime.block_on(serve(Arc::new(ctx), listeners, options))
}

/// What every connection of a sync worker shares.
struct Inline {
    ctx: Arc<ExchangeContext>,
    options: ClassOptions,
    /// Connections waiting for a request's first bytes, evictable.
    idle: Arc<IdleSet>,
    /// Turns `true` when the worker stops.
    stopping: watch::Receiver<bool>,
}

async fn serve(
    ctx: Arc<ExchangeContext>,
    listeners: Vec<Listener>,
    options: ClassOptions,
) -> Result<(), WorkerError> {
    let listeners = AsyncListener::register_all(listeners)?;
    let mut shutdown = Shutdown::listen(options.graceful_timeout)?;
    let limit = ConnLimit::new(options.max_connections);
    let mut tick = tokio::time::interval(crate::BEAT_INTERVAL);
    let service = Arc::new(Inline {
        ctx,
        options,
        idle: Arc::new(IdleSet::default()),
        stopping: shutdown.notice(),
    });
    let mut errors = AcceptErrors::default();
    service.ctx.heartbeat.ready();
    {
        // Kept across turns of the loop: a connection accepted while
        // waiting for a slot to free must not be dropped when another
        // branch wins.
        let accept = crate::admission::accept(&listeners, &limit, &service.idle);
        tokio::pin!(accept);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                accepted = &mut accept => {
                    accept.set(crate::admission::accept(&listeners, &limit, &service.idle));
                    match accepted {
                        Ok((conn, admitted)) => {
                            // Out of slots or descriptors, a flood may fill
                            // the kernel queue: accept on at once.
                            let grace = if limit.at_cap() || errors.recently_exhausted() {
                                Duration::ZERO
                            } else if limit.held() == 1 {
                                FIRST_BYTES_GRACE
                            } else {
                                FIRST_BYTES_GRACE_BUSY
                            };
                            let deadline = Instant::now() + grace;
                            let _ = tokio::time::timeout_at(deadline, conn.stream.has_data()).await;
                            tokio::spawn(crate::http1::connection(Arc::clone(&service), conn, admitted));
                            // Let the connection take its request (and run
                            // the app, if the head is here) before the loop
                            // looks at the listeners again.
                            tokio::task::yield_now().await;
                        }
                        Err(error) => errors.recover(error, &service.idle).await,
                    }
                },
                _ = tick.tick() => {}
            }
            service.ctx.heartbeat.beat();
        }
    }
    // No new connections (siblings take them). Requests whose heads arrive
    // within `--graceful-timeout` are still served and responses going out
    // to slow readers may finish.
    drop(listeners);
    shutdown
        .drain(&limit, || service.ctx.heartbeat.beat())
        .await;
    Ok(())
}

impl Http1Service for Inline {
    type Conn = ();

    const PREREAD: u64 = PREREAD_LIMIT;

    fn front(&self) -> Front<'_> {
        Front {
            options: &self.options,
            idle: &self.idle,
            stopping: &self.stopping,
            // TLS and h2c connections go to an app thread (`classes::sync`).
            tls: None,
            access_format: self.ctx.access_format.as_ref(),
        }
    }

    fn serve_h2(
        self: Arc<Self>,
        _stream: AsyncStream,
        _peer: Peer,
    ) -> impl Future<Output = ()> + Send {
        // Not chosen for h2c (`classes::sync`): the connection just closes.
        std::future::ready(())
    }

    fn open(&self, _stream: &AsyncStream) {}

    async fn exchange(
        self: &Arc<Self>,
        _conn: &mut (),
        stream: &mut AsyncStream,
        peer: Peer,
        ready: ReadyHead,
        _spare: Vec<u8>,
        _keep_alive: bool,
    ) -> Option<Vec<u8>> {
        let app_side = self.app_side(stream).await?;
        // `--timeout` counts from here: the loop may have been idle since
        // its last beat, and it cannot beat again until the app returns.
        self.ctx.heartbeat.beat();
        let options = &self.options;
        let app_side = Arc::new(app_side);
        let shared = SharedStream::new(Arc::clone(&app_side), options.body_timeout);
        let direct: Direct = app_side;
        let out = OutBuf::new(options.response_buffer, options.send_timeout, Some(direct));
        // The app runs here, on the loop's thread: nothing else on this
        // worker moves until it returns. gunicorn's sync worker never keeps
        // a connection alive.
        let ReadyHead { head, pending } = ready;
        let mut ending = exchange::serve_blocking(
            &self.ctx,
            shared,
            Arc::clone(&out),
            peer,
            head,
            pending,
            false,
        );
        // What the client did not take at once goes out from the loop
        // (pulling more of an iterable response as it drains), while the
        // loop goes back to accepting.
        loop {
            let drained = outbuf::drain(&out, stream).await;
            match (ending, drained) {
                (Ending::Done(_), _) => return None,
                (Ending::Pending(pending), Ok(())) => ending = pending.resume(&self.ctx),
                (Ending::Pending(pending), Err(error)) => {
                    pending.abort(&self.ctx, error);
                    return None;
                }
            }
        }
    }

    fn abandon(self: &Arc<Self>, _conn: &mut ()) {}
}

impl Inline {
    /// The app's own descriptor for the connection. Out of descriptors, one
    /// is freed (closing the oldest idle connection, or waiting for one of
    /// ours to close) until `--header-timeout` has passed.
    async fn app_side(&self, stream: &AsyncStream) -> Option<Stream> {
        let deadline = Instant::now() + self.options.header_timeout;
        loop {
            match stream.dup_std() {
                Ok(app_side) => return Some(app_side),
                Err(error) if out_of_descriptors(&error) && Instant::now() < deadline => {
                    self.idle.free_one().await;
                }
                Err(error) => {
                    tracing::debug!("cannot take over the connection: {error}");
                    return None;
                }
            }
        }
    }
}
