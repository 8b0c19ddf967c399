//! The per-check state machine: kubelet-style failure/success thresholds, flap holding and
//! staleness, turning observations into the check's [`CheckView`]. Pure: no I/O, no clock
//! but the times it is given.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::snapshot::CheckView;
use super::stats::RunStats;
use crate::config::CheckConfig;
use crate::model::{Group, Level, MAX_MESSAGE, Outcome, Reason, Status, fmt_latency, printable};
use crate::resilience::{BreakerState, FlapDetector, Resilience};

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
    /// A critical readiness `tcp` check probed every second, for unit tests.
    #[cfg(test)]
    pub fn for_test(name: &str) -> CheckMeta {
        CheckMeta {
            name: name.into(),
            kind: "tcp",
            critical: true,
            groups: vec![Group::Readiness],
            failure_threshold: 1,
            success_threshold: 1,
            generation: 1,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            resilience: Default::default(),
        }
    }

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

impl Observation {
    /// A run of generation 1 that took 1 ms, started on time and finished now, for unit
    /// tests.
    #[cfg(test)]
    pub fn for_test(check: &str, outcome: Outcome, next_delay: Duration) -> Observation {
        Observation {
            check: check.into(),
            generation: 1,
            outcome,
            latency: Duration::from_millis(1),
            lateness: Duration::ZERO,
            at: SystemTime::now(),
            breaker: Default::default(),
            next_delay,
        }
    }
}

/// The mutable state behind one [`CheckView`].
pub(crate) struct CheckState {
    pub(crate) meta: CheckMeta,
    /// Copy-on-write: the published snapshot shares this `Arc`; the first change after a
    /// publish copies the view (`Arc::make_mut`), so a check costs one view plus a copy
    /// only while it changed since the last snapshot, and an unchanged check costs one
    /// reference count per snapshot.
    pub(crate) view: Arc<CheckView>,
    /// True while the status comes from failures (leaving it takes `success_threshold`).
    failing: bool,
    /// The state machine's own status, before flap holding and staleness.
    machine: Status,
    flap: FlapDetector,
    /// When the latest result arrived, and how long it stays trustworthy.
    fresh_until: Option<Instant>,
    /// A definition that has not produced its first result yet, because a reload changed
    /// or added it: when the first of those reloads happened.
    awaiting_since: Option<Instant>,
}

