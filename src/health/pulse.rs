//! [`Pulse`]: the health loop's liveness without a periodic publication. The loop counts the
//! batches it finishes and says when it must next wake; a reader judges it stuck when work
//! has been waiting (an event queued, or a deadline passed) and the count has not moved
//! since the reader first saw it waiting. An idle loop with nothing due is not stuck, and
//! costs nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::event_loop::Event;

/// No deadline.
const NEVER: u64 = u64::MAX;
/// How long a reader's look at the loop's queue serves the readers after it, in µs. A look
/// takes a reference on the queue (atomic writes on a line every prober thread shares); a
/// flood of probes made one per request, 1 % of a `/readyz` answer's CPU.
const QUEUE_LOOK_MICROS: u64 = 1_000;

#[derive(Debug)]
pub struct Pulse {
    base: Instant,
    /// Batches the loop has finished.
    progress: AtomicU64,
    /// The loop is waiting for an event or a deadline (everything before is published).
    idle: AtomicBool,
    /// When the loop must next wake for a deadline, in microseconds after `base`.
    due: AtomicU64,
    /// The loop's queue, to see whether events wait (weak: it must not keep the loop alive).
    events: Option<mpsc::WeakSender<Event>>,
    /// What a reader saw: the progress count while work was waiting, and since when.
    waiting: Mutex<Option<(u64, Instant)>>,
    /// The latest look at the queue for [`Pulse::stuck_for`]: when (µs after `base`, shifted
    /// left by one) and whether events were waiting (the low bit).
    queue_seen: AtomicU64,
    /// The sequence number of the latest snapshot, for readers that follow changes.
    published: watch::Sender<u64>,
}

impl Pulse {
    pub(crate) fn new(events: Option<mpsc::WeakSender<Event>>) -> Pulse {
        Pulse {
            base: Instant::now(),
            progress: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            due: AtomicU64::new(NEVER),
            events,
            waiting: Mutex::new(None),
            queue_seen: AtomicU64::new(0),
            published: watch::Sender::new(0),
        }
    }

    /// The loop published snapshot `seq`.
    pub(crate) fn published(&self, seq: u64) {
        self.published.send_replace(seq);
    }

    /// Follow the published snapshots: the receiver wakes when a new one is out (instead
    /// of polling the snapshot on a timer).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Wake the followers without a new snapshot: an input of the verdicts that is not in
    /// the snapshot changed (the drain flag, the policy).
    pub fn nudge(&self) {
        self.published.send_modify(|_| {});
    }

    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base)
            .as_micros()
            .min(u128::from(NEVER - 1)) as u64
    }

    /// The loop finished a batch and will next wake at `due` (or for an event).
    pub(crate) fn beat(&self, due: Option<Instant>) {
        self.due
            .store(due.map_or(NEVER, |d| self.micros(d)), Ordering::Relaxed);
        self.progress.fetch_add(1, Ordering::Release);
        self.idle.store(true, Ordering::Release);
    }

    /// The loop woke for an event or a deadline.
    pub(crate) fn woke(&self) {
        self.idle.store(false, Ordering::Release);
    }

    /// The loop is idle with nothing queued: every event sent before is in the snapshot.
    pub fn caught_up(&self) -> bool {
        self.idle.load(Ordering::Acquire) && !self.work_waiting(Instant::now(), false)
    }

    /// Batches the loop has finished.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Acquire)
    }

    /// Work is waiting for the loop: an event in its queue, or a deadline passed. `recent`:
    /// a look at the queue less than [`QUEUE_LOOK_MICROS`] old will do.
    fn work_waiting(&self, now: Instant, recent: bool) -> bool {
        let at = self.micros(now);
        let due = self.due.load(Ordering::Relaxed);
        if due != NEVER && at > due {
            return true;
        }
        let seen = self.queue_seen.load(Ordering::Relaxed);
        if recent && seen != 0 && at < (seen >> 1).saturating_add(QUEUE_LOOK_MICROS) {
            return seen & 1 == 1;
        }
        let queued = self
            .events
            .as_ref()
            .and_then(|w| w.upgrade())
            .is_some_and(|tx| tx.capacity() < tx.max_capacity());
        self.queue_seen
            .store((at << 1) | u64::from(queued), Ordering::Relaxed);
        queued
    }

    /// How long work has been waiting while the loop made no progress, as readers saw it
    /// (zero on the first sight: a stall is reported once it lasted between two looks).
    pub fn stuck_for(&self) -> Duration {
        let now = Instant::now();
        let progress = self.progress();
        // Nothing waits: not stuck. (A stale sighting is replaced at the next one, since
        // work stops waiting only when the loop makes progress.)
        if !self.work_waiting(now, true) {
            return Duration::ZERO;
        }
        let mut seen = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *seen {
            Some((p, since)) if p == progress => now.saturating_duration_since(since),
            _ => {
                *seen = Some((progress, now));
                Duration::ZERO
            }
        }
    }
}
