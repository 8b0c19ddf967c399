//! The fault suite: each scenario breaks a real peer on loopback and asserts the verdict,
//! the reason, how long it took to notice and to recover, and that the rest of healthd
//! (another check, the probe endpoints) was not disturbed. Every scenario prints a line
//! `FAULT <name> detect=<s> recover=<s>` for the failure-behaviour table.
//!
//! Here: the config (a check under test and a witness) and the break/repair scenario every
//! file uses. By fault family: [`network`] (TCP, DNS and HTTP peers that hang, refuse,
//! fail or are slow), [`resilience`] (breaker, confirmation, flapping, starvation by the
//! bulkhead) and [`load`] (TIME_WAIT on the target, 2,000 checks against one slow peer).

mod load;
mod network;
mod resilience;

use std::time::Duration;

use crate::support::daemon::{TestDaemon, status_is};
use crate::support::peers::TcpPeer;

const SLACK: Duration = Duration::from_secs(5);

/// A config with one check under test (its TOML body given) and a healthy witness.
fn config(witness: &TcpPeer, check: &str, extra_server: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{extra_server}

[defaults]
interval = "300ms"
timeout = "200ms"
failure_threshold = 2
max_backoff = "1200ms"

[[checks]]
name = "witness"
kind = "tcp"
host = "127.0.0.1"
port = {}

[[checks]]
name = "subject"
{check}
"#,
        witness.addr.port()
    )
}

/// Witness and subject healthy, and both probe endpoints answering 200, before the fault.
pub async fn healthy_at_first(h: &TestDaemon) {
    h.timed_wait(
        "witness",
        SLACK,
        "healthy at first",
        status_is("healthy", None),
    )
    .await;
    h.timed_wait(
        "subject",
        SLACK,
        "healthy at first",
        status_is("healthy", None),
    )
    .await;
    h.assert_probes(200, 200).await;
}

/// Break, wait for the verdict, repair, wait for recovery; returns (detect, recover).
async fn scenario(
    h: &TestDaemon,
    reason: &'static str,
    bound: Duration,
    break_it: impl FnOnce(),
    repair: Option<Box<dyn FnOnce() + Send>>,
) -> (Duration, Option<Duration>) {
    healthy_at_first(h).await;
    break_it();
    let detect = h
        .timed_wait(
            "subject",
            bound,
            "unhealthy",
            status_is("unhealthy", Some(reason)),
        )
        .await;
    assert_eq!(h.get("/readyz").await.0, 503, "readiness fails with it");
    h.assert_undisturbed("witness", SLACK).await;
    let recover = match repair {
        None => None,
        Some(repair) => {
            repair();
            // Backoff may delay the first probe after repair by up to max_backoff.
            let d = h
                .timed_wait(
                    "subject",
                    bound,
                    "healthy again",
                    status_is("healthy", None),
                )
                .await;
            let v = h.check("subject").await;
            assert_eq!(v["breaker"], "closed", "{v:#}");
            h.assert_probes(200, 200).await;
            Some(d)
        }
    };
    (detect, recover)
}

// (interval + timeout) × threshold, plus backoff and slack.
const BOUND: Duration = Duration::from_secs(8);
