//! One task drives every check from a sorted schedule: a check that is not running is a
//! few hundred bytes of state in a slot plus one heap entry, not a sleeping task holding a
//! future. When a check is due its state moves into a task spawned for that one run; the
//! run puts it back with its next due time itself, and wakes the driver only when that is
//! sooner than what the driver sleeps towards. A removed or changed check's run in flight
//! is aborted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{FIRST_RUN_SPREAD, run_timed};
use crate::check::Probe;
use crate::config::CheckConfig;
use crate::health::{CheckMeta, Event, Observation};
use crate::resilience::{Breaker, NextRun};

/// What a check carries between runs.
struct Entry {
    config: Arc<CheckConfig>,
    generation: u64,
    probe: Option<Probe>,
    breaker: Breaker,
    /// The slot on the normal schedule; confirmation and backoff runs do not move it.
    slot: Instant,
    /// Where in its interval the check settles after its first run.
    phase: Duration,
    ran: bool,
}

enum Slot {
    Free,
    Waiting(Entry),
    Running {
        config: Arc<CheckConfig>,
        generation: u64,
        abort: AbortHandle,
    },
}

impl Slot {
    /// The check in this slot and which definition of it, waiting or running.
    fn check(&self) -> Option<(&Arc<CheckConfig>, u64)> {
        match self {
            Slot::Free => None,
            Slot::Waiting(e) => Some((&e.config, e.generation)),
            Slot::Running {
                config, generation, ..
            } => Some((config, *generation)),
        }
    }
}

pub(super) enum Command {
    /// Make the set of checks match; answered once the new set has reached the health loop.
    Apply(Vec<Arc<CheckConfig>>, oneshot::Sender<()>),
    /// Stop scheduling; let runs in flight finish within the grace (their results are not
    /// sent), then end.
    Stop(Duration),
}

/// The coarsest grid due times are rounded up to ([`Table::on_grid`]).
const MAX_GRAIN: Duration = Duration::from_millis(50);
/// About how many runs one wake-up gathers when checks are many ([`Table::on_grid`]).
const GATHER: u32 = 8;

/// The schedule proper, shared by the driver and the runs in flight.
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// (due, slot, generation): an entry whose slot no longer holds that generation waiting
    /// is stale and skipped when it comes up.
    due: BinaryHeap<Reverse<(Instant, u32, u64)>>,
    /// What the driver sleeps towards; a run due sooner wakes it.
    wake_at: Option<Instant>,
    /// Where the grid of due times starts ([`Table::on_grid`]).
    origin: Instant,
}

struct Shared {
    table: Mutex<Table>,
    wake: Notify,
    events: mpsc::Sender<Event>,
    limiter: Semaphore,
    cancel: CancellationToken,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every change is one
        // assignment), so a poisoned lock is used as it is.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Timetable {
    shared: Arc<Shared>,
    next_generation: u64,
}

impl Timetable {
    pub(super) fn new(
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
        max_in_flight: usize,
    ) -> Timetable {
        Timetable {
            shared: Arc::new(Shared {
                table: Mutex::new(Table {
                    slots: Vec::new(),
                    free: Vec::new(),
                    due: BinaryHeap::new(),
                    wake_at: None,
                    origin: Instant::now(),
                }),
                wake: Notify::new(),
                events,
                limiter: Semaphore::new(max_in_flight.max(1)),
                cancel,
            }),
            next_generation: 1,
        }
    }

    /// Serve commands and start checks as they come due, until stopped or cancelled.
    pub(super) async fn drive(mut self, mut commands: mpsc::Receiver<Command>) {
        let shared = Arc::clone(&self.shared);
        let sleep = tokio::time::sleep_until(far_future());
        tokio::pin!(sleep);
        loop {
            let next = {
                let mut t = shared.table();
                let next = t.due.peek().map(|Reverse((at, _, _))| *at);
                t.wake_at = next;
                next
            };
            if let Some(at) = next
                && sleep.deadline() != at
            {
                sleep.as_mut().reset(at);
            }
            tokio::select! {
                biased;
                _ = shared.cancel.cancelled() => return self.finish(Duration::ZERO).await,
                command = commands.recv() => match command {
                    Some(Command::Apply(checks, done)) => {
                        self.apply(&checks).await;
                        let _ = done.send(());
                    }
                    Some(Command::Stop(grace)) => return self.finish(grace).await,
                    None => return self.finish(Duration::ZERO).await,
                },
                _ = shared.wake.notified() => {}
                _ = &mut sleep, if next.is_some() => start_due(&shared),
            }
        }
    }

