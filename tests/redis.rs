//! `kind = "redis"` against real Redis servers started by the harness: health, ACL
//! authentication failures, a server that stops or is blocked (SIGSTOP, CLIENT PAUSE,
//! DEBUG SLEEP), roles with a real replica, memory thresholds, one kept connection per
//! check, and passwords that never leak.

mod probe_daemon;
mod support;

use std::time::{Duration, Instant};

use probe_daemon::*;
use support::{RedisServer, unique_secret};
use tokio::task::block_in_place;

/// Slack on top of computed bounds: the machine running the tests is shared and loaded.
const SLACK: Duration = Duration::from_secs(8);

fn redis_check(name: &str, server: &RedisServer, extra: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         client_name = \"healthd-{name}\"\n{extra}\n",
        port = server.port()
    )
}

/// `CLIENT LIST` lines of connections named `name`.
fn named(server: &RedisServer, name: &str) -> Vec<String> {
    let needle = format!("name={name}");
    server
        .clients()
        .into_iter()
        .filter(|l| l.split_whitespace().any(|f| f == needle))
        .collect()
}

/// The `id=` of each connection named `name`.
fn ids(server: &RedisServer, name: &str) -> Vec<String> {
    named(server, name)
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_string)
        })
        .collect()
}

fn info_field(server: &RedisServer, section: &str, field: &str) -> String {
    let info = server.cli(&["INFO", section]);
    info.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{field}:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_with_one_kept_connection_and_back_after_a_restart() {
    let secret = unique_secret("redisapp");
    let mut server = block_in_place(|| RedisServer::start_with_password(&secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("redis-password", &secret);
    let (interval, timeout, threshold) =
        (Duration::from_millis(200), Duration::from_millis(190), 2);
    dir.set_config(&format!(
        "[server]\nshutdown_delay = \"100ms\"\n\n[defaults]\ninterval = \"200ms\"\ntimeout = \"190ms\"\n\
         failure_threshold = {threshold}\n\n{}",
        redis_check(
            "r",
            &server,
            &format!("username = \"app\"\npassword_file = {}", toml_path(&pw))
        )
    ));
    let d = InProcess::start(dir).await;
    let c = d
        .wait_check("r", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert_eq!(c["details"]["role"], "master", "{c:#}");
    assert_eq!(c["details"]["maxmemory"], 0, "{c:#}");
    assert!(
        c["details"]["used_memory"].as_u64().unwrap_or(0) > 0,
        "{c:#}"
    );
    assert!(
        c["details"]["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{c:#}"
    );
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("no maxmemory set")),
        "{c:#}"
    );

    // About 25 runs over 5 s: one connection, always the same, and no other connection
    // opened behind our back (the server has no other client).
    let first = block_in_place(|| ids(&server, "healthd-r"));
    assert_eq!(first.len(), 1, "one connection: {first:?}");
    let runs_before = d.check("r").await["consecutive_successes"]
        .as_u64()
        .unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (now, all) = block_in_place(|| (ids(&server, "healthd-r"), server.clients()));
        if now != first {
            let c = d.check("r").await;
            panic!("the check did not keep its one connection: {first:?} -> {now:?}; {c:#}");
        }
        assert_eq!(all.len(), 1, "no other connections: {all:#?}");
        assert!(all[0].contains("user=app"), "{all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = d.check("r").await;
    let runs_after = c["consecutive_successes"].as_u64().unwrap_or(0);
    assert!(
        runs_after >= runs_before + 10,
        "the check kept running ({runs_before} -> {runs_after} successes): {c:#}"
    );

    // A connection killed by the server is replaced at once, without a failed run.
    let killed = block_in_place(|| server.kill_clients());
    assert_eq!(killed, 1);
    block_in_place(|| {
        support::eventually("a new connection", SLACK, || {
            let now = ids(&server, "healthd-r");
            now.len() == 1 && now != first
        })
    });
    tokio::time::sleep(interval * 2).await;
    let c = d.check("r").await;
    assert!(c["last_failure"].is_null(), "no failed run: {c:#}");

    // Stopped: unhealthy within (interval + timeout) × failure_threshold, plus slack.
    block_in_place(|| server.stop());
    let stopped = Instant::now();
    let c = d
        .wait_check(
            "r",
            "unhealthy",
            (interval + timeout) * threshold + SLACK,
            |c| is(c, "unhealthy"),
        )
        .await;
    assert_eq!(reason(&c), "connect", "{c:#}");
    eprintln!("unhealthy {:?} after the stop", stopped.elapsed());

    block_in_place(|| server.start_again());
    d.wait_check("r", "healthy again", SLACK, |c| is(c, "healthy"))
        .await;
    let after = block_in_place(|| ids(&server, "healthd-r"));
    assert_eq!(after.len(), 1, "one connection after the restart");
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let (now, count) = block_in_place(|| (ids(&server, "healthd-r"), server.client_count()));
        assert_eq!(now, after);
        assert_eq!(count, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.daemon.drain(std::future::pending()).await;
    block_in_place(|| {
        support::eventually(
            "the check's connection to close",
            Duration::from_secs(10),
            || server.client_count() == 0,
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth_and_no_password_leaks_anywhere() {
    let secret = unique_secret("redisapp");
    let wrong = unique_secret("rediswrong");
    let server = block_in_place(|| RedisServer::start_with_password(&secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("redis-password", &secret);
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    config += &redis_check(
        "ok",
        &server,
        &format!("username = \"app\"\npassword_file = {}", toml_path(&pw)),
    );
    config += &redis_check(
        "bad",
        &server,
        "username = \"app\"\npassword_env = \"REDIS_TEST_WRONG_PASSWORD\"",
    );
    config += &redis_check("none", &server, "");
    config += &redis_check(
        "inline",
        &server,
        &format!("password = {}", toml_str(&secret)),
    );
    config += &format!(
        "[[checks]]\nname = \"url\"\nkind = \"redis\"\nurl = {}\n",
        toml_str(&server.url_for("app", &secret))
    );
    dir.set_config(&config);
    let env = [("REDIS_TEST_WRONG_PASSWORD", wrong.as_str())];
    let proc = Subprocess::run(&dir, &env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    let base = proc.base.clone();

    let bad = wait_check(&http, &base, "bad", "unhealthy", SLACK * 2, |c| {
        is(c, "unhealthy")
    })
    .await;
    assert_eq!(reason(&bad), "auth", "{bad:#}");
    assert!(
        bad["message"]
            .as_str()
            .is_some_and(|m| m.contains("password rejected for user \"app\"")),
        "{bad:#}"
    );
    let none = wait_check(&http, &base, "none", "unhealthy", SLACK, |c| {
        is(c, "unhealthy")
    })
    .await;
    assert_eq!(reason(&none), "auth", "{none:#}");
    assert!(
        none["message"]
            .as_str()
            .is_some_and(|m| m.contains("NOAUTH")),
        "{none:#}"
    );
    for name in ["ok", "inline", "url"] {
        wait_check(&http, &base, name, "healthy", SLACK, |c| is(c, "healthy")).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seen = every_surface(&http, &base, "bad").await;
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
    assert!(json.contains("WRONGPASS"), "{json}");
    assert_no_secret(
        &[
            ("endpoints", &seen),
            ("daemon logs", &logs),
            ("healthd check text", &text),
            ("healthd check json", &json),
        ],
        &[&secret, &wrong],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_server_times_out_while_other_checks_and_endpoints_answer() {
    let mut server = block_in_place(RedisServer::start);
    let listener = Listener::start();
    let dir = ConfigDir::new("");
    dir.set_config(&format!(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"200ms\"\nfailure_threshold = 1\n\n{}\n\
         [[checks]]\nname = \"tcp\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n",
        redis_check("r", &server, ""),
        listener.port
    ));
    let d = InProcess::start(dir).await;
    d.wait_check("r", "healthy", SLACK, |c| is(c, "healthy"))
        .await;

    async fn timed_out_then_back(d: &InProcess, what: &str) {
        let c = d
            .wait_check("r", &format!("timing out ({what})"), SLACK, |c| {
                is(c, "unhealthy")
            })
            .await;
        assert_eq!(reason(&c), "timeout", "{what}: {c:#}");
        let (code, _) = d.get("/livez").await;
        assert_eq!(code, 200, "{what}");
        let (code, _) = d.get("/readyz").await;
        assert_eq!(code, 503, "{what}");
        assert!(is(&d.check("tcp").await, "healthy"), "{what}");
    }

    // Frozen process (SIGSTOP).
    block_in_place(|| server.pause());
    timed_out_then_back(&d, "SIGSTOP").await;
    block_in_place(|| server.resume());
    d.wait_check("r", "healthy after SIGCONT", SLACK, |c| is(c, "healthy"))
        .await;

    // Every client's commands held by the server.
    block_in_place(|| server.pause_clients(3000));
    timed_out_then_back(&d, "CLIENT PAUSE").await;
    d.wait_check("r", "healthy after CLIENT PAUSE", SLACK, |c| {
        is(c, "healthy")
    })
    .await;

    // The server busy in one command.
    let sleeper = block_in_place(|| server.debug_sleep_in_background(Duration::from_secs(3)));
    timed_out_then_back(&d, "DEBUG SLEEP").await;
    d.wait_check("r", "healthy after DEBUG SLEEP", SLACK, |c| {
        is(c, "healthy")
    })
    .await;
    let _ = block_in_place(|| sleeper.join());

    // Connections abandoned at the timeouts are closed: one remains.
    block_in_place(|| {
        support::eventually("one connection", SLACK, || {
            named(&server, "healthd-r").len() == 1 && server.client_count() == 1
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_replica_link_and_memory_thresholds() {
    let mut master = block_in_place(RedisServer::start);
    let replica = block_in_place(RedisServer::start);
    let dir = ConfigDir::new("");
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    config += &redis_check("master", &master, "expect_role = \"master\"");
    config += &redis_check("not-replica", &master, "expect_role = \"replica\"");
    config += &redis_check(
        "replica",
        &replica,
        "expect_role = \"replica\"\nexpect_replica_link_up = true",
    );
    config += &redis_check("mem-degraded", &master, "memory_degraded_above = 10");
    config += &redis_check(
        "mem-unhealthy",
        &master,
        "memory_degraded_above = 10\nmemory_unhealthy_above = 30",
    );
    // The least-privilege ACL user that probes/redis.toml suggests is enough.
    let acl_password = unique_secret("redisacl");
    block_in_place(|| {
        master.cli(&[
            "ACL",
            "SETUSER",
            "healthd",
            "on",
            &format!(">{acl_password}"),
            "+ping",
            "+info",
            "+client|setname",
            "+select",
        ])
    });
    let pw = dir.secret_file("acl-password", &acl_password);
    config += &redis_check(
        "acl",
        &master,
        &format!(
            "username = \"healthd\"\npassword_file = {}\ndb = 1\nexpect_role = \"master\"",
            toml_path(&pw)
        ),
    );
    dir.set_config(&config);
    let d = InProcess::start(dir).await;

    let c = d
        .wait_check("acl", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert!(
        block_in_place(|| master.clients())
            .iter()
            .any(|l| l.contains("name=healthd-acl")
                && l.contains("user=healthd")
                && l.contains("db=1")),
        "{c:#}"
    );
    d.wait_check("master", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    let c = d
        .wait_check("not-replica", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "role", "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("is a master, expected a replica")),
        "{c:#}"
    );
    // Not yet a replica: wrong role.
    let c = d
        .wait_check("replica", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "role", "{c:#}");

    // maxmemory 0: reported, not judged.
    let c = d
        .wait_check("mem-degraded", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert_eq!(c["details"]["maxmemory"], 0, "{c:#}");

    // A real replica with its link up, then down when its master stops.
    let port = master.port().to_string();
    block_in_place(|| replica.cli(&["REPLICAOF", "127.0.0.1", &port]));
    let c = d
        .wait_check("replica", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    assert_eq!(c["details"]["role"], "replica", "{c:#}");
    assert_eq!(c["details"]["master_link_status"], "up", "{c:#}");

    // About 50 % of maxmemory: above 10 → degraded, above 30 → unhealthy.
    block_in_place(|| {
        let used: u64 = info_field(&master, "memory", "used_memory")
            .parse()
            .expect("used_memory");
        master.cli(&["CONFIG", "SET", "maxmemory", &(used * 2).to_string()]);
    });
    let c = d
        .wait_check("mem-degraded", "degraded", SLACK, |c| is(c, "degraded"))
        .await;
    assert_eq!(reason(&c), "threshold", "{c:#}");
    assert!(c["details"]["memory_percent"].as_f64().is_some(), "{c:#}");
    let c = d
        .wait_check("mem-unhealthy", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "threshold", "{c:#}");
    block_in_place(|| master.cli(&["CONFIG", "SET", "maxmemory", "0"]));

    block_in_place(|| master.stop());
    let c = d
        .wait_check("replica", "unhealthy (link down)", SLACK, |c| {
            is(c, "unhealthy")
        })
        .await;
    assert_eq!(reason(&c), "role", "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("replica link to its master is down")),
        "{c:#}"
    );
}

#[test]
fn shipped_example_is_a_valid_drop_in() {
    let dir = ConfigDir::new("");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/probes/redis.toml");
    std::fs::copy(example, dir.probes_dir().join("redis.toml")).expect("copy example");
    let config = healthd::config::load(&dir.sources())
        .unwrap_or_else(|e| panic!("probes/redis.toml does not validate: {e:?}"));
    let check = config
        .checks
        .iter()
        .find(|c| c.name == "redis")
        .expect("the example's check");
    assert_eq!(check.kind(), "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_and_an_untrusted_certificate() {
    let server = block_in_place(RedisServer::start);
    let dir = ConfigDir::new("");
    let certs = TestCerts::make(dir.dir.path());
    let tls_port = support::free_port();
    block_in_place(|| {
        let path = |p: &std::path::Path| p.display().to_string();
        server.cli(&[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &path(&certs.cert),
            "tls-key-file",
            &path(&certs.key),
            "tls-ca-cert-file",
            &path(&certs.ca),
            "tls-auth-clients",
            "no",
        ]);
        server.cli(&["CONFIG", "SET", "tls-port", &tls_port.to_string()]);
    });
    let mut config =
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n"
            .to_string();
    let ca = toml_path(&certs.ca);
    config += &format!(
        "[[checks]]\nname = \"tls\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\nport = {tls_port}\n\
         tls = true\nca_file = {ca}\nclient_name = \"healthd-tls\"\n"
    );
    config += &format!(
        "[[checks]]\nname = \"tls-url\"\nkind = \"redis\"\nurl = \"rediss://127.0.0.1:{tls_port}/0\"\n\
         ca_file = {ca}\nclient_name = \"healthd-tls-url\"\n"
    );
    config += &format!(
        "[[checks]]\nname = \"untrusted\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\nport = {tls_port}\n\
         tls = true\n"
    );
    dir.set_config(&config);
    let d = InProcess::start(dir).await;
    for name in ["tls", "tls-url"] {
        d.wait_check(name, "healthy", SLACK, |c| is(c, "healthy"))
            .await;
    }
    let c = d
        .wait_check("untrusted", "unhealthy", SLACK, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "tls", "{c:#}");
    // Both verified connections are there, one each.
    block_in_place(|| {
        assert_eq!(named(&server, "healthd-tls").len(), 1);
        assert_eq!(named(&server, "healthd-tls-url").len(), 1);
    });
}
