//! `kind = "oom"`: processes killed by the kernel's out-of-memory killer. Degraded for
//! `degraded_for` after the count rises: a kill leaves memory free again, so neither the
//! memory check nor readiness would otherwise show that something just died. Counts the
//! container's kills (cgroup v2 `memory.events` `oom_kill`) inside a container, the whole
//! host's (`/proc/vmstat` `oom_kill`, Linux 4.13+) elsewhere.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Kind, Run};
use crate::host::sampler;
use crate::model::{Outcome, Reason, de_duration};

/// Settings of an oom check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OomConfig {
    /// How long the check stays degraded after a kill. Default `5m`.
    #[serde(default = "default_degraded_for", deserialize_with = "de_duration")]
    pub degraded_for: Duration,
}

fn default_degraded_for() -> Duration {
    Duration::from_secs(300)
}

impl Kind for OomConfig {
    type Probe = OomProbe;

    fn build(&self, _timeout: Duration) -> Result<OomProbe, String> {
        Ok(OomProbe {
            degraded_for: self.degraded_for,
            seen: None,
            last_kill: None,
            last_run: None,
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.degraded_for.is_zero() {
            problems.push(("degraded_for".into(), "must be above 0".into()));
        }
    }
}

pub struct OomProbe {
    degraded_for: Duration,
    /// The count at the previous run (kills before the first run are not judged).
    seen: Option<u64>,
    /// When the count last rose, and by how much in total since then.
    last_kill: Option<(Instant, u64)>,
    last_run: Option<Instant>,
}

impl Run for OomProbe {
    async fn run(&mut self) -> Outcome {
        let host = sampler();
        let (count, scope) = match host.cgroup(self.last_run) {
            Some(cg) => (cg.oom_kills(), "in this container"),
            None => (
                host.memory(self.last_run).and_then(|m| m.paging.oom_kills),
                "on this host",
            ),
        };
        self.last_run = Some(Instant::now());
        let Some(count) = count else {
            return Outcome::failed(
                Reason::Config,
                "the kernel does not count OOM kills (oom_kill needs Linux 4.13+)",
            );
        };
        let now = Instant::now();
        if let Some(prev) = self.seen
            && count > prev
        {
            let before = self
                .last_kill
                .filter(|(at, _)| now.duration_since(*at) < self.degraded_for)
                .map_or(0, |(_, n)| n);
            self.last_kill = Some((now, before + (count - prev)));
        }
        self.seen = Some(count);
        let outcome = match self.last_kill {
            Some((at, n)) if now.duration_since(at) < self.degraded_for => Outcome::degraded(
                Reason::Threshold,
                format!(
                    "{n} process(es) killed by the OOM killer {scope}, the latest {} ago",
                    humantime::format_duration(Duration::from_secs(now.duration_since(at).as_secs()))
                ),
            ),
            _ => Outcome::ok(format!(
                "no OOM kill {scope} in the last {}",
                humantime::format_duration(self.degraded_for)
            )),
        };
        outcome.with_detail("oom_kills_total", count)
    }
}
