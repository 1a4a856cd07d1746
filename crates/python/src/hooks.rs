//! gunicorn's server hooks: Python callables named `MODULE:CALLABLE` in the
//! configuration, and the small objects they are called with.
//!
//! [`Hooks::load`] resolves the hooks one process needs (the master's or a
//! worker's); [`Hooks::call`] runs one. A hook that raises never takes the
//! process down: the caller gets the formatted traceback and logs it
//! (`on_starting` is the one whose failure stops startup).

use ferricorn_http::RequestLine;
use pyo3::call::PyCallArgs;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

const HELPERS_SOURCE: &std::ffi::CStr = pyo3::ffi::c_str!(include_str!("hooks.py"));

/// A value of the `cfg` object hooks receive (`server.cfg.workers`, …).
#[derive(Debug, Clone)]
pub enum CfgValue {
    /// `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(u64),
    /// A string.
    Str(String),
    /// A list of strings.
    List(Vec<String>),
}

/// The resolved hooks of one process, with the helpers that build their
/// arguments.
pub struct Hooks {
    callables: Vec<(String, Py<PyAny>)>,
    helpers: Py<PyModule>,
    cfg: Py<PyAny>,
}

impl Hooks {
    /// Resolves every hook in `specs` (name, `MODULE:CALLABLE`) whose name is
    /// in `wanted`; `cfg` becomes the `cfg` attribute of `server`/`worker`.
    /// Fails with the traceback when a module cannot be imported.
    pub fn load(
        py: Python<'_>,
        specs: &[(String, String)],
        wanted: &[&str],
        cfg: &[(&str, CfgValue)],
    ) -> Result<Self, String> {
        let helpers = PyModule::from_code(
            py,
            HELPERS_SOURCE,
            pyo3::ffi::c_str!("ferricorn_hooks.py"),
            pyo3::ffi::c_str!("ferricorn_hooks"),
        )
        .map_err(|e| crate::app::format_error(py, &e))?;
        let mut callables = Vec::new();
        for (name, spec) in specs {
            if !wanted.contains(&name.as_str()) {
                continue;
            }
            let callable = helpers.call_method1("resolve", (spec,)).map_err(|e| {
                format!(
                    "hook {name} = {spec:?}:\n{}",
                    crate::app::format_error(py, &e)
                )
            })?;
            callables.push((name.clone(), callable.unbind()));
        }
        let kwargs = PyDict::new(py);
        for (key, value) in cfg {
            let value: Bound<'_, PyAny> = match value {
                CfgValue::None => py.None().into_bound(py),
                CfgValue::Bool(b) => b
                    .into_pyobject(py)
                    .map(|b| b.to_owned().into_any())
                    .map_err(|e| e.to_string())?,
                CfgValue::Int(n) => n
                    .into_pyobject(py)
                    .map(Bound::into_any)
                    .map_err(|e| e.to_string())?,
                CfgValue::Str(s) => s
                    .into_pyobject(py)
                    .map(Bound::into_any)
                    .map_err(|e| e.to_string())?,
                CfgValue::List(items) => items.into_pyobject(py).map_err(|e| e.to_string())?,
            };
            kwargs.set_item(*key, value).map_err(|e| e.to_string())?;
        }
        let cfg = helpers
            .getattr("config")
            .and_then(|config| config.call((), Some(&kwargs)))
            .map_err(|e| crate::app::format_error(py, &e))?;
        Ok(Self {
            callables,
            helpers: helpers.unbind(),
            cfg: cfg.unbind(),
        })
    }

    /// Whether the hook `name` is configured here.
    pub fn has(&self, name: &str) -> bool {
        self.callables.iter().any(|(hook, _)| hook == name)
    }

    /// Whether any hook is configured here.
    pub fn is_empty(&self) -> bool {
        self.callables.is_empty()
    }

    /// Calls the hook `name` with `args` when configured; `Err` carries the
    /// formatted traceback of what it raised.
    pub fn call<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: impl PyCallArgs<'py>,
    ) -> Result<(), String> {
        let Some((_, callable)) = self.callables.iter().find(|(hook, _)| hook == name) else {
            return Ok(());
        };
        callable
            .bind(py)
            .call1(args)
            .map(drop)
            .map_err(|e| crate::app::format_error(py, &e))
    }

    /// The `server` argument: the master with its pid.
    pub fn server<'py>(&self, py: Python<'py>, pid: u32) -> PyResult<Bound<'py, PyAny>> {
        self.helpers
            .bind(py)
            .getattr("Server")?
            .call1((pid, self.cfg.bind(py)))
    }

    /// The `worker` argument; `pid` is `None` before the fork.
    pub fn worker<'py>(
        &self,
        py: Python<'py>,
        pid: Option<u32>,
        ppid: u32,
        age: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.helpers
            .bind(py)
            .getattr("Worker")?
            .call1((pid, ppid, age, self.cfg.bind(py)))
    }

    /// The `req` argument of `pre_request`/`post_request`.
    pub fn request<'py>(
        &self,
        py: Python<'py>,
        req: &HookRequest<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.to_ascii_uppercase(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect();
        let line = req.line;
        self.helpers.bind(py).getattr("Request")?.call1((
            line.method,
            String::from_utf8_lossy(line.target),
            String::from_utf8_lossy(line.path),
            String::from_utf8_lossy(line.query),
            line.version,
            headers,
        ))
    }

    /// The object an ASGI loop calls around each HTTP request
    /// (`hooks.py`'s `AsgiHooks`), when `pre_request` or `post_request`
    /// is configured.
    pub fn asgi_request_hooks<'py>(
        &self,
        py: Python<'py>,
        worker: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let callable = |name: &str| {
            self.callables
                .iter()
                .find(|(hook, _)| hook == name)
                .map(|(_, callable)| callable.bind(py).clone())
        };
        let (pre, post) = (callable("pre_request"), callable("post_request"));
        if pre.is_none() && post.is_none() {
            return Ok(None);
        }
        let hooks = self.helpers.bind(py).getattr("AsgiHooks")?;
        hooks.call1((worker, pre, post)).map(Some)
    }

    /// The `environ` and `resp` arguments of `post_request`.
    pub fn response<'py>(
        &self,
        py: Python<'py>,
        req: &Bound<'py, PyAny>,
        status: u16,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let helpers = self.helpers.bind(py);
        let environ = helpers.getattr("environ")?.call1((req,))?;
        let resp = helpers.getattr("Response")?.call1((status,))?;
        Ok((environ, resp))
    }
}

/// A request as `pre_request`/`post_request` see it.
pub struct HookRequest<'a> {
    /// Method, target (`req.uri`), path, query and version.
    pub line: RequestLine<'a>,
    /// The header fields that reach the app.
    pub headers: &'a [(String, Vec<u8>)],
}
