//! [`Fanout`]: every accepted run and every status change to each of its listeners (the
//! history writer, OTLP export, notifications), as `tokio::sync::broadcast` does, but with
//! memory that follows the traffic.
//! A broadcast channel allocates and writes all its slots when made: 4,096 of them were
//! 128 KiB of an idle daemon's 5 MiB. Here each listener has a bounded `mpsc` queue, whose
//! blocks of 32 slots are allocated as records wait in it. A listener that falls more than
//! the capacity behind loses the newest records and is told how many, as a lagging
//! broadcast receiver is (`RecvError::Lagged`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

struct Listener<T> {
    tx: mpsc::Sender<T>,
    lost: Arc<AtomicU64>,
}

/// The sending side, shared by the loop and the code that subscribes listeners.
pub struct Fanout<T> {
    capacity: usize,
    listeners: Mutex<Vec<Listener<T>>>,
}

impl<T: Clone> Fanout<T> {
    /// Each listener may fall `capacity` records behind.
    pub fn new(capacity: usize) -> Arc<Fanout<T>> {
        Arc::new(Fanout {
            capacity,
            listeners: Mutex::new(Vec::new()),
        })
    }

    fn listeners(&self) -> MutexGuard<'_, Vec<Listener<T>>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new listener: it receives what is sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let lost = Arc::new(AtomicU64::new(0));
        self.listeners().push(Listener {
            tx,
            lost: lost.clone(),
        });
        Receiver { rx, lost }
    }

    /// Listeners still listening.
    pub fn receiver_count(&self) -> usize {
        let mut listeners = self.listeners();
        listeners.retain(|l| !l.tx.is_closed());
        listeners.len()
    }

    /// Give `value` to every listener; a listener whose queue is full loses it.
    pub fn send(&self, value: T) {
        self.listeners()
            .retain(|l| match l.tx.try_send(value.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    l.lost.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}

/// One listener's side.
pub struct Receiver<T> {
    rx: mpsc::Receiver<T>,
    lost: Arc<AtomicU64>,
}

impl<T> Receiver<T> {
    /// The next record; `Lagged(n)` first when `n` were lost since the last call, `Closed`
    /// once the sending side is gone and everything sent is received.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        let lost = self.lost.swap(0, Ordering::Relaxed);
        if lost > 0 {
            return Err(RecvError::Lagged(lost));
        }
        self.rx.recv().await.ok_or(RecvError::Closed)
    }

    /// A record that is waiting, if one is (what was lost is not reported here).
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_gets_every_record_and_a_slow_one_is_told_what_it_lost() {
        let fanout = Fanout::new(2);
        let mut a = fanout.subscribe();
        let mut b = fanout.subscribe();
        assert_eq!(fanout.receiver_count(), 2);
        fanout.send(1);
        assert_eq!(a.recv().await, Ok(1));
        fanout.send(2);
        fanout.send(3);
        assert_eq!((a.recv().await, a.recv().await), (Ok(2), Ok(3)));
        // b has 1 and 2 waiting: 3 was lost.
        assert_eq!(b.recv().await, Err(RecvError::Lagged(1)));
        assert_eq!((b.recv().await, b.recv().await), (Ok(1), Ok(2)));
        drop(a);
        assert_eq!(fanout.receiver_count(), 1);
        fanout.send(4);
        assert_eq!(b.recv().await, Ok(4));
        drop(fanout);
        assert_eq!(b.recv().await, Err(RecvError::Closed));
    }
}
