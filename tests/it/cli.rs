//! The `healthd` binary as a subprocess: `validate`, `check` (exit codes and output), `run`
//! refusing a bad config, `--version`, and a real `run` answering on its socket and exiting
//! cleanly on SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::config::{ConfigDir, kinds_list};
use crate::support::daemon::{Subprocess, http_get};
use crate::support::peers::{RefusingPort, live_port};
use crate::support::{eventually, free_port, repo_path, run_with_timeout, send_signal};

const LIMIT: Duration = Duration::from_secs(30);

/// The binary with no HEALTHD_* / RUST_LOG from the test's own environment.
fn healthd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_healthd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HEALTHD_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    run_with_timeout(cmd, LIMIT).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("healthd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn tcp(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n"
    )
}

#[test]
fn version() {
    let out = run(healthd().arg("--version"));
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("healthd {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn validate_ok() {
    let dir = tempfile::tempdir().unwrap();
    let port = live_port();
    let cfg = write_config(dir.path(), &tcp("api", port, ""));
    // The CLI's own variables are not mistaken for config overrides.
    let out = run(healthd()
        .env("HEALTHD_LOG_LEVEL", "debug")
        .env("HEALTHD_LOG_FORMAT", "json")
        .args(["validate", "--config"])
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ok: 1 check(s), listening on 127.0.0.1:9750 ({})\n",
            cfg.display()
        )
    );
}

#[test]
fn validate_prints_every_error_of_every_fixture() {
    let fixtures = repo_path("tests/fixtures");
    let mut checked = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(name) = file.strip_prefix("invalid-").map(|_| {
            file.strip_suffix(".toml")
                .map(str::to_string)
                .unwrap_or_else(|| file.clone())
        }) else {
            continue;
        };
        if !(path.is_dir() || file.ends_with(".toml")) {
            continue;
        }
        let config = if path.is_dir() {
            path.join("healthd.toml")
        } else {
            path.clone()
        };
        let expected = std::fs::read_to_string(fixtures.join(format!("{name}.expected")))
            .unwrap()
            .replace("$FIXTURES", &fixtures.display().to_string())
            .replace("$KINDS", &kinds_list());
        let mut cmd = healthd();
        cmd.args(["validate", "--config"]).arg(&config);
        if let Ok(env) = std::fs::read_to_string(fixtures.join(format!("{name}.env"))) {
            for line in env.lines().filter(|l| !l.is_empty()) {
                let (k, v) = line.split_once('=').unwrap();
                cmd.env(k, v);
            }
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(text(&out.stderr), expected, "{name}");
        assert_eq!(text(&out.stdout), "", "{name}");

        // `run` refuses the same config with exit 78 and the same lines.
        let mut cmd = healthd();
        cmd.args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config);
        if let Ok(env) = std::fs::read_to_string(fixtures.join(format!("{name}.env"))) {
            for line in env.lines().filter(|l| !l.is_empty()) {
                let (k, v) = line.split_once('=').unwrap();
                cmd.env(k, v);
            }
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(78), "run {name}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with(&expected),
            "run {name} shows the validate lines first:\n{stderr}"
        );
        checked += 1;
    }
    assert!(checked >= 21, "only {checked} fixtures found");
}

fn check_output(config: &str, format: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), config);
    let out = run(healthd()
        .args(["check", "--format", format, "--config"])
        .arg(&cfg));
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_exit_codes_follow_nagios() {
    let up = live_port();
    let refusing = RefusingPort::new();
    let down = refusing.port;
    let slow_port = live_port();
    let cases = [
        ("healthy", tcp("api", up, ""), 0),
        (
            "degraded: non-critical failure",
            format!(
                "{}{}",
                tcp("api", up, ""),
                tcp("cache", down, "critical = false")
            ),
            1,
        ),
        (
            "unhealthy: critical failure",
            format!("{}{}", tcp("api", up, ""), tcp("db", down, "")),
            2,
        ),
        (
            "unknown: invalid config",
            tcp("db", 1, "").replace("port = 1\n", "port = 70000\n"),
            3,
        ),
    ];
    for (what, config, code) in &cases {
        for format in ["text", "json"] {
            let (got, stdout, stderr) = check_output(config, format);
            assert_eq!(got, Some(*code), "{what} ({format}):\n{stdout}\n{stderr}");
        }
    }
    // Thresholds are ignored: one failure of a check with failure_threshold = 3 is unhealthy.
    let (got, _, _) = check_output(&tcp("db", down, "failure_threshold = 3"), "text");
    assert_eq!(got, Some(2));
    // A slow-but-answering check is degraded (exit 1): the peer accepts but sends nothing,
    // and the check expects a banner with a timeout; critical = false keeps it degraded.
    let (got, stdout, _) = check_output(
        &tcp("banner", slow_port, "expect = \"hello\"\ncritical = false"),
        "json",
    );
    assert_eq!(got, Some(1), "{stdout}");
}

#[test]
fn check_text_output_is_a_table() {
    let up = live_port();
    let refusing = RefusingPort::new();
    let down = refusing.port;
    let (code, stdout, _) = check_output(
        &format!(
            "{}{}",
            tcp("api", up, ""),
            tcp("cache", down, "critical = false")
        ),
        "text",
    );
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "KIND", "STATUS", "LATENCY", "REASON", "MESSAGE"]
    );
    let api: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&api[..3], ["api", "tcp", "healthy"]);
    assert_eq!(api[4], "-");
    let cache: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&cache[..3], ["cache", "tcp", "degraded"]);
    assert_eq!(cache[4], "connect");
    assert!(lines[2].contains(&format!("127.0.0.1:{down}")), "{stdout}");
    assert_eq!(lines[3], "overall: degraded");
    // Columns line up: STATUS starts at the same offset on every row.
    let col = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][col..col + 7], "healthy");
    assert_eq!(&lines[2][col..col + 8], "degraded");
}

