//! The master's process setup (`--daemon`, `-R/--enable-stdio-inheritance`,
//! `--umask`) and each worker's privilege drop (`--user`, `--group`,
//! `--initgroups`).

use std::ffi::CString;
use std::os::fd::AsRawFd;

use ferricorn_config::Settings;
use nix::unistd::{Gid, Group, Uid, User};

/// `-D/--daemon`: detaches from the terminal as gunicorn does — fork (the
/// caller's process exits 0), `setsid`, fork again (never a session leader,
/// so never reacquires a terminal), stdin to `/dev/null`. stdout and stderr
/// go to `/dev/null` too, unless `inherit_stdio` (`-R`): then they are kept
/// where they point (`ferricorn -D -R app > out.log 2>&1`), except that a
/// terminal is still replaced, so the daemon stays detached. The working
/// directory is kept. Must run while the process is single-threaded.
pub fn daemonize(inherit_stdio: bool) -> Result<(), String> {
    for step in 0..2 {
        // SAFETY: the master is single-threaded here (no runtime, no
        // interpreter yet), so the child starts with consistent state.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => {
                // SAFETY: leaving without running destructors or flushing
                // buffers the child also holds.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Child) => {}
            Err(error) => return Err(format!("cannot daemonize: fork: {error}")),
        }
        if step == 0 {
            nix::unistd::setsid().map_err(|e| format!("cannot daemonize: setsid: {e}"))?;
        }
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot daemonize: /dev/null: {e}"))?;
    for fd in 0..=2 {
        // SAFETY: isatty only inspects a descriptor number.
        let keep = inherit_stdio && fd > 0 && unsafe { libc::isatty(fd) } == 0;
        if keep {
            continue;
        }
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(format!(
                "cannot daemonize: dup2: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// `-m/--umask`, applied in the master (the workers inherit it).
pub fn apply_umask(settings: &Settings) {
    if let Some(mask) = settings.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
}

/// The uid and gid the workers switch to, resolved from names or numbers.
#[derive(Debug, Clone)]
pub struct Owner {
    uid: Option<Uid>,
    gid: Option<Gid>,
    /// The user's name, for `initgroups`.
    user_name: Option<CString>,
    initgroups: bool,
}

impl Owner {
    /// Resolves `--user`/`--group`; an unknown name is an error. With a
    /// user and no group, the user's primary group is used (gunicorn would
    /// keep the master's group, usually root's).
    pub fn resolve(settings: &Settings) -> Result<Option<Self>, String> {
        if settings.user.is_none() && settings.group.is_none() {
            return Ok(None);
        }
        let user = match settings.user.as_deref() {
            Some(spec) => Some(lookup_user(spec)?),
            None => None,
        };
        let gid = match settings.group.as_deref() {
            Some(spec) => Some(lookup_group(spec)?),
            None => user
                .as_ref()
                .and_then(|(_, user)| user.as_ref().map(|u| u.gid)),
        };
        let user_name = user
            .as_ref()
            .and_then(|(_, user)| user.as_ref())
            .and_then(|user| CString::new(user.name.clone()).ok());
        Ok(Some(Self {
            uid: user.map(|(uid, _)| uid),
            gid,
            user_name,
            initgroups: settings.initgroups,
        }))
    }

    /// In a worker after fork: supplementary groups, then `setgid`, then
    /// `setuid` (the order that still has the right to do each).
    pub fn switch(&self) -> Result<(), String> {
        if let Some(gid) = self.gid {
            match (&self.user_name, self.initgroups) {
                (Some(name), true) => {
                    nix::unistd::initgroups(name, gid).map_err(|e| format!("initgroups: {e}"))?
                }
                // Dropping root's supplementary groups is part of dropping
                // privileges.
                _ if self.uid.is_some() => {
                    nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
                }
                _ => {}
            }
            nix::unistd::setgid(gid).map_err(|e| format!("setgid({gid}): {e}"))?;
        }
        if let Some(uid) = self.uid {
            nix::unistd::setuid(uid).map_err(|e| format!("setuid({uid}): {e}"))?;
        }
        Ok(())
    }
}

/// A user by number or name; the entry is `None` for a number with none.
fn lookup_user(spec: &str) -> Result<(Uid, Option<User>), String> {
    if let Ok(number) = spec.parse::<u32>() {
        let uid = Uid::from_raw(number);
        return Ok((uid, User::from_uid(uid).ok().flatten()));
    }
    match User::from_name(spec) {
        Ok(Some(user)) => Ok((user.uid, Some(user))),
        Ok(None) => Err(format!("no such user: {spec}")),
        Err(error) => Err(format!("cannot look up user {spec}: {error}")),
    }
}

/// A group by number or name.
fn lookup_group(spec: &str) -> Result<Gid, String> {
    if let Ok(number) = spec.parse::<u32>() {
        return Ok(Gid::from_raw(number));
    }
    match Group::from_name(spec) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(format!("no such group: {spec}")),
        Err(error) => Err(format!("cannot look up group {spec}: {error}")),
    }
}
