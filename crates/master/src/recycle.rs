//! Why a healthy worker gets replaced: its request limit (`max_requests`
//! plus a per-worker jitter) and its resident memory (`max_worker_memory`).
//! The arbiter only asks; replacing is its phased start-then-stop.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a worker is being replaced while still healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// A `HUP` (or a code reload) made it outdated.
    Outdated,
    /// It served its `max_requests`.
    MaxRequests,
    /// Its resident memory passed `max_worker_memory`.
    Memory,
    /// One of its requests ran past `request_timeout`.
    RequestTimeout,
}

/// A small xorshift generator for the jitter: no dependency, and fairness
/// between workers is all that matters (gunicorn uses `random.randint`).
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and the pid.
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self((nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }

    /// A request limit for a new worker: `max_requests + random(0..=jitter)`,
    /// or 0 (no limit) when `max_requests` is 0.
    pub fn limit(&mut self, max_requests: u64, jitter: u64) -> u64 {
        if max_requests == 0 {
            return 0;
        }
        if jitter == 0 {
            return max_requests;
        }
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        max_requests.saturating_add(x % jitter.saturating_add(1))
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

/// The resident set size of process `pid` in bytes, from `/proc/PID/statm`
/// (second field, in pages); `None` when it cannot be read (e.g. it exited).
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(4096);
    Some(pages.saturating_mul(page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_stay_within_the_jitter() {
        let mut jitter = Jitter::new();
        assert_eq!(jitter.limit(0, 10), 0);
        assert_eq!(jitter.limit(50, 0), 50);
        let limits: Vec<u64> = (0..200).map(|_| jitter.limit(50, 10)).collect();
        assert!(limits.iter().all(|&n| (50..=60).contains(&n)));
        assert!(limits.iter().any(|&n| n != limits[0]), "no variation");
    }

    #[test]
    fn own_rss_is_readable() {
        let pid = i32::try_from(std::process::id()).unwrap();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert_eq!(rss_bytes(i32::MAX), None);
    }
}
