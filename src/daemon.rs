//! `healthd run`: build everything from the config, serve, reload on SIGHUP, drain on
//! SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigError, Sources};
use crate::health::{Event, HealthHandle, HealthLoop, Policy, ReloadInfo};
use crate::model::{Reason, Status};
use crate::scheduler::Scheduler;
use crate::server::{self, AppState, ServerOptions};

/// Bound on waiting for check tasks and open requests at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Name of the self-check that reports a failed reload.
pub const CONFIG_CHECK: &str = "config";

/// Why the daemon did not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration ({} problems)", .0.len())]
    Config(Vec<ConfigError>),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot start the probe endpoints' runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    OpenFiles(String),
}

/// A running daemon's parts, for the lifecycle below and for tests.
pub struct Daemon {
    pub state: AppState,
    pub health: HealthHandle,
    /// The history store, its writer's counters and the uptime/SLO view.
    pub history: crate::history::History,
    pub local_addr: SocketAddr,
    /// Where `[server.grpc]` listens, when it is on.
    pub grpc_addr: Option<SocketAddr>,
    scheduler: Scheduler,
    config: Config,
    sources: Sources,
    listen_override: Option<SocketAddr>,
    cancel: CancellationToken,
    server_stop: CancellationToken,
    server_task: tokio::task::JoinHandle<()>,
    grpc_task: Option<tokio::task::JoinHandle<()>>,
    /// The probe lane's runtime; stopped when the daemon is dropped.
    _probe_runtime: server::lane::ProbeRuntime,
    health_task: tokio::task::JoinHandle<()>,
    history_task: tokio::task::JoinHandle<()>,
    telemetry: Option<crate::telemetry::otlp::Telemetry>,
    pub notifier: crate::notify::Notifier,
    host: Option<crate::host::Collector>,
}

