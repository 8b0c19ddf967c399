//! `blocked_by`: a check that fails while a check it `depends_on` fails is blocked. Its
//! status stays what it is (the endpoints tell the truth about now); the flag says why, and
//! the notifier does not notify a blocked failure. Computed at every publish, for the checks
//! that have dependencies only.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::names::NameIndex;
use super::snapshot::CheckView;
use super::state::CheckState;
use crate::model::Status;

/// For each check (by index), the checks that depend on it.
pub(crate) fn dependents(
    states: &[CheckState],
    index: &NameIndex,
    depends_on: &BTreeMap<String, Vec<String>>,
) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); states.len()];
    for (child, parents) in depends_on {
        let Some(c) = index.get(states, child) else {
            continue;
        };
        for p in parents {
            if let Some(p) = index.get(states, p) {
                out[p].push(c);
            }
        }
    }
    out
}

/// The checks whose `blocked_by` may have changed when `changed` did: those of them that
/// have dependencies, and their dependents.
pub(crate) fn affected(
    changed: &[usize],
    dependents: &[Vec<usize>],
    states: &[CheckState],
    depends_on: &BTreeMap<String, Vec<String>>,
) -> Vec<usize> {
    let mut out: Vec<usize> = changed
        .iter()
        .filter(|&&i| depends_on.contains_key(&states[i].meta.name))
        .copied()
        .chain(
            changed
                .iter()
                .flat_map(|&i| dependents.get(i).into_iter().flatten().copied()),
        )
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Set each of the `affected` checks' `blocked_by` to its failing parents (empty unless it
/// fails); returns those whose `blocked_by` changed.
pub(crate) fn update_blocked(
    states: &mut [CheckState],
    index: &NameIndex,
    depends_on: &BTreeMap<String, Vec<String>>,
    affected: Vec<usize>,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for i in affected {
        let view = &states[i].view;
        let Some(parents) = depends_on.get(&view.name) else {
            continue;
        };
        let blocked: Vec<String> = if failing(view.status) {
            parents
                .iter()
                .filter(|p| {
                    index
                        .get(states, p)
                        .is_some_and(|j| parent_failing(&states[j].view))
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if blocked != view.blocked_by {
            changed.push((i, blocked));
        }
    }
    changed
        .into_iter()
        .map(|(i, blocked)| {
            let view = Arc::make_mut(&mut states[i].view);
            if blocked.is_empty() {
                tracing::info!(check = %view.name, "Check no longer blocked: it is judged on its own again.");
            } else {
                tracing::info!(check = %view.name, blocked_by = %blocked.join(","), status = view.status.as_str(), "Check blocked: a check it depends on is failing; its failure is not notified.");
            }
            view.blocked_by = blocked;
            i
        })
        .collect()
}

/// After a reload: a check that no longer has dependencies is no longer blocked.
pub(crate) fn forget_removed(
    states: &mut [CheckState],
    depends_on: &BTreeMap<String, Vec<String>>,
) {
    for s in states.iter_mut() {
        if !s.view.blocked_by.is_empty() && !depends_on.contains_key(&s.view.name) {
            Arc::make_mut(&mut s.view).blocked_by.clear();
        }
    }
}

fn failing(status: Status) -> bool {
    matches!(status, Status::Unhealthy | Status::Degraded)
}

/// A parent is failing when its status is, or when its latest run failed (before its
/// `failure_threshold` is reached, a failed run is reason enough to doubt its children).
fn parent_failing(v: &CheckView) -> bool {
    failing(v.status) || (v.consecutive_failures > 0 && !v.stale)
}