impl CheckState {
    pub(crate) fn new(meta: CheckMeta) -> CheckState {
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
            blocked_by: Vec::new(),
            details: Default::default(),
            sample: None,
            stats: RunStats::default(),
            reported: false,
            passed_once: false,
            builtin: false,
            pending: false,
        };
        let flap = FlapDetector::new(meta.resilience.flap_window, meta.resilience.flap_threshold);
        CheckState {
            meta,
            view: Arc::new(view),
            failing: false,
            machine: Status::Unknown,
            flap,
            fresh_until: None,
            awaiting_since: None,
        }
    }

    /// How long a new definition may take to produce its first result: its first run comes
    /// within one interval, and staleness allows two plus the timeout.
    fn first_result_bound(meta: &CheckMeta) -> Duration {
        meta.resilience
            .stale_after(meta.interval, meta.interval, meta.timeout)
    }

    /// The state of a check that a reload added after startup: `unknown` and `pending`, so
    /// that it does not count in its groups until its first result, or until its first
    /// result is overdue (then it counts as `unknown`).
    pub(crate) fn added(meta: CheckMeta, now: Instant) -> CheckState {
        let mut s = CheckState::new(meta);
        Arc::make_mut(&mut s.view).pending = true;
        s.awaiting_since = Some(now);
        s
    }

    /// The state of a check whose definition a reload changed: it keeps showing the old
    /// definition's verdict until the new one has a result, and no longer than the old
    /// result's freshness or the new definition's first-result bound (counted from the
    /// first of several reloads in a row, so reloading faster than the check runs cannot
    /// keep an old verdict alive for ever). The new definition's first result then decides
    /// at once, as from `unknown`.
    pub(crate) fn changed(meta: CheckMeta, old: CheckState, now: Instant) -> CheckState {
        let mut s = CheckState::new(meta);
        if !old.view.reported || old.view.stale {
            // Nothing worth carrying: an old definition that never reported, or went stale.
            s.view = Arc::new(CheckView {
                pending: old.view.pending,
                ..CheckView::clone(&s.view)
            });
            s.awaiting_since = old.awaiting_since.or(Some(now));
            return s;
        }
        let since = old.awaiting_since.unwrap_or(now);
        let bound = since.checked_add(Self::first_result_bound(&s.meta));
        s.fresh_until = match (old.fresh_until, bound) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        s.awaiting_since = Some(since);
        let fresh = &s.view;
        let carried = CheckView {
            name: fresh.name.clone(),
            kind: fresh.kind,
            critical: fresh.critical,
            groups: fresh.groups.clone(),
            consecutive_failures: 0,
            consecutive_successes: 0,
            breaker: fresh.breaker,
            next_run: None,
            flapping: false,
            stale: false,
            pending: false,
            builtin: false,
            ..Arc::unwrap_or_clone(old.view)
        };
        s.view = Arc::new(carried);
        s
    }

    /// After a restart, carry on from the check's trailing results before it (oldest first,
    /// as the history store kept them): the state machine's own status, its failing latch
    /// and the consecutive counters are replayed from them, so the first fresh result is
    /// judged by the thresholds as if healthd had not stopped. The shown status is not
    /// restored: it stays `unknown` and unreported until that first fresh result (a stale
    /// verdict is worse than none).
    pub(crate) fn resume(&mut self, past: &[Level]) {
        let mut replay = CheckState::new(self.meta.clone());
        for &level in past {
            replay.step(Observation {
                check: String::new(),
                generation: self.meta.generation,
                outcome: Outcome {
                    level,
                    ..Outcome::ok("")
                },
                latency: Duration::ZERO,
                lateness: Duration::ZERO,
                at: SystemTime::UNIX_EPOCH,
                breaker: BreakerState::Closed,
                next_delay: Duration::ZERO,
            });
        }
        self.failing = replay.failing;
        self.machine = replay.view.status;
        let v = Arc::make_mut(&mut self.view);
        v.consecutive_failures = replay.view.consecutive_failures;
        v.consecutive_successes = replay.view.consecutive_successes;
    }

    /// A pending check whose first result is overdue starts counting (as `unknown`).
    fn settle_pending(&mut self, now: Instant) {
        let (Some(since), true) = (self.awaiting_since, self.view.pending) else {
            return;
        };
        if since
            .checked_add(Self::first_result_bound(&self.meta))
            .is_some_and(|due| now > due)
        {
            let v = Arc::make_mut(&mut self.view);
            v.pending = false;
            v.message = format!(
                "no result yet, {} after it was added",
                fmt_latency(now.saturating_duration_since(since))
            );
        }
    }

    /// Apply one observation (kubelet-style thresholds); returns the old status if it changed.
    ///
    /// From `unknown` the first result decides at once: there is no good state to protect.
    pub(crate) fn apply(&mut self, obs: Observation) -> Option<Status> {
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
        Arc::make_mut(&mut self.view).pending = false;
        self.awaiting_since = None;
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

    /// A run that healthd itself could not carry out (it ran out of file descriptors): the
    /// verdict stands, the message says why nothing newer is known, and the result's
    /// freshness is not renewed, so a lasting shortage turns the check `unknown`.
    pub(crate) fn skip(&mut self, why: &str) {
        let why = printable(why, MAX_MESSAGE);
        Arc::make_mut(&mut self.view).message =
            format!("not run, healthd's own failure (the verdict stands): {why}");
    }

    /// The kubelet-style state machine proper.
    fn step(&mut self, obs: Observation) {
        // Bounded and escaped before it is stored: every renderer reads it from here.
        let outcome = obs.outcome.printable();
        let v = Arc::make_mut(&mut self.view);
        let old = v.status;
        let failed = outcome.level == Level::Failed;
        v.reported = true;
        v.stats.record(
            if failed {
                outcome.reason.or(Some(Reason::Internal))
            } else {
                None
            },
            obs.latency,
        );
        v.last_run = Some(obs.at);
        // Microsecond precision: float noise like 168.27848600000002 helps nobody.
        v.latency_ms = Some((obs.latency.as_secs_f64() * 1e6).round() / 1000.0);
        let reason = outcome.reason;
        v.message = outcome.message;
        v.details = outcome.details;
        if outcome.sample.is_some() {
            v.sample = outcome.sample;
        }
        if outcome.level == Level::Unknown {
            // The probe could not tell: no threshold applies, and the run counts neither
            // towards failures nor towards successes.
            v.status = Status::Unknown;
            v.consecutive_failures = 0;
            v.consecutive_successes = 0;
            v.reason = reason;
            return;
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
                v.status = if outcome.level == Level::Ok {
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

    /// When [`CheckState::expire`] next has something to do: the latest result's freshness
    /// running out, or a pending check's first result becoming overdue.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let fresh = self.fresh_until.filter(|_| !self.view.stale);
        let settle = match (self.awaiting_since, self.view.pending) {
            (Some(since), true) => since.checked_add(Self::first_result_bound(&self.meta)),
            _ => None,
        };
        match (fresh, settle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Turn the check `unknown` if its latest result is too old; returns the old status
    /// when that happened just now.
    pub(crate) fn expire(&mut self, now: Instant, at: SystemTime) -> Option<Status> {
        self.settle_pending(now);
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

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
