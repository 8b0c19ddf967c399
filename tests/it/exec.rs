//! `kind = "exec"` with real Nagios plugins from Debian's `monitoring-plugins-basic`
//! (`check_dummy` for every exit code, `check_tcp` against a listener and a refusing port,
//! `check_disk` with performance data) and small scripts for what plugins do not do on
//! demand: hang with a forked child (the whole process group is killed, no orphans), print
//! megabytes, get killed by a signal, fail to start, read their environment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use healthd::config::CheckConfig;
use healthd::model::{Level, Outcome, Reason};
use healthd::scheduler::run_once;

use crate::support::config::{ConfigDir, one_check};
use crate::support::daemon::{TestDaemon, binary, status_is};
use crate::support::peers::{RefusingPort, live_port};
use crate::support::{
    eventually, is_alive, promtool_check_metrics, run_with_timeout, toml_path, toml_str,
};

const PLUGINS: &str = "/usr/lib/nagios/plugins";

fn plugin(name: &str) -> String {
    format!("{PLUGINS}/{name}")
}

fn command_toml(command: &[&str]) -> String {
    let items: Vec<String> = command.iter().map(|a| toml_str(a)).collect();
    format!("[{}]", items.join(", "))
}

fn exec_check(command: &[&str], extra: &str, timeout: &str) -> CheckConfig {
    one_check(&format!(
        "[[checks]]\nname = \"x\"\nkind = \"exec\"\ncommand = {}\ninterval = \"10s\"\n\
         timeout = \"{timeout}\"\n{extra}\n",
        command_toml(command)
    ))
}

async fn exec(command: &[&str]) -> Outcome {
    run_once(&mut None, &exec_check(command, "", "5s")).await
}

/// An executable shell script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn check_dummy_exit_codes_map_to_levels() {
    let dummy = plugin("check_dummy");
    let cases = [
        ("0", Level::Ok, None, "OK: fine"),
        (
            "1",
            Level::Degraded,
            Some(Reason::Threshold),
            "WARNING: fine",
        ),
        (
            "2",
            Level::Failed,
            Some(Reason::Threshold),
            "CRITICAL: fine",
        ),
        ("3", Level::Unknown, Some(Reason::Config), "UNKNOWN: fine"),
    ];
    for (code, level, reason, message) in cases {
        let o = exec(&[&dummy, code, "fine"]).await;
        assert_eq!((o.level, o.reason), (level, reason), "exit {code}: {o:?}");
        assert_eq!(o.message, message);
        assert_eq!(o.details["exit_code"], code.parse::<i32>().unwrap());
    }
}

#[tokio::test]
async fn check_tcp_against_a_listener_and_a_refusing_port() {
    let tcp = plugin("check_tcp");
    let port = live_port().to_string();
    let o = exec(&[&tcp, "-H", "127.0.0.1", "-p", &port]).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert!(o.message.starts_with("TCP OK"), "{}", o.message);
    let perf = o.details["perfdata"].as_array().expect("perfdata");
    assert_eq!(perf[0]["label"], "time");
    assert_eq!(perf[0]["unit"], "s");

    let refusing = RefusingPort::new();
    let port = refusing.port.to_string();
    let o = exec(&[&tcp, "-H", "127.0.0.1", "-p", &port]).await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");
}

#[tokio::test]
async fn check_disk_perfdata_becomes_details_and_gauges() {
    let disk = plugin("check_disk");
    let command = [disk.as_str(), "-w", "0%", "-c", "0%", "-p", "/"];
    let o = exec(&command).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let perf = &o.details["perfdata"][0];
    assert_eq!(perf["label"], "/");
    assert_eq!(perf["unit"], "B", "MB converted to bytes: {perf}");
    assert!(perf["value"].as_f64().unwrap_or(0.0) > 1e6, "{perf}");

    let d = TestDaemon::start(&format!(
        "[[checks]]\nname = \"disk-plugin\"\nkind = \"exec\"\ncommand = {}\n\
         interval = \"1s\"\ntimeout = \"900ms\"\n",
        command_toml(&command)
    ))
    .await;
    d.wait_check(
        "disk-plugin",
        "healthy",
        Duration::from_secs(10),
        status_is("healthy", None),
    )
    .await;
    let (code, metrics) = d.get("/metrics").await;
    assert_eq!(code, 200);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("healthd_exec_perfdata{"))
        .unwrap_or_else(|| panic!("no perfdata gauge in\n{metrics}"));
    assert!(
        line.contains("healthd_check_name=\"disk-plugin\"") && line.contains("label=\"/\""),
        "{line}"
    );
    let (ok, why) = promtool_check_metrics(&metrics);
    assert!(ok, "promtool: {why}");
}

