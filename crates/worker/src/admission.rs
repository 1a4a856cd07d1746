//! Who gets a connection slot when slots or descriptors run out.
//!
//! Connections waiting for a request's first bytes (a new connection that
//! has sent nothing yet, or a keep-alive connection between requests) cost
//! the worker a slot under `--worker-connections` and a descriptor while
//! giving nothing. They register in an [`IdleSet`], oldest first; when the
//! cap is reached or `accept()` fails for want of descriptors, the accept
//! path closes the oldest of them to admit the new client. A flood of idle
//! connections thus delays a new client by an eviction, not by the
//! keep-alive or header timeout.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::shutdown::{ConnLimit, Shutdown};

/// How long `accept()` pauses after running out of descriptors, unless one
/// of the worker's connections closes first.
const DESCRIPTOR_BACKOFF: Duration = Duration::from_millis(50);
/// How long a worker at its cap leaves queued connections to siblings
/// before closing an idle connection of its own to take one.
const SIBLING_GRACE: Duration = Duration::from_millis(25);
/// The least time between two log lines about failing `accept()` calls.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The connections waiting for a request's first bytes, oldest first.
#[derive(Default)]
pub struct IdleSet {
    waiting: Mutex<Waiting>,
    /// Woken when a connection starts waiting.
    registered: Notify,
    /// Woken when a connection of this worker closes.
    closed: Notify,
}

#[derive(Default)]
struct Waiting {
    next_id: u64,
    by_age: BTreeMap<u64, Arc<Notify>>,
}

/// A connection's place in the [`IdleSet`] while it waits; leaves the set
/// when dropped.
pub struct IdleEntry<'a> {
    set: &'a IdleSet,
    id: u64,
    evicted: Arc<Notify>,
}

impl IdleSet {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Nothing panics while holding the lock; a poisoned map is still valid.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection that starts waiting for bytes.
    pub fn enter(&self) -> IdleEntry<'_> {
        let evicted = Arc::new(Notify::new());
        let id = self.register(Arc::clone(&evicted));
        IdleEntry {
            set: self,
            id,
            evicted,
        }
    }

    /// Registers a connection whose task learns of its eviction through
    /// `evicted` (from any thread: an app thread that finished a response
    /// nobody waits for); [`IdleSet::leave`] takes it out again.
    pub fn register(&self, evicted: Arc<Notify>) -> u64 {
        let id = {
            let mut waiting = self.waiting();
            let id = waiting.next_id;
            waiting.next_id += 1;
            waiting.by_age.insert(id, evicted);
            id
        };
        self.registered.notify_waiters();
        id
    }

    /// Takes a [`IdleSet::register`]ed connection out (if it was not
    /// evicted already).
    pub fn leave(&self, id: u64) {
        self.waiting().by_age.remove(&id);
    }

    /// Tells the oldest waiting connection to close; false if none waits.
    pub fn evict_oldest(&self) -> bool {
        let oldest = self.waiting().by_age.pop_first();
        match oldest {
            Some((_, evicted)) => {
                // notify_one keeps the wake-up if the task is not polling yet.
                evicted.notify_one();
                true
            }
            None => false,
        }
    }

    /// Waits until some connection waits for bytes (one could be evicted).
    pub async fn until_any(&self) {
        loop {
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            if !self.waiting().by_age.is_empty() {
                return;
            }
            registered.await;
        }
    }

    /// Out of descriptors: closes the oldest idle connection and waits
    /// until one of ours has closed, or a short pause has passed (so a
    /// caller retrying in a loop cannot spin).
    pub async fn free_one(&self) {
        let closed = self.closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        // The evicted connection's task closes it when it next runs.
        self.evict_oldest();
        let _ = tokio::time::timeout(DESCRIPTOR_BACKOFF, closed).await;
    }

    /// Records that one of the worker's connections closed.
    pub fn connection_closed(&self) {
        self.closed.notify_waiters();
    }
}

impl IdleEntry<'_> {
    /// Resolves when the accept path chose this connection to close.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for IdleEntry<'_> {
    fn drop(&mut self) {
        self.set.leave(self.id);
    }
}

/// Whether a failed `accept()` means the process or system is out of
/// descriptors (or of the memory for one).
pub(crate) fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// What the accept path does after `accept()` fails: rate-limited logging
/// and a pause that cannot spin.
#[derive(Default)]
pub struct AcceptErrors {
    last_log: Option<Instant>,
    suppressed: u64,
    last_exhausted: Option<Instant>,
}

impl AcceptErrors {
    /// Whether `accept()` ran out of descriptors within the last second:
    /// the kernel queue may hold a flood, so no connection gets a grace.
    pub fn recently_exhausted(&self) -> bool {
        self.last_exhausted
            .is_some_and(|at| at.elapsed() < ERROR_LOG_INTERVAL)
    }

