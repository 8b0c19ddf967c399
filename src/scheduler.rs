//! Runs checks: each on its own interval with jitter, driven by one task from a sorted
//! schedule, bounded by its timeout, isolated from panics, and limited by a global bulkhead
//! on in-flight probes.
//!
//! The scheduler is the caller that judges, once for every kind (as blackbox_exporter's
//! prober handler does): the deadline (a run cut off is `timeout`), a panic (`internal`,
//! the probe is rebuilt), an answer slower than `degraded_after` (degraded, `threshold`),
//! and redaction of every result before it leaves.

pub mod once;
mod timetable;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::check::Probe;
use crate::config::CheckConfig;
use crate::health::Event;
use crate::model::{Level, Outcome, Reason, Status, fmt_latency, one_line};
use timetable::{Command, Timetable};
/// The first run of every check happens within this much of start-up (or its interval, if
/// shorter), so startup completes quickly.
pub const FIRST_RUN_SPREAD: Duration = Duration::from_secs(1);

/// Owns the check schedule (one task, see [`timetable`]) and applies config changes to it.
pub struct Scheduler {
    commands: mpsc::Sender<Command>,
    driver: JoinHandle<()>,
    len: usize,
}

impl Scheduler {
    pub fn new(
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
        max_in_flight: usize,
    ) -> Scheduler {
        let (commands, receiver) = mpsc::channel(4);
        let timetable = Timetable::new(events, cancel, max_in_flight);
        Scheduler {
            commands,
            driver: tokio::spawn(timetable.drive(receiver)),
            len: 0,
        }
    }

    /// Make the running set match `checks`: unchanged checks keep running (and keep their
    /// state), changed ones restart, removed ones stop, new ones start. Returns once the
    /// new set has reached the health loop.
    pub async fn apply(&mut self, checks: &[Arc<CheckConfig>]) {
        let (done, applied) = oneshot::channel();
        if self
            .commands
            .send(Command::Apply(checks.to_vec(), done))
            .await
            .is_ok()
        {
            let _ = applied.await;
        }
        self.len = checks.len();
    }

