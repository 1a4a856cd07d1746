//! The exporter: a small process forked by the master, with no Python and
//! one thread, serving `/metrics` (Prometheus text format), `/livez` and
//! `/readyz` on `--metrics-bind` from the shared board. Being its own
//! process, it answers while every worker is busy or stuck, keeps HTTP out
//! of the master, and cannot take the master down; the master respawns it
//! if it dies.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::time::Duration;

use super::board::{
    Board, MasterView, Snapshot, ABORT_REASONS, BUCKETS, EXIT_REASONS, LOG_LEVELS, METHODS,
    VERSIONS,
};
use crate::listeners::BoundListener;
use crate::scoreboard::monotonic_ms;

/// The master loop is considered wedged after this long without a round.
const LIVENESS_MS: u64 = 5000;
/// A client gets this long to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the exporter reports besides the board.
pub struct ExporterInfo {
    /// ferricorn's version.
    pub version: &'static str,
    /// The worker class name.
    pub worker_class: String,
    /// The app listeners' descriptors, for the accept-queue gauges.
    pub listeners: Vec<(String, RawFd)>,
    /// Whether worker slot `index` says Ready right now (the scoreboard),
    /// so readiness does not wait for the master's next loop round.
    pub slot_ready: Box<dyn Fn(usize) -> bool>,
}

/// Serves forever on `listener` (in the exporter process).
pub fn serve(listener: &BoundListener, board: &Board, info: &ExporterInfo) -> ! {
    loop {
        let accepted: std::io::Result<Box<dyn Conn>> = match listener {
            BoundListener::Tcp(l) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>),
            BoundListener::Unix(l, _) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>),
        };
        if let Ok(mut conn) = accepted {
            conn.timeouts();
            handle(&mut *conn, board, info);
        }
    }
}

trait Conn: Read + Write {
    fn timeouts(&self);
}

impl Conn for std::net::TcpStream {
    fn timeouts(&self) {
        let _ = self.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = self.set_write_timeout(Some(CLIENT_TIMEOUT));
    }
}

impl Conn for std::os::unix::net::UnixStream {
    fn timeouts(&self) {
        let _ = self.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = self.set_write_timeout(Some(CLIENT_TIMEOUT));
    }
}

fn handle(conn: &mut dyn Conn, board: &Board, info: &ExporterInfo) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method != "GET" && method != "HEAD" {
        (405, "text/plain", "method not allowed\n".to_string())
    } else {
        route(path, board, info)
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    let _ = conn.write_all(response.as_bytes());
}