/// What a peer answers ends up in the table: escaped, so it cannot forge rows or drive the
/// terminal.
#[test]
fn check_text_output_escapes_what_a_peer_sends() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        // One connection per run; a few at most.
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { return };
            let _ = s.write_all(b"EVIL\x1b[2J\x1b]0;title\x07\nforged: overall healthy\n");
        }
    });
    let (code, stdout, _) = check_output(&tcp("evil", port, "expect = \"NEVER\""), "text");
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.contains("EVIL\\u{1b}[2J\\u{1b}]0;title\\u{7} forged"),
        "{stdout}"
    );
}

/// Usage errors of `check` exit 3 (unknown), as Nagios plugins do: 2 would read as
/// "unhealthy". Other commands keep the usual usage exit code 2; help exits 0.
#[test]
fn check_usage_errors_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &tcp("api", live_port(), ""));
    // (arguments before --config, HEALTHD_LOG_FORMAT)
    let cases = [
        (vec!["check", "--format", "xml"], None),
        (vec!["check", "--bogus"], None),
        (vec!["check", "--format"], None),
        (vec!["check"], Some("xml")),
        (vec!["--log-format", "xml", "check"], None),
    ];
    for (args, log_format) in cases {
        let mut cmd = healthd();
        cmd.args(&args).arg("--config").arg(&cfg);
        if let Some(v) = log_format {
            cmd.env("HEALTHD_LOG_FORMAT", v);
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(3), "{args:?} {log_format:?}");
        assert!(
            text(&out.stderr).starts_with("error: "),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "");
    }
    assert_eq!(
        run(healthd().args(["validate", "--bogus"])).status.code(),
        Some(2)
    );
    assert_eq!(
        run(healthd().args(["check", "--help"])).status.code(),
        Some(0)
    );
}

#[test]
fn check_json_output() {
    let up = live_port();
    let refusing = RefusingPort::new();
    let down = refusing.port;
    let (code, stdout, _) = check_output(
        &format!("{}{}", tcp("api", up, ""), tcp("db", down, "")),
        "json",
    );
    assert_eq!(code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "unhealthy");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["name"], "api");
    assert_eq!(checks[0]["status"], "healthy");
    assert_eq!(checks[0]["kind"], "tcp");
    assert_eq!(checks[0]["critical"], true);
    assert!(checks[0]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(checks[0]["reason"].is_null());
    assert_eq!(checks[1]["status"], "unhealthy");
    assert_eq!(checks[1]["reason"], "connect");
    assert!(
        checks[1]["message"]
            .as_str()
            .unwrap()
            .contains("connect to")
    );
}

/// Kills the daemon if the test fails before it exits.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.1 request over a socket: (status code, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get(addr, path).ok()
}

#[test]
fn run_serves_and_exits_cleanly_on_sigterm() {
    let up = live_port();
    let dir = ConfigDir::new(&format!(
        "[server]\nshutdown_delay = \"1s\"\n\n[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\n{}",
        tcp("api", up, "")
    ));
    let mut daemon = Subprocess::start(&dir, &[]);
    let (addr, pid) = (daemon.addr, daemon.pid());

    eventually("/readyz 200", Duration::from_secs(15), || {
        get(addr, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(
        get(addr, "/readyz?verbose").unwrap(),
        (200, "[+]api ok\nreadyz check passed\n".to_string())
    );
    let (code, body) = get(addr, "/health").unwrap();
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "healthy");
    // Several runs happen; the log has one line for the one status change.
    eventually("a few runs", Duration::from_secs(10), || {
        get(addr, "/health").is_some_and(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(&b)
                .is_ok_and(|h| h["checks"][0]["consecutive_successes"].as_u64() >= Some(4))
        })
    });

    send_signal(&[pid], "TERM");
    // While draining, readiness fails but the server still answers.
    eventually("/readyz 503 while draining", Duration::from_secs(5), || {
        get(addr, "/readyz").is_some_and(|(c, b)| c == 503 && b == "shutting down\n")
    });
    assert_eq!(get(addr, "/livez").map(|(c, _)| c), Some(200));

    let status = daemon
        .wait_exit(Duration::from_secs(15))
        .expect("healthd did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0));

    let log = daemon.logs();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"Listening."), "{log}");
    assert!(messages.contains(&"Stopped."), "{log}");
    let changes: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "Check status changed." && l["check"] == "api")
        .collect();
    assert_eq!(changes.len(), 1, "one line per status change:\n{log}");
    assert_eq!(changes[0]["from"], "unknown");
    assert_eq!(changes[0]["to"], "healthy");
    assert_eq!(changes[0]["level"], "INFO");
}

#[test]
fn log_level_filters_lines() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = RefusingPort::new();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n{}",
            tcp("db", refusing.port, "")
        ),
    );
    let stderr_path = dir.path().join("stderr.log");
    let child = healthd()
        .args(["--log-level", "warn", "run", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child);
    eventually(
        "the status change is logged",
        Duration::from_secs(15),
        || std::fs::read_to_string(&stderr_path).is_ok_and(|l| l.contains("Check status changed.")),
    );
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    // Plain lines: level, message, fields; INFO lines (Listening.) are filtered out.
    assert!(!log.contains("Listening."), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("Check status changed."))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    for field in [
        "check=db",
        "from=\"unknown\"",
        "to=\"unhealthy\"",
        "reason=\"connect\"",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}

#[test]
fn run_exits_1_when_the_address_is_taken() {
    let port = live_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[[checks]]\nname = \"cpu\"\nkind = \"cpu\"\n");
    let out = run(healthd()
        .args(["run", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
