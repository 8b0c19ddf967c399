//! What one receiver is to be told, decided from the snapshot: the thresholded status each
//! check shows (never single runs), against what the receiver was told before. Pure: the
//! caller gives it the views, the time and what is muted.
//!
//! - A check whose status enters the receiver's `min_status` set fires once; a change within
//!   it (degraded → unhealthy) is one more notice; leaving it is one `resolved` notice.
//! - `unknown` is no news: the receiver keeps what it was told.
//! - Flapping: one `flapping` notice for the episode, then quiet until it settles.
//! - Muted checks (blocked by a failing parent, in maintenance) are frozen: nothing is sent,
//!   and once unmuted the receiver is told the difference, if any.
//! - A check with `depends_on` that starts failing waits until each parent has run since
//!   (bounded by the parent's interval + timeout), so a child that notices an outage
//!   before its parent does is blocked, not notified; after a block ends, it waits for a
//!   failure of its own.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::notice::{Cause, Notice};
use crate::config::notify::ReceiverConfig;
use crate::health::CheckView;
use crate::model::Status;

/// What the receiver knows about one check.
#[derive(Debug, Clone)]
struct Track {
    /// Told failing with this status; `None`: told healthy (or nothing yet).
    announced: Option<Status>,
    /// The status the receiver last heard of (or that was first seen).
    told: Status,
    /// When the failure the receiver knows of began.
    firing_since: SystemTime,
    /// When the last notice about it was queued (for reminders).
    last_notice: Instant,
    /// The flapping notice of the current episode was sent.
    flap_noticed: bool,
    /// Seen blocked at the previous evaluation.
    was_blocked: bool,
    /// When the last block ended, until the check fails on its own.
    unblocked_at: Option<SystemTime>,
}

/// Per check: its interval, and how long after its next run is due a result may take (its
/// timeout and a second).
pub type Settle = HashMap<String, (Duration, Duration)>;

/// The context of one evaluation.
pub struct Context<'a> {
    pub now: SystemTime,
    pub mono: Instant,
    /// The views of every check, by name (for parents).
    pub views: &'a HashMap<&'a str, &'a CheckView>,
    /// Each check's `depends_on`.
    pub depends_on: &'a HashMap<String, Vec<String>>,
    pub settle: &'a Settle,
    /// Each check's status before its latest change (from the health loop's changes), for
    /// the `from` of a receiver that never saw it (its first look came after the change).
    pub previous: &'a HashMap<String, Status>,
}

/// One receiver's memory of what it was told.
#[derive(Debug, Default)]
pub struct Judge {
    tracks: HashMap<String, Track>,
}

impl Judge {
    /// The checks the receiver knows as failing (for Alertmanager's keep-alive resends).
    pub fn announced(&self) -> impl Iterator<Item = (&str, Status, SystemTime)> {
        self.tracks
            .iter()
            .filter_map(|(c, t)| t.announced.map(|s| (c.as_str(), s, t.firing_since)))
    }

    /// Forget checks that no longer exist or are no longer covered.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.tracks.retain(|c, _| keep(c));
    }

    /// The delivery dropped this check's failure before sending it (it had recovered): the
    /// receiver never heard of it.
    pub fn forget(&mut self, check: &str) {
        if let Some(t) = self.tracks.get_mut(check) {
            t.announced = None;
        }
    }

    /// Decide about one check; `muted` when it is in maintenance.
    pub fn judge(
        &mut self,
        rules: &ReceiverConfig,
        v: &CheckView,
        muted: bool,
        cx: &Context,
    ) -> Option<Notice> {
        let t = self.tracks.entry(v.name.clone()).or_insert_with(|| Track {
            announced: None,
            told: Status::Unknown,
            firing_since: cx.now,
            last_notice: cx.mono,
            flap_noticed: false,
            was_blocked: false,
            unblocked_at: None,
        });
        if !v.blocked_by.is_empty() {
            t.was_blocked = true;
            return None;
        }
        if t.was_blocked {
            t.was_blocked = false;
            t.unblocked_at = Some(cx.now);
        }
        if muted {
            return None;
        }
        let firing = rules.min_status.firing(v.status)?;
        if !v.flapping {
            t.flap_noticed = false;
        }
        let notice = |t: &Track, cause: Cause, firing: bool, since: SystemTime| Notice {
            check: v.name.clone(),
            kind: v.kind,
            groups: v.groups.clone(),
            critical: v.critical,
            from: match t.told {
                Status::Unknown => cx.previous.get(&v.name).copied().unwrap_or(Status::Unknown),
                told => told,
            },
            to: v.status,
            was_firing: t.announced.is_some(),
            firing,
            cause,
            flapping: v.flapping,
            reason: v.reason,
            message: v.message.clone(),
            since,
            at: cx.now,
        };
        if !firing {
            t.unblocked_at = None;
            let out = match t.announced {
                Some(_) if rules.send_resolved => {
                    Some(notice(t, Cause::Change, false, v.since.unwrap_or(cx.now)))
                }
                _ => None,
            };
            t.announced = None;
            t.told = v.status;
            return out;
        }
        if t.announced.is_none() && hold(v, t, cx) {
            return None;
        }
        t.unblocked_at = None;
        let flap_now = v.flapping && !t.flap_noticed;
        if flap_now || t.announced != Some(v.status) {
            if v.flapping && !flap_now {
                // Flapping and said so: the held status moves without more notices.
                return None;
            }
            if t.announced.is_none() {
                t.firing_since = v.since.unwrap_or(cx.now);
            }
            let cause = if flap_now {
                Cause::Flapping
            } else {
                Cause::Change
            };
            let n = notice(t, cause, true, t.firing_since);
            t.flap_noticed |= flap_now;
            t.announced = Some(v.status);
            t.told = v.status;
            t.last_notice = cx.mono;
            return Some(n);
        }
        match rules.repeat_interval {
            Some(every) if cx.mono.saturating_duration_since(t.last_notice) >= every => {
                t.last_notice = cx.mono;
                Some(notice(t, Cause::Reminder, true, t.firing_since))
            }
            _ => None,
        }
    }
}