fn route(path: &str, board: &Board, info: &ExporterInfo) -> (u16, &'static str, String) {
    let master = board.master_view();
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            render(&board.snapshot(), &master, info),
        ),
        "/livez" => {
            let age = monotonic_ms().saturating_sub(master.beat_ms);
            if master.beat_ms != 0 && age < LIVENESS_MS {
                (200, "application/json", "{\"status\":\"ok\"}\n".into())
            } else {
                let body =
                    format!("{{\"status\":\"master not responding\",\"silent_ms\":{age}}}\n");
                (503, "application/json", body)
            }
        }
        "/readyz" | "/healthz" => {
            let mut g = master.gauges;
            let live = board.snapshot().workers;
            let ready_now = live.iter().filter(|w| (info.slot_ready)(w.0)).count();
            g.ready = u64::try_from(ready_now)
                .unwrap_or(0)
                .saturating_sub(g.stopping);
            let (status, word) = if master.draining {
                (503, "draining")
            } else if g.target == 0 || g.ready < g.target {
                (503, "starting")
            } else {
                (200, "ok")
            };
            let body = format!(
                "{{\"status\":\"{word}\",\"ready_workers\":{},\"target_workers\":{}}}\n",
                g.ready, g.target
            );
            (status, "application/json", body)
        }
        _ => (404, "text/plain", "not found\n".into()),
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition of one snapshot.
pub fn render(snap: &Snapshot, master: &MasterView, info: &ExporterInfo) -> String {
    let mut out = String::with_capacity(8192);
    let name = "http_server_request_duration_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Duration of HTTP server requests.",
    );
    for (labels, h) in &snap.series {
        let base = match labels {
            Some(l) => format!(
                "http_request_method=\"{}\",http_response_status_code=\"{}\",url_scheme=\"{}\",network_protocol_version=\"{}\"",
                METHODS[l.method],
                l.status,
                if l.secure { "https" } else { "http" },
                VERSIONS[l.version]
            ),
            None => "http_request_method=\"_OTHER\"".to_string(),
        };
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{base},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{base},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{base}}} {}", h.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{{base}}} {}", h.count);
    }
    let g = master.gauges;
    let mut gauge = |name: &str, help: &str, value: u64| {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        "http_server_active_requests",
        "Requests being served now.",
        snap.active,
    );
    gauge(
        "ferricorn_workers_target",
        "The target number of workers.",
        g.target,
    );
    gauge(
        "ferricorn_workers_busy",
        "Workers with at least one request in flight.",
        snap.busy,
    );
    gauge(
        "ferricorn_request_capacity",
        "Requests the ready workers can serve at once.",
        g.ready * g.per_worker_capacity,
    );
    gauge(
        "ferricorn_master_draining",
        "1 while the master drains or stops.",
        u64::from(master.draining),
    );
    gauge(
        "process_start_time_seconds",
        "Start time of the master, seconds since the epoch.",
        master.started_unix,
    );
    family(
        &mut out,
        "ferricorn_workers",
        "gauge",
        "Worker processes by state.",
    );
    for (state, n) in [
        ("booting", g.booting),
        ("ready", g.ready),
        ("stopping", g.stopping),
    ] {
        let _ = writeln!(out, "ferricorn_workers{{state=\"{state}\"}} {n}");
    }
    let mut counter = |name: &str, help: &str, value: u64| {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    };
    counter(
        "ferricorn_requests_total",
        "Requests finished by all workers.",
        snap.requests,
    );
    counter(
        "ferricorn_worker_spawns_total",
        "Worker processes forked.",
        master.spawns,
    );
    counter(
        "ferricorn_reloads_total",
        "Reloads (HUP, code changes, control socket).",
        master.reloads,
    );
    family(
        &mut out,
        "ferricorn_requests_aborted_total",
        "counter",
        "Requests the master gave up on (their worker was killed for WORKER TIMEOUT).",
    );
    for (reason, n) in ABORT_REASONS.iter().zip(master.aborted) {
        let _ = writeln!(
            out,
            "ferricorn_requests_aborted_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "ferricorn_worker_exits_total",
        "counter",
        "Worker exits by reason.",
    );
    for (reason, n) in EXIT_REASONS.iter().zip(master.exits) {
        let _ = writeln!(
            out,
            "ferricorn_worker_exits_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "ferricorn_log_messages_total",
        "counter",
        "Log lines by level, all processes.",
    );
    for (level, n) in LOG_LEVELS.iter().zip(snap.log) {
        let _ = writeln!(out, "ferricorn_log_messages_total{{level=\"{level}\"}} {n}");
    }
    let backlogs: Vec<_> = info
        .listeners
        .iter()
        .filter_map(|(name, fd)| super::backlog::queue(*fd).map(|q| (name, q)))
        .collect();
    family(
        &mut out,
        "ferricorn_listener_backlog",
        "gauge",
        "Connections waiting in the accept queue.",
    );
    for (listener, (queued, _)) in &backlogs {
        let _ = writeln!(
            out,
            "ferricorn_listener_backlog{{listener=\"{listener}\"}} {queued}"
        );
    }
    family(
        &mut out,
        "ferricorn_listener_backlog_limit",
        "gauge",
        "Accept queue size.",
    );
    for (listener, (_, limit)) in &backlogs {
        let _ = writeln!(
            out,
            "ferricorn_listener_backlog_limit{{listener=\"{listener}\"}} {limit}"
        );
    }
    family(
        &mut out,
        "ferricorn_worker_requests_total",
        "counter",
        "Requests finished by each live worker (resets when its slot is reused).",
    );
    for (slot, pid, requests, _) in &snap.workers {
        let _ = writeln!(
            out,
            "ferricorn_worker_requests_total{{worker=\"{slot}\",pid=\"{pid}\"}} {requests}"
        );
    }
    family(
        &mut out,
        "ferricorn_worker_active_requests",
        "gauge",
        "Requests in flight in each live worker.",
    );
    for (slot, pid, _, active) in &snap.workers {
        let _ = writeln!(
            out,
            "ferricorn_worker_active_requests{{worker=\"{slot}\",pid=\"{pid}\"}} {active}"
        );
    }
    family(
        &mut out,
        "ferricorn_build_info",
        "gauge",
        "ferricorn's version and worker class.",
    );
    let _ = writeln!(
        out,
        "ferricorn_build_info{{version=\"{}\",worker_class=\"{}\"}} 1",
        info.version, info.worker_class
    );
    out
}
