//! `--log-config`, `--log-config-json` and `logconfig_dict`: Python's own
//! `logging.config` configures the `gunicorn.error` and `gunicorn.access`
//! loggers, as in gunicorn, and ferricorn's lines become their records, so
//! any handler or formatter class a user names (a `RotatingFileHandler`,
//! pythonjsonlogger's `JsonFormatter`, their own) works.
//!
//! A logger the configuration does not name keeps ferricorn's own sink,
//! as gunicorn keeps its handler there ([`Route::Builtin`]). For a logger
//! it does name, each line is queued (bounded; drops are counted and
//! reported) to one thread per process that takes the GIL and logs the
//! batch: the I/O threads and the request path never wait for Python. The
//! thread does not survive `fork()`, so each worker starts its own
//! ([`after_fork_child`]); records still queued in the master stay there.
//!
//! Without these settings nothing here runs and no thread starts.

use std::ffi::CStr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferricorn_config::{ActiveLogConfig, Settings};
use pyo3::prelude::*;
use pyo3::types::PyList;

const SOURCE: &CStr = pyo3::ffi::c_str!(include_str!("logconfig.py"));

/// Records waiting for the logging thread; beyond this they are dropped.
const QUEUE: usize = 16_384;
/// At most this many records per GIL acquisition.
const BATCH: usize = 512;
/// How long a stopping process waits for its queue to drain.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Python's level numbers.
pub const CRITICAL: i32 = 50;
/// `logging.ERROR`.
pub const ERROR: i32 = 40;
/// `logging.WARNING`.
pub const WARNING: i32 = 30;
/// `logging.INFO`.
pub const INFO: i32 = 20;
/// `logging.DEBUG`.
pub const DEBUG: i32 = 10;

/// Where one of the two logs goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// ferricorn's own sink (no logconfig, or one that leaves the logger be).
    Builtin,
    /// Nowhere: the configuration disabled the logger.
    Off,
    /// To Python, for records at or above this level.
    Python(i32),
}

impl Route {
    /// From `logconfig.py`'s numbers: 0 builtin, negative off, else a level.
    fn from_code(code: i32) -> Self {
        match code {
            0 => Route::Builtin,
            n if n < 0 => Route::Off,
            n => Route::Python(n),
        }
    }

    fn load(cell: &AtomicI32) -> Self {
        Self::from_code(cell.load(Ordering::Relaxed))
    }

    fn store(self, cell: &AtomicI32) {
        cell.store(
            match self {
                Route::Builtin => 0,
                Route::Off => -1,
                Route::Python(level) => level.max(1),
            },
            Ordering::Relaxed,
        );
    }
}

static ERROR_ROUTE: AtomicI32 = AtomicI32::new(0);
static ACCESS_ROUTE: AtomicI32 = AtomicI32::new(0);

/// Where error-log lines go.
pub fn error_route() -> Route {
    Route::load(&ERROR_ROUTE)
}

/// Where access-log lines go.
pub fn access_route() -> Route {
    Route::load(&ACCESS_ROUTE)
}

/// The Python helper module (`logconfig.py`), imported once per master.
static MODULE: OnceLock<Py<PyModule>> = OnceLock::new();

/// This process's logging thread; null until the first configuration. A
/// forked child swaps in its own and leaks the parent's copy, whose locks
/// and channel it must never touch.
static FORWARDER: AtomicPtr<Forwarder> = AtomicPtr::new(std::ptr::null_mut());

struct Forwarder {
    queue: SyncSender<Record>,
    /// Records queued and not yet logged, for [`flush`].
    pending: AtomicUsize,
    dropped: AtomicU64,
}

struct Record {
    level: i32,
    access: bool,
    message: String,
    created: f64,
}

/// Why a configuration was not applied: the setting and Python's error.
#[derive(Debug)]
pub struct ConfigureError {
    /// `logconfig_dict`, `--log-config-json` or `--log-config`.
    pub setting: &'static str,
    /// Python's exception, `Type: message`.
    pub error: String,
}

impl std::fmt::Display for ConfigureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error: {} could not be applied: {}",
            self.setting, self.error
        )
    }
}

