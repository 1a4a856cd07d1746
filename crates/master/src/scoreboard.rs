//! The shared-memory scoreboard: one slot per worker, mapped before the
//! first fork, written by workers and read by the master about once a
//! second. It replaces gunicorn's heartbeat temp files (no `/tmp` writes, no
//! false timeouts on overlay file systems).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};

/// A worker's life stage, as recorded in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum WorkerState {
    /// The slot is free.
    Free = 0,
    /// Forked, importing the app.
    Booting = 1,
    /// Serving.
    Ready = 2,
}

/// How many in-flight requests of one worker are tracked for
/// `request_timeout`; requests beyond that (more app threads busy at once)
/// run untimed until an entry frees up.
pub const TRACKED_REQUESTS: usize = 16;
/// Words of request line kept per tracked request (8 bytes each).
const LINE_WORDS: usize = 6;

/// One tracked in-flight request: when it started (0: entry free) and the
/// first bytes of its request line, for the log. The line is written before
/// the start is published and only read for a log line, so a torn read
/// costs at most a garbled log; it never affects the timing.
#[repr(C)]
struct InFlight {
    started_ms: AtomicU64,
    line: [AtomicU64; LINE_WORDS],
}

/// One worker's slot. Every field is an atomic: the master and the worker
/// share it across processes.
///
/// In-flight requests (several at once in gthread/async) are a small fixed
/// array: a request claims a free entry by swapping its start time in, and
/// frees it when it ends; the master scans the entries for the oldest. No
/// locks, no allocation, one cache line or two per request.
#[repr(C)]
pub struct Slot {
    pid: AtomicI32,
    state: AtomicU32,
    last_beat_ms: AtomicU64,
    requests: AtomicU64,
    request_started_ms: AtomicU64,
    in_flight: [InFlight; TRACKED_REQUESTS],
}

/// Milliseconds on the system-wide monotonic clock (the same in every
/// process, unaffected by wall-clock changes).
pub fn monotonic_ms() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs * 1000 + nanos / 1_000_000
        }
        Err(_) => 0,
    }
}

