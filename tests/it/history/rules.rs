//! `healthd rules` and `examples/fleet/`: the generated rules pass `promtool check rules`,
//! the page and ticket alerts fire at the minutes the fleet example's `promtool test
//! rules` file works out by hand, and the example files parse and agree with each other.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::config::ConfigDir;
use crate::support::daemon::binary;
use crate::support::{CMD_TIMEOUT, output_text, repo_path, run_with_timeout};

fn rules_for(config: &Path) -> String {
    let out = run_with_timeout(
        Command::new(binary())
            .args(["rules", "--config"])
            .arg(config),
        CMD_TIMEOUT,
    )
    .expect("healthd rules runs");
    assert!(out.status.success(), "{}", output_text(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn promtool(args: &[&str], dir: &Path) {
    let out = run_with_timeout(
        Command::new("promtool").args(args).current_dir(dir),
        CMD_TIMEOUT,
    )
    .expect("promtool (Debian package prometheus) is installed by scripts/test");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}",
        output_text(&out)
    );
}

#[test]
fn the_fleet_rules_are_generated_valid_and_fire_at_the_right_minute() {
    let fleet = repo_path("examples/fleet");
    let generated = rules_for(&fleet.join("healthd.toml"));
    let shipped = std::fs::read_to_string(fleet.join("healthd-rules.yml")).expect("rules file");
    assert_eq!(
        generated, shipped,
        "examples/fleet/healthd-rules.yml is stale: regenerate it with \
         `healthd rules --config examples/fleet/healthd.toml`"
    );
    promtool(&["check", "rules", "healthd-rules.yml"], &fleet);
    // Ticket at 486m, page at 491m, and neither a minute earlier (see the file's comment).
    promtool(&["test", "rules", "healthd-rules.test.yml"], &fleet);
}

#[test]
fn windows_scale_and_a_config_without_slos_gives_no_rules() {
    let dir = ConfigDir::new(
        "[[checks]]\nname = \"web\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 80\nslo = { objective = 99, window = \"7d\", min_runs = 3 }\n",
    );
    let rules = rules_for(&dir.path());
    // A 7-day SLO: the 1h/5m pair becomes 14m/1m, 3d/6h becomes 16h48m (1008m)/84m.
    for w in [
        "ratio_rate14m",
        "ratio_rate1m",
        "ratio_rate1008m",
        "ratio_rate84m",
        "ratio_rate7d",
    ] {
        assert!(rules.contains(w), "{w} missing:\n{rules}");
    }
    assert!(rules.contains(">= 3"), "min_runs guard:\n{rules}");
    std::fs::write(dir.dir.path().join("rules.yml"), &rules).expect("write");
    promtool(&["check", "rules", "rules.yml"], dir.dir.path());

    dir.set_config("[[checks]]\nname = \"web\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 80\n");
    let none = rules_for(&dir.path());
    assert!(none.ends_with("groups: []\n"), "{none}");
    std::fs::write(dir.dir.path().join("none.yml"), &none).expect("write");
    promtool(&["check", "rules", "none.yml"], dir.dir.path());
}

#[test]
fn the_fleet_manifests_parse_and_agree() {
    let fleet = repo_path("examples/fleet");
    let read = |f: &str| std::fs::read_to_string(fleet.join(f)).expect(f);
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read("daemonset.yaml")).expect("daemonset.yaml is YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"]);
    // The ConfigMap carries examples/fleet/healthd.toml verbatim, and it is valid.
    assert_eq!(
        docs[0]["data"]["healthd.toml"].as_str(),
        Some(read("healthd.toml").as_str())
    );
    let cfg = ConfigDir::new(&read("healthd.toml"))
        .load()
        .expect("fleet config is valid");
    assert!(cfg.checks.iter().all(|c| c.slo.is_some()));
    // The history file lives on the hostPath volume mounted where [history] path points.
    let history = cfg.history.path.expect("a history path");
    let pod = &docs[1]["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts");
    let mount = mounts
        .iter()
        .find(|m| m["name"] == "history")
        .expect("history mount");
    assert_eq!(
        history.parent().and_then(|p| p.to_str()),
        mount["mountPath"].as_str()
    );
    assert_eq!(pod["volumes"][1]["hostPath"]["path"], mount["mountPath"]);
    assert_eq!(
        pod["containers"][0]["args"],
        serde_json::json!(["run", "--config", "/etc/healthd/healthd.toml"])
    );

    let collector: Value =
        serde_saphyr::from_str(&read("otel-collector.yaml")).expect("collector config is YAML");
    let metrics = &collector["service"]["pipelines"]["metrics"];
    assert_eq!(metrics["receivers"], serde_json::json!(["otlp"]));
    for exporter in metrics["exporters"].as_array().expect("exporters") {
        let name = exporter.as_str().expect("name");
        assert!(
            collector["exporters"][name].is_object(),
            "exporter {name} is defined"
        );
    }
    assert!(collector["receivers"]["otlp"]["protocols"]["grpc"].is_object());
    // healthd's [telemetry] endpoint is the collector's OTLP gRPC port.
    assert!(
        cfg.telemetry
            .endpoint
            .as_deref()
            .is_some_and(|e| e.ends_with(":4317"))
    );
}
