//! `kind = "postgres"` against real PostgreSQL servers started by the harness: health,
//! authentication failures, a server that stops or freezes, role and value expectations,
//! one kept connection per check, and passwords that never leak. The scenarios every
//! database kind shares are in `database.rs`, run here for [`Postgres`].

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::block_in_place;

use crate::database::{DbKind, FAST, SLACK, shared_scenarios};
use crate::support::config::ConfigDir;
use crate::support::daemon::{TestDaemon, is, reason};
use crate::support::peers::{TestCerts, live_port};
use crate::support::postgres::{PgServer, pg_bin_dir};
use crate::support::{eventually, free_port, run_with_timeout, toml_path, toml_str, unique_secret};

/// PostgreSQL for the shared scenarios: role `app`, connections told apart by
/// `application_name`.
pub struct Postgres;

impl DbKind for Postgres {
    type Server = PgServer;
    const KIND: &'static str = "postgres";
    const WRONG_PASSWORD_MESSAGE: &'static str = "password authentication failed for user \"app\"";
    const WRONG_PASSWORD_JSON: &'static str = "password authentication failed";
    const OTHER_AUTH_FAILURES: &'static [(&'static str, &'static str)] = &[];

    fn start_with_password(password: &str) -> PgServer {
        let pg = PgServer::start();
        pg.create_role("app", password);
        pg
    }

    fn check(name: &str, pg: &PgServer, password_file: &Path) -> String {
        pg_check(name, pg, password_file, "")
    }

    fn auth_checks(pg: &PgServer, password_file: &Path, secret: &str, wrong_env: &str) -> String {
        let port = pg.port();
        let mut config = pg_check("ok", pg, password_file, "");
        // sslmode = "prefer" against a server without TLS: the fallback reports auth too.
        config += &format!(
            "[[checks]]\nname = \"bad-password\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             user = \"app\"\ndbname = \"postgres\"\nsslmode = \"prefer\"\npassword_env = \"{wrong_env}\"\n"
        );
        config += &format!(
            "[[checks]]\nname = \"inline\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             user = \"app\"\ndbname = \"postgres\"\nsslmode = \"disable\"\npassword = {}\n",
            toml_str(secret)
        );
        config += &format!(
            "[[checks]]\nname = \"url\"\nkind = \"postgres\"\nurl = {}\n",
            toml_str(&format!(
                "postgres://app:{secret}@127.0.0.1:{port}/postgres?sslmode=disable"
            ))
        );
        config
    }

    fn assert_healthy_details(c: &Value) {
        assert_eq!(c["details"]["role"], "primary", "{c:#}");
        assert!(
            c["details"]["server_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{c:#}"
        );
        assert!(c["details"]["latency_ms"].is_number(), "{c:#}");
    }

    fn connection_ids(pg: &PgServer, app: &str) -> Vec<String> {
        backend_pids(pg, app)
    }

    fn assert_alone(pg: &PgServer, app: &str) {
        assert_eq!(pg.connections_from(app), 1);
    }

    fn open_connections(pg: &PgServer, app: &str) -> usize {
        pg.connections_from(app)
    }

    fn kill_connections(pg: &PgServer, app: &str) -> usize {
        pg.terminate_connections(app)
    }

    fn stop(pg: &mut PgServer) {
        pg.stop();
    }

    fn start_again(pg: &mut PgServer) {
        pg.start_again();
    }
}

shared_scenarios!(Postgres);

/// One check's TOML, talking to `pg` as role `app` with its password from `password_file`.
fn pg_check(name: &str, pg: &PgServer, password_file: &Path, extra: &str) -> String {
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
async fn frozen_server_times_out_while_other_checks_and_endpoints_answer() {
    let mut pg = block_in_place(PgServer::start);
    let secret = unique_secret("pgapp");
    block_in_place(|| pg.create_role("app", &secret));
    let listener_port = live_port();
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    dir.set_config(&format!(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"200ms\"\nfailure_threshold = 2\n\n{}\n\
         [[checks]]\nname = \"tcp\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n",
        pg_check("pg", &pg, &pw, ""),
        listener_port
    ));
    let d = TestDaemon::start_in(dir).await;
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
        eventually("one connection", SLACK, || {
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
    let mut config = FAST.to_string();
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
    let d = TestDaemon::start_in(dir).await;

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
            eventually(&format!("one connection for {name}"), SLACK, || {
                pg.connections_from(&app) == 1
            })
        });
    }
}

/// Turns TLS on in a running server with a certificate for IP 127.0.0.1 issued by a fresh
/// test CA; returns the CA's PEM path.
fn enable_tls(pg: &PgServer, dir: &Path) -> std::path::PathBuf {
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
    eventually("TLS on", Duration::from_secs(10), || {
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
    let mut config = FAST.to_string();
    config += &check("disable", "127.0.0.1", "disable", false);
    config += &check("prefer", "127.0.0.1", "prefer", false);
    config += &check("require", "127.0.0.1", "require", false);
    config += &check("verify-ca", "localhost", "verify-ca", true);
    config += &check("verify-ca-unknown", "127.0.0.1", "verify-ca", false);
    config += &check("verify-full", "127.0.0.1", "verify-full", true);
    config += &check("verify-full-wrong-name", "localhost", "verify-full", true);
    dir.set_config(&config);
    let d = TestDaemon::start_in(dir).await;

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
        "{FAST}{}",
        pg_check("slow", &pg, &pw, "query = \"SELECT pg_sleep(5)\"")
    ));
    let d = TestDaemon::start_in(dir).await;
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
        .arg(pg_bin_dir().join("pg_basebackup"))
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
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("pg_basebackup");
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
        eventually("the insert replayed", SLACK, || {
            replica.psql("SELECT count(*) FROM beat") == "2"
        });
    });
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("pg-password", &secret);
    let mut config = FAST.to_string();
    config += &pg_check(
        "replica",
        &replica,
        &pw,
        "expect_role = \"replica\"\nmax_replication_lag = \"1s\"",
    );
    config += &pg_check("not-primary", &replica, &pw, "expect_role = \"primary\"");
    dir.set_config(&config);
    let d = TestDaemon::start_in(dir).await;

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
