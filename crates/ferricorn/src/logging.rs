//! Error and access logs in gunicorn's format, on top of `tracing`.
//!
//! Error log lines look like gunicorn's, `[2026-11-23 16:33:58 +0000]
//! [1234] [INFO] Booting worker with pid: 1234`, so existing greps and log
//! parsers keep working. With `--log-format json` every line is instead one
//! ECS object (`@timestamp`, `log.level`, `message`, ...): a Python
//! traceback in a message moves to `error.stack_trace`, so collectors see
//! one record, and an event's fields other than `message` become keys of
//! their own (`url.original = %line` gives `"url.original":"..."`). Events with target `ferricorn.access` are access
//! log lines and go, unformatted, to the access log; `wsgi.errors` text is
//! written to the error log as the app wrote it. Every line is written
//! synchronously with one `write` call: a background writer would lose
//! lines when a worker exits.
//!
//! Log files are reopened after `USR1` (for logrotate): the signal handler
//! only bumps [`REOPEN_GENERATION`], and each sink reopens its file before
//! the next line it writes, in whatever thread that happens.
//!
//! `--capture-output` points stdout and stderr (the app's `print()`, Python
//! tracebacks) at the error log file too; the error sink's reopen moves
//! them to the new file with it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use ferricorn_config::{LogFormat, LogLevel, Syslog};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

pub mod python;
mod syslog;

use python::Route;
use syslog::{Severity, SyslogSink};

const ACCESS_TARGET: &str = "ferricorn.access";
const WSGI_ERRORS_TARGET: &str = "wsgi.errors";
const CRITICAL_TARGET: &str = "ferricorn.critical";

/// Bumped by every `USR1`; a sink that saw an older value reopens its file.
pub(crate) static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

/// `--capture-output` is on: reopening the error log also moves stdio.
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// `--capture-output`: stdout and stderr of this process (and of the
/// workers, which inherit them) go to the error log file `errorlog`, in
/// append mode, as gunicorn's `capture_output`.
pub fn capture_output(errorlog: &str) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(errorlog)?;
    redirect_stdio(&file)?;
    CAPTURING.store(true, Ordering::Relaxed);
    Ok(())
}

fn redirect_stdio(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let _ = io::stdout().flush();
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 of an open file onto a standard descriptor this
        // process owns; Rust's stdout/stderr handles hold no copy of it.
        if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One log destination and the file it writes to.
struct Sink {
    target: String,
    dash_is_stdout: bool,
    state: Mutex<SinkState>,
}

struct SinkState {
    out: Box<dyn Write + Send>,
    generation: u64,
}

impl Sink {
    fn open(target: &str, dash_is_stdout: bool) -> io::Result<Self> {
        Ok(Self {
            target: target.to_string(),
            dash_is_stdout,
            state: Mutex::new(SinkState {
                out: open(target, dash_is_stdout)?,
                generation: REOPEN_GENERATION.load(Ordering::Relaxed),
            }),
        })
    }
}

/// Asks every log file to be reopened before its next line. Only touches
/// an atomic, so it may be called from a signal handler.
pub fn request_reopen() {
    REOPEN_GENERATION.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn on_usr1(_: libc::c_int) {
    request_reopen();
}

/// Makes `USR1` reopen the log files in this process (a worker; the master
/// gets `USR1` through its signal loop).
pub fn reopen_on_usr1() {
    // SAFETY: the handler only performs an atomic add (async-signal-safe);
    // a zeroed sigaction with an empty mask is valid.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_usr1 as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) != 0 {
            tracing::warn!("cannot handle USR1: {}", io::Error::last_os_error());
        }
    }
}

struct GunicornFormat {
    error: Sink,
    access: Option<Sink>,
    level: Level,
    critical_only: bool,
    json: bool,
    syslog: Option<SyslogSink>,
}

/// Opens a log destination: `-` is stdout (access) or stderr (error).
fn open(target: &str, dash_is_stdout: bool) -> io::Result<Box<dyn Write + Send>> {
    if target == "-" {
        return Ok(if dash_is_stdout {
            Box::new(io::stdout())
        } else {
            Box::new(io::stderr())
        });
    }
    let file = OpenOptions::new().create(true).append(true).open(target)?;
    Ok(Box::new(file))
}

