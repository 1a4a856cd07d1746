//! The metrics board: a shared anonymous mapping beside the scoreboard,
//! mapped before the first fork. Each worker slot has a block written only
//! by its worker (relaxed atomics: no locks, no allocation on the request
//! path); the master block is written only by the master. The exporter
//! process reads both at scrape time.
//!
//! Totals never go backwards when workers are replaced: before a slot is
//! reused, the master folds its counters into the retired accumulator and
//! clears it, inside a seqlock (odd = folding) that readers retry on.
//! Labelled histograms live in fixed-size series tables (a packed label key
//! claimed by compare-and-swap); label combinations past a table's size go
//! to one overflow series, so memory is bounded whatever the traffic.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};

/// `http.server.request.duration` bucket bounds (OpenTelemetry semconv), seconds.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const BUCKET_NS: [u64; 14] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    7_500_000_000,
    10_000_000_000,
];
const SLOT_SERIES: usize = 32;
const RETIRED_SERIES: usize = 256;

/// Known HTTP methods (semconv); anything else is `_OTHER`.
pub const METHODS: [&str; 10] = [
    "_OTHER", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
/// `network.protocol.version` values.
pub const VERSIONS: [&str; 3] = ["1.0", "1.1", "2"];

/// Log levels counted (gunicorn's `gunicorn.log.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `critical`.
    Critical = 0,
    /// `error`.
    Error = 1,
    /// `warning`.
    Warning = 2,
    /// `exception` (an error carrying a traceback).
    Exception = 3,
}
/// Names of [`LogLevel`] in index order.
pub const LOG_LEVELS: [&str; 4] = ["critical", "error", "warning", "exception"];

/// Why a worker exited, for `ferricorn_worker_exits_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Replaced by a reload (`HUP`, `--reload`).
    Reload = 0,
    /// Served its `max_requests`.
    MaxRequests = 1,
    /// Passed `max_worker_memory`.
    Memory = 2,
    /// A request ran past `request_timeout`.
    RequestTimeout = 3,
    /// Silent past `timeout` (`WORKER TIMEOUT`).
    Timeout = 4,
    /// Not ready within `timeout` of its fork.
    BootTimeout = 5,
    /// Fewer workers wanted (`TTOU`, `worker remove`).
    ScaleDown = 6,
    /// Stopped with the server.
    Shutdown = 7,
    /// Exited on its own or was killed by someone else.
    Crash = 8,
    /// Stopped by the control socket's `worker kill PID`.
    Killed = 9,
}
/// Names of [`ExitReason`] in index order.
pub const EXIT_REASONS: [&str; 10] = [
    "reload",
    "max_requests",
    "memory",
    "request_timeout",
    "timeout",
    "boot_timeout",
    "scale_down",
    "shutdown",
    "crash",
    "killed",
];

/// Why the master gave up on a request, for
/// `ferricorn_requests_aborted_total{reason}`. (A request past
/// `request_timeout` is not one: its worker is replaced, but it may still
/// finish; see `ferricorn_worker_exits_total{reason="request_timeout"}`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// Its worker went silent past `timeout` and was killed.
    WorkerTimeout = 0,
}
/// Names of [`AbortReason`] in index order.
pub const ABORT_REASONS: [&str; 1] = ["worker_timeout"];

/// What one finished request contributes.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Index into [`METHODS`].
    pub method: usize,
    /// Response status (0 when none was sent).
    pub status: u16,
    /// `https`.
    pub secure: bool,
    /// Index into [`VERSIONS`].
    pub version: usize,
    /// Head parsed → response finished, in nanoseconds.
    pub duration_ns: u64,
}

impl Observation {
    /// Index of `method` in [`METHODS`] (0, `_OTHER`, when unknown).
    pub fn method_index(method: &str) -> usize {
        METHODS[1..]
            .iter()
            .position(|m| *m == method)
            .map_or(0, |i| i + 1)
    }

