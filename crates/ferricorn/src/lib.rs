//! ferricorn as the Python extension module `ferricorn._ferricorn`.
//!
//! The `ferricorn` console script and `python -m ferricorn` (the Python
//! package in `python/ferricorn/`) call [`run`] in the `python` process
//! they were started as, so the master *is* that interpreter: the
//! virtualenv, `sys.executable` and `sys.path` are the ones that `python`
//! set up, exactly as for gunicorn. The arbiter runs with the GIL released;
//! every `fork()` goes through CPython's fork protocol
//! ([`ferricorn_python::fork::ForkGuard`]); tokio starts only in workers,
//! after their fork; the master's signals stay its own (`sigaction`), not
//! Python's.

mod ctl;
mod launcher;
mod logging;
mod master_python;
mod observe;
mod process;
mod proctitle;

/// The command itself (kept in `main.rs`, its historical place).
#[path = "main.rs"]
mod cli;

use std::ffi::OsString;
use std::io::Write;

use pyo3::prelude::*;

/// Runs ferricorn with `argv` (`argv[0]` first, then the flags) and returns
/// its exit code. `exec_argv` is the command line that starts this process
/// again on `USR2` (`[sys.executable, *sys.orig_argv[1:]]`). Worker
/// processes never return from here.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<OsString>, exec_argv: Vec<OsString>) -> i32 {
    let code = py.detach(|| cli::run(argv, exec_argv));
    // Rust's stdout buffer is not Python's, and nothing flushes it at exit.
    let _ = std::io::stdout().flush();
    code
}

/// The extension module.
#[pymodule]
fn _ferricorn(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(run, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
