//! ferricorn's master process (the arbiter).
//!
//! The master binds the listeners ([`listeners`]), maps the worker
//! scoreboard ([`scoreboard`]), forks workers through a
//! [`arbiter::WorkerLauncher`] supplied by the binary, and keeps them alive:
//! it reaps and replaces dead workers, aborts workers past `timeout`, and
//! acts on signals ([`signals`]). Workers are replaced in phases
//! ([`recycle`]): the replacement first, then the old one. systemd hears
//! about it through [`notify`]. It never parses HTTP and never touches Python itself:
//! the launcher does, around every fork (the master is a `python` process)
//! and at [`MasterEvent`]s (`--preload`, server hooks).

pub mod arbiter;
pub mod control;
pub mod listeners;
pub mod metrics;
pub mod notify;
pub mod pidfile;
pub mod recycle;
pub mod reload;
pub mod scoreboard;
pub mod signals;
pub mod udp;
pub mod upgrade;

pub use arbiter::{Arbiter, LogReopener, MasterEvent, Reloader, WorkerLauncher};
pub use listeners::{bind_all, BindError, BoundListener, ListenOptions};
pub use scoreboard::Slot;
