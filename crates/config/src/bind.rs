//! Listening addresses (`bind`), in gunicorn's syntax: `HOST`, `HOST:PORT`,
//! `[IPv6]:PORT`, `unix:PATH` and `fd://N`.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::ParseError;

/// The port gunicorn uses when an address names only a host.
pub const DEFAULT_PORT: u16 = 8000;

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    /// A TCP address. `host` is kept as text (an IP address or a host name the
    /// caller resolves); IPv6 addresses are stored without brackets.
    Tcp {
        /// IP address or host name, e.g. `127.0.0.1`, `::1`, `localhost`.
        host: String,
        /// TCP port (0 asks the kernel for a free one).
        port: u16,
    },
    /// A Unix domain socket path (`unix:PATH` or `unix://PATH`).
    Unix(PathBuf),
    /// An already-open listening file descriptor (`fd://N`), e.g. from systemd.
    Fd(i32),
}

const FORMS: &str = "expected HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N";

impl FromStr for Bind {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ParseError::new(FORMS));
        }
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(ParseError::new(
                    "a unix socket address needs a path (unix:PATH)",
                ));
            }
            return Ok(Bind::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = text.strip_prefix("fd://") {
            return match fd.parse::<i32>() {
                Ok(n) if n >= 0 && !fd.starts_with('+') => Ok(Bind::Fd(n)),
                _ => Err(ParseError::new(
                    "fd:// needs a non-negative file descriptor number (fd://N)",
                )),
            };
        }
        // gunicorn tolerates an explicit tcp:// scheme.
        let text = text.strip_prefix("tcp://").unwrap_or(text);

        if let Some(rest) = text.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return Err(ParseError::new(
                    "missing ']' after the IPv6 address (expected [IPv6]:PORT)",
                ));
            };
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(ParseError::new(format!(
                    "'{host}' between brackets is not an IPv6 address"
                )));
            }
            let port = if after.is_empty() {
                DEFAULT_PORT
            } else if let Some(port) = after.strip_prefix(':') {
                parse_port(port)?
            } else {
                return Err(ParseError::new("expected ':PORT' after ']'"));
            };
            return Ok(Bind::Tcp {
                host: host.to_string(),
                port,
            });
        }

        let (host, port) = match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err(ParseError::new(
                    "IPv6 addresses must be written in brackets, e.g. [::1]:8000",
                ))
            }
            Some((host, port)) => (host, parse_port(port)?),
            None => (text, DEFAULT_PORT),
        };
        // An empty host (":8000") means every interface, as with Python's bind(('', port)).
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(ParseError::new(format!(
                "'{host}' is not a valid host name or IP address"
            )));
        }
        Ok(Bind::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

fn parse_port(text: &str) -> Result<u16, ParseError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(port) = text.parse::<u16>() {
            return Ok(port);
        }
    }
    Err(ParseError::new(format!(
        "port '{text}' is not a number from 0 to 65535"
    )))
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Bind::Tcp { host, port } => write!(f, "{host}:{port}"),
            Bind::Unix(path) => write!(f, "unix:{}", path.display()),
            Bind::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Bind {
        Bind::Tcp {
            host: host.into(),
            port,
        }
    }

    fn parse(text: &str) -> Bind {
        match text.parse() {
            Ok(b) => b,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn reason(text: &str) -> String {
        match text.parse::<Bind>() {
            Ok(b) => panic!("{text:?} should fail, got {b:?}"),
            Err(e) => e.reason().to_string(),
        }
    }

    #[test]
    fn all_forms() {
        assert_eq!(parse("127.0.0.1:8000"), tcp("127.0.0.1", 8000));
        assert_eq!(parse("localhost"), tcp("localhost", 8000));
        assert_eq!(parse("example.com:80"), tcp("example.com", 80));
        assert_eq!(parse("[::1]:9000"), tcp("::1", 9000));
        assert_eq!(parse("[::]"), tcp("::", 8000));
        assert_eq!(parse(":8080"), tcp("0.0.0.0", 8080));
        assert_eq!(parse("tcp://10.0.0.1:81"), tcp("10.0.0.1", 81));
        assert_eq!(parse("0.0.0.0:0"), tcp("0.0.0.0", 0));
        assert_eq!(parse("0.0.0.0:65535"), tcp("0.0.0.0", 65535));
        assert_eq!(parse("unix:/tmp/x.sock"), Bind::Unix("/tmp/x.sock".into()));
        assert_eq!(
            parse("unix:///tmp/x.sock"),
            Bind::Unix("/tmp/x.sock".into())
        );
        assert_eq!(parse("unix:rel.sock"), Bind::Unix("rel.sock".into()));
        assert_eq!(parse("fd://3"), Bind::Fd(3));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "127.0.0.1:8000",
            "[::1]:8000",
            "unix:/tmp/x.sock",
            "fd://3",
            "localhost:1",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(parse("localhost").to_string(), "localhost:8000");
    }

    #[test]
    fn bad_forms() {
        assert_eq!(
            reason("127.0.0.1:99999"),
            "port '99999' is not a number from 0 to 65535"
        );
        assert_eq!(
            reason("127.0.0.1:"),
            "port '' is not a number from 0 to 65535"
        );
        assert_eq!(
            reason("127.0.0.1:-1"),
            "port '-1' is not a number from 0 to 65535"
        );
        assert_eq!(
            reason("[::1"),
            "missing ']' after the IPv6 address (expected [IPv6]:PORT)"
        );
        assert_eq!(
            reason("[nope]:80"),
            "'nope' between brackets is not an IPv6 address"
        );
        assert_eq!(reason("[::1]80"), "expected ':PORT' after ']'");
        assert_eq!(
            reason("unix:"),
            "a unix socket address needs a path (unix:PATH)"
        );
        assert_eq!(
            reason("fd://x"),
            "fd:// needs a non-negative file descriptor number (fd://N)"
        );
        assert_eq!(
            reason("fd://-1"),
            "fd:// needs a non-negative file descriptor number (fd://N)"
        );
        assert_eq!(
            reason("::1"),
            "IPv6 addresses must be written in brackets, e.g. [::1]:8000"
        );
        assert_eq!(
            reason("a b:80"),
            "'a b' is not a valid host name or IP address"
        );
        assert_eq!(reason("  "), FORMS);
    }
}
