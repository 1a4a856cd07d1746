//! The pidfile (`-p/--pid`): written at start, removed at exit.

use std::io;
use std::path::{Path, PathBuf};

/// A pidfile this process wrote.
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Writes `pid` to `path`, replacing what was there.
    pub fn create(path: &Path, pid: u32) -> io::Result<Self> {
        let temp = path.with_extension("tmp-ferricorn");
        std::fs::write(&temp, format!("{pid}\n"))?;
        std::fs::rename(&temp, path)?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Moves the file to `path` (an upgraded master taking over the
    /// pidfile once the old master is gone).
    pub fn rename(&mut self, path: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, path)?;
        self.path = path.to_path_buf();
        Ok(())
    }

    /// Removes the file if it still names this process.
    pub fn remove(&self) {
        let ours = std::fs::read_to_string(&self.path)
            .map(|text| text.trim() == std::process::id().to_string())
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
