//! The server hooks that run in a worker: `post_fork`, `post_worker_init`,
//! `worker_int`, `worker_abort`, `pre_request`, `post_request`,
//! `worker_exit`. Loaded once after the interpreter is up; a worker with no
//! such hook configured carries `None` and pays nothing per request.

use std::sync::Arc;

use ferricorn_config::Settings;
use ferricorn_http::RequestHead;
use ferricorn_python::hooks::{CfgValue, HookRequest, Hooks};
use pyo3::prelude::*;

/// Hooks run in the master (the binary loads them there).
pub const MASTER_HOOKS: &[&str] = &[
    "on_starting",
    "on_reload",
    "when_ready",
    "pre_fork",
    "pre_exec",
    "child_exit",
    "nworkers_changed",
    "on_exit",
];

/// Hooks run in a worker.
pub const WORKER_HOOKS: &[&str] = &[
    "post_fork",
    "post_worker_init",
    "worker_int",
    "worker_abort",
    "pre_request",
    "post_request",
    "worker_exit",
];

/// The `cfg` attribute hooks see: the settings hooks commonly read.
pub fn hook_config(settings: &Settings) -> Vec<(&'static str, CfgValue)> {
    let int = |n: u64| CfgValue::Int(n);
    let opt = |s: Option<&str>| s.map_or(CfgValue::None, |s| CfgValue::Str(s.to_string()));
    vec![
        ("wsgi_app", opt(settings.wsgi_app.as_deref())),
        (
            "bind",
            CfgValue::List(settings.bind.iter().map(ToString::to_string).collect()),
        ),
        ("workers", int(u64::from(settings.workers))),
        (
            "worker_class",
            CfgValue::Str(settings.worker_class.as_str().to_string()),
        ),
        ("threads", int(u64::from(settings.threads))),
        ("timeout", int(settings.timeout)),
        ("graceful_timeout", int(settings.graceful_timeout)),
        ("keepalive", int(settings.keepalive)),
        ("max_requests", int(settings.max_requests)),
        ("preload_app", CfgValue::Bool(settings.preload_app)),
        ("proc_name", opt(settings.proc_name.as_deref())),
        (
            "chdir",
            CfgValue::Str(settings.chdir.to_string_lossy().into_owned()),
        ),
    ]
}

/// A worker's hooks, with the `server` and `worker` objects they receive.
pub struct WorkerHooks {
    hooks: Hooks,
    server: Py<PyAny>,
    worker: Py<PyAny>,
}

impl WorkerHooks {
    /// Resolves the worker hooks configured in `settings` for worker number
    /// `age`; `None` when there are none.
    pub fn load(
        py: Python<'_>,
        settings: &Settings,
        age: u64,
    ) -> Result<Option<Arc<Self>>, String> {
        if !settings
            .hooks
            .iter()
            .any(|(name, _)| WORKER_HOOKS.contains(&name.as_str()))
        {
            return Ok(None);
        }
        let hooks = Hooks::load(py, &settings.hooks, WORKER_HOOKS, &hook_config(settings))?;
        let ppid = u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0);
        let objects = hooks.server(py, ppid).and_then(|server| {
            let worker = hooks.worker(py, Some(std::process::id()), ppid, age)?;
            Ok((server.unbind(), worker.unbind()))
        });
        let (server, worker) = objects.map_err(|e| ferricorn_python::app::format_error(py, &e))?;
        Ok(Some(Arc::new(Self {
            hooks,
            server,
            worker,
        })))
    }

    /// Whether the hook `name` is configured.
    pub fn has(&self, name: &str) -> bool {
        self.hooks.has(name)
    }

    /// Runs a lifecycle hook with gunicorn's arguments: `(server, worker)`
    /// for `post_fork` and `worker_exit`, `(worker)` for the others. What it
    /// raises is logged.
    pub fn run(&self, name: &str) {
        if !self.hooks.has(name) {
            return;
        }
        Python::attach(|py| {
            let worker = self.worker.bind(py);
            let result = match name {
                "post_fork" | "worker_exit" => {
                    self.hooks.call(py, name, (self.server.bind(py), worker))
                }
                _ => self.hooks.call(py, name, (worker,)),
            };
            if let Err(traceback) = result {
                tracing::error!("Exception in {name} hook:\n{traceback}");
            }
        });
    }

    /// The per-request part for an ASGI loop, when `pre_request` or
    /// `post_request` is set.
    pub fn asgi_request_hooks(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match self.hooks.asgi_request_hooks(py, self.worker.bind(py)) {
            Ok(hooks) => hooks.map(Bound::unbind),
            Err(error) => {
                let traceback = ferricorn_python::app::format_error(py, &error);
                tracing::error!("Exception setting up pre_request/post_request:\n{traceback}");
                None
            }
        }
    }

    /// The per-request part, when `pre_request` or `post_request` is set.
    pub fn request_hooks(self: &Arc<Self>) -> Option<RequestHooks> {
        (self.has("pre_request") || self.has("post_request"))
            .then(|| RequestHooks(Arc::clone(self)))
    }
}

/// `pre_request`/`post_request`, run on the app thread around the app call.
pub struct RequestHooks(Arc<WorkerHooks>);

impl RequestHooks {
    /// Runs `pre_request(worker, req)` for `head` (whose own header list
    /// is moved out by then: `headers` are the ones the app sees); returns
    /// `req` for [`Self::after`].
    pub fn before(&self, head: &RequestHead, headers: &[(String, Vec<u8>)]) -> Option<Py<PyAny>> {
        let hooks = &self.0;
        let request = HookRequest {
            line: head.line(),
            headers,
        };
        Python::attach(|py| {
            let req = match hooks.hooks.request(py, &request) {
                Ok(req) => req,
                Err(error) => {
                    let traceback = ferricorn_python::app::format_error(py, &error);
                    tracing::error!("Exception building the pre_request argument:\n{traceback}");
                    return None;
                }
            };
            if let Err(traceback) =
                hooks
                    .hooks
                    .call(py, "pre_request", (hooks.worker.bind(py), &req))
            {
                tracing::error!("Exception in pre_request hook:\n{traceback}");
            }
            Some(req.unbind())
        })
    }

    /// Runs `post_request(worker, req, environ, resp)` for a response with
    /// `status`.
    pub fn after(&self, req: Py<PyAny>, status: u16) {
        let hooks = &self.0;
        if !hooks.has("post_request") {
            return;
        }
        Python::attach(|py| {
            let req = req.into_bound(py);
            let result = match hooks.hooks.response(py, &req, status) {
                Ok((environ, resp)) => hooks.hooks.call(
                    py,
                    "post_request",
                    (hooks.worker.bind(py), &req, environ, resp),
                ),
                Err(error) => Err(ferricorn_python::app::format_error(py, &error)),
            };
            if let Err(traceback) = result {
                tracing::error!("Exception in post_request hook:\n{traceback}");
            }
        });
    }
}
