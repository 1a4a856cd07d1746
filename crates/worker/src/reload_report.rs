//! `--reload`, the worker's half: once the app is loaded, tell the master
//! which files under `--chdir` the imported modules came from, one path per
//! line on the pipe the master named in `FERRICORN_RELOAD_FD` (the master
//! crate's `reload::REPORT_FD_VAR`). Each line is one `write` of less than
//! `PIPE_BUF`, so reports of several workers never interleave.

use std::path::Path;

use pyo3::prelude::*;

/// The variable the master sets (the master crate's `REPORT_FD_VAR`).
const REPORT_FD_VAR: &str = "FERRICORN_RELOAD_FD";

/// Longest line written (an atomic pipe write).
const MAX_LINE: usize = 4096;

/// Sends the module files under `chdir`; a thread does the writing so a
/// full pipe never delays the worker.
pub fn report(chdir: &Path) {
    let Some(fd) = std::env::var(REPORT_FD_VAR)
        .ok()
        .and_then(|fd| fd.parse::<i32>().ok())
    else {
        return;
    };
    let files = Python::attach(|py| module_files(py, chdir)).unwrap_or_else(|error| {
        tracing::warn!("--reload: cannot list the app's modules: {error}");
        Vec::new()
    });
    let spawned = std::thread::Builder::new()
        .name("reload-report".into())
        .spawn(move || {
            for file in files {
                let line = format!("{file}\n");
                if line.len() > MAX_LINE {
                    continue;
                }
                // SAFETY: FFI write of a live buffer to the inherited pipe.
                let written = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
                if written < 0 {
                    break;
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!("--reload: cannot report the app's modules: {error}");
    }
}

fn module_files(py: Python<'_>, chdir: &Path) -> PyResult<Vec<String>> {
    let modules = py.import("sys")?.getattr("modules")?.call_method0("copy")?;
    let os_path = py.import("os")?.getattr("path")?;
    let mut files = Vec::new();
    for module in modules.call_method0("values")?.try_iter()? {
        let Ok(file) = module?.getattr("__file__") else {
            continue;
        };
        let Ok(file) = os_path
            .call_method1("abspath", (file,))
            .and_then(|f| f.extract::<String>())
        else {
            continue;
        };
        if Path::new(&file).starts_with(chdir) {
            files.push(file);
        }
    }
    Ok(files)
}
