//! The writer: off the probe path. An async task takes the health loop's `runs` and
//! `changes` fan-outs (bounded and lossy: a lagging receiver loses the newest records,
//! which are counted as dropped) into a pending batch; once a second, the batch goes to the
//! history thread, which commits it in one transaction. Nothing here ever blocks a probe,
//! the health loop or an endpoint: when the history thread falls behind, the batch waits in
//! memory up to [`MAX_PENDING`] records, and what does not fit is dropped and counted.
//!
//! The history thread is the one long-lived thread that touches the store in the daemon's
//! steady state: commits, retention and the view's refresh ([`Jobs`]). One thread rather
//! than a blocking-pool thread per job keeps the memory the store's work takes in one
//! place (with glibc, every thread that allocates gets a malloc arena of its own).
//!
//! A `kill -9` loses at most the records of the batch being gathered (≤ 1 s) and the one
//! being committed; redb's commit is atomic, so the file is never left half-written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use super::commit::Writer;
use super::limit::Trimmed;
use super::log::Log;
use super::record::{EventRecord, RawResult, reason_name, short, unix_ms};
use super::store::{Store, StoreError};
use crate::config::HistoryConfig;
use crate::health::{HealthHandle, RunRecord, StatusChange};

/// How often the pending batch is committed (the most a `kill -9` can lose).
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A batch this large is committed at once rather than after [`FLUSH_EVERY`]: at start
/// every check's first run and status change come within about a second, and gathering
/// them all before one commit would hold the whole burst twice (encoded, then stored).
pub const FLUSH_AT: usize = 1024;
/// Commit at least this often, also without results, so the session's end (the time
/// healthd was known to run) stays current.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How often retention is applied.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Records waiting for a slow disk beyond this are dropped (and counted).
pub const MAX_PENDING: usize = 100_000;

/// The writer's counters, exported as `healthd_history_*` metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records lost: the writer fell behind the health loop, or the pending batch was full.
    pub dropped: AtomicU64,
    /// Records committed.
    pub written: AtomicU64,
    /// Failed commits (their records are lost and counted in `dropped` too).
    pub errors: AtomicU64,
    /// Rows the in-memory store dropped to stay within `[history] memory_limit`.
    pub trimmed: AtomicU64,
}

/// Records waiting for the next commit, kept encoded: at start every check's first run
/// and first status change arrive within about a second, and a run held as a struct with
/// its own strings took about ten times its encoded bytes.
#[derive(Debug, Default)]
pub struct Batch {
    /// `(check, kind, result)`.
    runs: Log<(String, String, RawResult)>,
    /// `(check, kind, change)`.
    events: Log<(String, String, EventRecord)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.runs.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a run of `check` (of `kind`).
    pub fn add_run(&mut self, check: &str, kind: &str, r: RawResult) {
        self.runs.push(&(check.into(), kind.into(), r));
    }

    /// Add a status change of `check` (of `kind`).
    pub fn add_change(&mut self, check: &str, kind: &str, e: EventRecord) {
        self.events.push(&(check.into(), kind.into(), e));
    }

    /// The runs, `(check, kind, result)`, in arrival order.
    pub fn runs(&self) -> impl Iterator<Item = (String, String, RawResult)> + '_ {
        self.runs.iter()
    }

    /// The status changes, `(check, kind, change)`, in arrival order.
    pub fn changes(&self) -> impl Iterator<Item = (String, String, EventRecord)> + '_ {
        self.events.iter()
    }

    fn push_run(&mut self, r: &RunRecord) {
        let raw = RawResult {
            at_ms: unix_ms(r.at),
            level: r.level.into(),
            reason: r.reason.map(reason_name),
            latency_us: r.latency.as_micros() as u64,
            message: short(&r.message),
        };
        self.add_run(&r.check, r.kind, raw);
    }

    fn push_change(&mut self, c: &StatusChange) {
        let e = EventRecord {
            at_ms: unix_ms(c.at),
            from: c.from.as_str().to_string(),
            to: c.to.as_str().to_string(),
            reason: c.reason.map(reason_name),
            message: short(&c.message),
        };
        self.add_change(&c.check, c.kind, e);
    }
}

