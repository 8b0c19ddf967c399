//! `kind = "pressure"`: pressure stall information (PSI) of CPU, memory or I/O against
//! thresholds — the share of time tasks waited for the resource, Linux's most direct
//! saturation signal. Inside a container, the container's own (cgroup) pressure.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Kind, Run};
use crate::host::sampler;
use crate::model::host::{PressureReading, PsiWindow};
use crate::model::{Outcome, Reason, Thresholds, round1};

/// The resource whose pressure is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Memory,
    Io,
}

/// `some`: at least one task stalled; `full`: all non-idle tasks stalled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stall {
    Some,
    Full,
}

/// Whose pressure: the container's when healthd runs in one, else the host's (`auto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Auto,
    Host,
    Cgroup,
}

/// The averaging window, as the kernel names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Window {
    #[default]
    #[serde(rename = "avg10")]
    Avg10,
    #[serde(rename = "avg60")]
    Avg60,
    #[serde(rename = "avg300")]
    Avg300,
}

impl From<Window> for PsiWindow {
    fn from(w: Window) -> PsiWindow {
        match w {
            Window::Avg10 => PsiWindow::Avg10,
            Window::Avg60 => PsiWindow::Avg60,
            Window::Avg300 => PsiWindow::Avg300,
        }
    }
}

/// Settings of a pressure check. Defaults by resource: cpu `some` 60 / 90, memory `full`
/// 5 / 10, io `full` 20 / 50 (degraded above / unhealthy above, percent of `avg10`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PressureConfig {
    /// `cpu`, `memory` or `io`.
    pub resource: Resource,
    /// `some` or `full`. Default: `some` for cpu, `full` for memory and io.
    pub stall: Option<Stall>,
    /// `avg10`, `avg60` or `avg300`. Default `avg10`.
    #[serde(default)]
    pub window: Window,
    /// `auto`, `host` or `cgroup`. Default `auto`.
    #[serde(default)]
    pub source: Source,
    /// Percent of the window stalled above which the check is degraded.
    pub degraded_above: Option<f64>,
    /// Percent of the window stalled above which the check fails.
    pub unhealthy_above: Option<f64>,
}

impl PressureConfig {
    fn stall(&self) -> Stall {
        self.stall.unwrap_or(match self.resource {
            Resource::Cpu => Stall::Some,
            Resource::Memory | Resource::Io => Stall::Full,
        })
    }

    fn thresholds(&self) -> Thresholds {
        let (d, u) = match self.resource {
            Resource::Cpu => (60.0, 90.0),
            Resource::Memory => (5.0, 10.0),
            Resource::Io => (20.0, 50.0),
        };
        Thresholds {
            degraded_above: self.degraded_above.unwrap_or(d),
            unhealthy_above: self.unhealthy_above.unwrap_or(u),
        }
    }
}

impl Kind for PressureConfig {
    type Probe = PressureProbe;

    fn build(&self, _timeout: Duration) -> Result<PressureProbe, String> {
        Ok(PressureProbe {
            config: self.clone(),
            last_run: None,
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        self.thresholds().validate(problems);
    }
}

pub struct PressureProbe {
    config: PressureConfig,
    last_run: Option<Instant>,
}

fn names(r: Resource, s: Stall) -> (&'static str, &'static str) {
    let resource = match r {
        Resource::Cpu => "cpu",
        Resource::Memory => "memory",
        Resource::Io => "io",
    };
    let stall = match s {
        Stall::Some => "some",
        Stall::Full => "full",
    };
    (resource, stall)
}

impl Run for PressureProbe {
    async fn run(&mut self) -> Outcome {
        let c = &self.config;
        let host = sampler();
        let cgroup = match c.source {
            Source::Host => None,
            Source::Auto | Source::Cgroup => host.cgroup(self.last_run),
        };
        let (reading, source): (Option<PressureReading>, &str) = match (c.source, cgroup) {
            (Source::Cgroup, None) => {
                return Outcome::failed(
                    Reason::Config,
                    "source = \"cgroup\", but healthd does not run in a cgroup v2 container",
                );
            }
            (_, Some(cg)) => (cg.pressure.clone(), "cgroup"),
            (_, None) => (host.pressure(self.last_run).map(|p| (*p).clone()), "host"),
        };
        self.last_run = Some(Instant::now());
        let (resource, stall) = names(c.resource, c.stall());
        let psi = reading.as_ref().and_then(|r| match c.resource {
            Resource::Cpu => r.cpu,
            Resource::Memory => r.memory,
            Resource::Io => r.io,
        });
        let line = match (psi, c.stall()) {
            (Some(p), Stall::Some) => Some(p.some),
            (Some(p), Stall::Full) => p.full,
            (None, _) => None,
        };
        let Some(line) = line else {
            return Outcome::failed(
                Reason::Config,
                format!(
                    "no {resource} pressure ({stall}) to read: the kernel needs PSI (Linux 4.20+, CONFIG_PSI, not booted with psi=0)"
                ),
            );
        };
        let window = PsiWindow::from(c.window);
        let percent = line.average(window) * 100.0;
        self.config
            .thresholds()
            .outcome_as(
                &format!("{resource} pressure ({stall} {})", window.as_str()),
                percent,
                "stalled",
            )
            .with_detail("percent_stalled", round1(percent))
            .with_detail("resource", resource)
            .with_detail("stall", stall)
            .with_detail("window", window.as_str())
            .with_detail("source", source)
            .with_detail("avg10", round1(line.avg10 * 100.0))
            .with_detail("avg60", round1(line.avg60 * 100.0))
            .with_detail("avg300", round1(line.avg300 * 100.0))
            .with_detail("total_seconds", line.total)
    }
}
