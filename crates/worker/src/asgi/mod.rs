//! The `async` class serving an ASGI app: the asyncio loop on the main
//! thread, the tokio I/O loop on a thread beside it.
//!
//! Order of a worker's life: the lifespan startup runs on the loop before
//! any listener is served (a failure or a startup longer than `--timeout`
//! is a boot failure, exit 3); then the I/O thread accepts and reports
//! ready; on `TERM` it stops accepting, lets open requests finish within
//! `--graceful-timeout`, and tells the loop to stop; then the lifespan
//! shutdown runs in what is left of the graceful time.

mod conn;
mod deflate;
mod h2;
mod pathsend;
mod response;
mod tls_info;
mod ws;

pub use ws::WsOptions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferricorn_python::asgi::events::{LoopQueue, ToLoop};
use ferricorn_python::asgi::{AsgiOptions, AsgiRunner};
use pyo3::{Py, PyAny, Python};
use tokio::sync::watch;

use crate::access_log::AccessFormat;
use crate::admission::IdleSet;
use crate::io::AsyncListener;
use crate::policy::RequestPolicy;
use crate::shutdown::{ConnLimit, Shutdown};
use crate::stream::Listener;
use crate::{ClassOptions, Heartbeat, WorkerError};

/// What every ASGI connection task shares.
pub(crate) struct AsgiShared {
    pub(crate) queue: Arc<LoopQueue>,
    pub(crate) policy: RequestPolicy,
    pub(crate) access_format: Option<AccessFormat>,
    pub(crate) heartbeat: Arc<dyn Heartbeat>,
    pub(crate) options: ClassOptions,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// The WebSocket limits and keepalive.
    pub(crate) ws: WsOptions,
    /// Connections waiting for a request's first bytes, evictable.
    pub(crate) idle: Arc<IdleSet>,
    next_id: std::sync::atomic::AtomicU64,
}

impl AsgiShared {
    /// Beats the heartbeat while the asyncio loop still turns (see
    /// [`LoopQueue::loop_alive`]): a stuck loop gets the worker replaced
    /// after `--timeout`, as a stuck app thread does (`crate::gil_probe`).
    fn beat(&self) {
        if self.queue.loop_alive() {
            self.heartbeat.beat();
        }
    }

    /// A worker-unique request id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// One finished ASGI request, as metrics and the access log see it.
pub(crate) struct Finished<'a> {
    pub(crate) peer: &'a crate::exchange::Peer,
    pub(crate) head: &'a ferricorn_http::RequestHead,
    pub(crate) headers: &'a [(String, Vec<u8>)],
    pub(crate) status: u16,
    pub(crate) response_headers: &'a [(String, String)],
    pub(crate) body_bytes: u64,
    pub(crate) scheme: &'a str,
    pub(crate) started: tokio::time::Instant,
    pub(crate) started_unix: u64,
}

impl Finished<'_> {
    /// Reports the request to metrics and writes its access log line.
    pub(crate) fn log(&self, shared: &AsgiShared) {
        let head = self.head;
        let elapsed = self.started.elapsed();
        shared.heartbeat.request_done(&crate::RequestDone {
            method: &head.method,
            protocol: head.version.as_str(),
            status: self.status,
            secure: self.scheme == "https",
            elapsed,
            target: &head.target,
        });
        if let Some(format) = &shared.access_format {
            let line = format.format(&crate::access_log::AccessRecord {
                remote: self.peer.remote,
                line: head.line(),
                script_name: "",
                request_headers: self.headers,
                status: self.status,
                response_headers: self.response_headers,
                bytes_sent: crate::access_log::wire_body_bytes(
                    &head.method,
                    self.status,
                    self.body_bytes,
                ),
                elapsed,
                started_unix: self.started_unix,
                environ: &[],
            });
            tracing::info!(target: "ferricorn.access", "{line}");
        }
    }
}

