//! The shared vocabulary: the words every layer of healthd uses and that use nothing of the
//! crate (this module imports no `crate::` path). A run's [`Outcome`] with its [`Level`] and
//! [`Reason`]; the verdict [`Status`] and the probe [`Group`]s; the [`host`] readings and
//! percentage [`Thresholds`]; durations and byte sizes, their serde helpers and how latencies are written;
//! and the one classifier that turns I/O, TLS and DNS errors into reasons.
//!
//! Keeping these at the bottom is what lets data flow one way: config → checks → scheduler
//! → health → renderers (server, telemetry, systemd) → daemon → main.

pub mod classify;
pub mod details;
pub mod duration;
pub mod host;
pub mod outcome;
pub mod port;
pub mod sample;
pub mod size;
pub mod status;
pub mod text;
pub mod thresholds;

pub use classify::classify;
pub use details::Details;
pub use duration::{
    MAX_DURATION, de_duration, de_opt_duration, fmt_latency, later, parse_duration, round_ms,
};
pub use outcome::{Level, Outcome, Reason};
pub use port::{de_opt_port, de_port};
pub use sample::{CertSample, Perfdata, Sample, round1, used_percent};
pub use size::{de_opt_size, parse_size};
pub use status::{Group, GroupSummary, Status};
pub use text::{MAX_MESSAGE, error_chain, mentions_any, one_line, one_log_line, printable};
pub use thresholds::Thresholds;
