//! ferricorn's settings: gunicorn's flags, names, defaults and meanings, read
//! from the command line, `FERRICORN_CMD_ARGS`, `FERRICORN_<NAME>` environment
//! variables and a TOML config file, merged with figment.
//!
//! One table (`table.rs`) describes every setting; the clap command, the help
//! text, the environment and file layers, [`Loaded::print_config`] and the
//! example config file are all derived from it. Every other gunicorn setting
//! is recognised and refused with "not supported yet" rather than ignored.
//!
//! ```no_run
//! match ferricorn_config::load_from_process(std::env::args_os().collect()) {
//!     Ok(loaded) => println!("{} workers", loaded.settings.workers),
//!     Err(e) if e.is_info() => {
//!         println!("{e}");
//!         std::process::exit(e.exit_code());
//!     }
//!     Err(e) => {
//!         eprintln!("{e}");
//!         std::process::exit(e.exit_code());
//!     }
//! }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod bind;
mod cidr;
mod cli;
mod error;
mod example;
mod layers;
mod loaded;
mod logconfig;
mod operability;
mod settings;
mod shell;
mod source;
mod syslog;
mod table;
mod types;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

pub use bind::{Bind, DEFAULT_PORT};
pub use cidr::{AllowList, Cidr};
pub use cli::{help_text, VERSION};
pub use error::{ConfigError, ParseError};
pub use example::example_config;
pub use loaded::Loaded;
pub use logconfig::{ActiveLogConfig, LogConfig};
pub use operability::{
    default_control_socket, statsd_prefix, LogFormat, Operability, StatsdAddr, STATSD_DEFAULT_PORT,
};
pub use settings::Settings;
pub use source::Source;
pub use syslog::{Syslog, SyslogAddr};
pub use types::{HeaderMap, LogLevel, ProxyProtocol, ReloadEngine, SslVersion, WorkerClass};

/// Loads the settings.
///
/// `args` includes argv\[0\]. `env` is the process environment (e.g.
/// `std::env::vars()` collected). `cwd` is where `./ferricorn.toml` is looked
/// for, relative paths are resolved against, and the default `chdir`.
pub fn load(
    args: Vec<OsString>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Loaded, ConfigError> {
    layers::load(args, env, cwd)
}

/// [`load`] with `args` and this process's environment and current directory.
/// Environment variables whose name or value is not UTF-8 are skipped.
pub fn load_from_process(args: Vec<OsString>) -> Result<Loaded, ConfigError> {
    let cwd = std::env::current_dir().map_err(|e| ConfigError::Usage {
        message: format!("cannot determine the current directory: {e}"),
    })?;
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load(args, &env, &cwd)
}