impl Daemon {
    /// Load the config, bind the listener, start the health loop and every check.
    pub async fn start(
        sources: Sources,
        listen_override: Option<SocketAddr>,
    ) -> Result<Daemon, RunError> {
        let config = config::load(&sources).map_err(RunError::Config)?;
        if let Some(limit) = crate::descriptors::limit()
            && let Some(warning) =
                config::open_files::check(&config, limit).map_err(RunError::OpenFiles)?
        {
            tracing::warn!(problem = %warning, "Too few file descriptors for every probe at once.");
        }
        let cancel = CancellationToken::new();
        let (health_loop, health) = HealthLoop::new(8192);
        let health_run = health_loop.run(cancel.child_token());
        let health_task = match crate::systemd::test_stall_hook() {
            // Test-only (HEALTHD_TEST_STALL_ON_SIGUSR2=1): SIGUSR2 freezes the loop.
            Some(stall) => tokio::spawn(crate::systemd::stallable(health_run, stall)),
            None => tokio::spawn(health_run),
        };
        let notifier = crate::notify::Notifier::start(
            &config,
            &health,
            sources.environment(),
            cancel.child_token(),
        )
        .await;
        let (history, history_task) =
            crate::history::History::start(&config, &health, cancel.child_token());
        let state = AppState::new(
            health.snapshot.clone(),
            Policy::of(&config),
            ServerOptions::of(&config),
        )
        .with_events(health.events.clone())
        .with_metrics(Arc::new(notifier.metrics()));
        let state = if config.history.enabled {
            state.with_history(history.clone())
        } else {
            state
        };
        let addr = listen_override.unwrap_or(config.server.listen);
        let listener =
            server::accept::listen(addr).map_err(|source| RunError::Listen { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| RunError::Listen { addr, source })?;
        let server_stop = CancellationToken::new();
        let app = server::router(state.clone());
        let tls = match &config.server.tls {
            Some(t) => Some(Arc::new(
                server::tls::TlsReloader::new(t.clone()).map_err(RunError::Tls)?,
            )),
            None => None,
        };
        // The reserved lane: accepting, the probe endpoints and gRPC health run on threads
        // of their own, which heavy requests never occupy.
        let probe_runtime = server::lane::ProbeRuntime::start().map_err(RunError::Runtime)?;
        let edge = server::accept::Edge {
            lanes: server::lane::Lanes {
                probe: probe_runtime.handle().clone(),
                main: tokio::runtime::Handle::current(),
            },
            verdicts: state.verdicts.clone(),
            shed: state.shed.clone(),
        };
        let listener = listener
            .into_std()
            .map_err(|source| RunError::Listen { addr, source })?;
        let server_task = probe_runtime.handle().spawn(server::accept::serve(
            listener,
            app,
            edge,
            tls,
            config.server.limits.clone(),
            server_stop.clone(),
        ));
        tracing::info!(address = %local_addr, checks = config.checks.len(), "Listening.");
        let mut grpc_addr = None;
        let grpc_task = match &config.server.grpc {
            None => None,
            Some(g) => {
                let listener =
                    server::accept::listen(g.listen).map_err(|source| RunError::Listen {
                        addr: g.listen,
                        source,
                    })?;
                let addr = listener.local_addr().unwrap_or(g.listen);
                grpc_addr = Some(addr);
                tracing::info!(address = %addr, "Serving grpc.health.v1.");
                let listener = listener.into_std().map_err(|source| RunError::Listen {
                    addr: g.listen,
                    source,
                })?;
                Some(probe_runtime.handle().spawn(server::grpc::serve(
                    listener,
                    state.verdicts.clone(),
                    g.max_watchers,
                    server_stop.clone(),
                )))
            }
        };
        let mut scheduler = Scheduler::new(
            health.events.clone(),
            cancel.child_token(),
            config.server.max_in_flight,
        );
        scheduler.apply(&config.checks).await;
        let _ = health.events.send(dependencies(&config)).await;
        let host = crate::host::Collector::apply(None, config.metrics.host.settings(), &state.host);
        let telemetry = crate::telemetry::otlp::apply(
            None,
            crate::telemetry::otlp::settings_of(&config, &sources.environment()),
            &health,
            &state.host,
        )
        .await;
        if config.history.enabled {
            history_instruments(telemetry.as_ref(), None, &history);
        }
        let _ = health.events.send(config_loaded()).await;
        Ok(Daemon {
            state,
            health,
            history,
            local_addr,
            grpc_addr,
            scheduler,
            config,
            sources,
            listen_override,
            cancel,
            server_stop,
            server_task,
            grpc_task,
            _probe_runtime: probe_runtime,
            health_task,
            history_task,
            telemetry,
            notifier,
            host,
        })
    }

    /// Re-read the config; apply it if valid, otherwise keep the running one and say why.
    pub async fn reload(&mut self) -> Result<(), Vec<ConfigError>> {
        let at = Some(SystemTime::now());
        match config::load(&self.sources) {
            Ok(mut new) => {
                server::push::carry_over(&self.config.checks, &mut new.checks);
                let addr = self.listen_override.unwrap_or(new.server.listen);
                if addr != self.local_addr
                    && self.listen_override.is_none()
                    && new.server.listen != self.config.server.listen
                {
                    tracing::warn!(old = %self.config.server.listen, new = %new.server.listen, "server.listen changed; restart healthd to apply it.");
                }
                if new.server.grpc.as_ref().map(|g| g.listen)
                    != self.config.server.grpc.as_ref().map(|g| g.listen)
                {
                    tracing::warn!("server.grpc changed; restart healthd to apply it.");
                }
                self.scheduler.apply(&new.checks).await;
                self.send(dependencies(&new)).await;
                self.notifier.reconfigure(&new).await;
                self.state.reconfigure(&new);
                self.history.reconfigure(&new);
                let wanted = crate::telemetry::otlp::settings_of(&new, &self.sources.environment());
                let before = self.telemetry.as_ref().map(|t| t.settings().clone());
                self.telemetry = crate::telemetry::otlp::apply(
                    self.telemetry.take(),
                    wanted,
                    &self.health,
                    &self.state.host,
                )
                .await;
                self.host = crate::host::Collector::apply(
                    self.host.take(),
                    new.metrics.host.settings(),
                    &self.state.host,
                );
                if self.history.config.enabled {
                    history_instruments(self.telemetry.as_ref(), before.as_ref(), &self.history);
                }
                tracing::info!(checks = new.checks.len(), "Configuration reloaded.");
                self.config = new;
                // The self-check first: a snapshot that shows this reload shows its verdict.
                self.send(config_loaded()).await;
                self.send(Event::Reloaded(ReloadInfo {
                    at,
                    ok: true,
                    errors: vec![],
                }))
                .await;
                Ok(())
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(file = %e.file, key = %e.key, reason = %e.reason, "Configuration error.");
                }
                tracing::error!(
                    problems = errors.len(),
                    "Reload rejected; the running configuration stays in force."
                );
                let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                let locked = self.state.recheck_secrets(&self.config);
                // The self-check first: a snapshot that shows this reload shows its verdict.
                self.send(Event::SelfCheck {
                    name: CONFIG_CHECK.into(),
                    groups: vec![],
                    status: Status::Degraded,
                    reason: Some(Reason::Config),
                    message: format!(
                        "last reload rejected: {} problem(s); running the previous configuration{}",
                        errors.len(),
                        if locked {
                            "; the auth token file is unreadable: details are denied to everyone"
                        } else {
                            ""
                        }
                    ),
                })
                .await;
                self.send(Event::Reloaded(ReloadInfo {
                    at,
                    ok: false,
                    errors: texts,
                }))
                .await;
                Err(errors)
            }
        }
    }

