//! healthd's memory: every probe run and status change kept in an embedded store, rolled up
//! into minute, hour and day buckets, and the uptime and SLO arithmetic on top of them.
//!
//! It sits above `health` (it reads the health loop's `runs` and `changes` fan-outs) and
//! below the renderers (`telemetry`, `server`), which read the published [`HistoryView`].
//!
//! - [`record`]: what is stored (raw results, buckets, status changes) and the resolutions;
//! - [`store`]: the redb file (or memory), its tables and retention; `reader`: one
//!   consistent view and its queries; `memory`: the in-memory store's tables, each check's
//!   rows encoded in a `log`;
//! - [`writer`]: the batched, lossy-but-counted writer off the probe path, and `commit`,
//!   its transactions (minute buckets every batch, hours and days rolled up per minute);
//! - [`slo`]: the pure SLO arithmetic (availability, budget, burn rates, alert policy);
//! - [`view`]: the figures the renderers read, refreshed in the background;
//! - [`query`]: the history API's and the report's reads; [`report`]: `healthd report`;
//! - [`rules`]: `healthd rules` (Prometheus recording and alerting rules);
//! - [`cli`]: the history subcommands' glue;
//! - [`seed`]: history laid down directly (tests, the benchmark);
//! - [`resume`]: the trailing results a restart resumes the thresholds from;

pub mod cli;
mod commit;
mod limit;
mod log;
mod memory;
pub mod query;
mod reader;
pub mod record;
pub mod report;
pub mod resume;
pub mod rules;
pub mod seed;
pub mod slo;
pub mod store;
pub mod view;
pub mod writer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

pub use store::{Store, StoreError};
pub use view::{CheckHistory, HistoryView, Target};
pub use writer::{Jobs, WriterStats};

use crate::config::{Config, DegradeOn, HistoryConfig};
use crate::health::HealthHandle;

/// The checks the view covers, with their SLOs (swapped on reload).
type Targets = Arc<ArcSwap<Vec<Target>>>;

/// A running history: the store, the writer's counters and the published view.
#[derive(Clone)]
pub struct History {
    pub store: Arc<Store>,
    pub view: Arc<ArcSwap<HistoryView>>,
    pub stats: Arc<WriterStats>,
    pub config: HistoryConfig,
    targets: Targets,
    /// Where `degrade_on = "page"` is told (the health loop), and what it was told last.
    events: tokio::sync::mpsc::Sender<crate::health::Event>,
    paging: Arc<std::sync::Mutex<BTreeSet<String>>>,
    /// The history thread, which refreshes the view (the writer commits there too).
    jobs: Jobs,
}

/// The configured checks with their SLOs, sorted by name (as the view is).
fn targets_of(config: &Config) -> Vec<Target> {
    let mut targets: Vec<Target> = config
        .checks
        .iter()
        .map(|c| (Arc::from(c.name.as_str()), c.slo.clone().map(Box::new)))
        .collect();
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    targets
}

impl History {
    /// Open the configured store (in memory when `[history] path` is unset, or when the
    /// file cannot be opened: then an error is logged and history is not kept across
    /// restarts), and start the writer and the view's refresh.
    /// The returned task ends after the writer's last commit, once `cancel` fires. With
    /// `[history] enabled = false` nothing is started (the store stays empty).
    pub fn start(
        config: &Config,
        health: &HealthHandle,
        cancel: CancellationToken,
    ) -> (History, tokio::task::JoinHandle<()>) {
        let opened = if config.history.enabled {
            Store::of(&config.history)
        } else {
            Ok(Store::memory())
        };
        let store = match opened {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "Cannot open the history store; keeping history in memory.");
                Store::memory()
            }
        };
        match &store.path {
            _ if !config.history.enabled => {
                tracing::info!("History off ([history] enabled = false).")
            }
            Some(p) => tracing::info!(path = %p.display(), "History store opened."),
            None => tracing::info!("History kept in memory ([history] path not set)."),
        }
        let history = History {
            store: Arc::new(store),
            view: Arc::new(ArcSwap::from_pointee(HistoryView::default())),
            stats: Arc::new(WriterStats::default()),
            config: config.history.clone(),
            targets: Arc::new(ArcSwap::from_pointee(targets_of(config))),
            events: health.events.clone(),
            paging: Arc::default(),
            jobs: Jobs::closed(),
        };
        if !config.history.enabled {
            return (history, tokio::spawn(async {}));
        }
        history.resume(config);
        let (writer, jobs) = writer::spawn(
            history.store.clone(),
            history.config.clone(),
            health,
            history.stats.clone(),
            cancel.clone(),
        );
        let history = History { jobs, ..history };
        tokio::spawn(history.clone().refresh_loop(cancel));
        (history, writer)
    }

    /// Tell the health loop, before the scheduler's first `Reconfigure`, where each check's
    /// thresholds stopped (see [`resume`]).
    fn resume(&self, config: &Config) {
        let past = self
            .store
            .read()
            .and_then(|r| resume::trailing(&r, &config.checks, SystemTime::now()));
        match past {
            Ok(past) if past.is_empty() => {}
            Ok(past) => {
                tracing::info!(
                    checks = past.len(),
                    "Failure and success counters resumed from history."
                );
                let _ = self.events.try_send(crate::health::Event::Resume(past));
            }
            Err(e) => tracing::warn!(error = %e, "Cannot read history to resume the counters."),
        }
    }

    /// After a reload: the checks and SLOs the view covers. History is kept by name, so a
    /// check whose name is unchanged keeps it; `[history]` itself needs a restart.
    pub fn reconfigure(&self, config: &Config) {
        if config.history != self.config {
            tracing::warn!("[history] changed; restart healthd to apply it.");
        }
        self.targets.store(Arc::new(targets_of(config)));
    }

    /// Recompute the view now (also done every [`view::REFRESH_EVERY`]), on the history
    /// thread.
    pub async fn refresh(&self) {
        let me = self.clone();
        self.jobs
            .call(move || {
                let targets = me.targets.load_full();
                let computed = me
                    .store
                    .read()
                    .and_then(|r| view::compute(&r, &targets, SystemTime::now()));
                match computed {
                    Ok(v) => {
                        me.tell_paging(&targets, &v);
                        me.view.store(Arc::new(v));
                    }
                    Err(e) => tracing::warn!(error = %e, "Cannot compute uptime and SLOs."),
                }
            })
            .await;
    }

    /// Tell the health loop which `degrade_on = "page"` checks page now, when that changed
    /// (never waiting: a full queue retries at the next refresh).
    fn tell_paging(&self, targets: &[Target], view: &HistoryView) {
        let set: BTreeSet<String> = targets
            .iter()
            .filter(|(_, slo)| {
                slo.as_ref()
                    .is_some_and(|s| s.degrade_on == Some(DegradeOn::Page))
            })
            .filter(|(name, _)| {
                view.get(name)
                    .and_then(|h| h.slo.as_ref())
                    .is_some_and(|s| s.alert.page)
            })
            .map(|(name, _)| name.to_string())
            .collect();
        let mut last = self.paging.lock().unwrap_or_else(|e| e.into_inner());
        if *last != set
            && self
                .events
                .try_send(crate::health::Event::SloPaging(set.clone()))
                .is_ok()
        {
            *last = set;
        }
    }

    async fn refresh_loop(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(view::REFRESH_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => self.refresh().await,
            }
        }
    }
}
