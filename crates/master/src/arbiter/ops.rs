//! The arbiter's operability duties, kept out of the main loop's file: the
//! control socket, the metrics exporter process, StatsD gauges, the gauges
//! published on the metrics board, and `--shutdown-delay`.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, ForkResult, Pid};

use super::{Arbiter, WorkerLauncher, WorkerRecord};
use crate::control::{ControlError, ControlServer};
use crate::listeners::BoundListener;
use crate::metrics::exporter::{self, ExporterInfo};
use crate::metrics::{backlog, statsd, ExitReason, Gauges};
use crate::recycle::Retire;
use crate::scoreboard::{monotonic_ms, WorkerState};
use crate::signals::{restore_mask, SignalPipe};

/// `gunicorn.workers` is re-sent this often even when unchanged (gunicorn
/// only sends changes, so DogStatsD gauges go stale).
const WORKERS_GAUGE_EVERY: Duration = Duration::from_secs(10);
/// `gunicorn.backlog` at most this often.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// The `--metrics-bind` listener and the exporter serving it.
pub(super) struct Exporter {
    pub(super) listener: BoundListener,
    pub(super) pid: Option<Pid>,
}

/// StatsD gauge bookkeeping.
#[derive(Default)]
pub(super) struct GaugeClock {
    workers: Option<(u64, Instant)>,
    backlog: Option<Instant>,
}

/// Opens the control socket; failures are logged, never fatal (a
/// read-only container must still serve). The default path only earns an
/// INFO line.
pub(super) fn open_control(settings: &ferricorn_config::Settings) -> Option<ControlServer> {
    let ops = &settings.ops;
    let path = ops.control_socket_path()?;
    match ControlServer::bind(&path, ops.control_socket_mode) {
        Ok(server) => Some(server),
        Err(error @ ControlError::InUse(_)) => {
            tracing::warn!("control socket disabled: {error}");
            None
        }
        Err(error) if ops.control_socket_is_default() => {
            tracing::info!(
                "control socket disabled: {error}; set --control-socket or --no-control-socket"
            );
            None
        }
        Err(error) => {
            tracing::warn!("control socket disabled: {error}");
            None
        }
    }
}

impl<L: WorkerLauncher> Arbiter<L> {
    /// Start-up lines and the exporter, once the loop is about to run.
    pub(super) fn start_ops(&mut self) {
        if let Some(control) = &self.control {
            tracing::info!("Control socket listening at {}", control.path().display());
        }
        if let Some(exporter) = &self.exporter {
            tracing::info!("Metrics listening at: {}", exporter.listener);
        }
        self.spawn_exporter();
    }

    /// Descriptors the loop also waits on.
    pub(super) fn ops_fds(&self) -> Vec<(std::os::fd::RawFd, bool)> {
        self.control
            .as_ref()
            .map(ControlServer::poll_fds)
            .unwrap_or_default()
    }

    /// Once per loop round: control requests, board gauges, StatsD gauges.
    pub(super) fn ops_round(&mut self) {
        let requests = self
            .control
            .as_mut()
            .map(ControlServer::poll)
            .unwrap_or_default();
        for request in requests {
            let result = self
                .control_command(&request.words)
                .map_err(|e| e.message());
            if let Some(control) = self.control.as_mut() {
                control.respond(&request, result);
            }
        }
        let gauges = self.gauges();
        self.board.publish(gauges, monotonic_ms());
        if statsd::enabled() {
            let live = u64::try_from(self.workers.len()).unwrap_or(u64::MAX);
            let due = match self.gauge_clock.workers {
                Some((sent, at)) => sent != live || at.elapsed() >= WORKERS_GAUGE_EVERY,
                None => true,
            };
            if due {
                statsd::workers(live);
                self.gauge_clock.workers = Some((live, Instant::now()));
            }
            if self.settings.ops.enable_backlog_metric
                && self
                    .gauge_clock
                    .backlog
                    .is_none_or(|at| at.elapsed() >= BACKLOG_EVERY)
            {
                self.gauge_clock.backlog = Some(Instant::now());
                statsd::backlog(self.backlog());
            }
        }
    }

    /// The accept queue summed over the TCP listeners.
    fn backlog(&self) -> u64 {
        use std::os::fd::AsRawFd;
        self.listeners
            .iter()
            .filter_map(|l| backlog::queue(l.as_raw_fd()))
            .map(|(queued, _)| queued)
            .sum()
    }

