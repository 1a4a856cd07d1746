//! Starting the embedded CPython interpreter inside a worker process.
//!
//! Each worker starts its own interpreter after `fork()`. The interpreter is
//! configured the way a user's `python` would be: it honours an active
//! virtualenv, reports the real interpreter as `sys.executable`, and puts the
//! application directory and `--pythonpath` entries on `sys.path`. Python's
//! own signal handlers stay off because the worker handles signals in Rust.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::BridgeError;

/// Where the embedded interpreter finds the user's code.
#[derive(Debug, Clone, Default)]
pub struct InterpreterOptions {
    /// The application directory (`--chdir`), put first on `sys.path`.
    pub chdir: PathBuf,
    /// Extra `sys.path` entries (`--pythonpath`), after `chdir`.
    pub pythonpath: Vec<PathBuf>,
}

/// The Python executable that `sys.executable` should name: the active
/// virtualenv's interpreter when `VIRTUAL_ENV` is set (so `pyvenv.cfg` and
/// the venv's site-packages are found), else the interpreter this binary was
/// built against.
pub fn python_executable() -> Option<PathBuf> {
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let venv = PathBuf::from(venv);
        for name in ["python", "python3"] {
            let candidate = venv.join("bin").join(name);
            if candidate.exists() {
                return Some(candidate);
            }
        }
    }
    let built = env!("FERRICORN_BUILD_PYTHON");
    if built.is_empty() {
        None
    } else {
        Some(PathBuf::from(built))
    }
}

/// Initializes CPython in this process and prepares `sys.path`.
///
/// Must be called once per process, before any other function of this crate.
/// On return the calling thread does not hold the GIL.
pub fn start(options: &InterpreterOptions) -> Result<(), BridgeError> {
    // SAFETY: FFI boundary. Called once per process before any other Python
    // use; the PyConfig lives on this stack frame and is cleared before return.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Err(BridgeError::Interpreter(
                "the interpreter is already initialized".into(),
            ));
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        // Arguments and environment belong to ferricorn, not to Python.
        config.parse_argv = 0;
        let result = configure_executable(&mut config).and_then(|()| {
            let status = ffi::Py_InitializeFromConfig(&config);
            check_status(status, "Py_InitializeFromConfig")
        });
        ffi::PyConfig_Clear(&mut config);
        result?;
        // Hand the GIL back so any thread can attach through pyo3.
        ffi::PyEval_SaveThread();
    }
    Python::attach(|py| extend_sys_path(py, options))
        .map_err(|e| BridgeError::Interpreter(format!("cannot set sys.path: {e}")))
}

/// Whether this process already runs an interpreter (a worker forked from
/// a master that preloaded the app or runs hooks inherits it).
pub fn is_initialized() -> bool {
    // SAFETY: FFI; Py_IsInitialized may be called at any time.
    unsafe { ffi::Py_IsInitialized() != 0 }
}

/// Points `PyConfig.executable` at the real interpreter.
///
/// # Safety
/// `config` must be an initialized `PyConfig`.
unsafe fn configure_executable(config: &mut ffi::PyConfig) -> Result<(), BridgeError> {
    let Some(executable) = python_executable() else {
        return Ok(());
    };
    let path = CString::new(executable.as_os_str().as_bytes())
        .map_err(|_| BridgeError::Interpreter("interpreter path contains NUL".into()))?;
    // SAFETY: both pointers are valid for the call; CPython copies the string.
    let status =
        unsafe { ffi::PyConfig_SetBytesString(config, &mut config.executable, path.as_ptr()) };
    // SAFETY: status was just returned by CPython.
    unsafe { check_status(status, "PyConfig.executable") }
}

/// Turns a failed `PyStatus` into an error naming what was being done.
///
/// # Safety
/// `status` must come from a CPython initialization function.
unsafe fn check_status(status: ffi::PyStatus, what: &str) -> Result<(), BridgeError> {
    // SAFETY: reading a status struct CPython filled in.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let message = if status.err_msg.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: err_msg is a static NUL-terminated C string when non-null.
        unsafe { std::ffi::CStr::from_ptr(status.err_msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(BridgeError::Interpreter(format!("{what}: {message}")))
}

fn extend_sys_path(py: Python<'_>, options: &InterpreterOptions) -> PyResult<()> {
    let sys = py.import("sys")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    let mut entries: Vec<&Path> = vec![options.chdir.as_path()];
    entries.extend(options.pythonpath.iter().map(PathBuf::as_path));
    for (index, entry) in entries.into_iter().enumerate() {
        path.insert(index, entry.to_string_lossy().as_ref())?;
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
