//! healthd: a health-check and system-metrics daemon.
//!
//! Data flows one way: config → checks (scheduler) → observations → per-check state →
//! snapshot → renderers (HTTP endpoints, Prometheus, OTLP, systemd). See `DESIGN.md`.
#![forbid(unsafe_code)]

pub mod check;
pub mod config;
pub mod daemon;
pub mod health;
pub mod model;
pub mod redact;
pub mod resilience;
pub mod scheduler;
pub mod server;
pub mod systemd;
pub mod telemetry;