impl Slot {
    /// Records that the worker's event loop is alive.
    pub fn beat(&self) {
        self.last_beat_ms.store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Marks the worker ready to serve.
    pub fn set_ready(&self) {
        self.beat();
        self.state
            .store(WorkerState::Ready as u32, Ordering::Release);
    }

    /// Records the start of a request whose request line is `line` (its
    /// parts, joined with spaces; only the first bytes are kept); returns
    /// the entry to pass to [`Slot::request_finished`], `None` when every
    /// entry is taken.
    pub fn request_started(&self, line: &[&[u8]]) -> Option<usize> {
        // Never 0, which marks a free entry.
        let now = monotonic_ms().max(1);
        self.request_started_ms.store(now, Ordering::Relaxed);
        let index = self.in_flight.iter().position(|entry| {
            entry
                .started_ms
                .compare_exchange(0, u64::MAX, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        let entry = &self.in_flight[index];
        for (word, chunk) in entry.line.iter().zip(line_words(line)) {
            word.store(chunk, Ordering::Relaxed);
        }
        // u64::MAX while the line was being written: not yet timed.
        entry.started_ms.store(now, Ordering::Release);
        Some(index)
    }

    /// Records the end of a request started with
    /// [`Slot::request_started`].
    pub fn request_finished(&self, entry: Option<usize>) {
        if let Some(entry) = entry.and_then(|index| self.in_flight.get(index)) {
            entry.started_ms.store(0, Ordering::Release);
        }
        self.request_started_ms.store(0, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.beat();
    }

    /// Milliseconds since the last sign of life.
    pub fn silent_for_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_beat_ms.load(Ordering::Relaxed))
    }

    /// How many tracked requests are running.
    pub fn requests_in_flight(&self) -> u64 {
        let running = self.in_flight.iter().filter(|entry| {
            let started = entry.started_ms.load(Ordering::Acquire);
            started != 0 && started != u64::MAX
        });
        running.count() as u64
    }

    /// The longest-running tracked request at `now`: how long it has run
    /// (ms) and the start of its request line.
    pub fn oldest_request(&self, now: u64) -> Option<(u64, String)> {
        let entry = self
            .in_flight
            .iter()
            .filter(|entry| {
                let started = entry.started_ms.load(Ordering::Acquire);
                started != 0 && started != u64::MAX
            })
            .min_by_key(|entry| entry.started_ms.load(Ordering::Acquire))?;
        let started = entry.started_ms.load(Ordering::Acquire);
        let bytes: Vec<u8> = entry
            .line
            .iter()
            .flat_map(|word| word.load(Ordering::Relaxed).to_le_bytes())
            .take_while(|&byte| byte != 0)
            .collect();
        Some((
            now.saturating_sub(started),
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }

    /// The worker's stage.
    pub fn state(&self) -> WorkerState {
        match self.state.load(Ordering::Acquire) {
            1 => WorkerState::Booting,
            2 => WorkerState::Ready,
            _ => WorkerState::Free,
        }
    }

    /// Requests this worker finished.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Records the pid of the worker using this slot.
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    fn claim(&self, pid: i32) {
        self.pid.store(pid, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.request_started_ms.store(0, Ordering::Relaxed);
        for entry in &self.in_flight {
            entry.started_ms.store(0, Ordering::Relaxed);
        }
        self.beat();
        self.state
            .store(WorkerState::Booting as u32, Ordering::Release);
    }

    fn release(&self) {
        self.pid.store(0, Ordering::Relaxed);
        self.state
            .store(WorkerState::Free as u32, Ordering::Release);
    }
}

/// The first `LINE_WORDS * 8` bytes of `parts` joined with spaces, packed
/// into words (NUL padded), without allocating.
fn line_words(parts: &[&[u8]]) -> [u64; LINE_WORDS] {
    let mut bytes = [0u8; LINE_WORDS * 8];
    let separated = parts
        .iter()
        .enumerate()
        .flat_map(|(i, part)| (i > 0).then_some(&b" "[..]).into_iter().chain([*part]))
        .flat_map(|piece| piece.iter().copied());
    for (slot, byte) in bytes.iter_mut().zip(separated) {
        *slot = byte;
    }
    let mut words = [0u64; LINE_WORDS];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        *word = u64::from_le_bytes(eight);
    }
    words
}

/// The mapped array of slots.
pub struct Scoreboard {
    slots: &'static [Slot],
}

/// A scoreboard mapping failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot map the worker scoreboard: {0}")]
pub struct ScoreboardError(nix::Error);

impl Scoreboard {
    /// Maps `capacity` slots of shared memory, inherited by every fork.
    pub fn new(capacity: usize) -> Result<Self, ScoreboardError> {
        let capacity = capacity.max(1);
        let bytes = capacity * std::mem::size_of::<Slot>();
        let length = NonZeroUsize::new(bytes).ok_or(ScoreboardError(nix::Error::EINVAL))?;
        // SAFETY: a fresh anonymous mapping aliases nothing; it is zeroed, and
        // all-zero bytes are a valid `Slot` (atomics of zero, state Free).
        // It is never unmapped, so the 'static slice stays valid.
        let slots = unsafe {
            let ptr = mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
            .map_err(ScoreboardError)?;
            std::slice::from_raw_parts(ptr.as_ptr().cast::<Slot>(), capacity)
        };
        Ok(Self { slots })
    }

    /// Another handle on the same mapping (for the exporter process).
    pub fn share(&self) -> Self {
        Self { slots: self.slots }
    }

    /// A free slot's index, if any.
    pub fn free_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.state() == WorkerState::Free)
    }

    /// The slot at `index`.
    pub fn slot(&self, index: usize) -> &'static Slot {
        &self.slots[index]
    }

    /// Gives slot `index` to the worker `pid`.
    pub fn claim(&self, index: usize, pid: i32) {
        self.slots[index].claim(pid);
    }

    /// Frees slot `index` after its worker exited.
    pub fn release(&self, index: usize) {
        self.slots[index].release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_with_a_forked_child() {
        let board = Scoreboard::new(4).unwrap();
        let index = board.free_slot().unwrap();
        board.claim(index, 1);
        // SAFETY: the test harness may run other threads, so the child does
        // nothing but touch the shared mapping and call `_exit`.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                board.slot(index).set_ready();
                board.slot(index).request_finished(None);
                // SAFETY: leaving the child without running the harness.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        assert_eq!(board.slot(index).state(), WorkerState::Ready);
        assert_eq!(board.slot(index).requests(), 1);
        board.release(index);
        assert_eq!(board.slot(index).state(), WorkerState::Free);
    }

    #[test]
    fn in_flight_requests_report_the_oldest_with_its_line() {
        let board = Scoreboard::new(1).unwrap();
        board.claim(0, 1);
        let slot = board.slot(0);
        assert!(slot.oldest_request(monotonic_ms()).is_none());
        let first = slot.request_started(&[b"GET", b"/slow?x=1", b"HTTP/1.1"]);
        let second = slot.request_started(&[b"POST", &[b'a'; 100], b"HTTP/1.1"]);
        assert_ne!(first, second);
        let (age, line) = slot.oldest_request(monotonic_ms() + 5000).unwrap();
        assert!(age >= 5000);
        assert!(
            line == "GET /slow?x=1 HTTP/1.1" || line.starts_with("POST aaa"),
            "{line}"
        );
        slot.request_finished(first);
        let (_, line) = slot.oldest_request(monotonic_ms()).unwrap();
        assert_eq!(line.len(), LINE_WORDS * 8);
        slot.request_finished(second);
        assert!(slot.oldest_request(monotonic_ms()).is_none());
        let taken: Vec<_> = (0..TRACKED_REQUESTS + 1)
            .map(|_| slot.request_started(&[b"GET"]))
            .collect();
        assert!(taken[..TRACKED_REQUESTS].iter().all(Option::is_some));
        assert_eq!(taken[TRACKED_REQUESTS], None);
    }
}