/// Applies the logconfig in `settings`, if any, and starts this process's
/// logging thread when a log goes to Python. Without one, a previous
/// configuration (before a `HUP`) stops routing lines to Python.
pub fn configure(settings: &Settings) -> Result<(), ConfigureError> {
    let Some(active) = settings.logconfig.active() else {
        if MODULE.get().is_some() {
            Python::attach(|py| {
                if let Some(module) = MODULE.get() {
                    let _ = module.bind(py).call_method0("reset");
                }
            });
        }
        set_routes(Route::Builtin, Route::Builtin);
        return Ok(());
    };
    let setting = active.setting();
    let fail = |error: String| ConfigureError { setting, error };
    let (kind, value) = match active {
        ActiveLogConfig::Dict(dict) => {
            ("dict", serde_json::Value::Object(dict.clone()).to_string())
        }
        ActiveLogConfig::Json(path) => ("json", path.to_string_lossy().into_owned()),
        ActiveLogConfig::Ini(path) => ("ini", path.to_string_lossy().into_owned()),
    };
    // Handler and formatter classes may live in the app's directories.
    let options = ferricorn_python::interpreter::InterpreterOptions {
        chdir: settings.chdir.clone(),
        pythonpath: settings.pythonpath.clone(),
    };
    ferricorn_python::interpreter::start(&options).map_err(|e| fail(e.to_string()))?;
    let (error, access) = Python::attach(|py| -> PyResult<(i32, i32)> {
        let module = match MODULE.get() {
            Some(module) => module.bind(py).clone(),
            None => {
                let module = PyModule::from_code(
                    py,
                    SOURCE,
                    pyo3::ffi::c_str!("ferricorn_logconfig.py"),
                    pyo3::ffi::c_str!("ferricorn_logconfig"),
                )?;
                let _ = MODULE.set(module.clone().unbind());
                module
            }
        };
        module
            .call_method1("setup", (kind, value, settings.loglevel.as_str()))?
            .extract()
    })
    .map_err(|e| fail(Python::attach(|py| python_error(py, &e))))?;
    let (error, access) = (Route::from_code(error), Route::from_code(access));
    if matches!(error, Route::Python(_)) || matches!(access, Route::Python(_)) {
        start_forwarder();
    }
    set_routes(error, access);
    Ok(())
}

fn set_routes(error: Route, access: Route) {
    error.store(&ERROR_ROUTE);
    access.store(&ACCESS_ROUTE);
    // Callsites cache whether they are enabled; the levels just changed.
    tracing::callsite::rebuild_interest_cache();
}

/// `Type: message` of a Python exception, and of its cause: dictConfig's
/// "Unable to configure handler 'x'" says why only there.
fn python_error(py: Python<'_>, error: &PyErr) -> String {
    let describe = |error: &PyErr| {
        let kind = error
            .get_type(py)
            .name()
            .map_or_else(|_| "Exception".to_string(), |name| name.to_string());
        format!("{kind}: {}", error.value(py))
    };
    match error.cause(py) {
        Some(cause) => format!("{} ({})", describe(error), describe(&cause)),
        None => describe(error),
    }
}

/// In a freshly forked child: its own logging thread, when the parent
/// had one. Call first thing after the fork, before anything logs.
pub fn after_fork_child() {
    if !FORWARDER.load(Ordering::Acquire).is_null() {
        start_forwarder_replacing();
    }
}

fn start_forwarder() {
    if FORWARDER.load(Ordering::Acquire).is_null() {
        start_forwarder_replacing();
    }
}

fn start_forwarder_replacing() {
    let (forwarder, receiver) = Forwarder::new(QUEUE);
    let forwarder: &'static Forwarder = Box::leak(Box::new(forwarder));
    let spawned = std::thread::Builder::new()
        .name("ferricorn-log".into())
        .spawn(move || forward(forwarder, receiver));
    if let Err(error) = spawned {
        // Nothing would drain a queue: the lines are lost instead of
        // piling up (and of making every flush wait).
        eprintln!("ferricorn: cannot start the logging thread ({error}); log records for Python's handlers are lost");
        FORWARDER.store(std::ptr::null_mut(), Ordering::Release);
        return;
    }
    FORWARDER.store(std::ptr::from_ref(forwarder).cast_mut(), Ordering::Release);
}

impl Forwarder {
    fn new(capacity: usize) -> (Self, Receiver<Record>) {
        let (queue, receiver) = mpsc::sync_channel(capacity);
        let forwarder = Forwarder {
            queue,
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        };
        (forwarder, receiver)
    }

