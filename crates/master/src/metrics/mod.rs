//! Metrics: the shared counters ([`board`]), the Prometheus exporter
//! process ([`exporter`]) and StatsD ([`statsd`]).
//!
//! The board is process-global: the master maps it before the first fork
//! ([`install`]), every child inherits it, and a worker learns its slot
//! right after its fork ([`enter_worker`]). Request-path hooks
//! ([`observe`], [`request_started`], …) are no-ops until then.

pub mod backlog;
pub mod board;
pub mod exporter;
pub mod statsd;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub use board::{AbortReason, Board, ExitReason, Gauges, LogLevel, Observation};

static BOARD: OnceLock<Board> = OnceLock::new();
/// This process's slot; `usize::MAX` in the master (and the exporter).
static SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Maps the board for `capacity` worker slots (in the master, once).
pub fn install(capacity: usize) -> Result<&'static Board, board::BoardError> {
    if let Some(board) = BOARD.get() {
        return Ok(board);
    }
    let board = Board::new(capacity)?;
    Ok(BOARD.get_or_init(|| board))
}

/// The board, once installed.
pub fn board() -> Option<&'static Board> {
    BOARD.get()
}

/// In a freshly forked worker: its counters go to `slot`.
pub fn enter_worker(slot: usize) {
    SLOT.store(slot, Ordering::Relaxed);
}

fn worker_slot() -> Option<usize> {
    Some(SLOT.load(Ordering::Relaxed)).filter(|&s| s != usize::MAX)
}

/// A request was handed to the app in this worker.
pub fn request_started() {
    if let (Some(board), Some(slot)) = (board(), worker_slot()) {
        board.request_started(slot);
    }
}

/// The app returned for a request of this worker.
pub fn request_ended() {
    if let (Some(board), Some(slot)) = (board(), worker_slot()) {
        board.request_ended(slot);
    }
}

/// A request finished in this worker: histogram and StatsD.
pub fn observe(observation: &Observation) {
    if let (Some(board), Some(slot)) = (board(), worker_slot()) {
        board.observe(slot, observation);
    }
    statsd::request(observation);
}

/// A log line at `level` in this process.
pub fn count_log(level: LogLevel) {
    if let Some(board) = board() {
        board.count_log(worker_slot(), level);
    }
    statsd::log(level);
}
