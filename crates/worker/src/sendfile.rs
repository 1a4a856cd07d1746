//! `--no-sendfile` (gunicorn's `sendfile` setting, or `SENDFILE=0`): whether
//! `wsgi.file_wrapper` files go out with `sendfile()` or are read and
//! written like any other body. One switch per worker process, set at boot
//! before the first request, so the response path only reads an atomic.

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Sets the switch from the configuration.
pub(crate) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether responses may use `sendfile()`.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
