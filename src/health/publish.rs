//! The published side of the health loop: what the last snapshot holds, kept so that the
//! next one costs O(changed checks). A batch marks the checks it touched; publishing
//! replaces their views in the chunks that hold them (see [`Checks`]), moves their
//! contribution in the group tallies and the startup counters, and keeps each check's next
//! staleness deadline in one ordered set, so nothing scans every check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checks::{CHUNK, Checks};
use super::snapshot::CheckView;
use super::state::CheckState;
use crate::model::{Group, GroupSummary, Reason, Status};

/// Per group, how many counted members have each status (in [`Status::ALL`] order).
type Tally = [[usize; 4]; 3];

/// What one probe check contributes to the groups and the startup latch, as published.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Counted {
    status: Option<Status>,
    /// Bit `g` set: a member of `Group::ALL[g]`.
    groups: u8,
    unreported: bool,
    startup_unpassed: bool,
}

impl Counted {
    fn of(state: &CheckState, shown: &CheckView) -> Counted {
        let groups = Group::ALL
            .iter()
            .enumerate()
            .filter(|(_, g)| shown.groups.contains(g))
            .fold(0u8, |bits, (i, _)| bits | 1 << i);
        Counted {
            status: shown.counted(),
            groups,
            unreported: !state.view.reported,
            startup_unpassed: state.meta.groups.contains(&Group::Startup)
                && !state.view.passed_once,
        }
    }

    fn add(&self, tally: &mut Tally, sign: isize) {
        let Some(status) = self.status else {
            return;
        };
        let s = status_index(status);
        for (g, row) in tally.iter_mut().enumerate() {
            if self.groups & (1 << g) != 0 {
                row[s] = row[s].wrapping_add_signed(sign);
            }
        }
    }
}

