//! Worker signal dispositions, set before Python starts.
//!
//! `TERM` (graceful stop) is handled by the event loop. `QUIT` and `INT`
//! mean "exit now", and `ABRT` is the master's timeout notice: those end the
//! process straight from the handler, even while the app is running.
//! Installing our own `INT` handler before Python starts also keeps Python's
//! `signal` module from installing its `KeyboardInterrupt` handler.

//!
//! With a `worker_int` or `worker_abort` hook configured, the handler
//! instead writes the signal number to a pipe; a thread reads it, runs the
//! hook (Python cannot run inside a signal handler) and then exits.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::hooks::WorkerHooks;

/// Write end of the hook pipe; -1 while no hook wants the signals.
static HOOK_PIPE: AtomicI32 = AtomicI32::new(-1);

fn exit_code(signal: libc::c_int) -> i32 {
    if signal == libc::SIGABRT {
        1
    } else {
        0
    }
}

extern "C" fn exit_now(signal: libc::c_int) {
    let pipe = HOOK_PIPE.load(Ordering::Relaxed);
    if pipe >= 0 {
        let byte = u8::try_from(signal).unwrap_or(0);
        // SAFETY: write is async-signal-safe; the buffer lives on this stack.
        if unsafe { libc::write(pipe, std::ptr::addr_of!(byte).cast(), 1) } == 1 {
            return;
        }
    }
    // SAFETY: _exit is async-signal-safe; nothing else happens here.
    unsafe { libc::_exit(exit_code(signal)) }
}

/// Runs `worker_int` (on `INT`/`QUIT`) or `worker_abort` (on `ABRT`) before
/// the worker exits, when either is configured.
pub fn run_hooks_on_exit(hooks: &Arc<WorkerHooks>) {
    if !hooks.has("worker_int") && !hooks.has("worker_abort") {
        return;
    }
    let (read, write) = match nix::unistd::pipe() {
        Ok(pipe) => pipe,
        Err(error) => {
            tracing::warn!("cannot set up worker_int/worker_abort: {error}");
            return;
        }
    };
    let hooks = Arc::clone(hooks);
    let reader = std::thread::Builder::new()
        .name("signal-hooks".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let signal = match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&read), &mut byte)
            {
                Ok(1) => libc::c_int::from(byte[0]),
                _ => libc::SIGQUIT,
            };
            hooks.run(if signal == libc::SIGABRT {
                "worker_abort"
            } else {
                "worker_int"
            });
            // SAFETY: ends the process at once, as the handler would have.
            unsafe { libc::_exit(exit_code(signal)) }
        });
    match reader {
        // The write end stays open for the life of the process.
        Ok(_) => HOOK_PIPE.store(
            std::os::fd::IntoRawFd::into_raw_fd(write),
            Ordering::Relaxed,
        ),
        Err(error) => tracing::warn!("cannot set up worker_int/worker_abort: {error}"),
    }
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
