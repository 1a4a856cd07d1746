//! The master's signals, delivered through a self-pipe.
//!
//! Handlers only write the signal number into a non-blocking pipe; the
//! arbiter loop reads it and acts outside signal context. The master keeps
//! a single thread, so no signal can land on a helper thread.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// The signals the master acts on.
pub const HANDLED: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just drops
        // the byte, and the loop wakes up anyway.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// The read end of the self-pipe, with the handlers installed. Dropping it
/// puts back the handlers it replaced (Python's, in the `python` process
/// that ferricorn runs in).
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    previous: Vec<(Signal, SigAction)>,
}

impl SignalPipe {
    /// Creates the pipe and installs the handlers.
    pub fn install() -> nix::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        WAKE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::with_capacity(HANDLED.len());
        for signal in HANDLED {
            // SAFETY: the handler only calls the async-signal-safe write(2).
            previous.push((signal, unsafe { sigaction(signal, &action) }?));
        }
        Ok(Self {
            read,
            write,
            previous,
        })
    }

    /// Waits up to `timeout` for signals and returns those that arrived,
    /// in order, without duplicates of `SIGCHLD`.
    pub fn wait(&self, timeout: Duration) -> Vec<Signal> {
        self.wait_with(timeout, &[])
    }

    /// [`SignalPipe::wait`] that also wakes up when one of `extra` is
    /// readable (or, when its flag is set, writable): the control socket's
    /// descriptors, served from the same loop.
    pub fn wait_with(&self, timeout: Duration, extra: &[(RawFd, bool)]) -> Vec<Signal> {
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = vec![PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
        for &(fd, writable) in extra {
            let flags = if writable {
                PollFlags::POLLIN | PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            // SAFETY: the caller owns these descriptors and keeps them open
            // for the duration of this call.
            fds.push(PollFd::new(unsafe { BorrowedFd::borrow_raw(fd) }, flags));
        }
        let _ = poll(&mut fds, PollTimeout::from(millis));
        let mut received = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.read.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            for &byte in &buf[..n] {
                if let Ok(signal) = Signal::try_from(i32::from(byte)) {
                    if signal != Signal::SIGCHLD || !received.contains(&signal) {
                        received.push(signal);
                    }
                }
            }
        }
        received
    }

    /// Blocks the master's signals around a `fork()` and returns the mask
    /// to restore with [`restore_mask`]. Without it, a signal sent to the
    /// child between the fork and [`SignalPipe::reset_in_child`] would run
    /// the master's handler in the child: the child would swallow a `TERM`
    /// (writing it to the master's pipe) and keep booting. Blocked, it stays
    /// pending and is delivered once the child has its own dispositions.
    pub fn block_for_fork() -> SigSet {
        let mut blocked = SigSet::empty();
        for signal in HANDLED {
            blocked.add(signal);
        }
        blocked
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .unwrap_or_else(|_| SigSet::empty())
    }

    /// In a freshly forked worker: restores default dispositions and closes
    /// the pipe, so the worker neither wakes the master nor inherits its
    /// handlers.
    pub fn reset_in_child(&self) {
        WAKE_FD.store(-1, Ordering::Relaxed);
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for signal in HANDLED {
            // SAFETY: restoring the default disposition has no preconditions.
            let _ = unsafe { sigaction(signal, &default) };
        }
        // The child never returns to drop `self`; close the copies now.
        // (The caller then restores the mask; pending signals arrive with
        // the default dispositions set here.)
        let _ = nix::unistd::close(self.read.as_raw_fd());
        let _ = nix::unistd::close(self.write.as_raw_fd());
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (signal, action) in &self.previous {
            // SAFETY: reinstating the disposition that was in place before
            // `install`, which its owner set up to be valid.
            let _ = unsafe { sigaction(*signal, action) };
        }
        WAKE_FD.store(-1, Ordering::Relaxed);
    }
}

/// Restores the signal mask saved by [`SignalPipe::block_for_fork`].
pub fn restore_mask(saved: SigSet) {
    let _ = saved.thread_set_mask();
}
