//! Wiring between the master and the worker crates: what a forked child
//! runs, and the scoreboard slot seen as the worker's heartbeat.

use std::cell::RefCell;
use std::sync::Arc;

use ferricorn_config::Settings;
use ferricorn_master::{BoundListener, MasterEvent, Slot, WorkerLauncher};
use ferricorn_python::fork::ForkGuard;
use ferricorn_worker::{Heartbeat, Listener, WorkerSetup};

use crate::master_python::MasterPython;

/// Starts a worker in each forked child, wraps every fork in CPython's fork
/// protocol (the master is a `python` process), and runs the master's hooks.
pub struct Launcher {
    /// The preloaded app and the master's hooks, when configured.
    python: Option<MasterPython>,
    /// Who the workers run as (`--user`/`--group`), resolved at start.
    owner: Option<crate::process::Owner>,
    /// The GIL held across the current `fork()`.
    fork: RefCell<Option<ForkGuard>>,
}

impl Launcher {
    /// A launcher for workers run as `owner`, with the master's `python`.
    pub fn new(python: Option<MasterPython>, owner: Option<crate::process::Owner>) -> Self {
        Self {
            python,
            owner,
            fork: RefCell::new(None),
        }
    }
}

struct SlotHeartbeat(&'static Slot);

impl Heartbeat for SlotHeartbeat {
    fn beat(&self) {
        self.0.beat();
        ferricorn_master::metrics::statsd::flush_due();
    }

    fn ready(&self) {
        self.0.set_ready();
    }

    fn request_started(&self, line: [&[u8]; 3]) -> Option<usize> {
        ferricorn_master::metrics::request_started();
        self.0.request_started(&line)
    }

    fn request_finished(&self, token: Option<usize>) {
        self.0.request_finished(token);
        ferricorn_master::metrics::request_ended();
    }

    fn request_done(&self, done: &ferricorn_worker::RequestDone<'_>) {
        crate::observe::request_done(done);
    }
}

impl WorkerLauncher for Launcher {
    fn run_worker(
        &self,
        settings: &Arc<Settings>,
        listeners: &[BoundListener],
        slot: &'static Slot,
        age: u64,
    ) -> i32 {
        crate::proctitle::set(&format!(
            "ferricorn: worker [{}]",
            crate::proctitle::name(settings)
        ));
        crate::logging::reopen_on_usr1();
        // From the settings this worker was forked with, so a HUP's new
        // value reaches the new workers.
        crate::observe::set_slow_request_log(settings.ops.slow_request_log);
        if let Some(owner) = &self.owner {
            if let Err(error) = owner.switch() {
                tracing::error!("cannot switch the worker's user or group: {error}");
                return ferricorn_worker::WORKER_BOOT_ERROR;
            }
        }
        let listeners = listeners
            .iter()
            .map(|listener| match listener {
                BoundListener::Tcp(l) => l.try_clone().map(Listener::Tcp),
                BoundListener::Unix(l, _) => l.try_clone().map(Listener::Unix),
            })
            .collect::<Result<Vec<_>, _>>();
        let listeners = match listeners {
            Ok(listeners) => listeners,
            Err(error) => {
                tracing::error!("cannot take over the listeners: {error}");
                return ferricorn_worker::WORKER_BOOT_ERROR;
            }
        };
        // Read in each new worker, so a reload also picks up renewed
        // certificates; main() checked them once before binding.
        let tls = match ferricorn_worker::tls::server_config(settings) {
            Ok(tls) => tls,
            Err(error) => {
                tracing::error!("{error}");
                return ferricorn_worker::WORKER_BOOT_ERROR;
            }
        };
        let code = ferricorn_worker::run(WorkerSetup {
            settings: Arc::clone(settings),
            listeners,
            heartbeat: Arc::new(SlotHeartbeat(slot)),
            tls,
            preloaded: self.python.as_ref().and_then(MasterPython::app),
            age,
        });
        // Batched request metrics and queued log records are not lost
        // when a worker stops.
        ferricorn_master::metrics::statsd::flush();
        crate::logging::python::flush();
        code
    }

    fn before_fork(&self) {
        // The master's queued lines go out before the new worker's, and
        // its logging thread holds no Python lock across the fork.
        crate::logging::python::flush();
        *self.fork.borrow_mut() = ForkGuard::before();
    }

    fn after_fork(&self, in_child: bool) {
        if let Some(guard) = self.fork.borrow_mut().take() {
            if in_child {
                guard.child();
            } else {
                guard.parent();
            }
        }
        if in_child {
            crate::logging::python::after_fork_child();
        }
    }

    fn event(&self, event: MasterEvent) {
        if let Some(python) = &self.python {
            python.event(event);
        }
    }
}
