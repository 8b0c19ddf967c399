//! The health model: per-check state machines fed by observations, rolled up into groups,
//! and published as one immutable [`Snapshot`] that every renderer reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::check::{Level, Outcome, Reason, Sample};
use crate::config::{CheckConfig, Group};
use crate::resilience::{BreakerState, FlapDetector, Resilience};

/// The verdict on a check or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
    /// No result yet, or the result is too old to trust.
    Unknown,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Healthy,
        Status::Degraded,
        Status::Unhealthy,
        Status::Unknown,
    ];

    /// Higher is worse: unknown is worse than degraded (it cannot be trusted to serve) but
    /// better than a known failure.
    fn severity(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Unknown => 2,
            Status::Unhealthy => 3,
        }
    }

    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Unknown => "unknown",
        }
    }

    /// Whether a probe endpoint answers 200 for this status.
    pub fn passes(self, fail_on_degraded: bool) -> bool {
        match self {
            Status::Healthy => true,
            Status::Degraded => !fail_on_degraded,
            Status::Unhealthy | Status::Unknown => false,
        }
    }
}

/// Latency buckets of the duration histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Run counters and the latency histogram of one check, cumulative since it was defined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Runs by result: `None` for success, the failure reason otherwise.
    pub runs: BTreeMap<Option<Reason>, u64>,
    /// Cumulative count per bucket of [`LATENCY_BUCKETS`] (non-cumulative storage).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub latency_sum: f64,
    pub latency_count: u64,
}

impl RunStats {
    fn record(&mut self, failed: Option<Reason>, latency: Duration) {
        *self.runs.entry(failed).or_default() += 1;
        let secs = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.latency_sum += secs;
        self.latency_count += 1;
    }

    /// `(upper bound, cumulative count)` pairs, `+Inf` last.
    pub fn cumulative_buckets(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        let mut out: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, n)| {
                acc += n;
                (*b, acc)
            })
            .collect();
        out.push((f64::INFINITY, self.latency_count));
        out
    }
}

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
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
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
}

fn ser_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// Format a latency for messages and tables: `850µs`, `12.3ms`, `1.20s`.
pub fn fmt_latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// The roll-up of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub status: Status,
    pub checks: usize,
    pub healthy: usize,
    pub degraded: usize,
    pub unhealthy: usize,
    pub unknown: usize,
}

impl GroupSummary {
    pub fn of<'a>(members: impl Iterator<Item = &'a CheckView>) -> GroupSummary {
        let mut g = GroupSummary {
            status: Status::Healthy,
            checks: 0,
            healthy: 0,
            degraded: 0,
            unhealthy: 0,
            unknown: 0,
        };
        for c in members {
            g.checks += 1;
            g.status = g.status.worst(c.status);
            match c.status {
                Status::Healthy => g.healthy += 1,
                Status::Degraded => g.degraded += 1,
                Status::Unhealthy => g.unhealthy += 1,
                Status::Unknown => g.unknown += 1,
            }
        }
        g
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

/// One immutable picture of everything healthd knows, swapped in atomically.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub seq: u64,
    pub generated_at: SystemTime,
    pub generated_mono: Instant,
    /// The startup latch: every check reported and every startup check passed once.
    pub started: bool,
    /// Probe checks in config order, then self-checks.
    pub checks: Vec<Arc<CheckView>>,
    pub groups: BTreeMap<Group, GroupSummary>,
    pub reload: Option<ReloadInfo>,
    /// How late runs started against their schedule, over all checks (a histogram).
    pub lateness: RunStats,
}

