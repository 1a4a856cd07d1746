//! The settings table: the single source of truth for every setting's name,
//! command-line flags, environment variable, TOML key, default, validation and
//! help text. The clap command, the help output, the environment and file
//! layers, `print_config` and the example config file are all derived from it.
//!
//! Also listed here: every other gunicorn setting, so that its flags and keys
//! are refused explicitly ("not supported yet") instead of being unknown.

use std::path::{Path, PathBuf};

use figment::value::Value;
use toml::Value as Toml;

use crate::bind::Bind;
use crate::cidr::AllowList;
use crate::error::ParseError;
use crate::operability::{statsd_prefix, StatsdAddr};
use crate::settings::Settings;
use crate::source::Source;
use crate::syslog::SyslogAddr;
use crate::types::{ProxyProtocol, SslVersion};
use crate::values::{self, Invalid};

/// Context validators may need.
pub(crate) struct Ctx<'a> {
    /// The directory relative paths are resolved against.
    pub cwd: &'a Path,
}

/// Validates one raw value and stores it into [`Settings`].
pub(crate) type Apply = for<'a> fn(&mut Settings, &Value, &Ctx<'a>) -> Result<(), Invalid>;
/// Renders a setting's resolved value as TOML, `None` when unset.
pub(crate) type Show = fn(&Settings) -> Option<Toml>;

/// How a setting appears on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CliKind {
    /// A switch that sets the boolean to true (argparse's `store_true`).
    Flag,
    /// A switch that sets the boolean to false (argparse's `store_const`
    /// with `False`, as gunicorn's `--no-sendfile`).
    FlagOff,
    /// An option whose value may be left out, meaning the given value
    /// (argparse's `nargs="?"` with `const`, as `--proxy-protocol`).
    OptionalValue(&'static str),
    /// An option taking one value; the last occurrence wins.
    Value,
    /// An option that may be repeated; values accumulate.
    Append,
    /// The positional `APP_MODULE`.
    Positional,
    /// Only settable in the config file or the environment.
    None,
}

/// A setting's built-in default.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DefaultValue {
    Unset,
    Str(&'static str),
    Int(u64),
    Bool(bool),
    List(&'static [&'static str]),
    Pairs(&'static [(&'static str, &'static str)]),
    /// The directory ferricorn was started in.
    Cwd,
}

/// A gunicorn environment variable that replaces a setting's default.
pub(crate) struct EnvDefault {
    pub var: &'static str,
    pub value: fn(&str) -> Value,
}

/// One supported setting.
pub(crate) struct SettingDef {
    /// gunicorn's name; also the TOML key and, upper-cased, the `FERRICORN_` suffix.
    pub name: &'static str,
    pub short: Option<char>,
    /// The primary long flag, without dashes.
    pub long: Option<&'static str>,
    /// More long flags, without dashes.
    pub aliases: &'static [&'static str],
    pub metavar: &'static str,
    pub cli: CliKind,
    pub default: DefaultValue,
    pub env_default: Option<EnvDefault>,
    /// TOML value shown in the example config when there is no default.
    pub example: Option<&'static str>,
    pub help: &'static str,
    pub apply: Apply,
    pub show: Show,
}

impl SettingDef {
    /// `FERRICORN_<NAME>`.
    pub(crate) fn env_var(&self) -> String {
        env_var(self.name)
    }

    /// How the setting is named in messages about a value from `origin`: the
    /// flag for command-line sources, the setting name otherwise.
    pub(crate) fn label_for(&self, origin: &Source) -> String {
        match origin {
            Source::CommandLine | Source::CmdArgsEnv => match (self.cli, self.long) {
                (CliKind::Positional, _) => self.metavar.to_string(),
                (_, Some(long)) => format!("--{long}"),
                _ => self.name.to_string(),
            },
            _ => self.name.to_string(),
        }
    }

    /// The default as a raw value, `None` when unset.
    pub(crate) fn default_value(&self, cwd: &Path) -> Option<Value> {
        Some(match self.default {
            DefaultValue::Unset => return None,
            DefaultValue::Str(s) => Value::from(s),
            DefaultValue::Int(n) => Value::from(n),
            DefaultValue::Bool(b) => Value::from(b),
            DefaultValue::List(items) => Value::from(items.to_vec()),
            DefaultValue::Pairs(pairs) => pairs_value(pairs.iter().map(|(k, v)| (*k, *v))),
            DefaultValue::Cwd => Value::from(cwd.to_string_lossy().into_owned()),
        })
    }

    /// The default as shown in help text.
    pub(crate) fn default_doc(&self) -> String {
        let base = match self.default {
            DefaultValue::Unset => "none".to_string(),
            DefaultValue::Str("") => "''".to_string(),
            DefaultValue::Str(s) => s.to_string(),
            DefaultValue::Int(n) => n.to_string(),
            DefaultValue::Bool(b) => b.to_string(),
            DefaultValue::List([]) => "none".to_string(),
            DefaultValue::List(items) => items.join(","),
            DefaultValue::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            DefaultValue::Cwd => "current directory".to_string(),
        };
        match &self.env_default {
            Some(env) => format!("{base}, or from ${}", env.var),
            None => base,
        }
    }
}

/// `FERRICORN_<NAME>` for a setting name.
pub(crate) fn env_var(name: &str) -> String {
    format!("FERRICORN_{}", name.to_ascii_uppercase())
}

/// Table-like values are stored as arrays of `[key, value]` pairs so that a
/// higher layer replaces the whole table, as gunicorn does, rather than
/// figment merging the two tables key by key.
pub(crate) fn pairs_value<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    Value::from(
        pairs
            .map(|(k, v)| Value::from(vec![Value::from(k), Value::from(v)]))
            .collect::<Vec<Value>>(),
    )
}

/// The setting named `name`.
pub(crate) fn find(name: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|def| def.name == name)
}

fn parsed<T: std::str::FromStr<Err = ParseError>>(v: &Value) -> Result<T, Invalid> {
    values::string(v)?
        .parse()
        .map_err(|e: ParseError| Invalid::new(e.reason()))
}

/// A string that must be one of `allowed`.
fn one_of(v: &Value, allowed: &[&str]) -> Result<String, Invalid> {
    let text = values::string(v)?;
    if allowed.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(Invalid::new(format!(
            "expected one of: {}",
            allowed.join(", ")
        )))
    }
}

fn allow_list(v: &Value) -> Result<AllowList, Invalid> {
    let entries = values::comma_list(v)?;
    AllowList::from_entries(entries.iter().map(String::as_str))
        .map_err(|e| Invalid::new(e.reason()))
}

fn t_str(s: &str) -> Option<Toml> {
    Some(Toml::String(s.to_string()))
}

fn t_int<N: TryInto<i64>>(n: N) -> Option<Toml> {
    // Every limit is validated far below i64::MAX; saturate rather than fail.
    Some(Toml::Integer(n.try_into().unwrap_or(i64::MAX)))
}

/// A umask: `0o022`, `022` (octal, like gunicorn's `int(x, 0)` and the
/// shell), or decimal; at most 0o777.
fn umask(v: &Value) -> Result<u32, Invalid> {
    const ALLOWED: &str = "a umask: octal as 0o022 or 022, or decimal, at most 0o777";
    let parsed = match v {
        Value::Num(..) => values::integer(v, 0, 0o777).ok(),
        _ => {
            let text = values::string(v)?;
            let text = text.trim();
            if let Some(octal) = text.strip_prefix("0o").or_else(|| text.strip_prefix("0O")) {
                u64::from_str_radix(octal, 8).ok()
            } else if text.len() > 1 && text.starts_with('0') {
                u64::from_str_radix(&text[1..], 8).ok()
            } else {
                text.parse::<u64>().ok()
            }
        }
    };
    parsed
        .filter(|&mask| mask <= 0o777)
        .and_then(|mask| u32::try_from(mask).ok())
        .ok_or_else(|| Invalid::new(ALLOWED))
}

