//! The command line: a clap command built from the settings table, and the
//! parsing of an argument vector (the real one or `FERRICORN_CMD_ARGS`) into a
//! raw layer of values.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, ColorChoice, Command};
use figment::value::{Dict, Value};

use crate::error::ConfigError;
use crate::source::Source;
use crate::table::{CliKind, SettingDef, SETTINGS, UNSUPPORTED};

/// ferricorn's version, as printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const AFTER_HELP: &str = "\
Every setting can also be given in a TOML config file (-c PATH, or ./ferricorn.toml; \
keys are the setting names, e.g. worker_class) or in a FERRICORN_<NAME> environment \
variable (e.g. FERRICORN_WORKERS). FERRICORN_CMD_ARGS may hold extra command-line \
arguments. Precedence, lowest first: defaults, config file, FERRICORN_<NAME>, \
FERRICORN_CMD_ARGS, command line.";

/// The clap command for ferricorn, with one argument per table entry plus
/// hidden arguments for every unsupported gunicorn flag.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new("ferricorn")
        .bin_name("ferricorn")
        .version(VERSION)
        .about("A pre-fork HTTP server for Python WSGI apps, compatible with gunicorn's settings.")
        .after_help(AFTER_HELP)
        .color(ColorChoice::Never)
        .disable_version_flag(true)
        // argparse semantics: a repeated single-value option keeps its last value,
        // and unambiguous prefixes of long options are accepted.
        .args_override_self(true)
        .infer_long_args(true)
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::Version)
                .help("Print version and exit"),
        );
    for def in SETTINGS {
        if let Some(arg) = setting_arg(def) {
            cmd = cmd.arg(arg);
        }
    }
    for unsupported in UNSUPPORTED {
        for flag in unsupported.flags {
            cmd = cmd.arg(unsupported_arg(flag, unsupported.takes_value));
        }
    }
    cmd
}

fn setting_arg(def: &SettingDef) -> Option<Arg> {
    let help = format!(
        "{} [default: {}] [env: {}]",
        def.help,
        def.default_doc(),
        def.env_var()
    );
    let mut arg = Arg::new(def.name).help(help);
    if let Some(short) = def.short {
        arg = arg.short(short);
    }
    if let Some(long) = def.long {
        arg = arg.long(long);
    }
    for alias in def.aliases {
        arg = arg.visible_alias(*alias);
    }
    let arg = match def.cli {
        CliKind::None => return None,
        CliKind::Flag | CliKind::FlagOff => arg.action(ArgAction::SetTrue),
        CliKind::OptionalValue(missing) => value_arg(arg, def)
            .action(ArgAction::Set)
            .num_args(0..=1)
            .default_missing_value(missing),
        CliKind::Value => value_arg(arg, def).action(ArgAction::Set),
        CliKind::Append => value_arg(arg, def).action(ArgAction::Append),
        CliKind::Positional => arg
            .value_name(def.metavar)
            .index(1)
            .action(ArgAction::Set)
            .value_parser(clap::value_parser!(String)),
    };
    Some(arg)
}

fn value_arg(arg: Arg, def: &SettingDef) -> Arg {
    arg.value_name(def.metavar)
        .value_parser(clap::value_parser!(String))
        // So that `--timeout -1` reaches validation and gets a precise message.
        .allow_negative_numbers(true)
}

fn unsupported_arg(flag: &'static str, takes_value: bool) -> Arg {
    let mut arg = Arg::new(flag).hide(true);
    arg = match flag.strip_prefix("--") {
        Some(long) => arg.long(long),
        None => match flag.strip_prefix('-').and_then(|s| s.chars().next()) {
            Some(short) => arg.short(short),
            None => arg.long(flag),
        },
    };
    if takes_value {
        // Swallow the value (so it is not taken for APP_MODULE) but do not
        // require it: the flag is refused either way, with our message.
        arg.action(ArgAction::Append)
            .num_args(0..=1)
            .allow_hyphen_values(true)
            .value_parser(clap::value_parser!(String))
    } else {
        arg.action(ArgAction::SetTrue)
    }
}

/// Parses `argv` (argv[0] included) into raw values keyed by setting name.
/// `origin` is the real command line or `FERRICORN_CMD_ARGS`, for messages.
pub(crate) fn parse(argv: Vec<OsString>, origin: &Source) -> Result<Dict, ConfigError> {
    let matches = command()
        .try_get_matches_from(argv)
        .map_err(|e| clap_error(&e, origin))?;
    refuse_unsupported(&matches)?;
    Ok(layer_from(&matches))
}

fn clap_error(e: &clap::Error, origin: &Source) -> ConfigError {
    let text = e.render().to_string();
    let text = text.trim_end();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ConfigError::Help(text.to_string())
        }
        ErrorKind::DisplayVersion => ConfigError::Version(text.to_string()),
        _ => {
            let message = text.strip_prefix("error: ").unwrap_or(text);
            let message = match origin {
                Source::CmdArgsEnv => format!("in FERRICORN_CMD_ARGS: {message}"),
                _ => message.to_string(),
            };
            ConfigError::Usage { message }
        }
    }
}

/// Fails on the first (leftmost) unsupported gunicorn flag.
fn refuse_unsupported(matches: &ArgMatches) -> Result<(), ConfigError> {
    let first = UNSUPPORTED
        .iter()
        .flat_map(|u| u.flags.iter().map(move |flag| (flag, u.why)))
        .filter(|(flag, _)| matches.value_source(flag) == Some(ValueSource::CommandLine))
        .min_by_key(|(flag, _)| matches.index_of(flag).unwrap_or(usize::MAX));
    match first {
        Some((flag, why)) => Err(ConfigError::UnsupportedFlag {
            flag: (*flag).to_string(),
            why,
        }),
        None => Ok(()),
    }
}

fn layer_from(matches: &ArgMatches) -> Dict {
    let mut values = Dict::new();
    for def in SETTINGS {
        if def.cli == CliKind::None
            || matches.value_source(def.name) != Some(ValueSource::CommandLine)
        {
            continue;
        }
        let value = match def.cli {
            CliKind::Flag => Some(Value::from(true)),
            CliKind::FlagOff => Some(Value::from(false)),
            CliKind::Value | CliKind::OptionalValue(_) | CliKind::Positional => matches
                .try_get_one::<String>(def.name)
                .ok()
                .flatten()
                .map(|s| Value::from(s.as_str())),
            CliKind::Append => matches
                .try_get_many::<String>(def.name)
                .ok()
                .flatten()
                .map(|all| Value::from(all.cloned().collect::<Vec<String>>())),
            CliKind::None => None,
        };
        if let Some(value) = value {
            values.insert(def.name.to_string(), value);
        }
    }
    values
}

/// The `--help` text.
pub fn help_text() -> String {
    command().render_help().to_string().trim_end().to_string()
}
