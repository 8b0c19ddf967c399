//! Hostile and careless configs: absurd durations, names that try to forge output or
//! collide, and values of absurd length. Each must be refused at validation with an error
//! naming the key, and nothing from the config may reach a terminal, a log or `/health`
//! unescaped or unbounded. (Drop-in files: `drop_ins.rs`; exact messages: the fixtures.)

use std::time::Duration;

use healthd::check::{Probe, ProbeConfig, TcpConfig};
use healthd::config::{ConfigError, MAX_FILE_BYTES, MAX_STRING_BYTES};
use healthd::model::{Level, MAX_MESSAGE};

use crate::support::config::ConfigDir;
use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::peers::{ECHO, TcpPeer, live_port};
use crate::support::toml_str;

fn errors_of(config: &str) -> Vec<ConfigError> {
    ConfigDir::new(config)
        .load()
        .expect_err("the config should be refused")
}

fn tcp(name: &str, extra: &str) -> String {
    format!(
        "[[checks]]\nname = {}\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 1\n{extra}\n",
        toml_str(name)
    )
}

/// No part of an error may hold a control character, and none may be huge.
fn assert_printable(errors: &[ConfigError]) {
    for e in errors {
        let line = e.to_string();
        assert!(!line.chars().any(char::is_control), "unescaped: {line:?}");
        assert!(
            line.len() < 2 * MAX_MESSAGE,
            "{} bytes: {}",
            line.len(),
            &line[..200]
        );
    }
}

#[test]
fn durations_are_bounded_at_one_year() {
    assert!(
        ConfigDir::new(&tcp("a", "interval = \"365d\"\ntimeout = \"364d\""))
            .load()
            .is_ok()
    );
    for (value, reason) in [
        (
            "9223372036854775807",
            "too long: 9223372036854775807 seconds (at most 365 days)",
        ),
        ("\"366d\"", "too long: \"366d\" (at most 365 days)"),
        (
            "\"9223372036854775806s\"",
            "too long: \"9223372036854775806s\" (at most 365 days)",
        ),
        (
            "\"99999999999999999999999s\"",
            "too long: \"99999999999999999999999s\" (at most 365 days)",
        ),
    ] {
        let errors = errors_of(&tcp("a", &format!("interval = {value}")));
        assert_eq!(errors.len(), 1, "{value}: {errors:?}");
        assert_eq!(errors[0].key, "checks.\"a\".interval");
        assert_eq!(errors[0].reason, reason);
    }
    // Every duration key, not only the interval (here in [server] and [defaults]).
    let errors =
        errors_of("[server]\nstall_after = \"400d\"\n[defaults]\nconfirm_after = \"10000d\"\n");
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["server.stall_after", "defaults.confirm_after"],
        "{errors:?}"
    );
}

/// Deadlines are advanced with checked arithmetic: a probe built with the largest timeout
/// there is runs and answers (it used to panic: "overflow when adding duration to instant").
#[tokio::test]
async fn a_probe_with_an_absurd_timeout_runs_without_overflow() {
    let port = live_port();
    let config = ProbeConfig::Tcp(Box::new(TcpConfig {
        host: "127.0.0.1".into(),
        port,
        send: None,
        expect: Some("PONG".into()),
        expect_regex: None,
    }));
    let mut probe = Probe::build(&config, Duration::MAX).expect("build");
    let outcome = tokio::time::timeout(Duration::from_secs(10), probe.run())
        .await
        .expect("the probe answers");
    // The peer accepts and closes: a protocol failure, not a panic.
    assert_eq!(outcome.level, Level::Failed, "{outcome:?}");
    assert!(
        outcome.message.contains("connection closed"),
        "{}",
        outcome.message
    );
}

#[test]
fn check_names_outside_the_documented_set_are_refused() {
    let longest = "n".repeat(64);
    for good in ["api", "a.b-c_D9", "v1.2", "...", longest.as_str()] {
        let dir = ConfigDir::new(&tcp(good, ""));
        assert!(dir.load().is_ok(), "{good:?} should be a valid name");
    }
    let too_long = "n".repeat(65);
    for bad in [
        ".",
        "..",
        "",
        "a b",
        "a/b",
        "ü",
        "x\nok: 9 check(s)",
        "\u{1b}[31mred",
        "a\u{202e}b",
        too_long.as_str(),
    ] {
        let errors = errors_of(&tcp(bad, ""));
        assert_eq!(errors.len(), 1, "{bad:?}: {errors:?}");
        assert_eq!(errors[0].key, "checks[0].name", "{bad:?}");
        assert!(
            errors[0].reason.starts_with("invalid name \""),
            "{errors:?}"
        );
        assert!(
            errors[0].reason.contains("not \".\" or \"..\""),
            "{errors:?}"
        );
        assert_printable(&errors);
    }
}