/// Stores a server hook (`MODULE:CALLABLE`); an empty string unsets it.
fn set_hook(s: &mut Settings, name: &'static str, v: &Value) -> Result<(), Invalid> {
    s.hooks.retain(|(hook, _)| hook != name);
    let Some(spec) = values::opt_string(v)?.filter(|spec| !spec.is_empty()) else {
        return Ok(());
    };
    let valid = spec
        .split_once(':')
        .is_some_and(|(module, attr)| !module.is_empty() && !attr.is_empty());
    if !valid {
        return Err(Invalid::new("a Python callable as MODULE:CALLABLE"));
    }
    s.hooks.push((name.to_string(), spec));
    Ok(())
}

fn t_bool(b: bool) -> Option<Toml> {
    Some(Toml::Boolean(b))
}

fn t_list(items: impl IntoIterator<Item = String>) -> Option<Toml> {
    Some(Toml::Array(items.into_iter().map(Toml::String).collect()))
}

fn t_path(p: &Path) -> Option<Toml> {
    t_str(&p.display().to_string())
}

/// gunicorn's `MAX_REQUEST_LINE`: larger `limit_request_line` values are lowered to it.
const MAX_REQUEST_LINE: usize = 8190;
/// gunicorn's `MAX_HEADERS`: `limit_request_fields` 0 or above means it.
const MAX_HEADERS: usize = 32768;
/// gunicorn's `DEFAULT_MAX_HEADERFIELD_SIZE`: `limit_request_field_size` 0 means it.
const DEFAULT_MAX_HEADERFIELD_SIZE: usize = 8190;

fn apply_nothing(_: &mut Settings, _: &Value, _: &Ctx<'_>) -> Result<(), Invalid> {
    Ok(())
}

fn show_nothing(_: &Settings) -> Option<Toml> {
    None
}

/// Field values shared by most entries; each entry overrides what it needs.
const BASE: SettingDef = SettingDef {
    name: "",
    short: None,
    long: None,
    aliases: &[],
    metavar: "",
    cli: CliKind::Value,
    default: DefaultValue::Unset,
    env_default: None,
    example: None,
    help: "",
    apply: apply_nothing,
    show: show_nothing,
};

