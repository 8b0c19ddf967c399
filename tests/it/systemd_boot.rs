//! healthd under a real systemd as PID 1 (a booted Debian 12 machine, see
//! [`crate::support::nspawn`]), installed exactly as the README's "by hand" steps say, with the
//! binary this test run built and the shipped `systemd/healthd.service`:
//!
//! - start, STATUS=, `/readyz`, `systemd-analyze security` of the live unit, a valid and an
//!   invalid reload, and what the journal holds (priorities, fields, no own timestamp);
//! - the watchdog: a stalled health loop (the test-only SIGUSR2 hook) is killed and restarted;
//! - drain timing on `systemctl stop`, and exit 78 on a bad config without a restart loop;
//! - on systemd 254 (bookworm-backports), the `Type=notify-reload` drop-in.
//!
//! Needs root, `debootstrap` and `systemd-nspawn` (scripts/test installs them); never skips.
//! Each test prints `SYSTEMD <what> <seconds>` lines with what it measured.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::eventually;
use crate::support::nspawn::{Flavour, Machine};
use crate::support::repo_path;
use crate::systemd_unit::overall_exposure;

const UNIT: &str = "healthd.service";
/// Long enough for a loaded CI machine; the typical wait is well under a second.
const WAIT: Duration = Duration::from_secs(20);

/// The README's "by hand" install lines, run in the repository (`/src` in the machine), with
/// the binary Cargo built for this run in place of `target/release/healthd` (the build line,
/// `scripts/build-release`, is left out) and without `sudo` (the commands run as root).
fn readme_install_steps() -> Vec<String> {
    let readme = fs::read_to_string(repo_path("README.md")).expect("read README.md");
    let from = readme
        .find("# or by hand:\n")
        .expect("README.md has the \"# or by hand:\" install steps");
    let block = &readme[from + "# or by hand:\n".len()..];
    let block = &block[..block.find("```").expect("the steps' code block ends")];
    let steps: Vec<String> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("scripts/build-release"))
        .map(|l| {
            l.trim_start_matches("sudo ")
                .replace("target/release/healthd", "/build/healthd")
        })
        .collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("/build/healthd /usr/bin/healthd"))
            && steps.last().map(String::as_str) == Some("systemctl enable --now healthd"),
        "the README's install steps changed shape: {steps:#?}"
    );
    steps
}

/// Boot a machine and install healthd as the README says; returns once the unit is active.
fn installed(flavour: Flavour, tag: &str) -> Machine {
    let m = Machine::boot(flavour, tag);
    let started = Instant::now();
    for step in readme_install_steps() {
        m.out(&step);
    }
    assert_eq!(m.property(UNIT, "ActiveState"), "active");
    eprintln!(
        "SYSTEMD install-and-start {:.2}",
        started.elapsed().as_secs_f64()
    );
    m
}

/// Replace the config (and drop-ins of the unit), then restart healthd.
fn reconfigure(m: &Machine, config: &str, unit_drop_in: &str) {
    m.write("/etc/healthd/healthd.toml", config);
    m.write(
        "/etc/systemd/system/healthd.service.d/test.conf",
        unit_drop_in,
    );
    m.out("systemctl daemon-reload && systemctl restart healthd");
}

/// `(status code, body without its final newline)` of `GET path` on healthd, from inside the
/// machine; `(0, curl's exit)` when there is no answer (healthd not listening yet, or gone).
fn get(m: &Machine, path: &str) -> (u16, String) {
    let out = m.sh(&format!(
        "curl -s --max-time 5 -w '\\n%{{http_code}}' 'http://127.0.0.1:9750{path}'"
    ));
    if !out.status.success() {
        return (0, format!("curl: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        body.trim_end().to_string(),
    )
}

fn status_text(m: &Machine) -> String {
    m.property(UNIT, "StatusText")
}

fn wait_status(m: &Machine, needle: &str) {
    eventually(&format!("STATUS= to contain {needle:?}"), WAIT, || {
        status_text(m).contains(needle)
    });
}

/// A TCP check of healthd's own listener: a real peer inside the machine.
const LISTENER_CHECK: &str = "[[checks]]\nname = \"listener\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9750\ninterval = \"1s\"\ntimeout = \"500ms\"\n";

/// Put `text` in `/etc/healthd/probes.d/<file>` and `systemctl reload healthd`.
fn reload_with_drop_in(m: &Machine, file: &str, text: &str) {
    m.write(&format!("/etc/healthd/probes.d/{file}"), text);
    m.out("systemctl reload healthd");
}

/// healthd's own journal entries (not systemd's lines about the unit), oldest first.
fn journal(m: &Machine, args: &str) -> Vec<Value> {
    m.out(&format!(
        "journalctl -u healthd -o json --no-pager SYSLOG_IDENTIFIER=healthd {args}"
    ))
    .lines()
    .map(|l| serde_json::from_str(l).expect("journalctl -o json prints JSON lines"))
    .collect()
}

fn field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or("")
}

fn find<'a>(entries: &'a [Value], message_start: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| field(e, "MESSAGE").starts_with(message_start))
}

