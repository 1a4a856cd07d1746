//! A keep-alive response's end that does not wake the event loop.
//!
//! In the threaded classes an app thread writes the response straight to
//! the socket. Telling the connection's task that the app finished would
//! cost a cross-thread wake-up of the loop per request (an eventfd write,
//! an `epoll_wait` return and a context switch), and the task has to wake
//! for the client's next request anyway. So for a request without a body
//! the app thread leaves its end here instead, and registers the
//! connection in the [`IdleSet`] as a keep-alive connection between
//! requests (the accept path may evict it). The task finds the end when
//! the socket turns readable, the keep-alive time runs out, the worker
//! stops or the connection is evicted. Whatever wakes the task while the
//! app still runs disarms this, and the end comes through the connection's
//! frame channel as before.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::admission::IdleSet;
use crate::io::AsyncStream;

/// One connection's slot for a quietly finished response.
pub(crate) struct QuietEnd {
    state: Mutex<State>,
    /// Told when the accept path evicts the connection.
    evicted: Arc<Notify>,
    idle: Arc<IdleSet>,
}

enum State {
    /// Ends go through the frame channel.
    Off,
    /// The task is not listening: the app thread may leave the end here.
    Armed,
    /// The response was written completely at `at`; the connection is
    /// `idle_id` in the idle set.
    Done { at: Instant, idle_id: u64 },
}

/// What the task found when something woke it.
pub(crate) enum Found {
    /// The app still runs; its end comes through the frame channel now.
    Running,
    /// The whole response went out at this instant.
    Done(Instant),
}

impl QuietEnd {
    /// A slot for a connection of the worker whose idle set is `idle`.
    pub(crate) fn new(idle: Arc<IdleSet>) -> Self {
        Self {
            state: Mutex::new(State::Off),
            evicted: Arc::new(Notify::new()),
            idle,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is one assignment: a poisoned state is still valid.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets the app thread of the request about to be submitted leave its
    /// end here; disarmed when the returned guard drops.
    pub(crate) fn arm(&self) -> Armed<'_> {
        *self.lock() = State::Armed;
        Armed(self)
    }

    /// On the app thread, with the response written completely and the
    /// connection to be kept: leaves the end here (true) unless the task
    /// listens for it on the channel (false).
    pub(crate) fn finish(&self) -> bool {
        let mut state = self.lock();
        if !matches!(*state, State::Armed) {
            return false;
        }
        let idle_id = self.idle.register(Arc::clone(&self.evicted));
        *state = State::Done {
            at: Instant::now(),
            idle_id,
        };
        true
    }

    /// On the task, woken: whether the app finished. If it still runs,
    /// the slot is disarmed.
    pub(crate) fn check(&self) -> Found {
        let mut state = self.lock();
        match *state {
            State::Done { at, .. } => Found::Done(at),
            State::Armed | State::Off => {
                *state = State::Off;
                Found::Running
            }
        }
    }

    /// Takes the finished end, and the connection out of the idle set.
    pub(crate) fn take(&self) {
        if let State::Done { idle_id, .. } = std::mem::replace(&mut *self.lock(), State::Off) {
            self.idle.leave(idle_id);
        }
    }

    /// Resolves when the accept path chose this connection to close.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

/// What woke a task waiting for a quiet end.
pub(crate) enum QuietWake {
    /// The client sent bytes (or closed).
    Readable,
    /// The keep-alive time may have run out.
    Timer,
    /// The worker is stopping, or the accept path evicted the connection.
    Close,
}

/// Waits, with the app's end left in `quiet` or still to come, for what
/// would end a keep-alive connection's idle time.
pub(crate) async fn quiet_wake(
    quiet: Option<&QuietEnd>,
    stream: &AsyncStream,
    until: Instant,
    stopping: &mut watch::Receiver<bool>,
) -> QuietWake {
    let Some(quiet) = quiet else {
        return std::future::pending().await;
    };
    tokio::select! {
        // A request that came wins over a close decided at the same time.
        biased;
        _ = stream.readable() => QuietWake::Readable,
        _ = stopping.wait_for(|stopping| *stopping) => QuietWake::Close,
        () = quiet.evicted() => QuietWake::Close,
        () = tokio::time::sleep_until(until) => QuietWake::Timer,
    }
}

/// An armed [`QuietEnd`]; disarms it when dropped (whichever way the
/// exchange ends), so an end never stays registered for nobody.
pub(crate) struct Armed<'a>(&'a QuietEnd);

impl std::ops::Deref for Armed<'_> {
    type Target = QuietEnd;

    fn deref(&self) -> &QuietEnd {
        self.0
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_end_left_while_armed_is_found_and_taken_once() {
        let idle = Arc::new(IdleSet::default());
        let quiet = QuietEnd::new(Arc::clone(&idle));
        let armed = quiet.arm();
        assert!(armed.finish());
        assert!(matches!(armed.check(), Found::Done(_)));
        armed.take();
        assert!(!idle.evict_oldest(), "taking it left the idle set");
        drop(armed);
        assert!(!quiet.finish(), "disarmed: ends go through the channel");
    }

    #[tokio::test]
    async fn a_task_that_looks_first_gets_the_end_on_the_channel() {
        let quiet = QuietEnd::new(Arc::new(IdleSet::default()));
        let armed = quiet.arm();
        assert!(matches!(armed.check(), Found::Running));
        assert!(!armed.finish());
    }

    #[tokio::test]
    async fn an_evicted_quiet_connection_is_told() {
        let idle = Arc::new(IdleSet::default());
        let quiet = QuietEnd::new(Arc::clone(&idle));
        let armed = quiet.arm();
        assert!(armed.finish());
        assert!(idle.evict_oldest());
        armed.evicted().await;
    }

    #[tokio::test]
    async fn dropping_the_guard_unregisters_a_finished_end() {
        let idle = Arc::new(IdleSet::default());
        let quiet = QuietEnd::new(Arc::clone(&idle));
        assert!(quiet.arm().finish());
        assert!(!idle.evict_oldest(), "the guard took it out");
    }
}
