//! The router: one task that follows the snapshot (woken by the health loop's status
//! changes, and twice a second for reminders, resends and maintenance boundaries when a
//! receiver or a window is configured), asks each receiver's [`Judge`] what to tell it, and
//! queues the notices on the receiver's targets.
//! It owns the receivers, their queues and workers, and maintenance; reloads and
//! `healthd maintenance` commands reach it as [`Command`]s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::admin::{Request, Response};
use super::alertmanager::Alertmanager;
use super::deliver::{Forgotten, Sink, Worker, http_of};
use super::judge::{Context, Judge, Settle};
use super::maintenance::Maintenance;
use super::notice::{Cause, Notice};
use super::queue::{Pushed, Queue};
use super::stats::{Result as Counted, Stats};
use super::webhook::Webhook;
use crate::config::Config;
use crate::config::notify::{ReceiverConfig, ReceiverKind};
use crate::health::fanout;
use crate::health::{CheckView, SharedSnapshot, StatusChange};

/// How often the router looks at the snapshot when nothing changed (reminders, resends and
/// maintenance boundaries are this precise).
const EVALUATE_EVERY: Duration = Duration::from_millis(500);
/// Bound on waiting for the snapshot that holds a change just announced.
const PUBLISH_WAIT: Duration = Duration::from_millis(600);

/// What the router is told.
pub enum Command {
    Reconfigure(Box<Config>),
    Admin(Request, oneshot::Sender<Response>),
}

struct Target {
    key: String,
    queue: Arc<Queue>,
    stop: CancellationToken,
}

struct Receiver {
    config: ReceiverConfig,
    judge: Judge,
    targets: Vec<Target>,
    forgotten: Forgotten,
    last_resend: Instant,
}

pub struct Router {
    snapshot: SharedSnapshot,
    stats: Arc<Stats>,
    env: HashMap<String, String>,
    host: String,
    receivers: Vec<Receiver>,
    maintenance: Maintenance,
    depends_on: HashMap<String, Vec<String>>,
    settle: Settle,
    /// Each check's status before its latest change.
    previous: HashMap<String, crate::model::Status>,
}

impl Router {
    pub fn new(
        snapshot: SharedSnapshot,
        stats: Arc<Stats>,
        env: HashMap<String, String>,
    ) -> Router {
        let host = sysinfo::System::host_name().unwrap_or_else(|_| "localhost".into());
        Router {
            snapshot,
            stats,
            env,
            host,
            receivers: Vec::new(),
            maintenance: Maintenance::default(),
            depends_on: HashMap::new(),
            settle: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut changes: fanout::Receiver<Arc<StatusChange>>,
        cancel: CancellationToken,
    ) {
        let mut changes_open = true;
        let mut tick = tokio::time::interval(EVALUATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(Command::Reconfigure(c)) => self.reconfigure(&c),
                    Some(Command::Admin(req, reply)) => {
                        let _ = reply.send(self.admin(req));
                        self.evaluate();
                    }
                    None => break,
                },
                change = changes.recv(), if changes_open => {
                    match change {
                        Err(RecvError::Closed) => {
                            changes_open = false;
                            continue;
                        }
                        Ok(c) => {
                            // A change is announced before the snapshot that holds it is
                            // published: wait for that one (briefly).
                            let deadline = Instant::now() + PUBLISH_WAIT;
                            while !self.shows(&c) && Instant::now() < deadline {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            self.record(&c);
                        }
                        Err(RecvError::Lagged(_)) => {}
                    }
                    while let Some(c) = changes.try_recv() {
                        self.record(&c);
                    }
                    self.evaluate();
                }
                // Reminders, resends and maintenance boundaries come with time; without a
                // receiver or a window, nothing does, and an idle daemon is not woken.
                _ = tick.tick(), if !self.receivers.is_empty() || !self.maintenance.is_idle() => self.evaluate(),
            }
        }
        for r in &self.receivers {
            for t in &r.targets {
                t.stop.cancel();
            }
        }
    }

    /// Whether the published snapshot shows a change (or a later one of the same check).
    fn shows(&self, c: &StatusChange) -> bool {
        self.snapshot
            .load()
            .check(&c.check)
            .is_none_or(|v| v.status == c.to || v.since.is_some_and(|s| s > c.at))
    }

    /// Remember a change's `from` for the judges; without a receiver there is no judge,
    /// and a check map kept for none would cost memory per check (a receiver added by a
    /// reload starts without the statuses before it).
    fn record(&mut self, change: &StatusChange) {
        if !self.receivers.is_empty() {
            self.previous.insert(change.check.clone(), change.from);
        }
    }

