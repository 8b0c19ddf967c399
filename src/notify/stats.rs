//! What became of notifications, per receiver: `healthd_notifications_total{receiver,result}`
//! and the length of the receivers' queues, rendered into `/metrics` next to the snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::queue::Queue;

/// The `result` label's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Result {
    /// Accepted by the receiver (2xx).
    Sent,
    /// Refused (4xx) or still failing when retries gave up.
    Failed,
    /// The receiver's queue was full.
    Dropped,
    /// Not sent: the check changed again before delivery (the newer notice says it all).
    Collapsed,
}

impl Result {
    pub const ALL: [Result; 4] = [
        Result::Sent,
        Result::Failed,
        Result::Dropped,
        Result::Collapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Result::Sent => "sent",
            Result::Failed => "failed",
            Result::Dropped => "dropped",
            Result::Collapsed => "collapsed",
        }
    }
}

/// Notification counters; shared by the router, the delivery workers and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<(String, Result), u64>>,
    queues: Mutex<BTreeMap<String, Vec<Arc<Queue>>>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({})", self.len())
    }
}

impl Stats {
    pub fn add(&self, receiver: &str, result: Result, n: u64) {
        if n == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((receiver.to_string(), result)).or_default() += n;
    }

    pub fn count(&self, receiver: &str, result: Result) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&(receiver.to_string(), result))
            .copied()
            .unwrap_or(0)
    }

    /// The receivers now configured, with their queues (every result shows, at 0 at first;
    /// counts of receivers removed by a reload stay, as counters do).
    pub fn set_receivers(&self, receivers: BTreeMap<String, Vec<Arc<Queue>>>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for name in receivers.keys() {
            for r in Result::ALL {
                counts.entry((name.clone(), r)).or_default();
            }
        }
        drop(counts);
        *self.queues.lock().unwrap_or_else(|e| e.into_inner()) = receivers;
    }
}

/// [`Stats`] as a Prometheus collector.
#[derive(Debug)]
pub struct Metrics(pub Arc<Stats>);

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let counts = self
            .0
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !counts.is_empty() {
            let mut family = enc.encode_descriptor(
                "healthd_notifications",
                "Notifications by receiver and what became of them (sent, failed, dropped, collapsed)",
                None,
                MetricType::Counter,
            )?;
            for ((receiver, result), n) in &counts {
                let labels = vec![("receiver", receiver.as_str()), ("result", result.as_str())];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        let queues: Vec<(String, usize)> = self
            .0
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, qs)| (name.clone(), qs.iter().map(|q| q.len()).sum()))
            .collect();
        if !queues.is_empty() {
            let mut family = enc.encode_descriptor(
                "healthd_notifications_queued",
                "Notifications waiting for delivery, by receiver",
                None,
                MetricType::Gauge,
            )?;
            for (receiver, n) in &queues {
                let labels = vec![("receiver", receiver.as_str())];
                ConstGauge::new(*n as f64).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