impl<'a> FromIterator<(&'a str, &'a str, RawResult)> for Batch {
    /// A batch of runs.
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str, RawResult)>>(runs: I) -> Self {
        let mut b = Batch::default();
        for (check, kind, r) in runs {
            b.add_run(check, kind, r);
        }
        b
    }
}

/// What the history thread is asked to do, in order.
enum Job {
    Commit(Batch),
    Call(Box<dyn FnOnce() + Send>),
    /// Answer, then end the thread.
    Stop(oneshot::Sender<()>),
}

/// Work for the history thread; closed (every call returns `None`) once the writer stopped.
#[derive(Clone)]
pub struct Jobs(mpsc::Sender<Job>);

impl Jobs {
    /// Run `f` on the history thread and wait for its answer.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Call(Box::new(move || {
            let _ = tx.send(f());
        }));
        self.0.send(job).await.ok()?;
        rx.await.ok()
    }

    /// Jobs nobody runs (history off, or the store unreadable).
    pub fn closed() -> Jobs {
        Jobs(mpsc::channel(1).0)
    }
}

/// Start the writer and the history thread: subscribe to the health loop, commit every
/// [`FLUSH_EVERY`], apply retention every [`PRUNE_EVERY`]; on cancel, commit what is
/// pending and stop. Returns the writer's task (it ends after the last commit) and the
/// history thread's [`Jobs`].
pub fn spawn(
    store: Arc<Store>,
    config: HistoryConfig,
    health: &HealthHandle,
    stats: Arc<WriterStats>,
    cancel: CancellationToken,
) -> (tokio::task::JoinHandle<()>, Jobs) {
    let mut runs = health.runs.subscribe();
    let mut changes = health.changes.subscribe();
    let tx = match start_thread(store, config, stats.clone()) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "History store unreadable; history is not kept.");
            return (tokio::spawn(async {}), Jobs::closed());
        }
    };
    let jobs = Jobs(tx.clone());
    let task = tokio::spawn(async move {
        let mut pending = Batch::default();
        let mut last_commit = Instant::now() - HEARTBEAT_EVERY;
        // When the pending batch is committed: FLUSH_EVERY after the previous commit (at
        // once if that is past), or the next session heartbeat when nothing is pending (so
        // an idle writer sleeps 10 s instead of waking every second).
        let mut flush_at: Option<Instant> = None;
        // The history thread refused the last batch: wait FLUSH_EVERY, whatever the size.
        let mut behind = false;
        // One timer, moved only when the due time moves (not one per received record).
        let timer = tokio::time::sleep_until((last_commit + HEARTBEAT_EVERY).into());
        tokio::pin!(timer);
        loop {
            if flush_at.is_none() && !pending.is_empty() {
                flush_at = Some(last_commit + FLUSH_EVERY);
            }
            if pending.len() >= FLUSH_AT && !behind {
                let now = Instant::now();
                flush_at = Some(flush_at.map_or(now, |t| t.min(now)));
            }
            let due = flush_at.unwrap_or(last_commit + HEARTBEAT_EVERY).into();
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                r = runs.recv() => match r {
                    Ok(r) => keep(&mut pending, &stats, |b| b.push_run(&r)),
                    Err(RecvError::Lagged(n)) => { stats.dropped.fetch_add(n, Ordering::Relaxed); }
                    Err(RecvError::Closed) => break,
                },
                c = changes.recv() => match c {
                    Ok(c) => keep(&mut pending, &stats, |b| b.push_change(&c)),
                    Err(RecvError::Lagged(n)) => { stats.dropped.fetch_add(n, Ordering::Relaxed); }
                    Err(RecvError::Closed) => break,
                },
                () = &mut timer => {
                    flush_at = None;
                    if pending.is_empty() && last_commit.elapsed() < HEARTBEAT_EVERY {
                        continue;
                    }
                    match tx.try_send(Job::Commit(std::mem::take(&mut pending))) {
                        Ok(()) => {
                            last_commit = Instant::now();
                            behind = false;
                        }
                        // The thread is behind: keep gathering (bounded by MAX_PENDING).
                        Err(TrySendError::Full(Job::Commit(b))) => {
                            pending = b;
                            behind = true;
                            flush_at = Some(Instant::now() + FLUSH_EVERY);
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        // What arrived before the stop, then one last commit.
        while let Some(r) = runs.try_recv() {
            keep(&mut pending, &stats, |b| b.push_run(&r));
        }
        while let Some(c) = changes.try_recv() {
            keep(&mut pending, &stats, |b| b.push_change(&c));
        }
        let (done, stopped) = oneshot::channel();
        if tx.send(Job::Commit(pending)).await.is_ok() && tx.send(Job::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    });
    (task, jobs)
}

/// Add a record unless the pending batch is full.
fn keep(pending: &mut Batch, stats: &WriterStats, add: impl FnOnce(&mut Batch)) {
    if pending.len() >= MAX_PENDING {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
    } else {
        add(pending);
    }
}

/// Say once that the in-memory store reached its limit, and once that it dropped rows the
/// uptime and SLO windows read.
fn tell_trimmed(told: &mut Trimmed, now: Trimmed, limit: u64) {
    let mib = limit as f64 / f64::from(1 << 20);
    if now.rows > 0 && told.rows == 0 {
        tracing::warn!(
            memory_limit_mib = mib,
            "History in memory reached [history] memory_limit: each check now gives up its oldest raw results and minute buckets beyond 2 h to stay within its share; set [history] path to keep more."
        );
    }
    if now.deep && !told.deep {
        tracing::warn!(
            memory_limit_mib = mib,
            "History in memory is over [history] memory_limit even with 10 raw results and 2 h of minute buckets per check: older buckets and status changes go too, and uptime and SLO windows see less than they cover. Raise memory_limit or set [history] path."
        );
    }
    *told += now;
}

fn start_thread(
    store: Arc<Store>,
    config: HistoryConfig,
    stats: Arc<WriterStats>,
) -> Result<mpsc::Sender<Job>, StoreError> {
    let mut writer = Writer::new(store.clone(), &config, unix_ms(SystemTime::now()))?;
    // A commit, a refresh and the last commit with the stop may wait at once.
    let (tx, mut rx) = mpsc::channel::<Job>(4);
    let spawned = std::thread::Builder::new()
        .name("healthd-history".into())
        .spawn(move || {
            let mut last_prune: Option<Instant> = None;
            let mut told = Trimmed::default();
            while let Some(job) = rx.blocking_recv() {
                let batch = match job {
                    Job::Commit(b) => b,
                    Job::Call(f) => {
                        f();
                        continue;
                    }
                    Job::Stop(done) => {
                        let _ = done.send(());
                        break;
                    }
                };
                let now = unix_ms(SystemTime::now());
                let n = batch.len() as u64;
                match writer.commit(&batch, now) {
                    Ok(trimmed) => {
                        stats.written.fetch_add(n, Ordering::Relaxed);
                        stats.trimmed.fetch_add(trimmed.rows, Ordering::Relaxed);
                        tell_trimmed(&mut told, trimmed, config.memory_limit);
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        stats.dropped.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(error = %e, records = n, "History commit failed; records dropped.");
                    }
                }
                // The batch's memory goes before the next one is gathered.
                drop(batch);
                if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(Instant::now());
                    if let Err(e) = store.prune(&config, now) {
                        tracing::warn!(error = %e, "History retention failed.");
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Ok(tx),
        Err(e) => Err(StoreError::Db(redb::Error::Io(e))),
    }
}
