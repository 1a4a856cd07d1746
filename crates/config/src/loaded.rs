//! The result of loading: the settings plus where each value came from.

use std::collections::BTreeMap;

use crate::settings::Settings;
use crate::source::Source;
use crate::table::SETTINGS;

/// Resolved settings and the layer each one came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The resolved settings.
    pub settings: Settings,
    sources: BTreeMap<String, Source>,
}

impl Loaded {
    pub(crate) fn new(settings: Settings, sources: BTreeMap<String, Source>) -> Self {
        Loaded { settings, sources }
    }

    /// Every resolved setting, one per line, `name = value  # source`, sorted
    /// by name, as TOML. Unset optional settings are printed commented out as
    /// `# name = (unset)  # source`, so the whole output stays valid TOML.
    pub fn print_config(&self) -> String {
        let mut defs: Vec<_> = SETTINGS.iter().collect();
        defs.sort_by_key(|def| def.name);
        let mut out = String::new();
        for def in defs {
            let source = self
                .source_of(def.name)
                .map_or_else(|| Source::Default.to_string(), Source::to_string);
            let line = match (def.show)(&self.settings) {
                Some(value) => format!("{} = {value}  # {source}\n", def.name),
                None => format!("# {} = (unset)  # {source}\n", def.name),
            };
            out.push_str(&line);
        }
        out
    }

    /// Where the setting `name` (gunicorn's name, e.g. `workers`) got its
    /// value; `None` for names that are not settings.
    pub fn source_of(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }
}
