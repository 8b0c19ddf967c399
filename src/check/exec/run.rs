//! Running the program: its own process group, a clean environment, stdin closed, `/` as
//! working directory; output read up to a bound; the whole group killed when the run ends,
//! by the timeout or by the caller dropping it.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::perfdata;
use crate::check::Run;
use crate::model::{Outcome, Reason, Sample, mentions_any};

/// Output kept per stream; the rest is read and dropped, so a chatty program never blocks
/// on a full pipe.
const MAX_OUTPUT: usize = 64 * 1024;
/// The message (the first line of output) is cut here, as Consul's `check_output_max_size`.
pub const MAX_MESSAGE: usize = 4096;

pub struct ExecProbe {
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) wait: Duration,
}

/// Kills the child's whole process group when dropped: at the end of a run, at the
/// timeout, or when the scheduler drops the run. Children the program left behind go too.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(rustix::process::Pid::from_raw) {
            // ESRCH (the group is already gone) is the usual case after a clean exit.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Run for ExecProbe {
    async fn run(&mut self) -> Outcome {
        let program = self.program.display().to_string();
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::failed(Reason::Config, format!("cannot start {program}: {e}"));
            }
        };
        let _group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let finished = tokio::time::timeout(self.wait, async {
            tokio::join!(read_capped(stdout), read_capped(stderr), child.wait())
        })
        .await;
        match finished {
            Err(_) => Outcome::failed(
                Reason::Timeout,
                format!(
                    "{program} still running after {}; killed it and its process group",
                    humantime::format_duration(self.wait)
                ),
            ),
            Ok((_, _, Err(e))) => {
                Outcome::failed(Reason::Internal, format!("cannot wait for {program}: {e}"))
            }
            Ok((out, err, Ok(status))) => judge(&program, status, &out, &err),
        }
    }
}

async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut chunk = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cap(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The Nagios plugin verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (and anything else
/// is unknown too); killed by a signal is a failure of its own.
fn judge(program: &str, status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Outcome {
    let out = String::from_utf8_lossy(stdout);
    let err = String::from_utf8_lossy(stderr);
    let (first, perf) = perfdata::split(&out);
    let first = if first.is_empty() {
        err.lines().next().unwrap_or("").trim().to_string()
    } else {
        first
    };
    let message = if first.is_empty() {
        format!("{program}: no output")
    } else {
        cap(&first, MAX_MESSAGE).to_string()
    };
    let Some(code) = status.code() else {
        let signal = status.signal().unwrap_or(0);
        return Outcome::failed(
            Reason::Internal,
            format!("{program} was killed by signal {signal}: {message}"),
        );
    };
    // The plugin's own words tell a refused connection or a timeout from a value above a
    // threshold, as for every other kind; otherwise a WARNING/CRITICAL is a threshold.
    let reason = crate::model::classify::classify_text(&message).unwrap_or(Reason::Threshold);
    let outcome = match code {
        0 => Outcome::ok(message),
        1 => Outcome::degraded(reason, message),
        2 => Outcome::failed(reason, message),
        3 => Outcome::unknown(Some(Reason::Config), message),
        n => {
            let hint = if mentions_any(&message, &["not found", "no such file"]) {
                " (a program it runs is missing?)"
            } else {
                ""
            };
            Outcome::unknown(
                Some(Reason::Config),
                format!("exit status {n} is not a plugin status{hint}: {message}"),
            )
        }
    }
    .with_detail("exit_code", code);
    if perf.is_empty() {
        return outcome;
    }
    let mut outcome = outcome.with_detail(
        "perfdata",
        serde_json::to_value(&perf).unwrap_or(serde_json::Value::Null),
    );
    outcome.sample = Some(Sample::Perfdata(perf));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_capped_at_a_character_boundary() {
        let text = "é".repeat(3000);
        let c = cap(&text, MAX_MESSAGE);
        assert!(c.len() <= MAX_MESSAGE && c.len() >= MAX_MESSAGE - 1);
        assert_eq!(cap("short", MAX_MESSAGE), "short");
    }
}
