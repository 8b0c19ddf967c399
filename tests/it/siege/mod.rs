//! The verdict while somebody works against healthd from outside, with every dependency
//! healthy throughout: `/readyz` must not give one wrong answer. Reloads under steady
//! polling, file descriptors exhausted, idle connections filling the connection budget.

// mod fds;
// mod idle;
mod reload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::daemon::http_get;

/// Polls `/readyz?verbose` over fresh connections until stopped (or for at most a minute),
/// keeping every answer that was not `200`.
pub struct Poller {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(usize, Vec<String>)>,
}

impl Poller {
    pub fn start(addr: std::net::SocketAddr) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let (mut polls, mut wrong) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                polls += 1;
                match http_get(addr, "/readyz?verbose") {
                    Ok((200, _)) => {}
                    Ok((code, body)) => wrong.push(format!("{code}: {body}")),
                    Err(e) => wrong.push(format!("no answer: {e}")),
                }
                thread::sleep(Duration::from_millis(2));
            }
            (polls, wrong)
        });
        Poller { stop, handle }
    }

    /// Stop polling; `(polls, the answers that were not 200)`.
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("poller thread")
    }
}
