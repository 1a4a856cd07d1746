//! The arbiter: the master's single-threaded loop.
//!
//! Like gunicorn's `arbiter.py`, the whole loop reads in one sitting:
//! [`Arbiter::run`] → wait for signals → [`Arbiter::reap_workers`] →
//! [`Arbiter::murder_workers`] → [`Arbiter::check_recycling`] →
//! [`Arbiter::manage_workers`]. No Tokio, no helper threads: a thread alive
//! at `fork()` would be a deadlock waiting to happen in the child.
//!
//! Replacing workers (`HUP`, `max_requests`, `max_worker_memory`) is always
//! phased: a worker that must go is only marked; [`Arbiter::manage_workers`]
//! forks one replacement, waits until its scoreboard slot says Ready, and
//! only then sends `TERM` to one marked worker, which finishes its in-flight
//! requests. Capacity never drops below the target, so no request is
//! refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferricorn_config::Settings;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::listeners::{remove_socket_files, BoundListener};
use crate::metrics::{AbortReason, Board};
use crate::notify::notify;
use crate::pidfile::Pidfile;
use crate::recycle::{rss_bytes, Jitter, Retire};
use crate::reload::CodeWatcher;
use crate::scoreboard::{monotonic_ms, Scoreboard, Slot, WorkerState};
use crate::signals::{restore_mask, SignalPipe};
use crate::upgrade::{upgraded_from, Upgrade};

mod control_commands;
mod ops;

/// Exit code of a worker that could not boot (gunicorn's).
pub const WORKER_BOOT_ERROR: i32 = 3;
/// Exit code of a worker whose app could not be loaded (gunicorn's).
pub const APP_LOAD_ERROR: i32 = 4;

/// Moments of the master's life the launcher may act on (gunicorn's
/// master-side server hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterEvent {
    /// The listeners are up and workers are about to be forked (`when_ready`).
    Ready,
    /// A `HUP` reloaded the configuration (`on_reload`).
    Reload,
    /// Worker number `age` is about to be forked (`pre_fork`).
    PreFork {
        /// The worker's sequence number.
        age: u64,
    },
    /// A worker was reaped (`child_exit`).
    ChildExit {
        /// Its pid.
        pid: i32,
        /// Its sequence number.
        age: u64,
    },
    /// The target number of workers changed (`nworkers_changed`).
    WorkersChanged {
        /// The new target.
        new: u32,
        /// The previous target.
        old: u32,
    },
    /// A new master is about to be started by `USR2` (`pre_exec`).
    PreExec,
    /// The master is about to exit (`on_exit`).
    Exit,
}

/// What the master runs in each forked child, and what it does around forks.
pub trait WorkerLauncher {
    /// Runs worker number `age` in a freshly forked child with `settings`,
    /// serving `listeners` and reporting into `slot`; returns the child's
    /// exit code.
    fn run_worker(
        &self,
        settings: &Arc<Settings>,
        listeners: &[BoundListener],
        slot: &'static Slot,
        age: u64,
    ) -> i32;

    /// Called just before every `fork()` (Python's fork handlers).
    fn before_fork(&self) {}

    /// Called just after every `fork()` that called [`Self::before_fork`],
    /// in the parent (`in_child` false) or in the child.
    fn after_fork(&self, _in_child: bool) {}

    /// Called at the master's milestones; must not fail the master.
    fn event(&self, _event: MasterEvent) {}
}

/// Re-reads the configuration for `HUP`: the config file and environment
/// with the original command line. An error keeps the current settings.
pub type Reloader = Box<dyn FnMut() -> Result<Settings, String>>;

/// Reopens the master's log files (`USR1`).
pub type LogReopener = Box<dyn Fn()>;

struct WorkerRecord {
    slot: usize,
    /// The configuration generation it was forked with (bumped by `HUP`).
    generation: u64,
    /// Its request limit (`max_requests` plus jitter); 0 for none.
    max_requests: u64,
    /// Why it must be replaced, once a replacement is ready.
    retire: Option<Retire>,
    /// `TERM` was sent: it is finishing its in-flight requests.
    stopping: bool,
    /// SIGABRT was sent for a timeout; SIGKILL comes next.
    aborted: bool,
    /// Its sequence number (gunicorn's `worker.age`).
    age: u64,
    /// When it was forked, for the boot timeout.
    spawned: Instant,
    /// It was killed for not becoming ready within `timeout`.
    boot_timed_out: bool,
    /// The control socket's `worker kill PID` stopped it.
    killed: bool,
}

