//! Wiring between the master and the worker crates: what a forked child
//! runs, and the scoreboard slot seen as the worker's heartbeat.

use std::sync::Arc;

use ferricorn_config::Settings;
use ferricorn_master::{BoundListener, Slot, WorkerLauncher};
use ferricorn_worker::{Heartbeat, Listener, WorkerSetup};

/// Starts a worker in each forked child.
pub struct Launcher;

struct SlotHeartbeat(&'static Slot);

impl Heartbeat for SlotHeartbeat {
    fn beat(&self) {
        self.0.beat();
    }

    fn ready(&self) {
        self.0.set_ready();
    }

    fn request_started(&self) {
        self.0.request_started();
    }

    fn request_finished(&self) {
        self.0.request_finished();
    }
}

impl WorkerLauncher for Launcher {
    fn run_worker(
        &self,
        settings: &Arc<Settings>,
        listeners: &[BoundListener],
        slot: &'static Slot,
    ) -> i32 {
        crate::logging::reopen_on_usr1();
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
        ferricorn_worker::run(WorkerSetup {
            settings: Arc::clone(settings),
            listeners,
            heartbeat: Arc::new(SlotHeartbeat(slot)),
            tls,
        })
    }
}
