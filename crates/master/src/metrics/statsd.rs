//! StatsD with gunicorn's names and wire format, byte for byte, `|#tags`
//! appended for DogStatsD. One metric per datagram, except a request's
//! three, which go as one newline-separated datagram (StatsD, DogStatsD
//! and Telegraf split multi-metric packets): a `send(2)` per request rather
//! than three, on the request path. The socket is
//! created in the master before the first fork and shared by every
//! process (datagrams are atomic), non-blocking: a full buffer or an absent
//! collector drops the metric and never slows a request.
//!
//! Emitted where the event happens, like gunicorn: request counters and
//! timers by the worker that served the request, `gunicorn.workers` and
//! `gunicorn.backlog` by the master, `gunicorn.log.*` by any process.

use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use ferricorn_config::{Operability, StatsdAddr};

use super::board::{LogLevel, Observation, LOG_LEVELS};

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

struct Statsd {
    socket: Socket,
    prefix: String,
    /// `|#tags`, or empty.
    suffix: String,
}

static STATSD: OnceLock<Statsd> = OnceLock::new();

/// Opens the StatsD socket when `--statsd-host` is set (in the master,
/// before forking). A collector that cannot be reached is a warning, and
/// serving goes on.
pub fn install(ops: &Operability) {
    let Some(addr) = &ops.statsd_host else { return };
    let socket = match connect(addr) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!("StatsD disabled: cannot reach {addr}: {error}");
            return;
        }
    };
    let suffix = if ops.dogstatsd_tags.is_empty() {
        String::new()
    } else {
        format!("|#{}", ops.dogstatsd_tags)
    };
    let _ = STATSD.set(Statsd {
        socket,
        prefix: ops.statsd_prefix.clone(),
        suffix,
    });
}

fn connect(addr: &StatsdAddr) -> io::Result<Socket> {
    match addr {
        StatsdAddr::Udp { host, port } => {
            let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?
                .next()
                .ok_or_else(|| io::Error::other("no address"))?;
            let local = if target.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(target)?;
            socket.set_nonblocking(true)?;
            Ok(Socket::Udp(socket))
        }
        StatsdAddr::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            socket.connect(path)?;
            socket.set_nonblocking(true)?;
            Ok(Socket::Unix(socket))
        }
    }
}

impl Statsd {
    fn send(&self, name: &str, value: &str, kind: &str) {
        let mut datagram = String::with_capacity(64);
        self.push(&mut datagram, name, value, kind);
        self.send_datagram(&datagram);
    }

    /// Appends one metric line (no newline) to `datagram`.
    fn push(
        &self,
        datagram: &mut String,
        name: impl std::fmt::Display,
        value: impl std::fmt::Display,
        kind: &str,
    ) {
        use std::fmt::Write as _;
        let _ = write!(
            datagram,
            "{}{name}:{value}|{kind}{}",
            self.prefix, self.suffix
        );
    }

    fn send_datagram(&self, datagram: &str) {
        // Dropped on EAGAIN or a missing collector: metrics never block.
        let _ = match &self.socket {
            Socket::Udp(s) => s.send(datagram.as_bytes()),
            Socket::Unix(s) => s.send(datagram.as_bytes()),
        };
    }
}

/// A float written as Python's `str(float)` writes it (`2.0`, `2.5`), as
/// gunicorn's values are.
struct PythonFloat(f64);

impl std::fmt::Display for PythonFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A finished request: `gunicorn.request.duration` (ms),
/// `gunicorn.requests` and `gunicorn.request.status.<code>`, in one
/// datagram.
pub fn request(observation: &Observation) {
    let Some(statsd) = STATSD.get() else { return };
    // Microsecond resolution and a Python float's text, as gunicorn sends.
    let ms = PythonFloat((observation.duration_ns / 1000) as f64 / 1000.0);
    // One buffer for the whole datagram: this runs for every request.
    let mut datagram = String::with_capacity(192);
    statsd.push(&mut datagram, "gunicorn.request.duration", ms, "ms");
    datagram.push('\n');
    statsd.push(&mut datagram, "gunicorn.requests", "1", "c|@1.0");
    datagram.push('\n');
    statsd.push(
        &mut datagram,
        format_args!("gunicorn.request.status.{}", observation.status),
        "1",
        "c|@1.0",
    );
    statsd.send_datagram(&datagram);
}

/// A log line: `gunicorn.log.<level>`.
pub fn log(level: LogLevel) {
    if let Some(statsd) = STATSD.get() {
        statsd.send(
            &format!("gunicorn.log.{}", LOG_LEVELS[level as usize]),
            "1",
            "c|@1.0",
        );
    }
}

/// The number of workers: `gunicorn.workers` gauge.
pub fn workers(count: u64) {
    if let Some(statsd) = STATSD.get() {
        statsd.send("gunicorn.workers", &count.to_string(), "g");
    }
}

/// The accept-queue length: `gunicorn.backlog` histogram (gunicorn's type).
pub fn backlog(length: u64) {
    if let Some(statsd) = STATSD.get() {
        statsd.send("gunicorn.backlog", &length.to_string(), "h");
    }
}

/// Whether StatsD is on in this process.
pub fn enabled() -> bool {
    STATSD.get().is_some()
}

#[cfg(test)]
mod tests {
    use super::PythonFloat;

    #[test]
    fn durations_are_written_as_python_floats() {
        assert_eq!(PythonFloat(2.0).to_string(), "2.0");
        assert_eq!(PythonFloat(0.0).to_string(), "0.0");
        assert_eq!(PythonFloat(2.5).to_string(), "2.5");
        assert_eq!(PythonFloat(0.123).to_string(), "0.123");
    }
}
