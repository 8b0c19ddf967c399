//! A real systemd as PID 1: a Debian 12 root file system, built once with `debootstrap` and
//! cached under the target directory, booted with
//! `systemd-nspawn --boot --register=no --keep-unit --private-network --volatile=overlay`.
//!
//! - `--register=no --keep-unit`: no systemd-machined or host systemd is needed, so it boots
//!   in a CI container or VM whose PID 1 is not systemd (it needs root);
//! - `--private-network`: the machine has only its own loopback;
//! - `--volatile=overlay`: every boot writes to a tmpfs above the cached tree, so the cache
//!   stays as debootstrap left it and machines can boot side by side from it.
//!
//! Commands run inside through `nsenter --all` into the machine's PID 1. Two flavours:
//! [`Flavour::Bookworm`] (Debian 12's systemd 252) and [`Flavour::Backports`] (the same plus
//! systemd 254 from bookworm-backports, for `Type=notify-reload`). A cold build of the first
//! takes about 1.5 minutes (it downloads about 60 MB from deb.debian.org); the second is
//! derived from it in seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{children_of, eventually, output_text, repo_path, run_with_timeout, wait_for_exit};

/// Packages on top of debootstrap's minbase: systemd as init, D-Bus (for
/// `systemd-analyze security` on a live unit), curl (the README's `curl …/readyz`) and procps
/// (`/bin/kill`, which the unit's `ExecReload=` runs; on every standard Debian system).
const PACKAGES: &str = "systemd,systemd-sysv,dbus,curl,procps";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Bound on building a root file system from scratch.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Bound on one command inside the machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on booting until `systemctl is-system-running` says running.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Debian 12 as released: systemd 252.
    Bookworm,
    /// Debian 12 with systemd from bookworm-backports (254).
    Backports,
}

impl Flavour {
    /// The cached tree's directory; the revision changes when the build steps do.
    fn dir_name(self) -> &'static str {
        match self {
            Flavour::Bookworm => "debian-12-r4",
            Flavour::Backports => "debian-12-r4-systemd-backports",
        }
    }
}

/// Where the cached trees live: beside the build output (`<target>/nspawn/`).
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_healthd"))
        .parent()
        .and_then(Path::parent)
        .expect("the healthd binary lives in <target>/<profile>/")
        .join("nspawn")
}

/// The root file system of `flavour`, built on first use. One build at a time within this
/// process (a mutex) and across processes (`flock` on `<target>/nspawn/.lock`).
pub fn rootfs(flavour: Flavour) -> PathBuf {
    static BUILDING: OnceLock<Mutex<()>> = OnceLock::new();
    let _guard = BUILDING
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir();
    fs::create_dir_all(&dir).expect("create the nspawn cache directory");
    let lock = fs::File::create(dir.join(".lock")).expect("create the cache lock");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock the cache");
    build(&dir, flavour)
}

/// Build `flavour` under `dir` unless it is there; the caller holds both locks.
fn build(dir: &Path, flavour: Flavour) -> PathBuf {
    let root = dir.join(flavour.dir_name());
    if root.join("usr/bin/systemctl").exists() {
        return root;
    }
    let partial = dir.join(format!("{}.partial", flavour.dir_name()));
    if partial.exists() {
        fs::remove_dir_all(&partial).expect("remove a half-built tree");
    }
    remove_stale_trees(dir);
    let started = Instant::now();
    match flavour {
        Flavour::Bookworm => {
            eprintln!(
                "nspawn: building the Debian 12 root file system in {} (once; about 1.5 minutes)",
                root.display()
            );
            let include = format!("--include={PACKAGES}");
            let partial_arg = partial.to_str().expect("utf-8 path");
            run_ok(
                Command::new("debootstrap").args([
                    "--variant=minbase",
                    &include,
                    "bookworm",
                    partial_arg,
                    MIRROR,
                ]),
                BUILD_TIMEOUT,
            );
            // debootstrap's placeholder fstab would only make systemd-remount-fs remount
            // nspawn's overlay root at boot, which fails now and then under load.
            fs::remove_file(partial.join("etc/fstab")).expect("remove the placeholder fstab");
            mask_units_that_fail_under_load(&partial);
        }
        Flavour::Backports => {
            let base = build(dir, Flavour::Bookworm);
            eprintln!(
                "nspawn: deriving {} (systemd from bookworm-backports)",
                root.display()
            );
            run_ok(
                Command::new("cp").arg("-a").arg(&base).arg(&partial),
                BUILD_TIMEOUT,
            );
            fs::write(
                partial.join("etc/apt/sources.list.d/backports.list"),
                format!("deb {MIRROR} bookworm-backports main\n"),
            )
            .expect("add bookworm-backports");
            let in_tree = |args: &[&str]| {
                let mut cmd = Command::new("chroot");
                cmd.arg(&partial)
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive");
                run_ok(&mut cmd, BUILD_TIMEOUT);
            };
            in_tree(&["apt-get", "update", "-qq"]);
            in_tree(&[
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "-t",
                "bookworm-backports",
                "systemd",
                "systemd-sysv",
            ]);
        }
    }
    fs::rename(&partial, &root).expect("move the finished tree into place");
    eprintln!(
        "nspawn: {} built in {:.0} s",
        flavour.dir_name(),
        started.elapsed().as_secs_f64()
    );
    root
}

