//! `kind = "exec"`: run a program (a Nagios plugin, or anything that follows its
//! conventions) and judge it by its exit status: 0 healthy, 1 degraded, 2 failed, 3 and
//! anything else unknown. The first line of output is the message; performance data
//! becomes details and `/metrics` gauges.
//!
//! Safety first, because running programs from health checks is a known remote-code-
//! execution class: an exec check exists only in a config file (nothing that arrives over
//! HTTP can add or change one); the program is an absolute path run without a shell, in its
//! own process group, with a clean environment, stdin closed and `/` as its working
//! directory; at the timeout the whole group is killed. This file holds the settings and
//! their validation (with the writable-program warning); [`run`] starts and judges the
//! program; [`perfdata`] reads its output.

pub mod perfdata;
mod run;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::Kind;
pub use run::ExecProbe;

/// `PATH` of the child unless `env` sets its own.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Settings of an exec check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments, e.g.
    /// `["/usr/lib/nagios/plugins/check_disk", "-w", "20%", "/"]`; no shell is involved, so
    /// quotes, `*` and `$VAR` reach the program as written. The program path is absolute.
    pub command: Vec<String>,
    /// The child's whole environment besides `PATH` (which defaults to [`DEFAULT_PATH`] and
    /// may be set here too).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Kind for ExecConfig {
    type Probe = ExecProbe;

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        let Some(program) = self.command.first() else {
            problems.push((
                "command".into(),
                "must name a program (e.g. [\"/usr/lib/nagios/plugins/check_dummy\", \"0\"])"
                    .into(),
            ));
            return;
        };
        let path = Path::new(program);
        if !path.is_absolute() {
            problems.push((
                "command[0]".into(),
                format!("must be an absolute path, not \"{program}\" (no PATH lookup, no shell)"),
            ));
        } else {
            match std::fs::metadata(path) {
                Err(e) => problems.push(("command[0]".into(), format!("{program}: {e}"))),
                Ok(m) if !m.is_file() => {
                    problems.push(("command[0]".into(), format!("{program} is not a file")))
                }
                Ok(m) if m.permissions().mode() & 0o111 == 0 => problems.push((
                    "command[0]".into(),
                    format!("{program} is not executable"),
                )),
                Ok(_) => warn_if_writable_by_others(path),
            }
        }
        for (i, arg) in self.command.iter().enumerate() {
            if arg.contains('\0') {
                problems.push((format!("command[{i}]"), "must not contain NUL".into()));
            }
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                problems.push((
                    format!("env.{key}"),
                    "invalid variable (names hold no '=' and nothing holds NUL)".into(),
                ));
            }
        }
    }

    fn build(&self, timeout: Duration) -> Result<ExecProbe, String> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or("command must name a program")?;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), DEFAULT_PATH.into());
        env.extend(self.env.clone());
        Ok(ExecProbe {
            program: program.into(),
            args: args.to_vec(),
            env,
            // Our own bound a little below the check's timeout, so the program is killed,
            // reaped and reported by us (with what it printed so far).
            wait: timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250))),
        })
    }
}

/// Who may change what runs: the program and its directory should be writable only by
/// root or by healthd's own user. Anyone else who can write there can run code as healthd.
fn writable_by_others(path: &Path) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let my_group = rustix::process::getegid().as_raw();
    let m = std::fs::metadata(path).ok()?;
    let mode = m.permissions().mode();
    if mode & 0o002 != 0 {
        Some(format!("{} is writable by every user", path.display()))
    } else if m.uid() != 0 && m.uid() != me {
        Some(format!("{} is owned by uid {}", path.display(), m.uid()))
    } else if mode & 0o020 != 0 && m.gid() != 0 && m.gid() != my_group {
        Some(format!("{} is writable by group {}", path.display(), m.gid()))
    } else {
        None
    }
}

/// Warn (at every config load, so `healthd validate` shows it) when the program or its
/// directory could be changed by someone other than root or healthd's user.
fn warn_if_writable_by_others(program: &Path) {
    let dir = program.parent().unwrap_or(Path::new("/"));
    for path in [program, dir] {
        if let Some(why) = writable_by_others(path) {
            tracing::warn!(
                program = %program.display(),
                problem = %why,
                "An exec check's program could be replaced by another user; make it and its directory writable only by root."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(command: &[&str]) -> Vec<String> {
        let c = ExecConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
        };
        let mut p = Vec::new();
        c.validate(Duration::from_secs(1), &mut p);
        p.into_iter().map(|(k, r)| format!("{k}: {r}")).collect()
    }

    #[test]
    fn the_program_is_an_absolute_existing_executable() {
        assert!(problems(&["/bin/true"]).is_empty());
        assert_eq!(
            problems(&["true"]),
            ["command[0]: must be an absolute path, not \"true\" (no PATH lookup, no shell)"]
        );
        assert!(problems(&[])[0].starts_with("command: must name a program"));
        assert!(problems(&["/nonexistent/check"])[0].contains("No such file"));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(problems(&[plain])[0].contains("not executable"));
    }

    #[test]
    fn writable_programs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plugin");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(writable_by_others(&p).unwrap().contains("writable by every user"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(writable_by_others(&p), None);
    }
}