    async fn send(&self, ev: Event) {
        let _ = self.health.events.send(ev).await;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Report not ready, keep serving for `shutdown_delay`, then stop checks and the server.
    /// `interrupt` (a second signal) exits the process at once, at any point of the drain.
    pub async fn drain(self, interrupt: impl std::future::Future<Output = ()>) {
        self.state.verdicts.start_draining();
        let delay = self.config.server.shutdown_delay;
        tracing::info!(delay = %humantime::format_duration(delay), "Shutting down: readiness now fails; still serving.");
        let stop = async move {
            tokio::time::sleep(delay).await;
            self.scheduler.stop(STOP_GRACE).await;
            if let Some(h) = self.host {
                h.stop();
            }
            self.server_stop.cancel();
            let _ = tokio::time::timeout(STOP_GRACE, self.server_task).await;
            if let Some(grpc) = self.grpc_task {
                let _ = tokio::time::timeout(STOP_GRACE, grpc).await;
            }
            self.notifier.stop();
            // Flush telemetry after the last check results, under its own bound.
            if let Some(t) = self.telemetry {
                t.shutdown().await;
            }
            self.cancel.cancel();
            // The history writer commits what the last runs left pending.
            let _ = tokio::time::timeout(STOP_GRACE, self.history_task).await;
            let _ = tokio::time::timeout(STOP_GRACE, self.health_task).await;
        };
        tokio::select! {
            _ = stop => {}
            _ = interrupt => {
                tracing::warn!("Second signal: exiting at once.");
                std::process::exit(1);
            }
        }
        tracing::info!("Stopped.");
    }
}

/// The `config` self-check after a config was loaded; present from the start, so a later
/// rejected reload shows as a change of this check.
fn config_loaded() -> Event {
    Event::SelfCheck {
        name: CONFIG_CHECK.into(),
        groups: vec![],
        status: Status::Healthy,
        reason: None,
        message: "configuration loaded".into(),
    }
}

/// Each check's `depends_on`, for the health loop's `blocked_by`.
fn dependencies(config: &Config) -> Event {
    Event::Dependencies(
        config
            .checks
            .iter()
            .filter(|c| !c.depends_on.is_empty())
            .map(|c| (c.name.clone(), c.depends_on.clone()))
            .collect(),
    )
}

/// History's OTLP instruments on an exporter that was just started (not on one kept
/// unchanged through a reload: it has them already).
fn history_instruments(
    telemetry: Option<&crate::telemetry::otlp::Telemetry>,
    before: Option<&crate::config::telemetry::ExportSettings>,
    history: &crate::history::History,
) {
    if let Some(t) = telemetry
        && before != Some(t.settings())
    {
        crate::telemetry::history::register_otlp(t.meters(), history);
    }
}

/// Run until SIGTERM/SIGINT, reloading on SIGHUP.
pub async fn run(sources: Sources, listen_override: Option<SocketAddr>) -> Result<(), RunError> {
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    match crate::descriptors::raise_limit() {
        Ok(r) if r.was != r.now => {
            tracing::info!(was = ?r.was, now = ?r.now, "File descriptor limit raised to the hard limit.")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "Cannot raise the file descriptor limit."),
    }
    // Start-up and reloads run on a thread that ends with them (`passing`): the main
    // thread, which polls this loop for the daemon's life, keeps a shallow stack.
    let runtime = tokio::runtime::Handle::current();
    // Boxed on that thread: only a pointer comes back through this future's frame.
    let mut daemon = crate::passing::run("start", || {
        runtime
            .block_on(Daemon::start(sources, listen_override))
            .map(Box::new)
    })?;
    let notifier = crate::systemd::Notifier::ready(daemon.state.verdicts.clone()).await;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration.");
                notifier.reloading();
                let result = crate::passing::run("reload", || runtime.block_on(daemon.reload()));
                notifier.reloaded(&result);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let second = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    notifier.stopping(daemon.config().server.shutdown_delay);
    daemon.drain(second).await;
    drop(notifier);
    Ok(())
}
