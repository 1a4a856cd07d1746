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
use std::time::Duration;

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
enum Found {
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
    /// end here; disarmed when the returned guard drops. `stopping` is the
    /// worker's stop notice, `keepalive` the idle time a connection gets.
    pub(crate) fn arm<'a>(
        &'a self,
        stopping: &'a mut watch::Receiver<bool>,
        keepalive: Duration,
    ) -> Armed<'a> {
        *self.lock() = State::Armed;
        Armed {
            end: self,
            stopping,
            keepalive,
            until: Instant::now() + keepalive,
        }
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
    fn check(&self) -> Found {
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
    fn take(&self) {
        if let State::Done { idle_id, .. } = std::mem::replace(&mut *self.lock(), State::Off) {
            self.idle.leave(idle_id);
        }
    }
}

/// What the task is to do once [`wait`] returns.
pub(crate) enum Outcome {
    /// The app still runs: listen for its end on the frame channel.
    Listen,
    /// The response is out and the client sent more: read its next request.
    NextRequest,
    /// The response is out and the connection is done: idle past the
    /// keep-alive time, the worker stopping, or evicted.
    Close,
}

/// What ended one turn of [`Armed::wait`].
enum Woke {
    /// The client sent bytes (or closed).
    Bytes,
    /// The keep-alive time may have run out.
    Timer,
    /// The worker is stopping, or the accept path evicted the connection.
    Close,
}

/// An armed [`QuietEnd`], with what its idle wait needs; disarms the slot
/// when dropped (whichever way the exchange ends), so an end never stays
/// registered for nobody.
pub(crate) struct Armed<'a> {
    end: &'a QuietEnd,
    stopping: &'a mut watch::Receiver<bool>,
    keepalive: Duration,
    /// When the keep-alive timer looks next: from the submit until the
    /// app's end says when the idle time began.
    until: Instant,
}

impl Armed<'_> {
    /// Waits for what would end a keep-alive connection's idle time, and
    /// looks in the slot then.
    async fn wait(&mut self, stream: &AsyncStream) -> Outcome {
        loop {
            let woke = tokio::select! {
                // A request that came wins over a close decided at the
                // same time, as in the HTTP/1 driver's idle wait.
                biased;
                _ = stream.readable() => Woke::Bytes,
                _ = self.stopping.wait_for(|stopping| *stopping) => Woke::Close,
                () = self.end.evicted.notified() => Woke::Close,
                () = tokio::time::sleep_until(self.until) => Woke::Timer,
            };
            let at = match self.end.check() {
                Found::Running => return Outcome::Listen,
                Found::Done(at) => at,
            };
            match woke {
                Woke::Bytes => {
                    self.end.take();
                    return Outcome::NextRequest;
                }
                Woke::Timer if Instant::now() < at + self.keepalive => {
                    self.until = at + self.keepalive;
                }
                Woke::Timer | Woke::Close => return Outcome::Close,
            }
        }
    }
}

/// [`Armed::wait`] for an exchange that may have no armed slot: then it
/// never ends.
pub(crate) async fn wait(armed: Option<&mut Armed<'_>>, stream: &AsyncStream) -> Outcome {
    match armed {
        Some(armed) => armed.wait(stream).await,
        None => std::future::pending().await,
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.end.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: Duration = Duration::from_secs(5);

    fn slot() -> (Arc<IdleSet>, QuietEnd, watch::Sender<bool>) {
        let idle = Arc::new(IdleSet::default());
        let quiet = QuietEnd::new(Arc::clone(&idle));
        (idle, quiet, watch::channel(false).0)
    }

    /// A loopback connection whose client sends nothing: it never turns
    /// readable, so only the stop, an eviction or the timer end a wait.
    async fn silent_connection() -> (AsyncStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut stream = AsyncStream::Tcp(accepted);
        // A new socket may report readable before anything came; a read
        // that finds nothing clears that, as the head's read does.
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read_buf(&mut buf));
        assert!(read.await.is_err(), "the client sent nothing");
        (stream, client)
    }

    /// [`Armed::wait`], failing rather than hanging when nothing ends it.
    async fn settle(armed: &mut Armed<'_>, stream: &AsyncStream) -> Outcome {
        tokio::time::timeout(Duration::from_secs(2), armed.wait(stream))
            .await
            .expect("the wait ended")
    }

    #[tokio::test]
    async fn an_end_left_while_armed_is_found_and_leaves_the_idle_set_when_taken() {
        let (idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let armed = quiet.arm(&mut stopping, KEEPALIVE);
        assert!(quiet.finish());
        assert!(matches!(quiet.check(), Found::Done(_)));
        drop(armed);
        assert!(!idle.evict_oldest(), "taking it left the idle set");
        assert!(!quiet.finish(), "disarmed: ends go through the channel");
    }

    #[tokio::test]
    async fn a_task_that_looks_first_gets_the_end_on_the_channel() {
        let (_idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let _armed = quiet.arm(&mut stopping, KEEPALIVE);
        assert!(matches!(quiet.check(), Found::Running));
        assert!(!quiet.finish());
    }

    #[tokio::test]
    async fn an_evicted_quiet_connection_closes() {
        let (idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let mut armed = quiet.arm(&mut stopping, KEEPALIVE);
        assert!(quiet.finish());
        assert!(idle.evict_oldest());
        let (stream, _client) = silent_connection().await;
        let outcome = settle(&mut armed, &stream).await;
        assert!(matches!(outcome, Outcome::Close));
    }

    #[tokio::test]
    async fn a_stop_while_the_app_runs_hands_the_end_to_the_channel() {
        let (_idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let mut armed = quiet.arm(&mut stopping, KEEPALIVE);
        stop.send_replace(true);
        let (stream, _client) = silent_connection().await;
        let outcome = settle(&mut armed, &stream).await;
        assert!(matches!(outcome, Outcome::Listen));
        assert!(!quiet.finish(), "disarmed");
    }

    #[tokio::test]
    async fn the_next_request_takes_the_end_out_of_the_idle_set() {
        let (idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let mut armed = quiet.arm(&mut stopping, KEEPALIVE);
        assert!(quiet.finish());
        let (stream, mut client) = silent_connection().await;
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET")
            .await
            .unwrap();
        let outcome = settle(&mut armed, &stream).await;
        assert!(matches!(outcome, Outcome::NextRequest));
        assert!(!idle.evict_oldest(), "no longer idle");
    }

    #[tokio::test]
    async fn idle_time_counts_from_the_apps_end_not_from_the_submit() {
        let (_idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let keepalive = Duration::from_millis(300);
        let mut armed = quiet.arm(&mut stopping, keepalive);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(quiet.finish());
        let finished = std::time::Instant::now();
        let (stream, _client) = silent_connection().await;
        let outcome = settle(&mut armed, &stream).await;
        assert!(matches!(outcome, Outcome::Close));
        // The timer first looks 300 ms after the submit (100 ms after the
        // end), then waits out the 300 ms from the end.
        assert!(finished.elapsed() >= keepalive, "{:?}", finished.elapsed());
    }

    #[tokio::test]
    async fn dropping_the_guard_unregisters_a_finished_end() {
        let (idle, quiet, stop) = slot();
        let mut stopping = stop.subscribe();
        let armed = quiet.arm(&mut stopping, KEEPALIVE);
        assert!(quiet.finish());
        drop(armed);
        assert!(!idle.evict_oldest(), "the guard took it out");
    }
}
