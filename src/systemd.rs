//! systemd integration over the sd_notify protocol (the `sd-notify` crate): `READY=1` once the
//! daemon serves, a `STATUS=` line kept current, `WATCHDOG=1` only while the snapshot loop makes
//! progress, `RELOADING=1` … `READY=1` around a reload and `STOPPING=1` on shutdown.
//!
//! Every notification is a no-op when `NOTIFY_SOCKET` is unset (healthd not started by systemd).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::health::Verdicts;
use crate::model::{Group, Status};

/// Least time between two recomputations of the `STATUS=` line (it follows the published
/// snapshots, and is sent only when it changed).
const STATUS_GAP: Duration = Duration::from_secs(1);

/// Longest wait before READY=1 for the health loop to publish the scheduled checks.
const READY_PUBLISH_WAIT: Duration = Duration::from_secs(2);

/// Tells systemd what the daemon is doing. Created once the daemon serves.
pub struct Notifier {
    state: Verdicts,
    /// The last `STATUS=` text sent, so the poller sends only changes.
    last_status: Arc<Mutex<String>>,
    cancel: CancellationToken,
}

impl Notifier {
    /// Send `READY=1` with the first `STATUS=`, then keep the status current and, if systemd
    /// asked for it (`WATCHDOG_USEC`), ping the watchdog while the snapshot loop is alive.
    ///
    /// Call once the config is loaded, the listener bound and the checks scheduled.
    pub async fn ready(state: Verdicts) -> Notifier {
        // The checks were handed to the health loop just before; let it publish them (bounded)
        // so the first STATUS= counts them.
        let pulse = state.snapshot.load().pulse.clone();
        let deadline = tokio::time::Instant::now() + READY_PUBLISH_WAIT;
        while !pulse.caught_up() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let line = status_line(&state);
        send(&[NotifyState::Ready, NotifyState::Status(&line)]);
        let notifier = Notifier {
            state,
            last_status: Arc::new(Mutex::new(line)),
            cancel: CancellationToken::new(),
        };
        tokio::spawn(keep_status_current(
            notifier.state.clone(),
            notifier.last_status.clone(),
            notifier.cancel.clone(),
        ));
        if let Some(timeout) = sd_notify::watchdog_enabled() {
            tracing::info!(
                timeout = %humantime::format_duration(timeout),
                "systemd watchdog enabled; pinging at half its timeout while the snapshot loop is alive."
            );
            tokio::spawn(watchdog(
                notifier.state.clone(),
                notifier.last_status.clone(),
                timeout,
                notifier.cancel.clone(),
            ));
        }
        notifier
    }

