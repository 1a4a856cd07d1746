//! `--reload`: replace the workers when the app's code changes.
//!
//! The master has no Python of its own here (`--reload` excludes
//! `--preload`), so each worker reports the files of the modules it
//! imported under `--chdir`, one path per line, through a pipe the master
//! created (`FERRICORN_RELOAD_FD`; a line is one `write`, so lines from
//! several workers never interleave). The master watches those files and
//! the `--reload-extra-file` globs from its own loop, without a watcher
//! thread (none may be alive at `fork()`):
//!
//! - `--reload-engine poll`: modification times, compared about once a second;
//! - `inotify`: inotify watches on the files' directories (and on the
//!   directories of symlink targets, as gunicorn), through a non-blocking
//!   descriptor the master's `poll()` waits on with its signal pipe, so a
//!   change is seen at once;
//! - `auto` (the default): inotify, or polling where the kernel refuses it.
//!
//! Only the watched files count (gunicorn's inotify engine reloads for any
//! file of those directories). Globs are expanded again about once a
//! second with either engine, to pick up new matching files.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ferricorn_config::ReloadEngine;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// The environment variable naming the report pipe's write end in workers.
pub const REPORT_FD_VAR: &str = "FERRICORN_RELOAD_FD";

const POLL: Duration = Duration::from_secs(1);

/// Watches the reported module files and the extra globs.
pub struct CodeWatcher {
    reports: std::fs::File,
    /// Kept open (and inherited) so workers can write to it.
    _report_write: OwnedFd,
    pending: Vec<u8>,
    globs: Vec<String>,
    files: BTreeMap<PathBuf, Option<SystemTime>>,
    last_poll: Instant,
    /// The inotify engine; `None` when polling.
    dirs: Option<DirWatcher>,
}

impl CodeWatcher {
    /// Creates the report pipe and tells future workers where it is.
    /// `--reload-engine inotify` fails here when inotify is unavailable.
    pub fn new(extra_globs: &[String], engine: ReloadEngine) -> std::io::Result<Self> {
        let dirs = match engine {
            ReloadEngine::Poll => None,
            ReloadEngine::Inotify => Some(DirWatcher::new().map_err(|e| {
                std::io::Error::other(format!("--reload-engine inotify: inotify_init: {e}"))
            })?),
            ReloadEngine::Auto => match DirWatcher::new() {
                Ok(dirs) => Some(dirs),
                Err(error) => {
                    tracing::debug!("inotify unavailable ({error}); polling for --reload");
                    None
                }
            },
        };
        let (read, write) = nix::unistd::pipe()?;
        nix::fcntl::fcntl(
            read.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        nix::fcntl::fcntl(
            read.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        // The master is single-threaded: setting the environment is safe.
        std::env::set_var(REPORT_FD_VAR, write.as_raw_fd().to_string());
        let mut watcher = Self {
            reports: std::fs::File::from(read),
            _report_write: write,
            pending: Vec::new(),
            globs: extra_globs.to_vec(),
            files: BTreeMap::new(),
            last_poll: Instant::now(),
            dirs,
        };
        for path in watcher.globbed() {
            watcher.watch(path);
        }
        Ok(watcher)
    }

    /// The inotify descriptor, readable when a watched directory changed;
    /// the master waits on it beside its signals. `None` when polling.
    pub fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.dirs.as_ref().map(|dirs| dirs.inotify.as_fd())
    }

    /// Takes in new reports and inotify events and, about once a second,
    /// re-expands the globs (and, when polling, compares modification
    /// times). Returns the first watched file that changed.
    pub fn poll(&mut self) -> Option<PathBuf> {
        self.read_reports();
        let mut changed = None;
        let mut rescan = false;
        if let Some(dirs) = self.dirs.as_mut() {
            let touched = dirs.read_events(&mut rescan);
            changed = touched.into_iter().find_map(|path| self.resolve(&path));
        }
        if changed.is_none() && !rescan && self.last_poll.elapsed() < POLL {
            return None;
        }
        if self.last_poll.elapsed() >= POLL {
            self.last_poll = Instant::now();
            for path in self.globbed() {
                self.watch(path);
            }
        }
        // Polling, or inotify lost events (queue overflow): compare mtimes.
        if self.dirs.is_none() || rescan {
            for (path, seen) in &mut self.files {
                let now = modified(path);
                if now != *seen {
                    *seen = now;
                    changed.get_or_insert_with(|| path.clone());
                }
            }
        }
        changed
    }

    /// The watched file `path` (from an inotify event) stands for.
    fn resolve(&self, path: &Path) -> Option<PathBuf> {
        if self.files.contains_key(path) {
            return Some(path.to_path_buf());
        }
        self.dirs
            .as_ref()
            .and_then(|dirs| dirs.aliases.get(path).cloned())
    }

    fn watch(&mut self, path: PathBuf) {
        // Absolute, so that inotify's directory + name finds it again.
        let path = std::path::absolute(&path).unwrap_or(path);
        if self.files.contains_key(&path) {
            return;
        }
        if let Some(dirs) = self.dirs.as_mut() {
            dirs.watch_file(&path);
        }
        let mtime = modified(&path);
        self.files.insert(path, mtime);
    }

    fn read_reports(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(read @ 1..) = self.reports.read(&mut buf) {
            self.pending.extend_from_slice(&buf[..read]);
        }
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let path = String::from_utf8_lossy(&line[..end]).into_owned();
            if !path.is_empty() {
                self.watch(PathBuf::from(path));
            }
        }
    }

