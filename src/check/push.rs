//! `kind = "push"`: heartbeats from jobs that cannot be probed (cron jobs, batch workers).
//! The job calls `POST /push/NAME` (see `server::push`); the check is healthy while a success
//! arrived within `period + grace`, and fails with reason `timeout` after that.
//!
//! What the job told us lives in a [`PushSlot`] shared (one `Arc`) by the config, the probe
//! the scheduler runs every `interval` (which notices a missing heartbeat) and the HTTP
//! handler (which records a push and publishes its verdict at once). A reload hands the slot
//! of an unchanged check to its new config, so pushes survive it; a restart starts empty.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{Kind, Run};
use crate::model::{Outcome, Reason, de_duration, fmt_latency};

/// Pushes a check accepts at once (the bucket), and how many a second refill it.
pub const PUSH_BURST: u32 = 60;
pub const PUSH_PER_SECOND: u32 = 10;

/// Settings of a push check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// How often the job is expected to succeed (`1h` for an hourly cron job).
    #[serde(deserialize_with = "de_duration")]
    pub period: Duration,
    /// Lateness tolerated on top of `period`; also how long a `start` may go without a
    /// success. Default `5m`.
    #[serde(default = "default_grace", deserialize_with = "de_duration")]
    pub grace: Duration,
    /// File holding this check's push token (sent as `Authorization: Bearer …`).
    pub token_file: PathBuf,
    /// What the job has pushed; shared, never compared.
    #[serde(skip)]
    pub slot: PushSlot,
}

fn default_grace() -> Duration {
    Duration::from_secs(300)
}

/// What a job can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Success,
    /// `/fail` (with the body as message) or a non-zero exit code.
    Fail {
        exit_code: Option<i32>,
        message: String,
    },
    /// The job started; a success must follow within `grace`.
    Start,
}

/// Refused: the check's rate limit is used up.
#[derive(Debug)]
pub struct RateLimited;

#[derive(Debug)]
struct State {
    /// When the check was defined (a check never pushed is unknown until `period + grace`).
    created: Instant,
    success: Option<(Instant, SystemTime)>,
    start: Option<(Instant, SystemTime)>,
    /// The latest failure, if it came after the latest success.
    failure: Option<(Instant, Option<i32>, String)>,
    accepted: u64,
    refused: u64,
    tokens: f64,
    refilled: Instant,
}

/// The pushes of one check: shared between its config, its probe and the HTTP handler.
#[derive(Debug, Clone)]
pub struct PushSlot(Arc<Mutex<State>>);

impl Default for PushSlot {
    fn default() -> Self {
        let now = Instant::now();
        PushSlot(Arc::new(Mutex::new(State {
            created: now,
            success: None,
            start: None,
            failure: None,
            accepted: 0,
            refused: 0,
            tokens: f64::from(PUSH_BURST),
            refilled: now,
        })))
    }
}

/// Slots are state, not settings: two configs are equal whatever their slots hold.
impl PartialEq for PushSlot {
    fn eq(&self, _: &PushSlot) -> bool {
        true
    }
}

impl PushSlot {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a push, unless the rate limit is used up (then nothing is recorded).
    pub fn record(&self, signal: Signal) -> Result<(), RateLimited> {
        let mut s = self.state();
        let now = Instant::now();
        let refill = now.duration_since(s.refilled).as_secs_f64() * f64::from(PUSH_PER_SECOND);
        s.tokens = (s.tokens + refill).min(f64::from(PUSH_BURST));
        s.refilled = now;
        if s.tokens < 1.0 {
            s.refused += 1;
            return Err(RateLimited);
        }
        s.tokens -= 1.0;
        s.accepted += 1;
        let at = (now, SystemTime::now());
        match signal {
            Signal::Success => {
                s.success = Some(at);
                s.failure = None;
            }
            Signal::Start => s.start = Some(at),
            Signal::Fail { exit_code, message } => s.failure = Some((now, exit_code, message)),
        }
        Ok(())
    }

