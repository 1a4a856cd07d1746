//! Turning raw layer values into typed values.
//!
//! Raw values are figment `Value`s: always strings from the command line and
//! the environment, typed (integers, booleans, arrays, ...) from TOML. Each
//! helper accepts every shape a user can reasonably write and otherwise says
//! what it expected.

use std::path::{Component, Path, PathBuf};

use figment::value::{Num, Value};

/// A rejected value: what was wrong and, for lists, which element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// The offending part of the value, when it is not the whole value.
    pub value: Option<String>,
    /// What would have been accepted.
    pub reason: String,
}

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Invalid {
            value: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn at(value: impl Into<String>, reason: impl Into<String>) -> Self {
        Invalid {
            value: Some(value.into()),
            reason: reason.into(),
        }
    }
}

/// How a raw value is shown in error messages.
pub(crate) fn display(v: &Value) -> String {
    match v {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => num_text(n),
        Value::Empty(..) => String::new(),
        Value::Array(_, items) => {
            let parts: Vec<String> = items.iter().map(display).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Dict(_, dict) => {
            let parts: Vec<String> = dict
                .iter()
                .map(|(k, v)| format!("{k} = {}", display(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Any integer `Num` (figment keeps signed and unsigned apart), `None` for floats.
fn num_int(n: &Num) -> Option<i128> {
    n.to_i128()
        .or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
}

fn num_text(n: &Num) -> String {
    if let Some(i) = n.to_i128() {
        i.to_string()
    } else if let Some(u) = n.to_u128() {
        u.to_string()
    } else {
        n.to_f64().map_or_else(String::new, |f| f.to_string())
    }
}

/// A string, trimmed as gunicorn trims string settings.
pub(crate) fn string(v: &Value) -> Result<String, Invalid> {
    match v {
        Value::String(_, s) => Ok(s.trim().to_string()),
        Value::Char(_, c) => Ok(c.to_string()),
        _ => Err(Invalid::new("expected a string")),
    }
}

/// A string where empty means "not set".
pub(crate) fn opt_string(v: &Value) -> Result<Option<String>, Invalid> {
    let s = string(v)?;
    Ok((!s.is_empty()).then_some(s))
}

/// A non-empty string.
pub(crate) fn required_string(v: &Value, what: &str) -> Result<String, Invalid> {
    let s = string(v)?;
    if s.is_empty() {
        return Err(Invalid::new(format!("expected {what}")));
    }
    Ok(s)
}

/// An integer in `min..=max`, from a TOML integer or a string in Python's
/// `int(text, 0)` spellings (gunicorn's integer validator): decimal, `0x`,
/// `0o` or `0b` prefixed, `_` between digits.
pub(crate) fn integer(v: &Value, min: u64, max: u64) -> Result<u64, Invalid> {
    let n: Option<i128> = match v {
        Value::Num(_, n) => num_int(n),
        Value::String(_, s) => int_literal(s),
        _ => None,
    };
    match n.and_then(|n| u64::try_from(n).ok()) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Invalid::new(describe_range(min, max))),
    }
}

/// `text` as Python's `int(text, 0)` reads it (decimal leading zeros are
/// allowed here, where Python refuses them).
fn int_literal(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = match lower.get(..2) {
        Some("0x") => (16, &lower[2..]),
        Some("0o") => (8, &lower[2..]),
        Some("0b") => (2, &lower[2..]),
        _ => (10, lower.as_str()),
    };
    // Python allows one `_` right after a base prefix (`0x_ff`).
    let digits = match radix {
        10 => digits,
        _ => digits.strip_prefix('_').unwrap_or(digits),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let value = i128::from_str_radix(&digits.replace('_', ""), radix).ok()?;
    Some(if negative { -value } else { value })
}

fn describe_range(min: u64, max: u64) -> String {
    // Limits that only guard the storage type are not worth mentioning unless hit.
    if max >= u64::from(u32::MAX) {
        match min {
            0 => "expected a non-negative integer".to_string(),
            1 => "expected a positive integer".to_string(),
            _ => format!("expected an integer >= {min}"),
        }
    } else {
        format!("expected an integer from {min} to {max}")
    }
}

/// [`integer`] narrowed to `u32`.
pub(crate) fn u32_in(v: &Value, min: u32, max: u32) -> Result<u32, Invalid> {
    let n = integer(v, u64::from(min), u64::from(max))?;
    u32::try_from(n).map_err(|_| Invalid::new(describe_range(min.into(), max.into())))
}

/// [`integer`] narrowed to `usize`.
pub(crate) fn usize_in(v: &Value, min: usize, max: usize) -> Result<usize, Invalid> {
    let lo = u64::try_from(min).unwrap_or(u64::MAX);
    let hi = u64::try_from(max).unwrap_or(u64::MAX);
    let n = integer(v, lo, hi)?;
    usize::try_from(n).map_err(|_| Invalid::new(describe_range(lo, hi)))
}

/// A boolean: TOML `true`/`false`, or `true/false/1/0/yes/no` in any case.
pub(crate) fn boolean(v: &Value) -> Result<bool, Invalid> {
    const EXPECTED: &str = "expected a boolean (true/false, 1/0, yes/no)";
    match v {
        Value::Bool(_, b) => Ok(*b),
        Value::Num(_, n) => match num_int(n) {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(Invalid::new(EXPECTED)),
        },
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(Invalid::new(EXPECTED)),
        },
        _ => Err(Invalid::new(EXPECTED)),
    }
}

/// A list of strings: an array, or a single string as one element (gunicorn's
/// legacy form for `bind` and `raw_env`).
pub(crate) fn strings(v: &Value) -> Result<Vec<String>, Invalid> {
    match v {
        Value::Array(_, items) => items
            .iter()
            .map(|item| {
                string(item).map_err(|_| Invalid::at(display(item), "expected a list of strings"))
            })
            .collect(),
        other => string(other)
            .map(|s| vec![s])
            .map_err(|_| Invalid::new("expected a string or a list of strings")),
    }
}

/// A comma-separated list (gunicorn's form), or an array of strings; empty
/// entries are dropped.
pub(crate) fn comma_list(v: &Value) -> Result<Vec<String>, Invalid> {
    Ok(strings(v)?
        .iter()
        .flat_map(|part| part.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// Name/value pairs: a TOML table (stored as an array of `[key, value]` pairs,
/// see the layers module) or `KEY=VALUE,KEY=VALUE` text from the environment.
pub(crate) fn pairs(v: &Value) -> Result<Vec<(String, String)>, Invalid> {
    const EXPECTED: &str =
        "expected a table of header names to values (or HEADER=VALUE,... in the environment)";
    match v {
        Value::Array(_, items) => items
            .iter()
            .map(|item| match item {
                Value::Array(_, kv) => match kv.as_slice() {
                    [k, val] => Ok((string(k)?, string(val)?)),
                    _ => Err(Invalid::at(display(item), EXPECTED)),
                },
                _ => Err(Invalid::at(display(item), EXPECTED)),
            })
            .collect(),
        Value::Dict(_, dict) => dict
            .iter()
            .map(|(k, val)| {
                Ok((
                    k.clone(),
                    string(val).map_err(|_| Invalid::at(display(val), EXPECTED))?,
                ))
            })
            .collect(),
        Value::String(_, s) => s
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| match item.split_once('=') {
                Some((k, val)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_string(), val.trim().to_string()))
                }
                _ => Err(Invalid::at(item, EXPECTED)),
            })
            .collect(),
        _ => Err(Invalid::new(EXPECTED)),
    }
}

/// `path` made absolute against `cwd` and cleaned of `.`/`..` without touching
/// the filesystem, as Python's `abspath(normpath(join(cwd, path)))` does.
pub(crate) fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(integer(&Value::from("42"), 0, 100), Ok(42));
        assert_eq!(integer(&Value::from(" 7 "), 1, 100), Ok(7));
        assert_eq!(integer(&Value::from(5u8), 1, 100), Ok(5));
        assert_eq!(
            integer(&Value::from("-1"), 0, u64::MAX),
            Err(Invalid::new("expected a non-negative integer"))
        );
        assert_eq!(
            integer(&Value::from("0"), 1, u64::MAX),
            Err(Invalid::new("expected a positive integer"))
        );
        assert_eq!(
            integer(&Value::from("9000"), 0, 8190),
            Err(Invalid::new("expected an integer from 0 to 8190"))
        );
        assert!(integer(&Value::from("1.5"), 0, 10).is_err());
        assert!(integer(&Value::from(true), 0, 10).is_err());
        assert!(integer(&Value::from(2.5f64), 0, 10).is_err());
        assert!(u32_in(&Value::from("4294967296"), 1, u32::MAX).is_err());
        // Python's int(text, 0), as gunicorn's validate_pos_int.
        assert_eq!(integer(&Value::from("0x10"), 0, 100), Ok(16));
        assert_eq!(integer(&Value::from("0o17"), 0, 100), Ok(15));
        assert_eq!(integer(&Value::from("0B11"), 0, 100), Ok(3));
        assert_eq!(integer(&Value::from("8_190"), 0, 10_000), Ok(8190));
        assert_eq!(integer(&Value::from("+5"), 0, 10), Ok(5));
        for bad in ["0x", "1__0", "_1", "1_", "0xg", ""] {
            assert!(integer(&Value::from(bad), 0, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        for yes in ["true", "TRUE", "1", "yes", "Yes"] {
            assert_eq!(boolean(&Value::from(yes)), Ok(true), "{yes}");
        }
        for no in ["false", "0", "no", "NO"] {
            assert_eq!(boolean(&Value::from(no)), Ok(false), "{no}");
        }
        assert_eq!(boolean(&Value::from(true)), Ok(true));
        assert!(boolean(&Value::from("maybe")).is_err());
        assert!(boolean(&Value::from(2u8)).is_err());
    }

    #[test]
    fn lists_and_pairs() {
        assert_eq!(
            comma_list(&Value::from(" a, b,,c ")),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            comma_list(&Value::from(vec!["a", "b,c"])),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(strings(&Value::from("x")), Ok(vec!["x".into()]));
        assert_eq!(
            pairs(&Value::from("A=1, B = 2")),
            Ok(vec![("A".into(), "1".into()), ("B".into(), "2".into())])
        );
        assert!(pairs(&Value::from("A")).is_err());
    }

    #[test]
    fn absolute_paths() {
        let cwd = Path::new("/srv/app");
        assert_eq!(
            absolute(cwd, Path::new("sub/../x/.")),
            PathBuf::from("/srv/app/x")
        );
        assert_eq!(absolute(cwd, Path::new("/etc")), PathBuf::from("/etc"));
        assert_eq!(absolute(cwd, Path::new("..")), PathBuf::from("/srv"));
    }
}