    fn globbed(&self) -> Vec<PathBuf> {
        self.globs.iter().flat_map(|glob| expand(glob)).collect()
    }
}

/// The inotify engine: one watch per directory holding a watched file.
struct DirWatcher {
    inotify: Inotify,
    dirs: BTreeMap<WatchDescriptor, PathBuf>,
    /// Symlink targets of watched files, mapped to the watched path.
    aliases: BTreeMap<PathBuf, PathBuf>,
}

/// gunicorn's inotify mask, plus `IN_ATTRIB` (a `touch`) and
/// `IN_CLOSE_WRITE`.
fn watch_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
}

impl DirWatcher {
    fn new() -> nix::Result<Self> {
        Ok(Self {
            inotify: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?,
            dirs: BTreeMap::new(),
            aliases: BTreeMap::new(),
        })
    }

    /// Watches the directory of `path`, and of its symlink target.
    fn watch_file(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.watch_dir(dir);
        }
        if let Ok(target) = std::fs::canonicalize(path) {
            if target != path {
                if let Some(dir) = target.parent() {
                    self.watch_dir(dir);
                }
                self.aliases.insert(target, path.to_path_buf());
            }
        }
    }

    fn watch_dir(&mut self, dir: &Path) {
        if self.dirs.values().any(|watched| watched == dir) {
            return;
        }
        match self.inotify.add_watch(dir, watch_mask()) {
            // The same directory under another name gets the same descriptor.
            Ok(wd) => {
                self.dirs.entry(wd).or_insert_with(|| dir.to_path_buf());
            }
            Err(error) => tracing::debug!("cannot watch {}: {error}", dir.display()),
        }
    }

    /// Drains the pending events; returns the paths they name. Sets
    /// `rescan` when the kernel dropped events or a directory went away.
    fn read_events(&mut self, rescan: &mut bool) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => events,
                Ok(_) | Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    tracing::debug!("reading inotify events: {error}");
                    break;
                }
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    *rescan = true;
                }
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The directory was removed or moved: one mtime
                    // comparison reports its files; they are not watched
                    // any longer (a worker that imports them again after
                    // the reload reports them, but they are known already).
                    self.dirs.remove(&event.wd);
                    *rescan = true;
                    continue;
                }
                if let (Some(dir), Some(name)) = (self.dirs.get(&event.wd), event.name) {
                    paths.push(dir.join(name));
                }
            }
        }
        paths
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Files matching `pattern`: `*` and `?` within a path component, `**`
/// for any number of directories.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let root = if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    };
    let mut found = Vec::new();
    walk(&root, &parts, &mut found);
    if !absolute {
        for path in &mut found {
            if let Ok(stripped) = path.strip_prefix(".") {
                *path = stripped.to_path_buf();
            }
        }
    }
    found
}

fn walk(dir: &Path, parts: &[&str], found: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        if dir.is_file() {
            found.push(dir.to_path_buf());
        }
        return;
    };
    if *first == "**" {
        walk(dir, rest, found);
        for entry in entries(dir).into_iter().filter(|p| p.is_dir()) {
            walk(&entry, parts, found);
        }
    } else if !first.contains(['*', '?']) {
        walk(&dir.join(first), rest, found);
    } else {
        for entry in entries(dir) {
            let matches = entry
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| wildcard(first.as_bytes(), name.as_bytes()));
            if matches {
                walk(&entry, rest, found);
            }
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|read| read.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Whether `name` matches `pattern` (`*`: any run, `?`: one byte).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.py", b"app.py"));
        assert!(wildcard(b"a?c", b"abc"));
        assert!(!wildcard(b"*.py", b"app.pyc"));
        assert!(wildcard(b"*", b""));
    }

    #[test]
    fn inotify_engine_reports_a_rewrite_without_waiting_for_the_poll() {
        let dir = std::env::temp_dir().join(format!("ferricorn-inotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("page.html");
        std::fs::write(&file, "one").unwrap();
        let mut watcher =
            CodeWatcher::new(&[file.display().to_string()], ReloadEngine::Inotify).unwrap();
        assert!(watcher.wake_fd().is_some());
        assert_eq!(watcher.poll(), None);
        // A file next to it is not watched.
        std::fs::write(dir.join("other.txt"), "x").unwrap();
        assert_eq!(watcher.poll(), None);
        std::fs::write(&file, "two").unwrap();
        // Within the one-second poll period: only inotify can have seen it.
        assert_eq!(watcher.poll(), Some(file.clone()));
        assert_eq!(watcher.poll(), None, "events are drained once reported");
        let polling = CodeWatcher::new(&[], ReloadEngine::Poll).unwrap();
        assert!(polling.wake_fd().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn globs_expand_over_directories() {
        let dir = std::env::temp_dir().join(format!("ferricorn-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/x.html"), "").unwrap();
        std::fs::write(dir.join("a/y.html"), "").unwrap();
        std::fs::write(dir.join("a/z.txt"), "").unwrap();
        let base = dir.display();
        let mut all = expand(&format!("{base}/**/*.html"));
        all.sort();
        assert_eq!(all, vec![dir.join("a/b/x.html"), dir.join("a/y.html")]);
        assert_eq!(
            expand(&format!("{base}/a/*.txt")),
            vec![dir.join("a/z.txt")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