    /// The verdict now, for a check with this `period` and `grace`.
    pub fn judge(&self, period: Duration, grace: Duration) -> Outcome {
        let s = self.state();
        let now = Instant::now();
        let ago = |t: Instant| fmt_latency(now.duration_since(t));
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let window = period.saturating_add(grace);
        let outcome = if let Some((_, code, message)) = &s.failure {
            let what = match code {
                Some(c) => format!("the job exited with status {c}"),
                None => "the job reported a failure".to_string(),
            };
            let message = if message.is_empty() {
                what
            } else {
                format!("{what}: {message}")
            };
            Outcome::failed(Reason::Status, message)
        } else if let Some((start, _)) = s.start.filter(|(t, _)| {
            s.success.is_none_or(|(ok, _)| *t > ok) && now.duration_since(*t) > grace
        }) {
            Outcome::failed(
                Reason::Timeout,
                format!(
                    "the job started {} ago and has not succeeded within the grace of {}",
                    ago(start),
                    d(grace)
                ),
            )
        } else if let Some((ok, _)) = s.success {
            if now.duration_since(ok) <= window {
                Outcome::ok(format!("last heartbeat {} ago", ago(ok)))
            } else {
                Outcome::failed(
                    Reason::Timeout,
                    format!(
                        "no heartbeat for {} (period {} + grace {})",
                        ago(ok),
                        d(period),
                        d(grace)
                    ),
                )
            }
        } else if now.duration_since(s.created) <= window {
            Outcome::unknown(
                None,
                format!("no heartbeat yet (expected within {})", d(window)),
            )
        } else {
            Outcome::failed(
                Reason::Timeout,
                format!(
                    "no heartbeat since healthd started {} ago (period {} + grace {})",
                    ago(s.created),
                    d(period),
                    d(grace)
                ),
            )
        };
        let time = |t: Option<(Instant, SystemTime)>| {
            t.map(|(_, at)| humantime::format_rfc3339_millis(at).to_string())
        };
        outcome
            .with_detail("pushes", s.accepted)
            .with_detail("refused", s.refused)
            .with_detail("last_success", time(s.success))
            .with_detail("last_start", time(s.start))
    }
}

impl Kind for PushConfig {
    type Probe = PushProbe;

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        // Like a password_file, the token may be handed over later (systemd credentials):
        // a missing file is not a config error, but pushes are refused until it is there.
        match std::fs::read_to_string(&self.token_file) {
            Err(e) => tracing::warn!(
                file = %self.token_file.display(),
                error = %e,
                "A push token_file cannot be read; pushes to its check are refused until it can be and healthd reloads."
            ),
            Ok(t) if t.trim().is_empty() => problems.push((
                "token_file".into(),
                format!("{} is empty", self.token_file.display()),
            )),
            Ok(_) => crate::redact::warn_if_world_readable(&self.token_file, "a push token_file"),
        }
    }

    fn build(&self, _timeout: Duration) -> Result<PushProbe, String> {
        Ok(PushProbe {
            slot: self.slot.clone(),
            period: self.period,
            grace: self.grace,
        })
    }
}

/// Run by the scheduler every `interval`: notices a heartbeat that did not come.
pub struct PushProbe {
    slot: PushSlot,
    period: Duration,
    grace: Duration,
}

impl Run for PushProbe {
    async fn run(&mut self) -> Outcome {
        self.slot.judge(self.period, self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn success_fail_start_and_the_rate_limit() {
        let slot = PushSlot::default();
        assert_eq!(slot.judge(H, H).level, Level::Unknown);
        assert_eq!(slot.judge(Duration::ZERO, Duration::ZERO).reason, Some(Reason::Timeout));
        slot.record(Signal::Success).unwrap();
        assert_eq!(slot.judge(H, H).level, Level::Ok);
        slot.record(Signal::Fail { exit_code: Some(3), message: "disk full".into() }).unwrap();
        let o = slot.judge(H, H);
        assert_eq!((o.level, o.reason), (Level::Failed, Some(Reason::Status)));
        assert_eq!(o.message, "the job exited with status 3: disk full");
        slot.record(Signal::Success).unwrap();
        slot.record(Signal::Start).unwrap();
        assert_eq!(slot.judge(H, H).level, Level::Ok, "a start within grace");
        let o = slot.judge(H, Duration::ZERO);
        assert_eq!(o.reason, Some(Reason::Timeout), "a start past grace: {o:?}");
        let mut accepted = 4;
        while slot.record(Signal::Success).is_ok() {
            accepted += 1;
        }
        assert!((PUSH_BURST as u64..PUSH_BURST as u64 + 5).contains(&accepted), "{accepted}");
        assert_eq!(slot.judge(H, H).details["refused"], 1);
    }
}
