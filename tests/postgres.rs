//! `kind = "postgres"` against real PostgreSQL servers started by the harness: health,
//! authentication failures, a server that stops or freezes, role and value expectations,
//! one kept connection per check, and passwords that never leak.

mod probe_daemon;
mod support;

use std::time::{Duration, Instant};

use probe_daemon::*;
use support::{PgServer, free_port, unique_secret};
use tokio::task::block_in_place;

/// Slack on top of computed bounds: the machine running the tests is shared and loaded.
const SLACK: Duration = Duration::from_secs(8);

/// One check's TOML, talking to `pg` as role `app` with its password from `password_file`.
fn pg_check(name: &str, pg: &PgServer, password_file: &std::path::Path, extra: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         user = \"app\"\ndbname = \"postgres\"\nsslmode = \"disable\"\n\
         application_name = \"healthd-{name}\"\npassword_file = {pw}\n{extra}\n",
        port = pg.port(),
        pw = toml_path(password_file),
    )
}

/// The backend pids of connections with this application_name.
fn backend_pids(pg: &PgServer, app: &str) -> Vec<String> {
    pg.psql(&format!(
        "SELECT pid FROM pg_stat_activity WHERE application_name = '{app}' \
         AND backend_type = 'client backend' ORDER BY pid"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_with_one_kept_connection_and_back_after_a_restart() {
    let mut pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| pg.create_role("app", &secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    let (interval, timeout, threshold) =
        (Duration::from_millis(200), Duration::from_millis(190), 2);
    dir.set_config(&format!(
        "[server]\nshutdown_delay = \"100ms\"\n\n[defaults]\ninterval = \"200ms\"\ntimeout = \"190ms\"\nfailure_threshold = {threshold}\n\n{}",
        pg_check("pg", &pg, &pw, "")
    ));
    let d = InProcess::start(dir).await;

    let c = d
        .wait_check("pg", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert_eq!(c["details"]["role"], "primary", "{c:#}");
    assert!(
        c["details"]["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{c:#}"
    );
    assert!(c["details"]["latency_ms"].is_number(), "{c:#}");

    // About 25 runs over 5 s: always the same single backend.
    let first = block_in_place(|| backend_pids(&pg, "healthd-pg"));
    assert_eq!(first.len(), 1, "one connection: {first:?}");
    let runs_before = d.check("pg").await["consecutive_successes"]
        .as_u64()
        .unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let now = block_in_place(|| backend_pids(&pg, "healthd-pg"));
        if now != first {
            let c = d.check("pg").await;
            panic!("the check did not keep its one connection: {first:?} -> {now:?}; {c:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = d.check("pg").await;
    let runs_after = c["consecutive_successes"].as_u64().unwrap_or(0);
    assert!(
        runs_after >= runs_before + 10,
        "the check kept running ({runs_before} -> {runs_after} successes): {c:#}"
    );
    assert_eq!(block_in_place(|| pg.connections_from("healthd-pg")), 1);

    // A connection the server terminates is replaced at once, without a failed run.
    assert_eq!(block_in_place(|| pg.terminate_connections("healthd-pg")), 1);
    block_in_place(|| {
        support::eventually("a new connection", SLACK, || {
            let now = backend_pids(&pg, "healthd-pg");
            now.len() == 1 && now != first
        })
    });
    tokio::time::sleep(interval * 2).await;
    let c = d.check("pg").await;
    assert!(c["last_failure"].is_null(), "no failed run: {c:#}");

    // Stopped: unhealthy within (interval + timeout) × failure_threshold, plus slack.
    block_in_place(|| pg.stop());
    let stopped = Instant::now();
    let bound = (interval + timeout) * threshold + SLACK;
    let c = d
        .wait_check("pg", "unhealthy", bound, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "connect", "{c:#}");
    eprintln!("unhealthy {:?} after the stop", stopped.elapsed());
    let (code, _) = d.get("/readyz").await;
    assert_eq!(code, 503);

    // Back: healthy again without restarting healthd, and still one connection.
    block_in_place(|| pg.start_again());
    d.wait_check("pg", "healthy again", SLACK, |c| is(c, "healthy"))
        .await;
    let (code, _) = d.get("/readyz").await;
    assert_eq!(code, 200);
    let until = Instant::now() + Duration::from_secs(1);
    let after = block_in_place(|| backend_pids(&pg, "healthd-pg"));
    assert_eq!(
        after.len(),
        1,
        "one connection after the restart: {after:?}"
    );
    while Instant::now() < until {
        assert_eq!(block_in_place(|| backend_pids(&pg, "healthd-pg")), after);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.daemon.drain(std::future::pending()).await;
    // The probe's connection is closed when healthd stops.
    block_in_place(|| {
        support::eventually(
            "the check's connection to close",
            Duration::from_secs(10),
            || pg.connections_from("healthd-pg") == 0,
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth_and_no_password_leaks_anywhere() {
    let pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    let wrong = unique_secret("pgwrong");
    block_in_place(|| pg.create_role("app", &secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    let port = pg.port();
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    config += &pg_check("pg-ok", &pg, &pw, "");
    config += &format!(
        "[[checks]]\nname = \"pg-bad\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         user = \"app\"\ndbname = \"postgres\"\nsslmode = \"prefer\"\npassword_env = \"PG_TEST_WRONG_PASSWORD\"\n"
    );
    config += &format!(
        "[[checks]]\nname = \"pg-inline\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         user = \"app\"\ndbname = \"postgres\"\nsslmode = \"disable\"\npassword = {}\n",
        toml_str(&secret)
    );
    config += &format!(
        "[[checks]]\nname = \"pg-url\"\nkind = \"postgres\"\nurl = {}\n",
        toml_str(&format!(
            "postgres://app:{secret}@127.0.0.1:{port}/postgres?sslmode=disable"
        ))
    );
    dir.set_config(&config);
    let env = [("PG_TEST_WRONG_PASSWORD", wrong.as_str())];
    let proc = Subprocess::run(&dir, &env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    let base = proc.base.clone();

    let bad = wait_check(&http, &base, "pg-bad", "unhealthy", SLACK * 2, |c| {
        is(c, "unhealthy")
    })
    .await;
    assert_eq!(reason(&bad), "auth", "{bad:#}");
    let msg = bad["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("password authentication failed for user \"app\""),
        "{msg}"
    );
    for name in ["pg-ok", "pg-inline", "pg-url"] {
        wait_check(&http, &base, name, "healthy", SLACK, |c| is(c, "healthy")).await;
    }
    // Let a few more runs (and their debug logs) happen, failures included.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seen = every_surface(&http, &base, "pg-bad").await;
    let logs = proc.stop();
    assert!(
        logs.contains("Password given inline"),
        "inline passwords are warned about: {logs}"
    );
    let (code, text) = healthd_check(&dir, "text", &env);
    assert_eq!(code, 2, "unhealthy: {text}");
    assert!(text.contains("auth"), "{text}");
    let (code, json) = healthd_check(&dir, "json", &env);
    assert_eq!(code, 2, "unhealthy: {json}");
    assert!(json.contains("password authentication failed"), "{json}");

    assert_no_secret(
        &[
            ("endpoints", &seen),
            ("daemon logs", &logs),
            ("healthd check text", &text),
            ("healthd check json", &json),
        ],
        &[&secret, &wrong],
    );
    // The logs do say what went wrong.
    assert!(logs.contains("pg-bad"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_times_out_while_other_checks_and_endpoints_answer() {
    let mut pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| pg.create_role("app", &secret));
    let listener = Listener::start();
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    dir.set_config(&format!(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"200ms\"\nfailure_threshold = 2\n\n{}\n\
         [[checks]]\nname = \"tcp\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n",
        pg_check("pg", &pg, &pw, ""),
        listener.port
    ));
    let d = InProcess::start(dir).await;
    d.wait_check("pg", "healthy", SLACK, |c| is(c, "healthy"))
        .await;

    block_in_place(|| pg.pause());
    let c = d
        .wait_check("pg", "unhealthy", Duration::from_secs(1) + SLACK, |c| {
            is(c, "unhealthy")
        })
        .await;
    assert_eq!(reason(&c), "timeout", "{c:#}");
    // Meanwhile everything else answers.
    for _ in 0..5 {
        let (code, _) = d.get("/livez").await;
        assert_eq!(code, 200);
        let (code, body) = d.get("/readyz?verbose").await;
        assert_eq!(code, 503, "{body}");
        assert!(is(&d.check("tcp").await, "healthy"));
        assert_eq!(reason(&d.check("pg").await), "timeout");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    block_in_place(|| pg.resume());
    d.wait_check("pg", "healthy after resume", SLACK, |c| is(c, "healthy"))
        .await;
    // The connections abandoned while frozen are gone: one remains.
    block_in_place(|| {
        support::eventually("one connection", SLACK, || {
            pg.connections_from("healthd-pg") == 1
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_and_value_expectations_and_failure_reasons() {
    let pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| pg.create_role("app", &secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    let refused = free_port();
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    config += &pg_check("primary", &pg, &pw, "expect_role = \"primary\"");
    config += &pg_check("replica", &pg, &pw, "expect_role = \"replica\"");
    config += &pg_check(
        "value-ok",
        &pg,
        &pw,
        "query = \"SELECT 40 + 2, 'x'\"\nexpect_value = \"42\"",
    );
    config += &pg_check(
        "value-bad",
        &pg,
        &pw,
        "query = \"SELECT 'blue'\"\nexpect_value = \"green\"",
    );
    config += &pg_check("bad-sql", &pg, &pw, "query = \"SELEKT 1\"");
    config += &pg_check("aborted-tx", &pg, &pw, "query = \"BEGIN; SELECT 1/0\"");
    config += &format!(
        "[[checks]]\nname = \"refused\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {refused}\n\
         user = \"app\"\npassword_file = {}\n",
        toml_path(&pw)
    );
    config += &format!(
        "[[checks]]\nname = \"no-dns\"\nkind = \"postgres\"\nurl = \"postgres://app@no-such-host.invalid/postgres\"\npassword_file = {}\n",
        toml_path(&pw)
    );
    dir.set_config(&config);
    let d = InProcess::start(dir).await;

    let c = d
        .wait_check("primary", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert_eq!(c["details"]["role"], "primary");
    let c = d
        .wait_check("replica", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "role", "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("is a primary, expected a replica")),
        "{c:#}"
    );
    d.wait_check("value-ok", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    let c = d
        .wait_check("value-bad", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "protocol", "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"blue\", expected \"green\"")),
        "{c:#}"
    );
    let c = d
        .wait_check("bad-sql", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "protocol", "{c:#}");
    assert_eq!(c["details"]["sqlstate"], "42601", "{c:#}");
    // Every run reports the query's own error (division by zero), not the aborted
    // transaction it would leave behind on a kept connection.
    let c = d
        .wait_check("aborted-tx", "failed three times", SLACK, |c| {
            c["consecutive_failures"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert_eq!(c["details"]["sqlstate"], "22012", "{c:#}");
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let c = d.check("aborted-tx").await;
        assert_eq!(c["details"]["sqlstate"], "22012", "{c:#}");
    }
    let c = d
        .wait_check("refused", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "connect", "{c:#}");
    let c = d
        .wait_check("no-dns", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "dns", "{c:#}");
    // A failing query does not cost a connection: each check still holds exactly one.
    for name in [
        "primary",
        "replica",
        "value-ok",
        "value-bad",
        "bad-sql",
        "aborted-tx",
    ] {
        let app = format!("healthd-{name}");
        block_in_place(|| {
            support::eventually(&format!("one connection for {name}"), SLACK, || {
                pg.connections_from(&app) == 1
            })
        });
    }
}

#[test]
fn shipped_example_is_a_valid_drop_in() {
    let dir = ConfigDir::new("");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/probes/postgres.toml");
    std::fs::copy(example, dir.probes_dir().join("postgres.toml")).expect("copy example");
    let config = healthd::config::load(&dir.sources())
        .unwrap_or_else(|e| panic!("probes/postgres.toml does not validate: {e:?}"));
    let check = config
        .checks
        .iter()
        .find(|c| c.name == "postgres")
        .expect("the example's check");
    assert_eq!(check.kind(), "postgres");
}

/// Turns TLS on in a running server with a certificate for IP 127.0.0.1 issued by a fresh
/// test CA; returns the CA's PEM path.
fn enable_tls(pg: &PgServer, dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let certs = TestCerts::make(dir);
    let data = pg.data_dir();
    let owner = std::fs::metadata(&data).expect("data dir").uid();
    let group = std::fs::metadata(&data).expect("data dir").gid();
    for (from, name) in [(&certs.cert, "server.crt"), (&certs.key, "server.key")] {
        let to = data.join(name);
        std::fs::copy(from, &to).expect("copy into the data dir");
        std::os::unix::fs::chown(&to, Some(owner), Some(group)).expect("chown");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    pg.psql("ALTER SYSTEM SET ssl = on");
    pg.psql("SELECT pg_reload_conf()");
    support::eventually("TLS on", Duration::from_secs(10), || {
        pg.psql("SHOW ssl") == "on"
    });
    certs.ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_tls_server() {
    let pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| pg.create_role("app", &secret));
    let dir = ConfigDir::new("");
    let ca = block_in_place(|| enable_tls(&pg, dir.dir.path()));
    let pw = dir.secret_file("pg-password", &secret);
    let port = pg.port();
    let check = |name: &str, host: &str, sslmode: &str, ca_file: bool| {
        format!(
            "[[checks]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"{host}\"\nport = {port}\n\
             user = \"app\"\ndbname = \"postgres\"\nsslmode = \"{sslmode}\"\n\
             application_name = \"healthd-{name}\"\npassword_file = {}\n{}\n",
            toml_path(&pw),
            if ca_file {
                format!("ca_file = {}", toml_path(&ca))
            } else {
                String::new()
            }
        )
    };
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    config += &check("disable", "127.0.0.1", "disable", false);
    config += &check("prefer", "127.0.0.1", "prefer", false);
    config += &check("require", "127.0.0.1", "require", false);
    config += &check("verify-ca", "localhost", "verify-ca", true);
    config += &check("verify-ca-unknown", "127.0.0.1", "verify-ca", false);
    config += &check("verify-full", "127.0.0.1", "verify-full", true);
    config += &check("verify-full-wrong-name", "localhost", "verify-full", true);
    dir.set_config(&config);
    let d = InProcess::start(dir).await;

    for (name, encrypted) in [
        ("disable", false),
        ("prefer", true),
        ("require", true),
        ("verify-ca", true),
        ("verify-full", true),
    ] {
        d.wait_check(name, "healthy", SLACK, |c| is(c, "healthy"))
            .await;
        let ssl = block_in_place(|| {
            pg.psql(&format!(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'healthd-{name}'"
            ))
        });
        assert_eq!(ssl, if encrypted { "t" } else { "f" }, "{name}: encrypted");
    }
    for name in ["verify-ca-unknown", "verify-full-wrong-name"] {
        let c = d
            .wait_check(name, "unhealthy", SLACK, |c| is(c, "unhealthy"))
            .await;
        assert_eq!(reason(&c), "tls", "{name}: {c:#}");
        eprintln!("{name}: {}", c["message"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_cut_off_at_the_timeout_is_cancelled_on_the_server() {
    let pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| pg.create_role("app", &secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    dir.set_config(&format!(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n{}",
        pg_check("slow", &pg, &pw, "query = \"SELECT pg_sleep(5)\"")
    ));
    let d = InProcess::start(dir).await;
    let c = d
        .wait_check("slow", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "timeout", "{c:#}");
    // Every run is cut off; without a cancel each would leave a backend sleeping for 5 s
    // (more than a dozen over 4 s). With it, at most the current one and the one closing.
    let until = Instant::now() + Duration::from_secs(4);
    let mut most = 0;
    while Instant::now() < until {
        most = most.max(block_in_place(|| pg.connections_from("healthd-slow")));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(most <= 2, "{most} connections at once");
    let log = pg.log_contents();
    assert!(
        log.contains("canceling statement due to user request"),
        "the server saw the cancel: {log}"
    );
}

/// Makes `replica` (a stopped server) a streaming standby of `primary`: its data dir is
/// replaced by a `pg_basebackup -R` of the primary, taken over the primary's Unix socket.
fn make_standby(primary: &PgServer, replica: &mut PgServer) {
    use std::os::unix::fs::MetadataExt;
    let data = replica.data_dir();
    let parent = replica.socket_dir().to_path_buf();
    let meta = std::fs::metadata(&parent).expect("replica dir");
    std::fs::remove_dir_all(&data).expect("remove the replica's data dir");
    let mut cmd = std::process::Command::new("setpriv");
    cmd.arg(format!("--reuid={}", meta.uid()))
        .arg(format!("--regid={}", meta.gid()))
        .args(["--clear-groups", "--"])
        .arg(support::pg_bin_dir().join("pg_basebackup"))
        .arg("-h")
        .arg(primary.socket_dir())
        .args([
            "-p",
            &primary.port().to_string(),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-D",
        ])
        .arg(&data)
        .current_dir(&parent)
        .env("LC_ALL", "C");
    let out = support::run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The copied postgresql.conf names the primary's socket directory; use our own.
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("open postgresql.conf");
    std::io::Write::write_all(
        &mut conf,
        format!("\nunix_socket_directories = '{}'\n", parent.display()).as_bytes(),
    )
    .expect("append to postgresql.conf");
    replica.start_again();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_replica_its_role_and_its_replication_lag() {
    let primary = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| {
        primary.create_role("app", &secret);
        primary.psql("CREATE TABLE beat (at timestamptz)");
        primary.psql("INSERT INTO beat VALUES (now())");
    });
    let mut replica = block_in_place(PgServer::start);
    block_in_place(|| {
        replica.stop();
        make_standby(&primary, &mut replica);
        assert_eq!(replica.psql("SELECT pg_is_in_recovery()"), "t", "a standby");
        // A transaction replayed by the running standby, so it has a replay timestamp.
        primary.psql("INSERT INTO beat VALUES (now())");
        support::eventually("the insert replayed", SLACK, || {
            replica.psql("SELECT count(*) FROM beat") == "2"
        });
    });
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    config += &pg_check(
        "replica",
        &replica,
        &pw,
        "expect_role = \"replica\"\nmax_replication_lag = \"1s\"",
    );
    config += &pg_check("not-primary", &replica, &pw, "expect_role = \"primary\"");
    dir.set_config(&config);
    let d = InProcess::start(dir).await;

    let c = d
        .wait_check("replica", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert_eq!(c["details"]["role"], "replica", "{c:#}");
    assert!(c["details"]["replication_lag_s"].is_number(), "{c:#}");
    let c = d
        .wait_check("not-primary", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "role", "{c:#}");

    // Replay paused while the primary writes: received but not replayed, and the last
    // replayed transaction grows old → lag above 1 s → degraded.
    block_in_place(|| {
        replica.psql("SELECT pg_wal_replay_pause()");
        primary.psql("INSERT INTO beat VALUES (now())");
    });
    let c = d
        .wait_check("replica", "degraded (lagging)", SLACK, |c| {
            is(c, "degraded")
        })
        .await;
    assert_eq!(reason(&c), "threshold", "{c:#}");
    assert!(
        c["details"]["replication_lag_s"].as_f64().unwrap_or(0.0) > 1.0,
        "{c:#}"
    );
    block_in_place(|| replica.psql("SELECT pg_wal_replay_resume()"));
    d.wait_check("replica", "healthy (caught up)", SLACK, |c| {
        is(c, "healthy")
    })
    .await;
}
