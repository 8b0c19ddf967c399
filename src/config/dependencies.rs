//! `depends_on`: checks that must be working for a check's failure to mean anything (a
//! database behind a gateway). Validated over the whole config: every name must be a check,
//! and the graph must have no cycle.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use super::CheckConfig;

/// Problems as (check name, key under the check, reason), in config order.
pub fn validate(checks: &[Arc<CheckConfig>]) -> Vec<(String, String, String)> {
    let index: HashMap<&str, usize> = checks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut problems = Vec::new();
    for c in checks {
        for (j, parent) in c.depends_on.iter().enumerate() {
            let key = format!("depends_on[{j}]");
            if parent == &c.name {
                problems.push((
                    c.name.clone(),
                    key,
                    "a check cannot depend on itself".into(),
                ));
            } else if !index.contains_key(parent.as_str()) {
                problems.push((c.name.clone(), key, format!("unknown check \"{parent}\"")));
            } else if c.depends_on[..j].contains(parent) {
                problems.push((c.name.clone(), key, format!("\"{parent}\" is listed twice")));
            }
        }
    }
    // Each cycle once, reported at the check of the cycle that comes first in the config.
    let mut state = vec![Visit::New; checks.len()];
    let mut cycles: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for start in 0..checks.len() {
        let mut path = Vec::new();
        find_cycles(start, checks, &index, &mut state, &mut path, &mut cycles);
    }
    for (first, cycle) in cycles {
        problems.push((
            checks[first].name.clone(),
            "depends_on".into(),
            format!("dependency cycle: {}", cycle.join(" -> ")),
        ));
    }
    problems
}

#[derive(Clone, Copy, PartialEq)]
enum Visit {
    New,
    OnPath,
    Done,
}

/// Depth-first search; a back edge to a check on the current path closes a cycle.
fn find_cycles(
    at: usize,
    checks: &[Arc<CheckConfig>],
    index: &HashMap<&str, usize>,
    state: &mut [Visit],
    path: &mut Vec<usize>,
    cycles: &mut BTreeMap<usize, Vec<String>>,
) {
    if state[at] != Visit::New {
        return;
    }
    state[at] = Visit::OnPath;
    path.push(at);
    for parent in &checks[at].depends_on {
        let Some(&next) = index.get(parent.as_str()) else {
            continue;
        };
        if next == at {
            continue; // reported as a self-dependency
        }
        match state[next] {
            Visit::New => find_cycles(next, checks, index, state, path, cycles),
            Visit::OnPath => {
                let from = path.iter().position(|&p| p == next).unwrap_or(0);
                let members = &path[from..];
                let first = members.iter().copied().min().unwrap_or(next);
                // Written from the first check in config order, back to it.
                let pos = members.iter().position(|&m| m == first).unwrap_or(0);
                let mut names: Vec<String> = members[pos..]
                    .iter()
                    .chain(&members[..pos])
                    .map(|&m| checks[m].name.clone())
                    .collect();
                names.push(checks[first].name.clone());
                cycles.entry(first).or_insert(names);
            }
            Visit::Done => {}
        }
    }
    path.pop();
    state[at] = Visit::Done;
}
