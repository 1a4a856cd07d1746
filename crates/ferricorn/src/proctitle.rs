//! Process titles visible in `ps -o args` (`ferricorn: master [app]`), set
//! by overwriting the memory of the process's argv strings, as
//! setproctitle does (without borrowing the environment's space: a title
//! longer than the original command line is truncated).
//!
//! glibc passes `argc`/`argv` to `.init_array` functions, also those of a
//! shared object loaded later (this extension module); [`capture`] keeps
//! where the argv strings live. Other C libraries (musl) pass nothing, and
//! titles stay unchanged there. Read the arguments (`std::env::args_os`)
//! before setting a title: afterwards they read back the title.

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static AREA_START: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static AREA_LEN: AtomicUsize = AtomicUsize::new(0);

#[cfg(target_env = "gnu")]
#[used]
#[link_section = ".init_array"]
static CAPTURE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = capture;

/// Records the contiguous area of the argv strings (from the first to the
/// terminating NUL of the last one that directly follows its predecessor).
#[cfg(target_env = "gnu")]
extern "C" fn capture(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    let Ok(count) = usize::try_from(argc) else {
        return;
    };
    if count == 0 || argv.is_null() {
        return;
    }
    // SAFETY: glibc calls .init_array functions with the process's real
    // argc/argv: `count` valid pointers to NUL-terminated strings.
    unsafe {
        let start = *argv;
        if start.is_null() {
            return;
        }
        let mut end = start.add(libc::strlen(start));
        for index in 1..count {
            let next = *argv.add(index);
            // Only strings laid out back to back belong to the area.
            if next != end.add(1) {
                break;
            }
            end = next.add(libc::strlen(next));
        }
        // Including the final NUL.
        let len = usize::try_from(end.offset_from(start)).unwrap_or(0) + 1;
        AREA_START.store(start.cast_mut().cast(), Ordering::Relaxed);
        AREA_LEN.store(len, Ordering::Relaxed);
    }
}

/// Shows `title` as this process's command line (truncated to fit).
pub fn set(title: &str) {
    let start = AREA_START.load(Ordering::Relaxed);
    let len = AREA_LEN.load(Ordering::Relaxed);
    if start.is_null() || len < 2 {
        return;
    }
    // SAFETY: [start, start + len) is the argv string area of this
    // process, writable and owned by it for its whole life; no Rust
    // reference to it exists (std reads it only through raw pointers).
    let area = unsafe { std::slice::from_raw_parts_mut(start, len) };
    let bytes = title.as_bytes();
    let copied = bytes.len().min(len - 1);
    area[..copied].copy_from_slice(&bytes[..copied]);
    area[copied..].fill(0);
}

/// The name in titles: `--name`, else the app.
pub fn name(settings: &ferricorn_config::Settings) -> &str {
    settings
        .proc_name
        .as_deref()
        .or(settings.wsgi_app.as_deref())
        .unwrap_or("ferricorn")
}