impl Snapshot {
    /// The snapshot before the loop has published anything.
    pub fn empty() -> Snapshot {
        Snapshot {
            seq: 0,
            generated_at: SystemTime::now(),
            generated_mono: Instant::now(),
            started: false,
            checks: Vec::new(),
            groups: Group::ALL
                .iter()
                .map(|g| (*g, GroupSummary::of(std::iter::empty())))
                .collect(),
            reload: None,
            lateness: RunStats::default(),
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

    /// How old this snapshot is; a stalled loop shows up as a growing age.
    pub fn age(&self) -> Duration {
        self.generated_mono.elapsed()
    }

    /// The worst status over probe checks.
    pub fn overall(&self) -> Status {
        self.checks
            .iter()
            .filter(|c| !c.builtin)
            .fold(Status::Healthy, |s, c| s.worst(c.status))
    }
}

/// The snapshot shared between the loop (writer) and the renderers (readers).
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// The static facts about a check that the state machine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckMeta {
    pub name: String,
    pub kind: &'static str,
    pub critical: bool,
    pub groups: Vec<Group>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Which scheduled definition this is; observations of an older one are dropped.
    pub generation: u64,
    pub interval: Duration,
    pub timeout: Duration,
    pub resilience: Resilience,
}

impl CheckMeta {
    pub fn of(c: &CheckConfig, generation: u64) -> CheckMeta {
        CheckMeta {
            name: c.name.clone(),
            kind: c.kind(),
            critical: c.critical,
            groups: c.groups.clone(),
            failure_threshold: c.failure_threshold,
            success_threshold: c.success_threshold,
            generation,
            interval: c.interval,
            timeout: c.timeout,
            resilience: c.resilience.clone(),
        }
    }
}

/// One run's result, as the scheduler reports it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub check: String,
    pub generation: u64,
    pub outcome: Outcome,
    pub latency: Duration,
    /// How long after its scheduled time the run started.
    pub lateness: Duration,
    pub at: SystemTime,
    /// The scheduler's circuit breaker after this run.
    pub breaker: BreakerState,
    /// Time from this result to the next run.
    pub next_delay: Duration,
}

/// A check's status changed (for logs and the optional OTLP log record).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub check: String,
    pub kind: &'static str,
    pub from: Status,
    pub to: Status,
    pub reason: Option<Reason>,
    pub message: String,
    pub at: SystemTime,
}

/// One finished run of a probe check, as the health loop accepted it (for the OTLP duration
/// histogram and run counter, which record each run as it happens).
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub check: String,
    pub kind: &'static str,
    pub latency: Duration,
    /// `None` on success, the failure reason otherwise (as counted in [`RunStats::runs`]).
    pub failure: Option<Reason>,
}

/// What the health loop is told.
#[derive(Debug)]
pub enum Event {
    Observation(Observation),
    /// The set of probe checks changed (start or reload). Checks whose name and generation
    /// are unchanged keep their state.
    Reconfigure(Vec<CheckMeta>),
    /// A healthd self-check (not a probe) has a new status.
    SelfCheck {
        name: String,
        groups: Vec<Group>,
        status: Status,
        reason: Option<Reason>,
        message: String,
    },
    /// A config reload finished.
    Reloaded(ReloadInfo),
}

/// The mutable state behind one [`CheckView`].
struct CheckState {
    meta: CheckMeta,
    /// Copy-on-write: the published snapshot shares this `Arc`; the first change after a
    /// publish copies the view (`Arc::make_mut`), so a check costs one view plus a copy
    /// only while it changed since the last snapshot, and an unchanged check costs one
    /// reference count per snapshot.
    view: Arc<CheckView>,
    /// True while the status comes from failures (leaving it takes `success_threshold`).
    failing: bool,
    /// The state machine's own status, before flap holding and staleness.
    machine: Status,
    flap: FlapDetector,
    /// When the latest result arrived, and how long it stays trustworthy.
    fresh_until: Option<Instant>,
}

impl CheckState {
    fn new(meta: CheckMeta) -> CheckState {
        let view = CheckView {
            name: meta.name.clone(),
            kind: meta.kind,
            status: Status::Unknown,
            critical: meta.critical,
            groups: meta.groups.clone(),
            reason: None,
            message: "no result yet".into(),
            latency_ms: None,
            last_run: None,
            last_success: None,
            last_failure: None,
            since: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            breaker: BreakerState::Closed,
            next_run: None,
            flapping: false,
            stale: false,
            details: BTreeMap::new(),
            sample: None,
            stats: RunStats::default(),
            reported: false,
            passed_once: false,
            builtin: false,
        };
        let flap = FlapDetector::new(meta.resilience.flap_window, meta.resilience.flap_threshold);
        CheckState {
            meta,
            view: Arc::new(view),
            failing: false,
            machine: Status::Unknown,
            flap,
            fresh_until: None,
        }
    }

