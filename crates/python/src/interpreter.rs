//! The interpreter a ferricorn process runs Python in.
//!
//! ferricorn is an extension module: the master is the `python` process of
//! the `ferricorn` console script, and workers are forked from it, so the
//! interpreter, its virtualenv and `sys.executable` are the ones `python`
//! set up. What is left here is putting the application directory and the
//! `--pythonpath` entries first on `sys.path`. CPython's signal handlers do
//! not matter: ferricorn installs its own with `sigaction`, over them.

use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::BridgeError;

/// Where the interpreter finds the user's code.
#[derive(Debug, Clone, Default)]
pub struct InterpreterOptions {
    /// The application directory (`--chdir`), put first on `sys.path`.
    pub chdir: PathBuf,
    /// Extra `sys.path` entries (`--pythonpath`), after `chdir`.
    pub pythonpath: Vec<PathBuf>,
}

/// Prepares this process's interpreter for the app: `--chdir`, then the
/// `--pythonpath` entries, first on `sys.path`. Idempotent, so a worker can
/// call it again after the master did (each entry appears once).
///
/// A process without an interpreter (the crates' Rust tests, which embed
/// one) gets one first, without Python's signal handlers. On return the
/// calling thread does not hold the GIL.
pub fn start(options: &InterpreterOptions) -> Result<(), BridgeError> {
    Python::initialize();
    Python::attach(|py| extend_sys_path(py, options))
        .map_err(|e| BridgeError::Interpreter(format!("cannot set sys.path: {e}")))
}

/// Sets the environment variable `key` through `os.environ`: Python copies
/// the environment once, at start-up, so the app would not see a plain
/// `setenv`. `os.environ` also calls `putenv`, for Rust code and children.
pub fn set_env(key: &str, value: &str) -> Result<(), BridgeError> {
    Python::attach(|py| py.import("os")?.getattr("environ")?.set_item(key, value))
        .map_err(|e| BridgeError::Interpreter(format!("cannot set {key}: {e}")))
}

fn extend_sys_path(py: Python<'_>, options: &InterpreterOptions) -> PyResult<()> {
    let sys = py.import("sys")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    let mut entries: Vec<&Path> = vec![options.chdir.as_path()];
    entries.extend(options.pythonpath.iter().map(PathBuf::as_path));
    for (index, entry) in entries.into_iter().enumerate() {
        let entry = entry.to_string_lossy();
        // Moved to the front rather than added twice.
        while let Ok(found) = path.index(entry.as_ref()) {
            path.del_item(found)?;
        }
        path.insert(index, entry.as_ref())?;
    }
    Ok(())
}

/// Gives the calling thread a Python thread state for the rest of its life.
///
/// Creating and destroying a thread state costs more than a small app call;
/// after this, each `Python::attach` on this thread only takes the GIL.
/// Call once, on a thread that has never attached.
pub fn bind_thread_state() {
    // SAFETY: FFI. The interpreter is running (workers call `start` first).
    // PyGILState_Ensure creates this thread's state and takes the GIL;
    // PyEval_SaveThread releases the GIL but keeps the state, whose
    // gilstate counter stays at one for the thread's lifetime.
    unsafe {
        let _ = ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
}
