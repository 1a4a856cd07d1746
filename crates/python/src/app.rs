//! Loading the user's application from a gunicorn-style `APP_MODULE`.

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::BridgeError;

const LOADER_SOURCE: &std::ffi::CStr = pyo3::ffi::c_str!(include_str!("loader.py"));

/// Imports `spec` (`module`, `module:attr`, `module:factory(args)`) and
/// returns the application callable.
///
/// Errors carry an operator-facing message: for a bad specification or a
/// missing module, one line naming what is missing; for an exception raised
/// while importing the user's code, its full traceback.
pub fn load(py: Python<'_>, spec: &str) -> Result<Py<PyAny>, BridgeError> {
    let loader = loader_module(py).map_err(|e| BridgeError::AppLoad(format_error(py, &e)))?;
    match loader.call_method1("load", (spec,)) {
        Ok(app) => Ok(app.unbind()),
        Err(error) => {
            let is_spec_error = loader
                .getattr("AppLoadError")
                .map(|cls| error.matches(py, cls).unwrap_or(false))
                .unwrap_or(false);
            let message = if is_spec_error {
                error.value(py).to_string()
            } else {
                format_error(py, &error)
            };
            Err(BridgeError::AppLoad(message))
        }
    }
}

fn loader_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    PyModule::from_code(
        py,
        LOADER_SOURCE,
        pyo3::ffi::c_str!("ferricorn_loader.py"),
        pyo3::ffi::c_str!("ferricorn_loader"),
    )
}

/// Formats a Python exception with its traceback, the way Python prints it.
///
/// Never uses `PyErr::print`: for `SystemExit` that calls `Py_Exit` and
/// would end (or deadlock) the worker.
pub fn format_error(py: Python<'_>, error: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (error.get_type(py), error.value(py), error.traceback(py)),
            )
        })
        .and_then(|lines| {
            let parts: Vec<String> = lines.extract()?;
            Ok(parts.concat())
        });
    match formatted {
        Ok(text) => text.trim_end().to_string(),
        Err(_) => error.to_string(),
    }
}