    fn gauges(&self) -> Gauges {
        let mut gauges = Gauges {
            target: u64::from(self.num_workers),
            per_worker_capacity: u64::from(match self.settings.worker_class {
                ferricorn_config::WorkerClass::Sync => 1,
                ferricorn_config::WorkerClass::Gthread => self.settings.threads,
                ferricorn_config::WorkerClass::Async => self.settings.worker_connections,
            }),
            ..Gauges::default()
        };
        for record in self.workers.values() {
            match self.scoreboard.slot(record.slot).state() {
                _ if record.stopping => gauges.stopping += 1,
                WorkerState::Ready => gauges.ready += 1,
                _ => gauges.booting += 1,
            }
        }
        gauges
    }

    /// Why the worker of `record` exited, for the exit counters.
    pub(super) fn exit_reason(&self, record: &WorkerRecord) -> ExitReason {
        if record.boot_timed_out {
            return ExitReason::BootTimeout;
        }
        if record.aborted {
            return ExitReason::Timeout;
        }
        if record.killed {
            return ExitReason::Killed;
        }
        match record.retire {
            Some(Retire::MaxRequests) => return ExitReason::MaxRequests,
            Some(Retire::Memory) => return ExitReason::Memory,
            Some(Retire::RequestTimeout) => return ExitReason::RequestTimeout,
            Some(Retire::Outdated) => return ExitReason::Reload,
            None => {}
        }
        if self.board.master_view().draining {
            return ExitReason::Shutdown;
        }
        if record.stopping {
            if record.generation != self.generation {
                return ExitReason::Reload;
            }
            return ExitReason::ScaleDown;
        }
        ExitReason::Crash
    }

    /// Forks the exporter process (no Python, one thread).
    pub(super) fn spawn_exporter(&mut self) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        let saved = SignalPipe::block_for_fork();
        // SAFETY: the master is single-threaded (no runtime, no helper
        // threads), so the child starts with consistent state; the child
        // never runs Python, so no interpreter fork handlers are needed.
        let forked = unsafe { fork() };
        match forked {
            Ok(ForkResult::Child) => {
                self.signals.reset_in_child();
                restore_mask(saved);
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
                if let Some(control) = &self.control {
                    control.close_in_child();
                }
                let scoreboard = self.scoreboard.share();
                let info = ExporterInfo {
                    version: env!("CARGO_PKG_VERSION"),
                    worker_class: self.settings.worker_class.as_str().to_string(),
                    listeners: self
                        .listeners
                        .iter()
                        .filter(|l| matches!(l, BoundListener::Tcp(_)))
                        .map(|l| {
                            use std::os::fd::AsRawFd;
                            (l.to_string(), l.as_raw_fd())
                        })
                        .collect(),
                    slot_ready: Box::new(move |index| {
                        scoreboard.slot(index).state() == WorkerState::Ready
                    }),
                };
                exporter::serve(&exporter.listener, self.board, &info);
            }
            Ok(ForkResult::Parent { child }) => {
                restore_mask(saved);
                if let Some(exporter) = &mut self.exporter {
                    exporter.pid = Some(child);
                }
            }
            Err(error) => {
                restore_mask(saved);
                tracing::error!("cannot fork the metrics exporter: {error}");
            }
        }
    }

    /// A reaped child that was the exporter: respawned unless stopping.
    pub(super) fn exporter_exited(&mut self, pid: Pid) -> bool {
        let Some(exporter) = &mut self.exporter else {
            return false;
        };
        if exporter.pid != Some(pid) {
            return false;
        }
        exporter.pid = None;
        tracing::warn!("The metrics exporter (pid:{pid}) exited; starting a new one");
        self.spawn_exporter();
        true
    }

    /// `TERM` with `--shutdown-delay`: report not-ready, keep serving, and
    /// stop gracefully once the delay is over. Returns whether the stop is
    /// deferred.
    pub(super) fn defer_stop(&mut self) -> bool {
        let delay = self.settings.ops.shutdown_delay;
        if delay == 0 || self.stop_at.is_some() {
            return false;
        }
        self.board.set_draining();
        self.stop_at = Some(Instant::now() + Duration::from_secs(delay));
        tracing::info!("Shutdown delay: reporting not ready, serving {delay}s more");
        true
    }

    /// Whether a deferred stop is due.
    pub(super) fn stop_due(&self) -> bool {
        self.stop_at.is_some_and(|at| Instant::now() >= at)
    }

    /// At exit: the exporter goes, the control socket file is removed.
    pub(super) fn stop_ops(&mut self) {
        if let Some(pid) = self.exporter.as_mut().and_then(|e| e.pid.take()) {
            let _ = kill(pid, Signal::SIGTERM);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(control) = &self.control {
            control.remove();
        }
    }
}