    /// Index of an `HTTP/x.y` protocol in [`VERSIONS`].
    pub fn version_index(protocol: &str) -> usize {
        match protocol {
            "HTTP/1.0" => 0,
            "HTTP/2" | "HTTP/2.0" => 2,
            _ => 1,
        }
    }

    /// The packed, never-zero series key.
    fn key(&self) -> u64 {
        let status = u64::from(self.status.min(999));
        1 << 63
            | (self.method as u64) << 16
            | status << 4
            | u64::from(self.secure) << 2
            | self.version as u64
    }
}

/// Labels of a series key; `None` for the overflow series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels {
    /// Index into [`METHODS`].
    pub method: usize,
    /// Status code.
    pub status: u16,
    /// `https`.
    pub secure: bool,
    /// Index into [`VERSIONS`].
    pub version: usize,
}

fn labels(key: u64) -> Labels {
    Labels {
        method: ((key >> 16) & 0xf) as usize % METHODS.len(),
        status: ((key >> 4) & 0x3ff) as u16,
        secure: (key >> 2) & 1 == 1,
        version: (key & 3) as usize % VERSIONS.len(),
    }
}

#[repr(C)]
struct Series {
    key: AtomicU64,
    count: AtomicU64,
    sum_ns: AtomicU64,
    buckets: [AtomicU64; 15],
}

impl Series {
    fn add(&self, duration_ns: u64) {
        let bucket = BUCKET_NS
            .iter()
            .position(|&bound| duration_ns <= bound)
            .unwrap_or(BUCKET_NS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(duration_ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        let mut histogram = Histogram {
            count: self.count.load(Ordering::Relaxed),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            buckets: [0; 15],
        };
        for (out, bucket) in histogram.buckets.iter_mut().zip(&self.buckets) {
            *out = bucket.load(Ordering::Relaxed);
        }
        histogram
    }

    fn clear(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.sum_ns.store(0, Ordering::Relaxed);
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
        self.key.store(0, Ordering::Release);
    }

    fn absorb(&self, other: &Histogram) {
        self.count.fetch_add(other.count, Ordering::Relaxed);
        self.sum_ns.fetch_add(other.sum_ns, Ordering::Relaxed);
        for (bucket, n) in self.buckets.iter().zip(other.buckets) {
            bucket.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// One series' values: count, sum, and per-bucket (non-cumulative) counts,
/// the last one past every bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations.
    pub count: u64,
    /// Their sum, in nanoseconds.
    pub sum_ns: u64,
    /// Observations per bucket, not cumulative.
    pub buckets: [u64; 15],
}

impl Histogram {
    fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }
}

/// Finds or claims the series for `key` in `table`.
fn series_for(table: &[Series], key: u64) -> Option<&Series> {
    for series in table {
        let current = series.key.load(Ordering::Acquire);
        if current == key {
            return Some(series);
        }
        if current == 0 {
            match series
                .key
                .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(series),
                Err(actual) if actual == key => return Some(series),
                Err(_) => {}
            }
        }
    }
    None
}

/// One worker's counters, written by that worker only.
#[repr(C)]
struct SlotBlock {
    pid: AtomicI32,
    active: AtomicI64,
    requests: AtomicU64,
    log: [AtomicU64; 4],
    overflow: Series,
    series: [Series; SLOT_SERIES],
}

/// The master's block.
#[repr(C)]
struct MasterBlock {
    beat_ms: AtomicU64,
    started_unix: AtomicU64,
    target: AtomicU64,
    booting: AtomicU64,
    ready: AtomicU64,
    stopping: AtomicU64,
    per_worker_capacity: AtomicU64,
    draining: AtomicU64,
    high_water: AtomicU64,
    spawns: AtomicU64,
    exits: [AtomicU64; 10],
    reloads: AtomicU64,
    aborted: [AtomicU64; 1],
    log: [AtomicU64; 4],
    backlog: AtomicU64,
    seq: AtomicU64,
    retired_requests: AtomicU64,
    retired_log: [AtomicU64; 4],
    retired_overflow: Series,
    retired: [Series; RETIRED_SERIES],
}

/// The mapped board.
pub struct Board {
    master: &'static MasterBlock,
    slots: &'static [SlotBlock],
}

/// A consistent read of every counter, for one scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Histograms by labels (overflow under `None`).
    pub series: std::collections::BTreeMap<Option<Labels>, Histogram>,
    /// Requests finished by every worker ever.
    pub requests: u64,
    /// Requests in flight now.
    pub active: u64,
    /// Live workers with at least one request in flight.
    pub busy: u64,
    /// Log lines by [`LOG_LEVELS`] index, every process.
    pub log: [u64; 4],
    /// Live workers: (slot, pid, requests, active).
    pub workers: Vec<(usize, i32, u64, i64)>,
}

/// Master-side gauges, published every loop round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// The target number of workers.
    pub target: u64,
    /// Workers importing the app.
    pub booting: u64,
    /// Workers serving.
    pub ready: u64,
    /// Workers finishing before exit.
    pub stopping: u64,
    /// Requests one ready worker serves at once.
    pub per_worker_capacity: u64,
}

