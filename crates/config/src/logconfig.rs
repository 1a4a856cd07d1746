//! gunicorn's Python logging configuration settings: `--log-config` (an
//! ini file for `logging.config.fileConfig`), `--log-config-json` (a JSON
//! file) and `logconfig_dict` (a table), both for `dictConfig`.

use std::path::PathBuf;

use figment::value::Value;

use crate::values::{self, Invalid};

/// The three settings as given; [`LogConfig::active`] says which one applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `--log-config`: an ini file for `logging.config.fileConfig`, absolute.
    pub file: Option<PathBuf>,
    /// `--log-config-json`: a JSON file for `logging.config.dictConfig`, absolute.
    pub json: Option<PathBuf>,
    /// `logconfig_dict`: a table for `logging.config.dictConfig`; `None`
    /// when unset or empty (gunicorn ignores an empty dict).
    pub dict: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The configuration that applies, by gunicorn's precedence: the dict,
/// then the JSON file, then the ini file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveLogConfig<'a> {
    /// `logconfig_dict`.
    Dict(&'a serde_json::Map<String, serde_json::Value>),
    /// `--log-config-json`.
    Json(&'a std::path::Path),
    /// `--log-config`.
    Ini(&'a std::path::Path),
}

impl ActiveLogConfig<'_> {
    /// The setting's name, for messages.
    pub fn setting(&self) -> &'static str {
        match self {
            ActiveLogConfig::Dict(_) => "logconfig_dict",
            ActiveLogConfig::Json(_) => "--log-config-json",
            ActiveLogConfig::Ini(_) => "--log-config",
        }
    }
}

impl LogConfig {
    /// The configuration that applies, `None` when none is set.
    pub fn active(&self) -> Option<ActiveLogConfig<'_>> {
        if let Some(dict) = &self.dict {
            return Some(ActiveLogConfig::Dict(dict));
        }
        if let Some(json) = &self.json {
            return Some(ActiveLogConfig::Json(json));
        }
        self.file.as_deref().map(ActiveLogConfig::Ini)
    }
}

/// `logconfig_dict` from its raw value: JSON object text (the environment;
/// a TOML table arrives as such text too, see the layers module).
pub(crate) fn dict(
    v: &Value,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Invalid> {
    const EXPECTED: &str = "expected a table (in TOML) or a JSON object (in the environment)";
    let text = values::string(v).map_err(|_| Invalid::new(EXPECTED))?;
    if text.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => Ok((!map.is_empty()).then_some(map)),
        Ok(_) => Err(Invalid::new(EXPECTED)),
        Err(error) => Err(Invalid::new(format!("{EXPECTED}: {error}"))),
    }
}

/// A TOML value as JSON, for `logconfig_dict`: tables keep their nesting
/// (other tables travel as pair lists, which would blur lists of pairs).
pub(crate) fn toml_to_json(v: toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => s.into(),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => f.into(),
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(items) => items.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(t) => t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect(),
    }
}

/// JSON as TOML, for `print_config`; `null`, which TOML lacks, becomes an
/// empty string.
pub(crate) fn json_to_toml(v: &serde_json::Value) -> toml::Value {
    match v {
        serde_json::Value::Null => toml::Value::String(String::new()),
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(n) => n.as_i64().map_or_else(
            || toml::Value::Float(n.as_f64().unwrap_or_default()),
            toml::Value::Integer,
        ),
        serde_json::Value::String(s) => toml::Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            toml::Value::Array(items.iter().map(json_to_toml).collect())
        }
        serde_json::Value::Object(map) => toml::Value::Table(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_toml(v)))
                .collect(),
        ),
    }
}