    /// A reload begins (SIGHUP).
    pub fn reloading(&self) {
        // systemd ≥ 253 (Type=notify-reload) wants the CLOCK_MONOTONIC time of the request with
        // RELOADING=1; older versions ignore it.
        let mut states = vec![
            NotifyState::Reloading,
            NotifyState::Status("reloading configuration"),
        ];
        match NotifyState::monotonic_usec_now() {
            Ok(now) => states.insert(1, now),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the monotonic clock for MONOTONIC_USEC.")
            }
        }
        send(&states);
        self.set_last_status("reloading configuration");
    }

    /// A reload finished: READY=1 either way, since a rejected reload leaves the previous
    /// configuration running, and a STATUS saying which it was.
    pub fn reloaded(&self, result: &Result<(), Vec<ConfigError>>) {
        let line = match result {
            Ok(()) => format!("configuration reloaded; {}", status_line(&self.state)),
            Err(errors) => format!(
                "reload rejected: {} problem(s), running the previous configuration (see the journal or /health)",
                errors.len()
            ),
        };
        send(&[NotifyState::Ready, NotifyState::Status(&line)]);
        self.set_last_status(&line);
    }

    /// Shutdown begins: readiness fails from now on, for `delay`, then healthd stops.
    pub fn stopping(&self, delay: Duration) {
        let line = format!(
            "shutting down: not ready, draining for {}",
            humantime::format_duration(delay)
        );
        send(&[NotifyState::Stopping, NotifyState::Status(&line)]);
        self.set_last_status(&line);
    }

    fn set_last_status(&self, line: &str) {
        *lock(&self.last_status) = line.to_string();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The one-line summary systemd shows in `systemctl status`, e.g.
/// `readiness: ok; 7 checks: 6 healthy, 1 degraded`.
pub fn status_line(state: &Verdicts) -> String {
    let snap = state.snapshot.load();
    let (_, word) = state.group(Group::Readiness);
    let probes: Vec<Status> = snap
        .checks
        .iter()
        .filter(|c| !c.builtin)
        .map(|c| c.status)
        .collect();
    let mut line = format!(
        "readiness: {word}; {} check{}",
        probes.len(),
        if probes.len() == 1 { "" } else { "s" }
    );
    let counts: Vec<String> = Status::ALL
        .iter()
        .map(|s| (s, probes.iter().filter(|p| *p == s).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    if !counts.is_empty() {
        line.push_str(": ");
        line.push_str(&counts.join(", "));
    }
    if let Some(reload) = snap.reload.as_ref().filter(|r| !r.ok) {
        line.push_str(&format!(
            "; last reload rejected ({} problem(s))",
            reload.errors.len()
        ));
    }
    if state.stalled() {
        line.push_str("; snapshot loop stalled");
    }
    line
}

/// Recompute the `STATUS=` line when the health loop publishes (at most once per
/// [`STATUS_GAP`]), and send it when it changed. Nothing wakes while nothing is published.
async fn keep_status_current(state: Verdicts, last: Arc<Mutex<String>>, cancel: CancellationToken) {
    let mut published = state.snapshot.load().pulse.subscribe();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = published.changed() => if changed.is_err() { return },
        }
        send_status_if_changed(&state, &last);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(STATUS_GAP) => {}
        }
    }
}

fn send_status_if_changed(state: &Verdicts, last: &Mutex<String>) {
    let line = status_line(state);
    let changed = {
        let mut last = lock(last);
        if *last == line {
            false
        } else {
            *last = line.clone();
            true
        }
    };
    if changed {
        send(&[NotifyState::Status(&line)]);
    }
}

/// Ping at half the watchdog timeout, but only while the snapshot loop makes progress (it
/// has had no work waiting, or has not been stuck on it for longer than `server.stall_after`):
/// a stalled snapshot loop (or a wedged runtime, which stops this task too) stops the pings,
/// and systemd restarts healthd one timeout later. This is the one periodic wake of an idle
/// daemon, and only under a systemd watchdog.
async fn watchdog(
    state: Verdicts,
    last: Arc<Mutex<String>>,
    timeout: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval((timeout / 2).max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stalled = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let stuck = state.snapshot.load().stuck_for();
        let bound = state.policy.load().stall_after;
        if stuck <= bound {
            if stalled {
                stalled = false;
                tracing::info!("Snapshot loop progressing again; watchdog pings resumed.");
                send_status_if_changed(&state, &last);
            }
            send(&[NotifyState::Watchdog]);
        } else if !stalled {
            stalled = true;
            tracing::error!(
                stuck = %humantime::format_duration(round_ms(stuck)),
                stall_after = %humantime::format_duration(bound),
                "Snapshot loop stalled; withholding watchdog pings so systemd restarts healthd."
            );
            // The loop publishes nothing while stalled: say so here.
            send_status_if_changed(&state, &last);
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u64::MAX as u128) as u64)
}

fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Send one notification; a failure is logged once (systemd gone, socket unwritable), since
/// the watchdog would otherwise repeat it twice per timeout.
fn send(states: &[NotifyState]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "Cannot notify systemd; further failures are not logged.");
    }
}

// --- Test-only stall hook -------------------------------------------------------------------
//
// NOT FOR PRODUCTION USE. It exists so tests can show that the watchdog pings stop when the
// snapshot loop stops making progress (tests/it/systemd_notify.rs). Off unless the environment
// variable below is `1`.

