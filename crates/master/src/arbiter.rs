//! The arbiter: the master's single-threaded loop.
//!
//! Like gunicorn's `arbiter.py`, the whole loop reads in one sitting:
//! [`Arbiter::run`] → wait for signals → [`Arbiter::reap_workers`] →
//! [`Arbiter::murder_workers`] → [`Arbiter::manage_workers`]. No Tokio, no
//! helper threads: a thread alive at `fork()` would be a deadlock waiting
//! to happen in the child.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferricorn_config::Settings;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::listeners::{remove_socket_files, BoundListener};
use crate::pidfile::Pidfile;
use crate::scoreboard::{monotonic_ms, Scoreboard, Slot};
use crate::signals::SignalPipe;

/// Exit code of a worker that could not boot (gunicorn's).
pub const WORKER_BOOT_ERROR: i32 = 3;
/// Exit code of a worker whose app could not be loaded (gunicorn's).
pub const APP_LOAD_ERROR: i32 = 4;

/// What the master runs in each forked child.
pub trait WorkerLauncher {
    /// Runs a worker in a freshly forked child, serving `listeners` and
    /// reporting into `slot`; returns the child's exit code.
    fn run_worker(&self, listeners: &[BoundListener], slot: &'static Slot) -> i32;
}

struct WorkerRecord {
    slot: usize,
    /// SIGABRT was sent for a timeout; SIGKILL comes next.
    aborted: bool,
}

/// The master process.
pub struct Arbiter<L: WorkerLauncher> {
    settings: Settings,
    listeners: Vec<BoundListener>,
    launcher: L,
    scoreboard: Scoreboard,
    signals: SignalPipe,
    workers: BTreeMap<Pid, WorkerRecord>,
    num_workers: u32,
    pidfile: Option<Pidfile>,
}

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum ArbiterError {
    /// Shared memory for the scoreboard.
    #[error(transparent)]
    Scoreboard(#[from] crate::scoreboard::ScoreboardError),
    /// Signal handlers.
    #[error("cannot install signal handlers: {0}")]
    Signals(nix::Error),
    /// The pidfile.
    #[error("cannot write pidfile {path}: {source}")]
    Pidfile {
        /// The configured path.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// How long the loop sleeps between housekeeping rounds without signals.
const TICK: Duration = Duration::from_secs(1);

/// How many scoreboard slots to map: room for `TTIN` growth and for
/// replacements that overlap the workers they replace.
const SLOT_CAPACITY: usize = 1024;

impl<L: WorkerLauncher> Arbiter<L> {
    /// Prepares the master: scoreboard, signal handlers, pidfile.
    pub fn new(
        settings: Settings,
        listeners: Vec<BoundListener>,
        launcher: L,
    ) -> Result<Self, ArbiterError> {
        let capacity = SLOT_CAPACITY.max(usize::try_from(settings.workers).unwrap_or(1) * 2);
        let scoreboard = Scoreboard::new(capacity)?;
        let signals = SignalPipe::install().map_err(ArbiterError::Signals)?;
        let pidfile = match &settings.pidfile {
            Some(path) => Some(Pidfile::create(path, std::process::id()).map_err(|source| {
                ArbiterError::Pidfile {
                    path: path.display().to_string(),
                    source,
                }
            })?),
            None => None,
        };
        Ok(Self {
            num_workers: settings.workers,
            settings,
            listeners,
            launcher,
            scoreboard,
            signals,
            workers: BTreeMap::new(),
            pidfile,
        })
    }

    /// Runs until stopped; returns the master's exit code.
    pub fn run(mut self) -> i32 {
        let pid = std::process::id();
        tracing::info!("Starting ferricorn {}", env!("CARGO_PKG_VERSION"));
        for listener in &self.listeners {
            tracing::info!("Listening at: {listener} ({pid})");
        }
        tracing::info!("Using worker: {}", self.settings.worker_class.as_str());
        self.manage_workers();
        let code = loop {
            let signals = self.signals.wait(TICK);
            if let Some(code) = self.handle_signals(signals) {
                break code;
            }
            if let Some((code, reason)) = self.reap_workers() {
                break self.halt(code, reason);
            }
            self.murder_workers();
            self.manage_workers();
        };
        remove_socket_files(&self.listeners);
        if let Some(pidfile) = &self.pidfile {
            pidfile.remove();
        }
        code
    }

    /// Acts on signals; returns an exit code when the master must stop.
    fn handle_signals(&mut self, signals: Vec<Signal>) -> Option<i32> {
        for signal in signals {
            if signal != Signal::SIGCHLD {
                tracing::info!("Handling signal: {}", signal_name(signal));
            }
            match signal {
                Signal::SIGTERM => return Some(self.halt(0, None)),
                Signal::SIGINT | Signal::SIGQUIT => {
                    self.stop(false);
                    tracing::info!("Shutting down: Master");
                    return Some(0);
                }
                Signal::SIGTTIN => {
                    self.num_workers += 1;
                    self.manage_workers();
                }
                Signal::SIGTTOU => {
                    if self.num_workers > 1 {
                        self.num_workers -= 1;
                        self.manage_workers();
                    }
                }
                Signal::SIGCHLD => {}
                other => {
                    tracing::warn!("{} is not supported yet; ignored", signal_name(other));
                }
            }
        }
        None
    }

    /// Collects exited workers. A worker that could not boot or load the
    /// app stops the master (retrying would only loop), with that reason.
    fn reap_workers(&mut self) -> Option<(i32, Option<&'static str>)> {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return None,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(record) = self.workers.remove(&pid) else {
                continue;
            };
            self.scoreboard.release(record.slot);
            match status {
                WaitStatus::Exited(_, WORKER_BOOT_ERROR) => {
                    return Some((WORKER_BOOT_ERROR, Some("Worker failed to boot.")));
                }
                WaitStatus::Exited(_, APP_LOAD_ERROR) => {
                    return Some((APP_LOAD_ERROR, Some("App failed to load.")));
                }
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, code) => {
                    tracing::error!("Worker (pid:{pid}) exited with code {code}");
                }
                WaitStatus::Signaled(_, Signal::SIGKILL, _) => {
                    tracing::error!("Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?");
                }
                WaitStatus::Signaled(_, signal, _) => {
                    tracing::error!("Worker (pid:{pid}) was sent {signal}!");
                }
                _ => {}
            }
        }
    }

    /// Aborts workers silent for longer than `timeout`: `SIGABRT` first,
    /// `SIGKILL` if still there a round later.
    fn murder_workers(&mut self) {
        if self.settings.timeout == 0 {
            return;
        }
        let limit_ms = self.settings.timeout.saturating_mul(1000);
        let now = monotonic_ms();
        for (&pid, record) in &mut self.workers {
            if self.scoreboard.slot(record.slot).silent_for_ms(now) <= limit_ms {
                continue;
            }
            if record.aborted {
                let _ = kill(pid, Signal::SIGKILL);
            } else {
                tracing::error!(target: "ferricorn.critical", "WORKER TIMEOUT (pid:{pid})");
                record.aborted = true;
                let _ = kill(pid, Signal::SIGABRT);
            }
        }
    }

    /// Forks workers up to the target count, or retires the oldest extras.
    fn manage_workers(&mut self) {
        let target = usize::try_from(self.num_workers).unwrap_or(1);
        while self.workers.len() < target {
            if !self.spawn_worker() {
                break;
            }
        }
        // Pids grow with age on Linux only until they wrap; the scoreboard
        // slot order is not age either, so keep it simple: oldest pid first.
        let extra = self.workers.len().saturating_sub(target);
        let retiring: Vec<Pid> = self.workers.keys().take(extra).copied().collect();
        for pid in retiring {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }

    fn spawn_worker(&mut self) -> bool {
        let Some(index) = self.scoreboard.free_slot() else {
            tracing::error!("no free scoreboard slot for a new worker");
            return false;
        };
        // Claimed before the fork so the child's first beat is never lost.
        self.scoreboard.claim(index, 0);
        let slot = self.scoreboard.slot(index);
        let master_pid = nix::unistd::getpid().as_raw();
        // SAFETY: the master is single-threaded (no runtime, no helper
        // threads), so the child starts with consistent state.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                self.signals.reset_in_child();
                // A worker must not outlive its master (gunicorn checks its
                // parent pid; the kernel can tell us directly).
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
                if nix::unistd::getppid().as_raw() != master_pid {
                    std::process::exit(0);
                }
                let code = self.launcher.run_worker(&self.listeners, slot);
                std::process::exit(code);
            }
            Ok(ForkResult::Parent { child }) => {
                slot.set_pid(child.as_raw());
                self.workers.insert(
                    child,
                    WorkerRecord {
                        slot: index,
                        aborted: false,
                    },
                );
                true
            }
            Err(error) => {
                self.scoreboard.release(index);
                tracing::error!("cannot fork a worker: {error}");
                false
            }
        }
    }

