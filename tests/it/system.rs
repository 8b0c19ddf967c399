//! `kind = "disk"` (and a sanity read of cpu/memory) against this machine, cross-checked
//! with `df`, the tool operators compare it with.

use healthd::check::Probe;
use healthd::model::{Level, Outcome, Reason};

use crate::support::config::one_check;
use crate::support::daemon::TestDaemon;

async fn run(toml: &str) -> Outcome {
    let c = one_check(toml);
    let mut p = Probe::build(&c.probe, c.timeout).expect("build");
    p.run().await
}

/// `(used, available)` bytes of the file system holding `path`, from `df -B1`.
fn df(path: &str) -> (u64, u64) {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=used,avail", path])
        .output()
        .expect("run df");
    assert!(out.status.success(), "df failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("df data line");
    let mut cols = line.split_whitespace().map(|c| c.parse::<u64>().unwrap());
    (cols.next().unwrap(), cols.next().unwrap())
}

#[tokio::test]
async fn disk_percent_matches_df() {
    let o = run("[[checks]]\nname = \"disk\"\nkind = \"disk\"\nmounts = [\"/\"]\n").await;
    assert_ne!(o.level, Level::Failed, "{o:?}");
    let mount = &o.details["mounts"][0];
    let ours = mount["percent_used"].as_f64().unwrap();
    let (used, avail) = df("/");
    let theirs = used as f64 * 100.0 / (used + avail) as f64;
    // Files change between the two reads; a point of slack is plenty.
    assert!(
        (ours - theirs).abs() < 1.0,
        "healthd says {ours}% used, df says {theirs:.1}%: {o:?}"
    );
    assert_eq!(mount["mountpoint"], "/");
    let total = mount["total_bytes"].as_u64().unwrap();
    let used_bytes = mount["used_bytes"].as_u64().unwrap();
    assert!(used_bytes <= total);
}

#[tokio::test]
async fn a_path_that_does_not_exist_is_not_measured_elsewhere() {
    let o = run(
        "[[checks]]\nname = \"disk\"\nkind = \"disk\"\nmounts = [\"/\", \"/no-such-dir-for-healthd\"]\n",
    )
    .await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Config));
    assert_eq!(
        o.message,
        "cannot access /no-such-dir-for-healthd: No such file or directory (os error 2)"
    );
}

#[tokio::test]
async fn a_symlink_is_measured_where_it_points() {
    // /dev/shm is a tmpfs of its own on Linux; a link to it from the root file system must
    // report the tmpfs, not /.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("shm");
    std::os::unix::fs::symlink("/dev/shm", &link).unwrap();
    let o = run(&format!(
        "[[checks]]\nname = \"disk\"\nkind = \"disk\"\nmounts = [\"{}\"]\n",
        link.display()
    ))
    .await;
    assert_ne!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.details["mounts"][0]["mountpoint"], "/dev/shm", "{o:?}");
    assert_eq!(o.details["mounts"][0]["path"], link.display().to_string());
    assert_eq!(o.details["mounts"][0]["fs_type"], "tmpfs", "{o:?}");
}

#[tokio::test]
async fn cpu_and_memory_read_sane_values() {
    let o = run("[[checks]]\nname = \"cpu\"\nkind = \"cpu\"\n").await;
    let cpu = o.details["percent_used"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{o:?}");
    assert!(o.details["logical_cpus"].as_u64().unwrap() >= 1);
    let o = run("[[checks]]\nname = \"mem\"\nkind = \"memory\"\n").await;
    let total = o.details["total_bytes"].as_u64().unwrap();
    let used = o.details["used_bytes"].as_u64().unwrap();
    assert!(total > 0 && used <= total, "{o:?}");
    let pct = o.details["percent_used"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&pct), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_metrics_agree_with_the_check() {
    let d = TestDaemon::start(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"200ms\"\n\n[[checks]]\nname = \"disk\"\nkind = \"disk\"\n",
    )
    .await;
    d.wait_runs("disk", 1, std::time::Duration::from_secs(10))
        .await;
    let snap = d.snapshot();
    let percent = snap.check("disk").unwrap().details["mounts"][0]["percent_used"]
        .as_f64()
        .unwrap();
    let text = d.get("/metrics").await.1;
    let value = |prefix: &str, needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains(needle) && l.contains("mountpoint=\"/\""))
            .unwrap_or_else(|| panic!("no {prefix} {needle} in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let ratio = value("system_filesystem_utilization_ratio{", "");
    assert!(
        (ratio * 100.0 - percent).abs() < 1.0,
        "metric {ratio} vs check {percent}%"
    );
    let used = value("system_filesystem_usage_bytes{", "state=\"used\"");
    let free = value("system_filesystem_usage_bytes{", "state=\"free\"");
    let reserved = value("system_filesystem_usage_bytes{", "state=\"reserved\"");
    let total = snap.check("disk").unwrap().details["mounts"][0]["total_bytes"]
        .as_f64()
        .unwrap();
    assert!(
        ((used + free + reserved) - total).abs() / total < 0.01,
        "states add up to the size: {used} + {free} + {reserved} vs {total}"
    );
}
