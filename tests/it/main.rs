//! healthd's integration tests, as one test binary: `cargo test --test it [FILTER]`, e.g.
//! `cargo test --test it postgres::` or `cargo test --test it faults -- --nocapture`.
//! Why one binary, and what the shared helpers are: see [`support`].

mod abuse;
mod abuse_config;
mod allocator;
mod architecture;
mod cli;
mod config;
mod database;
mod deb;
mod dns;
mod drain;
mod drop_ins;
mod endpoints;
mod exec;
mod faults;
mod faults_deps;
mod fuzz;
mod grpc;
mod grpc_server;
mod harness;
mod history;
mod http;
mod lint;
mod node_exporter;
mod notify;
mod open_files;
mod otlp;
mod postgres;
mod push;
mod readyz_summary;
mod redis;
mod release_binary;
mod reload;
mod resilience_config;
mod saturation;
mod scheduler_run_once;
mod secrets;
mod siege;
mod status_page;
mod support;
mod system;

mod systemd_boot;
mod systemd_notify;
mod systemd_unit;
mod tcp;
mod tls;
