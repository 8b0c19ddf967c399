//! Runs checks: one task per check, each on its own interval with jitter, bounded by its
//! timeout, isolated from panics, and limited by a global bulkhead on in-flight probes.
//!
//! The scheduler is the caller that judges, once for every kind (as blackbox_exporter's
//! prober handler does): the deadline (a run cut off is `timeout`), a panic (`internal`,
//! the probe is rebuilt), an answer slower than `degraded_after` (degraded, `threshold`),
//! and redaction of every result before it leaves.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::check::Probe;
use crate::config::CheckConfig;
use crate::health::{CheckMeta, Event, Observation};
use crate::model::{Level, Outcome, Reason, Status, fmt_latency, one_line};
use crate::resilience::{Breaker, NextRun};
/// The first run of every check happens within this much of start-up (or its interval, if
/// shorter), so startup completes quickly.
pub const FIRST_RUN_SPREAD: Duration = Duration::from_secs(1);

struct Running {
    config: Arc<CheckConfig>,
    generation: u64,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

/// Owns the check tasks and applies config changes to them.
pub struct Scheduler {
    running: HashMap<String, Running>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    limiter: Arc<Semaphore>,
    next_generation: u64,
}

impl Scheduler {
    pub fn new(
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
        max_in_flight: usize,
    ) -> Scheduler {
        Scheduler {
            running: HashMap::new(),
            events,
            cancel,
            limiter: Arc::new(Semaphore::new(max_in_flight.max(1))),
            next_generation: 1,
        }
    }

    /// Make the running set match `checks`: unchanged checks keep running (and keep their
    /// state), changed ones restart, removed ones stop, new ones start.
    pub async fn apply(&mut self, checks: &[Arc<CheckConfig>]) {
        let mut keep: HashMap<String, Running> = HashMap::with_capacity(checks.len());
        let mut to_start: Vec<(Arc<CheckConfig>, u64)> = Vec::new();
        let mut metas = Vec::with_capacity(checks.len());
        for c in checks {
            match self.running.remove(&c.name) {
                Some(r) if r.config == *c => {
                    metas.push(CheckMeta::of(c, r.generation));
                    keep.insert(c.name.clone(), r);
                }
                old => {
                    if let Some(r) = old {
                        r.token.cancel();
                    }
                    let generation = self.next_generation;
                    self.next_generation += 1;
                    metas.push(CheckMeta::of(c, generation));
                    // Shared with the config and the task, not copied.
                    to_start.push((Arc::clone(c), generation));
                }
            }
        }
        for (_, r) in self.running.drain() {
            r.token.cancel();
        }
        // The new set must reach the health loop before any result of a new task does.
        let _ = self.events.send(Event::Reconfigure(metas)).await;
        for (config, generation) in to_start {
            let token = self.cancel.child_token();
            let handle = tokio::spawn(run_check(
                Arc::clone(&config),
                generation,
                self.events.clone(),
                token.clone(),
                self.limiter.clone(),
            ));
            keep.insert(
                config.name.clone(),
                Running {
                    config,
                    generation,
                    token,
                    handle,
                },
            );
        }
        self.running = keep;
    }

    /// Stop every check task, waiting at most `grace` for them to finish.
    pub async fn stop(self, grace: Duration) {
        let handles: Vec<JoinHandle<()>> = self
            .running
            .into_values()
            .map(|r| {
                r.token.cancel();
                r.handle
            })
            .collect();
        let wait = futures_util::future::join_all(handles);
        let _ = tokio::time::timeout(grace, wait).await;
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

async fn run_check(
    config: Arc<CheckConfig>,
    generation: u64,
    events: mpsc::Sender<Event>,
    token: CancellationToken,
    limiter: Arc<Semaphore>,
) {
    let mut probe: Option<Probe> = None;
    let mut breaker = Breaker::new(
        config.interval,
        config.failure_threshold,
        config.resilience.clone(),
    );
    // First run soon (startup waits for it), then a random phase within one interval so
    // that thousands of checks with one interval spread out instead of firing together.
    let first = random_below(config.interval.min(FIRST_RUN_SPREAD));
    let phase = random_below(config.interval);
    let mut due = later(tokio::time::Instant::now(), first);
    // The slot on the normal schedule; confirmation and backoff runs do not move it.
    let mut slot = due;
    let mut runs: u64 = 0;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            p = limiter.acquire() => p,
        };
        let lateness = tokio::time::Instant::now().saturating_duration_since(due);
        let (outcome, latency) = run_timed(&mut probe, &config).await;
        drop(permit);
        runs += 1;
        let now = tokio::time::Instant::now();
        if runs == 1 {
            slot = later(now, phase);
        }
        // Skip missed slots rather than bursting to catch up.
        while slot <= now {
            slot = later(slot, config.interval);
        }
        due = match breaker.record(outcome.level, rand::random::<f64>()) {
            NextRun::Interval => slot,
            NextRun::After(d) => later(now, d),
        };
        let next_delay = due.saturating_duration_since(now);
        let obs = Observation {
            check: config.name.clone(),
            generation,
            outcome,
            latency,
            lateness,
            at: SystemTime::now(),
            breaker: breaker.state(),
            next_delay,
        };
        if token.is_cancelled() || events.send(Event::Observation(obs)).await.is_err() {
            return;
        }
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
    // Boxed, so the state of a run lives only while it runs: otherwise every check task
    // carries the largest probe kind's future (several KiB) between runs.
    let started = Instant::now();
    let (outcome, panicked) = guarded(&config.name, config.timeout, Box::pin(p.run())).await;
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

/// Run every check once, concurrently (bounded), for `healthd check`.
pub async fn run_all_once(
    checks: &[Arc<CheckConfig>],
    max_in_flight: usize,
) -> Vec<(Outcome, Duration)> {
    let limiter = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let tasks: Vec<_> = checks
        .iter()
        .cloned()
        .map(|c| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let _permit = limiter.acquire().await;
                run_timed(&mut None, &c).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(match t.await {
            Ok(r) => r,
            Err(e) => (
                Outcome::failed(Reason::Internal, format!("check task failed: {e}")),
                Duration::ZERO,
            ),
        });
    }
    out
}

/// `t + d` without overflow ([`crate::model::later`]), on tokio's clock.
fn later(t: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(crate::model::later(t.into_std(), d))
}

fn random_below(d: Duration) -> Duration {
    let nanos = d.as_nanos().min(u64::MAX as u128) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random::<u64>() % nanos)
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

    /// Every check is one task holding this future between runs: 100,000 checks hold
    /// 100,000 of them. The config is shared (an `Arc`) and the probe boxed per kind, so it
    /// does not carry a copy of the settings or the largest kind's probe.
    #[test]
    fn a_check_task_stays_small() {
        fn future_size<A, B, C, D, E, F>(_: fn(A, B, C, D, E) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        assert!(std::mem::size_of::<Probe>() <= 16);
        let size = future_size(run_check);
        assert!(size <= 1536, "a check task's future takes {size} bytes");
    }

    #[tokio::test]
    async fn a_wedged_run_times_out() {
        let run = std::future::pending::<Outcome>();
        let (outcome, panicked) = guarded("w", Duration::from_millis(50), run).await;
        assert!(!panicked);
        assert_eq!(outcome.reason, Some(Reason::Timeout));
    }
}