    /// Handles a failed `accept()`. Out of descriptors: closes the oldest
    /// idle connection (the first time in a while, after [`SIBLING_GRACE`]
    /// left to siblings), then waits until one of ours closes or a short
    /// pause passes (the listener stays readable, so retrying at once would
    /// spin). Other errors (a client that reset before being accepted) are
    /// retried after a moment.
    pub async fn recover(&mut self, error: io::Error, idle: &IdleSet) {
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= ERROR_LOG_INTERVAL)
        {
            let also = match self.suppressed {
                0 => String::new(),
                n => format!(" ({n} more since the last report)"),
            };
            if out_of_descriptors(&error) {
                tracing::error!(
                    "accept() failed: {error}{also}; closing idle connections and retrying"
                );
            } else {
                tracing::debug!("accept() failed: {error}{also}");
            }
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        if out_of_descriptors(&error) {
            if !self.recently_exhausted() {
                // A new flood: siblings with descriptors left take what is
                // queued before this worker starts closing connections.
                tokio::time::sleep(SIBLING_GRACE).await;
            }
            self.last_exhausted = Some(now);
            idle.free_one().await;
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Accepts a connection with a slot under the cap (`slots`, one permit per
/// held connection). At the cap it waits until a slot frees or some
/// connection idles, then accepts and closes the oldest idle connection to
/// make room: idle connections cannot keep new clients out, while with
/// every connection busy, new ones wait in the kernel queue (for an idle
/// sibling worker). Room made this way is paced ([`accept_at_cap`]) so
/// that a sibling with free slots takes the connection first.
pub async fn accept(
    listeners: &[crate::io::AsyncListener],
    limit: &ConnLimit,
    idle: &Arc<IdleSet>,
) -> io::Result<(crate::io::Accepted, Admitted)> {
    let slots = limit.slots();
    let permit = match Arc::clone(slots).try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permit.ok(),
            _ = idle.until_any() => None,
        },
    };
    let (conn, permit) = match permit {
        Some(permit) => {
            limit.set_evicting(false);
            (crate::io::accept_any(listeners).await?, permit)
        }
        None => {
            let conn = accept_at_cap(listeners, limit).await?;
            // A connection may have closed during the grace.
            let permit = match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    idle.evict_oldest();
                    Arc::clone(slots)
                        .acquire_owned()
                        .await
                        .map_err(io::Error::other)?
                }
            };
            (conn, permit)
        }
    };
    Ok((conn, Admitted::new(permit, Arc::clone(idle))))
}

/// Accepts a connection this worker will close an idle one for. Every
/// worker's `epoll` wakes for a new connection and the first to call
/// `accept()` gets it; a worker at its cap looks at the queue only every
/// [`SIBLING_GRACE`], so that a sibling with free slots, which reacts at
/// once, takes it without anybody being closed. What is still queued then
/// is taken in one burst: a flood is not rate-limited to one per grace.
async fn accept_at_cap(
    listeners: &[crate::io::AsyncListener],
    limit: &ConnLimit,
) -> io::Result<crate::io::Accepted> {
    loop {
        if limit.evicting() {
            if let Some(accepted) = crate::io::accept_queued(listeners).await {
                return accepted;
            }
        }
        tokio::time::sleep(SIBLING_GRACE).await;
        limit.set_evicting(true);
    }
}

/// Accepts connections ([`accept`]) until `TERM`, handing each to
/// `on_conn`; out of descriptors, it backs off ([`AcceptErrors::recover`]).
/// `beat` runs after every accept and every [`crate::BEAT_INTERVAL`].
/// The listeners are closed on return, so siblings take new connections.
pub(crate) async fn accept_until_stopped(
    listeners: Vec<crate::io::AsyncListener>,
    limit: &ConnLimit,
    idle: &Arc<IdleSet>,
    shutdown: &mut Shutdown,
    mut on_conn: impl FnMut(crate::io::Accepted, Admitted),
    beat: impl Fn(),
) {
    let mut errors = AcceptErrors::default();
    let mut tick = tokio::time::interval(crate::BEAT_INTERVAL);
    // Kept across turns of the loop: a connection accepted while waiting
    // for a slot must not be dropped when another branch wins.
    let next = accept(&listeners, limit, idle);
    tokio::pin!(next);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.requested() => break,
            accepted = &mut next => {
                next.set(accept(&listeners, limit, idle));
                match accepted {
                    Ok((conn, admitted)) => on_conn(conn, admitted),
                    Err(error) => errors.recover(error, idle).await,
                }
            },
            _ = tick.tick() => {}
        }
        beat();
    }
}

/// A connection's slot under the cap; reports the close when dropped.
pub struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
    idle: Arc<IdleSet>,
}

impl Admitted {
    /// Ties `permit` to the set that hears about closes.
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit, idle: Arc<IdleSet>) -> Self {
        Self {
            _permit: permit,
            idle,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.idle.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn evicts_the_oldest_first_and_each_once() {
        let set = IdleSet::default();
        let first = set.enter();
        let second = set.enter();
        assert!(set.evict_oldest());
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest is evicted");
        let not_second = tokio::time::timeout(Duration::from_millis(20), second.evicted()).await;
        assert!(not_second.is_err(), "the younger one stays");
        assert!(set.evict_oldest());
        assert!(!set.evict_oldest(), "nothing left to evict");
    }

    #[tokio::test]
    async fn a_connection_that_stopped_waiting_is_not_evicted() {
        let set = IdleSet::default();
        drop(set.enter());
        assert!(!set.evict_oldest());
    }
}
