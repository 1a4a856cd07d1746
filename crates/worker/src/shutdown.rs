//! A worker's graceful stop, the same for every class.
//!
//! `TERM` asks the worker to stop: it stops accepting, tells every
//! connection (a `watch` notice: idle ones close, busy ones finish their
//! current response), and waits up to `--graceful-timeout` for the
//! connections it holds to close. The connection cap doubles as the drain
//! counter: each held connection owns one permit of [`ConnLimit`], so the
//! worker is drained when every permit is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{watch, Semaphore};

use crate::WorkerError;

/// The worker's `TERM`, and the notice its connections watch.
pub(crate) struct Shutdown {
    terminate: Signal,
    notice_tx: watch::Sender<bool>,
    graceful: Duration,
}

impl Shutdown {
    /// Starts listening for `TERM`; call inside the worker's runtime.
    pub(crate) fn listen(graceful: Duration) -> Result<Self, WorkerError> {
        let terminate = signal(SignalKind::terminate()).map_err(WorkerError::Runtime)?;
        let (notice_tx, _) = watch::channel(false);
        Ok(Self {
            terminate,
            notice_tx,
            graceful,
        })
    }

    /// Resolves when `TERM` arrives.
    pub(crate) async fn requested(&mut self) {
        self.terminate.recv().await;
    }

    /// A receiver that turns `true` when the stop begins.
    pub(crate) fn notice(&self) -> watch::Receiver<bool> {
        self.notice_tx.subscribe()
    }

    /// Tells every connection the worker is stopping.
    pub(crate) fn begin(&self) {
        self.notice_tx.send_replace(true);
    }

    /// Begins the stop, then waits until every connection under `limit`
    /// has closed or `--graceful-timeout` has passed, calling `beat` every
    /// [`crate::BEAT_INTERVAL`] so the master does not take the wait for
    /// a hang.
    pub(crate) async fn drain(&self, limit: &ConnLimit, beat: impl Fn()) {
        self.begin();
        let mut tick = tokio::time::interval(crate::BEAT_INTERVAL);
        let drained = async {
            loop {
                tokio::select! {
                    _ = limit.all_closed() => break,
                    _ = tick.tick() => beat(),
                }
            }
        };
        let _ = tokio::time::timeout(self.graceful, drained).await;
    }
}

/// The cap on connections a worker holds (`--worker-connections`): one
/// permit per held connection.
pub(crate) struct ConnLimit {
    slots: Arc<Semaphore>,
    max: usize,
    /// At the cap, past the grace left to siblings: queued connections
    /// are taken (closing idle ones) without a further pause.
    evicting: AtomicBool,
}

impl ConnLimit {
    /// A cap of `max` connections (at least one).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            evicting: AtomicBool::new(false),
        }
    }

    /// The permits, for [`crate::admission::accept`].
    pub(crate) fn slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    /// Connections held now.
    pub(crate) fn held(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Whether no slot is free.
    pub(crate) fn at_cap(&self) -> bool {
        self.slots.available_permits() == 0
    }

    /// Whether the accept path is closing idle connections for queued ones.
    pub(crate) fn evicting(&self) -> bool {
        self.evicting.load(Ordering::Relaxed)
    }

    /// Records whether the accept path is closing idle connections for
    /// queued ones.
    pub(crate) fn set_evicting(&self, evicting: bool) {
        self.evicting.store(evicting, Ordering::Relaxed);
    }

    /// Resolves once every held connection has closed.
    pub(crate) async fn all_closed(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
    }
}
