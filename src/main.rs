//! The `healthd` command: `run`, `check`, `validate`, `report`, `rules`, `history prune`.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use healthd::config::{self, ConfigError, Sources};
use healthd::model::{Status, fmt_latency};
use healthd::scheduler::{run_all_once, status_of};

/// Exit code of `run` on a config error (EX_CONFIG from sysexits.h), so systemd can be told
/// not to restart in a loop on it.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "healthd",
    version,
    about = "Health-check and system-metrics daemon"
)]
struct Cli {
    /// Log level or filter (e.g. `info`, `debug`, `healthd=debug`); RUST_LOG also works.
    #[arg(long, global = true, env = "HEALTHD_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "HEALTHD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Main config file [default: /etc/healthd/healthd.toml if it exists, else the embedded default]
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Directory of drop-in check files [default: probes.d next to the config file]
    #[arg(long)]
    probes_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn sources(&self) -> Sources {
        Sources {
            config: self.config.clone(),
            probes_dir: self.probes_dir.clone(),
            env: None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: schedule checks and serve the endpoints.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Listen address, overriding server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run every check once and print the results; exit 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Check the configuration and report every problem; exit 1 if there are any.
    Validate {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Availability, SLOs, latency, incidents and time without data, from the history store.
    Report {
        #[command(flatten)]
        config: ConfigArgs,
        /// The period, ending now (e.g. `24h`, `7d`, `30d`).
        #[arg(long, default_value = "7d", value_parser = healthd::model::parse_duration)]
        since: std::time::Duration,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Print Prometheus recording and alerting rules for every check with an SLO.
    Rules {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Maintain the history store.
    History {
        #[command(subcommand)]
        action: HistoryAction,
    },
}

#[derive(Subcommand)]
enum HistoryAction {
    /// Apply retention now and delete the history of checks no longer configured.
    Prune {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref(), cli.log_format);
    // One process-wide TLS provider, before anything builds a TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("healthd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run { config, listen } => run(config.sources(), listen).await,
            Command::Check { config, format } => check(config.sources(), format).await,
            Command::Validate { config } => validate(config.sources()),
            Command::Report {
                config,
                since,
                format,
            } => {
                use healthd::history::cli::Format;
                let format = match format {
                    ReportFormat::Text => Format::Text,
                    ReportFormat::Json => Format::Json,
                    ReportFormat::Csv => Format::Csv,
                };
                printed(healthd::history::cli::report(
                    &config.sources(),
                    since,
                    format,
                ))
            }
            Command::Rules { config } => printed(healthd::history::rules::cli(&config.sources())),
            Command::History {
                action: HistoryAction::Prune { config },
            } => printed(healthd::history::cli::prune(&config.sources())),
        }
    })
}

fn init_logging(level: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let mut filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // The OpenTelemetry SDK logs every failed export; healthd logs them rate-limited itself.
    // Naming `opentelemetry` in the filter (e.g. `info,opentelemetry=debug`) shows them.
    let spec = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_default();
    if !spec.contains("opentelemetry")
        && let Ok(d) = "opentelemetry=off".parse()
    {
        filter = filter.add_directive(d);
    }
    // The HTTP client's own debug and trace lines print connection-pool keys (scheme and
    // authority): kept out unless named, so no URL with userinfo can reach the log.
    for client in ["hyper_util", "reqwest"] {
        if !spec.contains(client)
            && let Ok(d) = format!("{client}=info").parse()
        {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Plain => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Print a subcommand's output (exit 0) or its error (exit 1).
fn printed(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("healthd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} configuration problem(s)", errors.len());
}

async fn run(sources: Sources, listen: Option<SocketAddr>) -> ExitCode {
    match healthd::daemon::run(sources, listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(healthd::daemon::RunError::Config(errors)) => {
            print_errors(&errors);
            eprintln!(
                "healthd: not starting: fix the configuration (healthd validate shows the same list)"
            );
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot start.");
            ExitCode::FAILURE
        }
    }
}

fn validate(sources: Sources) -> ExitCode {
    match config::load(&sources) {
        Ok(cfg) => {
            let mut files: Vec<&String> = cfg.origins.values().collect();
            files.sort();
            files.dedup();
            println!(
                "ok: {} check(s), listening on {} ({})",
                cfg.checks.len(),
                cfg.server.listen,
                if files.is_empty() {
                    "no checks".to_string()
                } else {
                    files
                        .iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(&errors);
            ExitCode::FAILURE
        }
    }
}

/// Nagios plugin exit codes.
fn exit_code(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unhealthy => 2,
        Status::Unknown => 3,
    }
}

async fn check(sources: Sources, format: OutputFormat) -> ExitCode {
    let cfg = match config::load(&sources) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(exit_code(Status::Unknown));
        }
    };
    let results = run_all_once(&cfg.checks, cfg.server.max_in_flight).await;
    let statuses: Vec<Status> = cfg
        .checks
        .iter()
        .zip(&results)
        .map(|(c, (o, _))| status_of(o, c.critical))
        .collect();
    let overall = if cfg.checks.is_empty() {
        Status::Unknown
    } else {
        statuses.iter().fold(Status::Healthy, |a, b| a.worst(*b))
    };
    match format {
        OutputFormat::Json => {
            let checks: Vec<serde_json::Value> = cfg
                .checks
                .iter()
                .zip(&results)
                .zip(&statuses)
                .map(|((c, (o, latency)), s)| {
                    serde_json::json!({
                        "name": c.name,
                        "kind": c.kind(),
                        "status": s,
                        "critical": c.critical,
                        "latency_ms": (latency.as_secs_f64() * 1e6).round() / 1000.0,
                        "reason": o.reason,
                        "message": o.message,
                        "details": o.details,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "status": overall, "checks": checks })
            );
        }
        OutputFormat::Text => {
            let rows: Vec<[String; 6]> = cfg
                .checks
                .iter()
                .zip(&results)
                .zip(&statuses)
                .map(|((c, (o, latency)), s)| {
                    [
                        c.name.clone(),
                        c.kind().to_string(),
                        s.as_str().to_string(),
                        fmt_latency(*latency),
                        o.reason.map(|r| r.as_str()).unwrap_or("-").to_string(),
                        o.message.clone(),
                    ]
                })
                .collect();
            let header =
                ["NAME", "KIND", "STATUS", "LATENCY", "REASON", "MESSAGE"].map(String::from);
            let mut widths = [0usize; 6];
            for row in std::iter::once(&header).chain(&rows) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    if i == 5 {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                    }
                }
                println!("{}", line.trim_end());
            }
            println!("overall: {}", overall.as_str());
        }
    }
    ExitCode::from(exit_code(overall))
}
