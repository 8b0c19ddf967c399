//! The listener's connection budget. Every open client connection holds one slot; when all
//! are taken, a new connection is not turned away while an idle one exists: the connection
//! idle the longest (no request in progress: a silent socket, a slowloris head, a keep-alive
//! between requests) is closed and its slot given to the newcomer. Idle connections thus
//! cannot lock a prober out, and a probe client's idle keep-alive connection goes only when
//! no other idle one is left; only requests in progress (bounded by the per-endpoint
//! concurrency budgets and `request_timeout`) can fill the budget. The listener also
//! shortens the header read timeout of new connections while the budget is nearly full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// What a connection does now, as its request service reports it.
#[derive(Debug)]
pub struct Activity {
    /// Requests in progress.
    busy: AtomicUsize,
    /// The connection is a probe client's (it has sent a complete probe request).
    probe: AtomicBool,
    /// When the latest request ended (or the connection opened), in ms since the budget's
    /// epoch.
    idle_since: AtomicU64,
    epoch: Instant,
}

impl Activity {
    /// Mark a request in progress until the returned guard drops.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// The connection is a probe client's: closed to make room only when no other idle one is.
    pub fn mark_probe(&self) {
        self.probe.store(true, Ordering::Relaxed);
    }
}

/// A request in progress on its connection.
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let ms = self.0.epoch.elapsed().as_millis() as u64;
        self.0.idle_since.store(ms, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Entry {
    /// The slot; taken out when the connection is closed to make room.
    slot: Option<OwnedSemaphorePermit>,
    close: CancellationToken,
    activity: Arc<Activity>,
}

/// One open connection's handle on the budget: its close signal and activity; leaving the
/// budget when dropped.
pub struct Member {
    budget: Arc<Budget>,
    id: u64,
    /// Cancelled when the connection is closed to make room, and when the budget's `stop`
    /// is (a child of it): one signal for a connection to watch. The listener's own token
    /// tells the two apart.
    pub close: CancellationToken,
    pub activity: Arc<Activity>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.budget.entries().remove(&self.id);
    }
}

/// The connection budget.
pub struct Budget {
    stop: CancellationToken,
    slots: Arc<Semaphore>,
    size: usize,
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
    evicted: AtomicU64,
}

impl Budget {
    /// A budget of `size` connections, each closed also when `stop` is cancelled.
    pub fn new(size: usize, stop: &CancellationToken) -> Arc<Budget> {
        let size = size.max(1);
        Arc::new(Budget {
            stop: stop.clone(),
            slots: Arc::new(Semaphore::new(size)),
            size,
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            evicted: AtomicU64::new(0),
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open slots as a share of the budget (0.0 = full).
    pub fn free_share(&self) -> f64 {
        self.slots.available_permits() as f64 / self.size as f64
    }

    /// Idle connections closed to make room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Admit a new connection: a free slot, else the slot of the connection idle the
    /// longest, a probe client's last (which is closed); `None` when every connection has a request in progress.
    pub fn admit(self: &Arc<Self>) -> Option<Member> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => self.evict_idlest()?,
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            busy: AtomicUsize::new(0),
            probe: AtomicBool::new(false),
            idle_since: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            epoch: self.epoch,
        });
        let close = self.stop.child_token();
        self.entries().insert(
            id,
            Entry {
                slot: Some(slot),
                close: close.clone(),
                activity: activity.clone(),
            },
        );
        Some(Member {
            budget: self.clone(),
            id,
            close,
            activity,
        })
    }

    fn evict_idlest(&self) -> Option<OwnedSemaphorePermit> {
        let mut open = self.entries();
        let (_, entry) = open
            .iter_mut()
            .filter(|(_, e)| e.slot.is_some() && e.activity.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, e)| {
                (
                    e.activity.probe.load(Ordering::Relaxed),
                    e.activity.idle_since.load(Ordering::Acquire),
                )
            })?;
        entry.close.cancel();
        self.evicted.fetch_add(1, Ordering::Relaxed);
        entry.slot.take()
    }

    /// Wait until every connection has closed.
    pub async fn drained(&self) {
        let all = u32::try_from(self.size).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_closes_the_longest_idle_connection_not_a_busy_one() {
        let budget = Budget::new(3, &CancellationToken::new());
        let busy = budget.admit().expect("first");
        let _in_progress = busy.activity.request();
        let oldest_idle = budget.admit().expect("second");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let newer_idle = budget.admit().expect("third");
        let newcomer = budget
            .admit()
            .expect("a full budget still admits: an idle one goes");
        assert!(oldest_idle.close.is_cancelled());
        assert!(!newer_idle.close.is_cancelled() && !busy.close.is_cancelled());
        assert_eq!(budget.evicted(), 1);
        drop(oldest_idle);
        // Now: busy, newer_idle, newcomer; with every one busy, nobody is admitted.
        let _a = newer_idle.activity.request();
        let _b = newcomer.activity.request();
        assert!(budget.admit().is_none());
    }

    #[test]
    fn a_probe_clients_idle_connection_is_closed_last() {
        let budget = Budget::new(2, &CancellationToken::new());
        let probe = budget.admit().expect("first");
        probe.activity.mark_probe();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let heavy = budget.admit().expect("second");
        let _newcomer = budget.admit().expect("an idle one goes");
        assert!(heavy.close.is_cancelled(), "the heavy one, though newer");
        assert!(!probe.close.is_cancelled());
    }
}
