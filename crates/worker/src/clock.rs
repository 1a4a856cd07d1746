//! Wall-clock helpers: the `Date` header, cached for the current second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Appends the `Date` header for now to `head`; the value is formatted at
/// most once a second per thread and copied from the cache, not cloned.
pub fn write_date_header(head: &mut Vec<u8>) {
    let now = unix_now();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            *cached = (now, ferricorn_http::response::http_date(now));
        }
        ferricorn_http::response::write_header(head, "Date", &cached.1);
    })
}
