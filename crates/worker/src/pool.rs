//! The app thread pool of the gthread and async classes.
//!
//! Threads are started on demand up to a maximum and then live as long as
//! the worker, each with one Python thread state for its whole life.
//! gthread starts its `--threads` threads up front; async grows towards
//! `--worker-connections` as concurrent requests need them.
//!
//! Growth rule: the pool grows while jobs outnumber threads (outstanding =
//! submitted, not yet finished, which cannot race with a thread that has
//! taken a job but not yet said so) and no thread has finished a job for
//! [`STALL`]: threads are blocked in the app (sleeping, waiting on I/O),
//! so more threads add concurrency. While jobs keep finishing, the threads
//! are busy computing and more of them would only contend for the GIL.
//! The event loop calls [`AppPool::grow_if_stalled`] while a backlog lasts.
//! The queue parks waiting threads on a condition variable: no spinning,
//! one wake-up per job.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long without a finished job means every thread is blocked.
pub const STALL: Duration = Duration::from_millis(2);

/// Work for an app thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// A pool of app threads.
pub struct AppPool {
    shared: Arc<PoolShared>,
    max: usize,
}

struct PoolShared {
    queue: Mutex<VecDeque<Job>>,
    available: Condvar,
    started: AtomicUsize,
    outstanding: AtomicUsize,
    /// When the pool was created, the origin of `last_finish_us`.
    epoch: Instant,
    /// Microseconds after `epoch` when a job last finished.
    last_finish_us: AtomicU64,
}

impl PoolShared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl AppPool {
    /// A pool of at most `max` threads, `initial` of them started now.
    pub fn new(initial: usize, max: usize) -> std::io::Result<Self> {
        let pool = Self {
            shared: Arc::new(PoolShared {
                queue: Mutex::new(VecDeque::new()),
                available: Condvar::new(),
                started: AtomicUsize::new(0),
                outstanding: AtomicUsize::new(0),
                epoch: Instant::now(),
                last_finish_us: AtomicU64::new(0),
            }),
            max: max.max(1),
        };
        for _ in 0..initial.clamp(1, pool.max) {
            pool.start_thread()?;
        }
        Ok(pool)
    }

    fn start_thread(&self) -> std::io::Result<()> {
        let index = self.shared.started.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&self.shared);
        // Threads are detached: they live until the worker process exits.
        let spawned = std::thread::Builder::new()
            .name(format!("app-{index}"))
            .spawn(move || {
                ferricorn_python::interpreter::bind_thread_state();
                while let Some(job) = shared.next_job() {
                    // A panicking job must not take the thread (and the
                    // pool's capacity) with it.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("an app thread job panicked; the request was abandoned");
                    }
                    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
                    shared
                        .last_finish_us
                        .store(shared.now_us(), Ordering::Relaxed);
                }
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(error) => {
                self.shared.started.fetch_sub(1, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    /// Whether jobs outnumber threads and the pool could still grow.
    pub fn has_backlog(&self) -> bool {
        let started = self.shared.started.load(Ordering::SeqCst);
        self.shared.outstanding.load(Ordering::SeqCst) > started && started < self.max
    }

    /// Starts threads for the jobs that wait, if no job finished lately.
    pub fn grow_if_stalled(&self) {
        let idle_for = self
            .shared
            .now_us()
            .saturating_sub(self.shared.last_finish_us.load(Ordering::Relaxed));
        if u128::from(idle_for) < STALL.as_micros() {
            return;
        }
        while self.has_backlog() {
            if let Err(error) = self.start_thread() {
                tracing::warn!("cannot start another app thread: {error}");
                return;
            }
        }
    }

    /// Queues `job`.
    pub fn submit(&self, job: Job) {
        self.shared.outstanding.fetch_add(1, Ordering::SeqCst);
        match self.shared.queue.lock() {
            Ok(mut queue) => queue.push_back(job),
            // A thread panicked while holding the lock; the queue itself
            // is still a valid VecDeque.
            Err(poisoned) => poisoned.into_inner().push_back(job),
        }
        self.shared.available.notify_one();
    }
}

impl PoolShared {
    /// Blocks until a job is queued.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(job) = queue.pop_front() {
                return Some(job);
            }
            queue = self
                .available
                .wait(queue)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}
