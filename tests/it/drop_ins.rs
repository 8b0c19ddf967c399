//! Drop-in files that are not what they seem: a dangling symlink, a symlink loop, a
//! directory, a FIFO or a device named `*.toml` in `probes.d/`, an oversized file, a file
//! name that tries to forge output, and a symlinked drop-in whose target disappears before a
//! reload. Each is an error naming the path (never skipped in silence), a FIFO or device is
//! never opened, and a reload that meets one keeps the running checks.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use healthd::config::{self, ConfigError, MAX_FILE_BYTES};

use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, binary, check_in};
use crate::support::peers::live_port;
use crate::support::{START_TIMEOUT, eventually, run_with_timeout};

fn tcp(name: &str, port: u16) -> String {
    format!("[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n")
}

/// Load on another thread: a FIFO that were opened would block the load for ever.
fn load_within(dir: &ConfigDir, limit: Duration) -> Result<config::Config, Vec<ConfigError>> {
    let sources = dir.sources();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(config::load(&sources));
    });
    rx.recv_timeout(limit)
        .expect("loading the config blocked: a drop-in was opened that must not be")
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn every_bad_drop_in_is_an_error_naming_its_path() {
    let dir = ConfigDir::new(&tcp("main", 1));
    let probes = dir.probes_dir();
    dir.drop_in("00-good.toml", &tcp("good", 1));
    symlink(
        "/nonexistent-healthd-test/x.toml",
        probes.join("10-dangling.toml"),
    )
    .unwrap();
    symlink(probes.join("20-loop.toml"), probes.join("20-loop.toml")).unwrap();
    std::fs::create_dir(probes.join("30-dir.toml")).unwrap();
    mkfifo(&probes.join("40-fifo.toml"));
    symlink("/dev/zero", probes.join("50-zero.toml")).unwrap();
    std::fs::write(
        probes.join("60-huge.toml"),
        "#".repeat(MAX_FILE_BYTES as usize + 1),
    )
    .unwrap();
    // Not drop-ins at all: still ignored.
    std::fs::write(probes.join("README"), "notes").unwrap();
    std::fs::write(probes.join("70-off.toml.disabled"), "garbage").unwrap();

    let errors = load_within(&dir, Duration::from_secs(10)).expect_err("refused");
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let irregular = "not a regular file (a drop-in must be a regular file, or a symlink to one)";
    let expected = [
        (
            "10-dangling.toml",
            "dangling symlink: its target /nonexistent-healthd-test/x.toml does not exist"
                .to_string(),
        ),
        (
            "20-loop.toml",
            "symlink loop (Too many levels of symbolic links (os error 40))".to_string(),
        ),
        ("30-dir.toml", format!("a directory, {irregular}")),
        ("40-fifo.toml", format!("a FIFO, {irregular}")),
        ("50-zero.toml", format!("a character device, {irregular}")),
        (
            "60-huge.toml",
            format!("too large: more than {MAX_FILE_BYTES} bytes (a config file is at most 4 MiB)"),
        ),
    ];
    assert_eq!(errors.len(), expected.len(), "{shown:#?}");
    for ((name, reason), e) in expected.iter().zip(&errors) {
        assert_eq!(
            e.file,
            probes.join(name).display().to_string(),
            "{shown:#?}"
        );
        assert_eq!(e.key, "");
        assert_eq!(&e.reason, reason);
    }
}

/// A file name is text from outside too: shown escaped, it cannot forge a line of
/// `validate`'s output, nor of the log (here the world-readable warning that names it).
#[test]
fn a_drop_in_name_cannot_forge_output_or_log_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = ConfigDir::new("");
    let name = "x\nFORGED ok: 9 check(s)\u{1b}[0m.toml";
    let path = dir.drop_in(
        name,
        "[[checks]]\nname = \"r\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\npassword = \"inline\"\n",
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_with_timeout(
        Command::new(binary())
            .args(["--log-format", "plain", "validate", "--config"])
            .arg(dir.path()),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(
        stdout.contains("x\\nFORGED ok: 9 check(s)\\u{1b}[0m.toml"),
        "{stdout:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("world-readable"), "{stderr}");
    for line in stderr.lines() {
        assert!(
            line.starts_with("20") && !line.contains('\u{1b}'),
            "a log line that is not an event: {line:?}\n{stderr}"
        );
    }
}

fn wait_reload(healthd: &Subprocess) -> Value {
    let mut seen = Value::Null;
    eventually("the reload to show in /health", START_TIMEOUT, || {
        seen = healthd.health();
        !seen["reload"].is_null()
    });
    seen
}

/// A drop-in that is a symlink to a file elsewhere (a ConfigMap, a package): when its target
/// disappears, the reload is refused and says why, and its checks keep running.
#[test]
fn a_vanished_symlink_target_fails_the_reload_and_keeps_the_checks() {
    let dir = ConfigDir::new("[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\n");
    let target = dir.dir.path().join("elsewhere.toml");
    std::fs::write(&target, tcp("web", live_port())).unwrap();
    let link = dir.probes_dir().join("web.toml");
    symlink(&target, &link).unwrap();
    let healthd = Subprocess::start(&dir, &[]);
    eventually("web to be healthy", START_TIMEOUT, || {
        check_in(&healthd.health(), "web").is_some_and(|c| c["status"] == "healthy")
    });

    std::fs::remove_file(&target).unwrap();
    healthd.signal("HUP");
    let h = wait_reload(&healthd);
    assert_eq!(h["reload"]["ok"], false, "{h}");
    let errors = h["reload"]["errors"].to_string();
    assert!(
        errors.contains(&link.display().to_string()) && errors.contains("dangling symlink"),
        "{errors}"
    );
    let web = check_in(&h, "web").expect("web kept running");
    assert_eq!(web["status"], "healthy", "{web}");
    assert_eq!(healthd.get("/readyz").0, 200);
}