/// Whether a newly failing check waits before it notifies (see the module doc).
fn hold(v: &CheckView, t: &Track, cx: &Context) -> bool {
    let since = v.since.unwrap_or(cx.now);
    let ran_since = |c: &CheckView, from: SystemTime| c.last_run.is_some_and(|r| r >= from);
    // Until the check's next run after `from` is overdue (its backoff included).
    let waiting = |c: &CheckView, from: SystemTime| {
        let (interval, grace) = cx.settle.get(&c.name).copied().unwrap_or_default();
        let due = c.next_run.filter(|n| *n > from).unwrap_or(from + interval);
        cx.now < due + grace
    };
    if let Some(parents) = cx.depends_on.get(&v.name) {
        for p in parents {
            if let Some(pv) = cx.views.get(p.as_str())
                && !ran_since(pv, since)
                && waiting(pv, since)
            {
                return true;
            }
        }
    }
    if let Some(u) = t.unblocked_at {
        let failed_since = v.last_failure.is_some_and(|f| f > u);
        if !failed_since && (v.consecutive_successes > 0 || (!ran_since(v, u) && waiting(v, u))) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::CheckMeta;
    use crate::model::Reason;
    use Status::{Degraded as D, Healthy as H, Unhealthy as U, Unknown as X};

    fn view(name: &str, status: Status, at: SystemTime) -> CheckView {
        let meta = CheckMeta::for_test(name);
        let mut v = CheckView::clone(&crate::health::state::CheckState::new(meta).view);
        v.status = status;
        v.since = Some(at);
        v.last_run = Some(at);
        v.reason = (status != H).then_some(Reason::Connect);
        v
    }

    fn rules(extra: &str) -> ReceiverConfig {
        toml::from_str(&format!(
            "name = \"r\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n{extra}"
        ))
        .unwrap()
    }

    struct World {
        judge: Judge,
        rules: ReceiverConfig,
        t0: SystemTime,
        m0: Instant,
        depends_on: HashMap<String, Vec<String>>,
        settle: Settle,
        previous: HashMap<String, Status>,
    }

    impl World {
        fn new(extra: &str) -> World {
            World {
                judge: Judge::default(),
                rules: rules(extra),
                t0: SystemTime::now(),
                m0: Instant::now(),
                depends_on: HashMap::new(),
                settle: HashMap::new(),
                previous: HashMap::new(),
            }
        }

        /// Judge `v` among `others` at `secs` after the start; the event word, if any.
        fn at(
            &mut self,
            secs: u64,
            v: &CheckView,
            others: &[&CheckView],
            muted: bool,
        ) -> Option<String> {
            let mut views: HashMap<&str, &CheckView> =
                others.iter().map(|o| (o.name.as_str(), *o)).collect();
            views.insert(v.name.as_str(), v);
            let cx = Context {
                now: self.t0 + Duration::from_secs(secs),
                mono: self.m0 + Duration::from_secs(secs),
                views: &views,
                depends_on: &self.depends_on,
                settle: &self.settle,
                previous: &self.previous,
            };
            self.judge
                .judge(&self.rules, v, muted, &cx)
                .map(|n| format!("{} {}->{}", n.event(), n.from.as_str(), n.to.as_str()))
        }
    }

    #[test]
    fn one_notice_per_thresholded_change_and_unknown_is_no_news() {
        let mut w = World::new("");
        let t = w.t0;
        assert_eq!(w.at(0, &view("a", X, t), &[], false), None);
        assert_eq!(w.at(1, &view("a", H, t), &[], false), None);
        assert_eq!(
            w.at(2, &view("a", U, t), &[], false).as_deref(),
            Some("firing healthy->unhealthy")
        );
        assert_eq!(w.at(3, &view("a", U, t), &[], false), None);
        assert_eq!(w.at(4, &view("a", X, t), &[], false), None);
        assert_eq!(
            w.at(5, &view("a", D, t), &[], false).as_deref(),
            Some("firing unhealthy->degraded")
        );
        assert_eq!(
            w.at(6, &view("a", H, t), &[], false).as_deref(),
            Some("resolved degraded->healthy")
        );
        let mut w = World::new("min_status = \"unhealthy\"\nsend_resolved = false");
        assert_eq!(w.at(0, &view("a", D, t), &[], false), None);
        assert_eq!(
            w.at(1, &view("a", U, t), &[], false).as_deref(),
            Some("firing degraded->unhealthy")
        );
        assert_eq!(w.at(2, &view("a", H, t), &[], false), None);
    }

    #[test]
    fn reminders_at_the_interval_and_one_flapping_notice() {
        let mut w = World::new("repeat_interval = \"5m\"");
        let t = w.t0;
        assert!(w.at(0, &view("a", U, t), &[], false).is_some());
        assert_eq!(w.at(299, &view("a", U, t), &[], false), None);
        assert_eq!(
            w.at(300, &view("a", U, t), &[], false).as_deref(),
            Some("reminder unhealthy->unhealthy")
        );
        assert_eq!(w.at(301, &view("a", U, t), &[], false), None);
        let mut flapping = view("a", U, t);
        flapping.flapping = true;
        assert_eq!(
            w.at(302, &flapping, &[], false).as_deref(),
            Some("flapping unhealthy->unhealthy")
        );
        let mut held = view("a", D, t);
        held.flapping = true;
        assert_eq!(w.at(303, &held, &[], false), None);
        assert_eq!(
            w.at(304, &view("a", H, t), &[], false).as_deref(),
            Some("resolved unhealthy->healthy")
        );
    }

    #[test]
    fn maintenance_freezes_and_the_difference_is_told_after() {
        let mut w = World::new("");
        let t = w.t0;
        assert_eq!(w.at(0, &view("a", H, t), &[], false), None);
        assert_eq!(w.at(1, &view("a", U, t), &[], true), None);
        assert_eq!(w.at(2, &view("a", H, t), &[], true), None);
        assert_eq!(w.at(3, &view("a", H, t), &[], false), None);
        assert_eq!(w.at(4, &view("a", U, t), &[], true), None);
        assert_eq!(
            w.at(5, &view("a", U, t), &[], false).as_deref(),
            Some("firing healthy->unhealthy")
        );
    }

    #[test]
    fn a_child_waits_for_its_parent_and_is_quiet_while_blocked() {
        let mut w = World::new("");
        w.depends_on.insert("db".into(), vec!["gw".into()]);
        w.settle.insert(
            "gw".into(),
            (Duration::from_secs(9), Duration::from_secs(1)),
        );
        w.settle.insert(
            "db".into(),
            (Duration::from_secs(9), Duration::from_secs(1)),
        );
        let t = w.t0;
        let gw_ok = view("gw", H, t);
        // The child fails at t+1; the parent last ran at t: wait for it.
        let db = view("db", U, t + Duration::from_secs(1));
        assert_eq!(w.at(1, &db, &[&gw_ok], false), None);
        // The parent runs and fails: the health loop marks the child blocked.
        let gw_down = view("gw", U, t + Duration::from_secs(2));
        let mut blocked = db.clone();
        blocked.blocked_by = vec!["gw".into()];
        assert_eq!(w.at(2, &blocked, &[&gw_down], false), None);
        // The parent recovers; the child has not failed on its own since: wait.
        let gw_up = view("gw", H, t + Duration::from_secs(3));
        assert_eq!(w.at(3, &db, &[&gw_up], false), None);
        let mut again = db.clone();
        again.last_failure = Some(t + Duration::from_secs(5));
        assert_eq!(
            w.at(5, &again, &[&gw_up], false).as_deref(),
            Some("firing unknown->unhealthy")
        );
        // A parent that never reports does not hold the child for ever.
        let mut w2 = World::new("");
        w2.depends_on.insert("db".into(), vec!["gw".into()]);
        w2.settle.insert(
            "gw".into(),
            (Duration::from_secs(9), Duration::from_secs(1)),
        );
        assert_eq!(w2.at(1, &db, &[&gw_ok], false), None);
        assert!(w2.at(11, &db, &[&gw_ok], false).is_some());
    }
}
