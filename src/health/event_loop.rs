//! The health loop: the single writer of the snapshot. It takes events (observations from
//! the scheduler, reconfiguration, self-check results, reload results), feeds them to the
//! per-check state machines, and publishes a new snapshot after every batch, in O(changed
//! checks) (see [`super::publish`]). It wakes only for an event or a due deadline (a
//! result going stale): an idle loop costs nothing, and its liveness is a [`Pulse`], not a
//! periodic publication.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::descriptors::DescriptorWatch;
use super::fanout::Fanout;
use super::names::NameIndex;
use super::publish::Board;
use super::pulse::Pulse;
use super::records::log_change;
pub use super::records::{RunRecord, StatusChange};
use super::snapshot::{CheckView, HEARTBEAT, ReloadInfo, SharedSnapshot, Snapshot};
use super::state::{CheckMeta, CheckState, Observation};
use super::stats::RunStats;
use crate::model::classify::out_of_descriptors;
use crate::model::{Group, Level, Reason, Status};
use crate::resilience::Resilience;

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
    /// A push check's verdict right after `POST /push/…`, recorded at once under the
    /// check's current definition (its `generation` is ignored).
    Pushed(Observation),
    /// Each check's `depends_on` (start and reload), for the `blocked_by` of its view.
    Dependencies(BTreeMap<String, Vec<String>>),
    /// The checks whose SLO page alert fires and that asked to be degraded by it
    /// (`slo.degrade_on = "page"`); replaces the previous set.
    SloPaging(BTreeSet<String>),
    /// At start, before the first [`Event::Reconfigure`]: each check's trailing results
    /// before the restart (oldest first), from the history store. The checks that the first
    /// `Reconfigure` creates resume their thresholds from them ([`CheckState::resume`]).
    Resume(HashMap<String, Vec<Level>>),
}

/// Least time between two published snapshots; results arriving meanwhile are batched.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(10);

/// Most events applied between two published snapshots. A check changed since the last
/// snapshot holds two views (the published one and its copy, `Arc::make_mut`), so a burst
/// (every check's first result at start: 100,000 of them within a second) applied as one
/// batch would hold every view twice; in batches of this size, at most this many are held
/// twice at a time. Publication costs the changed checks, so the burst costs no more.
const MAX_BATCH: usize = 512;

/// The single writer of the snapshot.
pub struct HealthLoop {
    rx: mpsc::Receiver<Event>,
    states: Vec<CheckState>,
    index: NameIndex,
    builtins: BTreeMap<String, CheckView>,
    /// A self-check changed since the last publish.
    builtins_changed: bool,
    /// What the last snapshot holds, and what changed since.
    board: Board,
    /// For each check, the checks that depend on it (their `blocked_by` follows it).
    dependents: Vec<Vec<usize>>,
    pulse: Arc<Pulse>,
    /// The scheduler has told the loop which checks exist (startup cannot complete before).
    configured: bool,
    started: bool,
    reload: Option<ReloadInfo>,
    lateness: RunStats,
    descriptors: DescriptorWatch,
    seq: u64,
    out: SharedSnapshot,
    /// Each check's `depends_on`.
    depends_on: BTreeMap<String, Vec<String>>,
    changes: Arc<Fanout<Arc<StatusChange>>>,
    runs: Arc<Fanout<Arc<RunRecord>>>,
    /// Checks shown degraded (reason `slo`) while healthy: see [`Event::SloPaging`].
    slo_paging: BTreeSet<String>,
    /// See [`Event::Resume`]; taken by the first `Reconfigure`.
    resume: HashMap<String, Vec<Level>>,
}

/// Handles to a running health loop.
#[derive(Clone)]
pub struct HealthHandle {
    pub events: mpsc::Sender<Event>,
    pub snapshot: SharedSnapshot,
    /// Every status change (history, notifications and OTLP logs listen).
    pub changes: Arc<Fanout<Arc<StatusChange>>>,
    /// Every accepted probe run (the history writer and OTLP export listen).
    pub runs: Arc<Fanout<Arc<RunRecord>>>,
}

