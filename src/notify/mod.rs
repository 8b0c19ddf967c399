//! Notifications: telling people (through Alertmanager or webhooks) when a check's
//! thresholded status changes, the same status the endpoints show.
//!
//! - [`router`]: one task following the snapshot, woken by the health loop's status changes;
//!   it owns the receivers, maintenance and the admin commands;
//! - [`judge`]: what one receiver is to be told (filters, flapping, reminders, dependencies,
//!   maintenance), decided against what it was told before;
//! - [`notice`], [`queue`]: a notice, and a bounded per-target queue in which a newer notice
//!   about a check merges into a waiting one;
//! - [`deliver`]: one worker per target, with retries and the collapse of stale notices;
//!   [`alertmanager`] and [`webhook`] are the two wire formats;
//! - [`stats`]: `healthd_notifications_total` for `/metrics`;
//! - [`maintenance`], [`admin`]: maintenance windows at run time and the socket
//!   `healthd maintenance` talks to.

pub mod admin;
pub mod alertmanager;
pub mod deliver;
pub mod judge;
pub mod maintenance;
pub mod notice;
pub mod queue;
pub mod router;
pub mod stats;
pub mod webhook;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::HealthHandle;

/// The running notifier.
pub struct Notifier {
    commands: mpsc::Sender<router::Command>,
    stats: Arc<stats::Stats>,
    cancel: CancellationToken,
    admin: Option<admin::AdminSocket>,
    admin_path: Option<PathBuf>,
}

impl Notifier {
    /// Start the router with the config's receivers, and the admin socket if there is one.
    /// `env` is the environment the config was resolved against (header secrets).
    pub async fn start(
        config: &Config,
        health: &HealthHandle,
        env: HashMap<String, String>,
        cancel: CancellationToken,
    ) -> Notifier {
        let stats = Arc::new(stats::Stats::default());
        let (commands, rx) = mpsc::channel(64);
        let admin_path = admin_socket(config, &env);
        let router = router::Router::new(health.snapshot.clone(), stats.clone(), env);
        tokio::spawn(router.run(rx, health.changes.subscribe(), cancel.clone()));
        let n = Notifier {
            commands,
            stats,
            cancel,
            admin: None,
            admin_path: None,
        };
        n.reconfigure(config).await;
        n.with_admin(admin_path)
    }

    fn with_admin(mut self, path: Option<PathBuf>) -> Notifier {
        if let Some(p) = &path {
            match admin::serve(p, self.commands.clone()) {
                Ok(s) => {
                    tracing::info!(socket = %p.display(), "Admin socket listening (healthd maintenance).");
                    self.admin = Some(s);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "No admin socket: healthd maintenance cannot reach this daemon.")
                }
            }
        }
        self.admin_path = path;
        self
    }

    /// Apply a reloaded config (receivers keep their pending notices).
    pub async fn reconfigure(&self, config: &Config) {
        if self.admin_path.is_some()
            && config.admin.socket.is_some()
            && config.admin.socket != self.admin_path
        {
            tracing::warn!("admin.socket changed; restart healthd to apply it.");
        }
        let _ = self
            .commands
            .send(router::Command::Reconfigure(Box::new(config.clone())))
            .await;
    }

    /// The notification counters, for `/metrics`.
    pub fn metrics(&self) -> stats::Metrics {
        stats::Metrics(self.stats.clone())
    }

    pub fn stats(&self) -> &Arc<stats::Stats> {
        &self.stats
    }

    /// Stop the router and the workers (pending notices are not sent: a restart
    /// re-announces what is still failing) and remove the admin socket.
    pub fn stop(mut self) {
        self.cancel.cancel();
        self.admin.take();
    }
}

/// `[admin] socket`, else `$RUNTIME_DIRECTORY/admin.sock` under systemd's
/// `RuntimeDirectory=`, else none.
fn admin_socket(config: &Config, env: &HashMap<String, String>) -> Option<PathBuf> {
    config.admin.socket.clone().or_else(|| {
        env.get("RUNTIME_DIRECTORY")
            .and_then(|d| d.split(':').next())
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("admin.sock"))
    })
}