fn messages(entries: &[Value]) -> String {
    entries
        .iter()
        .map(|e| format!("<{}> {}", field(e, "PRIORITY"), field(e, "MESSAGE")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn under_systemd_252_start_status_readyz_security_reload_and_journal() {
    let m = installed(Flavour::Bookworm, "life");
    assert!(
        m.out("systemctl --version").starts_with("systemd 252"),
        "Debian 12's systemd"
    );

    // STATUS= and /readyz once the three default checks have reported.
    eventually("STATUS= to count 3 checks", WAIT, || {
        let s = status_text(&m);
        s.starts_with("readiness: ") && s.contains("3 checks") && !s.contains("unknown")
    });
    let (code, body) = get(&m, "/readyz");
    assert_eq!(code, 200, "/readyz: {body}");
    assert!(body == "ok" || body == "degraded", "/readyz body {body:?}");

    // The live unit, as systemd loaded it with the real binary and /etc/healthd in place.
    let security = m.out("systemd-analyze security --no-pager healthd.service");
    let exposure = overall_exposure(&security).expect("an overall exposure line");
    eprintln!("SYSTEMD live-unit-exposure {exposure}");
    assert!(exposure <= 2.0, "exposure {exposure}:\n{security}");

    // A valid reload: a drop-in adds a TCP check of healthd's own listener.
    let reloaded = Instant::now();
    reload_with_drop_in(&m, "listener.toml", LISTENER_CHECK);
    eventually("the added check to answer", WAIT, || {
        get(&m, "/readyz/listener").0 == 200
    });
    eprintln!(
        "SYSTEMD reload-to-new-check-healthy {:.2}",
        reloaded.elapsed().as_secs_f64()
    );
    wait_status(&m, "4 checks");

    // An invalid reload is rejected; the running config (with `listener`) stays.
    reload_with_drop_in(
        &m,
        "broken.toml",
        "[[checks]]\nname = \"broken\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 99999\n",
    );
    wait_status(&m, "last reload rejected (1 problem(s))");
    assert_eq!(get(&m, "/readyz/listener").0, 200);
    assert_eq!(m.property(UNIT, "ActiveState"), "active");

    // The journal: `-p err` holds the rejected reload, with the file and key as fields.
    let mut errors = Vec::new();
    eventually("the rejected reload in journalctl -p err", WAIT, || {
        errors = journal(&m, "-p err");
        find(&errors, "Reload rejected").is_some()
    });
    let problem = find(&errors, "Configuration error.")
        .unwrap_or_else(|| panic!("no config error at -p err:\n{}", messages(&errors)));
    assert_eq!(field(problem, "PRIORITY"), "3");
    assert_eq!(field(problem, "FILE"), "/etc/healthd/probes.d/broken.toml");
    assert_eq!(field(problem, "KEY"), "checks.\"broken\".port");
    assert!(
        field(problem, "MESSAGE").contains("probes.d/broken.toml"),
        "MESSAGE= carries the fields for `journalctl` readers: {problem}"
    );
    assert!(
        errors.iter().all(|e| field(e, "PRIORITY") == "3"),
        "only errors at -p err:\n{}",
        messages(&errors)
    );

    // The added check's first result can come after the reloads above: `/readyz/listener`
    // already passes while it is pending (no result yet), so wait for its status change.
    let mut all = Vec::new();
    eventually(
        "the added check's status change in the journal",
        WAIT,
        || {
            all = journal(&m, "");
            all.iter().any(|e| field(e, "CHECK") == "listener")
        },
    );
    let at = |start: &str, priority: &str| {
        let e = find(&all, start)
            .unwrap_or_else(|| panic!("no {start:?} in the journal:\n{}", messages(&all)));
        assert_eq!(field(e, "PRIORITY"), priority, "{start}: {e}");
        e.clone()
    };
    at("Listening.", "6");
    at("Configuration reloaded.", "6");
    let change = all
        .iter()
        .find(|e| field(e, "CHECK") == "listener")
        .unwrap_or_else(|| panic!("no entry with CHECK=listener:\n{}", messages(&all)));
    assert_eq!(field(change, "TO"), "healthy");
    // journald stamps every entry; healthd's own timestamp would repeat it.
    let stamped: Vec<&str> = all
        .iter()
        .map(|e| field(e, "MESSAGE"))
        .filter(|msg| {
            msg.len() > 10 && msg.as_bytes()[4] == b'-' && msg[..4].parse::<u16>().is_ok()
        })
        .collect();
    assert!(
        stamped.is_empty(),
        "lines with their own timestamp: {stamped:#?}"
    );
}

#[test]
fn under_systemd_252_the_watchdog_restarts_a_stalled_healthd() {
    let m = installed(Flavour::Bookworm, "dog");
    reconfigure(
        &m,
        "[server]\nstall_after = \"1s\"\n\n[[checks]]\nname = \"memory\"\nkind = \"memory\"\n",
        "[Service]\nWatchdogSec=2s\nRestartSec=1s\nEnvironment=HEALTHD_TEST_STALL_ON_SIGUSR2=1\n",
    );
    eventually("healthd ready", WAIT, || {
        status_text(&m).starts_with("readiness: ok")
    });
    let first = m.property(UNIT, "MainPID");
    assert_eq!(m.property(UNIT, "NRestarts"), "0");

    let stalled = Instant::now();
    m.out("systemctl kill --kill-whom=main --signal=SIGUSR2 healthd");
    eventually("systemd to restart healthd", WAIT, || {
        m.property(UNIT, "NRestarts") == "1"
    });
    let restarted = stalled.elapsed();
    eprintln!(
        "SYSTEMD stall-to-watchdog-restart {:.2}",
        restarted.as_secs_f64()
    );
    // Pings stop once the snapshot is older than stall_after (1s); systemd waits WatchdogSec.
    assert!(
        restarted >= Duration::from_millis(1900),
        "restarted after {restarted:?}, before the watchdog could have fired"
    );
    eventually("the new healthd ready", WAIT, || {
        m.property(UNIT, "ActiveState") == "active" && status_text(&m).starts_with("readiness: ok")
    });
    assert_ne!(m.property(UNIT, "MainPID"), first, "a new process");

    let systemd_said = m.out("journalctl -u healthd --no-pager -o cat SYSLOG_IDENTIFIER=systemd");
    assert!(
        systemd_said.contains("Watchdog timeout"),
        "systemd logs the watchdog timeout:\n{systemd_said}"
    );
    let errors = journal(&m, "-p err");
    let stall = find(&errors, "Snapshot loop stalled")
        .unwrap_or_else(|| panic!("healthd's stall at -p err:\n{}", messages(&errors)));
    assert_eq!(field(stall, "STALL_AFTER"), "1s");
}

#[test]
fn under_systemd_252_drain_timing_and_exit_78_without_a_restart_loop() {
    let m = installed(Flavour::Bookworm, "stop");
    reconfigure(
        &m,
        "[server]\nshutdown_delay = \"2s\"\n\n[[checks]]\nname = \"memory\"\nkind = \"memory\"\n",
        "[Service]\nRestartSec=1s\n",
    );
    eventually("healthd ready", WAIT, || get(&m, "/readyz").0 == 200);

    let stop = Instant::now();
    m.out("systemctl stop --no-block healthd");
    eventually("/readyz to say shutting down", WAIT, || {
        get(&m, "/readyz") == (503, "shutting down".to_string())
    });
    assert_eq!(get(&m, "/livez").0, 200, "liveness holds while draining");
    eventually("the unit to stop", WAIT, || {
        m.property(UNIT, "ActiveState") == "inactive"
    });
    let drained = stop.elapsed();
    eprintln!("SYSTEMD stop-with-2s-delay {:.2}", drained.as_secs_f64());
    assert!(
        drained >= Duration::from_secs(2) && drained < Duration::from_secs(8),
        "stopped after {drained:?} with shutdown_delay = 2s"
    );
    assert_eq!(m.property(UNIT, "Result"), "success");
    assert_eq!(m.property(UNIT, "ExecMainStatus"), "0");
    let all = journal(&m, "");
    assert!(find(&all, "Shutting down").is_some() && find(&all, "Stopped.").is_some());

    // A config error at start: exit 78, and RestartPreventExitStatus=78 keeps it down.
    m.write(
        "/etc/healthd/healthd.toml",
        "[server]\nlisten = \"nowhere\"\n",
    );
    let start = m.sh("systemctl start healthd");
    assert!(!start.status.success(), "the start fails");
    assert_eq!(m.property(UNIT, "ExecMainStatus"), "78");
    assert_eq!(m.property(UNIT, "Result"), "exit-code");
    // Restart= would have acted after RestartSec=1s; give it three times that.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(m.property(UNIT, "ActiveState"), "failed");
    assert_eq!(m.property(UNIT, "NRestarts"), "0", "no restart loop");
    let errors = journal(&m, "-p err");
    assert!(
        errors.iter().any(|e| field(e, "MESSAGE")
            == "error: /etc/healthd/healthd.toml: server.listen: invalid address \"nowhere\" (use IP:port, e.g. \"127.0.0.1:9750\" or \"[::1]:9750\")"),
        "the config error at -p err:\n{}",
        messages(&errors)
    );
}

#[test]
fn under_systemd_254_the_notify_reload_drop_in_makes_reload_wait_for_healthd() {
    let m = installed(Flavour::Backports, "reload");
    assert!(m.out("systemctl --version").starts_with("systemd 254"));
    // As docs/systemd.md says to install it.
    m.out("install -D -m 0644 systemd/healthd.service.d/notify-reload.conf /etc/systemd/system/healthd.service.d/notify-reload.conf && systemctl daemon-reload && systemctl restart healthd");
    assert_eq!(m.property(UNIT, "Type"), "notify-reload");
    assert_eq!(
        m.property(UNIT, "ExecReload"),
        "",
        "no kill -HUP besides systemd's signal"
    );

    let verify = m.sh(
        "systemd-analyze verify --man=no --recursive-errors=no /etc/systemd/system/healthd.service",
    );
    let text = crate::support::output_text(&verify);
    assert!(verify.status.success(), "{text}");
    assert!(
        !text.contains("healthd"),
        "systemd-analyze verify warned:\n{text}"
    );

    eventually("healthd ready", WAIT, || {
        status_text(&m).starts_with("readiness: ")
    });
    reload_with_drop_in(&m, "listener.toml", LISTENER_CHECK);
    wait_status(&m, "4 checks");

    // `systemctl reload` waits for healthd's READY=1. To see it wait, the main config becomes
    // a FIFO: healthd's reload blocks reading it until the test writes the config into it.
    m.out("mv /etc/healthd/healthd.toml /run/healthd.toml && mkfifo -m 0644 /etc/healthd/healthd.toml");
    m.out("(systemctl reload healthd; echo $? > /run/reload-rc) >/dev/null 2>&1 &");
    eventually("systemd to wait for healthd's reload", WAIT, || {
        m.property(UNIT, "ActiveState") == "reloading"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(m.property(UNIT, "ActiveState"), "reloading");
    assert!(
        !m.sh("test -e /run/reload-rc").status.success(),
        "systemctl reload returned while healthd was still reading its config"
    );
    let written = Instant::now();
    m.out("cat /run/healthd.toml > /etc/healthd/healthd.toml");
    eventually("systemctl reload to return", WAIT, || {
        m.sh("test -e /run/reload-rc").status.success()
    });
    eprintln!(
        "SYSTEMD notify-reload-returned-after-config-read {:.2}",
        written.elapsed().as_secs_f64()
    );
    assert_eq!(m.out("cat /run/reload-rc").trim(), "0");
    assert_eq!(m.property(UNIT, "ActiveState"), "active");

    let all = journal(&m, "");
    let sighups = all
        .iter()
        .filter(|e| field(e, "MESSAGE").starts_with("SIGHUP: reloading configuration."))
        .count();
    assert_eq!(sighups, 2, "one signal per reload:\n{}", messages(&all));
    assert_eq!(
        all.iter()
            .filter(|e| field(e, "MESSAGE").starts_with("Configuration reloaded."))
            .count(),
        2
    );
}