/// Where syslog lines go and the process name that prefixes them.
pub struct SyslogSetup<'a> {
    /// The `--log-syslog*` settings.
    pub settings: &'a Syslog,
    /// The process name (`--name`, else the app).
    pub name: &'a str,
}

/// Installs the global subscriber. `accesslog` is `None` when access
/// logging is off; `syslog` is `None` without `--log-syslog`.
pub fn init(
    errorlog: &str,
    accesslog: Option<&str>,
    level: LogLevel,
    format: LogFormat,
    syslog: Option<SyslogSetup<'_>>,
) -> io::Result<()> {
    let (level, critical_only) = match level {
        LogLevel::Debug => (Level::DEBUG, false),
        LogLevel::Info => (Level::INFO, false),
        LogLevel::Warning => (Level::WARN, false),
        LogLevel::Error => (Level::ERROR, false),
        LogLevel::Critical => (Level::ERROR, true),
    };
    let layer = GunicornFormat {
        error: Sink::open(errorlog, false)?,
        access: accesslog.map(|a| Sink::open(a, true)).transpose()?,
        level,
        critical_only,
        json: format == LogFormat::Json,
        syslog: syslog
            .map(|setup| SyslogSink::open(setup.settings, setup.name))
            .transpose()?,
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(crate::observe::LogCounter)
        .try_init()
        .map_err(io::Error::other)
}

/// Installs a stderr logger for use before the configuration is known.
pub fn init_fallback() {
    let _ = init("-", None, LogLevel::Info, LogFormat::Text, None);
}

struct Message(String);

/// Every field of an event, for JSON lines: `message` and the rest as
/// JSON members in the order they were recorded.
#[derive(Default)]
struct Fields {
    message: String,
    extra: Vec<(String, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.extra.push((field.name().into(), value.into()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.push((field.name().into(), value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.push((field.name().into(), value.into()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.extra.push((field.name().into(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.push((field.name().into(), value.into()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message.push_str(&text);
        } else {
            self.extra.push((field.name().into(), text.into()));
        }
    }
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

fn write_line(sink: &Sink, line: &str) {
    let Ok(mut state) = sink.state.lock() else {
        return;
    };
    let generation = REOPEN_GENERATION.load(Ordering::Relaxed);
    if state.generation != generation {
        state.generation = generation;
        // A file that cannot be reopened keeps the old descriptor: losing
        // the log would be worse than writing to a rotated file.
        if sink.target != "-" {
            if let Ok(out) = open(&sink.target, sink.dash_is_stdout) {
                state.out = out;
            }
            if !sink.dash_is_stdout && CAPTURING.load(Ordering::Relaxed) {
                if let Ok(file) = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&sink.target)
                {
                    let _ = redirect_stdio(&file);
                }
            }
        }
    }
    let _ = state.out.write_all(line.as_bytes());
    let _ = state.out.flush();
}

impl GunicornFormat {
    fn wanted(&self, metadata: &Metadata<'_>) -> bool {
        let target = metadata.target();
        if target == ACCESS_TARGET {
            return match python::access_route() {
                Route::Builtin => {
                    self.access.is_some()
                        || self.syslog.as_ref().is_some_and(SyslogSink::takes_access)
                }
                Route::Off => false,
                Route::Python(threshold) => threshold <= python::INFO,
            };
        }
        match python::error_route() {
            Route::Builtin => {}
            Route::Off => return false,
            Route::Python(threshold) => {
                return python_level(metadata) >= threshold
                    && (!is_protocol_library(target) || threshold <= python::DEBUG);
            }
        }
        match target {
            WSGI_ERRORS_TARGET | CRITICAL_TARGET => true,
            // The protocol libraries warn about each misbehaving peer (an
            // HTTP/2 rapid reset, a bad handshake) at a rate the peer
            // chooses: that is debugging detail, never a flood in the log.
            target if is_protocol_library(target) => {
                !self.critical_only && self.level >= Level::DEBUG && *metadata.level() <= self.level
            }
            _ => !self.critical_only && *metadata.level() <= self.level,
        }
    }

    /// With a logconfig that takes this event's log: hands it to Python's
    /// logging and returns true.
    fn forwarded(&self, event: &Event<'_>) -> bool {
        let metadata = event.metadata();
        let access = metadata.target() == ACCESS_TARGET;
        let route = if access {
            python::access_route()
        } else {
            python::error_route()
        };
        if !matches!(route, Route::Python(_)) {
            return false;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let mut text = message.0;
        if metadata.target() == WSGI_ERRORS_TARGET && text.ends_with('\n') {
            text.pop();
        }
        python::send(python_level(metadata), access, text);
        true
    }
}

/// The Python logging level of an event: what the app wrote to
/// `wsgi.errors` counts as an error, as in `--log-format json`.
fn python_level(metadata: &Metadata<'_>) -> i32 {
    match metadata.target() {
        CRITICAL_TARGET => python::CRITICAL,
        WSGI_ERRORS_TARGET => python::ERROR,
        _ => match *metadata.level() {
            Level::ERROR => python::ERROR,
            Level::WARN => python::WARNING,
            Level::INFO => python::INFO,
            Level::DEBUG => python::DEBUG,
            _ => python::DEBUG / 2,
        },
    }
}

/// Whether events of `target` come from a protocol library (hyper, h2,
/// rustls) rather than from ferricorn.
fn is_protocol_library(target: &str) -> bool {
    ["h2", "hyper", "hyper_util", "rustls", "tokio_rustls"]
        .iter()
        .any(|name| {
            target == *name
                || target
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}

impl<S: Subscriber> Layer<S> for GunicornFormat {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.wanted(metadata)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if !self.wanted(metadata) || self.forwarded(event) {
            return;
        }
        if self.json {
            self.json_event(event);
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let mut text = message.0;
        match metadata.target() {
            ACCESS_TARGET => {
                if let Some(syslog) = &self.syslog {
                    syslog.access(&text);
                }
                if let Some(access) = &self.access {
                    text.push('\n');
                    write_line(access, &text);
                }
            }
            WSGI_ERRORS_TARGET => {
                text.push('\n');
                write_line(&self.error, &text);
            }
            _ => {
                let level = level_name(metadata);
                let line = format!(
                    "[{}] [{}] [{level}] {text}\n",
                    timestamp(),
                    std::process::id()
                );
                write_line(&self.error, &line);
                if let Some(syslog) = &self.syslog {
                    syslog.error(severity(metadata), &text);
                }
            }
        }
    }
}

impl GunicornFormat {
    /// Writes `event` as one JSON line (`--log-format json`). Access
    /// events arrive already rendered by the worker.
    fn json_event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if metadata.target() == ACCESS_TARGET {
            if let Some(syslog) = &self.syslog {
                syslog.access(&fields.message);
            }
            if let Some(access) = &self.access {
                fields.message.push('\n');
                write_line(access, &fields.message);
            }
            return;
        }
        let (logger, level) = if metadata.target() == WSGI_ERRORS_TARGET {
            // What the app wrote, as it wrote it: gunicorn gives it no level.
            (WSGI_ERRORS_TARGET, "ERROR")
        } else {
            ("ferricorn.error", level_name(metadata))
        };
        let mut line = json_record(&fields.message, level, logger, fields.extra);
        if let Some(syslog) = self
            .syslog
            .as_ref()
            .filter(|_| logger != WSGI_ERRORS_TARGET)
        {
            syslog.error(severity(metadata), &line);
        }
        line.push('\n');
        write_line(&self.error, &line);
    }
}

/// The syslog severity of an event's level.
fn severity(metadata: &Metadata<'_>) -> Severity {
    if metadata.target() == CRITICAL_TARGET {
        return Severity::Critical;
    }
    match *metadata.level() {
        Level::ERROR => Severity::Error,
        Level::WARN => Severity::Warning,
        Level::INFO => Severity::Info,
        _ => Severity::Debug,
    }
}

/// gunicorn's name for an event's level.
fn level_name(metadata: &Metadata<'_>) -> &'static str {
    if metadata.target() == CRITICAL_TARGET {
        return "CRITICAL";
    }
    match *metadata.level() {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// The ECS release whose field reference the key names follow.
const ECS_VERSION: &str = "8.11.0";

const TRACEBACK_START: &str = "\nTraceback (most recent call last):";

/// One JSON error-log record, keys in ECS order. A Python traceback after
/// the first line of `text` becomes `error.stack_trace`, with
/// `error.type` and `error.message` from its last line.
fn json_record(
    text: &str,
    level: &str,
    logger: &str,
    extra: Vec<(String, serde_json::Value)>,
) -> String {
    let (message, stack) = match text.find(TRACEBACK_START) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    // Built by hand: serde_json's map would sort the keys, and ECS wants
    // `@timestamp`, `log.level`, `message` first.
    let mut line = String::with_capacity(256);
    let mut member = |key: &str, value: serde_json::Value| {
        line.push(if line.is_empty() { '{' } else { ',' });
        line.push_str(&serde_json::Value::from(key).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    };
    member("@timestamp", rfc3339_now().into());
    member("log.level", level.into());
    member("message", message.into());
    member("ecs.version", ECS_VERSION.into());
    member("log.logger", logger.into());
    member("process.pid", std::process::id().into());
    if let Some(stack) = stack {
        if let Some((kind, detail)) = exception_line(stack) {
            member("error.type", kind.into());
            if let Some(detail) = detail {
                member("error.message", detail.into());
            }
        }
        member("error.stack_trace", stack.into());
    }
    for (key, value) in extra {
        member(&key, value);
    }
    line.push('}');
    line
}

/// `("ValueError", Some("boom"))` from a traceback ending `ValueError: boom`.
fn exception_line(stack: &str) -> Option<(&str, Option<&str>)> {
    let last = stack.lines().rev().find(|line| !line.trim().is_empty())?;
    let (kind, detail) = match last.split_once(": ") {
        Some((kind, detail)) => (kind, Some(detail)),
        None => (last.trim_end_matches(':'), None),
    };
    let is_name = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    is_name.then_some((kind, detail))
}

/// `2026-11-23T16:33:58.123456Z`.
fn rfc3339_now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// `2026-11-23 16:33:58 +0000`, in UTC.
fn timestamp() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] +0000");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceback_becomes_error_fields() {
        let text = "Error handling request /x\nTraceback (most recent call last):\n  \
                    File \"a.py\", line 1, in f\nValueError: bad \"v\"";
        let line = json_record(text, "ERROR", "ferricorn.error", vec![]);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(line.starts_with("{\"@timestamp\":"), "{line}");
        assert!(
            line.contains(",\"log.level\":\"ERROR\",\"message\":\"Error handling request /x\",")
        );
        assert_eq!(value["error.type"], "ValueError");
        assert_eq!(value["error.message"], "bad \"v\"");
        assert_eq!(value["error.stack_trace"], text.split_once('\n').unwrap().1);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn extra_fields_follow_and_plain_multiline_stays_in_message() {
        let line = json_record(
            "two\nlines",
            "CRITICAL",
            "ferricorn.error",
            vec![("event.duration".into(), 5u64.into())],
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["message"], "two\nlines");
        assert_eq!(value["event.duration"], 5);
        assert!(value.get("error.stack_trace").is_none());
    }

    #[test]
    fn exception_line_needs_a_type_name() {
        assert_eq!(
            exception_line("x\nKeyError: 'k'"),
            Some(("KeyError", Some("'k'")))
        );
        assert_eq!(exception_line("x\nmod.Stop"), Some(("mod.Stop", None)));
        assert_eq!(exception_line("x\nnot a name: y"), None);
    }

    #[test]
    fn protocol_library_targets_are_recognised_by_crate_name() {
        assert!(is_protocol_library("h2"));
        assert!(is_protocol_library("h2::proto::streams::recv"));
        assert!(is_protocol_library("hyper::proto::h2::server"));
        assert!(!is_protocol_library("h2o"));
        assert!(!is_protocol_library("ferricorn_worker::threaded"));
    }
}
