//! Operability settings: metrics (StatsD, Prometheus), health, the control
//! socket and log formats. Kept in one struct ([`Settings::ops`]) so that
//! the rest of the settings stay as they are.
//!
//! [`Settings::ops`]: crate::Settings::ops

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::bind::Bind;
use crate::error::ParseError;

/// Every operability setting, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Operability {
    /// The control socket path (`--control-socket`), absolute; `None` means
    /// the default path ([`Operability::control_socket_path`]).
    pub control_socket: Option<PathBuf>,
    /// Permission bits of the control socket (`--control-socket-mode`).
    pub control_socket_mode: u32,
    /// No control socket (`--no-control-socket`).
    pub control_socket_disable: bool,
    /// Where `/metrics`, `/livez` and `/readyz` are served (`--metrics-bind`).
    pub metrics_bind: Option<Bind>,
    /// Seconds between `TERM` and the graceful stop, reporting not-ready
    /// meanwhile (`--shutdown-delay`).
    pub shutdown_delay: u64,
    /// Where StatsD datagrams go (`--statsd-host`).
    pub statsd_host: Option<StatsdAddr>,
    /// Prepended to every StatsD name, ending in one dot unless empty
    /// (`--statsd-prefix`).
    pub statsd_prefix: String,
    /// DogStatsD tags appended to every datagram (`--dogstatsd-tags`).
    pub dogstatsd_tags: String,
    /// Send the listen backlog as `gunicorn.backlog` (`--enable-backlog-metric`).
    pub enable_backlog_metric: bool,
    /// Error and access log line format (`--log-format`).
    pub log_format: LogFormat,
    /// gunicorn's syslog settings (`--log-syslog*`).
    pub syslog: crate::Syslog,
    /// Log requests running longer than this many seconds; 0 disables
    /// (`--slow-request-log`).
    pub slow_request_log: u64,
}

impl Operability {
    /// The control socket to serve, `None` when disabled. The default is
    /// `$XDG_RUNTIME_DIR/ferricorn.ctl` when that directory exists, else
    /// `$HOME/.ferricorn/ferricorn.ctl` (gunicorn's rule with its own name,
    /// so a gunicorn of the same user is never disturbed).
    pub fn control_socket_path(&self) -> Option<PathBuf> {
        if self.control_socket_disable {
            return None;
        }
        if let Some(path) = &self.control_socket {
            return Some(path.clone());
        }
        default_control_socket()
    }

    /// Whether the control socket path is the default one (whose failure
    /// is only worth an INFO line).
    pub fn control_socket_is_default(&self) -> bool {
        self.control_socket.is_none()
    }
}

/// The default control socket path, as `ferricornc` also computes it.
pub fn default_control_socket() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if dir.is_dir() {
            return Some(dir.join("ferricorn.ctl"));
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    Some(home.join(".ferricorn").join("ferricorn.ctl"))
}

/// The StatsD port when `--statsd-host` names none (gunicorn's).
pub const STATSD_DEFAULT_PORT: u16 = 8125;

/// A StatsD destination, as gunicorn's `validate_statsd_address` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdAddr {
    /// A UDP host (name or address, IPv6 without brackets) and port.
    Udp {
        /// Host name or IP address.
        host: String,
        /// UDP port.
        port: u16,
    },
    /// A unix datagram socket (`unix://PATH`).
    Unix(PathBuf),
}

