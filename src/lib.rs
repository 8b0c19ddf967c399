//! healthd: a health-check and system-metrics daemon.
//!
//! Data flows one way: config → checks (scheduler) → observations → per-check state →
//! snapshot → renderers (HTTP endpoints, Prometheus, OTLP, systemd). The words every layer
//! shares live in [`model`], which uses nothing of the crate; each module uses only the
//! ones below it in the flow (README, "Architecture"; `tests/it/architecture.rs` checks it).
#![forbid(unsafe_code)]

pub mod allocator;
pub mod check;
pub mod config;
pub mod daemon;
pub mod descriptors;
pub mod health;
pub mod history;
pub mod host;
pub mod lint;
pub mod logging;
pub mod model;
pub mod notify;
pub mod passing;
pub mod redact;
pub mod resilience;
pub mod scheduler;
pub mod server;
pub mod systemd;
pub mod telemetry;