/// Every boot is volatile, so the journal stays in `/run` and nothing flushes it to disk.
/// `systemd-journal-flush.service` still asks journald to flush at boot, and when journald is
/// slow to answer on a loaded machine the unit fails and the machine boots "degraded" (seen
/// in CI). Masked, with `Storage=volatile` saying the same in journald's own terms.
fn mask_units_that_fail_under_load(tree: &Path) {
    let units = tree.join("etc/systemd/system");
    fs::create_dir_all(&units).expect("create etc/systemd/system");
    std::os::unix::fs::symlink("/dev/null", units.join("systemd-journal-flush.service"))
        .expect("mask systemd-journal-flush.service");
    // systemd-nspawn populates the machine's /dev itself; the unit that would create the
    // same static device nodes failed once on a loaded machine (CI), booting it "degraded".
    std::os::unix::fs::symlink(
        "/dev/null",
        units.join("systemd-tmpfiles-setup-dev.service"),
    )
    .expect("mask systemd-tmpfiles-setup-dev.service");
    let conf = tree.join("etc/systemd/journald.conf.d");
    fs::create_dir_all(&conf).expect("create journald.conf.d");
    fs::write(conf.join("volatile.conf"), "[Journal]\nStorage=volatile\n")
        .expect("write the journald drop-in");
}

/// Trees of earlier revisions of the build steps (about 250 MB each).
fn remove_stale_trees(dir: &Path) {
    let current = [Flavour::Bookworm.dir_name(), Flavour::Backports.dir_name()];
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("debian-12") && !current.iter().any(|c| name.starts_with(c)) {
            eprintln!("nspawn: removing the stale tree {name}");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let out = run_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        output_text(&out)
    );
    out
}

/// A booted machine; powered off (its PID 1 killed) when dropped.
pub struct Machine {
    nspawn: Child,
    leader: u32,
    pub name: String,
    console: PathBuf,
    _dir: tempfile::TempDir,
}