/// Every supported setting, in gunicorn's documentation order.
pub(crate) static SETTINGS: &[SettingDef] = &[
    SettingDef {
        name: "config",
        short: Some('c'),
        long: Some("config"),
        metavar: "CONFIG",
        example: Some("\"ferricorn.toml\""),
        help: "The TOML config file to read (PATH or file:PATH). Without it, ./ferricorn.toml is read if it exists.",
        apply: |_, v, _| {
            // Which file to read is decided before the layers are merged; here
            // the value only has to be usable.
            values::required_string(v, "a file path").map(|_| ())
        },
        show: |s| s.config_file.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "wsgi_app",
        long: None,
        metavar: "APP_MODULE",
        cli: CliKind::Positional,
        example: Some("\"myproject.wsgi:application\""),
        help: "The WSGI application, MODULE_NAME:VARIABLE_NAME.",
        apply: |s, v, _| {
            s.wsgi_app = values::opt_string(v)?;
            Ok(())
        },
        show: |s| s.wsgi_app.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "bind",
        short: Some('b'),
        long: Some("bind"),
        metavar: "ADDRESS",
        cli: CliKind::Append,
        default: DefaultValue::List(&["127.0.0.1:8000"]),
        env_default: Some(EnvDefault {
            var: "PORT",
            value: |port| Value::from(vec![format!("0.0.0.0:{port}")]),
        }),
        help: "The socket to bind: HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://FD. Repeat to bind several.",
        apply: |s, v, _| {
            let mut binds = Vec::new();
            for text in values::strings(v)? {
                binds.push(
                    text.parse::<Bind>()
                        .map_err(|e| Invalid::at(text.clone(), e.reason()))?,
                );
            }
            if binds.is_empty() {
                return Err(Invalid::new("expected at least one address"));
            }
            s.bind = binds;
            Ok(())
        },
        show: |s| t_list(s.bind.iter().map(Bind::to_string)),
        ..BASE
    },
    SettingDef {
        name: "backlog",
        long: Some("backlog"),
        metavar: "INT",
        default: DefaultValue::Int(2048),
        help: "The maximum number of pending connections.",
        apply: |s, v, _| {
            s.backlog = values::u32_in(v, 1, u32::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.backlog),
        ..BASE
    },
    SettingDef {
        name: "workers",
        short: Some('w'),
        long: Some("workers"),
        metavar: "INT",
        default: DefaultValue::Int(1),
        env_default: Some(EnvDefault {
            var: "WEB_CONCURRENCY",
            value: |n| Value::from(n),
        }),
        help: "The number of worker processes for handling requests.",
        apply: |s, v, _| {
            s.workers = values::u32_in(v, 1, u32::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.workers),
        ..BASE
    },
    SettingDef {
        name: "worker_class",
        short: Some('k'),
        long: Some("worker-class"),
        metavar: "STRING",
        default: DefaultValue::Str("sync"),
        help: "The type of workers to use: sync, gthread or async (asgi: async serving ASGI).",
        apply: |s, v, _| {
            s.worker_class = parsed(v)?;
            s.worker_class_asgi = crate::types::names_asgi_worker(&values::string(v)?);
            Ok(())
        },
        show: |s| t_str(s.worker_class.as_str()),
        ..BASE
    },
    SettingDef {
        name: "interface",
        long: Some("interface"),
        metavar: "STRING",
        default: DefaultValue::Str("auto"),
        help: "The app interface: auto (ASGI when the app is a coroutine function), wsgi or asgi.",
        apply: |s, v, _| {
            s.interface = one_of(v, &["auto", "wsgi", "asgi"])?;
            Ok(())
        },
        show: |s| t_str(&s.interface),
        ..BASE
    },
    SettingDef {
        name: "asgi_loop",
        long: Some("asgi-loop"),
        metavar: "STRING",
        default: DefaultValue::Str("auto"),
        help: "The event loop of ASGI workers: auto (uvloop when importable), asyncio or uvloop.",
        apply: |s, v, _| {
            s.asgi_loop = one_of(v, &["auto", "asyncio", "uvloop"])?;
            Ok(())
        },
        show: |s| t_str(&s.asgi_loop),
        ..BASE
    },
    SettingDef {
        name: "asgi_lifespan",
        long: Some("asgi-lifespan"),
        metavar: "STRING",
        default: DefaultValue::Str("auto"),
        help: "ASGI lifespan events: auto (if the app supports them), on or off.",
        apply: |s, v, _| {
            s.asgi_lifespan = one_of(v, &["auto", "on", "off"])?;
            Ok(())
        },
        show: |s| t_str(&s.asgi_lifespan),
        ..BASE
    },
    SettingDef {
        name: "asgi_disconnect_grace_period",
        long: Some("asgi-disconnect-grace-period"),
        metavar: "INT",
        default: DefaultValue::Int(3),
        help: "Seconds an ASGI app may keep running after its client disconnected before it is cancelled.",
        apply: |s, v, _| {
            s.asgi_disconnect_grace_period = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.asgi_disconnect_grace_period),
        ..BASE
    },
    SettingDef {
        name: "websocket_max_message_size",
        long: Some("websocket-max-message-size"),
        metavar: "INT",
        default: DefaultValue::Int(16_777_216),
        help: "Largest WebSocket message an ASGI app receives, in bytes (0: no limit); larger ones close the connection with 1009.",
        apply: |s, v, _| {
            s.websocket_max_message_size = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.websocket_max_message_size),
        ..BASE
    },
    SettingDef {
        name: "websocket_ping_interval",
        long: Some("websocket-ping-interval"),
        metavar: "INT",
        default: DefaultValue::Int(20),
        help: "Seconds between the pings an ASGI worker sends on each open WebSocket (0: no pings), as uvicorn's --ws-ping-interval.",
        apply: |s, v, _| {
            s.websocket_ping_interval = values::integer(v, 0, u64::from(u32::MAX))?;
            Ok(())
        },
        show: |s| t_int(s.websocket_ping_interval),
        ..BASE
    },
    SettingDef {
        name: "websocket_ping_timeout",
        long: Some("websocket-ping-timeout"),
        metavar: "INT",
        default: DefaultValue::Int(20),
        help: "Seconds a WebSocket client has to answer a server ping before the connection is closed with 1011 (0: wait forever), as uvicorn's --ws-ping-timeout.",
        apply: |s, v, _| {
            s.websocket_ping_timeout = values::integer(v, 0, u64::from(u32::MAX))?;
            Ok(())
        },
        show: |s| t_int(s.websocket_ping_timeout),
        ..BASE
    },
    SettingDef {
        name: "websocket_per_message_deflate",
        long: Some("no-websocket-per-message-deflate"),
        cli: CliKind::FlagOff,
        default: DefaultValue::Bool(true),
        help: "--no-websocket-per-message-deflate: do not accept permessage-deflate (RFC 7692) compression from WebSocket clients (accepted by default, as uvicorn's --ws-per-message-deflate).",
        apply: |s, v, _| {
            s.websocket_per_message_deflate = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.websocket_per_message_deflate),
        ..BASE
    },
    SettingDef {
        name: "root_path",
        long: Some("root-path"),
        metavar: "STRING",
        default: DefaultValue::Str(""),
        help: "The ASGI root_path (the app's mount point behind a proxy); prefixed into path as uvicorn does.",
        apply: |s, v, _| {
            s.root_path = values::string(v)?;
            Ok(())
        },
        show: |s| t_str(&s.root_path),
        ..BASE
    },
    SettingDef {
        name: "threads",
        long: Some("threads"),
        metavar: "INT",
        default: DefaultValue::Int(1),
        help: "The number of worker threads for handling requests (sync with more than 1 thread means gthread).",
        apply: |s, v, _| {
            s.threads = values::u32_in(v, 1, u32::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.threads),
        ..BASE
    },
    SettingDef {
        name: "worker_connections",
        long: Some("worker-connections"),
        metavar: "INT",
        default: DefaultValue::Int(1000),
        help: "The maximum number of simultaneous clients per worker.",
        apply: |s, v, _| {
            s.worker_connections = values::u32_in(v, 1, u32::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.worker_connections),
        ..BASE
    },
    SettingDef {
        name: "timeout",
        short: Some('t'),
        long: Some("timeout"),
        metavar: "INT",
        default: DefaultValue::Int(30),
        help: "Workers silent for more than this many seconds are killed and restarted; 0 disables.",
        apply: |s, v, _| {
            s.timeout = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.timeout),
        ..BASE
    },
    SettingDef {
        name: "graceful_timeout",
        long: Some("graceful-timeout"),
        metavar: "INT",
        default: DefaultValue::Int(30),
        help: "Seconds workers get to finish their requests after a graceful stop or restart.",
        apply: |s, v, _| {
            s.graceful_timeout = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.graceful_timeout),
        ..BASE
    },
    SettingDef {
        name: "max_requests",
        long: Some("max-requests"),
        metavar: "INT",
        default: DefaultValue::Int(0),
        help: "Replace a worker after it served this many requests (the replacement starts first); 0 disables.",
        apply: |s, v, _| {
            s.max_requests = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.max_requests),
        ..BASE
    },
    SettingDef {
        name: "max_requests_jitter",
        long: Some("max-requests-jitter"),
        metavar: "INT",
        default: DefaultValue::Int(0),
        help: "Add a random 0..=INT to each worker's max_requests, so workers are not replaced all at once.",
        apply: |s, v, _| {
            s.max_requests_jitter = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.max_requests_jitter),
        ..BASE
    },
    SettingDef {
        name: "max_worker_memory",
        long: Some("max-worker-memory"),
        metavar: "MB",
        default: DefaultValue::Int(0),
        help: "Replace a worker whose resident memory passes this many megabytes (checked about once a second); 0 disables.",
        apply: |s, v, _| {
            s.max_worker_memory = values::integer(v, 0, u64::MAX / (1024 * 1024))?;
            Ok(())
        },
        show: |s| t_int(s.max_worker_memory),
        ..BASE
    },
    SettingDef {
        name: "daemon",
        short: Some('D'),
        long: Some("daemon"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Daemonize the ferricorn process: detach from the terminal (double fork, setsid), stdin/stdout/stderr to /dev/null (set --error-logfile to a file to keep the log; -R keeps redirected stdout/stderr). The working directory is kept.",
        apply: |s, v, _| {
            s.daemon = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.daemon),
        ..BASE
    },
    SettingDef {
        name: "enable_stdio_inheritance",
        short: Some('R'),
        long: Some("enable-stdio-inheritance"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "With --daemon, keep stdout and stderr where they point (a file or pipe from shell redirection) instead of /dev/null; a terminal is still replaced by /dev/null, stdin always is. Set PYTHONUNBUFFERED to see prints at once.",
        apply: |s, v, _| {
            s.enable_stdio_inheritance = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.enable_stdio_inheritance),
        ..BASE
    },
    SettingDef {
        name: "user",
        short: Some('u'),
        long: Some("user"),
        metavar: "USER",
        example: Some("\"www-data\""),
        help: "Switch worker processes to run as this user (a name or a numeric uid), after fork; the master keeps its user.",
        apply: |s, v, _| {
            s.user = values::opt_string(v)?.filter(|user| !user.is_empty());
            Ok(())
        },
        show: |s| s.user.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "group",
        short: Some('g'),
        long: Some("group"),
        metavar: "GROUP",
        example: Some("\"www-data\""),
        help: "Switch worker processes to run as this group (a name or a numeric gid), after fork and before the user.",
        apply: |s, v, _| {
            s.group = values::opt_string(v)?.filter(|group| !group.is_empty());
            Ok(())
        },
        show: |s| s.group.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "umask",
        short: Some('m'),
        long: Some("umask"),
        metavar: "INT",
        example: Some("\"0o022\""),
        help: "The file mode creation mask of ferricorn and its workers: octal as 0o022 or 022, or decimal. Unchanged if unset.",
        apply: |s, v, _| {
            s.umask = Some(umask(v)?);
            Ok(())
        },
        show: |s| s.umask.map(|mask| Toml::String(format!("0o{mask:03o}"))),
        ..BASE
    },
    SettingDef {
        name: "initgroups",
        long: Some("initgroups"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "With --user, also give the workers all the groups the user is a member of (initgroups).",
        apply: |s, v, _| {
            s.initgroups = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.initgroups),
        ..BASE
    },
    SettingDef {
        name: "worker_tmp_dir",
        long: Some("worker-tmp-dir"),
        metavar: "DIR",
        example: Some("\"/dev/shm\""),
        help: "Accepted for gunicorn compatibility and unused: ferricorn's heartbeat is a shared-memory scoreboard, not temporary files.",
        apply: |s, v, _| {
            s.worker_tmp_dir = values::opt_string(v)?;
            Ok(())
        },
        show: |s| s.worker_tmp_dir.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "reload",
        long: Some("reload"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Replace the workers when the app's code changes: the files of the modules imported under --chdir (reported by the workers once the app is loaded) and --reload-extra-file, watched as --reload-engine says. For development; excludes --preload.",
        apply: |s, v, _| {
            s.reload = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.reload),
        ..BASE
    },
    SettingDef {
        name: "reload_extra_files",
        long: Some("reload-extra-file"),
        metavar: "FILES",
        cli: CliKind::Append,
        default: DefaultValue::List(&[]),
        help: "With --reload, also watch these files; globs with *, ? and ** (templates/**/*.html). Repeatable.",
        apply: |s, v, _| {
            s.reload_extra_files = values::strings(v)?;
            Ok(())
        },
        show: |s| t_list(s.reload_extra_files.iter().cloned()),
        ..BASE
    },
    SettingDef {
        name: "reload_engine",
        long: Some("reload-engine"),
        metavar: "STRING",
        default: DefaultValue::Str("auto"),
        help: "How --reload notices changes: inotify (watch the files' directories; changes are seen at once), poll (modification times, about once a second) or auto (inotify when the kernel offers it, else poll).",
        apply: |s, v, _| {
            s.reload_engine = parsed(v)?;
            Ok(())
        },
        show: |s| t_str(s.reload_engine.as_str()),
        ..BASE
    },
    SettingDef {
        name: "request_timeout",
        long: Some("request-timeout"),
        metavar: "SECONDS",
        default: DefaultValue::Int(0),
        help: "Replace a worker (replacement first, then a graceful stop) when one of its requests has run longer than this many seconds; meant for gthread and async, where --timeout watches the event loop; 0 disables.",
        apply: |s, v, _| {
            s.request_timeout = values::integer(v, 0, u64::MAX / 1000)?;
            Ok(())
        },
        show: |s| t_int(s.request_timeout),
        ..BASE
    },
    SettingDef {
        name: "preload_app",
        long: Some("preload"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Load the application code in the master before forking the workers (saves memory, speeds up boot); the workers then share the imported code and a HUP reloads the configuration but not the code.",
        apply: |s, v, _| {
            s.preload_app = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.preload_app),
        ..BASE
    },
    SettingDef {
        name: "sendfile",
        long: Some("no-sendfile"),
        cli: CliKind::FlagOff,
        default: DefaultValue::Bool(true),
        env_default: Some(EnvDefault {
            var: "SENDFILE",
            // gunicorn: SENDFILE enables sendfile when y/1/yes/true, else disables it.
            value: |text| {
                let on = matches!(text.trim().to_ascii_lowercase().as_str(), "y" | "1" | "yes" | "true");
                Value::from(on)
            },
        }),
        help: "--no-sendfile: send wsgi.file_wrapper files by reading and writing them instead of with sendfile(). Without the flag, $SENDFILE decides as in gunicorn (y/1/yes/true on, anything else off).",
        apply: |s, v, _| {
            s.sendfile = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.sendfile),
        ..BASE
    },
    SettingDef {
        name: "reuse_port",
        long: Some("reuse-port"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Set SO_REUSEPORT on the TCP listening sockets, so several ferricorn (or other) servers can listen on the same port and the kernel spreads connections among them.",
        apply: |s, v, _| {
            s.reuse_port = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.reuse_port),
        ..BASE
    },
    SettingDef {
        name: "keepalive",
        long: Some("keep-alive"),
        metavar: "INT",
        default: DefaultValue::Int(2),
        help: "The number of seconds to wait for requests on a Keep-Alive connection.",
        apply: |s, v, _| {
            s.keepalive = values::integer(v, 0, u64::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.keepalive),
        ..BASE
    },
    SettingDef {
        name: "limit_request_line",
        long: Some("limit-request-line"),
        metavar: "INT",
        default: DefaultValue::Int(4094),
        help: "The maximum size of the HTTP request line in bytes, 0 (unlimited) to 8190; larger values mean 8190, as in gunicorn.",
        apply: |s, v, _| {
            let n = values::usize_in(v, 0, usize::MAX)?;
            s.limit_request_line = n.min(MAX_REQUEST_LINE);
            Ok(())
        },
        show: |s| t_int(s.limit_request_line),
        ..BASE
    },
    SettingDef {
        name: "limit_request_fields",
        long: Some("limit-request-fields"),
        metavar: "INT",
        default: DefaultValue::Int(100),
        help: "The maximum number of HTTP header fields in a request, at most 32768; 0 or larger values mean 32768, as in gunicorn.",
        apply: |s, v, _| {
            let n = values::usize_in(v, 0, usize::MAX)?;
            // gunicorn treats 0 and anything above the maximum as the
            // maximum; resolve it so callers see a real limit.
            s.limit_request_fields = if n == 0 { MAX_HEADERS } else { n.min(MAX_HEADERS) };
            Ok(())
        },
        show: |s| t_int(s.limit_request_fields),
        ..BASE
    },
    SettingDef {
        name: "limit_request_field_size",
        // gunicorn's flag really is spelled with an underscore.
        long: Some("limit-request-field_size"),
        aliases: &["limit-request-field-size"],
        metavar: "INT",
        default: DefaultValue::Int(8190),
        help: "The maximum size of one HTTP request header field in bytes; 0 means 8190, as in gunicorn 27 (whose docs say unlimited but whose parser applies 8190).",
        apply: |s, v, _| {
            let n = values::usize_in(v, 0, usize::MAX)?;
            s.limit_request_field_size = if n == 0 { DEFAULT_MAX_HEADERFIELD_SIZE } else { n };
            Ok(())
        },
        show: |s| t_int(s.limit_request_field_size),
        ..BASE
    },
    SettingDef {
        name: "chdir",
        long: Some("chdir"),
        metavar: "DIR",
        default: DefaultValue::Cwd,
        example: Some("\".\""),
        help: "Change to this directory before loading the app.",
        apply: |s, v, ctx| {
            let text = values::required_string(v, "an existing directory")?;
            let path = values::absolute(ctx.cwd, Path::new(&text));
            if !path.is_dir() {
                return Err(Invalid::new("expected an existing directory"));
            }
            s.chdir = path;
            Ok(())
        },
        show: |s| t_path(&s.chdir),
        ..BASE
    },
    SettingDef {
        name: "pythonpath",
        long: Some("pythonpath"),
        metavar: "STRING",
        example: Some("\"/srv/app,/srv/lib\""),
        help: "A comma-separated list of directories to add to the Python path.",
        apply: |s, v, _| {
            s.pythonpath = values::comma_list(v)?.into_iter().map(PathBuf::from).collect();
            Ok(())
        },
        show: |s| {
            (!s.pythonpath.is_empty()).then(|| {
                let parts: Vec<String> =
                    s.pythonpath.iter().map(|p| p.display().to_string()).collect();
                Toml::String(parts.join(","))
            })
        },
        ..BASE
    },
    SettingDef {
        name: "raw_env",
        short: Some('e'),
        long: Some("env"),
        metavar: "ENV",
        cli: CliKind::Append,
        default: DefaultValue::List(&[]),
        help: "Set an environment variable in the workers, KEY=VALUE. Repeat for several.",
        apply: |s, v, _| {
            let mut env = Vec::new();
            for entry in values::strings(v)? {
                match entry.split_once('=') {
                    Some((key, value)) if !key.is_empty() => {
                        env.push((key.to_string(), value.to_string()))
                    }
                    _ => return Err(Invalid::at(entry, "expected KEY=VALUE")),
                }
            }
            s.raw_env = env;
            Ok(())
        },
        show: |s| t_list(s.raw_env.iter().map(|(k, v)| format!("{k}={v}"))),
        ..BASE
    },
    SettingDef {
        name: "pidfile",
        short: Some('p'),
        long: Some("pid"),
        metavar: "FILE",
        example: Some("\"/run/ferricorn.pid\""),
        help: "A filename to use for the PID file; none is written if unset.",
        apply: |s, v, _| {
            s.pidfile = values::opt_string(v)?.map(PathBuf::from);
            Ok(())
        },
        show: |s| s.pidfile.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "proc_name",
        short: Some('n'),
        long: Some("name"),
        metavar: "STRING",
        example: Some("\"myproject\""),
        help: "A base to use for naming the processes in ps and top.",
        apply: |s, v, _| {
            s.proc_name = values::opt_string(v)?;
            Ok(())
        },
        show: |s| s.proc_name.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "accesslog",
        long: Some("access-logfile"),
        metavar: "FILE",
        example: Some("\"-\""),
        help: "The access log file to write to; '-' means stdout. No access log if unset.",
        apply: |s, v, _| {
            s.accesslog = values::opt_string(v)?;
            Ok(())
        },
        show: |s| s.accesslog.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "access_log_format",
        long: Some("access-logformat"),
        metavar: "STRING",
        default: DefaultValue::Str(r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#),
        help: "The access log format, in gunicorn's %(name)s syntax.",
        apply: |s, v, _| {
            s.access_log_format = values::string(v)?;
            Ok(())
        },
        show: |s| t_str(&s.access_log_format),
        ..BASE
    },
    SettingDef {
        name: "errorlog",
        long: Some("error-logfile"),
        aliases: &["log-file"],
        metavar: "FILE",
        default: DefaultValue::Str("-"),
        help: "The error log file to write to; '-' means stderr.",
        apply: |s, v, _| {
            s.errorlog = values::required_string(v, "a file path, or '-' for stderr")?;
            Ok(())
        },
        show: |s| t_str(&s.errorlog),
        ..BASE
    },
    SettingDef {
        name: "loglevel",
        long: Some("log-level"),
        metavar: "LEVEL",
        default: DefaultValue::Str("info"),
        help: "The granularity of error log output: debug, info, warning, error or critical.",
        apply: |s, v, _| {
            s.loglevel = parsed(v)?;
            Ok(())
        },
        show: |s| t_str(s.loglevel.as_str()),
        ..BASE
    },
    SettingDef {
        name: "logconfig",
        long: Some("log-config"),
        metavar: "FILE",
        example: Some("\"logging.ini\""),
        help: "A Python logging.config.fileConfig ini file for the gunicorn.error and gunicorn.access loggers (see logconfig_dict).",
        apply: |s, v, ctx| {
            s.logconfig.file = values::opt_string(v)?
                .map(|p| values::absolute(ctx.cwd, Path::new(&p)));
            Ok(())
        },
        show: |s| s.logconfig.file.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "logconfig_dict",
        cli: CliKind::None,
        example: Some("{ version = 1, root = { level = \"INFO\" } }"),
        help: "A table for Python's logging.config.dictConfig, shallow-merged over gunicorn's defaults; ferricorn's error and access lines become records of the gunicorn.error and gunicorn.access loggers. Takes precedence over logconfig_json and logconfig (JSON object text in the environment).",
        apply: |s, v, _| {
            s.logconfig.dict = crate::logconfig::dict(v)?;
            Ok(())
        },
        show: |s| {
            s.logconfig.dict.as_ref().map(|d| {
                crate::logconfig::json_to_toml(&serde_json::Value::Object(d.clone()))
            })
        },
        ..BASE
    },
    SettingDef {
        name: "logconfig_json",
        long: Some("log-config-json"),
        metavar: "FILE",
        example: Some("\"logging.json\""),
        help: "A JSON file for Python's logging.config.dictConfig, as logconfig_dict; takes precedence over logconfig.",
        apply: |s, v, ctx| {
            s.logconfig.json = values::opt_string(v)?
                .map(|p| values::absolute(ctx.cwd, Path::new(&p)));
            Ok(())
        },
        show: |s| s.logconfig.json.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "capture_output",
        long: Some("capture-output"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Redirect stdout and stderr of ferricorn and its workers (the app's print() and tracebacks) to the --error-logfile file; no effect when the error log is '-'.",
        apply: |s, v, _| {
            s.capture_output = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.capture_output),
        ..BASE
    },
    SettingDef {
        name: "check_config",
        long: Some("check-config"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Check the configuration and exit.",
        apply: |s, v, _| {
            s.check_config = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.check_config),
        ..BASE
    },
    SettingDef {
        name: "print_config",
        long: Some("print-config"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Print the fully resolved configuration and exit (implies --check-config).",
        apply: |s, v, _| {
            s.print_config = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.print_config),
        ..BASE
    },
    SettingDef {
        name: "forwarded_allow_ips",
        long: Some("forwarded-allow-ips"),
        metavar: "STRING",
        default: DefaultValue::Str("127.0.0.1,::1"),
        env_default: Some(EnvDefault {
            var: "FORWARDED_ALLOW_IPS",
            value: |ips| Value::from(ips),
        }),
        help: "Comma-separated IPs or CIDR networks of front-ends trusted to set secure headers; '*' trusts all.",
        apply: |s, v, _| {
            s.forwarded_allow_ips = allow_list(v)?;
            Ok(())
        },
        show: |s| t_str(&s.forwarded_allow_ips.to_string()),
        ..BASE
    },
    SettingDef {
        name: "secure_scheme_headers",
        cli: CliKind::None,
        default: DefaultValue::Pairs(&[
            ("X-FORWARDED-PROTOCOL", "ssl"),
            ("X-FORWARDED-PROTO", "https"),
            ("X-FORWARDED-SSL", "on"),
        ]),
        help: "Headers and values a trusted front-end uses to mark a request as HTTPS (a TOML table; HEADER=VALUE,... in the environment).",
        apply: |s, v, _| {
            // Header names are compared upper-cased; a sorted map drops duplicates.
            let map: std::collections::BTreeMap<String, String> = values::pairs(v)?
                .into_iter()
                .map(|(k, val)| (k.to_ascii_uppercase(), val))
                .collect();
            s.secure_scheme_headers = map.into_iter().collect();
            Ok(())
        },
        show: |s| {
            let table: toml::Table = s
                .secure_scheme_headers
                .iter()
                .map(|(k, v)| (k.clone(), Toml::String(v.clone())))
                .collect();
            Some(Toml::Table(table))
        },
        ..BASE
    },
    SettingDef {
        name: "forwarder_headers",
        long: Some("forwarder-headers"),
        metavar: "STRING",
        default: DefaultValue::Str("SCRIPT_NAME,PATH_INFO"),
        help: "Comma-separated environ keys a trusted front-end may set through headers.",
        apply: |s, v, _| {
            s.forwarder_headers = values::comma_list(v)?;
            Ok(())
        },
        show: |s| t_str(&s.forwarder_headers.join(",")),
        ..BASE
    },
    SettingDef {
        name: "proxy_protocol",
        long: Some("proxy-protocol"),
        metavar: "MODE",
        cli: CliKind::OptionalValue("auto"),
        default: DefaultValue::Str("off"),
        help: "Accept a PROXY protocol header at the start of connections from --proxy-allow-from peers: off, v1 (text), v2 (binary) or auto (either); the flag alone means auto. true/false are auto/off.",
        apply: |s, v, _| {
            s.proxy_protocol = match v {
                Value::Bool(_, on) => {
                    if *on {
                        ProxyProtocol::Auto
                    } else {
                        ProxyProtocol::Off
                    }
                }
                _ => parsed(v)?,
            };
            Ok(())
        },
        show: |s| t_str(s.proxy_protocol.as_str()),
        ..BASE
    },
    SettingDef {
        name: "proxy_allow_ips",
        long: Some("proxy-allow-from"),
        metavar: "STRING",
        default: DefaultValue::Str("127.0.0.1,::1"),
        help: "Comma-separated IPs or CIDR networks allowed to send PROXY protocol headers; '*' allows all.",
        apply: |s, v, _| {
            s.proxy_allow_ips = allow_list(v)?;
            Ok(())
        },
        show: |s| t_str(&s.proxy_allow_ips.to_string()),
        ..BASE
    },
    SettingDef {
        name: "header_map",
        long: Some("header-map"),
        metavar: "STRING",
        default: DefaultValue::Str("drop"),
        help: "What to do with header names that cannot be mapped into environ unambiguously: drop, refuse or dangerous.",
        apply: |s, v, _| {
            s.header_map = parsed(v)?;
            Ok(())
        },
        show: |s| t_str(s.header_map.as_str()),
        ..BASE
    },
    SettingDef {
        name: "permit_obsolete_folding",
        long: Some("permit-obsolete-folding"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Permit requests using obsolete HTTP line folding in header values.",
        apply: |s, v, _| {
            s.permit_obsolete_folding = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.permit_obsolete_folding),
        ..BASE
    },
    SettingDef {
        name: "strip_header_spaces",
        long: Some("strip-header-spaces"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Strip spaces between a header name and the ':' (unsafe; not HTTP/1.1 compliant).",
        apply: |s, v, _| {
            s.strip_header_spaces = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.strip_header_spaces),
        ..BASE
    },
    SettingDef {
        name: "permit_unconventional_http_method",
        long: Some("permit-unconventional-http-method"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Permit HTTP methods that do not follow the usual conventions.",
        apply: |s, v, _| {
            s.permit_unconventional_http_method = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.permit_unconventional_http_method),
        ..BASE
    },
    SettingDef {
        name: "permit_unconventional_http_version",
        long: Some("permit-unconventional-http-version"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Permit HTTP versions other than 1.0 and 1.1.",
        apply: |s, v, _| {
            s.permit_unconventional_http_version = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.permit_unconventional_http_version),
        ..BASE
    },
    SettingDef {
        name: "casefold_http_method",
        long: Some("casefold-http-method"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Transform received HTTP methods to upper case.",
        apply: |s, v, _| {
            s.casefold_http_method = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.casefold_http_method),
        ..BASE
    },
    SettingDef {
        name: "header_timeout",
        long: Some("header-timeout"),
        metavar: "INT",
        default: DefaultValue::Int(10),
        help: "Seconds a client may take to send a complete request head (and a body of up to 1 MiB, read ahead with it); answered 408 after.",
        apply: |s, v, _| {
            s.header_timeout = values::integer(v, 1, 3600)?;
            Ok(())
        },
        show: |s| t_int(s.header_timeout),
        ..BASE
    },
    SettingDef {
        name: "body_timeout",
        long: Some("body-timeout"),
        metavar: "INT",
        default: DefaultValue::Int(30),
        help: "Seconds a request body may go without a byte arriving while the app reads it; the client gets 408 and the app's read raises OSError.",
        apply: |s, v, _| {
            s.body_timeout = values::integer(v, 1, 3600)?;
            Ok(())
        },
        show: |s| t_int(s.body_timeout),
        ..BASE
    },
    SettingDef {
        name: "send_timeout",
        long: Some("send-timeout"),
        metavar: "INT",
        default: DefaultValue::Int(30),
        help: "Seconds a response may go without the client taking a byte; the connection is then dropped and the app's iterable closed.",
        apply: |s, v, _| {
            s.send_timeout = values::integer(v, 1, 3600)?;
            Ok(())
        },
        show: |s| t_int(s.send_timeout),
        ..BASE
    },
    SettingDef {
        name: "response_buffer",
        long: Some("response-buffer"),
        metavar: "BYTES",
        default: DefaultValue::Int(262144),
        help: "Bytes of response each connection buffers beyond what the socket takes; past it the app's iterable is pulled only as the client reads.",
        apply: |s, v, _| {
            s.response_buffer = values::integer(v, 16384, 67108864)?;
            Ok(())
        },
        show: |s| t_int(s.response_buffer),
        ..BASE
    },
    SettingDef {
        name: "http_parser",
        long: Some("http-parser"),
        metavar: "STRING",
        default: DefaultValue::Str("auto"),
        help: "The HTTP parser: only auto, ferricorn's own parser. gunicorn's fast (gunicorn_h1c) and python parsers do not exist here.",
        apply: |_, v, _| {
            let name = values::string(v)?.to_ascii_lowercase();
            match name.as_str() {
                "auto" => Ok(()),
                "fast" | "python" => Err(Invalid::new(
                    "ferricorn has one HTTP parser, its own; gunicorn's fast and python parsers do not exist here; expected auto",
                )),
                _ => Err(Invalid::new("expected auto")),
            }
        },
        show: |_| t_str("auto"),
        ..BASE
    },
    SettingDef {
        name: "certfile",
        long: Some("certfile"),
        metavar: "FILE",
        example: Some("\"/etc/ssl/certs/server.pem\""),
        help: "TLS certificate chain (PEM). Serving TLS when set, with --keyfile.",
        apply: |s, v, c| {
            s.certfile = values::opt_string(v)?.map(|p| values::absolute(c.cwd, Path::new(&p)));
            Ok(())
        },
        show: |s| s.certfile.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "keyfile",
        long: Some("keyfile"),
        metavar: "FILE",
        example: Some("\"/etc/ssl/private/server.key\""),
        help: "TLS private key (PEM).",
        apply: |s, v, c| {
            s.keyfile = values::opt_string(v)?.map(|p| values::absolute(c.cwd, Path::new(&p)));
            Ok(())
        },
        show: |s| s.keyfile.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "ca_certs",
        long: Some("ca-certs"),
        metavar: "FILE",
        example: Some("\"/etc/ssl/certs/clients-ca.pem\""),
        help: "CA certificates (PEM) that client certificates must chain to.",
        apply: |s, v, c| {
            s.ca_certs = values::opt_string(v)?.map(|p| values::absolute(c.cwd, Path::new(&p)));
            Ok(())
        },
        show: |s| s.ca_certs.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "cert_reqs",
        long: Some("cert-reqs"),
        metavar: "INT",
        default: DefaultValue::Int(0),
        help: "Client certificates: 0 not requested, 1 optional, 2 required (mutual TLS).",
        apply: |s, v, _| {
            s.cert_reqs = u8::try_from(values::integer(v, 0, 2)?).unwrap_or(0);
            Ok(())
        },
        show: |s| t_int(s.cert_reqs),
        ..BASE
    },
    SettingDef {
        name: "ciphers",
        long: Some("ciphers"),
        metavar: "STRING",
        example: Some("\"TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256\""),
        help: "Colon-separated TLS cipher suites to allow (IANA or OpenSSL names rustls supports).",
        apply: |s, v, _| {
            s.ciphers = values::opt_string(v)?.filter(|c| !c.is_empty());
            Ok(())
        },
        show: |s| s.ciphers.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "ssl_version",
        long: Some("ssl-version"),
        metavar: "STRING",
        default: DefaultValue::Str("TLS"),
        help: "TLS versions to serve (deprecated and ignored by gunicorn; honoured here): TLS, TLS_SERVER or SSLv23 for TLS 1.2 and 1.3, TLSv1_2 for 1.2 only, TLSv1_3 for 1.3 only. rustls does not implement SSLv3, TLS 1.0 or 1.1.",
        apply: |s, v, _| {
            // A TOML integer is one of Python's ssl.PROTOCOL_* numbers.
            s.ssl_version = values::display(v)
                .parse::<SslVersion>()
                .map_err(|e| Invalid::new(e.reason()))?;
            Ok(())
        },
        show: |s| t_str(s.ssl_version.as_str()),
        ..BASE
    },
    SettingDef {
        name: "do_handshake_on_connect",
        long: Some("do-handshake-on-connect"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Accepted for gunicorn compatibility, no effect: the TLS handshake always runs on the worker's event loop as soon as a connection is accepted, before its request is read, so a slow handshake never holds the app either way.",
        apply: |s, v, _| {
            s.do_handshake_on_connect = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.do_handshake_on_connect),
        ..BASE
    },
    SettingDef {
        name: "suppress_ragged_eofs",
        long: Some("suppress-ragged-eofs"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(true),
        help: "Accepted for gunicorn compatibility, no effect: a TLS peer that closes without close_notify ends its connection quietly, which is what gunicorn does with either value.",
        apply: |s, v, _| {
            s.suppress_ragged_eofs = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.suppress_ragged_eofs),
        ..BASE
    },
    SettingDef {
        name: "http_protocols",
        long: Some("http-protocols"),
        metavar: "STRING",
        default: DefaultValue::Str("h1"),
        help: "Comma-separated protocols to offer: h1, h2 (h2 by ALPN over TLS).",
        apply: |s, v, _| {
            let protocols = values::comma_list(v)?;
            if protocols.is_empty() {
                return Err(Invalid::new("expected h1, h2 or h1,h2"));
            }
            for protocol in &protocols {
                if protocol != "h1" && protocol != "h2" {
                    return Err(Invalid::new("expected a comma-separated list of h1 and h2"));
                }
            }
            s.http_protocols = protocols;
            Ok(())
        },
        show: |s| t_str(&s.http_protocols.join(",")),
        ..BASE
    },
    SettingDef {
        name: "http2_cleartext",
        long: Some("http2-cleartext"),
        metavar: "MODE",
        default: DefaultValue::Str("off"),
        help: "HTTP/2 without TLS: off, or prior-knowledge (h2c from trusted peers).",
        apply: |s, v, _| {
            let mode = values::string(v)?;
            if mode != "off" && mode != "prior-knowledge" {
                return Err(Invalid::new("expected off or prior-knowledge"));
            }
            s.http2_cleartext = mode;
            Ok(())
        },
        show: |s| t_str(&s.http2_cleartext),
        ..BASE
    },
    SettingDef {
        name: "http2_max_concurrent_streams",
        long: Some("http2-max-concurrent-streams"),
        metavar: "INT",
        default: DefaultValue::Int(100),
        help: "HTTP/2: most concurrent streams per connection.",
        apply: |s, v, _| {
            s.http2_max_concurrent_streams = values::u32_in(v, 1, u32::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.http2_max_concurrent_streams),
        ..BASE
    },
    SettingDef {
        name: "http2_initial_window_size",
        long: Some("http2-initial-window-size"),
        metavar: "INT",
        default: DefaultValue::Int(65535),
        help: "HTTP/2: initial flow-control window of each stream, in bytes.",
        apply: |s, v, _| {
            s.http2_initial_window_size = values::u32_in(v, 65535, 2_147_483_647)?;
            Ok(())
        },
        show: |s| t_int(s.http2_initial_window_size),
        ..BASE
    },
    SettingDef {
        name: "http2_max_frame_size",
        long: Some("http2-max-frame-size"),
        metavar: "INT",
        default: DefaultValue::Int(16384),
        help: "HTTP/2: largest frame payload accepted, 16384 to 16777215.",
        apply: |s, v, _| {
            s.http2_max_frame_size = values::u32_in(v, 16_384, 16_777_215)?;
            Ok(())
        },
        show: |s| t_int(s.http2_max_frame_size),
        ..BASE
    },
    SettingDef {
        name: "http2_max_header_list_size",
        long: Some("http2-max-header-list-size"),
        metavar: "INT",
        default: DefaultValue::Int(65536),
        help: "HTTP/2: largest header list accepted, in bytes.",
        apply: |s, v, _| {
            s.http2_max_header_list_size = values::u32_in(v, 1, u32::MAX)?;
            Ok(())
        },
        show: |s| t_int(s.http2_max_header_list_size),
        ..BASE
    },
    // ---- operability: control socket, metrics, health, log format ----
    SettingDef {
        name: "control_socket",
        long: Some("control-socket"),
        metavar: "PATH",
        example: Some("\"/run/ferricorn/ferricorn.ctl\""),
        help: "The control socket (gunicornc's protocol). Default: $XDG_RUNTIME_DIR/ferricorn.ctl, else ~/.ferricorn/ferricorn.ctl.",
        apply: |s, v, ctx| {
            s.ops.control_socket = values::opt_string(v)?
                .filter(|p| !p.is_empty())
                .map(|p| values::absolute(ctx.cwd, Path::new(&p)));
            Ok(())
        },
        show: |s| s.ops.control_socket.as_deref().and_then(t_path),
        ..BASE
    },
    SettingDef {
        name: "control_socket_mode",
        long: Some("control-socket-mode"),
        metavar: "INT",
        default: DefaultValue::Int(0o600),
        help: "Permission bits of the control socket: octal as 0o600 or 0600, or decimal.",
        apply: |s, v, _| {
            s.ops.control_socket_mode = umask(v)?;
            Ok(())
        },
        show: |s| t_int(s.ops.control_socket_mode),
        ..BASE
    },
    SettingDef {
        name: "control_socket_disable",
        long: Some("no-control-socket"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Do not serve a control socket.",
        apply: |s, v, _| {
            s.ops.control_socket_disable = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.ops.control_socket_disable),
        ..BASE
    },
    SettingDef {
        name: "metrics_bind",
        long: Some("metrics-bind"),
        metavar: "ADDRESS",
        example: Some("\"127.0.0.1:9090\""),
        help: "Serve Prometheus /metrics, /livez and /readyz here (HOST:PORT or unix:PATH); off if unset.",
        apply: |s, v, _| {
            s.ops.metrics_bind = match values::opt_string(v)?.filter(|t| !t.is_empty()) {
                None => None,
                Some(text) => match text.parse::<Bind>() {
                    Ok(Bind::Fd(_)) => {
                        return Err(Invalid::at(text, "expected HOST:PORT or unix:PATH"))
                    }
                    Ok(bind) => Some(bind),
                    Err(e) => return Err(Invalid::at(text, e.reason())),
                },
            };
            Ok(())
        },
        show: |s| s.ops.metrics_bind.as_ref().map(Bind::to_string).and_then(|b| t_str(&b)),
        ..BASE
    },
    SettingDef {
        name: "shutdown_delay",
        long: Some("shutdown-delay"),
        metavar: "SECONDS",
        default: DefaultValue::Int(0),
        help: "On TERM, report not-ready on /readyz and keep serving this long before the graceful stop (for load balancers to drain).",
        apply: |s, v, _| {
            s.ops.shutdown_delay = values::integer(v, 0, 3600)?;
            Ok(())
        },
        show: |s| t_int(s.ops.shutdown_delay),
        ..BASE
    },
    SettingDef {
        name: "statsd_host",
        long: Some("statsd-host"),
        metavar: "STATSD_ADDR",
        example: Some("\"localhost:8125\""),
        help: "Send StatsD metrics (gunicorn's names) to HOST[:PORT], [IPv6]:PORT or unix://PATH.",
        apply: |s, v, _| {
            s.ops.statsd_host = match values::opt_string(v)?.filter(|t| !t.is_empty()) {
                None => None,
                Some(text) => Some(
                    text.parse::<StatsdAddr>()
                        .map_err(|e| Invalid::at(text.clone(), e.reason()))?,
                ),
            };
            Ok(())
        },
        show: |s| s.ops.statsd_host.as_ref().and_then(|a| t_str(&a.to_string())),
        ..BASE
    },
    SettingDef {
        name: "statsd_prefix",
        long: Some("statsd-prefix"),
        metavar: "STATSD_PREFIX",
        default: DefaultValue::Str(""),
        help: "Prefix for StatsD metric names; a dot is added.",
        apply: |s, v, _| {
            s.ops.statsd_prefix = statsd_prefix(&values::string(v)?);
            Ok(())
        },
        show: |s| t_str(&s.ops.statsd_prefix),
        ..BASE
    },
    SettingDef {
        name: "dogstatsd_tags",
        long: Some("dogstatsd-tags"),
        metavar: "DOGSTATSD_TAGS",
        default: DefaultValue::Str(""),
        help: "Comma-separated DogStatsD tags added to every metric, e.g. env:prod,app:web.",
        apply: |s, v, _| {
            let tags = values::string(v)?;
            if tags.contains(['|', '\n']) {
                return Err(Invalid::at(tags, "tags may not contain '|' or a newline"));
            }
            s.ops.dogstatsd_tags = tags.trim().to_string();
            Ok(())
        },
        show: |s| t_str(&s.ops.dogstatsd_tags),
        ..BASE
    },
    SettingDef {
        name: "enable_backlog_metric",
        long: Some("enable-backlog-metric"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Send the listen backlog length as the StatsD metric gunicorn.backlog (Linux).",
        apply: |s, v, _| {
            s.ops.enable_backlog_metric = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.ops.enable_backlog_metric),
        ..BASE
    },
    SettingDef {
        name: "log_format",
        long: Some("log-format"),
        metavar: "FORMAT",
        default: DefaultValue::Str("text"),
        help: "Error and access log lines: text (gunicorn's) or json (one ECS object per line).",
        apply: |s, v, _| {
            s.ops.log_format = parsed(v)?;
            Ok(())
        },
        show: |s| t_str(s.ops.log_format.as_str()),
        ..BASE
    },
    SettingDef {
        name: "syslog",
        long: Some("log-syslog"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "Also send the error log and the access log to syslog (see --log-syslog-to).",
        apply: |s, v, _| {
            s.ops.syslog.enabled = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.ops.syslog.enabled),
        ..BASE
    },
    SettingDef {
        name: "syslog_addr",
        long: Some("log-syslog-to"),
        metavar: "SYSLOG_ADDR",
        default: DefaultValue::Str("udp://localhost:514"),
        help: "Where syslog lines go: unix://PATH[#dgram|#stream], udp://HOST[:PORT] or tcp://HOST[:PORT].",
        apply: |s, v, _| {
            let text = values::string(v)?;
            s.ops.syslog.addr = text
                .parse::<SyslogAddr>()
                .map_err(|e| Invalid::at(text.clone(), e.reason()))?;
            Ok(())
        },
        show: |s| t_str(&s.ops.syslog.addr.to_string()),
        ..BASE
    },
    SettingDef {
        name: "syslog_prefix",
        long: Some("log-syslog-prefix"),
        metavar: "SYSLOG_PREFIX",
        help: "Syslog program name gunicorn.<prefix>.<error|access> (default: the process name).",
        apply: |s, v, _| {
            s.ops.syslog.prefix = values::opt_string(v)?;
            Ok(())
        },
        show: |s| s.ops.syslog.prefix.as_deref().and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "syslog_facility",
        long: Some("log-syslog-facility"),
        metavar: "SYSLOG_FACILITY",
        default: DefaultValue::Str("user"),
        help: "Syslog facility name (user, daemon, local0 to local7, ...).",
        apply: |s, v, _| {
            let text = values::string(v)?;
            s.ops.syslog.facility = crate::syslog::facility_code(&text)
                .map_err(|e| Invalid::at(text.clone(), e.reason()))?;
            Ok(())
        },
        show: |s| t_str(crate::syslog::facility_name(s.ops.syslog.facility)),
        ..BASE
    },
    SettingDef {
        name: "disable_redirect_access_to_syslog",
        long: Some("disable-redirect-access-to-syslog"),
        cli: CliKind::Flag,
        default: DefaultValue::Bool(false),
        help: "With --log-syslog, keep access lines out of syslog.",
        apply: |s, v, _| {
            s.ops.syslog.disable_redirect_access = values::boolean(v)?;
            Ok(())
        },
        show: |s| t_bool(s.ops.syslog.disable_redirect_access),
        ..BASE
    },
    SettingDef {
        name: "slow_request_log",
        long: Some("slow-request-log"),
        metavar: "SECONDS",
        default: DefaultValue::Int(0),
        help: "Log a warning, with its duration, for every request that took longer than this; 0 disables.",
        apply: |s, v, _| {
            s.ops.slow_request_log = values::integer(v, 0, u64::MAX / 1000)?;
            Ok(())
        },
        show: |s| t_int(s.ops.slow_request_log),
        ..BASE
    },
    // ---- end of operability ----
    SettingDef {
        name: "on_starting",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:on_starting\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called just before the master process is initialized: on_starting(server). An exception stops startup.",
        apply: |s, v, _| set_hook(s, "on_starting", v),
        show: |s| s.hook("on_starting").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "on_reload",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:on_reload\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called to recycle workers during a reload via SIGHUP: on_reload(server).",
        apply: |s, v, _| set_hook(s, "on_reload", v),
        show: |s| s.hook("on_reload").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "when_ready",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:when_ready\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called just after the server is started (every worker ready): when_ready(server).",
        apply: |s, v, _| set_hook(s, "when_ready", v),
        show: |s| s.hook("when_ready").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "pre_fork",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:pre_fork\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the master just before a worker is forked: pre_fork(server, worker).",
        apply: |s, v, _| set_hook(s, "pre_fork", v),
        show: |s| s.hook("pre_fork").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "post_fork",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:post_fork\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker just after it was forked, before the app is loaded: post_fork(server, worker).",
        apply: |s, v, _| set_hook(s, "post_fork", v),
        show: |s| s.hook("post_fork").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "post_worker_init",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:post_worker_init\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker just after it loaded the application: post_worker_init(worker).",
        apply: |s, v, _| set_hook(s, "post_worker_init", v),
        show: |s| s.hook("post_worker_init").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "worker_int",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:worker_int\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker when it receives SIGINT or SIGQUIT, before it exits: worker_int(worker).",
        apply: |s, v, _| set_hook(s, "worker_int", v),
        show: |s| s.hook("worker_int").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "worker_abort",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:worker_abort\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker when it receives SIGABRT (a timeout), before it exits: worker_abort(worker).",
        apply: |s, v, _| set_hook(s, "worker_abort", v),
        show: |s| s.hook("worker_abort").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "pre_exec",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:pre_exec\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the master just before a new master is started (USR2): pre_exec(server).",
        apply: |s, v, _| set_hook(s, "pre_exec", v),
        show: |s| s.hook("pre_exec").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "pre_request",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:pre_request\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker just before the app handles a request: pre_request(worker, req).",
        apply: |s, v, _| set_hook(s, "pre_request", v),
        show: |s| s.hook("pre_request").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "post_request",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:post_request\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker after the app handled a request: post_request(worker, req, environ, resp).",
        apply: |s, v, _| set_hook(s, "post_request", v),
        show: |s| s.hook("post_request").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "child_exit",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:child_exit\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the master just after a worker exited: child_exit(server, worker).",
        apply: |s, v, _| set_hook(s, "child_exit", v),
        show: |s| s.hook("child_exit").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "worker_exit",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:worker_exit\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the worker just before it exits: worker_exit(server, worker).",
        apply: |s, v, _| set_hook(s, "worker_exit", v),
        show: |s| s.hook("worker_exit").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "nworkers_changed",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:nworkers_changed\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the master when the number of workers changes (TTIN/TTOU/HUP): nworkers_changed(server, new_value, old_value).",
        apply: |s, v, _| set_hook(s, "nworkers_changed", v),
        show: |s| s.hook("nworkers_changed").and_then(t_str),
        ..BASE
    },
    SettingDef {
        name: "on_exit",
        cli: CliKind::None,
        metavar: "MODULE:CALLABLE",
        example: Some("\"hooks:on_exit\""),
        help: "Server hook, a Python callable as MODULE:CALLABLE. Called in the master just before it exits: on_exit(server).",
        apply: |s, v, _| set_hook(s, "on_exit", v),
        show: |s| s.hook("on_exit").and_then(t_str),
        ..BASE
    },
];

/// A gunicorn setting ferricorn does not implement: not yet, or (with
/// `why`) because it cannot mean anything in a server that is not Python.
pub(crate) struct Unsupported {
    /// gunicorn's setting name (also refused as a TOML key and `FERRICORN_` variable).
    pub name: &'static str,
    /// Its command-line flags, dashes included; empty for config-file-only settings.
    pub flags: &'static [&'static str],
    /// Whether the flags take a value (so the value is not mistaken for APP_MODULE).
    pub takes_value: bool,
    /// Why it can never work here and what to use instead.
    pub why: Option<&'static str>,
}

const fn flag(name: &'static str, flags: &'static [&'static str]) -> Unsupported {
    Unsupported {
        name,
        flags,
        takes_value: false,
        why: None,
    }
}

const fn opt(name: &'static str, flags: &'static [&'static str]) -> Unsupported {
    Unsupported {
        name,
        flags,
        takes_value: true,
        why: None,
    }
}

const fn file_only(name: &'static str) -> Unsupported {
    Unsupported {
        name,
        flags: &[],
        takes_value: false,
        why: None,
    }
}

/// `unsupported` refused for good, saying `why`.
const fn never(unsupported: Unsupported, why: &'static str) -> Unsupported {
    Unsupported {
        why: Some(why),
        ..unsupported
    }
}

const PASTE_WHY: &str =
    "it loads a PasteDeploy .ini file through gunicorn's Python application loader; \
     give APP_MODULE a module that builds the app instead, e.g. \
     application = paste.deploy.loadapp('config:/path/to/app.ini')";

/// Every other gunicorn setting.
pub(crate) static UNSUPPORTED: &[Unsupported] = &[
    never(
        flag("spew", &["--spew"]),
        "it traces every line of gunicorn's own Python code, and ferricorn's server is not Python; \
         to trace the app, call sys.settrace from a post_worker_init hook",
    ),
    file_only("tmp_upload_dir"),
    never(
        opt("logger_class", &["--logger-class"]),
        "it names a Python subclass of gunicorn.glogging.Logger, and ferricorn's logging is not \
         Python; use --error-logfile, --access-logfile, --access-logformat and --log-level \
         (gunicorn's line formats), or --log-config/logconfig_dict for Python logging handlers",
    ),
    file_only("default_proc_name"),
    never(opt("paste", &["--paste", "--paster"]), PASTE_WHY),
    never(opt("raw_paste_global_conf", &["--paste-global"]), PASTE_WHY),
    opt("protocol", &["--protocol"]),
    opt("uwsgi_allow_ips", &["--uwsgi-allow-from"]),
    opt("dirty_apps", &["--dirty-app"]),
    opt("dirty_workers", &["--dirty-workers"]),
    opt("dirty_timeout", &["--dirty-timeout"]),
    opt("dirty_threads", &["--dirty-threads"]),
    opt("dirty_graceful_timeout", &["--dirty-graceful-timeout"]),
    file_only("tolerate_dangerous_framing"),
    file_only("ssl_context"),
    file_only("on_dirty_starting"),
    file_only("dirty_post_fork"),
    file_only("dirty_worker_init"),
    file_only("dirty_worker_exit"),
];

/// The unsupported gunicorn setting named `name`.
pub(crate) fn find_unsupported(name: &str) -> Option<&'static Unsupported> {
    UNSUPPORTED.iter().find(|u| u.name == name)
}
