//! Configuration: every invalid fixture in `tests/fixtures/` with the exact lines
//! `healthd validate` prints for it (`invalid-*.expected`), the shipped `probes/` examples,
//! the embedded default, environment overrides and drop-ins.
//!
//! A fixture is `invalid-NAME.toml`, or a directory `invalid-NAME/` holding `healthd.toml`
//! and `probes.d/`; `invalid-NAME.env` (optional) holds `VAR=value` lines given as the
//! environment. In `.expected`, `$FIXTURES` stands for the fixtures directory and `$KINDS`
//! for the list of registered kinds (see `support::config::kinds_list`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use healthd::check::ProbeConfig;
use healthd::config::{self, EMBEDDED_DEFAULT, Sources};
use healthd::model::Group;

use crate::support::config::{ConfigDir, kinds_list};
use crate::support::repo_path;

/// One invalid fixture: its config path, environment and expected output.
struct Fixture {
    name: String,
    config: PathBuf,
    env: HashMap<String, String>,
    expected: String,
}

fn fixtures() -> Vec<Fixture> {
    let dir = repo_path("tests/fixtures");
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if !file.starts_with("invalid-") {
            continue;
        }
        let name = if path.is_dir() {
            file.clone()
        } else if let Some(n) = file.strip_suffix(".toml") {
            n.to_string()
        } else {
            continue;
        };
        let config = if path.is_dir() {
            path.join("healthd.toml")
        } else {
            path.clone()
        };
        let expected_path = dir.join(format!("{name}.expected"));
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{} needs {}: {e}", file, expected_path.display()));
        let env = std::fs::read_to_string(dir.join(format!("{name}.env")))
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').expect("VAR=value");
                        (k.to_string(), v.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Fixture {
            name,
            config,
            env,
            expected: expected
                .replace("$FIXTURES", &dir.display().to_string())
                .replace("$KINDS", &kinds_list()),
        });
    }
    out
}

/// The lines `healthd validate` prints on stderr for these errors.
fn rendered(errors: &[config::ConfigError]) -> String {
    let mut s = String::new();
    for e in errors {
        s.push_str(&format!("error: {e}\n"));
    }
    s.push_str(&format!("{} configuration problem(s)\n", errors.len()));
    s
}

#[test]
fn every_invalid_fixture_gives_exactly_its_expected_errors() {
    let all = fixtures();
    let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    // The mistakes this suite promises to cover; a fixture must not quietly disappear.
    for required in [
        "invalid-unknown-top-level-key",
        "invalid-unknown-check-key",
        "invalid-unknown-kind",
        "invalid-missing-name",
        "invalid-duplicate-name",
        "invalid-timeout-not-below-interval",
        "invalid-bad-url",
        "invalid-port-out-of-range",
        "invalid-thresholds",
        "invalid-bad-duration",
        "invalid-bad-regex",
        "invalid-toml-syntax",
        "invalid-drop-in-stray-key",
        "invalid-env-override",
        "invalid-many",
        "invalid-huge-duration",
        "invalid-duration-type",
        "invalid-limits",
        "invalid-env-kind",
        "invalid-dsn",
        "invalid-names",
        "invalid-notify",
        "invalid-depends-on",
        "invalid-maintenance",
        "invalid-history",
    ] {
        assert!(names.contains(&required), "fixture {required} missing");
    }
    let mut failures = Vec::new();
    for f in &all {
        let result = config::load(&Sources {
            config: Some(f.config.clone()),
            probes_dir: None,
            env: Some(f.env.clone()),
        });
        let errors = match result {
            Ok(_) => {
                failures.push(format!("{}: loaded without errors", f.name));
                continue;
            }
            Err(e) => e,
        };
        let got = rendered(&errors);
        if got != f.expected {
            failures.push(format!(
                "{}:\n--- expected\n{}--- got\n{}",
                f.name, f.expected, got
            ));
        }
        // Every error names its file (or variable) and, except TOML syntax, a key.
        for e in &errors {
            assert!(!e.file.is_empty(), "{}: {e}", f.name);
            assert!(
                !e.key.is_empty() || f.name == "invalid-toml-syntax",
                "{}: no key in {e}",
                f.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn several_mistakes_are_all_reported_at_once() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "invalid-many")
        .unwrap();
    let errors = config::load(&Sources {
        config: Some(f.config),
        probes_dir: None,
        env: Some(HashMap::new()),
    })
    .unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "server.colour",
        "server.listen",
        "defaults.failure_threshold",
        "checks.\"api\".expect_status",
        "checks.\"api\".timeout",
        "checks.\"db\".port",
        "checks.\"mem\".groups[1]",
        "checks.\"mem\".degraded_above",
        "checks[3].name",
    ] {
        assert!(keys.contains(&key), "{key} not reported: {keys:?}");
    }
}

#[test]
fn toml_syntax_errors_carry_line_and_column() {
    let errors = ConfigDir::new("[server]\nlisten = \"127.0.0.1:1\"\n\n[[checks]\nname = 1\n")
        .load()
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].reason.starts_with("line 4, column "),
        "{}",
        errors[0]
    );
}

