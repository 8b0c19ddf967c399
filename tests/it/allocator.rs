//! `healthd run` runs with one glibc malloc arena: it executes itself once more at start
//! with `glibc.malloc.arena_max=1` in `GLIBC_TUNABLES` (same process id), and leaves an
//! operator's own arena setting as given; an environment variable that is not UTF-8 is
//! neither replaced nor a reason to fail at start.

use crate::support::config::ConfigDir;
use crate::support::daemon::Subprocess;

/// The environment the running program was executed with.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// `GLIBC_TUNABLES` as the program was executed with it. glibc, parsing it at start, ends
/// every value with a NUL in place, so `a=1:b=2` reads back from `/proc` as two entries.
fn tunables(pid: u32) -> Vec<String> {
    let env = environ(pid);
    let Some(at) = env.iter().position(|v| v.starts_with("GLIBC_TUNABLES=")) else {
        return Vec::new();
    };
    let rest = env[at + 1..].iter().take_while(|v| v.starts_with("glibc."));
    let joined = std::iter::once(&env[at]).chain(rest).cloned();
    vec![joined.collect::<Vec<_>>().join(":")]
}

#[test]
fn run_executes_itself_with_one_malloc_arena_unless_the_operator_set_one() {
    // A directory (and so a log) per start: the harness reads the address from the log.
    let start = |envs: &[(&str, &str)]| {
        let dir = ConfigDir::new("");
        (Subprocess::start(&dir, envs), dir)
    };
    let (d, _dir) = start(&[("GLIBC_TUNABLES", "")]);
    assert_eq!(
        tunables(d.pid()),
        ["GLIBC_TUNABLES=glibc.malloc.arena_max=1"],
        "the process the harness started (same PID) runs with the limit"
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.pid())).unwrap();
    assert_eq!(
        comm.trim(),
        "healthd",
        "ps and the journal still name healthd"
    );
    assert_eq!(d.get("/livez").0, 200);
    drop(d);

    let other = "glibc.malloc.tcache_count=0";
    let (d, _dir) = start(&[("GLIBC_TUNABLES", other)]);
    assert_eq!(
        tunables(d.pid()),
        [format!("GLIBC_TUNABLES={other}:glibc.malloc.arena_max=1")],
        "other tunables are kept"
    );
    drop(d);

    let own = "glibc.malloc.arena_max=4";
    let (d, _dir) = start(&[("GLIBC_TUNABLES", own)]);
    assert_eq!(tunables(d.pid()), [format!("GLIBC_TUNABLES={own}")]);
    drop(d);

    let (d, _dir) = start(&[("GLIBC_TUNABLES", ""), ("MALLOC_ARENA_MAX", "2")]);
    assert_eq!(
        tunables(d.pid()),
        ["GLIBC_TUNABLES="],
        "MALLOC_ARENA_MAX is the operator's"
    );
    assert_eq!(d.get("/livez").0, 200);
}

/// Kills the daemon when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_variable_that_is_not_utf8_is_kept_and_does_not_stop_the_start() {
    use std::os::unix::ffi::OsStrExt;
    let dir = ConfigDir::new("");
    let port = crate::support::free_port();
    let odd = std::ffi::OsStr::from_bytes(b"glibc.malloc.tcache_count=1\xff");
    let child = std::process::Command::new(crate::support::daemon::binary())
        .args(["--log-level", "error", "run", "--config"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("GLIBC_TUNABLES", odd)
        .env("HEALTHD_TEST_ODD", odd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn healthd");
    let d = Killed(child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    crate::support::eventually("/livez answers", std::time::Duration::from_secs(20), || {
        crate::support::daemon::http_get(addr, "/livez").is_ok_and(|(s, _)| s == 200)
    });
    let raw = std::fs::read(format!("/proc/{}/environ", d.0.id())).unwrap();
    assert!(
        raw.split(|b| *b == 0).any(|v| v
            .starts_with(b"GLIBC_TUNABLES=glibc.malloc.tcache_count=1")
            && !v.windows(9).any(|w| w == b"arena_max")),
        "the operator's value is not replaced"
    );
}
