//! The layers, lowest precedence first: defaults (including gunicorn's
//! `WEB_CONCURRENCY`, `PORT` and `FORWARDED_ALLOW_IPS`), the TOML config file,
//! `FERRICORN_<NAME>` variables, `FERRICORN_CMD_ARGS`, the command line.
//!
//! Each layer is a figment provider; figment merges them and its metadata tells
//! which layer supplied each final value. Every value of every layer is
//! validated, not only the winners, so a bad value never hides behind an
//! override (gunicorn, too, rejects a bad value as soon as it is read).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::error::ConfigError;
use crate::loaded::Loaded;
use crate::settings::Settings;
use crate::source::Source;
use crate::table::{self, CliKind, Ctx, SettingDef, SETTINGS, UNSUPPORTED};
use crate::types::WorkerClass;
use crate::values::{self, Invalid};
use crate::{cli, shell};

/// The config file read when none is named.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "ferricorn.toml";

#[derive(Debug, Clone)]
enum LayerKind {
    Default,
    EnvDefault(&'static str),
    File(PathBuf),
    Env,
    CmdArgs,
    CommandLine,
}

impl LayerKind {
    fn source(&self, key: &str) -> Source {
        match self {
            LayerKind::Default => Source::Default,
            LayerKind::EnvDefault(var) => Source::Env((*var).to_string()),
            LayerKind::File(path) => Source::ConfigFile(path.clone()),
            LayerKind::Env => Source::Env(table::env_var(key)),
            LayerKind::CmdArgs => Source::CmdArgsEnv,
            LayerKind::CommandLine => Source::CommandLine,
        }
    }

    /// Unique per layer: figment metadata is matched back to layers by name.
    fn label(&self) -> String {
        match self {
            LayerKind::Default => "defaults".to_string(),
            LayerKind::EnvDefault(var) => format!("env default {var}"),
            LayerKind::File(path) => format!("config file {}", path.display()),
            LayerKind::Env => "FERRICORN_* variables".to_string(),
            LayerKind::CmdArgs => "FERRICORN_CMD_ARGS".to_string(),
            LayerKind::CommandLine => "command line".to_string(),
        }
    }
}

struct Layer {
    kind: LayerKind,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.kind.label())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = Map::new();
        data.insert(Profile::Default, self.values.clone());
        Ok(data)
    }
}