#[test]
fn shipped_probe_examples_validate_as_drop_ins() {
    let dir = repo_path("probes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    // One ready-to-copy example per kind, named after it.
    for kind in healthd::check::KINDS {
        let required = format!("{kind}.toml");
        assert!(names.contains(&required), "probes/{required} missing");
    }
    for file in &files {
        // Each example on its own, exactly as an operator copies it into probes.d/.
        let cfg = ConfigDir::new("");
        let text = std::fs::read_to_string(file).unwrap();
        cfg.drop_in(file.file_name().unwrap().to_str().unwrap(), &text);
        let loaded = cfg
            .load()
            .unwrap_or_else(|e| panic!("{} does not validate:\n{}", file.display(), rendered(&e)));
        assert!(
            !loaded.checks.is_empty(),
            "{} defines no check",
            file.display()
        );
        let stem = file.file_stem().unwrap().to_string_lossy();
        if stem != "system" {
            assert!(
                loaded.checks.iter().all(|c| c.kind() == stem),
                "{} holds checks of another kind",
                file.display()
            );
        }
    }
    // All examples together (as the package installs them side by side) do not clash.
    let cfg = ConfigDir::new("");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        cfg.drop_in(file.file_name().unwrap().to_str().unwrap(), &text);
    }
    cfg.load()
        .unwrap_or_else(|e| panic!("probes/ together:\n{}", rendered(&e)));
}

#[test]
fn embedded_default_validates() {
    // Written to a file so /etc/healthd on this machine cannot change the result.
    let cfg = ConfigDir::new(EMBEDDED_DEFAULT)
        .load()
        .expect("embedded default");
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:9750");
    let kinds: Vec<&str> = cfg.checks.iter().map(|c| c.kind()).collect();
    assert_eq!(kinds, ["cpu", "memory", "disk"]);
    for c in &cfg.checks {
        assert_eq!(c.groups, [Group::Readiness]);
        assert!(c.timeout < c.interval);
    }
}

#[test]
fn defaults_apply_to_checks_that_do_not_set_them() {
    let cfg = ConfigDir::new(
        r#"
[defaults]
interval = "30s"
timeout = "3s"
failure_threshold = 5
success_threshold = 2

[[checks]]
name = "a"
kind = "tcp"
host = "127.0.0.1"
port = 1

[[checks]]
name = "b"
kind = "tcp"
host = "127.0.0.1"
port = 2
interval = "1m"
timeout = 1
critical = false
groups = ["liveness", "startup", "liveness"]
failure_threshold = 1
"#,
    )
    .load()
    .unwrap();
    let (a, b) = (&cfg.checks[0], &cfg.checks[1]);
    assert_eq!(
        (a.interval, a.timeout),
        (Duration::from_secs(30), Duration::from_secs(3))
    );
    assert_eq!((a.failure_threshold, a.success_threshold), (5, 2));
    assert!(a.critical);
    assert_eq!(a.groups, [Group::Readiness]);
    assert_eq!(
        (b.interval, b.timeout),
        (Duration::from_secs(60), Duration::from_secs(1))
    );
    assert_eq!((b.failure_threshold, b.success_threshold), (1, 2));
    assert!(!b.critical);
    assert_eq!(b.groups, [Group::Liveness, Group::Startup]);
}

