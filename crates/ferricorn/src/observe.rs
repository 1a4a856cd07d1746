//! The binary's side of metrics: finished requests into the metrics board
//! and StatsD, `--slow-request-log`, and a `tracing` layer counting log
//! lines by level (gunicorn's `gunicorn.log.*`).

use std::sync::atomic::{AtomicU64, Ordering};

use ferricorn_master::metrics::{self, LogLevel, Observation};
use ferricorn_worker::RequestDone;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// `--slow-request-log` in milliseconds; 0 is off. Set in each worker
/// right after its fork, from the settings it was forked with.
static SLOW_MS: AtomicU64 = AtomicU64::new(0);

/// Sets the `--slow-request-log` threshold (seconds; 0 disables).
pub fn set_slow_request_log(seconds: u64) {
    SLOW_MS.store(seconds.saturating_mul(1000), Ordering::Relaxed);
}

/// A request finished in this worker.
pub fn request_done(done: &RequestDone<'_>) {
    let duration_ns = u64::try_from(done.elapsed.as_nanos()).unwrap_or(u64::MAX);
    metrics::observe(&Observation {
        method: Observation::method_index(done.method),
        status: done.status,
        secure: done.secure,
        version: Observation::version_index(done.protocol),
        duration_ns,
    });
    let slow = SLOW_MS.load(Ordering::Relaxed);
    if slow > 0 && done.elapsed.as_millis() > u128::from(slow) {
        tracing::warn!(
            "Slow request: \"{} {} {}\" {} took {:.3}s (pid:{})",
            done.method,
            String::from_utf8_lossy(done.target),
            done.protocol,
            done.status,
            done.elapsed.as_secs_f64(),
            std::process::id()
        );
    }
}

/// Counts warning, error, critical and exception lines.
pub struct LogCounter;

struct StartsWith(bool);

impl Visit for StartsWith {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let text = format!("{value:?}");
            self.0 = text.starts_with("Error handling request")
                || text.contains("Traceback (most recent call last)");
        }
    }
}

impl<S: Subscriber> Layer<S> for LogCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let level = match (metadata.target(), *metadata.level()) {
            ("ferricorn.access" | "wsgi.errors", _) => return,
            ("ferricorn.critical", _) => LogLevel::Critical,
            (_, Level::ERROR) => {
                let mut traceback = StartsWith(false);
                event.record(&mut traceback);
                if traceback.0 {
                    LogLevel::Exception
                } else {
                    LogLevel::Error
                }
            }
            (_, Level::WARN) => LogLevel::Warning,
            _ => return,
        };
        metrics::count_log(level);
    }
}
