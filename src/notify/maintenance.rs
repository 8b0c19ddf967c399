//! Maintenance at run time: the configured `[[maintenance]]` windows plus the one started by
//! `healthd maintenance start` (it survives reloads, not restarts). Which checks are in
//! maintenance now, and one log line when a window opens or closes.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::maintenance::MaintenanceWindow;

/// The name of the window `healthd maintenance start` opens.
pub const ADHOC: &str = "healthd maintenance start";

/// A window started from the command line.
#[derive(Debug, Clone)]
struct AdHoc {
    until: SystemTime,
    /// Empty: every check.
    checks: Vec<String>,
}

/// One open window, as `healthd maintenance status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Open {
    pub name: String,
    /// Empty: every check.
    pub checks: Vec<String>,
    pub until: String,
}

#[derive(Debug, Default)]
pub struct Maintenance {
    windows: Vec<MaintenanceWindow>,
    adhoc: Option<AdHoc>,
    /// Names of the windows open at the last [`Maintenance::log_changes`].
    open: BTreeSet<String>,
}

impl Maintenance {
    pub fn set_windows(&mut self, windows: Vec<MaintenanceWindow>) {
        self.windows = windows;
    }

    /// Start (or replace) the command line's window.
    pub fn start(&mut self, length: Duration, checks: Vec<String>, now: SystemTime) -> Open {
        let until = now + length;
        self.adhoc = Some(AdHoc {
            until,
            checks: checks.clone(),
        });
        Open {
            name: ADHOC.into(),
            checks,
            until: super::deliver::rfc3339(until),
        }
    }

    /// End the command line's window; whether there was one.
    pub fn stop(&mut self) -> bool {
        self.adhoc.take().is_some()
    }

    /// No window is configured, started or open: nothing here changes with time.
    pub fn is_idle(&self) -> bool {
        self.windows.is_empty() && self.adhoc.is_none() && self.open.is_empty()
    }

    /// The windows open now.
    pub fn open(&self, now: SystemTime) -> Vec<Open> {
        let mut out = Vec::new();
        if let Some(a) = &self.adhoc
            && now < a.until
        {
            out.push(Open {
                name: ADHOC.into(),
                checks: a.checks.clone(),
                until: super::deliver::rfc3339(a.until),
            });
        }
        if let Ok(t) = Timestamp::try_from(now) {
            for w in &self.windows {
                if let Some((_, end)) = w.open_at(t) {
                    out.push(Open {
                        name: w.name.clone(),
                        checks: w.checks.clone(),
                        until: end.to_string(),
                    });
                }
            }
        }
        out
    }

    /// Whether a check is in maintenance, given the windows open now.
    pub fn covers(open: &[Open], check: &str) -> bool {
        open.iter()
            .any(|o| o.checks.is_empty() || o.checks.iter().any(|c| c == check))
    }

    /// Log windows that opened or closed since the last call.
    pub fn log_changes(&mut self, open: &[Open]) {
        let now: BTreeSet<String> = open.iter().map(|o| o.name.clone()).collect();
        for o in open.iter().filter(|o| !self.open.contains(&o.name)) {
            let checks = if o.checks.is_empty() {
                "all".to_string()
            } else {
                o.checks.join(",")
            };
            tracing::info!(window = %o.name, checks = %checks, until = %o.until, "Maintenance started: checks run and show, nothing notifies.");
        }
        for name in self.open.difference(&now) {
            tracing::info!(window = %name, "Maintenance ended: notifications resume.");
        }
        self.open = now;
        if self
            .adhoc
            .as_ref()
            .is_some_and(|a| !open.iter().any(|o| o.name == ADHOC) && a.until <= SystemTime::now())
        {
            self.adhoc = None;
        }
    }
}