#[tokio::test]
async fn exit_3_turns_the_check_unknown_in_the_daemon() {
    let d = TestDaemon::start(&format!(
        "[[checks]]\nname = \"plugin\"\nkind = \"exec\"\ncommand = {}\n\
         interval = \"300ms\"\ntimeout = \"250ms\"\n",
        command_toml(&[&plugin("check_dummy"), "3", "cannot tell"])
    ))
    .await;
    let c = d
        .wait_check("plugin", "reported", Duration::from_secs(10), |v| {
            v["last_run"].is_string()
        })
        .await;
    assert_eq!(c["status"], "unknown", "{c}");
    assert_eq!(c["reason"], "config", "{c}");
    assert_eq!(c["message"], "UNKNOWN: cannot tell");
    let (code, body) = d.get("/readyz/plugin?verbose").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("[-]plugin unknown: config"), "{body}");
}

#[tokio::test]
async fn at_the_timeout_the_whole_process_group_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let hang = script(
        dir.path(),
        "hang",
        &format!(
            "echo $$ > {p}\nsleep 300 &\necho $! >> {p}\necho started\nwait",
            p = pids.display()
        ),
    );
    let check = exec_check(&[s(&hang)], "", "700ms");
    let started = Instant::now();
    let o = run_once(&mut None, &check).await;
    let took = started.elapsed();
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
    assert!(
        o.message.contains("killed it and its process group"),
        "{}",
        o.message
    );
    assert!(took < Duration::from_secs(3), "not bounded: {took:?}");
    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("the script wrote its pids")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "script and its forked child: {pids:?}");
    eventually(
        "the script and its child are gone",
        Duration::from_secs(5),
        || pids.iter().all(|p| !is_alive(*p)),
    );
}

#[tokio::test]
async fn huge_output_is_read_to_the_end_and_the_message_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatty = script(
        dir.path(),
        "chatty",
        "head -c 20000 /dev/zero | tr '\\0' 'a'\necho ' | big=1MB'\n\
         head -c 8000000 /dev/zero\nexit 1",
    );
    let started = Instant::now();
    let o = exec(&[s(&chatty)]).await;
    assert_eq!(o.level, Level::Degraded, "{:?}", o.level);
    assert_eq!(o.message.len(), 4096);
    assert!(o.message.bytes().all(|b| b == b'a'));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn the_child_gets_a_clean_environment_no_stdin_and_root_as_cwd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = script(
        dir.path(),
        "env",
        "if read line; then input=open; else input=closed; fi\n\
         echo \"cwd=$(pwd) path=$PATH foo=$FOO home=${HOME:-unset} stdin=$input\"",
    );
    let check = exec_check(&[s(&env)], "env = { FOO = \"bar baz\" }", "5s");
    let o = run_once(&mut None, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(
        o.message,
        format!(
            "cwd=/ path={} foo=bar baz home=unset stdin=closed",
            healthd::check::exec::DEFAULT_PATH
        )
    );
}

#[tokio::test]
async fn signals_bad_interpreters_and_odd_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let killed = script(dir.path(), "killed", "echo dying\nkill -TERM $$");
    let o = exec(&[s(&killed)]).await;
    assert_eq!((o.level, o.reason), (Level::Failed, Some(Reason::Internal)));
    assert!(o.message.contains("killed by signal 15"), "{}", o.message);

    let broken = dir.path().join("broken");
    std::fs::write(&broken, "#!/nonexistent/interpreter\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let o = exec(&[s(&broken)]).await;
    assert_eq!((o.level, o.reason), (Level::Failed, Some(Reason::Config)));
    assert!(o.message.contains("cannot start"), "{}", o.message);

    let seven = script(dir.path(), "seven", "echo strange >&2\nexit 7");
    let o = exec(&[s(&seven)]).await;
    assert_eq!(o.level, Level::Unknown, "{o:?}");
    assert_eq!(
        o.message, "exit status 7 is not a plugin status: strange",
        "stderr is the message when stdout is empty"
    );
}

#[test]
fn validate_rejects_relative_programs_and_warns_about_writable_ones() {
    let dir = ConfigDir::new("");
    let writable = script(dir.dir.path(), "plugin", "echo OK");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    dir.set_config(&format!(
        "[[checks]]\nname = \"w\"\nkind = \"exec\"\ncommand = [{}]\n",
        toml_path(&writable)
    ));
    let out = run_with_timeout(
        std::process::Command::new(binary())
            .args(["validate", "--config"])
            .arg(dir.path()),
        Duration::from_secs(20),
    )
    .expect("healthd validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("could be replaced by another user")
            && text.contains("writable by every user"),
        "{text}"
    );

    dir.set_config(
        "[[checks]]\nname = \"r\"\nkind = \"exec\"\ncommand = [\"check_dummy\", \"0\"]\n",
    );
    let errors = dir.load().expect_err("a relative program is refused");
    assert_eq!(errors[0].key, "checks.\"r\".command[0]");
    assert!(
        errors[0].reason.contains("absolute path"),
        "{}",
        errors[0].reason
    );
}