impl Machine {
    /// Boot `flavour` with this repository at `/src` and the healthd binary under test at
    /// `/build/healthd` (both read-only), and wait until systemd says the system is running.
    pub fn boot(flavour: Flavour, tag: &str) -> Machine {
        let root = rootfs(flavour);
        let dir = tempfile::tempdir().expect("create a temp dir");
        let console = dir.path().join("console.log");
        let log = fs::File::create(&console).expect("create the console log");
        let name = format!("healthd-{tag}-{}", std::process::id());
        let started = Instant::now();
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--volatile=overlay",
                "--console=pipe",
            ])
            .arg(format!("--machine={name}"))
            .arg("--directory")
            .arg(&root)
            .arg(format!("--bind-ro={}:/src", repo_path("").display()))
            .arg(format!(
                "--bind-ro={}:/build/healthd",
                env!("CARGO_BIN_EXE_healthd")
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect(
                "systemd-nspawn (Debian package systemd-container) is installed by scripts/test",
            );
        let mut machine = Machine {
            leader: 0,
            nspawn,
            name,
            console,
            _dir: dir,
        };
        let nspawn_pid = machine.nspawn.id();
        let mut leader = None;
        eventually("the machine's PID 1", BOOT_TIMEOUT, || {
            leader = children_of(nspawn_pid)
                .into_iter()
                .find(|&p| is_namespace_init(p));
            leader.is_some() || machine.exited()
        });
        machine.leader = leader.unwrap_or_else(|| {
            panic!(
                "systemd-nspawn exited before booting:\n{}",
                machine.console_log()
            )
        });
        let mut state = machine.settled_state();
        if state == "degraded" {
            state = machine.retry_failed_units();
        }
        assert!(
            state == "running",
            "the machine booted {state:?}, not running; failed units:\n{}\n{}\nconsole:\n{}",
            machine.out("systemctl --failed --no-legend"),
            machine.failed_units_journal(),
            machine.console_log()
        );
        eprintln!(
            "nspawn: {} booted in {:.1} s",
            machine.name,
            started.elapsed().as_secs_f64()
        );
        machine
    }

    /// `systemctl is-system-running` once start-up has finished: running, degraded, or what
    /// it said when the machine exited.
    fn settled_state(&mut self) -> String {
        let mut state = String::new();
        eventually("systemctl is-system-running", BOOT_TIMEOUT, || {
            let out = self.sh("systemctl is-system-running --wait");
            state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            matches!(state.as_str(), "running" | "degraded") || self.exited()
        });
        state
    }

    /// A base system unit of the cached tree failed during boot. Seen in CI on loaded
    /// machines, a different unit each time (journal flush, static device nodes, sysusers),
    /// none of them healthd's, which is not installed yet. Each failed unit is started once
    /// more, its first failure logged; a unit that fails again fails the boot.
    fn retry_failed_units(&mut self) -> String {
        let failed = self.out("systemctl --failed --no-legend --plain");
        let units: Vec<&str> = failed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        eprintln!(
            "nspawn: {} booted degraded; starting {} again. Their journal:\n{}",
            self.name,
            units.join(", "),
            self.failed_units_journal()
        );
        for unit in &units {
            self.sh(&format!(
                "systemctl reset-failed {unit}; systemctl restart {unit}"
            ));
        }
        self.settled_state()
    }

    /// The journal of the units that failed, for a failure message.
    fn failed_units_journal(&self) -> String {
        let out = self.sh(
            "for u in $(systemctl --failed --no-legend --plain | cut -d' ' -f1); do \
             journalctl --no-pager -b -o short-monotonic -u \"$u\" | tail -n 20; done",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn exited(&mut self) -> bool {
        matches!(self.nspawn.try_wait(), Ok(Some(_)))
    }

    pub fn console_log(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Run `script` with `sh -c` inside the machine (as root, in `/src`, with a clean
    /// environment).
    pub fn sh(&self, script: &str) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.leader.to_string())
            // (nsenter's --wd would resolve the path before entering the machine)
            .args(["--all", "sh", "-c", &format!("cd /src && {script}")])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "cat")
            .env("SYSTEMD_COLORS", "0");
        run_with_timeout(&mut cmd, COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Run `script`, which must succeed, and return its standard output.
    pub fn out(&self, script: &str) -> String {
        let out = self.sh(script);
        if !out.status.success() {
            // What systemd and healthd logged: a failed `systemctl` says only "see journalctl".
            let journal = self.sh("journalctl --no-pager -n 60 -o short-monotonic");
            panic!(
                "in {}: `{script}` failed:\n{}\nthe machine's journal, last 60 lines:\n{}",
                self.name,
                output_text(&out),
                String::from_utf8_lossy(&journal.stdout)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A property of a unit (`systemctl show -P`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.out(&format!("systemctl show -P {name} {unit}"))
            .trim()
            .to_string()
    }

    /// Write `text` to `path` inside the machine (parent directories created).
    pub fn write(&self, path: &str, text: &str) {
        let host = self.root_path().join(path.trim_start_matches('/'));
        fs::create_dir_all(host.parent().expect("a parent")).expect("create the parent");
        fs::write(&host, text).unwrap_or_else(|e| panic!("write {}: {e}", host.display()));
    }

    /// The machine's root as the host sees it (through its PID 1).
    fn root_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.leader))
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // SIGKILL to the machine's PID 1 ends the whole machine at once; nspawn then exits.
        super::send_signal(&[self.leader], "KILL");
        if wait_for_exit(&mut self.nspawn, Duration::from_secs(10)).is_none() {
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
    }
}

/// Whether `pid` is PID 1 of its own PID namespace (`NSpid:\t<host pid>\t1`).
fn is_namespace_init(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("NSpid:")).map(|ids| {
                let ids: Vec<&str> = ids.split_whitespace().collect();
                ids.len() >= 2 && ids.last() == Some(&"1")
            })
        })
        .unwrap_or(false)
}
