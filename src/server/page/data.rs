//! What the status page shows, gathered once per request from the snapshot: the same data
//! renders the HTML and `/status.json` (the script's live updates), so they cannot disagree.

use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;

use crate::health::CheckView;
use crate::model::{Group, Status};
use crate::server::AppState;

/// One of the three verdicts in the page header.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub word: &'static str,
}

/// One check's row. Reason, message and details only for the authorised.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub kind: &'static str,
    pub status: Status,
    pub critical: bool,
    /// The section it is listed under: its first group, or `healthd` for self-checks.
    pub section: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "crate::model::Details::is_empty")]
    pub details: crate::model::Details,
}

/// Everything one page (or one poll) shows.
#[derive(Debug, Serialize)]
pub struct PageData {
    pub host: &'static str,
    pub version: &'static str,
    pub uptime_s: u64,
    pub generated_at: String,
    /// Whether this caller sees reasons and messages.
    pub authorized: bool,
    /// Whether `[server.auth]` is on (the page offers a login only then).
    pub auth_enabled: bool,
    pub live: Verdict,
    pub ready: Verdict,
    pub started: Verdict,
    pub overall: Status,
    #[serde(rename = "checks")]
    pub rows: Vec<Row>,
}

impl PageData {
    /// Everything from one snapshot: the verdicts always agree with the rows beside them.
    pub fn of(state: &AppState, authorized: bool, started: Instant) -> PageData {
        let snap = state.verdicts.snapshot.load_full();
        let verdict = |g| {
            let (pass, word) = state.verdicts.group_in(&snap, g);
            Verdict { pass, word }
        };
        let rows = snap.checks.iter().map(|c| Row::of(c, authorized)).collect();
        PageData {
            host: host_name(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: started.elapsed().as_secs(),
            generated_at: humantime::format_rfc3339_seconds(snap.generated_at).to_string(),
            authorized,
            auth_enabled: state.options.load().auth.enabled(),
            live: verdict(Group::Liveness),
            ready: verdict(Group::Readiness),
            started: verdict(Group::Startup),
            overall: snap.overall(),
            rows,
        }
    }

    /// The sections in page order, each with its rows.
    pub fn sections(&self) -> Vec<(&'static str, Vec<&Row>)> {
        ["readiness", "liveness", "startup", "other", "healthd"]
            .into_iter()
            .map(|s| (s, self.rows.iter().filter(|r| r.section == s).collect()))
            .filter(|(_, rows): &(_, Vec<&Row>)| !rows.is_empty())
            .collect()
    }
}

impl Row {
    fn of(c: &CheckView, authorized: bool) -> Row {
        let section = if c.builtin {
            "healthd"
        } else {
            c.groups.first().map_or("other", |g| g.as_str())
        };
        Row {
            name: c.name.clone(),
            kind: c.kind,
            status: c.status,
            critical: c.critical,
            section,
            latency_ms: c.latency_ms,
            since: c
                .since
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            reason: authorized.then(|| c.reason.map(|r| r.as_str())).flatten(),
            message: authorized.then(|| c.message.clone()),
            details: if authorized {
                c.details.clone()
            } else {
                Default::default()
            },
        }
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`), read once.
fn host_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}