    /// Unchanged checks keep their slot (and state, and kept connection); changed ones start
    /// afresh, removed ones stop (a run in flight is aborted), new ones start.
    async fn apply(&mut self, checks: &[Arc<CheckConfig>]) {
        let mut metas = Vec::with_capacity(checks.len());
        let mut to_start = Vec::new();
        {
            let mut t = self.shared.table();
            let mut current: HashMap<&str, (u32, &Arc<CheckConfig>, u64)> =
                HashMap::with_capacity(t.slots.len());
            for (id, slot) in t.slots.iter().enumerate() {
                if let Some((config, generation)) = slot.check() {
                    current.insert(config.name.as_str(), (id as u32, config, generation));
                }
            }
            let mut to_release = Vec::new();
            for c in checks {
                match current.remove(c.name.as_str()) {
                    Some((_, config, generation)) if config == c => {
                        metas.push(CheckMeta::of(c, generation));
                    }
                    old => {
                        to_release.extend(old.map(|(id, _, _)| id));
                        let generation = self.next_generation;
                        self.next_generation += 1;
                        metas.push(CheckMeta::of(c, generation));
                        to_start.push((Arc::clone(c), generation));
                    }
                }
            }
            to_release.extend(current.into_values().map(|(id, _, _)| id));
            for id in to_release {
                t.release(id);
            }
        }
        // The new set must reach the health loop before any result of a new check does.
        let _ = self.shared.events.send(Event::Reconfigure(metas)).await;
        let now = Instant::now();
        let mut t = self.shared.table();
        // Exactly as many slots as checks: 100,000 checks, not room for 131,072.
        let added = to_start.len().saturating_sub(t.free.len());
        t.slots.reserve_exact(added);
        t.due.reserve_exact(added);
        for (config, generation) in to_start {
            t.add(config, generation, now);
        }
    }

    /// Let runs in flight finish within `grace` without sending their results, then abort
    /// what is left.
    async fn finish(self, grace: Duration) {
        let shared = &self.shared;
        shared.cancel.cancel();
        let _ = tokio::time::timeout(grace, async {
            loop {
                let notified = shared.wake.notified();
                if !shared.table().any_running() {
                    return;
                }
                notified.await;
            }
        })
        .await;
        let mut t = shared.table();
        for id in 0..t.slots.len() as u32 {
            t.release(id);
        }
    }
}

impl Table {
    /// Whether a run is in flight (asked only while stopping).
    fn any_running(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Running { .. }))
    }

    /// Stop a check: free its slot, aborting its run if one is in flight.
    fn release(&mut self, id: u32) {
        match std::mem::replace(&mut self.slots[id as usize], Slot::Free) {
            Slot::Free => return,
            Slot::Running { abort, .. } => abort.abort(),
            Slot::Waiting(_) => {}
        }
        self.free.push(id);
    }

    fn add(&mut self, config: Arc<CheckConfig>, generation: u64, now: Instant) {
        // First run soon (startup waits for it), then a random phase within one interval so
        // that thousands of checks with one interval spread out instead of firing together.
        let first = later(now, random_below(config.interval.min(FIRST_RUN_SPREAD)));
        let entry = Entry {
            breaker: Breaker::new(
                config.interval,
                config.failure_threshold,
                config.resilience.clone(),
            ),
            phase: random_below(config.interval),
            config,
            generation,
            probe: None,
            slot: first,
            ran: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Slot::Waiting(entry);
                id
            }
            None => {
                self.slots.push(Slot::Waiting(entry));
                (self.slots.len() - 1) as u32
            }
        };
        // The first runs stay where they fell: gathered, a thousand checks would start fifty
        // at a time, each with its connection and buffers (peak RSS is set at start).
        self.due.push(Reverse((first, id, generation)));
    }

    /// When a run meant for `at` is due: `at` rounded up to a grid of a twentieth of the
    /// check's interval, at most [`MAX_GRAIN`], shared by every check. Runs due within a
    /// grain of each other then start on one wake-up of the driver (and their results reach
    /// the health loop together): 100 checks every second wake it at most 20 times a second,
    /// not 100. With many checks the grain shrinks so that a wake-up gathers about
    /// [`GATHER`] runs (10,000 checks every 10 s: 8 ms), not hundreds started at once, each
    /// with its connection and buffers. The slots themselves stay exact, so a check's rhythm
    /// does not drift.
    fn on_grid(&self, at: Instant, interval: Duration) -> Instant {
        // The checks scheduled: slots freed by removed checks do not count.
        let live = self.slots.len() - self.free.len();
        let checks = u32::try_from(live).unwrap_or(u32::MAX).max(1);
        let grain = (interval / 20).min(MAX_GRAIN);
        let grain = grain.min(interval * GATHER / checks).as_nanos() as u64;
        if grain < 1_000_000 {
            return at; // below the timer's millisecond: nothing to gather
        }
        let since = at.saturating_duration_since(self.origin).as_nanos() as u64;
        later(
            self.origin,
            Duration::from_nanos(since.div_ceil(grain) * grain),
        )
    }

    /// A run is back: its check waits for its next run, unless it was removed or replaced
    /// meanwhile. True when that run is due before the driver would wake.
    fn put_back(&mut self, id: u32, entry: Entry, next: Instant) -> bool {
        let running = &self.slots[id as usize];
        if !matches!(running, Slot::Running { generation, .. } if *generation == entry.generation) {
            return false;
        }
        let next = self.on_grid(next, entry.config.interval);
        self.due.push(Reverse((next, id, entry.generation)));
        self.slots[id as usize] = Slot::Waiting(entry);
        if self.wake_at.is_none_or(|at| next < at) {
            self.wake_at = Some(next);
            return true;
        }
        false
    }
}

