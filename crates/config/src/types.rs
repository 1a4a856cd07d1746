//! The small enumerated settings: worker class, log level, header mapping,
//! PROXY protocol mode, reload engine and TLS versions.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;

/// The kind of worker process (`-k/--worker-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerClass {
    /// One request at a time per worker (gunicorn's default `sync`).
    Sync,
    /// A thread pool per worker (gunicorn's `gthread`).
    Gthread,
    /// ferricorn's asynchronous worker.
    Async,
}

const WORKER_CLASSES: &str = "sync, gthread, async";

// gunicorn worker classes (short names and class paths) that ferricorn knows
// but does not provide, so the error can say so instead of "unknown".
const FOREIGN_WORKERS: &[&str] = &[
    "eventlet",
    "gevent",
    "tornado",
    "gaiohttp",
    "gunicorn.workers.geventlet.",
    "gunicorn.workers.ggevent.",
    "gunicorn.workers.gtornado.",
    "gunicorn.workers._gaiohttp.",
    "uvicorn",
];

/// gunicorn's and uvicorn's names of an ASGI worker, which ferricorn serves
/// with its async class and the ASGI interface.
const ASGI_WORKERS: &[&str] = &[
    "asgi",
    "gunicorn.workers.gasgi.asgiworker",
    "uvicorn.workers.uvicornworker",
];

/// Whether `text` (a `-k` value) is one of the ASGI worker spellings.
pub fn names_asgi_worker(text: &str) -> bool {
    ASGI_WORKERS.contains(&text.trim().to_ascii_lowercase().as_str())
}

impl WorkerClass {
    /// The name used on the command line and in config files.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkerClass::Sync => "sync",
            WorkerClass::Gthread => "gthread",
            WorkerClass::Async => "async",
        }
    }
}

impl FromStr for WorkerClass {
    type Err = ParseError;

    /// Accepts `sync`, `gthread`, `async` (any case) and gunicorn's class paths
    /// for the first two.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        match text {
            "gunicorn.workers.sync.SyncWorker" => return Ok(WorkerClass::Sync),
            "gunicorn.workers.gthread.ThreadWorker" => return Ok(WorkerClass::Gthread),
            _ => {}
        }
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "sync" => Ok(WorkerClass::Sync),
            "gthread" => Ok(WorkerClass::Gthread),
            "async" => Ok(WorkerClass::Async),
            _ if names_asgi_worker(&lower) => Ok(WorkerClass::Async),
            _ if FOREIGN_WORKERS.iter().any(|f| lower.starts_with(f)) => {
                Err(ParseError::new(format!(
                    "this gunicorn worker class is not supported by ferricorn; expected one of: {WORKER_CLASSES}"
                )))
            }
            _ => Err(ParseError::new(format!(
                "expected one of: {WORKER_CLASSES}"
            ))),
        }
    }
}

impl fmt::Display for WorkerClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error log granularity (`--log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info` (the default)
    Info,
    /// `warning`
    Warning,
    /// `error`
    Error,
    /// `critical`
    Critical,
}

impl LogLevel {
    /// The level's name as gunicorn spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }
}

impl FromStr for LogLevel {
    type Err = ParseError;

    /// Case-insensitive, like gunicorn's lookup of the level name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warning" => Ok(LogLevel::Warning),
            "error" => Ok(LogLevel::Error),
            "critical" => Ok(LogLevel::Critical),
            _ => Err(ParseError::new(
                "expected one of: debug, info, warning, error, critical",
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with request header names that cannot be mapped unambiguously
/// into WSGI environ keys, e.g. names containing `_` (`--header-map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMap {
    /// Silently drop such headers (the default).
    Drop,
    /// Reject the request.
    Refuse,
    /// Map them anyway, as old gunicorn did (ambiguous, unsafe).
    Dangerous,
}

impl HeaderMap {
    /// The value's name as gunicorn spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderMap::Drop => "drop",
            HeaderMap::Refuse => "refuse",
            HeaderMap::Dangerous => "dangerous",
        }
    }
}

impl FromStr for HeaderMap {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "drop" => Ok(HeaderMap::Drop),
            "refuse" => Ok(HeaderMap::Refuse),
            "dangerous" => Ok(HeaderMap::Dangerous),
            _ => Err(ParseError::new("expected one of: drop, refuse, dangerous")),
        }
    }
}

impl fmt::Display for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_classes() {
        assert_eq!("sync".parse(), Ok(WorkerClass::Sync));
        assert_eq!(" GThread ".parse(), Ok(WorkerClass::Gthread));
        assert_eq!("async".parse(), Ok(WorkerClass::Async));
        assert_eq!(
            "gunicorn.workers.sync.SyncWorker".parse(),
            Ok(WorkerClass::Sync)
        );
        assert_eq!(
            "gunicorn.workers.gthread.ThreadWorker".parse(),
            Ok(WorkerClass::Gthread)
        );
        for asgi in [
            "asgi",
            "uvicorn.workers.UvicornWorker",
            "gunicorn.workers.gasgi.ASGIWorker",
        ] {
            assert_eq!(asgi.parse(), Ok(WorkerClass::Async), "{asgi}");
            assert!(names_asgi_worker(asgi), "{asgi}");
        }
        assert!(!names_asgi_worker("async"));
        for foreign in [
            "gevent",
            "eventlet",
            "tornado",
            "uvicorn.workers.UvicornH11Worker",
            "gunicorn.workers.ggevent.GeventWorker",
        ] {
            let err = foreign
                .parse::<WorkerClass>()
                .err()
                .map(|e| e.reason().to_string());
            assert_eq!(
                err.as_deref(),
                Some("this gunicorn worker class is not supported by ferricorn; expected one of: sync, gthread, async"),
                "{foreign}"
            );
        }
        assert_eq!(
            "bogus"
                .parse::<WorkerClass>()
                .err()
                .map(|e| e.reason().to_string()),
            Some("expected one of: sync, gthread, async".to_string())
        );
    }

    #[test]
    fn levels_and_header_maps() {
        assert_eq!("WARNING".parse(), Ok(LogLevel::Warning));
        assert!("warn".parse::<LogLevel>().is_err());
        assert_eq!("Refuse".parse(), Ok(HeaderMap::Refuse));
        assert!("keep".parse::<HeaderMap>().is_err());
        assert_eq!(LogLevel::Critical.to_string(), "critical");
        assert_eq!(HeaderMap::Dangerous.to_string(), "dangerous");
        assert_eq!(WorkerClass::Gthread.to_string(), "gthread");
    }
}