    fn evaluate(&mut self) {
        let snap = self.snapshot.load_full();
        let now = SystemTime::now();
        let mono = Instant::now();
        let open = self.maintenance.open(now);
        self.maintenance.log_changes(&open);
        if self.receivers.is_empty() {
            // Nobody to tell: no view of every check to build.
            return;
        }
        let probes: Vec<&CheckView> = snap
            .checks
            .iter()
            .filter(|c| !c.builtin)
            .map(|c| c.as_ref())
            .collect();
        let views: HashMap<&str, &CheckView> =
            probes.iter().map(|v| (v.name.as_str(), *v)).collect();
        let cx = Context {
            now,
            mono,
            views: &views,
            depends_on: &self.depends_on,
            settle: &self.settle,
            previous: &self.previous,
        };
        for r in &mut self.receivers {
            let forgotten: Vec<String> = r
                .forgotten
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for c in forgotten {
                r.judge.forget(&c);
            }
            let config = &r.config;
            r.judge
                .retain(|c| views.get(c).is_some_and(|v| config.covers(c, &v.groups)));
            for v in &probes {
                if !config.covers(&v.name, &v.groups) {
                    continue;
                }
                let muted = Maintenance::covers(&open, &v.name);
                if let Some(n) = r.judge.judge(config, v, muted, &cx) {
                    enqueue(&self.stats, config, &r.targets, n);
                }
            }
            if config.kind == ReceiverKind::Alertmanager
                && mono.saturating_duration_since(r.last_resend) >= config.resend()
            {
                r.last_resend = mono;
                let resends: Vec<Notice> = r
                    .judge
                    .announced()
                    .filter_map(|(check, status, since)| {
                        let v = views.get(check)?;
                        (config.min_status.firing(v.status) == Some(true))
                            .then(|| resend(v, status, since, now))
                    })
                    .collect();
                for n in resends {
                    enqueue(&self.stats, config, &r.targets, n);
                }
            }
        }
    }

    /// Apply a (re)loaded config: receivers keep what they were told and their queued
    /// notices (by name, and per URL); targets are rebuilt (header files are re-read).
    fn reconfigure(&mut self, config: &Config) {
        self.maintenance.set_windows(config.maintenance.clone());
        // What only the judges read is kept only for them: no receiver, no per-check maps.
        let judged = !config.notify.is_empty();
        if judged {
            let checks: HashSet<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
            self.previous.retain(|c, _| checks.contains(c.as_str()));
        } else {
            self.previous = HashMap::new();
        }
        self.depends_on = config
            .checks
            .iter()
            .filter(|c| judged && !c.depends_on.is_empty())
            .map(|c| (c.name.clone(), c.depends_on.clone()))
            .collect();
        self.settle = config
            .checks
            .iter()
            .filter(|_| judged)
            .map(|c| {
                let grace = c.timeout + Duration::from_secs(1);
                (c.name.clone(), (c.interval, grace))
            })
            .collect();
        let mut old: HashMap<String, Receiver> = std::mem::take(&mut self.receivers)
            .into_iter()
            .map(|r| (r.config.name.clone(), r))
            .collect();
        for rc in &config.notify {
            let prev = old.remove(&rc.name);
            let (judge, forgotten, last_resend, mut queues) = match prev {
                Some(p) => {
                    let queues: HashMap<String, Arc<Queue>> = p
                        .targets
                        .into_iter()
                        .map(|t| {
                            t.stop.cancel();
                            (t.key, t.queue)
                        })
                        .collect();
                    (p.judge, p.forgotten, p.last_resend, queues)
                }
                None => (
                    Judge::default(),
                    Arc::new(Mutex::new(Default::default())),
                    Instant::now(),
                    HashMap::new(),
                ),
            };
            let targets = self.targets(rc, &forgotten, &mut queues);
            drop_pending(&self.stats, &rc.name, queues.into_values());
            self.receivers.push(Receiver {
                config: rc.clone(),
                judge,
                targets,
                forgotten,
                last_resend,
            });
        }
        for (name, r) in old {
            for t in r.targets {
                t.stop.cancel();
                drop_pending(&self.stats, &name, std::iter::once(t.queue));
            }
        }
        let queues: BTreeMap<String, Vec<Arc<Queue>>> = self
            .receivers
            .iter()
            .map(|r| {
                let qs = r.targets.iter().map(|t| t.queue.clone()).collect();
                (r.config.name.clone(), qs)
            })
            .collect();
        self.stats.set_receivers(queues);
    }

