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

/// One worker's slot. Every field is an atomic: the master and the worker
/// share it across processes.
#[repr(C)]
pub struct Slot {
    pid: AtomicI32,
    state: AtomicU32,
    last_beat_ms: AtomicU64,
    requests: AtomicU64,
    request_started_ms: AtomicU64,
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

    /// Records the start of a request.
    pub fn request_started(&self) {
        self.request_started_ms
            .store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Records the end of a request.
    pub fn request_finished(&self) {
        self.request_started_ms.store(0, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.beat();
    }

    /// Milliseconds since the last sign of life.
    pub fn silent_for_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_beat_ms.load(Ordering::Relaxed))
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

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.slots.len()
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
                board.slot(index).request_finished();
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
}