fn status_index(s: Status) -> usize {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// The published state and what changed since.
#[derive(Default)]
pub(crate) struct Board {
    checks: Checks,
    counted: Vec<Counted>,
    tally: Tally,
    builtin_tally: Tally,
    unreported: usize,
    startup_unpassed: usize,
    /// Rebuild everything at the next publish (after a reconfiguration).
    full: bool,
    dirty: Vec<usize>,
    marked: Vec<bool>,
    /// Each check's next staleness deadline, ordered, and the key it is filed under.
    deadlines: BTreeSet<(Instant, usize)>,
    keys: Vec<Option<Instant>>,
    /// Probe check views republished by the last publish (for tests and profiling).
    pub(crate) rebuilt: usize,
    /// Chunks copied by the last publish.
    pub(crate) chunks_rebuilt: usize,
}

impl Board {
    /// The checks were replaced: the next publish rebuilds everything.
    pub(crate) fn reset(&mut self, n: usize) {
        *self = Board {
            full: true,
            checks: std::mem::take(&mut self.checks),
            builtin_tally: self.builtin_tally,
            counted: vec![Counted::default(); n],
            marked: vec![false; n],
            keys: vec![None; n],
            dirty: (0..n).collect(),
            ..Board::default()
        };
    }

    /// Check `i` changed: republish it.
    pub(crate) fn mark(&mut self, i: usize) {
        if let Some(m) = self.marked.get_mut(i)
            && !*m
        {
            *m = true;
            self.dirty.push(i);
        }
    }

    /// The checks marked since the last publish.
    pub(crate) fn dirty(&self) -> &[usize] {
        &self.dirty
    }

    /// When the earliest staleness deadline passes (just after it: `expire` wants it past).
    pub(crate) fn due(&self) -> Option<Instant> {
        self.deadlines
            .first()
            .map(|(t, _)| *t + Duration::from_millis(1))
    }

    /// The checks whose deadline has passed, taken out of the deadline set.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(&(t, i)) = self.deadlines.first()
            && t < now
        {
            self.deadlines.pop_first();
            self.keys[i] = None;
            due.push(i);
        }
        due
    }

    fn file_deadline(&mut self, i: usize, at: Option<Instant>) {
        if self.keys[i] == at {
            return;
        }
        if let Some(old) = self.keys[i].take() {
            self.deadlines.remove(&(old, i));
        }
        if let Some(t) = at {
            self.deadlines.insert((t, i));
        }
        self.keys[i] = at;
    }

    /// Publish the marked checks: their views, deadlines, tallies and the startup counters.
    pub(crate) fn commit(&mut self, states: &[CheckState], paging: &BTreeSet<String>) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut shown: BTreeMap<usize, Arc<CheckView>> = BTreeMap::new();
        for &i in &dirty {
            self.marked[i] = false;
            let Some(state) = states.get(i) else {
                continue;
            };
            self.file_deadline(i, state.deadline());
            let view = slo_degraded(&state.view, paging);
            let now = Counted::of(state, &view);
            let was = std::mem::replace(&mut self.counted[i], now);
            if was != now {
                was.add(&mut self.tally, -1);
                now.add(&mut self.tally, 1);
                self.unreported =
                    self.unreported + usize::from(now.unreported) - usize::from(was.unreported);
                self.startup_unpassed = self.startup_unpassed + usize::from(now.startup_unpassed)
                    - usize::from(was.startup_unpassed);
            }
            shown.insert(i, view);
        }
        self.rebuilt = shown.len();
        let mut chunks_rebuilt = 0;
        if self.full {
            self.checks.chunks = states
                .chunks(CHUNK)
                .enumerate()
                .map(|(c, part)| {
                    (0..part.len())
                        .map(|k| shown[&(c * CHUNK + k)].clone())
                        .collect()
                })
                .collect();
            chunks_rebuilt = self.checks.chunks.len();
            self.full = false;
        } else {
            let mut touched = shown.into_iter().peekable();
            while let Some((first, _)) = touched.peek() {
                let c = first / CHUNK;
                let mut chunk = self.checks.chunks[c].to_vec();
                while let Some((i, view)) = touched.next_if(|(i, _)| i / CHUNK == c) {
                    chunk[i % CHUNK] = view;
                }
                self.checks.chunks[c] = chunk.into();
                chunks_rebuilt += 1;
            }
        }
        self.checks.probes = states.len();
        self.chunks_rebuilt = chunks_rebuilt;
    }

    /// Replace the self-checks (few: copied whole when one changes).
    pub(crate) fn set_builtins(&mut self, builtins: Vec<Arc<CheckView>>) {
        let mut tally = Tally::default();
        for b in &builtins {
            let c = Counted {
                status: b.counted(),
                groups: Group::ALL
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| b.groups.contains(g))
                    .fold(0u8, |bits, (i, _)| bits | 1 << i),
                ..Counted::default()
            };
            c.add(&mut tally, 1);
        }
        self.builtin_tally = tally;
        self.checks.builtins = builtins.into();
    }

    /// The published checks (cheap: one pointer per chunk).
    pub(crate) fn checks(&self) -> Checks {
        self.checks.clone()
    }

    /// Every check has reported and every startup check has passed once.
    pub(crate) fn all_reported_and_started(&self) -> bool {
        self.unreported == 0 && self.startup_unpassed == 0
    }

    /// Each group's summary, from the tallies (O(groups), whatever the number of checks).
    pub(crate) fn groups(&self) -> BTreeMap<Group, GroupSummary> {
        Group::ALL
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let n: [usize; 4] =
                    std::array::from_fn(|s| self.tally[g][s] + self.builtin_tally[g][s]);
                let status = Status::ALL
                    .iter()
                    .zip(n)
                    .filter(|(_, k)| *k > 0)
                    .fold(Status::Healthy, |w, (s, _)| w.worst(*s));
                let at = |s: Status| n[status_index(s)];
                let summary = GroupSummary {
                    status,
                    checks: n.iter().sum(),
                    healthy: at(Status::Healthy),
                    degraded: at(Status::Degraded),
                    unhealthy: at(Status::Unhealthy),
                    unknown: at(Status::Unknown),
                };
                (*group, summary)
            })
            .collect()
    }
}

/// A healthy check whose SLO page alert fires, with `degrade_on = "page"`: shown (and
/// counted in its groups) as degraded, reason `slo`. Its own state is untouched: the
/// overlay goes when the alert stops.
pub(crate) fn slo_degraded(view: &Arc<CheckView>, paging: &BTreeSet<String>) -> Arc<CheckView> {
    if view.status != Status::Healthy || !paging.contains(&view.name) {
        return view.clone();
    }
    Arc::new(CheckView {
        status: Status::Degraded,
        reason: Some(Reason::Slo),
        message: format!(
            "SLO page alert: error budget burning fast; {}",
            view.message
        ),
        ..CheckView::clone(view)
    })
}