/// The app and everything the ASGI class needs besides the listeners.
pub struct AsgiSetup {
    /// The ASGI callable.
    pub app: Py<PyAny>,
    /// Loop, lifespan, grace period, root path.
    pub options: AsgiOptions,
    /// Header and trust rules.
    pub policy: RequestPolicy,
    /// The compiled access log format.
    pub access_format: Option<AccessFormat>,
    /// The scoreboard slot.
    pub heartbeat: Arc<dyn Heartbeat>,
    /// Bound on the lifespan startup (`--timeout`; 0: none).
    pub startup_timeout: Duration,
    /// The WebSocket limits and keepalive.
    pub ws: WsOptions,
    /// `pre_request`/`post_request`, called on the loop around each HTTP
    /// request.
    pub request_hooks: Option<Py<PyAny>>,
}

/// Runs an ASGI worker until `TERM`.
pub fn run(
    setup: AsgiSetup,
    listeners: Vec<Listener>,
    options: ClassOptions,
) -> Result<(), WorkerError> {
    let queue = LoopQueue::new().map_err(WorkerError::Runtime)?;
    let runner = Python::attach(|py| {
        let queue = Arc::clone(&queue);
        AsgiRunner::new(py, setup.app, queue, &setup.options, setup.request_hooks)
    })
    .map_err(WorkerError::Boot)?;
    let timeout = if setup.startup_timeout.is_zero() {
        f64::MAX
    } else {
        setup.startup_timeout.as_secs_f64()
    };
    // The master's boot watchdog ends a startup longer than `--timeout`
    // (the worker is not ready until it completes); the bound here is
    // only a backstop.
    Python::attach(|py| runner.startup(py, timeout)).map_err(WorkerError::Boot)?;

    let graceful = options.graceful_timeout;
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let loop_queue = Arc::clone(&queue);
    // Built on the I/O thread, where the shutdown notice comes to exist.
    let shared = move |shutdown| AsgiShared {
        queue: loop_queue,
        policy: setup.policy,
        access_format: setup.access_format,
        heartbeat: setup.heartbeat,
        options,
        shutdown,
        tls,
        ws: setup.ws,
        idle: Arc::new(IdleSet::default()),
        next_id: std::sync::atomic::AtomicU64::new(0),
    };
    queue.loop_starting();
    let io = std::thread::Builder::new()
        .name("ferricorn-io".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(WorkerError::Runtime)
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let listeners = AsyncListener::register_all(listeners)?;
                        let shutdown = Shutdown::listen(graceful)?;
                        let shared = Arc::new(shared(shutdown.notice()));
                        serve(shared, listeners, shutdown).await
                    })
                });
            // Whatever happened, the loop must stop waiting for requests.
            queue.push(ToLoop::Stop);
            result
        })
        .map_err(WorkerError::Runtime)?;

    let served = Python::attach(|py| runner.serve(py));
    let stopped = Instant::now();
    if let Err(message) = &served {
        tracing::error!("Exception in the ASGI loop:\n{message}");
        // Stop the I/O thread the way the master would.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
    }
    let result = io
        .join()
        .unwrap_or_else(|_| Err(WorkerError::Boot("the I/O thread panicked".into())));
    let left = graceful
        .saturating_sub(stopped.elapsed())
        .max(Duration::from_secs(1));
    Python::attach(|py| runner.shutdown(py, left.as_secs_f64()));
    result
}

async fn serve(
    shared: Arc<AsgiShared>,
    listeners: Vec<AsyncListener>,
    mut shutdown: Shutdown,
) -> Result<(), WorkerError> {
    let limit = ConnLimit::new(shared.options.max_connections);
    let idle = Arc::clone(&shared.idle);
    shared.heartbeat.ready();
    crate::admission::accept_until_stopped(
        listeners,
        &limit,
        &idle,
        &mut shutdown,
        |accepted, admitted| {
            tokio::spawn(crate::http1::connection(
                Arc::clone(&shared),
                accepted,
                admitted,
            ));
        },
        || shared.beat(),
    )
    .await;
    shutdown.drain(&limit, || shared.beat()).await;
    Ok(())
}
