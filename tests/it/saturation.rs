//! The saturation checks against the real kernel: `pressure` under CPU load the test
//! makes, `inodes` on a small tmpfs the test fills (and against `df -i`), `oom` across a
//! real OOM kill in a child memory cgroup.

use std::time::Duration;

use healthd::check::Probe;
use healthd::model::{Level, Outcome, Reason};

use crate::support::config::one_check;
use crate::support::daemon::{TestDaemon, is};
use crate::support::{oom, run_with_timeout};

async fn run(toml: &str) -> Outcome {
    let c = one_check(toml);
    let mut p = Probe::build(&c.probe, c.timeout).expect("build");
    p.run().await
}

/// `(some avg10, avg60, avg300)` of a resource from `/proc/pressure`, in percent.
fn proc_pressure(resource: &str) -> [f64; 3] {
    let text = std::fs::read_to_string(format!("/proc/pressure/{resource}")).unwrap();
    let some = text.lines().find(|l| l.starts_with("some")).unwrap();
    let field = |k: &str| {
        some.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    [field("avg10="), field("avg60="), field("avg300=")]
}

#[tokio::test]
async fn pressure_reads_what_the_kernel_reports() {
    let before = proc_pressure("io");
    let o =
        run("[[checks]]\nname = \"p\"\nkind = \"pressure\"\nresource = \"io\"\nstall = \"some\"\n")
            .await;
    let after = proc_pressure("io");
    assert_eq!(o.details["resource"], "io");
    assert_eq!(o.details["source"], "host");
    for (i, key) in ["avg10", "avg60", "avg300"].iter().enumerate() {
        let ours = o.details[*key].as_f64().unwrap();
        let (lo, hi) = (before[i].min(after[i]), before[i].max(after[i]));
        assert!(
            lo - 0.1 <= ours && ours <= hi + 0.1,
            "{key}: {ours} vs /proc {lo}..{hi}"
        );
    }
    let percent = o.details["percent_stalled"].as_f64().unwrap();
    assert_eq!(o.details["avg10"].as_f64().unwrap(), percent);
    // The default io thresholds (20 / 50) decide the level.
    let want = if percent > 50.0 {
        Level::Failed
    } else if percent > 20.0 {
        Level::Degraded
    } else {
        Level::Ok
    };
    assert_eq!(o.level, want, "{o:?}");
}

#[tokio::test]
async fn pressure_of_a_container_outside_one_is_a_config_failure() {
    let o = run("[[checks]]\nname = \"p\"\nkind = \"pressure\"\nresource = \"memory\"\nsource = \"cgroup\"\n").await;
    assert_eq!(
        (o.level, o.reason),
        (Level::Failed, Some(Reason::Config)),
        "{o:?}"
    );
    assert!(
        o.message.contains("does not run in a cgroup v2 container"),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_pressure_the_test_makes_degrades_the_check() {
    let d = TestDaemon::start(
        "[[checks]]\nname = \"cpu-pressure\"\nkind = \"pressure\"\nresource = \"cpu\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\ndegraded_above = 20\nunhealthy_above = 100\nfailure_threshold = 1\n",
    )
    .await;
    // Two runnable threads per CPU: one always waits, so "some" nears 100%.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burners: Vec<_> = (0..cpus * 2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && std::time::Instant::now() < deadline
                {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let c = d
        .wait_check(
            "cpu-pressure",
            "degraded by the load",
            Duration::from_secs(20),
            |c| is(c, "degraded"),
        )
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    assert_eq!(c["reason"], "threshold", "{c:#}");
    assert!(
        c["details"]["percent_stalled"].as_f64().unwrap() > 20.0,
        "{c:#}"
    );
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .starts_with("cpu pressure (some avg10)"),
        "{c:#}"
    );
}

/// A tmpfs of 100 inodes mounted for the test; unmounted when dropped.
struct SmallTmpfs(tempfile::TempDir);

impl SmallTmpfs {
    fn mount() -> SmallTmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = run_with_timeout(
            std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    "size=1m,nr_inodes=100",
                    "healthd-inodes-test",
                ])
                .arg(dir.path()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.status.success(), "mount a tmpfs (root needed): {out:?}");
        SmallTmpfs(dir)
    }

    fn fill(&self, files: usize) {
        for i in 0..files {
            std::fs::write(self.0.path().join(format!("f{i}")), b"").unwrap();
        }
    }

    fn check(&self) -> String {
        format!(
            "[[checks]]\nname = \"i\"\nkind = \"inodes\"\nmounts = [\"{}\"]\ndegraded_above = 50\nunhealthy_above = 90\n",
            self.0.path().display()
        )
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// `(used, total)` inodes of the file system holding `path`, from `df -i`.
fn df_inodes(path: &std::path::Path) -> (u64, u64) {
    let out = std::process::Command::new("df")
        .args(["--output=iused,itotal"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut cols = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|c| c.parse::<u64>().unwrap());
    (cols.next().unwrap(), cols.next().unwrap())
}

#[tokio::test]
async fn inodes_fill_up_to_degraded_then_unhealthy_as_df_counts_them() {
    let fs = SmallTmpfs::mount();
    let o = run(&fs.check()).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    fs.fill(60);
    let o = run(&fs.check()).await;
    let (used, total) = df_inodes(fs.0.path());
    let m = &o.details["mounts"][0];
    assert_eq!(
        (m["inodes_used"].as_u64(), m["inodes_total"].as_u64()),
        (Some(used), Some(total)),
        "{o:?}"
    );
    assert_eq!(
        (o.level, o.reason),
        (Level::Degraded, Some(Reason::Threshold)),
        "{o:?}"
    );
    fs.fill(95);
    let o = run(&fs.check()).await;
    assert_eq!(
        (o.level, o.reason),
        (Level::Failed, Some(Reason::Threshold)),
        "{o:?}"
    );
    assert!(o.message.starts_with("inodes of "), "{o:?}");
}

#[tokio::test]
async fn inodes_of_root_match_df() {
    let o = run("[[checks]]\nname = \"i\"\nkind = \"inodes\"\n").await;
    let (used, total) = df_inodes(std::path::Path::new("/"));
    let m = &o.details["mounts"][0];
    let ours = m["inodes_used"].as_u64().unwrap() as f64;
    // Files come and go between the two reads.
    assert!(
        (ours - used as f64).abs() <= 0.01 * total as f64,
        "{o:?} vs df {used}/{total}"
    );
    assert_eq!(m["inodes_total"].as_u64(), Some(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_degrades_the_check_for_a_while() {
    let d = TestDaemon::start(
        "[[checks]]\nname = \"oom\"\nkind = \"oom\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\ndegraded_for = \"3s\"\n",
    )
    .await;
    d.wait_runs("oom", 2, Duration::from_secs(10)).await;
    let before = d.check("oom").await;
    assert!(is(&before, "healthy"), "{before:#}");
    tokio::task::spawn_blocking(oom::kill_one).await.unwrap();
    let c = d
        .wait_check(
            "oom",
            "degraded after the kill",
            Duration::from_secs(10),
            |c| is(c, "degraded"),
        )
        .await;
    assert_eq!(c["reason"], "threshold", "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("killed by the OOM killer"),
        "{c:#}"
    );
    assert!(
        c["details"]["oom_kills_total"].as_u64() > before["details"]["oom_kills_total"].as_u64()
    );
    d.wait_check(
        "oom",
        "healthy once degraded_for passed",
        Duration::from_secs(15),
        |c| is(c, "healthy"),
    )
    .await;
}
