//! A notice: what one receiver is to be told about one check, and how two notices about the
//! same check that are both still waiting become one (or none).

use std::time::SystemTime;

use crate::model::{Group, Reason, Status};

/// Why a notice exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The check's thresholded status changed (or was first seen failing).
    Change,
    /// The check started flapping: one notice for the episode.
    Flapping,
    /// Still failing after `repeat_interval`.
    Reminder,
    /// Alertmanager keep-alive of a firing alert: not a notification, not counted.
    Resend,
}

/// What one receiver is told about one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub check: String,
    pub kind: &'static str,
    pub groups: Vec<Group>,
    pub critical: bool,
    /// The status the receiver was last told about (or first saw).
    pub from: Status,
    pub to: Status,
    /// Whether the receiver knew the check as failing before this notice.
    pub was_firing: bool,
    /// Whether the check is failing for the receiver after it (`false`: resolved).
    pub firing: bool,
    pub cause: Cause,
    pub flapping: bool,
    pub reason: Option<Reason>,
    pub message: String,
    /// Firing: when the failure began; resolved: when the check recovered.
    pub since: SystemTime,
    /// When healthd decided to send it.
    pub at: SystemTime,
}

impl Notice {
    /// The event word of the webhook payload and of log lines.
    pub fn event(&self) -> &'static str {
        match (self.firing, self.cause) {
            (false, _) => "resolved",
            (true, Cause::Flapping) => "flapping",
            (true, Cause::Reminder) => "reminder",
            (true, Cause::Change | Cause::Resend) => "firing",
        }
    }

    /// Counted in `healthd_notifications_total` and logged (a resend is neither).
    pub fn counts(&self) -> bool {
        self.cause != Cause::Resend
    }
}

/// What became of a waiting notice when a newer one about the same check arrived.
#[derive(Debug, PartialEq)]
pub struct Merged {
    /// What is still to be sent (`None`: nothing, the receiver already knows the truth).
    pub notice: Option<Notice>,
    /// Notifications that will not be sent because of the merge.
    pub collapsed: u64,
}

/// Merge a waiting notice with a newer one about the same check: the receiver is told the
/// newest truth once, from what it knew before the older one. A failure that recovered
/// before it was delivered is not delivered at all.
pub fn merge(waiting: Notice, newer: Notice) -> Merged {
    let counted = |n: &Notice| u64::from(n.counts());
    // A keep-alive or a reminder adds nothing to a notice that is waiting anyway.
    if matches!(newer.cause, Cause::Resend | Cause::Reminder) {
        return Merged {
            collapsed: counted(&newer),
            notice: Some(waiting),
        };
    }
    if matches!(waiting.cause, Cause::Resend | Cause::Reminder) {
        return Merged {
            collapsed: counted(&waiting),
            notice: Some(newer),
        };
    }
    let flapping = waiting.cause == Cause::Flapping || newer.cause == Cause::Flapping;
    let merged = Notice {
        from: waiting.from,
        was_firing: waiting.was_firing,
        cause: if flapping && newer.firing {
            Cause::Flapping
        } else {
            Cause::Change
        },
        since: if waiting.firing && newer.firing {
            waiting.since
        } else {
            newer.since
        },
        ..newer
    };
    let nothing_new = (!merged.was_firing && !merged.firing)
        || (merged.was_firing
            && merged.firing
            && merged.from == merged.to
            && merged.cause != Cause::Flapping);
    if nothing_new {
        Merged {
            notice: None,
            collapsed: 2,
        }
    } else {
        Merged {
            notice: Some(merged),
            collapsed: 1,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn notice(from: Status, to: Status, was: bool, now: bool, cause: Cause) -> Notice {
        Notice {
            check: "db".into(),
            kind: "tcp",
            groups: vec![Group::Readiness],
            critical: true,
            from,
            to,
            was_firing: was,
            firing: now,
            cause,
            flapping: false,
            reason: None,
            message: String::new(),
            since: SystemTime::UNIX_EPOCH,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    use Cause::*;
    use Status::{Degraded as D, Healthy as H, Unhealthy as U};

    #[test]
    fn a_failure_that_recovered_before_delivery_is_not_delivered() {
        let m = merge(
            notice(H, U, false, true, Change),
            notice(U, H, true, false, Change),
        );
        assert_eq!(
            m,
            Merged {
                notice: None,
                collapsed: 2
            }
        );
    }

    #[test]
    fn steps_merge_into_one_change_from_what_the_receiver_knew() {
        let m = merge(
            notice(H, D, false, true, Change),
            notice(D, U, true, true, Change),
        );
        let n = m.notice.unwrap();
        assert_eq!(
            (n.from, n.to, n.was_firing, n.firing, m.collapsed),
            (H, U, false, true, 1)
        );
        // Resolved, then failing again the same way before delivery: nothing new.
        let m = merge(
            notice(U, H, true, false, Change),
            notice(H, U, false, true, Change),
        );
        assert_eq!(m.notice, None);
        // Resolved from unhealthy, then degraded: still news.
        let m = merge(
            notice(U, H, true, false, Change),
            notice(H, D, false, true, Change),
        );
        assert_eq!(m.notice.map(|n| (n.from, n.to)), Some((U, D)));
    }

    #[test]
    fn resends_and_reminders_give_way() {
        let change = notice(H, U, false, true, Change);
        let m = merge(change.clone(), notice(U, U, true, true, Resend));
        assert_eq!((m.notice, m.collapsed), (Some(change.clone()), 0));
        let m = merge(
            notice(U, U, true, true, Reminder),
            notice(U, H, true, false, Change),
        );
        assert_eq!(m.collapsed, 1);
        assert_eq!(m.notice.map(|n| n.event()), Some("resolved"));
    }

    #[test]
    fn a_flapping_notice_survives_a_merge_while_failing() {
        let m = merge(
            notice(H, U, false, true, Flapping),
            notice(U, D, true, true, Change),
        );
        assert_eq!(m.notice.map(|n| n.event()), Some("flapping"));
    }
}
