//! `kind = "push"` through the daemon's real listener: a success is in `/health` at once
//! (the check's interval is far longer), a failure with its message, a non-zero exit code, a
//! start without a finish, wrong and missing tokens, an unknown check, an oversized body,
//! the period + grace boundary, a check never pushed, 1,000 pushes in a burst (every
//! accepted one counted, the rest refused with 429), and pushes surviving a reload.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::config::ConfigDir;
use crate::support::daemon::{TestDaemon, status_is};
use crate::support::{toml_path, unique_secret};

const WAIT: Duration = Duration::from_secs(10);

/// A daemon with one push check `job` (its token in a file) and the token.
async fn daemon(keys: &str) -> (TestDaemon, String) {
    let dir = ConfigDir::new("");
    let token = unique_secret("push-");
    let file = dir.secret_file("job.token", &token);
    dir.set_config(&format!(
        "[[checks]]\nname = \"job\"\nkind = \"push\"\ntoken_file = {}\n{keys}\n",
        toml_path(&file)
    ));
    (TestDaemon::start_in(dir).await, token)
}

/// `POST path` with `token` (if any) and `body`: (status, body).
async fn post(d: &TestDaemon, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = d.client.post(d.url(path)).body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

async fn job(d: &TestDaemon) -> Value {
    d.check("job").await
}

#[tokio::test]
async fn a_success_is_in_the_snapshot_at_once() {
    let (d, token) = daemon("period = \"1h\"\ninterval = \"30s\"").await;
    let c = d
        .wait_check("job", "reported", WAIT, |v| v["last_run"].is_string())
        .await;
    assert_eq!(c["status"], "unknown", "never pushed: {c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or("")
            .contains("no heartbeat yet")
    );
    let pushed = Instant::now();
    assert_eq!(
        post(&d, "/push/job", Some(&token), "").await,
        (200, "ok\n".into())
    );
    // The next scheduled run is up to 30 s away: only the push itself can turn it healthy.
    d.wait_check(
        "job",
        "healthy",
        Duration::from_secs(2),
        status_is("healthy", None),
    )
    .await;
    assert!(pushed.elapsed() < Duration::from_secs(2));
    assert_eq!(job(&d).await["details"]["pushes"], 1);
}

#[tokio::test]
async fn a_failure_carries_its_message_and_exit_codes_count() {
    let (d, token) = daemon("period = \"1h\"\ninterval = \"30s\"").await;
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    let (code, _) = post(&d, "/push/job/fail", Some(&token), "backup: disk full\n").await;
    assert_eq!(code, 200);
    let c = d
        .wait_check(
            "job",
            "unhealthy",
            WAIT,
            status_is("unhealthy", Some("status")),
        )
        .await;
    assert_eq!(
        c["message"],
        "the job reported a failure: backup: disk full"
    );
    assert_eq!(post(&d, "/push/job/0", Some(&token), "").await.0, 200);
    d.wait_check("job", "healthy", WAIT, status_is("healthy", None))
        .await;
    assert_eq!(post(&d, "/push/job/3", Some(&token), "").await.0, 200);
    let c = d
        .wait_check(
            "job",
            "unhealthy",
            WAIT,
            status_is("unhealthy", Some("status")),
        )
        .await;
    assert_eq!(c["message"], "the job exited with status 3");
    let big = "x".repeat(5000);
    assert_eq!(post(&d, "/push/job/fail", Some(&token), &big).await.0, 413);
    assert_eq!(post(&d, "/push/job/later", Some(&token), "").await.0, 404);
}

#[tokio::test]
async fn a_start_without_a_finish_fails_after_the_grace() {
    let (d, token) =
        daemon("period = \"1h\"\ngrace = \"400ms\"\ninterval = \"100ms\"\ntimeout = \"50ms\"")
            .await;
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    assert_eq!(post(&d, "/push/job/start", Some(&token), "").await.0, 200);
    let started = Instant::now();
    let c = d
        .wait_check(
            "job",
            "unhealthy",
            WAIT,
            status_is("unhealthy", Some("timeout")),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        c["message"]
            .as_str()
            .unwrap_or("")
            .contains("has not succeeded within the grace of 400ms"),
        "{c}"
    );
    // The job finishes after all: healthy again at once.
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    d.wait_check(
        "job",
        "healthy",
        Duration::from_secs(2),
        status_is("healthy", None),
    )
    .await;
}

#[tokio::test]
async fn wrong_or_missing_tokens_and_unknown_checks_record_nothing() {
    let (d, token) = daemon("period = \"1h\"").await;
    for (path, tok, want) in [
        ("/push/job", Some("wrong"), 401),
        ("/push/job", None, 401),
        ("/push/job/fail", Some(&token[..token.len() - 1]), 401),
        ("/push/nope", Some(token.as_str()), 404),
    ] {
        let (code, body) = post(&d, path, tok, "").await;
        assert_eq!(code, want, "{path}: {body}");
    }
    // A GET is not a push.
    assert_eq!(d.get("/push/job").await.0, 405);
    let c = d
        .wait_check("job", "reported", WAIT, |v| v["last_run"].is_string())
        .await;
    assert_eq!(c["status"], "unknown", "{c}");
    assert_eq!(c["details"]["pushes"], 0, "{c}");
    let (_, all) = d.get("/health").await;
    assert!(!all.contains(&token), "the token leaked into /health");
}

#[tokio::test]
async fn healthy_exactly_until_period_plus_grace() {
    let (d, token) =
        daemon("period = \"600ms\"\ngrace = \"400ms\"\ninterval = \"100ms\"\ntimeout = \"50ms\"")
            .await;
    let pushed = Instant::now();
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    d.wait_check("job", "healthy", WAIT, status_is("healthy", None))
        .await;
    let c = d
        .wait_check(
            "job",
            "unhealthy",
            WAIT,
            status_is("unhealthy", Some("timeout")),
        )
        .await;
    let took = pushed.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "failed before period + grace: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "noticed late: {took:?}");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or("")
            .contains("no heartbeat for"),
        "{c}"
    );
}