/// The master's own values, read by the exporter.
#[derive(Debug, Default, Clone)]
pub struct MasterView {
    /// Gauges as last published.
    pub gauges: Gauges,
    /// Milliseconds (monotonic) of the master's last loop round.
    pub beat_ms: u64,
    /// When the master started, seconds since the epoch.
    pub started_unix: u64,
    /// The master is stopping or in `--shutdown-delay`.
    pub draining: bool,
    /// Workers forked.
    pub spawns: u64,
    /// Exits by [`EXIT_REASONS`] index.
    pub exits: [u64; 10],
    /// Reloads.
    pub reloads: u64,
    /// Requests given up on, by [`ABORT_REASONS`] index.
    pub aborted: [u64; 1],
    /// Accept queue length as last measured.
    pub backlog: u64,
}

/// The metrics board could not be mapped.
#[derive(Debug, thiserror::Error)]
#[error("cannot map the metrics board: {0}")]
pub struct BoardError(nix::Error);

impl Board {
    /// Maps a master block and `capacity` slot blocks, inherited by every fork.
    pub fn new(capacity: usize) -> Result<Self, BoardError> {
        let capacity = capacity.max(1);
        let master = std::mem::size_of::<MasterBlock>();
        let slot = std::mem::size_of::<SlotBlock>();
        // Slot blocks start on an 8-byte boundary (every field is 8-aligned
        // but `pid`, and both structs are repr(C) with 8-byte alignment).
        let offset = master.div_ceil(8) * 8;
        let bytes = offset + capacity * slot;
        let length = NonZeroUsize::new(bytes).ok_or(BoardError(nix::Error::EINVAL))?;
        // SAFETY: a fresh anonymous mapping aliases nothing and is zeroed;
        // all-zero bytes are valid for these structs of atomics. It is never
        // unmapped, so the 'static references stay valid; `offset` keeps the
        // slot array aligned (the mapping itself is page-aligned).
        unsafe {
            let ptr = mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
            .map_err(BoardError)?;
            let base = ptr.as_ptr().cast::<u8>();
            let master = &*base.cast::<MasterBlock>();
            let slots = std::slice::from_raw_parts(base.add(offset).cast::<SlotBlock>(), capacity);
            Ok(Self { master, slots })
        }
    }