    /// One target per Alertmanager URL, or the webhook; queues reused by key.
    fn targets(
        &self,
        rc: &ReceiverConfig,
        forgotten: &Forgotten,
        queues: &mut HashMap<String, Arc<Queue>>,
    ) -> Vec<Target> {
        let instance = rc.instance.clone().unwrap_or_else(|| self.host.clone());
        let http = match http_of(rc, &self.env) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(receiver = %rc.name, error = %e, "Cannot build the receiver; its notifications are dropped until a reload fixes it.");
                return Vec::new();
            }
        };
        let sinks: Vec<(String, Result<Sink, String>)> = match rc.kind {
            ReceiverKind::Alertmanager => rc
                .urls
                .iter()
                .map(|u| {
                    let sink = Alertmanager::new(rc, u, http.clone(), instance.clone())
                        .map(Sink::Alertmanager);
                    (u.clone(), sink)
                })
                .collect(),
            ReceiverKind::Webhook => vec![(
                "url".into(),
                Webhook::new(rc, http.clone(), instance.clone()).map(Sink::Webhook),
            )],
        };
        let mut out = Vec::new();
        for (key, sink) in sinks {
            let sink = match sink {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(receiver = %rc.name, error = %e, "Cannot build the receiver.");
                    continue;
                }
            };
            let queue = queues
                .remove(&key)
                .unwrap_or_else(|| Arc::new(Queue::new(rc.queue_size)));
            queue.set_capacity(rc.queue_size);
            let stop = CancellationToken::new();
            let worker = Worker {
                receiver: rc.name.clone(),
                sink,
                queue: queue.clone(),
                stats: self.stats.clone(),
                snapshot: self.snapshot.clone(),
                min_status: rc.min_status,
                forgotten: forgotten.clone(),
            };
            tokio::spawn(worker.run(stop.clone()));
            out.push(Target { key, queue, stop });
        }
        out
    }

    fn admin(&mut self, req: Request) -> Response {
        let now = SystemTime::now();
        match req {
            Request::Start { seconds, checks } => {
                // The health loop's snapshot knows the configured checks (no copy here).
                let snap = self.snapshot.load();
                if let Some(c) = checks
                    .iter()
                    .find(|c| snap.check(c).is_none_or(|v| v.builtin))
                {
                    return Response::error(format!("unknown check \"{c}\""));
                }
                if seconds == 0 {
                    return Response::error("--for must be greater than zero".into());
                }
                self.maintenance
                    .start(Duration::from_secs(seconds), checks, now);
            }
            Request::Stop => {
                if !self.maintenance.stop() {
                    return Response::error(
                        "no maintenance started by healthd maintenance start".into(),
                    );
                }
            }
            Request::Status => {}
        }
        Response::status(self.maintenance.open(now))
    }
}

/// Queue a notice on every target of a receiver; count what was dropped or collapsed.
fn enqueue(stats: &Stats, rc: &ReceiverConfig, targets: &[Target], n: Notice) {
    for t in targets {
        match t.queue.push(n.clone()) {
            Pushed::Queued => {}
            Pushed::Merged { collapsed } => {
                if collapsed > 0 {
                    tracing::info!(receiver = %rc.name, check = %n.check, event = n.event(), "Notification collapsed into the one waiting for delivery.");
                }
                stats.add(&rc.name, Counted::Collapsed, collapsed);
            }
            Pushed::Dropped if n.counts() => {
                tracing::warn!(receiver = %rc.name, check = %n.check, event = n.event(), "Notification dropped: the receiver's queue is full.");
                stats.add(&rc.name, Counted::Dropped, 1);
            }
            Pushed::Dropped => {}
        }
    }
}

/// Pending notices of a target that no longer exists.
fn drop_pending(stats: &Stats, receiver: &str, queues: impl Iterator<Item = Arc<Queue>>) {
    for q in queues {
        let n = q.len() as u64;
        if n > 0 {
            tracing::warn!(receiver = %receiver, pending = n, "Receiver or URL removed by a reload; its pending notifications are dropped.");
            stats.add(receiver, Counted::Dropped, n);
        }
    }
}

/// Alertmanager's keep-alive of an alert it was sent.
fn resend(v: &CheckView, told: crate::model::Status, since: SystemTime, now: SystemTime) -> Notice {
    Notice {
        check: v.name.clone(),
        kind: v.kind,
        groups: v.groups.clone(),
        critical: v.critical,
        from: told,
        to: v.status,
        was_firing: true,
        firing: true,
        cause: Cause::Resend,
        flapping: v.flapping,
        reason: v.reason,
        message: v.message.clone(),
        since,
        at: now,
    }
}
