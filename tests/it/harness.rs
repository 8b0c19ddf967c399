//! Smoke tests of the integration-test harness (`tests/support`): the real PostgreSQL
//! and Redis servers it starts behave as the other integration tests rely on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::postgres::PgServer;
use crate::support::redis::RedisServer;
use crate::support::{eventually, unique_secret};

#[test]
fn postgres_primary_accepts_right_password_only() {
    let pg = PgServer::start();
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f", "a primary");
    assert_eq!(
        pg.psql_as(pg.superuser(), pg.password(), "SELECT 1")
            .unwrap(),
        "1"
    );

    let password = unique_secret("app");
    pg.create_role("app", &password);
    assert_eq!(
        pg.psql_as("app", &password, "SELECT current_user").unwrap(),
        "app"
    );
    let err = pg.psql_as("app", "wrong", "SELECT 1").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn postgres_stop_kill_pause_and_come_back() {
    let mut pg = PgServer::start();
    let port = pg.port();
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)");

    pg.stop();
    assert!(TcpStream::connect((pg.host(), port)).is_err(), "stopped");
    pg.start_again();
    assert_eq!(pg.psql("SELECT x FROM t"), "42");

    pg.kill9();
    assert!(TcpStream::connect((pg.host(), port)).is_err(), "killed");
    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT x FROM t"), "42");

    // Paused: connects complete, but the server never answers the SSLRequest.
    pg.pause();
    let mut s = TcpStream::connect((pg.host(), port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).unwrap();
    let mut byte = [0u8; 1];
    assert!(s.read(&mut byte).is_err(), "no answer while paused");
    pg.resume();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(s.read(&mut byte).unwrap(), 1, "answers once resumed");
    drop(s);
    eventually(
        "the probe connection to go",
        Duration::from_secs(10),
        || pg.connections_from(pg.superuser()) == 0,
    );
}

#[test]
fn redis_auth_clients_and_pause() {
    let password = unique_secret("redis");
    let mut redis = RedisServer::start_with_password(&password);
    assert_eq!(redis.cli(&["PING"]), "PONG");
    assert_eq!(
        redis
            .cli_as(RedisServer::APP_USER, &password, &["PING"])
            .unwrap(),
        "PONG"
    );
    let err = redis
        .cli_as(RedisServer::APP_USER, "wrong", &["PING"])
        .unwrap_err();
    assert!(err.contains("WRONGPASS") || err.contains("NOAUTH"), "{err}");

    let mut conn = TcpStream::connect((redis.host(), redis.port())).unwrap();
    eventually("one client", Duration::from_secs(5), || {
        redis.client_count() == 1
    });

    redis.pause_clients(300);
    let started = Instant::now();
    conn.write_all(format!("AUTH app {password}\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 16];
    let n = conn.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"+OK\r\n");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "held by CLIENT PAUSE"
    );

    let port = redis.port();
    redis.stop();
    assert!(TcpStream::connect((redis.host(), port)).is_err(), "stopped");
    redis.start_again();
    assert_eq!(redis.cli(&["PING"]), "PONG");
}