#[test]
fn names_are_unique_ignoring_case() {
    let errors = errors_of(&format!("{}{}", tcp("cache", ""), tcp("Cache", "")));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "checks.\"Cache\".name");
    assert!(
        errors[0].reason.contains("differs only in case"),
        "{errors:?}"
    );
    // The same in a drop-in.
    let dir = ConfigDir::new(&tcp("cache", ""));
    dir.drop_in("10-cache.toml", &tcp("CACHE", ""));
    let errors = dir.load().expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].file.ends_with("10-cache.toml"), "{errors:?}");
    // So an override matched ignoring case always names exactly one check.
    let dir = ConfigDir::new(&tcp("cache", ""));
    let cfg =
        healthd::config::load(&dir.sources_with_env(&[("HEALTHD_CHECKS__CACHE__PORT", "6380")]))
            .expect("valid");
    match &cfg.checks[0].probe {
        ProbeConfig::Tcp(t) => assert_eq!(t.port, 6380),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_string_is_bounded_at_validation() {
    let huge = "h".repeat(100_000);
    let cases = [
        (
            tcp("a", "").replace("\"127.0.0.1\"", &toml_str(&huge)),
            "checks.\"a\".host",
        ),
        (
            format!("[[checks]]\nname = \"w\"\nkind = \"http\"\nurl = \"http://x/{huge}\"\n"),
            "checks.\"w\".url",
        ),
        (
            format!(
                "[[checks]]\nname = \"w\"\nkind = \"http\"\nurl = \"http://x/\"\nheaders = {{ X-Big = \"{huge}\" }}\n"
            ),
            "checks.\"w\".headers.X-Big",
        ),
        (
            tcp("a", &format!("expect = \"{huge}\"")),
            "checks.\"a\".expect",
        ),
        (
            format!("[telemetry]\nendpoint = \"http://{huge}\"\n"),
            "telemetry.endpoint",
        ),
        (tcp(&huge, ""), "checks[0].name"),
    ];
    for (config, key) in cases {
        let errors = errors_of(&config);
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            errors.iter().any(|e| e.key == key
                && e.reason.starts_with("too long: ")
                && e.reason.ends_with(&format!(
                    "bytes (a value is at most {MAX_STRING_BYTES} bytes)"
                ))),
            "{key}: {shown:?}"
        );
        assert_printable(&errors);
    }
    // A value at the bound is fine.
    let at_bound = "h".repeat(MAX_STRING_BYTES - 8);
    assert!(
        ConfigDir::new(&tcp("a", &format!("expect = \"{at_bound}\"")))
            .load()
            .is_ok()
    );
    // From the environment: the error names the variable.
    let dir = ConfigDir::new(&tcp("a", ""));
    let errors =
        healthd::config::load(&dir.sources_with_env(&[("HEALTHD_CHECKS__A__HOST", &huge)]))
            .expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "environment (HEALTHD_CHECKS__A__HOST)");
    assert_eq!(
        errors[0].reason,
        "too long: 100000 bytes (a value is at most 4096 bytes)"
    );
}

#[test]
fn a_config_file_over_the_size_bound_is_refused_unparsed() {
    let dir = ConfigDir::new(&"# filler\n".repeat(MAX_FILE_BYTES as usize / 9 + 1));
    let errors = dir.load().expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "");
    assert_eq!(
        errors[0].reason,
        format!("too large: more than {MAX_FILE_BYTES} bytes (a config file is at most 4 MiB)")
    );
}

/// `send` is not a secret: a peer that echoes it puts it in the message. What is echoed is
/// bounded and escaped before it is stored, so it cannot forge log lines or flood `/health`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_peer_echoes_is_escaped_and_bounded_in_the_snapshot() {
    let peer = TcpPeer::start(ECHO).await;
    let send = format!(
        "HELLO\u{1b}]0;pwned\u{7}\r\nforged line {}",
        "x".repeat(3_000)
    );
    let check = |name: &str, expect_regex: &str| {
        format!(
            "[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\
             send = {}\nexpect_regex = \"{expect_regex}\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\n",
            peer.addr.port(),
            toml_str(&send)
        )
    };
    // The expected pattern is in the message too: 3,000 bytes of it in "long".
    let long = format!("NEVER{}", "y".repeat(3_000));
    let h = TestDaemon::start(&format!(
        "{}{}",
        check("echo", "NEVER"),
        check("long", &long)
    ))
    .await;
    let message = |name: &'static str| {
        let h = &h;
        eventually_async(
            "the check to fail",
            Duration::from_secs(10),
            move || async move {
                let v = h.find_check(name).await?;
                (v["reason"] == "protocol")
                    .then(|| v["message"].as_str().unwrap_or_default().to_string())
            },
        )
    };
    let echo = message("echo").await;
    assert!(
        echo.contains("got \"HELLO\\u{1b}]0;pwned\\u{7} forged line xxx"),
        "{echo}"
    );
    assert!(!echo.chars().any(char::is_control), "{echo:?}");
    let long = message("long").await;
    assert!(long.len() <= MAX_MESSAGE + 32, "{} bytes", long.len());
    assert!(long.ends_with("more bytes)"), "{long}");
}