    /// Apply one observation (kubelet-style thresholds); returns the old status if it changed.
    ///
    /// From `unknown` the first result decides at once: there is no good state to protect.
    fn apply(&mut self, obs: Observation) -> Option<Status> {
        let shown = self.view.status;
        // The thresholds run on the machine's own status, not on a held or stale one.
        Arc::make_mut(&mut self.view).status = self.machine;
        let level = obs.outcome.level;
        let at = obs.at;
        let delay = obs.next_delay;
        Arc::make_mut(&mut self.view).breaker = obs.breaker;
        Arc::make_mut(&mut self.view).next_run = at.checked_add(delay);
        let stale_after =
            self.meta
                .resilience
                .stale_after(delay, self.meta.interval, self.meta.timeout);
        // An absurd bound (beyond the clock's range) means never stale.
        self.fresh_until = Instant::now().checked_add(stale_after);
        Arc::make_mut(&mut self.view).stale = false;
        let prev_reason = self.view.reason;
        self.step(obs);
        self.machine = self.view.status;
        Arc::make_mut(&mut self.view).status = self.flap.record(level, self.machine);
        Arc::make_mut(&mut self.view).flapping = self.flap.flapping();
        // Held at a worse state than the latest result: keep saying why.
        if self.view.status != self.machine && self.view.reason.is_none() {
            Arc::make_mut(&mut self.view).reason = prev_reason;
        }
        if self.view.status != shown {
            Arc::make_mut(&mut self.view).since = Some(at);
            Some(shown)
        } else {
            None
        }
    }

    /// The kubelet-style state machine proper.
    fn step(&mut self, obs: Observation) {
        let v = Arc::make_mut(&mut self.view);
        let old = v.status;
        let failed = obs.outcome.level == Level::Failed;
        v.reported = true;
        v.stats.record(
            if failed {
                obs.outcome.reason.or(Some(Reason::Internal))
            } else {
                None
            },
            obs.latency,
        );
        v.last_run = Some(obs.at);
        // Microsecond precision: float noise like 168.27848600000002 helps nobody.
        v.latency_ms = Some((obs.latency.as_secs_f64() * 1e6).round() / 1000.0);
        let reason = obs.outcome.reason;
        v.message = obs.outcome.message;
        v.details = obs.outcome.details;
        if obs.outcome.sample.is_some() {
            v.sample = obs.outcome.sample;
        }
        if failed {
            v.consecutive_failures += 1;
            v.consecutive_successes = 0;
            v.last_failure = Some(obs.at);
            if !self.failing
                && (old == Status::Unknown || v.consecutive_failures >= self.meta.failure_threshold)
            {
                self.failing = true;
            }
            if self.failing {
                v.status = if self.meta.critical {
                    Status::Unhealthy
                } else {
                    Status::Degraded
                };
            }
        } else {
            v.consecutive_successes += 1;
            v.consecutive_failures = 0;
            v.last_success = Some(obs.at);
            v.passed_once = true;
            if self.failing
                && (old == Status::Unknown
                    || v.consecutive_successes >= self.meta.success_threshold)
            {
                self.failing = false;
            }
            if !self.failing {
                v.status = if obs.outcome.level == Level::Ok {
                    Status::Healthy
                } else {
                    Status::Degraded
                };
            }
        }
        // While the status is still bad (recovering below success_threshold), keep saying
        // why; a healthy check has no reason.
        match reason {
            Some(r) => v.reason = Some(r),
            None if v.status == Status::Healthy => v.reason = None,
            None => {}
        }
    }

    /// Turn the check `unknown` if its latest result is too old; returns the old status
    /// when that happened just now.
    fn expire(&mut self, now: Instant, at: SystemTime) -> Option<Status> {
        let deadline = self.fresh_until?;
        if self.view.stale || now <= deadline {
            return None;
        }
        let old = self.view.status;
        let age = self
            .view
            .last_run
            .and_then(|t| at.duration_since(t).ok())
            .unwrap_or_default();
        Arc::make_mut(&mut self.view).stale = true;
        Arc::make_mut(&mut self.view).status = Status::Unknown;
        Arc::make_mut(&mut self.view).reason = None;
        Arc::make_mut(&mut self.view).message = format!(
            "stale: no result for {} (the latest: {})",
            fmt_latency(age),
            self.view.message
        );
        (old != Status::Unknown).then(|| {
            Arc::make_mut(&mut self.view).since = Some(at);
            old
        })
    }
}

