//! healthd's integration tests, as one test binary: `cargo test --test it [FILTER]`, e.g.
//! `cargo test --test it postgres::` or `cargo test --test it faults -- --nocapture`.
//! Why one binary, and what the shared helpers are: see [`support`].

mod abuse;
mod architecture;
mod cli;
mod config;
mod database;
mod deb;
mod drain;
mod endpoints;
mod faults;
mod faults_deps;
mod fuzz;
mod harness;
mod http;
mod node_exporter;
mod otlp;
mod postgres;
mod readyz_summary;
mod redis;
mod reload;
mod resilience_config;
mod saturation;
mod scheduler_run_once;
mod secrets;
mod siege;
mod support;
mod system;

mod systemd_notify;
mod systemd_unit;
mod tcp;
