//! One delivery target's queue: bounded, at most one waiting notice per check (a newer one
//! merges into it, see [`merge`]), never blocking the router: when it is full, the new
//! notice is dropped and counted.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::notice::{Notice, merge};

/// What became of a pushed notice.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Merged with a waiting notice about the same check; this many will not be sent.
    Merged {
        collapsed: u64,
    },
    /// The queue was full.
    Dropped,
}

pub struct Queue {
    inner: Mutex<Inner>,
    wake: Notify,
}

struct Inner {
    items: VecDeque<Notice>,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                capacity: capacity.max(1),
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a valid queue behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_capacity(&self, capacity: usize) {
        self.lock().capacity = capacity.max(1);
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&self, notice: Notice) -> Pushed {
        let mut q = self.lock();
        if let Some(pos) = q.items.iter().position(|w| w.check == notice.check) {
            let waiting = q.items.remove(pos).unwrap_or_else(|| notice.clone());
            let m = merge(waiting, notice);
            if let Some(n) = m.notice {
                q.items.insert(pos, n);
            }
            return Pushed::Merged {
                collapsed: m.collapsed,
            };
        }
        if q.items.len() >= q.capacity {
            return Pushed::Dropped;
        }
        q.items.push_back(notice);
        drop(q);
        self.wake.notify_one();
        Pushed::Queued
    }

    /// Put notices that were taken but not delivered back in front (a worker being
    /// replaced by a reload); a newer notice about the same check merges into them.
    pub fn requeue(&self, batch: Vec<Notice>) -> u64 {
        let mut q = self.lock();
        let mut collapsed = 0;
        for old in batch.into_iter().rev() {
            match q.items.iter().position(|w| w.check == old.check) {
                Some(pos) => {
                    let newer = q.items.remove(pos).unwrap_or_else(|| old.clone());
                    let m = merge(old, newer);
                    collapsed += m.collapsed;
                    if let Some(n) = m.notice {
                        q.items.push_front(n);
                    }
                }
                None => q.items.push_front(old),
            }
        }
        drop(q);
        self.wake.notify_one();
        collapsed
    }

    /// Take the waiting notice about `check`, if any (to merge into one being retried).
    pub fn take(&self, check: &str) -> Option<Notice> {
        let mut q = self.lock();
        let pos = q.items.iter().position(|w| w.check == check)?;
        q.items.remove(pos)
    }

    /// Wait for notices and take up to `max` of them, oldest first.
    pub async fn next(&self, max: usize) -> Vec<Notice> {
        loop {
            {
                let mut q = self.lock();
                if !q.items.is_empty() {
                    let n = max.max(1).min(q.items.len());
                    return q.items.drain(..n).collect();
                }
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::notice::Cause;
    use super::super::notice::tests::notice;
    use super::*;
    use crate::model::Status::{Healthy as H, Unhealthy as U};

    #[tokio::test]
    async fn bounded_one_per_check_and_a_recovery_collapses_the_failure() {
        let q = Queue::new(2);
        assert_eq!(
            q.push(notice(H, U, false, true, Cause::Change)),
            Pushed::Queued
        );
        let other = |name: &str| crate::notify::notice::Notice {
            check: name.into(),
            ..notice(H, U, false, true, Cause::Change)
        };
        assert_eq!(q.push(other("api")), Pushed::Queued);
        assert_eq!(q.push(other("web")), Pushed::Dropped);
        assert_eq!(
            q.push(notice(U, H, true, false, Cause::Change)),
            Pushed::Merged { collapsed: 2 }
        );
        assert_eq!(q.len(), 1);
        let batch = q.next(10).await;
        assert_eq!(batch[0].check, "api");
        assert!(q.is_empty());
    }
}
