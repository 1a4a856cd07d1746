//! The app thread pool of the gthread and async classes.
//!
//! Threads are started on demand up to a maximum and then live as long as
//! the worker, each with one Python thread state for its whole life.
//! gthread starts its `--threads` threads up front; async grows towards
//! `--worker-connections` as concurrent requests need them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

/// Work for an app thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// A pool of app threads.
pub struct AppPool {
    jobs: Sender<Job>,
    receiver: Receiver<Job>,
    state: Arc<PoolState>,
}

struct PoolState {
    max: usize,
    started: AtomicUsize,
    idle: AtomicUsize,
}

impl AppPool {
    /// A pool of at most `max` threads, `initial` of them started now.
    pub fn new(initial: usize, max: usize) -> std::io::Result<Self> {
        let (jobs, receiver) = crossbeam_channel::unbounded();
        let pool = Self {
            jobs,
            receiver,
            state: Arc::new(PoolState {
                max: max.max(1),
                started: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
            }),
        };
        for _ in 0..initial.clamp(1, max.max(1)) {
            pool.start_thread()?;
        }
        Ok(pool)
    }

    fn start_thread(&self) -> std::io::Result<()> {
        let index = self.state.started.fetch_add(1, Ordering::SeqCst);
        let receiver = self.receiver.clone();
        let state = Arc::clone(&self.state);
        // Threads are detached: they live until the worker process exits.
        let spawned = std::thread::Builder::new()
            .name(format!("app-{index}"))
            .spawn(move || {
                ferricorn_python::interpreter::bind_thread_state();
                state.idle.fetch_add(1, Ordering::SeqCst);
                while let Ok(job) = receiver.recv() {
                    state.idle.fetch_sub(1, Ordering::SeqCst);
                    job();
                    state.idle.fetch_add(1, Ordering::SeqCst);
                }
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(error) => {
                self.state.started.fetch_sub(1, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    /// Queues `job`, starting another thread first when none is idle and
    /// the pool may still grow.
    pub fn submit(&self, job: Job) {
        let queued = self.jobs.len();
        if self.state.idle.load(Ordering::SeqCst) <= queued
            && self.state.started.load(Ordering::SeqCst) < self.state.max
        {
            if let Err(error) = self.start_thread() {
                tracing::warn!("cannot start another app thread: {error}");
            }
        }
        // The receiver lives in `self`, so sending cannot fail.
        let _ = self.jobs.send(job);
    }
}
