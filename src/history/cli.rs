//! The history subcommands (`healthd report`, `healthd history prune`), kept out of
//! `main.rs`: each takes the config sources and returns what to print, or why not.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::record::unix_ms;
use super::report;
use super::store::{Store, StoreError};
use crate::config::{self, Config, Sources};

/// The output formats of `healthd report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
}

/// The config, or every problem as `healthd validate` prints them.
pub(super) fn load(sources: &Sources) -> Result<Config, String> {
    config::load(sources).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("error: {e}")).collect();
        format!(
            "{}\n{} configuration problem(s)",
            lines.join("\n"),
            errors.len()
        )
    })
}

fn store_path(cfg: &Config) -> Result<PathBuf, String> {
    cfg.history.path.clone().ok_or_else(|| {
        "history is kept in memory ([history] path is not set): there is no file to read; \
         the running daemon serves it at /api/v1/checks"
            .to_string()
    })
}

/// `healthd report`: the store's file is opened read-only (redb lets one daemon write it
/// while any number of readers follow its commits), so it works with healthd running or
/// stopped.
pub fn report(sources: &Sources, since: Duration, format: Format) -> Result<String, String> {
    let cfg = load(sources)?;
    let path = store_path(&cfg)?;
    if !path.exists() {
        return Err(format!(
            "{}: no history yet (healthd has not written it)",
            path.display()
        ));
    }
    let store = Store::open_for_reading(&path).map_err(|e| e.to_string())?;
    let to = unix_ms(SystemTime::now());
    let from = to.saturating_sub(since.as_millis() as u64);
    let configured: Vec<_> = cfg
        .checks
        .iter()
        .map(|c| (c.name.clone(), c.slo.clone()))
        .collect();
    let r = store
        .read()
        .and_then(|reader| report::build(&reader, &configured, from, to))
        .map_err(|e| e.to_string())?;
    Ok(match format {
        Format::Text => report::text(&r),
        Format::Csv => report::csv(&r),
        Format::Json => serde_json::to_string_pretty(&r).unwrap_or_default() + "\n",
    })
}

/// `healthd history prune`: apply retention now and delete the history of every check
/// that is no longer configured. Needs the file to itself (stop healthd first).
pub fn prune(sources: &Sources) -> Result<String, String> {
    let cfg = load(sources)?;
    let path = store_path(&cfg)?;
    let store = Store::open(&path).map_err(|e| match e {
        StoreError::InUse { path } => format!(
            "{}: healthd is running and has it open; stop it first (it applies retention \
             itself every 10 minutes; removed checks' history ends with its retention)",
            path.display()
        ),
        e => e.to_string(),
    })?;
    let known = store
        .read()
        .and_then(|r| r.checks())
        .map_err(|e| e.to_string())?;
    let removed: Vec<String> = known
        .into_keys()
        .filter(|name| !cfg.checks.iter().any(|c| &c.name == name))
        .collect();
    let gone = store.forget(&removed).map_err(|e| e.to_string())?;
    store
        .prune(&cfg.history, unix_ms(SystemTime::now()))
        .map_err(|e| e.to_string())?;
    Ok(if gone.is_empty() {
        format!(
            "{}: retention applied; no removed check had history\n",
            path.display()
        )
    } else {
        format!(
            "{}: retention applied; history deleted for {} removed check(s): {}\n",
            path.display(),
            gone.len(),
            gone.join(", ")
        )
    })
}
