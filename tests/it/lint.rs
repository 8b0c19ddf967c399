//! `healthd lint`, run as the binary: every rule has a fixture in `tests/fixtures/lint/<name>/`
//! (`healthd.toml` and/or `pod.yaml`, optional `args`) whose exact output is in `expected`;
//! together the fixtures show every rule that `docs/lint.md` lists; and the shipped examples
//! lint clean, warnings included.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use healthd::check::KINDS;
use healthd::lint::HOST_KINDS;

use crate::support::{output_text, repo_path};

/// `healthd lint ARGS` in `dir`, with no `HEALTHD_*` variables from the test's environment.
fn lint(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthd"))
        .arg("lint")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run healthd lint")
}

/// The rules `docs/lint.md` documents: the first column of its rule table.
fn documented_rules() -> BTreeSet<String> {
    let doc = fs::read_to_string(repo_path("docs/lint.md")).expect("read docs/lint.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(rule, _)| rule.to_string())
        .collect()
}

#[test]
fn every_fixture_gives_its_expected_output_and_exit_code() {
    let root = repo_path("tests/fixtures/lint");
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .expect("read tests/fixtures/lint")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut shown = BTreeSet::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut args: Vec<String> = Vec::new();
        if dir.join("healthd.toml").exists() {
            args.extend(["--config".into(), "healthd.toml".into()]);
        }
        if dir.join("pod.yaml").exists() {
            args.extend(["--pod".into(), "pod.yaml".into()]);
        }
        if let Ok(extra) = fs::read_to_string(dir.join("args")) {
            args.extend(extra.split_whitespace().map(String::from));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lint(dir, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected = fs::read_to_string(dir.join("expected"))
            .unwrap_or_else(|e| panic!("{name}/expected: {e}"));
        assert_eq!(
            stdout, expected,
            "{name}: healthd lint {args:?} printed something else"
        );
        assert!(out.stderr.is_empty(), "{name}: {}", output_text(&out));
        let errors = stdout.lines().any(|l| l.starts_with("error["));
        assert_eq!(
            out.status.code(),
            Some(i32::from(errors)),
            "{name}: exit 1 exactly when there is an error\n{}",
            output_text(&out)
        );
        for line in stdout.lines() {
            if let Some(rule) = ["error[", "warning["]
                .iter()
                .find_map(|p| line.strip_prefix(p))
                .and_then(|rest| rest.split_once(']'))
                .map(|(rule, _)| rule.to_string())
            {
                shown.insert(rule);
            }
        }
    }
    assert_eq!(
        shown,
        documented_rules(),
        "the fixtures must show exactly the rules docs/lint.md documents"
    );
}

#[test]
fn warnings_alone_exit_0_and_strict_makes_them_errors() {
    let dir = repo_path("tests/fixtures/lint/interval-below-twice-timeout");
    let plain = lint(&dir, &["--config", "healthd.toml"]);
    assert_eq!(plain.status.code(), Some(0), "{}", output_text(&plain));
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("warning["));
    let strict = lint(&dir, &["--config", "healthd.toml", "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", output_text(&strict));
    assert!(String::from_utf8_lossy(&strict.stdout).starts_with("error["));
}

#[test]
fn the_kubernetes_example_lints_clean() {
    // No --config: the example's ConfigMap is what its healthd container reads.
    let out = lint(
        &repo_path(""),
        &["--pod", "examples/kubernetes/pod.yaml", "--strict"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        stdout,
        "ok: examples/kubernetes/pod.yaml: 1 workload(s), 3 probe(s) on healthd; config examples/kubernetes/pod.yaml (ConfigMap/shop-api-healthd healthd.toml) (4 check(s))\n"
    );
}

#[test]
fn the_shipped_config_and_probes_lint_clean() {
    let out = lint(
        &repo_path(""),
        &[
            "--config",
            "examples/healthd.toml",
            "--probes-dir",
            "probes",
            "--strict",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: examples/healthd.toml ("));
}

/// `liveness-dependency` treats every kind as a dependency except the host kinds: those are
/// the kinds whose file is under `src/check/system/`, so a new one cannot be missed.
#[test]
fn host_kinds_are_the_kinds_under_check_system() {
    let registry = fs::read_to_string(repo_path("src/check/mod.rs")).expect("read the registry");
    let system: BTreeSet<&str> = registry
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#[path = \"system/"))
        .filter_map(|rest| rest.split_once(".rs\""))
        .map(|(kind, _)| kind)
        .collect();
    assert!(
        system.contains("cpu"),
        "registry lines changed shape: {system:?}"
    );
    let host: BTreeSet<&str> = HOST_KINDS.iter().copied().collect();
    assert_eq!(host, system);
    assert!(host.iter().all(|k| KINDS.contains(k)));
}