/// The master process.
pub struct Arbiter<L: WorkerLauncher> {
    settings: Arc<Settings>,
    listeners: Vec<BoundListener>,
    launcher: L,
    reloader: Option<Reloader>,
    log_reopener: Option<LogReopener>,
    scoreboard: Scoreboard,
    signals: SignalPipe,
    workers: BTreeMap<Pid, WorkerRecord>,
    num_workers: u32,
    pidfile: Option<Pidfile>,
    /// Bumped by every `HUP`; workers of older generations are replaced.
    generation: u64,
    /// Set when workers of this generation could not boot while older
    /// ones were serving: those keep serving, nothing new is forked until
    /// the next `HUP`.
    failed_generation: Option<u64>,
    /// A `HUP` is being rolled out (for `READY=1` once it is done).
    reloading: bool,
    /// `READY=1` was sent after the first workers came up.
    announced_ready: bool,
    jitter: Jitter,
    /// How many workers were forked so far (the next one's `age`).
    worker_age: u64,
    last_memory_check: Instant,
    /// How `USR2` starts a new master.
    upgrade: Option<Upgrade>,
    /// The new master started by `USR2`, while it runs.
    upgrade_child: Option<Pid>,
    /// The old master that started this one, while it runs; then this
    /// master takes over the pidfile.
    old_master: Option<Pid>,
    /// The configured pidfile path while this master writes `<pidfile>.2`.
    pidfile_target: Option<std::path::PathBuf>,
    /// `--reload`: the app's files, polled for changes.
    code_watcher: Option<CodeWatcher>,
    /// Shared counters for the exporter and the control socket.
    board: &'static Board,
    /// The control socket, when served.
    control: Option<crate::control::ControlServer>,
    /// `--metrics-bind` and its exporter process.
    exporter: Option<ops::Exporter>,
    /// When the master started (`show stats` uptime).
    started: Instant,
    /// When a `TERM` deferred by `--shutdown-delay` becomes the stop.
    stop_at: Option<Instant>,
    gauge_clock: ops::GaugeClock,
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
    /// The `--reload` report pipe.
    #[error("cannot watch the code for --reload: {0}")]
    Reload(std::io::Error),
    /// The metrics board.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::board::BoardError),
    /// The `--metrics-bind` listener.
    #[error("--metrics-bind: {0}")]
    MetricsBind(#[from] crate::listeners::BindError),
    /// The pidfile.
    #[error("cannot write pidfile {path}: {source}")]
    Pidfile {
        /// The configured path.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// How long the loop sleeps between housekeeping rounds when nothing is
/// changing.
const TICK: Duration = Duration::from_secs(1);
/// The same while a worker boots or waits to be replaced, or while request
/// limits are being watched: replacements should follow readiness closely.
const FAST_TICK: Duration = Duration::from_millis(50);
/// How often resident memory is read for `max_worker_memory`.
const MEMORY_CHECK: Duration = Duration::from_secs(1);

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
        let board = crate::metrics::install(capacity)?;
        board.set_started(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        crate::metrics::statsd::install(&settings.ops);
        let exporter = match &settings.ops.metrics_bind {
            Some(bind) => Some(ops::Exporter {
                listener: crate::listeners::bind_all(
                    std::slice::from_ref(bind),
                    crate::listeners::ListenOptions {
                        backlog: 64,
                        reuse_port: false,
                    },
                )?
                .remove(0),
                pid: None,
            }),
            None => None,
        };
        let control = ops::open_control(&settings);
        let signals = SignalPipe::install().map_err(ArbiterError::Signals)?;
        let old_master = upgraded_from();
        // An upgraded master writes `<pidfile>.2` until the old one exits.
        let pidfile_target = settings.pidfile.clone().filter(|_| old_master.is_some());
        let pidfile_path = settings.pidfile.as_ref().map(|path| match old_master {
            Some(_) => {
                let mut second = path.clone().into_os_string();
                second.push(".2");
                std::path::PathBuf::from(second)
            }
            None => path.clone(),
        });
        let pidfile = match &pidfile_path {
            Some(path) => Some(Pidfile::create(path, std::process::id()).map_err(|source| {
                ArbiterError::Pidfile {
                    path: path.display().to_string(),
                    source,
                }
            })?),
            None => None,
        };
        let code_watcher = if settings.reload {
            Some(
                CodeWatcher::new(&settings.reload_extra_files, settings.reload_engine)
                    .map_err(ArbiterError::Reload)?,
            )
        } else {
            None
        };
        Ok(Self {
            code_watcher,
            num_workers: settings.workers,
            settings: Arc::new(settings),
            listeners,
            launcher,
            reloader: None,
            log_reopener: None,
            scoreboard,
            signals,
            workers: BTreeMap::new(),
            pidfile,
            generation: 0,
            failed_generation: None,
            reloading: false,
            announced_ready: false,
            jitter: Jitter::new(),
            worker_age: 0,
            last_memory_check: Instant::now(),
            upgrade: None,
            upgrade_child: None,
            old_master,
            pidfile_target,
            board,
            control,
            exporter,
            started: Instant::now(),
            stop_at: None,
            gauge_clock: ops::GaugeClock::default(),
        })
    }

    /// Sets how `HUP` re-reads the configuration; without one, `HUP` only
    /// replaces the workers.
    pub fn with_reloader(mut self, reloader: Reloader) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// Sets how `USR1` reopens the master's log files; the signal is also
    /// forwarded to every worker, which reopens its own.
    pub fn with_log_reopener(mut self, reopener: LogReopener) -> Self {
        self.log_reopener = Some(reopener);
        self
    }

    /// Sets how `USR2` starts a new master; without it `USR2` is refused.
    pub fn with_upgrade(mut self, upgrade: Option<Upgrade>) -> Self {
        self.upgrade = upgrade;
        self
    }

    /// Runs until stopped; returns the master's exit code.
    pub fn run(mut self) -> i32 {
        let pid = std::process::id();
        tracing::info!("Starting ferricorn {}", env!("CARGO_PKG_VERSION"));
        for listener in &self.listeners {
            tracing::info!("Listening at: {listener} ({pid})");
        }
        tracing::info!("Using worker: {}", self.settings.worker_class.as_str());
        self.launcher.event(MasterEvent::Ready);
        self.start_ops();
        let code = loop {
            if let Some(code) = self.manage_workers() {
                break code;
            }
            self.ops_round();
            let mut fds = self.ops_fds();
            let reload_fd = self.code_watcher.as_ref().and_then(CodeWatcher::wake_fd);
            fds.extend(reload_fd.map(|fd| (std::os::fd::AsRawFd::as_raw_fd(&fd), false)));
            let signals = self.signals.wait_with(self.tick(), &fds);
            if let Some(code) = self.handle_signals(signals) {
                break code;
            }
            if self.stop_due() {
                break self.halt(0, None);
            }
            if let Some((code, reason)) = self.reap_workers() {
                break self.halt(code, reason);
            }
            self.murder_workers();
            self.check_recycling();
            self.check_code();
            self.check_old_master();
        };
        notify("STOPPING=1");
        self.stop_ops();
        self.launcher.event(MasterEvent::Exit);
        // A new master started by USR2 serves the same socket files.
        if self.upgrade_child.is_none() {
            remove_socket_files(&self.listeners);
        }
        if let Some(pidfile) = &self.pidfile {
            pidfile.remove();
        }
        code
    }

    /// How long to wait for signals before the next housekeeping round.
    fn tick(&self) -> Duration {
        let changing = self.workers.values().any(|record| {
            record.retire.is_some()
                || record.generation != self.generation
                || self.scoreboard.slot(record.slot).state() == WorkerState::Booting
        });
        let tick = if changing || self.settings.max_requests > 0 || self.stop_at.is_some() {
            FAST_TICK
        } else {
            TICK
        };
        self.until_next_timeout().map_or(tick, |due| due.min(tick))
    }

    /// How long until the first worker still beating could pass `timeout`,
    /// so it is stopped as soon as it does, not up to a tick later (a sync
    /// worker beats when a request starts and not again until it ends).
    /// Aborted workers are left out: their `SIGKILL` waits a round.
    fn until_next_timeout(&self) -> Option<Duration> {
        if self.settings.timeout == 0 {
            return None;
        }
        let limit_ms = self.settings.timeout.saturating_mul(1000);
        let now = monotonic_ms();
        self.workers
            .values()
            .filter(|record| !record.aborted)
            .map(|record| self.scoreboard.slot(record.slot))
            .filter(|slot| slot.state() == WorkerState::Ready)
            .map(|slot| limit_ms.saturating_sub(slot.silent_for_ms(now)) + 1)
            .min()
            .map(Duration::from_millis)
    }

    /// Acts on signals; returns an exit code when the master must stop.
    fn handle_signals(&mut self, signals: Vec<Signal>) -> Option<i32> {
        for signal in signals {
            if signal == Signal::SIGUSR1 {
                // Before logging, so that this very line opens the new file.
                if let Some(reopen) = &self.log_reopener {
                    reopen();
                }
            }
            if signal != Signal::SIGCHLD {
                tracing::info!("Handling signal: {}", signal_name(signal));
            }
            match signal {
                Signal::SIGTERM if self.defer_stop() => {}
                Signal::SIGTERM => return Some(self.halt(0, None)),
                Signal::SIGINT | Signal::SIGQUIT => {
                    self.stop(false);
                    tracing::info!("Shutting down: Master");
                    return Some(0);
                }
                Signal::SIGHUP => self.reload(),
                Signal::SIGUSR1 => self.signal_workers(Signal::SIGUSR1),
                Signal::SIGUSR2 => self.reexec(),
                Signal::SIGWINCH => {
                    // gunicorn: WINCH stops the workers of a daemon (an old
                    // master left running after an upgrade, typically).
                    if self.upgrade_child.is_some() || self.settings.daemon {
                        tracing::info!("graceful stop of workers");
                        self.num_workers = 0;
                    } else {
                        tracing::info!("SIGWINCH ignored. Not daemonized");
                    }
                }
                Signal::SIGTTIN => self.set_num_workers(self.num_workers + 1),
                Signal::SIGTTOU => {
                    self.set_num_workers(self.num_workers.saturating_sub(1).max(1));
                }
                Signal::SIGCHLD => {}
                other => {
                    tracing::warn!("{} is not supported yet; ignored", signal_name(other));
                }
            }
        }
        None
    }

    /// Changes the target number of workers, telling the launcher.
    fn set_num_workers(&mut self, new: u32) {
        let old = self.num_workers;
        self.num_workers = new;
        if new != old {
            self.launcher
                .event(MasterEvent::WorkersChanged { new, old });
        }
    }

    /// `USR2`: starts a new master (the ferricorn installed now) that
    /// inherits the listeners; this one keeps serving until `WINCH`/`TERM`.
    fn reexec(&mut self) {
        if let Some(child) = self.upgrade_child {
            tracing::warn!("USR2 ignored: the upgraded master (pid:{child}) is still running");
            return;
        }
        if self.old_master.is_some() {
            tracing::warn!("USR2 ignored: the old master is still running");
            return;
        }
        let Some(upgrade) = &self.upgrade else {
            tracing::warn!("USR2 ignored: the command line cannot be passed on");
            return;
        };
        self.launcher.event(MasterEvent::PreExec);
        match upgrade.spawn(&self.listeners) {
            Ok(child) => {
                tracing::info!("Upgrading: started a new master (pid:{child})");
                self.upgrade_child = Some(child);
            }
            Err(error) => tracing::error!("cannot start a new master: {error}"),
        }
    }

    /// After an upgrade: once the old master is gone, takes over its
    /// pidfile and tells systemd which process is the main one now.
    fn check_old_master(&mut self) {
        let Some(old) = self.old_master else { return };
        if nix::unistd::getppid() == old {
            return;
        }
        self.old_master = None;
        tracing::info!("The old master (pid:{old}) has exited; this master takes over");
        if let (Some(pidfile), Some(target)) = (self.pidfile.as_mut(), self.pidfile_target.take()) {
            if let Err(error) = pidfile.rename(&target) {
                tracing::error!("cannot move the pidfile to {}: {error}", target.display());
            }
        }
        notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
    }

    /// `HUP`: re-reads the configuration, then marks every worker for
    /// phased replacement (a new generation).
    fn reload(&mut self) {
        tracing::info!("Hang up: Master");
        notify("RELOADING=1");
        if let Some(reloader) = self.reloader.as_mut() {
            match reloader() {
                Ok(settings) => {
                    if settings.bind != self.settings.bind {
                        tracing::warn!(
                            "bind changed in the configuration; the listeners stay as they are \
                             until the next restart or USR2 upgrade"
                        );
                    }
                    self.set_num_workers(settings.workers);
                    self.settings = Arc::new(settings);
                }
                Err(error) => {
                    tracing::error!(
                        "Cannot reload the configuration, keeping the current one: {error}"
                    );
                }
            }
        }
        self.launcher.event(MasterEvent::Reload);
        self.board.count_reload();
        self.restart_workers();
    }

    /// Marks every worker for phased replacement (a new generation).
    fn restart_workers(&mut self) {
        self.generation += 1;
        self.failed_generation = None;
        self.reloading = true;
    }

    /// `--reload`: a changed file of the app replaces the workers, the
    /// way `HUP` does (without re-reading the configuration).
    fn check_code(&mut self) {
        let Some(path) = self.code_watcher.as_mut().and_then(CodeWatcher::poll) else {
            return;
        };
        tracing::info!("Worker reloading: {} modified", path.display());
        self.board.count_reload();
        self.restart_workers();
    }

    /// Collects exited workers. A worker that could not boot or load the
    /// app stops the master (retrying would only loop), with that reason —
    /// unless other workers are serving: then they keep serving.
    fn reap_workers(&mut self) -> Option<(i32, Option<&'static str>)> {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return None,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            if Some(pid) == self.upgrade_child {
                self.upgrade_child = None;
                tracing::error!("The upgraded master (pid:{pid}) exited: {status:?}");
                continue;
            }
            if self.exporter_exited(pid) {
                continue;
            }
            let Some(record) = self.workers.remove(&pid) else {
                continue;
            };
            self.board.retire(record.slot, self.exit_reason(&record));
            self.scoreboard.release(record.slot);
            self.launcher.event(MasterEvent::ChildExit {
                pid: pid.as_raw(),
                age: record.age,
            });
            // A worker killed for a boot timeout failed to boot, like one
            // that exited with WORKER_BOOT_ERROR.
            let status = if record.boot_timed_out {
                WaitStatus::Exited(pid, WORKER_BOOT_ERROR)
            } else {
                status
            };
            match status {
                WaitStatus::Exited(_, code @ (WORKER_BOOT_ERROR | APP_LOAD_ERROR)) => {
                    let reason = if code == APP_LOAD_ERROR {
                        "App failed to load."
                    } else {
                        "Worker failed to boot."
                    };
                    if !self.serving_workers() {
                        return Some((code, Some(reason)));
                    }
                    tracing::error!(
                        "Worker (pid:{pid}) exited with code {code}: {reason} The running \
                         workers keep serving; fix the problem and send HUP."
                    );
                    self.failed_generation = Some(self.generation);
                    self.reloading = false;
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

    /// Whether any worker not being stopped is serving.
    fn serving_workers(&self) -> bool {
        self.workers.values().any(|record| {
            !record.stopping && self.scoreboard.slot(record.slot).state() == WorkerState::Ready
        })
    }

    /// Aborts workers silent for longer than `timeout`: `SIGABRT` first,
    /// `SIGKILL` if still there a round later. A worker still booting
    /// (importing the app) `timeout` after its fork is killed and reported
    /// as a boot timeout instead: it never served, so there is nothing to
    /// finish.
    fn murder_workers(&mut self) {
        if self.settings.timeout == 0 {
            return;
        }
        let limit = Duration::from_secs(self.settings.timeout);
        let limit_ms = self.settings.timeout.saturating_mul(1000);
        let now = monotonic_ms();
        for (&pid, record) in &mut self.workers {
            let slot = self.scoreboard.slot(record.slot);
            if slot.state() == WorkerState::Booting {
                if !record.boot_timed_out && record.spawned.elapsed() > limit {
                    tracing::error!(
                        target: "ferricorn.critical",
                        "WORKER BOOT TIMEOUT (pid:{pid}): not ready {}s after it was forked \
                         (still importing the app?); killing it",
                        self.settings.timeout
                    );
                    record.boot_timed_out = true;
                    let _ = kill(pid, Signal::SIGKILL);
                }
                continue;
            }
            if slot.silent_for_ms(now) <= limit_ms {
                continue;
            }
            if record.aborted {
                let _ = kill(pid, Signal::SIGKILL);
            } else {
                log_worker_timeout(pid, slot.oldest_request(now));
                self.board
                    .count_aborted(AbortReason::WorkerTimeout, slot.requests_in_flight());
                record.aborted = true;
                let _ = kill(pid, Signal::SIGABRT);
            }
        }
    }

    /// Marks healthy workers for replacement: one of its requests running
    /// past `request_timeout`, past their request limit, or (about once a
    /// second) past `max_worker_memory`.
    fn check_recycling(&mut self) {
        let check_memory =
            self.settings.max_worker_memory > 0 && self.last_memory_check.elapsed() >= MEMORY_CHECK;
        if check_memory {
            self.last_memory_check = Instant::now();
        }
        let memory_limit = self.settings.max_worker_memory.saturating_mul(1024 * 1024);
        let request_limit_ms =
            Some(self.settings.request_timeout.saturating_mul(1000)).filter(|&ms| ms > 0);
        let now = monotonic_ms();
        for (&pid, record) in &mut self.workers {
            if record.stopping || record.retire.is_some() {
                continue;
            }
            let slot = self.scoreboard.slot(record.slot);
            if let Some((ran_ms, line)) = request_limit_ms
                .and_then(|limit| slot.oldest_request(now).filter(|(ran, _)| *ran > limit))
            {
                let (method, target) = request_line_parts(&line);
                tracing::error!(
                    http.request.method = method,
                    url.original = target,
                    event.duration = ran_ms.saturating_mul(1_000_000),
                    "Request timeout: \"{line}\" has run {}s in worker (pid:{pid}), over \
                     request_timeout {}s; replacing the worker",
                    ran_ms / 1000,
                    self.settings.request_timeout
                );
                record.retire = Some(Retire::RequestTimeout);
                continue;
            }
            if record.max_requests > 0 && slot.requests() >= record.max_requests {
                tracing::info!(
                    "Autorestarting worker after current request. (pid:{pid}, {} requests)",
                    slot.requests()
                );
                record.retire = Some(Retire::MaxRequests);
                continue;
            }
            if check_memory {
                if let Some(rss) = rss_bytes(pid.as_raw()).filter(|&rss| rss > memory_limit) {
                    tracing::info!(
                        "Autorestarting worker after current request. (pid:{pid}, memory {} MB \
                         over max_worker_memory {} MB)",
                        rss / (1024 * 1024),
                        self.settings.max_worker_memory
                    );
                    record.retire = Some(Retire::Memory);
                }
            }
        }
    }

    /// Whether `record` must be replaced.
    fn outdated(&self, record: &WorkerRecord) -> bool {
        record.generation != self.generation || record.retire.is_some()
    }

    /// Brings the workers to the target: forks missing ones; replaces
    /// outdated ones one at a time (fork, wait for Ready, then `TERM` the
    /// old one); retires the oldest extras. Returns an exit code when no
    /// worker is left and none can be started.
    fn manage_workers(&mut self) -> Option<i32> {
        let target = usize::try_from(self.num_workers).unwrap_or(1);
        let failed = self.failed_generation == Some(self.generation);
        // Oldest first: BTreeMap order is pid order, which is age order
        // until pids wrap; good enough for picking whom to retire.
        let live: Vec<Pid> = self
            .workers
            .iter()
            .filter(|(_, record)| !record.stopping)
            .map(|(&pid, _)| pid)
            .collect();
        if failed && live.is_empty() {
            return Some(self.halt(APP_LOAD_ERROR, Some("App failed to load.")));
        }
        // While the new generation cannot boot, the old workers count as
        // current: they stay, and nothing new is forked.
        let (mut outdated, mut current): (Vec<Pid>, Vec<Pid>) = live
            .into_iter()
            .partition(|pid| !failed && self.workers.get(pid).is_some_and(|r| self.outdated(r)));
        let ready = current
            .iter()
            .filter(|pid| self.state_of(**pid) == WorkerState::Ready)
            .count();
        // A ready replacement (or a lower target) lets an outdated one go.
        while !outdated.is_empty() && ready + outdated.len() > target {
            let pid = outdated.remove(0);
            self.terminate(pid);
        }
        // Extras beyond the target (TTOU): the oldest go.
        if outdated.is_empty() && current.len() > target {
            let extra = current.len() - target;
            for pid in current.drain(..extra).collect::<Vec<_>>() {
                self.terminate(pid);
            }
        }
        if failed {
            return None;
        }
        // Fill up to the target, plus one replacement at a time while
        // outdated workers remain and no replacement is still booting.
        let booting = current.len().saturating_sub(ready);
        let surge = usize::from(!outdated.is_empty() && booting == 0);
        let mut started = 0;
        while current.len() + started < target
            && current.len() + started + outdated.len() < target + surge
        {
            if !self.spawn_worker() {
                break;
            }
            started += 1;
        }
        if target > 0
            && outdated.is_empty()
            && started == 0
            && booting == 0
            && current.len() == target
        {
            self.settled();
        }
        None
    }

    /// The scoreboard state of worker `pid`.
    fn state_of(&self, pid: Pid) -> WorkerState {
        self.workers.get(&pid).map_or(WorkerState::Free, |record| {
            self.scoreboard.slot(record.slot).state()
        })
    }

    /// Every worker is current and ready: tell systemd.
    fn settled(&mut self) {
        if !self.announced_ready || self.reloading {
            notify("READY=1");
            self.announced_ready = true;
            self.reloading = false;
        }
    }

    /// Sends `TERM` to a worker: it finishes its in-flight requests.
    fn terminate(&mut self, pid: Pid) {
        if let Some(record) = self.workers.get_mut(&pid) {
            record.stopping = true;
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
        self.worker_age += 1;
        let age = self.worker_age;
        self.launcher.event(MasterEvent::PreFork { age });
        self.launcher.before_fork();
        let saved_mask = SignalPipe::block_for_fork();
        // SAFETY: the master is single-threaded (no runtime, no helper
        // threads), so the child starts with consistent state.
        let forked = unsafe { fork() };
        self.launcher
            .after_fork(matches!(forked, Ok(ForkResult::Child)));
        match forked {
            Ok(ForkResult::Child) => {
                self.signals.reset_in_child();
                restore_mask(saved_mask);
                crate::metrics::enter_worker(index);
                if let Some(control) = &self.control {
                    control.close_in_child();
                }
                // A worker must not outlive its master (gunicorn checks its
                // parent pid; the kernel can tell us directly).
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
                if nix::unistd::getppid().as_raw() != master_pid {
                    std::process::exit(0);
                }
                let code = self
                    .launcher
                    .run_worker(&self.settings, &self.listeners, slot, age);
                std::process::exit(code);
            }
            Ok(ForkResult::Parent { child }) => {
                restore_mask(saved_mask);
                slot.set_pid(child.as_raw());
                self.board.claim(index, child.as_raw());
                let max_requests = self.jitter.limit(
                    self.settings.max_requests,
                    self.settings.max_requests_jitter,
                );
                self.workers.insert(
                    child,
                    WorkerRecord {
                        slot: index,
                        generation: self.generation,
                        max_requests,
                        retire: None,
                        stopping: false,
                        aborted: false,
                        age,
                        spawned: Instant::now(),
                        boot_timed_out: false,
                        killed: false,
                    },
                );
                true
            }
            Err(error) => {
                restore_mask(saved_mask);
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
        notify("STOPPING=1");
        self.board.set_draining();
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
                        self.board
                            .retire(record.slot, crate::metrics::ExitReason::Shutdown);
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

/// Logs gunicorn's `WORKER TIMEOUT (pid:N)` (users grep for it) followed,
/// when the worker was serving one, by the request it was stuck in and
/// for how long: the line that says which view to look at.
fn log_worker_timeout(pid: Pid, request: Option<(u64, String)>) {
    match request {
        Some((ran_ms, line)) => {
            let (method, target) = request_line_parts(&line);
            tracing::event!(
                target: "ferricorn.critical",
                tracing::Level::ERROR,
                http.request.method = method,
                url.original = target,
                event.duration = ran_ms.saturating_mul(1_000_000),
                "WORKER TIMEOUT (pid:{pid}) while serving \"{line}\" for {:.1}s",
                ran_ms as f64 / 1000.0
            );
        }
        None => tracing::error!(target: "ferricorn.critical", "WORKER TIMEOUT (pid:{pid})"),
    }
}

/// The method and target of a (possibly truncated) request line.
fn request_line_parts(line: &str) -> (&str, &str) {
    let mut words = line.split(' ');
    (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    )
}
