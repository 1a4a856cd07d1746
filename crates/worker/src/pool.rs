//! The app thread pool of the gthread and async classes.
//!
//! Threads are started on demand up to a maximum and then live as long as
//! the worker, each with one Python thread state for its whole life.
//! gthread starts its `--threads` threads up front; async grows towards
//! `--worker-connections` as concurrent requests need them.
//!
//! Wake rule: every app call needs the GIL, so a second thread woken while
//! one is already running only queues for the GIL (a futex wait and two
//! context switches per request, the cost that made `--threads 8` slower
//! than `--threads 2` on hello world). A job therefore wakes a parked
//! thread only when no thread is awake to take it; otherwise it waits for
//! an awake thread to finish its current job. The threads may be awake
//! but blocked in the app (sleeping, waiting on I/O): then no job finishes
//! for [`STALL`], and the event loop, which calls [`AppPool::relieve`]
//! while jobs wait, wakes one parked thread per check (one, so that a
//! thread merely descheduled by a busy machine does not wake them all), or
//! grows the pool when none is parked (async's on-demand threads). While
//! jobs keep finishing, the threads are busy computing and more of them
//! would only contend for the GIL: a thread that finishes a job while
//! another thread finished one within [`STALL`] parks instead of taking
//! the next job, as long as another thread stays awake, so the pool
//! shrinks back to the threads that are needed. Outstanding = submitted,
//! not yet finished, which cannot race with a thread that has taken a job
//! but not yet said so.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long without a finished job means every awake thread is blocked.
pub const STALL: Duration = Duration::from_millis(2);

/// Work for an app thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// A pool of app threads.
pub struct AppPool {
    shared: Arc<PoolShared>,
    max: usize,
}

/// The queue and who waits on it, under one lock.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Parked threads not yet woken, the most recently parked last: the
    /// next wake-up goes to it, whose caches are still warm (a condition
    /// variable would wake the longest-parked one and rotate through all).
    parked: Vec<Thread>,
}

impl Queue {
    /// Wakes the most recently parked thread, if any.
    fn wake_one(&mut self) -> bool {
        match self.parked.pop() {
            Some(thread) => {
                thread.unpark();
                true
            }
            None => false,
        }
    }

    /// Threads neither parked nor about to be woken.
    fn awake(&self, started: usize) -> usize {
        started.saturating_sub(self.parked.len())
    }
}

struct PoolShared {
    queue: Mutex<Queue>,
    started: AtomicUsize,
    outstanding: AtomicUsize,
    /// When the pool was created, the origin of `last_finish_us`.
    epoch: Instant,
    /// Microseconds after `epoch` when a job last finished.
    last_finish_us: AtomicU64,
    /// Index of the thread that finished it.
    last_finisher: AtomicUsize,
}

impl PoolShared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A thread panicked while holding the lock; the queue itself is
        // still valid (every update is a single push, pop or count).
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether no job finished for [`STALL`].
    fn stalled(&self) -> bool {
        let idle_for = self
            .now_us()
            .saturating_sub(self.last_finish_us.load(Ordering::Relaxed));
        u128::from(idle_for) >= STALL.as_micros()
    }
}

impl AppPool {
    /// A pool of at most `max` threads, `initial` of them started now.
    pub fn new(initial: usize, max: usize) -> std::io::Result<Self> {
        let pool = Self {
            shared: Arc::new(PoolShared {
                queue: Mutex::new(Queue::default()),
                started: AtomicUsize::new(0),
                outstanding: AtomicUsize::new(0),
                epoch: Instant::now(),
                last_finish_us: AtomicU64::new(0),
                last_finisher: AtomicUsize::new(usize::MAX),
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
                let mut others_progress = false;
                loop {
                    let job = shared.next_job(others_progress);
                    // A panicking job must not take the thread (and the
                    // pool's capacity) with it.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("an app thread job panicked; the request was abandoned");
                    }
                    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
                    let now = shared.now_us();
                    let before = shared.last_finish_us.swap(now, Ordering::Relaxed);
                    let by = shared.last_finisher.swap(index, Ordering::Relaxed);
                    others_progress =
                        by != index && u128::from(now.saturating_sub(before)) < STALL.as_micros();
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

    /// Whether jobs wait in the queue: the event loop then calls
    /// [`AppPool::relieve`] every [`STALL`].
    pub fn has_waiting(&self) -> bool {
        !self.shared.lock().jobs.is_empty()
    }

    /// If no job finished for [`STALL`] (the awake threads are blocked in
    /// the app), wakes a parked thread for the waiting jobs and starts new
    /// ones for the jobs no thread is left for.
    pub fn relieve(&self) {
        if !self.shared.stalled() {
            return;
        }
        {
            let mut queue = self.shared.lock();
            if !queue.jobs.is_empty() {
                queue.wake_one();
            }
        }
        while self.shared.outstanding.load(Ordering::SeqCst)
            > self.shared.started.load(Ordering::SeqCst)
            && self.shared.started.load(Ordering::SeqCst) < self.max
        {
            if let Err(error) = self.start_thread() {
                tracing::warn!("cannot start another app thread: {error}");
                return;
            }
        }
    }

    /// Queues `job`, waking a parked thread only if no thread is awake to
    /// take it (see the module comment). True if the job waits for an
    /// awake thread: the caller then watches it with [`AppPool::relieve`].
    pub fn submit(&self, job: Job) -> bool {
        self.shared.outstanding.fetch_add(1, Ordering::SeqCst);
        let started = self.shared.started.load(Ordering::SeqCst);
        let mut queue = self.shared.lock();
        queue.jobs.push_back(job);
        if queue.awake(started) == 0 && queue.wake_one() {
            return false;
        }
        true
    }
}

impl PoolShared {
    /// Blocks until a job is queued. `surplus`: another thread is making
    /// progress, so this one parks first if another stays awake.
    fn next_job(&self, surplus: bool) -> Job {
        let mut queue = self.lock();
        let started = self.started.load(Ordering::SeqCst);
        let mut park_first = surplus && queue.awake(started) > 1;
        loop {
            if !park_first {
                if let Some(job) = queue.jobs.pop_front() {
                    return job;
                }
            }
            park_first = false;
            let me = std::thread::current();
            queue.parked.push(me.clone());
            drop(queue);
            std::thread::park();
            queue = self.lock();
            // A spurious wake-up leaves this thread on the list: take it
            // off, it is awake now.
            if let Some(at) = queue.parked.iter().position(|t| t.id() == me.id()) {
                queue.parked.remove(at);
            }
        }
    }
}
