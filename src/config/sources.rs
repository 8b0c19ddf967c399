//! Where configuration comes from: the main file (or the embedded default), the drop-in
//! directory, and the `HEALTHD_<SECTION>__<KEY>` / `HEALTHD_CHECKS__<NAME>__<KEY>` overlay.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::files::{read_drop_in, read_main_file};
use super::problems::Problems;
use super::{
    ConfigError, DEFAULT_CONFIG_PATH, EMBEDDED_DEFAULT, EMBEDDED_NAME, ENV_PREFIX, MAX_SHOWN,
    Sources,
};
use crate::model::printable;

/// How a file is named in messages: its path, with anything unprintable escaped (a file
/// name can hold a newline).
pub(crate) fn shown_path(path: &Path) -> String {
    printable(&path.display().to_string(), MAX_SHOWN)
}

pub(crate) fn read_main(
    sources: &Sources,
) -> Result<(String, String, Option<PathBuf>), ConfigError> {
    let path = match &sources.config {
        Some(p) => Some(p.clone()),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_PATH);
            p.exists().then_some(p)
        }
    };
    match path {
        Some(p) => {
            let name = shown_path(&p);
            let text = read_main_file(&p).map_err(|reason| ConfigError::new(&name, "", reason))?;
            let dir = p.parent().map(|d| d.join("probes.d"));
            Ok((name, text, dir))
        }
        None => Ok((
            EMBEDDED_NAME.to_string(),
            EMBEDDED_DEFAULT.to_string(),
            Some(Path::new(DEFAULT_CONFIG_PATH).with_file_name("probes.d")),
        )),
    }
}

/// The drop-ins of `dir` in name order, as (path, name for messages, text). Every entry
/// named `*.toml` must be a readable regular file (or a symlink to one); anything else
/// there is an error, not skipped (a check that silently vanishes is worse).
pub(crate) fn read_drop_ins(dir: &Path, problems: &mut Problems) -> Vec<(PathBuf, String, String)> {
    let shown = shown_path(dir);
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            problems.push(&shown, "", format!("cannot read drop-in directory: {e}"));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in listing {
        match entry {
            Ok(e) if e.path().extension().is_some_and(|x| x == "toml") => paths.push(e.path()),
            Ok(_) => {}
            Err(e) => problems.push(&shown, "", format!("cannot list drop-in directory: {e}")),
        }
    }
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let name = shown_path(&p);
            match read_drop_in(&p) {
                Ok(text) => Some((p, name, text)),
                Err(reason) => {
                    problems.push(&name, "", reason);
                    None
                }
            }
        })
        .collect()
}

/// Parse a config file into a table. `basic_toml` reads it first: it streams, where `toml`
/// lexes the whole text into tokens and events before building anything (about 40 MB at
/// peak for a file of 10,000 checks, which no later use of that memory gives back). A file
/// it refuses (a date-time, a TOML 1.1 form, or a mistake) is parsed again by `toml`, which
/// then either accepts it or words the error with its line and column.
pub(crate) fn parse_table(text: &str) -> Result<toml::Table, toml::de::Error> {
    match basic_toml::from_str::<toml::Table>(text) {
        Ok(table) => Ok(table),
        Err(_) => toml::from_str::<toml::Table>(text),
    }
}

/// The first line of a TOML parse error, which carries the line and column.
pub(crate) fn toml_reason(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(_) => {
            // The full Display has "TOML parse error at line L, column C" first.
            let full = e.to_string();
            let head = full.lines().next().unwrap_or_default().to_string();
            format!("{}: {msg}", head.trim_start_matches("TOML parse error at "))
        }
        None => msg,
    }
}

/// Apply `HEALTHD_A__B=value` overrides to the root table. Overrides of single checks
/// (`HEALTHD_CHECKS__<NAME>__<KEY>`) are returned to be applied once all files are read.
pub(crate) type CheckOverrides = BTreeMap<(String, String), (String, toml::Value)>;

