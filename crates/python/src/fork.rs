//! `fork()` in a process that runs Python, done the way `os.fork()` does it.
//!
//! The master is a `python` process (ferricorn is an extension module).
//! Around each fork it must take the GIL and run CPython's fork handlers
//! (`PyOS_BeforeFork`, then `PyOS_AfterFork_Parent` or
//! `PyOS_AfterFork_Child`): they reset the child's locks and threads and run
//! `os.register_at_fork` callbacks, which is what reseeds `random` in each
//! worker. Between forks the GIL stays released.

use pyo3::ffi;

/// The GIL held across one `fork()`; consume it with [`ForkGuard::parent`]
/// or [`ForkGuard::child`] on the matching side.
pub struct ForkGuard(ffi::PyGILState_STATE);

impl ForkGuard {
    /// Takes the GIL and runs `PyOS_BeforeFork`; `None` when this process
    /// has no interpreter (then there is nothing to do).
    pub fn before() -> Option<Self> {
        // SAFETY: FFI. Py_IsInitialized may be called at any time; the
        // other calls require a running interpreter, which it confirms, and
        // PyOS_BeforeFork requires the GIL, which PyGILState_Ensure takes.
        unsafe {
            if ffi::Py_IsInitialized() == 0 {
                return None;
            }
            let state = ffi::PyGILState_Ensure();
            ffi::PyOS_BeforeFork();
            Some(Self(state))
        }
    }

    /// In the parent after `fork()`: CPython's parent handlers, then the
    /// GIL is released again.
    pub fn parent(self) {
        // SAFETY: FFI; this thread holds the GIL taken in `before`.
        unsafe {
            ffi::PyOS_AfterFork_Parent();
            ffi::PyGILState_Release(self.0);
        }
    }

    /// In the child after `fork()`: CPython's child handlers (fresh locks,
    /// reseeded `random`, …), then the GIL is released, so that any thread
    /// of the worker can attach.
    pub fn child(self) {
        // SAFETY: FFI; the forking thread, the only one in the child, holds
        // the GIL taken in `before`.
        unsafe {
            ffi::PyOS_AfterFork_Child();
            ffi::PyGILState_Release(self.0);
        }
    }
}