/// The name of the heartbeat self-check in the liveness group.
pub const HEARTBEAT: &str = "healthd";

/// Least time between two published snapshots; results arriving meanwhile are batched.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(10);
/// The loop publishes at least this often, which is what the heartbeat measures.
const TICK: Duration = Duration::from_millis(500);

/// The single writer of the snapshot.
pub struct HealthLoop {
    rx: mpsc::Receiver<Event>,
    states: Vec<CheckState>,
    index: HashMap<String, usize>,
    builtins: BTreeMap<String, CheckView>,
    /// The scheduler has told the loop which checks exist (startup cannot complete before).
    configured: bool,
    started: bool,
    reload: Option<ReloadInfo>,
    lateness: RunStats,
    seq: u64,
    out: SharedSnapshot,
    changes: broadcast::Sender<StatusChange>,
    runs: broadcast::Sender<RunRecord>,
}

/// Handles to a running health loop.
#[derive(Clone)]
pub struct HealthHandle {
    pub events: mpsc::Sender<Event>,
    pub snapshot: SharedSnapshot,
    pub changes: broadcast::Sender<StatusChange>,
    /// Every accepted probe run (nobody listens unless OTLP export is on).
    pub runs: broadcast::Sender<RunRecord>,
}

impl HealthLoop {
    pub fn new(capacity: usize) -> (HealthLoop, HealthHandle) {
        let (tx, rx) = mpsc::channel(capacity);
        let out: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let (changes, _) = broadcast::channel(1024);
        let (runs, _) = broadcast::channel(4096);
        let hl = HealthLoop {
            rx,
            states: Vec::new(),
            index: HashMap::new(),
            builtins: BTreeMap::new(),
            configured: false,
            started: false,
            reload: None,
            lateness: RunStats::default(),
            seq: 0,
            out: out.clone(),
            changes: changes.clone(),
            runs: runs.clone(),
        };
        (
            hl,
            HealthHandle {
                events: tx,
                snapshot: out,
                changes,
                runs,
            },
        )
    }