    fn slot(&self, index: usize) -> Option<&'static SlotBlock> {
        self.slots.get(index)
    }

    /// A worker's request started.
    pub fn request_started(&self, slot: usize) {
        if let Some(block) = self.slot(slot) {
            block.active.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A worker's request ended (the app returned).
    pub fn request_ended(&self, slot: usize) {
        if let Some(block) = self.slot(slot) {
            block.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A worker finished a request with `observation`.
    pub fn observe(&self, slot: usize, observation: &Observation) {
        let Some(block) = self.slot(slot) else { return };
        let series = series_for(&block.series, observation.key()).unwrap_or(&block.overflow);
        series.add(observation.duration_ns);
        block.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A log line at `level` in worker `slot` (`None`: the master).
    pub fn count_log(&self, slot: Option<usize>, level: LogLevel) {
        let counter = match slot.and_then(|s| self.slot(s)) {
            Some(block) => &block.log[level as usize],
            None => &self.master.log[level as usize],
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The master gives `slot` to worker `pid` (its counters are clear).
    pub fn claim(&self, slot: usize, pid: i32) {
        let Some(block) = self.slot(slot) else { return };
        block.pid.store(pid, Ordering::Relaxed);
        let high = u64::try_from(slot + 1).unwrap_or(u64::MAX);
        self.master.high_water.fetch_max(high, Ordering::Relaxed);
        self.master.spawns.fetch_add(1, Ordering::Relaxed);
    }

    /// The master reaped the worker of `slot`: folds its counters into the
    /// retired accumulator and clears the slot, under the seqlock.
    pub fn retire(&self, slot: usize, reason: ExitReason) {
        self.master.exits[reason as usize].fetch_add(1, Ordering::Relaxed);
        let Some(block) = self.slot(slot) else { return };
        let m = self.master;
        m.seq.fetch_add(1, Ordering::AcqRel);
        for series in block.series.iter().chain([&block.overflow]) {
            let key = series.key.load(Ordering::Acquire);
            let values = series.snapshot();
            if values.count > 0 {
                let target = if key == 0 {
                    &m.retired_overflow
                } else {
                    series_for(&m.retired, key).unwrap_or(&m.retired_overflow)
                };
                target.absorb(&values);
            }
            series.clear();
        }
        m.retired_requests
            .fetch_add(block.requests.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        for (retired, live) in m.retired_log.iter().zip(&block.log) {
            retired.fetch_add(live.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        block.active.store(0, Ordering::Relaxed);
        block.pid.store(0, Ordering::Relaxed);
        m.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// Publishes the master's gauges and loop heartbeat.
    pub fn publish(&self, gauges: Gauges, now_ms: u64) {
        let m = self.master;
        m.target.store(gauges.target, Ordering::Relaxed);
        m.booting.store(gauges.booting, Ordering::Relaxed);
        m.ready.store(gauges.ready, Ordering::Relaxed);
        m.stopping.store(gauges.stopping, Ordering::Relaxed);
        m.per_worker_capacity
            .store(gauges.per_worker_capacity, Ordering::Relaxed);
        m.beat_ms.store(now_ms, Ordering::Release);
    }

    /// Records the master's start time.
    pub fn set_started(&self, unix: u64) {
        self.master.started_unix.store(unix, Ordering::Relaxed);
    }

    /// Marks the server as draining (shutdown delay or stop): not ready.
    pub fn set_draining(&self) {
        self.master.draining.store(1, Ordering::Release);
    }

    /// Counts a reload.
    pub fn count_reload(&self) {
        self.master.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `requests` the master gave up on for `reason`.
    pub fn count_aborted(&self, reason: AbortReason, requests: u64) {
        self.master.aborted[reason as usize].fetch_add(requests, Ordering::Relaxed);
    }

    /// Records the accept queue length.
    pub fn set_backlog(&self, backlog: u64) {
        self.master.backlog.store(backlog, Ordering::Relaxed);
    }

    /// The master's values.
    pub fn master_view(&self) -> MasterView {
        let m = self.master;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut exits = [0; 10];
        for (out, counter) in exits.iter_mut().zip(&m.exits) {
            *out = load(counter);
        }
        MasterView {
            gauges: Gauges {
                target: load(&m.target),
                booting: load(&m.booting),
                ready: load(&m.ready),
                stopping: load(&m.stopping),
                per_worker_capacity: load(&m.per_worker_capacity),
            },
            beat_ms: m.beat_ms.load(Ordering::Acquire),
            started_unix: load(&m.started_unix),
            draining: m.draining.load(Ordering::Acquire) != 0,
            spawns: load(&m.spawns),
            exits,
            reloads: load(&m.reloads),
            aborted: [load(&m.aborted[0])],
            backlog: load(&m.backlog),
        }
    }

    /// Requests finished, all workers, retired included (the master's
    /// `show stats` and StatsD use it).
    pub fn requests_total(&self) -> u64 {
        self.snapshot().requests
    }

    /// Every counter, consistent with respect to folds.
    pub fn snapshot(&self) -> Snapshot {
        loop {
            let before = self.master.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let snapshot = self.read();
            if self.master.seq.load(Ordering::Acquire) == before {
                return snapshot;
            }
        }
    }

    fn read(&self) -> Snapshot {
        let m = self.master;
        let mut out = Snapshot {
            requests: m.retired_requests.load(Ordering::Relaxed),
            ..Snapshot::default()
        };
        for (i, (retired, own)) in m.retired_log.iter().zip(&m.log).enumerate() {
            out.log[i] = retired.load(Ordering::Relaxed) + own.load(Ordering::Relaxed);
        }
        let mut add = |key: u64, values: Histogram| {
            if values.count == 0 {
                return;
            }
            let labels = (key != 0).then(|| labels(key));
            out.series.entry(labels).or_default().merge(&values);
        };
        add(0, m.retired_overflow.snapshot());
        for series in &m.retired {
            add(series.key.load(Ordering::Acquire), series.snapshot());
        }
        let high = usize::try_from(m.high_water.load(Ordering::Relaxed)).unwrap_or(0);
        for (index, block) in self.slots.iter().take(high).enumerate() {
            add(0, block.overflow.snapshot());
            for series in &block.series {
                add(series.key.load(Ordering::Acquire), series.snapshot());
            }
            out.requests += block.requests.load(Ordering::Relaxed);
            for (total, counter) in out.log.iter_mut().zip(&block.log) {
                *total += counter.load(Ordering::Relaxed);
            }
            let pid = block.pid.load(Ordering::Relaxed);
            if pid != 0 {
                let active = block.active.load(Ordering::Relaxed);
                let requests = block.requests.load(Ordering::Relaxed);
                out.active += u64::try_from(active).unwrap_or(0);
                out.busy += u64::from(active > 0);
                out.workers.push((index, pid, requests, active));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: &str, status: u16, ms: u64) -> Observation {
        Observation {
            method: Observation::method_index(method),
            status,
            secure: false,
            version: 1,
            duration_ns: ms * 1_000_000,
        }
    }

    #[test]
    fn totals_survive_retiring_and_tables_stay_bounded() {
        let board = Board::new(2).unwrap();
        board.claim(0, 11);
        board.observe(0, &get("GET", 200, 3));
        board.observe(0, &get("GET", 200, 300));
        board.observe(0, &get("PURGE", 404, 20_000));
        let before = board.snapshot();
        assert_eq!(before.requests, 3);
        let get200 = Labels {
            method: 1,
            status: 200,
            secure: false,
            version: 1,
        };
        let h = before.series[&Some(get200)];
        assert_eq!((h.count, h.buckets[0], h.buckets[7]), (2, 1, 1));
        let other = Labels {
            method: 0,
            status: 404,
            secure: false,
            version: 1,
        };
        assert_eq!(before.series[&Some(other)].buckets[14], 1);
        board.retire(0, ExitReason::MaxRequests);
        board.claim(0, 12);
        board.observe(0, &get("GET", 200, 1));
        let after = board.snapshot();
        assert_eq!(after.requests, 4);
        assert_eq!(after.series[&Some(get200)].count, 3);
        assert_eq!(
            board.master_view().exits[ExitReason::MaxRequests as usize],
            1
        );
        // Many label combinations: the rest lands in the overflow series.
        board.claim(1, 13);
        for status in 100..200 {
            board.observe(1, &get("GET", status, 1));
        }
        let many = board.snapshot();
        assert_eq!(many.series[&None].count, 100 - SLOT_SERIES as u64);
        assert_eq!(many.requests, 104);
    }
}