/// Which PROXY protocol headers are expected (`--proxy-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// No PROXY header is looked for (the default).
    Off,
    /// Only the v1 text header.
    V1,
    /// Only the v2 binary header.
    V2,
    /// Either version, told apart by its first bytes.
    Auto,
}

impl ProxyProtocol {
    /// gunicorn's spelling of the mode.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProxyProtocol::Off => "off",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::Auto => "auto",
        }
    }

    /// Whether any PROXY header is looked for.
    pub fn enabled(&self) -> bool {
        *self != ProxyProtocol::Off
    }

    /// Whether a v1 (text) header is recognised.
    pub fn accepts_v1(&self) -> bool {
        matches!(self, ProxyProtocol::V1 | ProxyProtocol::Auto)
    }

    /// Whether a v2 (binary) header is recognised.
    pub fn accepts_v2(&self) -> bool {
        matches!(self, ProxyProtocol::V2 | ProxyProtocol::Auto)
    }
}

impl FromStr for ProxyProtocol {
    type Err = ParseError;

    /// gunicorn's `validate_proxy_protocol`: `off`/`false`/`0`/`none`,
    /// `auto`/`true`/`1`, `v1`, `v2`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "none" => Ok(ProxyProtocol::Off),
            "auto" | "true" | "1" => Ok(ProxyProtocol::Auto),
            "v1" => Ok(ProxyProtocol::V1),
            "v2" => Ok(ProxyProtocol::V2),
            _ => Err(ParseError::new("expected off, v1, v2 or auto")),
        }
    }
}

/// How `--reload` notices changed files (`--reload-engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadEngine {
    /// inotify when the kernel offers it, else polling (the default).
    Auto,
    /// Modification times, checked about once a second.
    Poll,
    /// inotify watches on the files' directories; fails if unavailable.
    Inotify,
}

impl ReloadEngine {
    /// gunicorn's spelling of the engine.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadEngine::Auto => "auto",
            ReloadEngine::Poll => "poll",
            ReloadEngine::Inotify => "inotify",
        }
    }
}

impl FromStr for ReloadEngine {
    type Err = ParseError;

    /// `auto`, `poll` or `inotify`, exactly as gunicorn (which compares
    /// case-sensitively).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "auto" => Ok(ReloadEngine::Auto),
            "poll" => Ok(ReloadEngine::Poll),
            "inotify" => Ok(ReloadEngine::Inotify),
            _ => Err(ParseError::new("expected auto, poll or inotify")),
        }
    }
}

/// The TLS versions served (`--ssl-version`): gunicorn's deprecated
/// `ssl.PROTOCOL_*` names, mapped onto what rustls implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslVersion {
    /// TLS 1.2 and 1.3, the highest both sides speak: gunicorn's `TLS`,
    /// `TLS_SERVER` and `SSLv23` (its default).
    Tls,
    /// TLS 1.2 only (`TLSv1_2`, as Python's `PROTOCOL_TLSv1_2`).
    Tls12,
    /// TLS 1.3 only (`TLSv1_3`; no Python constant, a ferricorn extension).
    Tls13,
}

impl SslVersion {
    /// The canonical `--ssl-version` name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SslVersion::Tls => "TLS",
            SslVersion::Tls12 => "TLSv1_2",
            SslVersion::Tls13 => "TLSv1_3",
        }
    }
}

const SSL_VERSIONS: &str = "TLS, TLS_SERVER, SSLv23, TLSv1_2 or TLSv1_3";

impl FromStr for SslVersion {
    type Err = ParseError;

    /// gunicorn's names, with or without `PROTOCOL_`, or Python's numeric
    /// values (2 = TLS/SSLv23, 5 = TLSv1_2, 17 = TLS_SERVER). SSLv2/3,
    /// TLS 1.0 and 1.1 are refused: rustls does not implement them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let name = text.strip_prefix("PROTOCOL_").unwrap_or(text);
        match name {
            "TLS" | "TLS_SERVER" | "SSLv23" | "2" | "17" => Ok(SslVersion::Tls),
            "TLSv1_2" | "5" => Ok(SslVersion::Tls12),
            "TLSv1_3" => Ok(SslVersion::Tls13),
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1_1" | "0" | "1" | "3" | "4" => {
                Err(ParseError::new(format!(
                    "rustls serves only TLS 1.2 and 1.3 (SSLv2/3, TLS 1.0 and 1.1 are insecure and \
                     not implemented); expected {SSL_VERSIONS}"
                )))
            }
            "TLS_CLIENT" | "16" => Err(ParseError::new(format!(
                "TLS_CLIENT is for client sockets; expected {SSL_VERSIONS}"
            ))),
            _ => Err(ParseError::new(format!("expected {SSL_VERSIONS}"))),
        }
    }
}
