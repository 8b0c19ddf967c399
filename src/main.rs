//! The `healthd` command: `run`, `check`, `validate`, `lint`, `maintenance`, `report`,
//! `rules`, `history prune`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use healthd::config::{self, ConfigError, Sources};
use healthd::model::Status;

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
    /// Open or close a maintenance window on the running daemon (nothing notifies meanwhile).
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
        /// The daemon's admin socket [default: [admin] socket of --config, else /run/healthd/admin.sock]
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Main config file, read for its [admin] socket only
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Find probe mistakes in the config and a Kubernetes manifest; exit 1 on any error.
    Lint {
        #[command(flatten)]
        config: ConfigArgs,
        /// A Pod, Deployment, StatefulSet or DaemonSet manifest (YAML, several documents allowed).
        #[arg(long)]
        pod: Option<PathBuf>,
        /// Count warnings as errors.
        #[arg(long)]
        strict: bool,
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
enum MaintenanceAction {
    /// Open a window now, for a while (replaces one opened before).
    Start {
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for", value_parser = healthd::model::parse_duration)]
        length: std::time::Duration,
        /// Only these checks (comma-separated or repeated) [default: all]
        #[arg(long, value_delimiter = ',')]
        checks: Vec<String>,
    },
    /// Close the window opened by start.
    Stop,
    /// Show the windows open now.
    Status,
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

/// Exit code of `check` when its status is unknown, usage errors included (Nagios plugins
/// exit 3 on a usage error: 2 would read as "unhealthy").
const EXIT_UNKNOWN: u8 = 3;

/// Most async worker threads: probes wait on the network, not on the CPU, and every worker
/// costs its stack and its allocator arena; a many-core host gets no more than this.
const MAX_WORKERS: usize = 4;

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

fn main() -> ExitCode {
    // Everything before the command runs on a thread that ends with it (healthd::passing):
    // clap builds its whole command tree on the stack, and the main thread, which polls a
    // running daemon for its whole life, would keep those pages resident.
    let (runtime, command) = match healthd::passing::run("setup", prepare) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    match command {
        // Boxed: the daemon's future lives on the heap, not in the main thread's frame.
        Command::Run { config, listen } => {
            runtime.block_on(Box::pin(run(config.sources(), listen)))
        }
        command => other(&runtime, command),
    }
}

/// Read the command line, then set up logging, TLS and the async runtime for the command.
fn prepare() -> Result<(tokio::runtime::Runtime, Command), ExitCode> {
    let cli = Cli::try_parse().map_err(|e| usage_error(&e))?;
    if matches!(cli.command, Command::Run { .. }) {
        // Before the runtime's threads exist (the main thread only waits for this one):
        // returns only when nothing was to be done.
        healthd::allocator::reexec_with_one_arena();
    }
    init_logging(cli.log_level.as_deref(), cli.log_format);
    // One process-wide TLS provider, before anything builds a TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .enable_all()
        .build()
    {
        Ok(runtime) => Ok((runtime, cli.command)),
        Err(e) => {
            eprintln!("healthd: cannot start the async runtime: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Every command but `run`, in a frame of its own: their futures never sit on the stack of
/// a running daemon.
#[inline(never)]
fn other(runtime: &tokio::runtime::Runtime, command: Command) -> ExitCode {
    runtime.block_on(async {
        match command {
            Command::Run { .. } => unreachable!("run is started by main"),
            Command::Check { config, format } => check(config.sources(), format).await,
            Command::Validate { config } => validate(config.sources()),
            Command::Maintenance {
                action,
                socket,
                config,
            } => maintenance(action, socket, config).await,
            Command::Lint {
                config,
                pod,
                strict,
            } => lint(config, pod, strict),
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

/// Print clap's message for a usage error (or help and version) and exit with its code,
/// except that `healthd check` exits 3 (unknown) on a usage error.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    // Help and version exit 0; `healthd` without a command is a usage error of no command.
    if code == 0 || subcommand_named().as_deref() != Some("check") {
        return ExitCode::from(code);
    }
    ExitCode::from(EXIT_UNKNOWN)
}

/// The command a failed command line was meant for, read leniently.
fn subcommand_named() -> Option<String> {
    use clap::CommandFactory;
    Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(std::env::args_os())
        .ok()
        .and_then(|m| m.subcommand_name().map(str::to_string))
}

fn init_logging(level: Option<&str>, format: LogFormat) {
    let format = match format {
        LogFormat::Plain => healthd::logging::Format::Plain,
        LogFormat::Json => healthd::logging::Format::Json,
    };
    healthd::logging::init(healthd::logging::filter(level), format);
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
        healthd::logging::print_error(&format!("error: {e}"));
    }
    healthd::logging::print_error(&format!("{} configuration problem(s)", errors.len()));
}

async fn run(sources: Sources, listen: Option<SocketAddr>) -> ExitCode {
    match healthd::daemon::run(sources, listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(healthd::daemon::RunError::Config(errors)) => {
            print_errors(&errors);
            healthd::logging::print_error(
                "healthd: not starting: fix the configuration (healthd validate shows the same list)",
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

async fn maintenance(
    action: MaintenanceAction,
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
) -> ExitCode {
    use healthd::notify::admin::{self, Request};
    let path = match admin::socket_path(socket, config.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healthd maintenance: {e}");
            return ExitCode::from(2);
        }
    };
    let request = match action {
        MaintenanceAction::Start { length, checks } => Request::Start {
            seconds: length.as_secs().max(1),
            checks,
        },
        MaintenanceAction::Stop => Request::Stop,
        MaintenanceAction::Status => Request::Status,
    };
    match admin::request(&path, &request).await {
        Ok(r) => ExitCode::from(admin::print(&r)),
        Err(e) => {
            eprintln!("healthd maintenance: {e}");
            ExitCode::from(2)
        }
    }
}

/// Nagios plugin exit codes.
fn exit_code(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unhealthy => 2,
        Status::Unknown => EXIT_UNKNOWN,
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
    let json = matches!(format, OutputFormat::Json);
    let (out, overall) = healthd::scheduler::once::report(&cfg, json).await;
    print!("{out}");
    ExitCode::from(exit_code(overall))
}

fn lint(config: ConfigArgs, pod: Option<PathBuf>, strict: bool) -> ExitCode {
    let report = healthd::lint::run(&healthd::lint::Options {
        config: config.config,
        probes_dir: config.probes_dir,
        pod,
        strict,
    });
    print!("{}", report.render());
    ExitCode::from(report.exit_code())
}