pub(crate) fn apply_env(
    root: &mut toml::Table,
    env: &HashMap<String, String>,
    problems: &mut Problems,
    main_name: &str,
) -> CheckOverrides {
    use config::Source;
    // Every config key is at least two levels deep (`server.listen`), so only
    // `HEALTHD_<SECTION>__<KEY>` variables are overrides; single-level ones such as
    // HEALTHD_LOG_LEVEL and HEALTHD_LOG_FORMAT belong to the command line.
    let prefix = format!("{ENV_PREFIX}_");
    let env: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| {
            k.len() > prefix.len()
                && k[..prefix.len()].eq_ignore_ascii_case(&prefix)
                && k[prefix.len()..].contains("__")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let source = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(env));
    let mut overrides = CheckOverrides::new();
    let collected = match source.collect() {
        Ok(c) => c,
        Err(e) => {
            problems.push(main_name, "", format!("environment overrides: {e}"));
            return overrides;
        }
    };
    for (key, value) in collected {
        let var = format!("{ENV_PREFIX}_{}", key.to_uppercase().replace('.', "__"));
        let value = to_toml(value);
        let parts: Vec<&str> = key.split('.').collect();
        if parts.first() == Some(&"checks") {
            if parts.len() == 3 {
                overrides.insert((parts[1].to_string(), parts[2].to_string()), (var, value));
            } else {
                problems.errors.push(ConfigError::new(
                    format!("environment ({var})"),
                    key,
                    "check overrides take the form HEALTHD_CHECKS__<NAME>__<KEY>",
                ));
            }
            continue;
        }
        set_path(root, &parts, value);
        problems.env_keys.insert(key, var);
    }
    overrides
}

/// Set `a.b.c = value`, creating tables on the way (a non-table in the way is replaced).
fn set_path(table: &mut toml::Table, parts: &[&str], value: toml::Value) {
    match parts {
        [] => {}
        [last] => {
            table.insert(last.to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

fn to_toml(value: config::Value) -> toml::Value {
    use config::ValueKind;
    match value.kind {
        ValueKind::Boolean(b) => toml::Value::Boolean(b),
        ValueKind::I64(i) => toml::Value::Integer(i),
        ValueKind::I128(i) => toml::Value::Integer(i as i64),
        ValueKind::U64(u) => toml::Value::Integer(u as i64),
        ValueKind::U128(u) => toml::Value::Integer(u as i64),
        ValueKind::Float(f) => toml::Value::Float(f),
        ValueKind::String(s) => toml::Value::String(s),
        ValueKind::Array(a) => toml::Value::Array(a.into_iter().map(to_toml).collect()),
        ValueKind::Table(t) => {
            toml::Value::Table(t.into_iter().map(|(k, v)| (k, to_toml(v))).collect())
        }
        ValueKind::Nil => toml::Value::String(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming first reading gives the same table as `toml` for every shipped config,
    /// and a file it refuses still loads (or fails) as `toml` says.
    #[test]
    fn the_first_reading_agrees_with_toml_and_falls_back_to_it() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/probes");
        let mut files = vec![concat!(env!("CARGO_MANIFEST_DIR"), "/examples/healthd.toml").into()];
        for entry in std::fs::read_dir(dir).unwrap() {
            files.push(entry.unwrap().path());
        }
        assert!(files.len() > 10);
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let first = basic_toml::from_str::<toml::Table>(&text);
            assert!(first.is_ok(), "{}: {first:?}", path.display());
            assert_eq!(
                parse_table(&text).unwrap(),
                toml::from_str::<toml::Table>(&text).unwrap(),
                "{}",
                path.display()
            );
        }
        // A date-time and a TOML 1.1 multi-line inline table: `toml` reads them.
        let newer = "at = 2026-11-30T09:00:00Z\nt = {\n  a = 1,\n}\n";
        assert!(basic_toml::from_str::<toml::Table>(newer).is_err());
        let table = parse_table(newer).unwrap();
        assert_eq!(table["t"]["a"].as_integer(), Some(1));
        assert!(table["at"].is_datetime());
        // A mistake is worded by `toml`, with its line and column.
        let err = parse_table("a = 1\nb = \n").unwrap_err();
        assert!(
            toml_reason(&err).starts_with("line 2, column"),
            "{}",
            toml_reason(&err)
        );
    }
}