#[tokio::test]
async fn never_pushed_is_unknown_then_fails_after_period_plus_grace() {
    let started = Instant::now();
    let (d, _) =
        daemon("period = \"500ms\"\ngrace = \"300ms\"\ninterval = \"100ms\"\ntimeout = \"50ms\"")
            .await;
    let c = d
        .wait_check(
            "job",
            "unhealthy",
            WAIT,
            status_is("unhealthy", Some("timeout")),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(
        c["message"]
            .as_str()
            .unwrap_or("")
            .contains("no heartbeat since healthd started"),
        "{c}"
    );
}

#[tokio::test]
async fn a_thousand_pushes_in_a_burst_are_each_counted_or_refused() {
    let (d, token) = daemon("period = \"1h\"\ninterval = \"30s\"").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, token) = (d.client.clone(), d.url("/push/job"), token.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..125 {
                    let r = client.post(&url).bearer_auth(&token).send().await;
                    codes.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
                }
                codes
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.expect("burst task"));
    }
    let count = |c: u16| codes.iter().filter(|x| **x == c).count();
    let (ok, limited, shed) = (count(200), count(429), count(503));
    assert_eq!(ok + limited + shed, 1000, "other answers: {codes:?}");
    assert!(ok >= 60, "the burst allowance was accepted: {ok}");
    assert!(limited > 0, "the rate limit applied");
    // A refused push publishes nothing; one more, once the bucket has refilled, publishes
    // the counters as they stand.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    let c = d
        .wait_check("job", "the last push counted", WAIT, |v| {
            v["details"]["pushes"] == ok + 1
        })
        .await;
    assert_eq!(c["status"], "healthy", "{c}");
    assert_eq!(c["details"]["refused"], limited, "{c}");
    println!("PUSH burst of 1000: {ok} accepted, {limited} rate limited (429), {shed} shed (503)");
}

#[tokio::test]
async fn pushes_survive_a_reload_of_an_unchanged_check() {
    let (mut d, token) = daemon("period = \"1h\"\ninterval = \"30s\"").await;
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    d.wait_check("job", "healthy", WAIT, status_is("healthy", None))
        .await;
    let main = std::fs::read_to_string(d.dir.path()).expect("read config");
    d.dir.set_config(&format!(
        "{main}\n[[checks]]\nname = \"other\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 1\n"
    ));
    d.daemon.reload().await.expect("reload accepted");
    d.wait_check("other", "reported", WAIT, |v| v["last_run"].is_string())
        .await;
    let c = job(&d).await;
    assert_eq!(c["status"], "healthy", "{c}");
    // The token file is re-read on reload; the next push still counts on the same slot.
    assert_eq!(post(&d, "/push/job", Some(&token), "").await.0, 200);
    d.wait_check("job", "two pushes", WAIT, |v| v["details"]["pushes"] == 2)
        .await;
}
