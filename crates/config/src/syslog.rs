//! gunicorn's syslog settings (`--log-syslog`, `--log-syslog-to`,
//! `--log-syslog-prefix`, `--log-syslog-facility`,
//! `--disable-redirect-access-to-syslog`), parsed as gunicorn 27's
//! `glogging.parse_syslog_address` and `SYSLOG_FACILITIES` do.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::ParseError;

/// The syslog port when an address names none.
pub const SYSLOG_DEFAULT_PORT: u16 = 514;

/// Every syslog setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// Send the error log (and access log) to syslog too (`--log-syslog`).
    pub enabled: bool,
    /// Where (`--log-syslog-to`); gunicorn's Linux default
    /// `udp://localhost:514`.
    pub addr: SyslogAddr,
    /// The program name is `gunicorn.<prefix>.<error|access>`; `None` uses
    /// the process name (`--log-syslog-prefix`).
    pub prefix: Option<String>,
    /// The facility code (`--log-syslog-facility`, default `user` = 1).
    pub facility: u8,
    /// Keep access lines out of syslog (`--disable-redirect-access-to-syslog`).
    pub disable_redirect_access: bool,
}

impl Default for Syslog {
    fn default() -> Self {
        Self {
            enabled: false,
            addr: SyslogAddr::Udp {
                host: "localhost".into(),
                port: SYSLOG_DEFAULT_PORT,
            },
            prefix: None,
            facility: 1,
            disable_redirect_access: false,
        }
    }
}

/// A syslog destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddr {
    /// `udp://HOST[:PORT]`.
    Udp {
        /// Host name or IP address.
        host: String,
        /// UDP port.
        port: u16,
    },
    /// `tcp://HOST[:PORT]`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `unix://PATH[#dgram|#stream]`; `None`: datagram, else stream (as
    /// Python's `SysLogHandler` tries).
    Unix {
        /// The socket path.
        path: PathBuf,
        /// `Some(true)` for `#dgram`, `Some(false)` for `#stream`.
        dgram: Option<bool>,
    },
}

impl FromStr for SyslogAddr {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const FORMS: &str =
            "expected unix://PATH[#dgram|#stream], udp://HOST[:PORT] or tcp://HOST[:PORT]";
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("unix://") {
            let (path, kind) = match rest.split_once('#') {
                Some((path, "dgram")) => (path, Some(true)),
                Some((path, "stream")) => (path, Some(false)),
                Some(_) => {
                    return Err(ParseError::new("the socket type must be #dgram or #stream"))
                }
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(ParseError::new("unix:// needs a socket path"));
            }
            return Ok(SyslogAddr::Unix {
                path: PathBuf::from(path),
                dgram: kind,
            });
        }
        let (udp, rest) = match (text.strip_prefix("udp://"), text.strip_prefix("tcp://")) {
            (Some(rest), _) => (true, rest),
            (_, Some(rest)) => (false, rest),
            _ => return Err(ParseError::new(FORMS)),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| ParseError::new(FORMS))?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(ParseError::new(FORMS)),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(ParseError::new(FORMS));
        }
        let port = match port {
            None => SYSLOG_DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| ParseError::new("the port must be a number from 1 to 65535"))?,
        };
        let host = host.to_string();
        Ok(if udp {
            SyslogAddr::Udp { host, port }
        } else {
            SyslogAddr::Tcp { host, port }
        })
    }
}

impl fmt::Display for SyslogAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host_port = |f: &mut fmt::Formatter<'_>, scheme, host: &str, port| {
            if host.contains(':') {
                write!(f, "{scheme}://[{host}]:{port}")
            } else {
                write!(f, "{scheme}://{host}:{port}")
            }
        };
        match self {
            SyslogAddr::Udp { host, port } => host_port(f, "udp", host, port),
            SyslogAddr::Tcp { host, port } => host_port(f, "tcp", host, port),
            SyslogAddr::Unix { path, dgram } => {
                write!(f, "unix://{}", path.display())?;
                match dgram {
                    Some(true) => f.write_str("#dgram"),
                    Some(false) => f.write_str("#stream"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// gunicorn's facility names and their codes.
const FACILITIES: &[(&str, u8)] = &[
    ("auth", 4),
    ("authpriv", 10),
    ("cron", 9),
    ("daemon", 3),
    ("ftp", 11),
    ("kern", 0),
    ("lpr", 6),
    ("mail", 2),
    ("news", 7),
    ("security", 4),
    ("syslog", 5),
    ("user", 1),
    ("uucp", 8),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The code of facility `name` (case-insensitive, as gunicorn).
pub fn facility_code(name: &str) -> Result<u8, ParseError> {
    let lower = name.trim().to_ascii_lowercase();
    FACILITIES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|&(_, code)| code)
        .ok_or_else(|| {
            ParseError::new(
                "unknown facility name; expected one of auth, authpriv, cron, daemon, ftp, kern, \
                 lpr, mail, news, security, syslog, user, uucp, local0 to local7",
            )
        })
}

/// The name of facility `code` (for `--print-config`).
pub fn facility_name(code: u8) -> &'static str {
    FACILITIES
        .iter()
        .find(|&&(n, c)| c == code && n != "security")
        .map_or("user", |&(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_gunicorn() {
        assert_eq!(
            "udp://localhost".parse(),
            Ok(SyslogAddr::Udp {
                host: "localhost".into(),
                port: 514
            })
        );
        assert_eq!(
            "tcp://[::1]:1514".parse(),
            Ok(SyslogAddr::Tcp {
                host: "::1".into(),
                port: 1514
            })
        );
        assert_eq!(
            "unix:///dev/log#dgram".parse(),
            Ok(SyslogAddr::Unix {
                path: "/dev/log".into(),
                dgram: Some(true)
            })
        );
        for bad in [
            "localhost:514",
            "udp://",
            "udp://h:0",
            "unix://",
            "unix:///x#raw",
        ] {
            assert!(bad.parse::<SyslogAddr>().is_err(), "{bad}");
        }
        for text in ["udp://h:514", "tcp://[::1]:9", "unix:///dev/log#stream"] {
            assert_eq!(text.parse::<SyslogAddr>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn facilities_are_gunicorns() {
        assert_eq!(facility_code("user"), Ok(1));
        assert_eq!(facility_code("LOCAL7"), Ok(23));
        assert!(facility_code("nope").is_err());
        assert_eq!(facility_name(4), "auth");
    }
}
