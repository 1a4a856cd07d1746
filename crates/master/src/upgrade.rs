//! Binary upgrades (`USR2`) and inherited listeners.
//!
//! On `USR2` the master forks and execs the command line it was started
//! with (for the Python package: `sys.executable` and its original
//! arguments, so the ferricorn installed now); the listening sockets survive the exec
//! (close-on-exec cleared in the child only) and are named in
//! `FERRICORN_FD`. The new master serves them with its own workers while the
//! old one keeps running until told `WINCH` (stop its workers) or `TERM`.
//! systemd socket activation (`LISTEN_FDS`/`LISTEN_PID`) hands sockets over
//! the same way.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::unistd::{fork, ForkResult, Pid};

use crate::listeners::{from_fd, BindError, BoundListener};

/// Comma-separated listener descriptors handed to an upgraded master.
pub const FD_VAR: &str = "FERRICORN_FD";
/// The pid of the master that started this one with `USR2`.
pub const PARENT_VAR: &str = "FERRICORN_UPGRADED_FROM";

/// How to start a new master: the original command line, in the original
/// directory.
pub struct Upgrade {
    program: CString,
    /// Whether `program` is a bare name to look up in `PATH`.
    search_path: bool,
    args: Vec<CString>,
    cwd: PathBuf,
}

impl Upgrade {
    /// From this process's `args` (argv\[0\] first) and start directory.
    /// `None` when an argument holds a NUL byte (it could not be passed on).
    pub fn new(args: &[OsString], start_dir: &Path) -> Option<Self> {
        let first = args.first()?;
        let search_path = !first.as_bytes().contains(&b'/');
        let program = if search_path {
            PathBuf::from(first)
        } else {
            start_dir.join(first)
        };
        Some(Self {
            program: CString::new(program.as_os_str().as_bytes()).ok()?,
            search_path,
            args: args
                .iter()
                .map(|a| CString::new(a.as_bytes()).ok())
                .collect::<Option<_>>()?,
            cwd: start_dir.to_path_buf(),
        })
    }

    /// Forks and execs the new master with `listeners`; returns its pid.
    pub fn spawn(&self, listeners: &[BoundListener]) -> nix::Result<Pid> {
        let fds: Vec<RawFd> = listeners.iter().map(BoundListener::as_raw_fd).collect();
        let fd_list = fds
            .iter()
            .map(RawFd::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let parent = std::process::id().to_string();
        // SAFETY: the master is single-threaded, so the child may allocate
        // and set its environment before exec.
        match unsafe { fork() }? {
            ForkResult::Parent { child } => Ok(child),
            ForkResult::Child => {
                for &fd in &fds {
                    // SAFETY: borrowing the listener's open descriptor.
                    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    let _ = fcntl(borrowed.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()));
                }
                std::env::set_var(FD_VAR, &fd_list);
                std::env::set_var(PARENT_VAR, &parent);
                std::env::remove_var("LISTEN_FDS");
                std::env::remove_var("LISTEN_PID");
                let _ = std::env::set_current_dir(&self.cwd);
                // exec only returns on failure.
                let Err(error) = if self.search_path {
                    nix::unistd::execvp(&self.program, &self.args)
                } else {
                    nix::unistd::execv(&self.program, &self.args)
                };
                tracing::error!("cannot exec {:?} for the upgrade: {error}", self.program);
                // SAFETY: leaving the forked child without running the
                // parent's destructors (they own the master's resources).
                unsafe { libc::_exit(1) }
            }
        }
    }
}

/// Listeners handed to this process: `FERRICORN_FD` (an upgrade), else
/// systemd's `LISTEN_FDS` when `LISTEN_PID` is this process. `None` when
/// there are none and the configured addresses must be bound. The variables
/// are removed so workers and later upgrades do not see stale values.
pub fn inherited_listeners() -> Option<Result<Vec<BoundListener>, BindError>> {
    let fds: Vec<RawFd> = if let Some(list) = take_var(FD_VAR) {
        let parsed: Result<Vec<RawFd>, _> = list.split(',').map(|fd| fd.trim().parse()).collect();
        match parsed {
            Ok(fds) => fds,
            Err(_) => return Some(Err(BindError::new(FD_VAR, format!("bad value {list:?}")))),
        }
    } else {
        let pid = take_var("LISTEN_PID");
        let count = take_var("LISTEN_FDS");
        take_var("LISTEN_FDNAMES");
        let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
        match count.and_then(|n| n.parse::<RawFd>().ok()) {
            // sd_listen_fds(3): the descriptors start at 3.
            Some(n) if ours && n > 0 => (3..3 + n).collect(),
            _ => return None,
        }
    };
    Some(
        fds.into_iter()
            .map(|fd| from_fd(fd).map_err(|e| BindError::new(&format!("fd://{fd}"), e.to_string())))
            .collect(),
    )
}

/// The master that started this one with `USR2`, if it is still our parent.
pub fn upgraded_from() -> Option<Pid> {
    let pid: i32 = take_var(PARENT_VAR)?.parse().ok()?;
    (nix::unistd::getppid().as_raw() == pid).then(|| Pid::from_raw(pid))
}

fn take_var(name: &str) -> Option<String> {
    let value = std::env::var(name).ok();
    if value.is_some() {
        // The master is still single-threaded when this runs.
        std::env::remove_var(name);
    }
    value
}
