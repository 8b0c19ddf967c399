//! The snapshot: one immutable picture of everything healthd knows, published atomically
//! by the health loop and read by every renderer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

pub use super::checks::Checks;
pub use super::pulse::Pulse;
use super::stats::RunStats;
use crate::model::{Group, GroupSummary, Reason, Sample, Status};
use crate::resilience::BreakerState;

/// The name of the heartbeat self-check in the liveness group.
pub const HEARTBEAT: &str = "healthd";

/// What the rest of healthd knows about one check: the state machine's public face.
#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub name: String,
    pub kind: &'static str,
    pub status: Status,
    pub critical: bool,
    pub groups: Vec<Group>,
    /// Reason of the latest run that was not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The latest run's message.
    pub message: String,
    /// The latest run's latency, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(serialize_with = "ser_time")]
    pub last_run: Option<SystemTime>,
    #[serde(serialize_with = "ser_time")]
    pub last_success: Option<SystemTime>,
    #[serde(serialize_with = "ser_time")]
    pub last_failure: Option<SystemTime>,
    /// When the status last changed.
    #[serde(serialize_with = "ser_time")]
    pub since: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// `open` while the check is unhealthy and probed with backoff.
    pub breaker: BreakerState,
    /// When the next probe is due.
    #[serde(serialize_with = "ser_time")]
    pub next_run: Option<SystemTime>,
    /// Changing state too often; the status is held at the worst seen until it settles.
    pub flapping: bool,
    /// The latest result is older than the check's `max_staleness`; the status is `unknown`.
    pub stale: bool,
    /// Failing while checks it `depends_on` fail (these): the status stays honest, but the
    /// failure is not notified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    #[serde(skip_serializing_if = "crate::model::Details::is_empty")]
    pub details: crate::model::Details,
    /// The latest typed measurement (see [`crate::model::Sample`]); kept when a run has none.
    #[serde(skip)]
    pub sample: Option<Sample>,
    #[serde(skip)]
    pub stats: RunStats,
    /// Has produced at least one result.
    #[serde(skip)]
    pub reported: bool,
    /// Has passed at least once (for startup gating).
    #[serde(skip)]
    pub passed_once: bool,
    /// A healthd self-check (the heartbeat, config reload, telemetry) rather than a probe.
    #[serde(skip)]
    pub builtin: bool,
    /// Added by a reload and not run yet: left out of its groups' verdicts until its first
    /// result, or until that is overdue (its `max_staleness` after the reload).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

impl CheckView {
    /// The status this check contributes to its groups: none while `pending`.
    pub fn counted(&self) -> Option<Status> {
        (!self.pending).then_some(self.status)
    }
}

pub(crate) fn ser_time<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// The outcome of the latest config reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadInfo {
    #[serde(serialize_with = "ser_time")]
    pub at: Option<SystemTime>,
    pub ok: bool,
    /// Every problem, as `file: key: reason`.
    pub errors: Vec<String>,
}

/// One immutable picture of everything healthd knows, swapped in atomically. Published only
/// when something changed: its age says nothing about the loop's health, [`Snapshot::pulse`]
/// does.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub seq: u64,
    pub generated_at: SystemTime,
    pub generated_mono: Instant,
    /// The startup latch: every check reported and every startup check passed once.
    pub started: bool,
    /// Probe checks in config order, then self-checks.
    pub checks: Checks,
    pub groups: BTreeMap<Group, GroupSummary>,
    pub reload: Option<ReloadInfo>,
    /// How late runs started against their schedule, over all checks (a histogram).
    pub lateness: RunStats,
    /// The health loop's liveness, shared by every snapshot it publishes.
    pub pulse: Arc<Pulse>,
}

impl Snapshot {
    /// The snapshot before the loop has published anything.
    pub fn empty() -> Snapshot {
        Snapshot {
            seq: 0,
            generated_at: SystemTime::now(),
            generated_mono: Instant::now(),
            started: false,
            checks: Checks::default(),
            groups: Group::ALL
                .iter()
                .map(|g| (*g, GroupSummary::of(std::iter::empty())))
                .collect(),
            reload: None,
            lateness: RunStats::default(),
            pulse: Arc::new(Pulse::new(None)),
        }
    }

    pub fn check(&self, name: &str) -> Option<&Arc<CheckView>> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn members(&self, group: Group) -> impl Iterator<Item = &Arc<CheckView>> {
        self.checks
            .iter()
            .filter(move |c| c.groups.contains(&group))
    }

    /// How old this snapshot is (an idle daemon publishes nothing: this alone is no sign of
    /// a stall; see [`Pulse::stuck_for`]).
    pub fn age(&self) -> Duration {
        self.generated_mono.elapsed()
    }

    /// How long the health loop has had work waiting without making progress.
    pub fn stuck_for(&self) -> Duration {
        self.pulse.stuck_for()
    }

    /// The worst status over probe checks.
    pub fn overall(&self) -> Status {
        self.checks
            .iter()
            .filter(|c| !c.builtin)
            .filter_map(|c| c.counted())
            .fold(Status::Healthy, |s, c| s.worst(c))
    }
}

/// The snapshot shared between the loop (writer) and the renderers (readers).
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