/// See [`crate::load`].
pub(crate) fn load(
    args: Vec<OsString>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Loaded, ConfigError> {
    let ctx = Ctx { cwd };

    let command_line = Layer {
        kind: LayerKind::CommandLine,
        values: cli::parse(args, &Source::CommandLine)?,
    };
    let cmd_args = match env.get("FERRICORN_CMD_ARGS") {
        Some(text) => {
            let words = shell::split(text).map_err(|e| ConfigError::Usage {
                message: format!("cannot split FERRICORN_CMD_ARGS into arguments: {e}"),
            })?;
            let argv = std::iter::once(OsString::from("ferricorn"))
                .chain(words.into_iter().map(OsString::from))
                .collect();
            Some(Layer {
                kind: LayerKind::CmdArgs,
                values: cli::parse(argv, &Source::CmdArgsEnv)?,
            })
        }
        None => None,
    };
    let env_layer = env_layer(env)?;

    let config_file = {
        let named = [Some(&command_line), cmd_args.as_ref(), Some(&env_layer)]
            .into_iter()
            .flatten()
            .find_map(|layer| {
                let value = layer.values.get("config")?;
                Some((value, layer.kind.source("config")))
            });
        match named {
            Some((value, origin)) => Some(config_path(value, &origin, cwd)?),
            None => {
                let default = cwd.join(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            }
        }
    };

    let mut layers = vec![default_layer(cwd)];
    layers.extend(env_default_layers(env));
    if let Some(path) = &config_file {
        layers.push(file_layer(path)?);
    }
    layers.push(env_layer);
    layers.extend(cmd_args);
    layers.push(command_line);

    check_every_value(&layers, &ctx)?;
    let (mut settings, sources) = resolve(&layers, &ctx)?;
    settings.config_file = config_file;
    // gunicorn's rule: the sync worker with several threads is the threaded worker.
    if settings.worker_class == WorkerClass::Sync && settings.threads > 1 {
        settings.worker_class = WorkerClass::Gthread;
    }
    Ok(Loaded::new(settings, sources))
}

fn invalid(def: &SettingDef, origin: Source, raw: &Value, e: Invalid) -> ConfigError {
    ConfigError::InvalidValue {
        setting: def.label_for(&origin),
        value: e.value.unwrap_or_else(|| values::display(raw)),
        reason: e.reason,
        origin,
    }
}

fn config_path(value: &Value, origin: &Source, cwd: &Path) -> Result<PathBuf, ConfigError> {
    let text = values::display(value);
    let text = text.trim();
    let fail = |reason: &str| ConfigError::InvalidValue {
        setting: table::find("config")
            .map_or_else(|| "config".to_string(), |d| d.label_for(origin)),
        origin: origin.clone(),
        value: text.to_string(),
        reason: reason.to_string(),
    };
    if text.starts_with("python:") || text.ends_with(".py") {
        return Err(fail(
            "Python config files are not supported yet; ferricorn reads TOML config files",
        ));
    }
    let path = text.strip_prefix("file:").unwrap_or(text);
    if path.is_empty() {
        return Err(fail("expected a file path"));
    }
    Ok(values::absolute(cwd, Path::new(path)))
}

fn default_layer(cwd: &Path) -> Layer {
    let values = SETTINGS
        .iter()
        .filter_map(|def| Some((def.name.to_string(), def.default_value(cwd)?)))
        .collect();
    Layer {
        kind: LayerKind::Default,
        values,
    }
}

fn env_default_layers(env: &BTreeMap<String, String>) -> Vec<Layer> {
    SETTINGS
        .iter()
        .filter_map(|def| {
            let default = def.env_default.as_ref()?;
            let text = env.get(default.var)?;
            let mut values = Dict::new();
            values.insert(def.name.to_string(), (default.value)(text));
            Some(Layer {
                kind: LayerKind::EnvDefault(default.var),
                values,
            })
        })
        .collect()
}

fn env_layer(env: &BTreeMap<String, String>) -> Result<Layer, ConfigError> {
    for unsupported in UNSUPPORTED {
        let var = table::env_var(unsupported.name);
        if env.contains_key(&var) {
            return Err(ConfigError::UnsupportedEnv {
                name: unsupported.name.to_string(),
                var,
                why: unsupported.why,
            });
        }
    }
    let mut values = Dict::new();
    for def in SETTINGS {
        let var = def.env_var();
        let Some(text) = env.get(&var) else { continue };
        let value = if def.cli == CliKind::Append {
            // Repeatable settings hold several words, split like FERRICORN_CMD_ARGS.
            let words = shell::split(text).map_err(|e| ConfigError::InvalidValue {
                setting: def.name.to_string(),
                origin: Source::Env(var.clone()),
                value: text.clone(),
                reason: format!("cannot split into words: {e}"),
            })?;
            Value::from(words)
        } else {
            Value::from(text.as_str())
        };
        values.insert(def.name.to_string(), value);
    }
    Ok(Layer {
        kind: LayerKind::Env,
        values,
    })
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let file_error = |reason: String| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        file_error(match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => e.to_string(),
        })
    })?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| file_error(e.to_string().trim_end().to_string()))?;
    let mut values = Dict::new();
    for (key, value) in table {
        if key == "config" {
            return Err(ConfigError::Usage {
                message: format!(
                    "setting 'config' in {} has no effect in a config file; use -c/--config or FERRICORN_CONFIG",
                    path.display()
                ),
            });
        }
        if key == "logconfig_dict" {
            // Nested as written: dictConfig tells lists from tables.
            let json = crate::logconfig::toml_to_json(value).to_string();
            values.insert(key, Value::from(json));
        } else if table::find(&key).is_some() {
            values.insert(key, toml_to_value(value));
        } else if let Some(unsupported) = table::find_unsupported(&key) {
            return Err(ConfigError::UnsupportedKey {
                name: key,
                path: path.to_path_buf(),
                why: unsupported.why,
            });
        } else {
            return Err(ConfigError::UnknownKey {
                key,
                path: path.to_path_buf(),
            });
        }
    }
    Ok(Layer {
        kind: LayerKind::File(path.to_path_buf()),
        values,
    })
}

fn toml_to_value(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::from(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::from(b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => {
            Value::from(items.into_iter().map(toml_to_value).collect::<Vec<Value>>())
        }
        // See `table::pairs_value`: tables travel as pair lists so layers replace them whole.
        toml::Value::Table(t) => Value::from(
            t.into_iter()
                .map(|(k, v)| Value::from(vec![Value::from(k), toml_to_value(v)]))
                .collect::<Vec<Value>>(),
        ),
    }
}

fn check_every_value(layers: &[Layer], ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    let mut scratch = Settings::blank(ctx.cwd);
    // Highest precedence first: the value the user most likely just typed is
    // the one reported if several are bad.
    for layer in layers.iter().rev() {
        for (key, raw) in &layer.values {
            let Some(def) = table::find(key) else {
                continue;
            };
            (def.apply)(&mut scratch, raw, ctx)
                .map_err(|e| invalid(def, layer.kind.source(key), raw, e))?;
        }
    }
    Ok(())
}

fn resolve(
    layers: &[Layer],
    ctx: &Ctx<'_>,
) -> Result<(Settings, BTreeMap<String, Source>), ConfigError> {
    let figment = layers
        .iter()
        .fold(Figment::new(), |figment, layer| figment.merge(layer));
    let mut settings = Settings::blank(ctx.cwd);
    let mut sources = BTreeMap::new();
    for def in SETTINGS {
        let source = match figment.find_value(def.name) {
            Ok(raw) => {
                let source = figment
                    .find_metadata(def.name)
                    .and_then(|md| layers.iter().find(|l| l.kind.label() == md.name))
                    .map_or(Source::Default, |layer| layer.kind.source(def.name));
                (def.apply)(&mut settings, &raw, ctx)
                    .map_err(|e| invalid(def, source.clone(), &raw, e))?;
                source
            }
            // No layer sets it: an optional setting left unset.
            Err(_) => Source::Default,
        };
        sources.insert(def.name.to_string(), source);
    }
    Ok((settings, sources))
}