/// Test-only: with `HEALTHD_TEST_STALL_ON_SIGUSR2=1`, SIGUSR2 freezes the health loop.
pub const TEST_STALL_ENV: &str = "HEALTHD_TEST_STALL_ON_SIGUSR2";

/// Test-only: when [`TEST_STALL_ENV`] is `1`, a token that SIGUSR2 cancels; else `None`.
pub fn test_stall_hook() -> Option<CancellationToken> {
    if std::env::var(TEST_STALL_ENV).ok().as_deref() != Some("1") {
        return None;
    }
    let mut usr2 =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot install the SIGUSR2 test stall hook.");
                return None;
            }
        };
    tracing::warn!(
        env = TEST_STALL_ENV,
        "Test-only stall hook armed: SIGUSR2 will freeze the health loop."
    );
    let stall = CancellationToken::new();
    let fire = stall.clone();
    tokio::spawn(async move {
        if usr2.recv().await.is_some() {
            tracing::warn!("SIGUSR2 (test hook): freezing the health loop.");
            fire.cancel();
        }
    });
    Some(stall)
}

/// Test-only: run `inner` until `stall` is cancelled, then never poll it again, leaving it
/// frozen mid-flight like a loop stuck in a call that never returns (it is not dropped, so
/// its channel stays open and senders eventually block on it).
pub async fn stallable(inner: impl Future<Output = ()>, stall: CancellationToken) {
    let mut inner = std::pin::pin!(inner);
    let mut fired = std::pin::pin!(stall.clone().cancelled_owned());
    std::future::poll_fn(move |cx| {
        if stall.is_cancelled() || fired.as_mut().poll(cx).is_ready() {
            // No waker is kept: nothing ever polls `inner` again.
            return Poll::Pending;
        }
        inner.as_mut().poll(cx)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use tokio_util::sync::CancellationToken;

    use super::status_line;
    use crate::health::{CheckMeta, Event, HealthLoop, Observation, Policy, ReloadInfo, Verdicts};
    use crate::model::{Group, Outcome, Reason};

    fn meta(name: &str, critical: bool) -> CheckMeta {
        CheckMeta {
            name: name.into(),
            kind: "tcp",
            critical,
            groups: vec![Group::Readiness],
            failure_threshold: 1,
            success_threshold: 1,
            generation: 1,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            resilience: Default::default(),
        }
    }

    fn obs(name: &str, outcome: Outcome) -> Event {
        Event::Observation(Observation::for_test(
            name,
            outcome,
            Duration::from_secs(10),
        ))
    }

    async fn settle(state: &Verdicts, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while status_line(state) != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "status stayed {:?}, wanted {want:?}",
                status_line(state)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn status_line_follows_readiness_counts_reload_and_drain() {
        let (health_loop, health) = HealthLoop::new(64);
        let cancel = CancellationToken::new();
        tokio::spawn(health_loop.run(cancel.clone()));
        let policy = Policy {
            stall_after: Duration::from_secs(30),
            ..Policy::default()
        };
        let state = Verdicts::new(health.snapshot.clone(), policy);
        let send = |ev| health.events.send(ev);
        send(Event::Reconfigure(vec![meta("a", true), meta("b", false)]))
            .await
            .unwrap();
        settle(&state, "readiness: starting; 2 checks: 2 unknown").await;

        send(obs("a", Outcome::ok("fine"))).await.unwrap();
        send(obs("b", Outcome::failed(Reason::Connect, "refused")))
            .await
            .unwrap();
        settle(
            &state,
            "readiness: degraded; 2 checks: 1 healthy, 1 degraded",
        )
        .await;

        send(Event::Reloaded(ReloadInfo {
            at: Some(SystemTime::now()),
            ok: false,
            errors: vec!["f: k: bad".into(), "f: j: bad".into()],
        }))
        .await
        .unwrap();
        settle(
            &state,
            "readiness: degraded; 2 checks: 1 healthy, 1 degraded; last reload rejected (2 problem(s))",
        )
        .await;

        state.start_draining();
        assert!(status_line(&state).starts_with("readiness: shutting down; 2 checks"));
        cancel.cancel();
    }
}
