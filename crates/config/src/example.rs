//! The example config file, generated from the settings table so that it can
//! never disagree with it (a test compares it with `config/ferricorn.toml`).

use crate::table::{CliKind, DefaultValue, SettingDef, SETTINGS};

/// The text of the example `ferricorn.toml`: every key a config file accepts,
/// commented out, with its help text, flag, environment variable and default.
pub fn example_config() -> String {
    let mut out = String::from(
        "# Example ferricorn config file (TOML).\n\
         #\n\
         # ferricorn reads ./ferricorn.toml when it exists, or the file given with\n\
         # -c/--config or FERRICORN_CONFIG. Keys are gunicorn's setting names.\n\
         # Precedence, lowest first: defaults, this file, FERRICORN_<NAME>\n\
         # environment variables, FERRICORN_CMD_ARGS, the command line.\n\
         # Every line below is commented out and shows the default.\n\
         # Generated from the settings table (ferricorn_config::example_config).\n",
    );
    // `config` names this file; it cannot appear inside it.
    for def in SETTINGS.iter().filter(|def| def.name != "config") {
        out.push('\n');
        out.push_str(&format!("# {}\n", def.help));
        out.push_str(&format!("# {}\n", where_to_set(def)));
        out.push_str(&format!("# default: {}\n", def.default_doc()));
        out.push_str(&format!("#{} = {}\n", def.name, toml_default(def)));
    }
    out
}

fn where_to_set(def: &SettingDef) -> String {
    let mut flags: Vec<String> = Vec::new();
    if let Some(short) = def.short {
        flags.push(format!("-{short}"));
    }
    if let Some(long) = def.long {
        flags.push(format!("--{long}"));
    }
    flags.extend(def.aliases.iter().map(|a| format!("--{a}")));
    let cli = match def.cli {
        CliKind::Positional => format!("command line: {} (positional)", def.metavar),
        CliKind::None => "command line: none".to_string(),
        _ => format!("command line: {}", flags.join(", ")),
    };
    format!("{cli}; env: {}", def.env_var())
}

fn toml_default(def: &SettingDef) -> String {
    let value = match def.default {
        DefaultValue::Unset | DefaultValue::Cwd => {
            return def.example.unwrap_or("\"\"").to_string()
        }
        DefaultValue::Str(s) => toml::Value::String(s.to_string()),
        DefaultValue::Int(n) => toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
        DefaultValue::Bool(b) => toml::Value::Boolean(b),
        DefaultValue::List(items) => toml::Value::Array(
            items
                .iter()
                .map(|s| toml::Value::String((*s).to_string()))
                .collect(),
        ),
        DefaultValue::Pairs(pairs) => toml::Value::Table(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), toml::Value::String((*v).to_string())))
                .collect(),
        ),
    };
    value.to_string()
}