    /// Run until cancelled, publishing after every batch of events and at least every tick.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut last_publish = Instant::now() - MIN_PUBLISH_GAP;
        self.publish();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = self.rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                _ = tokio::time::sleep(TICK) => {}
            }
            let since = last_publish.elapsed();
            if since < MIN_PUBLISH_GAP {
                tokio::time::sleep(MIN_PUBLISH_GAP - since).await;
            }
            while let Ok(ev) = self.rx.try_recv() {
                self.handle(ev);
            }
            self.publish();
            last_publish = Instant::now();
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Observation(obs) => {
                let Some(&i) = self.index.get(&obs.check) else {
                    return;
                };
                self.lateness.record(None, obs.lateness);
                let state = &mut self.states[i];
                if state.meta.generation != obs.generation {
                    return;
                }
                let at = obs.at;
                if self.runs.receiver_count() > 0 {
                    let failed = obs.outcome.level == Level::Failed;
                    let _ = self.runs.send(RunRecord {
                        check: obs.check.clone(),
                        kind: state.meta.kind,
                        latency: obs.latency,
                        failure: failed.then(|| obs.outcome.reason.unwrap_or(Reason::Internal)),
                    });
                }
                if let Some(from) = state.apply(obs) {
                    let v = &state.view;
                    let change = StatusChange {
                        check: v.name.clone(),
                        kind: v.kind,
                        from,
                        to: v.status,
                        reason: v.reason,
                        message: v.message.clone(),
                        at,
                    };
                    log_change(&change);
                    let _ = self.changes.send(change);
                }
            }
            Event::Reconfigure(metas) => {
                self.configured = true;
                let mut old: HashMap<String, CheckState> = std::mem::take(&mut self.states)
                    .into_iter()
                    .map(|s| (s.meta.name.clone(), s))
                    .collect();
                self.states = metas
                    .into_iter()
                    .map(|m| match old.remove(&m.name) {
                        Some(s) if s.meta == m => s,
                        _ => CheckState::new(m),
                    })
                    .collect();
                self.index = self
                    .states
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.meta.name.clone(), i))
                    .collect();
            }
            Event::SelfCheck {
                name,
                groups,
                status,
                reason,
                message,
            } => {
                let now = SystemTime::now();
                let view = self.builtins.entry(name.clone()).or_insert_with(|| {
                    let mut s = CheckState::new(CheckMeta {
                        name,
                        kind: "self",
                        critical: false,
                        groups: groups.clone(),
                        failure_threshold: 1,
                        success_threshold: 1,
                        generation: 0,
                        interval: Duration::ZERO,
                        timeout: Duration::ZERO,
                        resilience: Resilience {
                            flap_window: 0,
                            ..Resilience::default()
                        },
                    });
                    Arc::make_mut(&mut s.view).builtin = true;
                    Arc::unwrap_or_clone(s.view)
                });
                if view.status != status {
                    view.since = Some(now);
                }
                view.groups = groups;
                view.status = status;
                view.reason = reason;
                view.message = message;
                view.last_run = Some(now);
                view.reported = true;
            }
            Event::Reloaded(info) => self.reload = Some(info),
        }
    }

    fn publish(&mut self) {
        self.seq += 1;
        let now = SystemTime::now();
        let mono = Instant::now();
        for state in &mut self.states {
            if let Some(from) = state.expire(mono, now) {
                let v = &state.view;
                tracing::warn!(check = %v.name, from = from.as_str(), detail = %v.message, "Check result is stale; status now unknown.");
                let _ = self.changes.send(StatusChange {
                    check: v.name.clone(),
                    kind: v.kind,
                    from,
                    to: v.status,
                    reason: None,
                    message: v.message.clone(),
                    at: now,
                });
            }
        }
        let probes = self.states.len();
        let heartbeat = self
            .builtins
            .entry(HEARTBEAT.to_string())
            .or_insert_with(|| {
                let s = CheckState::new(CheckMeta {
                    name: HEARTBEAT.to_string(),
                    kind: "self",
                    critical: true,
                    groups: vec![Group::Liveness],
                    failure_threshold: 1,
                    success_threshold: 1,
                    generation: 0,
                    interval: Duration::ZERO,
                    timeout: Duration::ZERO,
                    resilience: Resilience {
                        flap_window: 0,
                        ..Resilience::default()
                    },
                });
                let mut view = Arc::unwrap_or_clone(s.view);
                view.builtin = true;
                view.status = Status::Healthy;
                view.since = Some(now);
                view
            });
        heartbeat.last_run = Some(now);
        heartbeat.reported = true;
        heartbeat.passed_once = true;
        heartbeat.message = format!("snapshot loop alive, {probes} checks scheduled");

        if !self.started && self.configured {
            self.started = self.states.iter().all(|s| s.view.reported)
                && self
                    .states
                    .iter()
                    .filter(|s| s.meta.groups.contains(&Group::Startup))
                    .all(|s| s.view.passed_once);
            if self.started {
                tracing::info!(
                    checks = probes,
                    "Startup complete: every check has reported."
                );
            }
        }
        let checks: Vec<Arc<CheckView>> = self
            .states
            .iter_mut()
            .map(|s| s.view.clone())
            .chain(self.builtins.values().map(|v| Arc::new(v.clone())))
            .collect();
        let groups = Group::ALL
            .iter()
            .map(|g| {
                let members = checks
                    .iter()
                    .filter(|c| c.groups.contains(g))
                    .map(|c| c.as_ref());
                (*g, GroupSummary::of(members))
            })
            .collect();
        self.out.store(Arc::new(Snapshot {
            seq: self.seq,
            generated_at: now,
            generated_mono: Instant::now(),
            started: self.started,
            checks,
            groups,
            reload: self.reload.clone(),
            lateness: self.lateness.clone(),
        }));
    }
}

