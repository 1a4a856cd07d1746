//! Error and access logs in gunicorn's format, on top of `tracing`.
//!
//! Error log lines look like gunicorn's, `[2026-11-23 16:33:58 +0000]
//! [1234] [INFO] Booting worker with pid: 1234`, so existing greps and log
//! parsers keep working. Events with target `ferricorn.access` are access
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

use ferricorn_config::LogLevel;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

const ACCESS_TARGET: &str = "ferricorn.access";
const WSGI_ERRORS_TARGET: &str = "wsgi.errors";
const CRITICAL_TARGET: &str = "ferricorn.critical";

/// Bumped by every `USR1`; a sink that saw an older value reopens its file.
static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

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

/// Installs the global subscriber. `accesslog` is `None` when access
/// logging is off.
pub fn init(errorlog: &str, accesslog: Option<&str>, level: LogLevel) -> io::Result<()> {
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
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(crate::observe::LogCounter)
        .try_init()
        .map_err(io::Error::other)
}

/// Installs a stderr logger for use before the configuration is known.
pub fn init_fallback() {
    let _ = init("-", None, LogLevel::Info);
}

struct Message(String);

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
        match metadata.target() {
            ACCESS_TARGET => self.access.is_some(),
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
        if !self.wanted(metadata) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let mut text = message.0;
        match metadata.target() {
            ACCESS_TARGET => {
                if let Some(access) = &self.access {
                    text.push('\n');
                    write_line(access, &text);
                }
            }
            WSGI_ERRORS_TARGET => {
                text.push('\n');
                write_line(&self.error, &text);
            }
            target => {
                let level = if target == CRITICAL_TARGET {
                    "CRITICAL"
                } else {
                    match *metadata.level() {
                        Level::ERROR => "ERROR",
                        Level::WARN => "WARNING",
                        Level::INFO => "INFO",
                        _ => "DEBUG",
                    }
                };
                let line = format!(
                    "[{}] [{}] [{level}] {text}\n",
                    timestamp(),
                    std::process::id()
                );
                write_line(&self.error, &line);
            }
        }
    }
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
    use super::is_protocol_library;

    #[test]
    fn protocol_library_targets_are_recognised_by_crate_name() {
        assert!(is_protocol_library("h2"));
        assert!(is_protocol_library("h2::proto::streams::recv"));
        assert!(is_protocol_library("hyper::proto::h2::server"));
        assert!(!is_protocol_library("h2o"));
        assert!(!is_protocol_library("ferricorn_worker::threaded"));
    }
}
