//! Verdicts: the [`Status`] of a check or a group, the [`Group`]s Kubernetes asks about, and
//! a group's roll-up ([`GroupSummary`]).

use serde::{Deserialize, Serialize};

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

    /// The short word a probe endpoint answers with (`ok` for healthy).
    pub fn word(self) -> &'static str {
        match self {
            Status::Healthy => "ok",
            other => other.as_str(),
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

/// The three probe groups Kubernetes asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Liveness,
    Readiness,
    Startup,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Liveness, Group::Readiness, Group::Startup];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Liveness => "liveness",
            Group::Readiness => "readiness",
            Group::Startup => "startup",
        }
    }

    /// The endpoint path that serves this group (`/livez`, …).
    pub fn path(self) -> &'static str {
        match self {
            Group::Liveness => "livez",
            Group::Readiness => "readyz",
            Group::Startup => "startupz",
        }
    }

    /// The group a name stands for: its own name (`readiness`) or its endpoint's (`readyz`).
    pub fn named(name: &str) -> Option<Group> {
        Group::ALL
            .into_iter()
            .find(|g| name == g.as_str() || name == g.path())
    }
}

/// The roll-up of one group: the worst status of its members, and how many are in each.
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
    pub fn of(members: impl Iterator<Item = Status>) -> GroupSummary {
        let mut g = GroupSummary {
            status: Status::Healthy,
            checks: 0,
            healthy: 0,
            degraded: 0,
            unhealthy: 0,
            unknown: 0,
        };
        for status in members {
            g.checks += 1;
            g.status = g.status.worst(status);
            match status {
                Status::Healthy => g.healthy += 1,
                Status::Degraded => g.degraded += 1,
                Status::Unhealthy => g.unhealthy += 1,
                Status::Unknown => g.unknown += 1,
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Degraded as D, Healthy as H, Unhealthy as U, Unknown as K};

    #[test]
    fn group_is_worst_of_members() {
        let g = GroupSummary::of([H, D].into_iter());
        assert_eq!((g.status, g.healthy, g.degraded), (D, 1, 1));
        assert_eq!(GroupSummary::of([H, D, K].into_iter()).status, K);
        assert_eq!(GroupSummary::of([U, D, K].into_iter()).status, U);
        assert_eq!(GroupSummary::of(std::iter::empty()).status, H);
    }
}
