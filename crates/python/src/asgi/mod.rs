//! ASGI 3 on the worker's asyncio loop (the `async` class's other interface).
//!
//! The loop runs on the worker's main thread, holding the GIL while it runs
//! Python; the tokio I/O thread beside it never takes the GIL. They meet in
//! [`events`]: one queue into the loop (one eventfd wakeup per batch), one
//! channel with byte credit per request out of it, fed once per turn of
//! the loop from the worker's outbox (one wakeup per turn, not per
//! message). The protocol rules that
//! need Python objects (receive/send state, lifespan, misbehaving apps) are
//! in `bridge.py`, run on the loop; scopes are built in [`scope`].
//!
//! pyo3-async-runtimes is not used: its per-await `spawn_blocking` plus
//! `call_soon_threadsafe` would take the GIL on a tokio thread for every
//! crossing, which is what this design avoids (research note §3.1).

pub mod events;
pub mod scope;

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::app::format_error;
use events::{Inbox, LoopQueue};

const BRIDGE_SOURCE: &std::ffi::CStr = pyo3::ffi::c_str!(include_str!("bridge.py"));

fn bridge(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    PyModule::from_code(
        py,
        BRIDGE_SOURCE,
        pyo3::ffi::c_str!("ferricorn_asgi.py"),
        pyo3::ffi::c_str!("ferricorn_asgi"),
    )
}

/// `CO_COROUTINE` in a code object's `co_flags` (`async def`).
const CO_COROUTINE: u32 = 0x80;

/// Whether `app` is an ASGI 3 application: a coroutine function, or an
/// object whose `__call__` is one (uvicorn's `interface=auto` test); a
/// class only if it is awaitable.
///
/// Done with attribute lookups only, importing nothing: a WSGI worker that
/// dropped privileges (`--user`) may no longer be able to read the stdlib.
pub fn is_asgi(_py: Python<'_>, app: &Bound<'_, PyAny>) -> PyResult<bool> {
    if app.is_instance_of::<pyo3::types::PyType>() {
        return app.hasattr("__await__");
    }
    if is_coroutine_function(app)? {
        return Ok(true);
    }
    match app.getattr_opt("__call__")? {
        Some(call) => is_coroutine_function(&call),
        None => Ok(false),
    }
}

/// `inspect.iscoroutinefunction` without importing `inspect`: bound
/// methods and `functools.partial` are unwrapped, then the code flags (or
/// 3.12's `inspect.markcoroutinefunction` marker) decide.
fn is_coroutine_function(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let mut current = obj.clone();
    for _ in 0..32 {
        if let Some(func) = current.getattr_opt("__func__")? {
            current = func;
            continue;
        }
        let is_partial = current.get_type().name()?.to_str()? == "partial";
        if is_partial {
            if let Some(func) = current.getattr_opt("func")? {
                current = func;
                continue;
            }
        }
        break;
    }
    if current.hasattr("_is_coroutine_marker")? {
        return Ok(true);
    }
    let Some(code) = current.getattr_opt("__code__")? else {
        return Ok(false);
    };
    let flags: u32 = code.getattr("co_flags")?.extract()?;
    Ok(flags & CO_COROUTINE != 0)
}

/// How the worker's ASGI loop runs.
#[derive(Debug, Clone)]
pub struct AsgiOptions {
    /// `--asgi-loop`: `auto`, `asyncio` or `uvloop`.
    pub loop_kind: String,
    /// `--asgi-lifespan`: `auto`, `on` or `off`.
    pub lifespan: String,
    /// `--asgi-disconnect-grace-period`, seconds.
    pub disconnect_grace: f64,
    /// `--root-path`.
    pub root_path: String,
}

/// Writes the bridge's log lines to ferricorn's error log.
#[pyclass(module = "ferricorn", name = "AsgiLog")]
struct Log;

#[pymethods]
impl Log {
    fn __call__(&self, level: u8, message: &str) {
        match level {
            0..=10 => tracing::debug!("{message}"),
            11..=20 => tracing::info!("{message}"),
            21..=30 => tracing::warn!("{message}"),
            _ => tracing::error!("{message}"),
        }
    }
}

/// The worker's loop and the app on it.
pub struct AsgiRunner {
    runner: Py<PyAny>,
}

impl AsgiRunner {
    /// Creates the loop (`--asgi-loop`) for `app`, fed by `queue`;
    /// `request_hooks` (`pre_request`/`post_request`) run around each HTTP
    /// request on the loop.
    pub fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        queue: Arc<LoopQueue>,
        options: &AsgiOptions,
        request_hooks: Option<Py<PyAny>>,
    ) -> Result<Self, String> {
        let inbox = Inbox::new(queue, options.root_path.clone());
        bridge(py)
            .and_then(|module| {
                module.getattr("Runner")?.call1((
                    app,
                    Bound::new(py, inbox)?,
                    Bound::new(py, Log)?,
                    &options.loop_kind,
                    &options.lifespan,
                    options.disconnect_grace,
                    request_hooks,
                ))
            })
            .map(|runner| Self {
                runner: runner.unbind(),
            })
            .map_err(|error| format_error(py, &error))
    }

    /// Runs the lifespan startup; `Err` is a boot failure's message.
    pub fn startup(&self, py: Python<'_>, timeout: f64) -> Result<(), String> {
        match self.runner.bind(py).call_method1("startup", (timeout,)) {
            Ok(answer) if answer.is_none() => Ok(()),
            Ok(answer) => Err(answer.to_string()),
            Err(error) => Err(format_error(py, &error)),
        }
    }

    /// Serves requests until the I/O thread queues `Stop`.
    pub fn serve(&self, py: Python<'_>) -> Result<(), String> {
        self.runner
            .bind(py)
            .call_method0("serve")
            .map(drop)
            .map_err(|error| format_error(py, &error))
    }

    /// Runs the lifespan shutdown (bounded by `timeout`) and closes the loop.
    pub fn shutdown(&self, py: Python<'_>, timeout: f64) {
        if let Err(error) = self.runner.bind(py).call_method1("shutdown", (timeout,)) {
            tracing::error!("Exception in ASGI shutdown:\n{}", format_error(py, &error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_follows_uvicorns_rule() {
        Python::initialize();
        Python::attach(|py| {
            let code = pyo3::ffi::c_str!(
                "import functools\n\
                 async def coro(scope, receive, send): pass\n\
                 def wsgi(environ, start_response): pass\n\
                 class Asgi3:\n    async def __call__(self, scope, receive, send): pass\n\
                 class Asgi2:\n    def __init__(self, scope): pass\n    async def __call__(self, receive, send): pass\n\
                 instance = Asgi3()\n\
                 partial = functools.partial(coro)\n"
            );
            let module = PyModule::from_code(
                py,
                code,
                pyo3::ffi::c_str!("detect.py"),
                pyo3::ffi::c_str!("detect"),
            )
            .unwrap();
            let check = |name: &str| is_asgi(py, &module.getattr(name).unwrap()).unwrap();
            assert!(check("coro"));
            assert!(check("instance"));
            assert!(check("partial"));
            assert!(!check("wsgi"));
            assert!(
                !check("Asgi2"),
                "a double callable is ASGI 2, not auto-detected"
            );
            assert!(!check("Asgi3"), "a class is only ASGI 3 when awaitable");
        });
    }
}