    /// Stops every worker: `TERM` (finish in-flight requests) when
    /// graceful, `QUIT` otherwise; `SIGKILL` for what is left after
    /// `graceful_timeout`. A `INT`/`QUIT` during a graceful stop makes it quick.
    fn stop(&mut self, graceful: bool) {
        let first = if graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        };
        self.signal_workers(first);
        let deadline = Instant::now() + Duration::from_secs(self.settings.graceful_timeout);
        while !self.workers.is_empty() && Instant::now() < deadline {
            for signal in self.signals.wait(Duration::from_millis(100)) {
                if matches!(signal, Signal::SIGINT | Signal::SIGQUIT) {
                    self.signal_workers(Signal::SIGQUIT);
                }
            }
            let _ = self.reap_workers();
        }
        self.signal_workers(Signal::SIGKILL);
        while !self.workers.is_empty() {
            match waitpid(None, None) {
                Ok(status) => {
                    if let Some(record) = status.pid().and_then(|pid| self.workers.remove(&pid)) {
                        self.scoreboard.release(record.slot);
                    }
                }
                Err(_) => break,
            }
        }
    }

    fn signal_workers(&self, signal: Signal) {
        for &pid in self.workers.keys() {
            let _ = kill(pid, signal);
        }
    }

    /// Stops the workers gracefully and returns `code`, logging why.
    fn halt(&mut self, code: i32, reason: Option<&str>) -> i32 {
        self.stop(true);
        tracing::info!("Shutting down: Master");
        if let Some(reason) = reason {
            tracing::info!("Reason: {reason}");
        }
        code
    }
}

/// gunicorn's name for a signal in `Handling signal: …` lines.
fn signal_name(signal: Signal) -> String {
    signal
        .as_str()
        .trim_start_matches("SIG")
        .to_ascii_lowercase()
}
