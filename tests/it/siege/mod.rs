//! The verdict while somebody works against healthd from outside, with every dependency
//! healthy throughout: `/readyz` must not give one wrong answer. Reloads under steady
//! polling, file descriptors exhausted, idle connections filling the connection budget, a
//! thousand clients flooding `/health` and `/metrics`.

mod fds;
mod flood;
mod idle;
mod reload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use crate::support::config::tcp_toml as tcp;
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

    /// Stop polling and assert that every answer was `200` (and that there were enough).
    pub fn assert_all_ready(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (polls, wrong) = self.handle.join().expect("poller thread");
        assert!(polls > 100, "only {polls} polls");
        assert!(
            wrong.is_empty(),
            "{} of {polls} /readyz answers were wrong or missing while every dependency was healthy; first: {:?}",
            wrong.len(),
            wrong.first()
        );
    }
}

/// The `[server]` and `[defaults]` of these tests (`interval`, `timeout` as given).
pub fn main_config(interval: &str, timeout: &str) -> String {
    format!(
        "[server]\nshutdown_delay = \"1s\"\n\n[defaults]\ninterval = \"{interval}\"\ntimeout = \"{timeout}\"\n"
    )
}