fn log_change(c: &StatusChange) {
    let reason = c.reason.map(Reason::as_str).unwrap_or("");
    match c.to {
        Status::Healthy => tracing::info!(
            check = %c.check, kind = c.kind, from = c.from.as_str(), to = c.to.as_str(), detail = %c.message,
            "Check status changed."
        ),
        _ => tracing::warn!(
            check = %c.check, kind = c.kind, from = c.from.as_str(), to = c.to.as_str(), reason, detail = %c.message,
            "Check status changed."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(critical: bool, failure_threshold: u32, success_threshold: u32) -> CheckMeta {
        CheckMeta {
            name: "c".into(),
            kind: "tcp",
            critical,
            groups: vec![Group::Readiness],
            failure_threshold,
            success_threshold,
            generation: 1,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            resilience: Resilience::default(),
        }
    }

    fn obs(level: Level) -> Observation {
        let outcome = match level {
            Level::Ok => Outcome::ok("fine"),
            Level::Degraded => Outcome::degraded(Reason::Timeout, "slow"),
            Level::Failed => Outcome::failed(Reason::Connect, "refused"),
        };
        Observation {
            check: "c".into(),
            generation: 1,
            outcome,
            latency: Duration::from_millis(3),
            lateness: Duration::ZERO,
            at: SystemTime::now(),
            breaker: BreakerState::Closed,
            next_delay: Duration::from_secs(10),
        }
    }

    fn run(s: &mut CheckState, levels: &[Level]) -> Vec<Status> {
        levels
            .iter()
            .map(|l| {
                s.apply(obs(*l));
                s.view.status
            })
            .collect()
    }

    use Level::{Degraded as D, Failed as F, Ok as O};
    use Status::{Degraded as SD, Healthy as SH, Unhealthy as SU};

    #[test]
    fn failure_threshold_damps_and_success_threshold_recovers() {
        let mut s = CheckState::new(meta(true, 3, 2));
        assert_eq!(
            run(&mut s, &[O, F, F, F, O, O, F]),
            vec![SH, SH, SH, SU, SU, SH, SH]
        );
        assert_eq!(s.view.consecutive_failures, 1);
    }

    #[test]
    fn first_result_decides_from_unknown() {
        let mut s = CheckState::new(meta(true, 3, 3));
        assert_eq!(run(&mut s, &[F]), vec![SU]);
        let mut s = CheckState::new(meta(true, 3, 3));
        assert_eq!(run(&mut s, &[O]), vec![SH]);
    }

    #[test]
    fn non_critical_failures_only_degrade() {
        let mut s = CheckState::new(meta(false, 1, 1));
        assert_eq!(run(&mut s, &[O, F, O]), vec![SH, SD, SH]);
    }

    #[test]
    fn degraded_results_are_not_failures() {
        let mut s = CheckState::new(meta(true, 2, 1));
        assert_eq!(run(&mut s, &[O, D, O, F, D]), vec![SH, SD, SH, SH, SD]);
        assert_eq!(s.view.stats.runs.get(&None), Some(&4));
        assert_eq!(s.view.stats.runs.get(&Some(Reason::Connect)), Some(&1));
    }

    #[test]
    fn group_is_worst_of_members() {
        let mut a = CheckState::new(meta(true, 1, 1));
        let mut b = CheckState::new(meta(false, 1, 1));
        a.apply(obs(O));
        b.apply(obs(F));
        let g = GroupSummary::of([&*a.view, &*b.view].into_iter());
        assert_eq!((g.status, g.healthy, g.degraded), (SD, 1, 1));
        let c = CheckState::new(meta(true, 1, 1));
        let g = GroupSummary::of([&*a.view, &*b.view, &*c.view].into_iter());
        assert_eq!(g.status, Status::Unknown);
        a.apply(obs(F));
        let g = GroupSummary::of([&*a.view, &*b.view, &*c.view].into_iter());
        assert_eq!(g.status, SU);
    }

    #[test]
    fn histogram_is_cumulative() {
        let mut s = RunStats::default();
        s.record(None, Duration::from_micros(500));
        s.record(None, Duration::from_millis(30));
        s.record(None, Duration::from_secs(30));
        let b = s.cumulative_buckets();
        assert_eq!(b[0], (0.001, 1));
        assert_eq!(b[5], (0.05, 2));
        assert_eq!(b.last(), Some(&(f64::INFINITY, 3)));
    }
}