/// Start every run that is due now, each on a task of its own.
fn start_due(shared: &Arc<Shared>) {
    let now = Instant::now();
    let mut t = shared.table();
    while let Some(&Reverse((at, id, generation))) = t.due.peek() {
        if at > now {
            break;
        }
        t.due.pop();
        let slot = &mut t.slots[id as usize];
        if !matches!(slot, Slot::Waiting(e) if e.generation == generation) {
            continue; // stale: the check was removed or changed since
        }
        let Slot::Waiting(entry) = std::mem::replace(slot, Slot::Free) else {
            unreachable!("matched above")
        };
        let config = Arc::clone(&entry.config);
        let abort = tokio::spawn(run(id, entry, at, Arc::clone(shared))).abort_handle();
        t.slots[id as usize] = Slot::Running {
            config,
            generation,
            abort,
        };
    }
}

/// One run of one check: wait for a permit, run, work out when the next run is due,
/// report, and put the check back on the schedule.
async fn run(id: u32, mut entry: Entry, due: Instant, shared: Arc<Shared>) {
    let permit = shared.limiter.acquire().await;
    let lateness = Instant::now().saturating_duration_since(due);
    let (outcome, latency) = run_timed(&mut entry.probe, &entry.config).await;
    drop(permit);
    let now = Instant::now();
    let interval = entry.config.interval;
    if !entry.ran {
        entry.ran = true;
        entry.slot = later(now, entry.phase);
    }
    // Skip missed slots rather than bursting to catch up.
    while entry.slot <= now {
        entry.slot = later(entry.slot, interval);
    }
    let next = match entry.breaker.record(outcome.level, rand::random::<f64>()) {
        NextRun::Interval => entry.slot,
        NextRun::After(d) => later(now, d),
    };
    let obs = Observation {
        check: entry.config.name.clone(),
        generation: entry.generation,
        outcome,
        latency,
        lateness,
        at: SystemTime::now(),
        breaker: entry.breaker.state(),
        next_delay: next.saturating_duration_since(now),
    };
    let stopping = shared.cancel.is_cancelled();
    if !stopping {
        let _ = shared.events.send(Event::Observation(obs)).await;
    }
    let sooner = shared.table().put_back(id, entry, next);
    if sooner || stopping {
        shared.wake.notify_one();
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// `t + d` without overflow ([`crate::model::later`]), on tokio's clock.
fn later(t: Instant, d: Duration) -> Instant {
    Instant::from_std(crate::model::later(t.into_std(), d))
}

fn random_below(d: Duration) -> Duration {
    let nanos = d.as_nanos().min(u64::MAX as u128) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random::<u64>() % nanos)
}

#[cfg(test)]
#[path = "timetable_tests.rs"]
mod tests;
