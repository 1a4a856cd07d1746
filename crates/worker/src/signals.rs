//! Worker signal dispositions, set before Python starts.
//!
//! `TERM` (graceful stop) is handled by the event loop. `QUIT` and `INT`
//! mean "exit now", and `ABRT` is the master's timeout notice: those end the
//! process straight from the handler, even while the app is running.
//! Installing our own `INT` handler before Python starts also keeps Python's
//! `signal` module from installing its `KeyboardInterrupt` handler.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

extern "C" fn exit_now(signal: libc::c_int) {
    let code = if signal == libc::SIGABRT { 1 } else { 0 };
    // SAFETY: _exit is async-signal-safe; nothing else happens here.
    unsafe { libc::_exit(code) }
}

/// Sets the worker's signal dispositions.
pub fn install() {
    let quick = SigAction::new(
        SigHandler::Handler(exit_now),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGQUIT, Signal::SIGINT, Signal::SIGABRT] {
        // SAFETY: the handler only calls the async-signal-safe `_exit`.
        if let Err(error) = unsafe { sigaction(sig, &quick) } {
            tracing::warn!("cannot set the {sig} handler: {error}");
        }
    }
    let _ = SigSet::all().thread_unblock();
}
