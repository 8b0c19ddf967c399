//! `kind = "redis"` against real Redis servers started by the harness: health, ACL
//! authentication failures, a server that stops or is blocked (SIGSTOP, CLIENT PAUSE,
//! DEBUG SLEEP), roles with a real replica, memory thresholds, one kept connection per
//! check, and passwords that never leak. The scenarios every database kind shares are in
//! `database.rs`, run here for [`Redis`].

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::task::block_in_place;

use crate::database::{DbKind, FAST, SLACK, shared_scenarios};
use crate::support::config::ConfigDir;
use crate::support::daemon::{TestDaemon, is, reason};
use crate::support::peers::{TestCerts, live_port};
use crate::support::redis::RedisServer;
use crate::support::{eventually, free_port, toml_path, toml_str, unique_secret};

/// Redis for the shared scenarios: `requirepass` and ACL user `app` with the same
/// password, connections told apart by `client_name`.
pub struct Redis;

impl DbKind for Redis {
    type Server = RedisServer;
    const KIND: &'static str = "redis";
    const WRONG_PASSWORD_MESSAGE: &'static str = "password rejected for user \"app\"";
    const WRONG_PASSWORD_JSON: &'static str = "WRONGPASS";
    const OTHER_AUTH_FAILURES: &'static [(&'static str, &'static str)] = &[("none", "NOAUTH")];

    fn start_with_password(password: &str) -> RedisServer {
        RedisServer::start_with_password(password)
    }

    fn check(name: &str, server: &RedisServer, password_file: &Path) -> String {
        redis_check(
            name,
            server,
            &format!(
                "username = \"app\"\npassword_file = {}",
                toml_path(password_file)
            ),
        )
    }

    fn auth_checks(
        server: &RedisServer,
        password_file: &Path,
        secret: &str,
        wrong_env: &str,
    ) -> String {
        let mut config = Self::check("ok", server, password_file);
        config += &redis_check(
            "bad-password",
            server,
            &format!("username = \"app\"\npassword_env = \"{wrong_env}\""),
        );
        // No password at all.
        config += &redis_check("none", server, "");
        // The `default` user's password (requirepass).
        config += &redis_check(
            "inline",
            server,
            &format!("password = {}", toml_str(secret)),
        );
        config += &format!(
            "[[checks]]\nname = \"url\"\nkind = \"redis\"\nurl = {}\n",
            toml_str(&server.url_for("app", secret))
        );
        config
    }

    fn assert_healthy_details(c: &Value) {
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
    }

    fn connection_ids(server: &RedisServer, app: &str) -> Vec<String> {
        ids(server, app)
    }

    /// No other connection opened behind our back (the server has no other client), and
    /// it is logged in as `app`.
    fn assert_alone(server: &RedisServer, _app: &str) {
        let all = server.clients();
        assert_eq!(all.len(), 1, "no other connections: {all:#?}");
        assert!(all[0].contains("user=app"), "{all:?}");
    }

    fn open_connections(server: &RedisServer, _app: &str) -> usize {
        server.client_count()
    }

    fn kill_connections(server: &RedisServer, _app: &str) -> usize {
        server.kill_clients()
    }

    fn stop(server: &mut RedisServer) {
        server.stop();
    }

    fn start_again(server: &mut RedisServer) {
        server.start_again();
    }
}

shared_scenarios!(Redis);

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
async fn blocked_server_times_out_while_other_checks_and_endpoints_answer() {
    let mut server = block_in_place(RedisServer::start);
    let listener_port = live_port();
    let dir = ConfigDir::new("");
    dir.set_config(&format!(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"200ms\"\nfailure_threshold = 1\n\n{}\n\
         [[checks]]\nname = \"tcp\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n",
        redis_check("r", &server, ""),
        listener_port
    ));
    let d = TestDaemon::start_in(dir).await;
    d.wait_check("r", "healthy", SLACK, |c| is(c, "healthy"))
        .await;

    async fn timed_out_then_back(d: &TestDaemon, what: &str) {
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
        eventually("one connection", SLACK, || {
            named(&server, "healthd-r").len() == 1 && server.client_count() == 1
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_replica_link_and_memory_thresholds() {
    let mut master = block_in_place(RedisServer::start);
    let replica = block_in_place(RedisServer::start);
    let dir = ConfigDir::new("");
    let mut config = FAST.to_string();
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
    let d = TestDaemon::start_in(dir).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_and_an_untrusted_certificate() {
    let server = block_in_place(RedisServer::start);
    let dir = ConfigDir::new("");
    let certs = TestCerts::make(dir.dir.path());
    let tls_port = free_port();
    block_in_place(|| {
        let path = |p: &Path| p.display().to_string();
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
    let mut config = FAST.to_string();
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
    let d = TestDaemon::start_in(dir).await;
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
