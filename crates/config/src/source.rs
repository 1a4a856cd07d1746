//! Where a resolved setting value came from.

use std::fmt;
use std::path::PathBuf;

/// The layer that supplied a setting's final value, lowest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A TOML config file (`-c PATH`, `FERRICORN_CONFIG` or `./ferricorn.toml`).
    ConfigFile(PathBuf),
    /// An environment variable: `FERRICORN_<NAME>`, or one of gunicorn's
    /// default-providing variables (`WEB_CONCURRENCY`, `PORT`, `FORWARDED_ALLOW_IPS`).
    Env(String),
    /// The `FERRICORN_CMD_ARGS` environment variable.
    CmdArgsEnv,
    /// The real command line.
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::ConfigFile(path) => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "env var {var}"),
            Source::CmdArgsEnv => f.write_str("FERRICORN_CMD_ARGS"),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}
