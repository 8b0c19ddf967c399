//! The verdict of a group (or of one check in it) as every renderer gives it: the HTTP probe
//! endpoints, the gRPC health service and the systemd `STATUS=` line read it from here, so
//! they cannot disagree. Judged at request time from the latest snapshot, never by probing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::snapshot::{CheckView, HEARTBEAT, SharedSnapshot, Snapshot};
use crate::config::{Config, GroupOptions};
use crate::model::{Group, Status};

/// How verdicts are judged; swapped on reload.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The snapshot is stale (liveness fails) when older than this.
    pub stall_after: Duration,
    pub groups: BTreeMap<Group, GroupOptions>,
}

impl Policy {
    pub fn of(config: &Config) -> Policy {
        Policy {
            stall_after: config.server.stall_after,
            groups: Group::ALL
                .iter()
                .map(|g| (*g, config.group_options(*g)))
                .collect(),
        }
    }
}

/// What a verdict is given from: the snapshot, the drain flag and the policy. Cheap to
/// clone; every renderer holds one.
#[derive(Clone)]
pub struct Verdicts {
    pub snapshot: SharedSnapshot,
    /// Set on SIGTERM ([`Verdicts::start_draining`]): readiness fails from then on.
    draining: Arc<AtomicBool>,
    pub policy: Arc<ArcSwap<Policy>>,
}

impl Verdicts {
    pub fn new(snapshot: SharedSnapshot, policy: Policy) -> Verdicts {
        Verdicts {
            snapshot,
            draining: Arc::new(AtomicBool::new(false)),
            policy: Arc::new(ArcSwap::from_pointee(policy)),
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Readiness fails from now on; whoever follows the verdicts is woken to see it.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.snapshot.load().pulse.nudge();
    }

    /// A reload's policy; whoever follows the verdicts is woken to see it.
    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
        self.snapshot.load().pulse.nudge();
    }

    /// The whole group's verdict now, as `(passes, word)`. Borrows the snapshot (no
    /// reference count taken): the probe endpoints call it for every request.
    pub fn group(&self, group: Group) -> (bool, &'static str) {
        self.group_in(&self.snapshot.load(), group)
    }

    /// [`Verdicts::group`] judged on `snap`, for a response that shows several verdicts
    /// and the checks beside them from one snapshot.
    pub fn group_in(&self, snap: &Snapshot, group: Group) -> (bool, &'static str) {
        let policy = self.policy.load();
        let v = verdict(snap, group, None, &[], &policy, self.draining(), false);
        (v.pass, v.word)
    }

    /// The snapshot loop has had work waiting, and made no progress, for longer than
    /// `stall_after`.
    pub fn stalled(&self) -> bool {
        self.snapshot.load().stuck_for() > self.policy.load().stall_after
    }
}

/// The verdict of a group (or one check) at request time.
pub struct Verdict<'a> {
    pub status: Status,
    pub pass: bool,
    /// Short word for the plain body.
    pub word: &'static str,
    /// The members judged, each with whether it was excluded (empty when the group's
    /// summary sufficed).
    pub members: Vec<(Arc<CheckView>, bool)>,
    pub snapshot: &'a Snapshot,
}

/// Judge `group` (or only the check `only` in it), leaving out `exclude`; `with_members`
/// asks for the members even when the group's precomputed summary would do.
pub fn verdict<'a>(
    snap: &'a Snapshot,
    group: Group,
    only: Option<&Arc<CheckView>>,
    exclude: &[String],
    policy: &Policy,
    draining: bool,
    with_members: bool,
) -> Verdict<'a> {
    let fail_on_degraded = policy
        .groups
        .get(&group)
        .map(|g| g.fail_on_degraded)
        .unwrap_or(false);
    let stuck = snap.stuck_for();
    let stale = stuck > policy.stall_after;
    // The plain answer for a whole group needs only its status, which the snapshot already
    // holds: that spares touching every member's reference count on each request.
    let summary = if only.is_none() && exclude.is_empty() && !stale && !with_members {
        snap.groups.get(&group)
    } else {
        None
    };
    let mut members: Vec<(Arc<CheckView>, bool)> = match (only, summary) {
        (_, Some(_)) => Vec::new(),
        (Some(c), None) => vec![(c.clone(), false)],
        (None, None) => snap
            .members(group)
            .map(|c| (c.clone(), exclude.iter().any(|e| e == &c.name)))
            .collect(),
    };
    // A stalled snapshot loop must not keep reporting the heartbeat as alive.
    if stale {
        for (c, _) in members
            .iter_mut()
            .filter(|(c, _)| c.builtin && c.name == HEARTBEAT)
        {
            let mut v = CheckView::clone(c);
            v.status = Status::Unhealthy;
            v.message = format!(
                "snapshot loop stalled: work waiting, no progress for {:.1}s",
                stuck.as_secs_f64()
            );
            *c = Arc::new(v);
        }
    }
    let status = match summary {
        Some(g) => g.status,
        None => members
            .iter()
            .filter(|(_, excluded)| !excluded)
            .filter_map(|(c, _)| c.counted())
            .fold(Status::Healthy, |s, c| s.worst(c)),
    };
    // One check added by a reload and not run yet: its verdict is not flipped by the reload
    // (as its groups' are not), but neither is it called ok.
    let waiting = !draining && only.is_some_and(|c| c.pending);
    let (status, word) = match group {
        Group::Readiness if draining => (Status::Unhealthy, "shutting down"),
        _ if waiting => (Status::Unknown, "pending"),
        Group::Readiness if !snap.started && only.is_none() => (Status::Unknown, "starting"),
        Group::Startup if only.is_none() => {
            if snap.started {
                (Status::Healthy, "ok")
            } else {
                (Status::Unknown, "starting")
            }
        }
        _ => (status, status.word()),
    };
    Verdict {
        status,
        pass: waiting || status.passes(fail_on_degraded),
        word,
        members,
        snapshot: snap,
    }
}