#[test]
fn environment_overrides_take_effect() {
    let dir = ConfigDir::new(
        r#"
[[checks]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = 5432
"#,
    );
    let cfg = config::load(&dir.sources_with_env(&[
        ("HEALTHD_SERVER__LISTEN", "0.0.0.0:9999"),
        ("HEALTHD_SERVER__SHUTDOWN_DELAY", "1s"),
        ("HEALTHD_DEFAULTS__INTERVAL", "30s"),
        ("HEALTHD_GROUPS__READINESS__FAIL_ON_DEGRADED", "true"),
        ("HEALTHD_CHECKS__DB__PORT", "6543"),
        ("HEALTHD_CHECKS__DB__CRITICAL", "false"),
        ("UNRELATED_VARIABLE", "x"),
    ]))
    .unwrap();
    assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:9999");
    assert_eq!(cfg.server.shutdown_delay, Duration::from_secs(1));
    assert!(cfg.group_options(Group::Readiness).fail_on_degraded);
    let db = &cfg.checks[0];
    assert_eq!(db.interval, Duration::from_secs(30));
    assert!(!db.critical);
    match &db.probe {
        ProbeConfig::Tcp(t) => assert_eq!(t.port, 6543),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn drop_ins_next_to_the_config_are_read_in_name_order() {
    let dir = ConfigDir::new(
        "[[checks]]\nname = \"main\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 1\n",
    );
    dir.drop_in(
        "20-second.toml",
        "[[checks]]\nname = \"second\"\nkind = \"cpu\"\n",
    );
    dir.drop_in(
        "10-first.toml",
        "[[checks]]\nname = \"first-a\"\nkind = \"memory\"\n\n[[checks]]\nname = \"first-b\"\nkind = \"disk\"\n",
    );
    // Not *.toml: ignored (a README, a disabled probe).
    dir.drop_in("README", "not toml at all [");
    dir.drop_in(
        "30-off.toml.disabled",
        "[[checks]]\nname = \"off\"\nkind = \"cpu\"\n",
    );
    let cfg = dir.load().unwrap();
    let names: Vec<&str> = cfg.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["main", "first-a", "first-b", "second"]);
    assert_eq!(
        Path::new(&cfg.origins["second"]),
        dir.probes_dir().join("20-second.toml")
    );
    assert_eq!(Path::new(&cfg.origins["main"]), dir.path());

    // An explicit --probes-dir replaces the one next to the file.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("x.toml"),
        "[[checks]]\nname = \"elsewhere\"\nkind = \"cpu\"\n",
    )
    .unwrap();
    let cfg = config::load(&Sources {
        config: Some(dir.path()),
        probes_dir: Some(other.path().to_path_buf()),
        env: Some(HashMap::new()),
    })
    .unwrap();
    let names: Vec<&str> = cfg.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["main", "elsewhere"]);
}

#[test]
fn duplicate_names_across_two_drop_ins() {
    let dir = ConfigDir::new("");
    dir.drop_in("a.toml", "[[checks]]\nname = \"x\"\nkind = \"cpu\"\n");
    dir.drop_in("b.toml", "[[checks]]\nname = \"x\"\nkind = \"memory\"\n");
    let errors = dir.load().unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "checks.\"x\".name");
    assert!(errors[0].file.ends_with("b.toml"));
    assert!(errors[0].reason.contains("a.toml"), "{}", errors[0]);
}

#[test]
fn missing_config_file_is_one_clear_error() {
    let errors = config::load(&Sources::file("/nonexistent/healthd.toml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, "/nonexistent/healthd.toml");
    assert!(
        errors[0].reason.starts_with("cannot read:"),
        "{}",
        errors[0]
    );
}
