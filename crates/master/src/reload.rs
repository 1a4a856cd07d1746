//! `--reload`: replace the workers when the app's code changes.
//!
//! The master has no Python of its own here (`--reload` excludes
//! `--preload`), so each worker reports the files of the modules it
//! imported under `--chdir`, one path per line, through a pipe the master
//! created (`FERRICORN_RELOAD_FD`; a line is one `write`, so lines from
//! several workers never interleave). The master polls those files and the
//! `--reload-extra-file` globs by modification time about once a second,
//! from its loop: no watcher thread, no inotify.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

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
}

impl CodeWatcher {
    /// Creates the report pipe and tells future workers where it is.
    pub fn new(extra_globs: &[String]) -> std::io::Result<Self> {
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
        };
        for path in watcher.globbed() {
            watcher.watch(path);
        }
        Ok(watcher)
    }

    /// About once a second: takes in new reports, re-expands the globs and
    /// returns the first watched file whose modification time changed.
    pub fn poll(&mut self) -> Option<PathBuf> {
        self.read_reports();
        if self.last_poll.elapsed() < POLL {
            return None;
        }
        self.last_poll = Instant::now();
        for path in self.globbed() {
            self.watch(path);
        }
        let mut changed = None;
        for (path, seen) in &mut self.files {
            let now = modified(path);
            if now != *seen {
                *seen = now;
                changed.get_or_insert_with(|| path.clone());
            }
        }
        changed
    }

    fn watch(&mut self, path: PathBuf) {
        let mtime = modified(&path);
        self.files.entry(path).or_insert(mtime);
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
