//! The health model: per-check state machines fed by observations, rolled up into groups,
//! published as one immutable [`Snapshot`] that every renderer reads, and judged into
//! verdicts in one place.
//!
//! - [`state`]: the pure per-check state machine (thresholds, flapping, staleness);
//! - [`event_loop`]: the single writer that applies events and publishes snapshots;
//! - [`snapshot`]: what is published ([`checks`]: its chunked list of views; [`pulse`]: the
//!   loop's liveness); `publish`: what changed since, so a batch costs O(changed checks);
//! - [`stats`]: run counters and latency histograms;
//! - `descriptors`: the self-check for runs lost to healthd's own descriptor shortage;
//! - `dependencies`: `blocked_by`, a failing check's failing parents (`depends_on`);
//! - `records`: what the loop tells its listeners (status changes, accepted runs);
//! - [`fanout`]: accepted runs to each listener, in queues that grow only as records wait;
//! - [`verdict`]: a group's verdict for the HTTP, gRPC and systemd renderers.

pub mod checks;
mod dependencies;
mod descriptors;
pub mod event_loop;
pub mod fanout;
mod names;
mod publish;
pub mod pulse;
mod records;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod verdict;

pub use event_loop::{Event, HealthHandle, HealthLoop, RunRecord, StatusChange};
pub use snapshot::{CheckView, Checks, HEARTBEAT, Pulse, ReloadInfo, SharedSnapshot, Snapshot};
pub use state::{CheckMeta, Observation};
pub use stats::{LATENCY_BUCKETS, RunStats};
pub use verdict::{Policy, Verdict, Verdicts, verdict};
