//! StatsD with gunicorn's names and wire format, byte for byte, `|#tags`
//! appended for DogStatsD. Request metrics are batched per worker:
//! each request's three lines are appended to a buffer that goes out as one
//! newline-separated datagram (StatsD, DogStatsD and Telegraf split
//! multi-metric packets) when the next lines would not fit in
//! [`MAX_UDP_DATAGRAM`] / [`MAX_UNIX_DATAGRAM`] bytes, when its oldest line
//! is [`FLUSH_AFTER`] old (checked on every request and on every beat of
//! the worker loop, at least every 250 ms), and when the worker exits
//! ([`flush`]). A `send(2)` per request cost about 9 % of hello req/s;
//! a batch costs one per ~10 requests. Other metrics (workers, backlog,
//! log lines) are rare and go one per datagram, as gunicorn sends them.
//! The socket is created in the master before the first fork and shared by
//! every process (datagrams are atomic), non-blocking: a full buffer or an
//! absent collector drops the metric and never slows a request.
//!
//! Emitted where the event happens, like gunicorn: request counters and
//! timers by the worker that served the request, `gunicorn.workers` and
//! `gunicorn.backlog` by the master, `gunicorn.log.*` by any process.

use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferricorn_config::{Operability, StatsdAddr};

use super::board::{LogLevel, Observation, LOG_LEVELS};

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// Largest batched datagram over UDP: what fits an Ethernet MTU of 1500
/// without fragmentation (DogStatsD clients' and etsy/statsd's "fast
/// Ethernet" figure).
pub const MAX_UDP_DATAGRAM: usize = 1432;
/// Largest batched datagram over a unix socket (datadogpy's UDS default;
/// no MTU, and well under the default `net.core.wmem_default`).
pub const MAX_UNIX_DATAGRAM: usize = 8192;
/// How long a request's metrics may wait in the batch.
pub const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// Request lines not sent yet, and when the oldest was added.
struct Batch {
    lines: String,
    since: Option<Instant>,
}

/// This worker's batch (empty in the master, so a fork copies nothing).
static BATCH: Mutex<Batch> = Mutex::new(Batch {
    lines: String::new(),
    since: None,
});

struct Statsd {
    socket: Socket,
    /// [`MAX_UDP_DATAGRAM`] or [`MAX_UNIX_DATAGRAM`].
    max_datagram: usize,
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
    let max_datagram = match socket {
        Socket::Udp(_) => MAX_UDP_DATAGRAM,
        Socket::Unix(_) => MAX_UNIX_DATAGRAM,
    };
    let _ = STATSD.set(Statsd {
        socket,
        max_datagram,
        prefix: ops.statsd_prefix.clone(),
        suffix,
    });
}

fn connect(addr: &StatsdAddr) -> io::Result<Socket> {
    match addr {
        StatsdAddr::Udp { host, port } => Ok(Socket::Udp(crate::udp::connect(host, *port)?)),
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
    fn push(&self, datagram: &mut String, name: &str, value: &str, kind: &str) {
        datagram.push_str(&self.prefix);
        datagram.push_str(name);
        datagram.push(':');
        datagram.push_str(value);
        datagram.push('|');
        datagram.push_str(kind);
        datagram.push_str(&self.suffix);
    }

    fn send_batch(&self, batch: &mut Batch) {
        if !batch.lines.is_empty() {
            self.send_datagram(&batch.lines);
            batch.lines.clear();
        }
        batch.since = None;
    }

    fn send_datagram(&self, datagram: &str) {
        // Dropped on EAGAIN or a missing collector: metrics never block.
        let _ = match &self.socket {
            Socket::Udp(s) => s.send(datagram.as_bytes()),
            Socket::Unix(s) => s.send(datagram.as_bytes()),
        };
    }
}

/// Appends `us` microseconds as milliseconds the way Python's
/// `str(float)` writes `us / 1000` (`8.443`, `8.44`, `2.0`), as gunicorn
/// sends them; by hand, as this runs for every request.
fn push_ms(out: &mut String, us: u64) {
    push_int(out, us / 1000);
    out.push('.');
    let fraction = us % 1000;
    let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
    let keep = digits
        .iter()
        .rposition(|&d| d != 0)
        .map_or(1, |last| last + 1);
    for digit in &digits[..keep] {
        out.push(char::from(b'0' + *digit as u8));
    }
}

fn push_int(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[at..].iter().map(|&b| char::from(b)));
}

/// A finished request: `gunicorn.request.duration` (ms),
/// `gunicorn.requests` and `gunicorn.request.status.<code>`, into this
/// worker's batch.
pub fn request(observation: &Observation) {
    let Some(statsd) = STATSD.get() else { return };
    let Ok(mut batch) = BATCH.lock() else { return };
    let batch = &mut *batch;
    let start = batch.lines.len();
    let out = &mut batch.lines;
    if start > 0 {
        out.push('\n');
    }
    out.push_str(&statsd.prefix);
    out.push_str("gunicorn.request.duration:");
    // Microsecond resolution, as gunicorn sends.
    push_ms(out, observation.duration_ns / 1000);
    out.push_str("|ms");
    out.push_str(&statsd.suffix);
    out.push('\n');
    out.push_str(&statsd.prefix);
    out.push_str("gunicorn.requests:1|c|@1.0");
    out.push_str(&statsd.suffix);
    out.push('\n');
    out.push_str(&statsd.prefix);
    out.push_str("gunicorn.request.status.");
    push_int(out, u64::from(observation.status));
    out.push_str(":1|c|@1.0");
    out.push_str(&statsd.suffix);
    let now = Instant::now();
    if batch.lines.len() > statsd.max_datagram && start > 0 {
        // This request's lines do not fit: send what was there before them.
        statsd.send_datagram(&batch.lines[..start]);
        batch.lines.drain(..=start);
        batch.since = Some(now);
    }
    let since = *batch.since.get_or_insert(now);
    if now.duration_since(since) >= FLUSH_AFTER || batch.lines.len() > statsd.max_datagram {
        statsd.send_batch(batch);
    }
}

/// Sends this worker's batched request metrics if the oldest has waited
/// [`FLUSH_AFTER`]; called on every beat of the worker loop.
pub fn flush_due() {
    let Some(statsd) = STATSD.get() else { return };
    let Ok(mut batch) = BATCH.lock() else { return };
    if batch
        .since
        .is_some_and(|since| since.elapsed() >= FLUSH_AFTER)
    {
        statsd.send_batch(&mut batch);
    }
}

/// Sends this worker's batched request metrics now (the worker is exiting).
pub fn flush() {
    let Some(statsd) = STATSD.get() else { return };
    if let Ok(mut batch) = BATCH.lock() {
        statsd.send_batch(&mut batch);
    }
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
    use super::{push_int, push_ms};

    fn ms(us: u64) -> String {
        let mut out = String::new();
        push_ms(&mut out, us);
        out
    }

    #[test]
    fn durations_are_written_as_python_floats() {
        // Python: str(8443 / 1000) == "8.443", str(2000 / 1000) == "2.0".
        assert_eq!(ms(2000), "2.0");
        assert_eq!(ms(0), "0.0");
        assert_eq!(ms(2500), "2.5");
        assert_eq!(ms(123), "0.123");
        assert_eq!(ms(8440), "8.44");
        assert_eq!(ms(1_000_001), "1000.001");
        assert_eq!(ms(10), "0.01");
    }

    #[test]
    fn integers() {
        for n in [0, 7, 10, 404, u64::MAX] {
            let mut out = String::new();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
