//! ferricorn's master process (the arbiter).
//!
//! The master binds the listeners ([`listeners`]), maps the worker
//! scoreboard ([`scoreboard`]), forks workers through a
//! [`arbiter::WorkerLauncher`] supplied by the binary, and keeps them alive:
//! it reaps and replaces dead workers, aborts workers past `timeout`, and
//! acts on signals ([`signals`]). It never parses HTTP and never starts a
//! Python interpreter of its own.

pub mod arbiter;
pub mod listeners;
pub mod pidfile;
pub mod scoreboard;
pub mod signals;

pub use arbiter::{Arbiter, WorkerLauncher};
pub use listeners::{bind_all, BoundListener};
pub use scoreboard::Slot;