    /// Stop every check, waiting at most `grace` for runs in flight to finish.
    pub async fn stop(self, grace: Duration) {
        let _ = self.commands.send(Command::Stop(grace)).await;
        let _ = tokio::time::timeout(grace + Duration::from_secs(1), self.driver).await;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Run a probe once under the check's timeout; a panic becomes a failed result with reason
/// `internal` and the probe is rebuilt on the next run. Credentials are scrubbed from the
/// result here, once for every kind, before it can reach a snapshot, log or metric.
pub async fn run_once(probe: &mut Option<Probe>, config: &CheckConfig) -> Outcome {
    run_timed(probe, config).await.0
}

/// [`run_once`], with how long the run took (building the probe left out): the one
/// measurement that `degraded_after`, the snapshot and `healthd check` all use.
pub async fn run_timed(probe: &mut Option<Probe>, config: &CheckConfig) -> (Outcome, Duration) {
    let p = match probe {
        Some(p) => p,
        None => match Probe::build(&config.probe, config.timeout) {
            Ok(p) => probe.insert(p),
            Err(e) => {
                let outcome = crate::redact::outcome(Outcome::failed(Reason::Config, e));
                return (outcome, Duration::ZERO);
            }
        },
    };
    // Boxed by `Probe::run`, sized for its own kind's future, not the largest kind's
    // (several KiB).
    let started = Instant::now();
    let (outcome, panicked) = guarded(&config.name, config.timeout, p.run()).await;
    if panicked {
        *probe = None;
    }
    let took = started.elapsed();
    let outcome = judge_latency(outcome, took, config.degraded_after);
    (crate::redact::outcome(outcome), took)
}

/// `degraded_after`, the same for every kind: an answer that came, but slower than the
/// limit, is degraded with reason `threshold` (a measured value above its threshold, not a
/// timeout). The kind's own answer time is used where it measured one apart from the run
/// (a kept connection leaves out connecting); otherwise the whole run's.
pub fn judge_latency(outcome: Outcome, run: Duration, limit: Option<Duration>) -> Outcome {
    let took = outcome.answered_in.unwrap_or(run);
    match limit {
        Some(limit) if outcome.level == Level::Ok && took > limit => Outcome {
            level: Level::Degraded,
            reason: Some(Reason::Threshold),
            message: format!(
                "{} in {} (slower than {})",
                outcome.message,
                fmt_latency(took),
                humantime::format_duration(limit)
            ),
            ..outcome
        },
        _ => outcome,
    }
}

/// Await one run under `timeout`, turning a panic into a failed result with reason
/// `internal`; the flag says whether it panicked (the probe's state is then suspect).
pub async fn guarded<F>(name: &str, timeout: Duration, run: F) -> (Outcome, bool)
where
    F: std::future::Future<Output = Outcome>,
{
    match tokio::time::timeout(timeout, AssertUnwindSafe(run).catch_unwind()).await {
        Err(_) => (
            Outcome::failed(
                Reason::Timeout,
                format!("no result within {}", humantime::format_duration(timeout)),
            ),
            false,
        ),
        Ok(Err(panic)) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let text = crate::redact::text(&text);
            tracing::error!(check = %name, panic = %text, "Probe panicked; it will be rebuilt.");
            (
                Outcome::failed(
                    Reason::Internal,
                    format!("probe panicked: {}", one_line(&text)),
                ),
                true,
            )
        }
        Ok(Ok(outcome)) => (outcome, false),
    }
}

/// The status a single run gives, without thresholds (for `healthd check`).
pub fn status_of(outcome: &Outcome, critical: bool) -> Status {
    match outcome.level {
        Level::Ok => Status::Healthy,
        Level::Degraded => Status::Degraded,
        Level::Failed if critical => Status::Unhealthy,
        Level::Failed => Status::Degraded,
        Level::Unknown => Status::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_internal_failure() {
        let run = async {
            if std::hint::black_box(true) {
                panic!("boom at postgres://app:hunter2@db/x");
            }
            Outcome::ok("unreachable")
        };
        let (outcome, panicked) = guarded("p", Duration::from_secs(1), run).await;
        assert!(panicked);
        assert_eq!(outcome.level, Level::Failed);
        assert_eq!(outcome.reason, Some(Reason::Internal));
        assert!(
            outcome.message.contains("probe panicked: boom"),
            "{}",
            outcome.message
        );
        assert!(!outcome.message.contains("hunter2"), "{}", outcome.message);
    }

    #[test]
    fn a_slow_answer_is_degraded_with_reason_threshold() {
        let ok = Outcome::ok("db answered");
        let limit = Some(Duration::from_millis(100));
        let slow = judge_latency(ok.clone(), Duration::from_millis(250), limit);
        assert_eq!(slow.level, Level::Degraded);
        assert_eq!(slow.reason, Some(Reason::Threshold));
        assert_eq!(slow.message, "db answered in 250.0ms (slower than 100ms)");
        // The kind's own answer time wins over the run's (connecting is left out).
        let answered = ok.clone().answered_in(Duration::from_millis(20));
        let fast = judge_latency(answered, Duration::from_millis(250), limit);
        assert_eq!(fast.level, Level::Ok);
        // A failure stays a failure; no limit, no judgement.
        let failed = Outcome::failed(Reason::Connect, "refused");
        let failed = judge_latency(failed, Duration::from_secs(1), limit);
        assert_eq!(failed.reason, Some(Reason::Connect));
        assert_eq!(
            judge_latency(ok, Duration::from_secs(9), None).level,
            Level::Ok
        );
    }

    #[tokio::test]
    async fn a_wedged_run_times_out() {
        let run = std::future::pending::<Outcome>();
        let (outcome, panicked) = guarded("w", Duration::from_millis(50), run).await;
        assert!(!panicked);
        assert_eq!(outcome.reason, Some(Reason::Timeout));
    }
}
