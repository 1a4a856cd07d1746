//! Proof that the app side of a threaded worker can still run Python.
//!
//! The event loop of gthread and async never takes the GIL, so it keeps
//! ticking while an app thread holds the GIL in C code that never lets go
//! (a pathological regex, a C extension loop): the worker would look alive
//! while it answers nothing. gunicorn's gthread main thread needs the GIL
//! to notify its arbiter, so there such a worker stops beating and is
//! replaced after `--timeout`. The probe is the equivalent: a thread that
//! takes the GIL briefly every [`INTERVAL`] and stamps the time; the loop
//! beats only while the stamp is fresh. A request sleeping or waiting on
//! I/O releases the GIL and does not hold the probe back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::Python;

/// How often the probe takes the GIL (a cost of microseconds a second).
const INTERVAL: Duration = Duration::from_millis(500);
/// A stamp older than this means the GIL is held by someone who does not
/// let go: a few intervals, so ordinary GIL contention never trips it.
const FRESH: Duration = Duration::from_millis(1500);

/// The probe's last successful GIL acquisition, read by the event loop.
#[derive(Clone)]
pub struct GilProbe {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last acquisition.
    stamp_ms: Arc<AtomicU64>,
}

impl GilProbe {
    /// Starts the probe thread (detached: it lives as long as the worker).
    pub fn start() -> std::io::Result<Self> {
        let probe = Self {
            epoch: Instant::now(),
            stamp_ms: Arc::new(AtomicU64::new(0)),
        };
        let thread = probe.clone();
        std::thread::Builder::new()
            .name("gil-probe".into())
            .spawn(move || {
                ferricorn_python::interpreter::bind_thread_state();
                loop {
                    Python::attach(|_| ());
                    thread.stamp_ms.store(thread.now_ms(), Ordering::Relaxed);
                    std::thread::sleep(INTERVAL);
                }
            })?;
        Ok(probe)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether Python code could run lately.
    pub fn fresh(&self) -> bool {
        let age = self
            .now_ms()
            .saturating_sub(self.stamp_ms.load(Ordering::Relaxed));
        u128::from(age) <= FRESH.as_millis()
    }
}