impl FromStr for StatsdAddr {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const FORMS: &str = "expected HOST, HOST:PORT, [IPv6]:PORT or unix://PATH";
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ParseError::new("unix:// needs a socket path"));
            }
            return Ok(StatsdAddr::Unix(PathBuf::from(path)));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| ParseError::new(FORMS))?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(ParseError::new(FORMS)),
            }
        } else {
            match text.rsplit_once(':') {
                // gunicorn keeps `unix:NNN` as host `unix`: a host named unix.
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return Err(ParseError::new(FORMS)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(ParseError::new(FORMS));
        }
        let port = match port {
            None => STATSD_DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| ParseError::new("the port must be a number from 1 to 65535"))?,
        };
        Ok(StatsdAddr::Udp {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for StatsdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsdAddr::Udp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            StatsdAddr::Udp { host, port } => write!(f, "{host}:{port}"),
            StatsdAddr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// `--statsd-prefix` normalised: trailing dots collapse into one, and every
/// non-empty prefix ends in a dot (gunicorn forgets the dot for a
/// one-character prefix; ferricorn does not copy that).
pub fn statsd_prefix(raw: &str) -> String {
    let trimmed = raw.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}.")
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// gunicorn's text lines.
    #[default]
    Text,
    /// One JSON object per line, ECS field names.
    Json,
}

impl LogFormat {
    /// The name used on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ParseError::new("expected text or json")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsd_addresses_follow_gunicorn() {
        let udp = |host: &str, port| StatsdAddr::Udp {
            host: host.into(),
            port,
        };
        assert_eq!("localhost".parse(), Ok(udp("localhost", 8125)));
        assert_eq!("127.0.0.1:9125".parse(), Ok(udp("127.0.0.1", 9125)));
        assert_eq!("[::1]:9125".parse(), Ok(udp("::1", 9125)));
        assert_eq!("[::1]".parse(), Ok(udp("::1", 8125)));
        assert_eq!("unix:9125".parse(), Ok(udp("unix", 9125)));
        assert_eq!(
            "unix:///run/statsd.sock".parse(),
            Ok(StatsdAddr::Unix("/run/statsd.sock".into()))
        );
        for bad in ["", ":8125", "host:0", "host:x", "::1:8125", "unix://"] {
            assert!(bad.parse::<StatsdAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_end_in_one_dot() {
        assert_eq!(statsd_prefix(""), "");
        assert_eq!(statsd_prefix("a"), "a.");
        assert_eq!(statsd_prefix("svc.app.."), "svc.app.");
        assert_eq!(statsd_prefix("..."), "");
    }

    fn load(args: &[&str]) -> Result<Operability, String> {
        let mut argv = vec![std::ffi::OsString::from("ferricorn")];
        argv.extend(args.iter().map(std::ffi::OsString::from));
        crate::load(argv, &Default::default(), std::path::Path::new("/srv"))
            .map(|loaded| loaded.settings.ops)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn settings_load_and_validate() {
        let ops = load(&[]).unwrap();
        assert_eq!(ops.control_socket_mode, 0o600);
        assert_eq!(ops.metrics_bind, None);
        assert_eq!(ops.log_format, LogFormat::Text);
        let ops = load(&[
            "--control-socket",
            "run/c.ctl",
            "--control-socket-mode",
            "0o660",
            "--metrics-bind",
            "127.0.0.1:0",
            "--shutdown-delay",
            "2",
            "--statsd-host",
            "localhost",
            "--statsd-prefix",
            "svc..",
            "--dogstatsd-tags",
            "env:test",
            "--enable-backlog-metric",
            "--log-format",
            "text",
            "--slow-request-log",
            "3",
            "--no-control-socket",
        ])
        .unwrap();
        assert_eq!(ops.control_socket, Some(PathBuf::from("/srv/run/c.ctl")));
        assert_eq!(ops.control_socket_mode, 0o660);
        assert!(ops.control_socket_disable && ops.control_socket_path().is_none());
        assert_eq!(ops.shutdown_delay, 2);
        assert_eq!(ops.statsd_prefix, "svc.");
        assert!(ops.enable_backlog_metric);
        assert_eq!(ops.log_format, LogFormat::Text);
        assert_eq!(ops.slow_request_log, 3);
        assert_eq!(
            load(&["--log-format", "JSON"]).unwrap().log_format,
            LogFormat::Json
        );
        for (args, named) in [
            (&["--metrics-bind", "fd://3"][..], "--metrics-bind"),
            (&["--statsd-host", "h:99999"], "--statsd-host"),
            (&["--log-format", "xml"], "--log-format"),
            (
                &["--control-socket-mode", "0o1777"],
                "--control-socket-mode",
            ),
        ] {
            let error = load(args).unwrap_err();
            assert!(error.contains(named), "{error}");
        }
    }
}
