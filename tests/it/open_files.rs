//! The open-file limit is checked at start against the configured checks: too low a limit
//! is a clear refusal naming both numbers, not probes failing one by one later.

use std::process::Command;
use std::time::Duration;

use crate::support::config::ConfigDir;
use crate::support::daemon::binary;
use crate::support::{output_text, run_with_timeout};

/// 300 HTTP checks each keep a connection; under `ulimit -n 200` (soft and hard, so healthd
/// cannot raise it) healthd refuses to start and says why.
#[test]
fn too_low_an_open_file_limit_is_refused_at_start() {
    let dir = ConfigDir::new("");
    dir.drop_in(
        "web.toml",
        &many(300, "web", "http", "url = \"http://127.0.0.1:9/\""),
    );
    let run = |limit: u32| {
        let script = format!(
            "ulimit -n {limit} && exec \"$0\" --log-level error run --config \"$1\" --probes-dir \"$2\" --listen 127.0.0.1:0"
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(binary())
            .arg(dir.path())
            .arg(dir.probes_dir());
        cmd
    };
    let out = run_with_timeout(&mut run(200), Duration::from_secs(30)).expect("healthd ran");
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the open-file limit (RLIMIT_NOFILE) is 200"),
        "{text}"
    );
    assert!(
        text.contains("300 checks need up to 364 descriptors (300 kept connections, 0 probes"),
        "{text}"
    );
    assert!(text.contains("LimitNOFILE="), "{text}");
}

/// Kept connections count in full; the other checks only up to `max_in_flight` (100,000 TCP
/// checks every minute need no more descriptors than 512 do). Only kept connections that
/// cannot fit refuse the start; probes that may lack a descriptor at times are a warning.
#[test]
fn the_limit_covers_kept_connections_and_the_bulkhead() {
    use healthd::config::open_files::{check, needed};
    let dir = ConfigDir::new("[server]\nmax_in_flight = 100\n");
    let tcp = many(2000, "tcp", "tcp", "host = \"127.0.0.1\"\nport = 9");
    dir.drop_in("tcp.toml", &tcp);
    let web = many(10, "web", "http", "url = \"http://127.0.0.1:9/\"");
    dir.drop_in("web.toml", &web);
    let cfg = dir.load().expect("a valid config");
    let n = needed(&cfg);
    assert_eq!((n.kept, n.in_flight, n.total), (10, 100, 174));
    // Three quarters of the limit are the checks'; client connections may take the rest.
    assert_eq!(check(&cfg, 232), Ok(None));
    // Too few for every probe at once: a warning (such runs are not counted against checks).
    let warning = check(&cfg, 230).unwrap().expect("a warning");
    assert!(
        warning.starts_with(
            "the open-file limit (RLIMIT_NOFILE) is 230, but 2010 checks need up to 174"
        ),
        "{warning}"
    );
    // Too few for the kept connections alone: refused.
    let err = check(&cfg, 12).unwrap_err();
    assert!(
        err.contains("(10 kept connections, 100 probes at once"),
        "{err}"
    );
}

/// `n` checks of one kind, named `prefix-0` …, each with `settings`.
fn many(n: usize, prefix: &str, kind: &str, settings: &str) -> String {
    (0..n)
        .map(|i| format!("[[checks]]\nname = \"{prefix}-{i}\"\nkind = \"{kind}\"\n{settings}\n\n"))
        .collect()
}