    /// Queues `record` without waiting; a full queue counts it as dropped.
    fn push(&self, record: Record) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(record)
        {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `first` and what else is queued (up to [`BATCH`]), after a WARNING
    /// record counting the lines dropped since the last batch; and how
    /// many of them came off the queue.
    fn next_batch(&self, first: Record, receiver: &Receiver<Record>) -> (Vec<Record>, usize) {
        let mut batch = Vec::with_capacity(16);
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.push(Record {
                level: WARNING,
                access: false,
                message: format!(
                    "{dropped} log records were dropped: the Python logging handlers could not keep up"
                ),
                created: first.created,
            });
        }
        batch.push(first);
        batch.extend(receiver.try_iter().take(BATCH));
        let taken = batch.len() - usize::from(dropped > 0);
        (batch, taken)
    }
}

fn forwarder() -> Option<&'static Forwarder> {
    // SAFETY: FORWARDER is null or points to a leaked, never freed Box.
    unsafe { FORWARDER.load(Ordering::Acquire).as_ref() }
}

/// Queues one line for Python; never blocks. A full queue drops it and
/// counts the drop, which the next batch reports.
pub fn send(level: i32, access: bool, message: String) {
    let Some(forwarder) = forwarder() else {
        return;
    };
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    forwarder.push(Record {
        level,
        access,
        message,
        created,
    });
}

/// Waits (at most two seconds) until every queued line has been logged,
/// for a process about to exit.
pub fn flush() {
    let Some(forwarder) = forwarder() else {
        return;
    };
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    while forwarder.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The logging thread: batches of records, one GIL acquisition each.
fn forward(forwarder: &'static Forwarder, receiver: Receiver<Record>) {
    let Some(module) = MODULE.get() else {
        return;
    };
    ferricorn_python::interpreter::bind_thread_state();
    let Some(emit) = Python::attach(|py| module.bind(py).getattr("emit").ok().map(Bound::unbind))
    else {
        return;
    };
    // Signals go to the threads that handle them, never to this one.
    let _ = nix::sys::signal::SigSet::all().thread_block();
    let mut generation = super::REOPEN_GENERATION.load(Ordering::Relaxed);
    while let Ok(first) = receiver.recv() {
        let (batch, count) = forwarder.next_batch(first, &receiver);
        // USR1 reopens the handlers' files before the next line, as the
        // built-in sinks do.
        let reopen = super::REOPEN_GENERATION.load(Ordering::Relaxed);
        Python::attach(|py| {
            if reopen != generation {
                generation = reopen;
                if let Err(error) = module.bind(py).call_method0("reopen") {
                    error.print(py);
                }
            }
            let items = batch
                .into_iter()
                .map(|r| (r.level, r.access, r.message, r.created));
            let logged = PyList::new(py, items).and_then(|list| emit.bind(py).call1((list,)));
            if let Err(error) = logged {
                error.print(py);
            }
        });
        forwarder.pending.fetch_sub(count, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str) -> Record {
        Record {
            level: INFO,
            access: true,
            message: message.into(),
            created: 1.5,
        }
    }

    #[test]
    fn a_full_queue_drops_counts_and_the_next_batch_says_so() {
        let (forwarder, receiver) = Forwarder::new(2);
        for n in 0..5 {
            forwarder.push(record(&n.to_string()));
        }
        assert_eq!(forwarder.pending.load(Ordering::Relaxed), 2);
        assert_eq!(forwarder.dropped.load(Ordering::Relaxed), 3);
        let first = receiver.recv().unwrap();
        let (batch, taken) = forwarder.next_batch(first, &receiver);
        assert_eq!(taken, 2);
        let messages: Vec<&str> = batch.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "3 log records were dropped: the Python logging handlers could not keep up",
                "0",
                "1"
            ]
        );
        assert_eq!((batch[0].level, batch[0].access), (WARNING, false));
        // Reported once.
        forwarder.push(record("2"));
        let (batch, taken) = forwarder.next_batch(receiver.recv().unwrap(), &receiver);
        assert_eq!((batch.len(), taken), (1, 1));
    }

    #[test]
    fn route_codes_match_logconfig_py() {
        assert_eq!(Route::from_code(0), Route::Builtin);
        assert_eq!(Route::from_code(-1), Route::Off);
        assert_eq!(Route::from_code(10), Route::Python(DEBUG));
        let cell = AtomicI32::new(0);
        for route in [Route::Off, Route::Python(INFO), Route::Builtin] {
            route.store(&cell);
            assert_eq!(Route::load(&cell), route);
        }
    }
}