impl HealthLoop {
    pub fn new(capacity: usize) -> (HealthLoop, HealthHandle) {
        let (tx, rx) = mpsc::channel(capacity);
        let pulse = Arc::new(Pulse::new(Some(tx.downgrade())));
        let out: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot {
            pulse: pulse.clone(),
            ..Snapshot::empty()
        }));
        // Both shared, not copied: every receiver (history, notifications, OTLP) would clone
        // a record's strings (a change is 128 bytes). Both fan out through queues that grow
        // as records wait (`fanout`): a broadcast channel of 1,024 changes wrote 32 KB of an
        // idle daemon's heap when made, for changes that come a few an hour.
        let changes = Fanout::new(1024);
        let runs = Fanout::new(4096);
        let hl = HealthLoop {
            rx,
            states: Vec::new(),
            index: NameIndex::default(),
            builtins: BTreeMap::new(),
            builtins_changed: true,
            board: Board::default(),
            dependents: Vec::new(),
            pulse,
            configured: false,
            started: false,
            reload: None,
            lateness: RunStats::default(),
            descriptors: DescriptorWatch::default(),
            seq: 0,
            out: out.clone(),
            depends_on: BTreeMap::new(),
            changes: changes.clone(),
            runs: runs.clone(),
            slo_paging: BTreeSet::new(),
            resume: HashMap::new(),
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

    /// Run until cancelled, publishing after every batch of events and when a deadline
    /// (a result going stale) passes; nothing else wakes it.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut last_publish = Instant::now() - MIN_PUBLISH_GAP;
        // The last batch stopped at MAX_BATCH with events left: publish the next at once.
        let mut backlog = false;
        self.publish();
        loop {
            let due = self.due();
            self.pulse.beat(due);
            let deadline = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = self.rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                _ = deadline => {}
            }
            self.pulse.woke();
            let since = last_publish.elapsed();
            if !backlog && since < MIN_PUBLISH_GAP {
                tokio::time::sleep(MIN_PUBLISH_GAP - since).await;
            }
            let mut drained = 0;
            while drained < MAX_BATCH
                && let Ok(ev) = self.rx.try_recv()
            {
                self.handle(ev);
                drained += 1;
            }
            backlog = drained == MAX_BATCH;
            self.publish();
            last_publish = Instant::now();
        }
    }

    /// When the loop must next wake without an event: the earliest staleness deadline, or
    /// the descriptor self-check turning healthy again.
    fn due(&self) -> Option<Instant> {
        match (self.board.due(), self.descriptors.due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn handle(&mut self, ev: Event) {
        match ev {
            Event::Observation(obs) => {
                if let Some(i) = self.index.get(&self.states, &obs.check) {
                    self.observe(i, obs);
                }
            }
            Event::Reconfigure(metas) => {
                self.configured = true;
                let mut old: HashMap<String, CheckState> = std::mem::take(&mut self.states)
                    .into_iter()
                    .map(|s| (s.meta.name.clone(), s))
                    .collect();
                // A reload must not flip a started group: a changed check keeps its last
                // verdict until its new definition has a result, an added one is left out
                // of its groups until it has one (both bounded by the check's staleness).
                let now = Instant::now();
                let started = self.started;
                let mut resume = std::mem::take(&mut self.resume);
                self.states = metas
                    .into_iter()
                    .map(|m| match old.remove(&m.name) {
                        Some(s) if s.meta == m => s,
                        Some(s) => CheckState::changed(m, s, now),
                        None if started => CheckState::added(m, now),
                        None => {
                            let past = resume.remove(&m.name);
                            let mut s = CheckState::new(m);
                            if let Some(past) = past {
                                s.resume(&past);
                            }
                            s
                        }
                    })
                    .collect();
                self.index = NameIndex::of(&self.states);
                self.relink();
                // The heartbeat's message counts the checks.
                self.builtins_changed = true;
            }
            Event::SelfCheck {
                name,
                groups,
                status,
                reason,
                message,
            } => {
                let now = SystemTime::now();
                let view = self
                    .builtins
                    .entry(name.clone())
                    .or_insert_with(|| self_check_view(name, groups.clone(), false));
                if view.status != status {
                    view.since = Some(now);
                }
                view.groups = groups;
                view.status = status;
                view.reason = reason;
                view.message = message;
                view.last_run = Some(now);
                view.reported = true;
                self.builtins_changed = true;
            }
            Event::Reloaded(info) => self.reload = Some(info),
            Event::Resume(past) => self.resume = past,
            Event::Dependencies(d) => {
                super::dependencies::forget_removed(&mut self.states, &d);
                self.depends_on = d;
                self.relink();
            }
            Event::SloPaging(set) => {
                for name in set.symmetric_difference(&self.slo_paging) {
                    let on = set.contains(name);
                    tracing::info!(check = %name, degraded = on, "SLO page alert changed; degrade_on = \"page\".");
                    if let Some(i) = self.index.get(&self.states, name) {
                        self.board.mark(i);
                    }
                }
                self.slo_paging = set;
            }
            Event::Pushed(mut obs) => {
                if let Some(i) = self.index.get(&self.states, &obs.check) {
                    obs.generation = self.states[i].meta.generation;
                    self.observe(i, obs);
                }
            }
        }
    }

    /// A run's result for check `i`: recorded, sent to the run followers, and applied.
    fn observe(&mut self, i: usize, obs: Observation) {
        self.board.mark(i);
        self.lateness.record(None, obs.lateness);
        let state = &mut self.states[i];
        if state.meta.generation != obs.generation {
            return;
        }
        // healthd ran out of file descriptors: its own failure, not the
        // dependency's. The check keeps its verdict (until that goes stale).
        if obs.outcome.level == Level::Failed && out_of_descriptors(&obs.outcome.message) {
            state.skip(&obs.outcome.message);
            self.descriptors.skipped(&obs.check);
            self.builtins_changed = true;
            return;
        }
        let at = obs.at;
        if self.runs.receiver_count() > 0 {
            let failed = obs.outcome.level == Level::Failed;
            self.runs.send(Arc::new(RunRecord {
                check: obs.check.clone(),
                kind: state.meta.kind,
                latency: obs.latency,
                failure: failed.then(|| obs.outcome.reason.unwrap_or(Reason::Internal)),
                at: obs.at,
                level: obs.outcome.level,
                reason: obs.outcome.reason,
                message: obs.outcome.message.clone(),
            }));
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
            self.changes.send(Arc::new(change));
        }
    }

    /// The checks or their dependencies changed: republish everything once, and know again
    /// which checks follow which.
    fn relink(&mut self) {
        self.board.reset(self.states.len());
        self.dependents =
            super::dependencies::dependents(&self.states, &self.index, &self.depends_on);
    }

    pub(crate) fn publish(&mut self) {
        self.seq += 1;
        let now = SystemTime::now();
        let mono = Instant::now();
        for i in self.board.take_due(mono) {
            self.board.mark(i);
            let state = &mut self.states[i];
            if let Some(from) = state.expire(mono, now) {
                let v = &state.view;
                tracing::warn!(check = %v.name, from = from.as_str(), detail = %v.message, "Check result is stale; status now unknown.");
                self.changes.send(Arc::new(StatusChange {
                    check: v.name.clone(),
                    kind: v.kind,
                    from,
                    to: v.status,
                    reason: None,
                    message: v.message.clone(),
                    at: now,
                }));
            }
        }
        if !self.depends_on.is_empty() {
            let affected = super::dependencies::affected(
                self.board.dirty(),
                &self.dependents,
                &self.states,
                &self.depends_on,
            );
            for i in super::dependencies::update_blocked(
                &mut self.states,
                &self.index,
                &self.depends_on,
                affected,
            ) {
                self.board.mark(i);
            }
        }
        self.board.commit(&self.states, &self.slo_paging);
        self.publish_builtins(now, mono);

        if !self.started && self.configured {
            self.started = self.board.all_reported_and_started();
            if self.started {
                tracing::info!(
                    checks = self.states.len(),
                    "Startup complete: every check has reported."
                );
            }
        }
        self.out.store(Arc::new(Snapshot {
            seq: self.seq,
            generated_at: now,
            generated_mono: Instant::now(),
            started: self.started,
            checks: self.board.checks(),
            groups: self.board.groups(),
            reload: self.reload.clone(),
            lateness: self.lateness.clone(),
            pulse: self.pulse.clone(),
        }));
        self.pulse.published(self.seq);
    }

    /// The self-checks: the heartbeat (its liveness is the [`Pulse`]; the view says how many
    /// checks the loop holds) and the descriptor watch; republished only when one changed.
    fn publish_builtins(&mut self, now: SystemTime, mono: Instant) {
        if let Some((status, message)) = self.descriptors.change(mono) {
            let view = self
                .builtins
                .entry(DescriptorWatch::NAME.to_string())
                .or_insert_with(|| self_check_view(DescriptorWatch::NAME.into(), vec![], false));
            if view.status != status {
                view.since = Some(now);
            }
            view.reason = (status != Status::Healthy).then_some(Reason::Internal);
            view.status = status;
            view.message = message;
            view.last_run = Some(now);
            view.reported = true;
            self.builtins_changed = true;
        }
        if !self.builtins_changed {
            return;
        }
        self.builtins_changed = false;
        let probes = self.states.len();
        let heartbeat = self
            .builtins
            .entry(HEARTBEAT.to_string())
            .or_insert_with(|| {
                let mut view = self_check_view(HEARTBEAT.to_string(), vec![Group::Liveness], true);
                view.status = Status::Healthy;
                view.since = Some(now);
                view
            });
        heartbeat.last_run = Some(now);
        heartbeat.reported = true;
        heartbeat.passed_once = true;
        heartbeat.message = format!("snapshot loop alive, {probes} checks scheduled");
        self.board.set_builtins(
            self.builtins
                .values()
                .map(|v| Arc::new(v.clone()))
                .collect(),
        );
    }
}

/// The view of a healthd self-check (not a probe) before its first report.
fn self_check_view(name: String, groups: Vec<Group>, critical: bool) -> CheckView {
    let s = CheckState::new(CheckMeta {
        name,
        kind: "self",
        critical,
        groups,
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
    view
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
