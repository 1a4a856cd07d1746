//! Errors (and the informational `--help` / `--version` exits) produced while
//! loading settings.
//!
//! Every message reads the way the user should see it: `Display` gives the full
//! text, `error: ` prefix included for real errors, so the caller only has to
//! print it and exit with [`ConfigError::exit_code`].

use std::path::PathBuf;

use crate::source::Source;

/// Why [`crate::load`] did not return settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-h/--help` was given; the payload is the help text (no trailing newline).
    #[error("{0}")]
    Help(String),
    /// `-v/--version` was given; the payload is `ferricorn <version>`.
    #[error("{0}")]
    Version(String),
    /// A value failed validation.
    #[error("error: invalid value '{value}' for {setting} (from {origin}): {reason}")]
    InvalidValue {
        /// The setting as the user spelled it for that source (`--workers` on
        /// the command line, `workers` in a file or the environment).
        setting: String,
        /// Where the bad value came from.
        origin: Source,
        /// The offending value (one element of it, for lists).
        value: String,
        /// What would have been accepted.
        reason: String,
    },
    /// A gunicorn command-line flag that ferricorn recognises but does not implement.
    #[error("error: {flag} {}", verdict(*.why))]
    UnsupportedFlag {
        /// The flag exactly as given (`-D`, `--daemon`).
        flag: String,
        /// Why it cannot mean anything in ferricorn and what to use instead;
        /// `None` for settings that are merely not implemented yet.
        why: Option<&'static str>,
    },
    /// A gunicorn setting that ferricorn does not implement, found in a config file.
    #[error("error: setting '{name}' in {} {}", path.display(), verdict(*.why))]
    UnsupportedKey {
        /// The gunicorn setting name.
        name: String,
        /// The config file it was found in.
        path: PathBuf,
        /// As for [`ConfigError::UnsupportedFlag`].
        why: Option<&'static str>,
    },
    /// A gunicorn setting that ferricorn does not implement, set through `FERRICORN_<NAME>`.
    #[error("error: setting '{name}' (from env var {var}) {}", verdict(*.why))]
    UnsupportedEnv {
        /// The gunicorn setting name.
        name: String,
        /// The environment variable that set it.
        var: String,
        /// As for [`ConfigError::UnsupportedFlag`].
        why: Option<&'static str>,
    },
    /// A key in the config file that is not a gunicorn setting at all.
    #[error("error: unknown setting '{key}' in {}", path.display())]
    UnknownKey {
        /// The unknown key.
        key: String,
        /// The config file it was found in.
        path: PathBuf,
    },
    /// The config file could not be read or is not valid TOML.
    #[error("error: cannot load config file {}: {reason}", path.display())]
    ConfigFile {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Any other usage error (unknown flag, missing flag value, bad quoting in
    /// `FERRICORN_CMD_ARGS`, ...).
    #[error("error: {message}")]
    Usage {
        /// The message, without the `error: ` prefix.
        message: String,
    },
}

/// "is not supported yet", or why the setting cannot work in ferricorn.
fn verdict(why: Option<&'static str>) -> String {
    match why {
        Some(why) => format!("is not supported by ferricorn: {why}"),
        None => "is not supported yet".to_string(),
    }
}

impl ConfigError {
    /// 0 for `--help`/`--version` (print the message to stdout), 2 for every
    /// usage or configuration error (print the message to stderr).
    pub fn exit_code(&self) -> i32 {
        if self.is_info() {
            0
        } else {
            2
        }
    }

    /// True for `--help`/`--version`, which are not failures.
    pub fn is_info(&self) -> bool {
        matches!(self, ConfigError::Help(_) | ConfigError::Version(_))
    }
}

/// Why a textual value (a bind address, a CIDR network, an enum name) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    reason: String,
}

impl ParseError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
        }
    }

    /// What would have been accepted, e.g. `expected one of: sync, gthread, async`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
