//! The master's Python work, only when needed: with `--preload` (the app is
//! imported once, before forking) or when a hook that runs in the master is
//! configured. Otherwise the master imports nothing of the user's.
//!
//! The master holds the GIL only inside a hook, and across each `fork()`
//! (`Launcher`), so the children inherit a consistent interpreter and
//! `random` is reseeded in each.

use ferricorn_config::Settings;
use ferricorn_master::MasterEvent;
use ferricorn_python::hooks::Hooks;
use ferricorn_python::interpreter::{self, InterpreterOptions};
use ferricorn_worker::hooks::{hook_config, MASTER_HOOKS};
use pyo3::prelude::*;

/// The master's interpreter, its hooks and the preloaded app.
pub struct MasterPython {
    hooks: Hooks,
    server: Py<PyAny>,
    app: Option<Py<PyAny>>,
}

/// Why the master could not set up Python; carries the exit code.
pub struct StartError {
    /// The master's exit code.
    pub code: i32,
    /// What to log.
    pub message: String,
}

impl MasterPython {
    /// Puts the app's directories on `sys.path` when `settings` need Python
    /// in the master, imports the app with `--preload`, resolves the master's hooks and
    /// runs `on_starting`; `Ok(None)` when no Python is needed here.
    pub fn start(settings: &Settings) -> Result<Option<Self>, StartError> {
        let master_hooks = settings
            .hooks
            .iter()
            .any(|(name, _)| MASTER_HOOKS.contains(&name.as_str()));
        if !settings.preload_app && !master_hooks {
            return Ok(None);
        }
        let boot_error = |message: String| StartError { code: 1, message };
        let options = InterpreterOptions {
            chdir: settings.chdir.clone(),
            pythonpath: settings.pythonpath.clone(),
        };
        interpreter::start(&options).map_err(|e| boot_error(e.to_string()))?;
        Python::attach(|py| {
            let app = match (settings.preload_app, settings.wsgi_app.as_deref()) {
                (true, Some(spec)) => Some(ferricorn_python::app::load(py, spec).map_err(
                    |error| StartError {
                        code: ferricorn_master::arbiter::APP_LOAD_ERROR,
                        message: format!("Failed to load application {spec}:\n{error}"),
                    },
                )?),
                _ => None,
            };
            let hooks = Hooks::load(py, &settings.hooks, MASTER_HOOKS, &hook_config(settings))
                .map_err(boot_error)?;
            let server = hooks
                .server(py, std::process::id())
                .map_err(|e| boot_error(ferricorn_python::app::format_error(py, &e)))?;
            hooks
                .call(py, "on_starting", (&server,))
                .map_err(|traceback| {
                    boot_error(format!("Exception in on_starting hook:\n{traceback}"))
                })?;
            Ok(Some(Self {
                hooks,
                server: server.unbind(),
                app,
            }))
        })
    }

    /// The preloaded app, for a freshly forked worker.
    pub fn app(&self) -> Option<Py<PyAny>> {
        self.app
            .as_ref()
            .map(|app| Python::attach(|py| app.clone_ref(py)))
    }

    /// Runs the hook for `event`, with gunicorn's arguments; what it raises
    /// is logged and the master carries on.
    pub fn event(&self, event: MasterEvent) {
        let name = match event {
            MasterEvent::Ready => "when_ready",
            MasterEvent::Reload => "on_reload",
            MasterEvent::PreFork { .. } => "pre_fork",
            MasterEvent::ChildExit { .. } => "child_exit",
            MasterEvent::WorkersChanged { .. } => "nworkers_changed",
            MasterEvent::PreExec => "pre_exec",
            MasterEvent::Exit => "on_exit",
        };
        if !self.hooks.has(name) {
            return;
        }
        Python::attach(|py| {
            let server = self.server.bind(py);
            let pid = std::process::id();
            let result = match event {
                MasterEvent::PreFork { age } => self
                    .hooks
                    .worker(py, None, pid, age)
                    .map_err(|e| ferricorn_python::app::format_error(py, &e))
                    .and_then(|worker| self.hooks.call(py, name, (server, worker))),
                MasterEvent::ChildExit { pid: child, age } => self
                    .hooks
                    .worker(py, u32::try_from(child).ok(), pid, age)
                    .map_err(|e| ferricorn_python::app::format_error(py, &e))
                    .and_then(|worker| self.hooks.call(py, name, (server, worker))),
                MasterEvent::WorkersChanged { new, old } => {
                    self.hooks.call(py, name, (server, new, old))
                }
                _ => self.hooks.call(py, name, (server,)),
            };
            if let Err(traceback) = result {
                tracing::error!("Exception in {name} hook:\n{traceback}");
            }
        });
    }
}
