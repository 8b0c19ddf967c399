//! The kept-connection driver: what every kind that keeps a connection open between runs
//! (`postgres`, `redis`, and the next ones) shares, written once. A kind supplies a
//! [`Connector`] — "open a connection" and "run the probe on it" — and [`Session`] owns the
//! rest: keeping the connection, replacing it when a run was cut off at the timeout or it
//! broke while idle (once, at once, within the same run), backoff between failed connects,
//! where the password comes from (read at every connect, so a rotated secret is picked up),
//! the `connect_ms` detail, and scrubbing every secret out of the message.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Run;
use crate::model::{Outcome, Reason, fmt_latency, later, round_ms};

/// What a kind that keeps one connection supplies to the [`Session`] driver.
pub trait Connector: Send {
    /// One open connection.
    type Conn: Send;

    /// Where it connects, for logs (never the password).
    fn target(&self) -> &str;

    /// Open a connection, logging in with `password` when one is configured. The error is
    /// the outcome to report.
    fn open(
        &mut self,
        password: Option<&str>,
    ) -> impl Future<Output = Result<Self::Conn, Outcome>> + Send;

    /// Run the probe on `conn`; the flag says the connection is broken and must be
    /// replaced (the driver then retries once on a new connection if it was a kept one).
    fn probe(&mut self, conn: &mut Self::Conn) -> impl Future<Output = (Outcome, bool)> + Send;

    /// A kept connection already known to be closed (checked before each run): replaced
    /// without counting a failure.
    fn is_closed(_conn: &Self::Conn) -> bool {
        false
    }

    /// Give up a connection whose last run was cut off at the timeout. Default: drop it.
    fn abandon(&self, conn: Self::Conn) {
        drop(conn);
    }
}

/// One check's kept connection and everything around it.
pub struct Session<C: Connector> {
    connector: C,
    passwords: Passwords,
    /// A password written in the kind's URL, to scrub.
    url_password: Option<String>,
    timeout: Duration,
    conn: Option<C::Conn>,
    reconnect: Reconnect,
    /// The password used for the current connection, to scrub it from messages.
    last_password: Option<String>,
}

impl<C: Connector> Session<C> {
    pub fn new(
        connector: C,
        passwords: Passwords,
        url_password: Option<String>,
        timeout: Duration,
    ) -> Self {
        Session {
            connector,
            passwords,
            url_password,
            timeout,
            conn: None,
            reconnect: Reconnect::default(),
            last_password: None,
        }
    }

    async fn run_inner(&mut self) -> Outcome {
        let start = self.reconnect.start(self.timeout);
        if start.cancelled {
            tracing::debug!(target = %self.connector.target(), "Previous run was cut off at the timeout; closing its connection.");
            if let Some(old) = self.conn.take() {
                self.connector.abandon(old);
            }
        }
        if let Some(out) = start.backoff {
            return out;
        }
        // A kept connection that broke while idle (server restart, terminated backend) is
        // replaced at once: that is not a failure of the server as it is now.
        if self.conn.as_ref().is_some_and(C::is_closed) {
            self.conn = None;
        }
        let reused = self.conn.is_some();
        let mut connect_ms = None;
        if !reused && let Err(out) = self.open(&mut connect_ms).await {
            return out;
        }
        let (mut out, mut broken) = self.probe().await;
        // Broken under us (a restart, CLIENT KILL, a terminated backend): the same as
        // broken while idle, so once more on a new connection.
        if reused && broken {
            tracing::debug!(target = %self.connector.target(), "Kept connection was broken; reconnecting.");
            self.conn = None;
            if let Err(out) = self.open(&mut connect_ms).await {
                return out;
            }
            (out, broken) = self.probe().await;
        }
        if broken {
            self.conn = None;
            self.reconnect.failed(out.clone());
        } else {
            self.reconnect.succeeded();
        }
        match connect_ms {
            Some(ms) => out.with_detail("connect_ms", ms),
            None => out,
        }
    }

    /// Connect and keep the connection; on failure, count it and return what to report.
    async fn open(&mut self, connect_ms: &mut Option<f64>) -> Result<(), Outcome> {
        let started = Instant::now();
        let opened = match self.passwords.resolve() {
            Err(e) => Err(Outcome::failed(Reason::Config, e)),
            Ok(password) => {
                self.last_password = password.clone().or_else(|| self.url_password.clone());
                self.connector.open(password.as_deref()).await
            }
        };
        match opened {
            Ok(c) => {
                self.conn = Some(c);
                *connect_ms = Some(round_ms(started.elapsed()));
                Ok(())
            }
            Err(out) => {
                self.reconnect.failed(out.clone());
                Err(out)
            }
        }
    }

    async fn probe(&mut self) -> (Outcome, bool) {
        match self.conn.as_mut() {
            Some(conn) => self.connector.probe(conn).await,
            None => (Outcome::failed(Reason::Internal, "no connection"), true),
        }
    }
}

impl<C: Connector> Run for Session<C> {
    async fn run(&mut self) -> Outcome {
        let outcome = self.run_inner().await;
        self.reconnect.finish();
        let secrets: Vec<&str> = [
            &self.passwords.inline,
            &self.url_password,
            &self.last_password,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        Outcome {
            message: scrub(&outcome.message, &secrets),
            ..outcome
        }
    }
}

/// First backoff step after the second failure in a row (the first retry is immediate).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Cap when the check's interval is not known yet.
const BACKOFF_CAP_FALLBACK: Duration = Duration::from_secs(10);

/// The password keys a kind offers (`password`, `password_file`, `password_env`), as
/// configured.
#[derive(Debug, Clone, Default)]
pub struct Passwords {
    pub inline: Option<String>,
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

impl Passwords {
    /// Problems with the password keys; `in_url` says the URL carries a password too.
    pub fn validate(&self, in_url: bool, problems: &mut Vec<(String, String)>) {
        let mut set = Vec::new();
        if in_url {
            set.push("a password in url");
        }
        if self.inline.is_some() {
            set.push("password");
        }
        if self.file.is_some() {
            set.push("password_file");
        }
        if self.env.is_some() {
            set.push("password_env");
        }
        if set.len() > 1 {
            problems.push((
                "password_file".into(),
                format!("give the password one way only (found {})", set.join(", ")),
            ));
        }
        if let Some(var) = &self.env {
            validate_secret_env(var, "password_env", problems);
        }
        if let Some(path) = &self.file
            && path.as_os_str().is_empty()
        {
            problems.push(("password_file".into(), "must not be empty".into()));
        }
        if let Some(path) = &self.file {
            crate::redact::warn_if_world_readable(path, "password_file");
        }
    }

    /// Read the password now (files and variables are read on every connect, so a rotated
    /// secret is picked up at the next reconnect). Errors never contain the secret.
    pub fn resolve(&self) -> Result<Option<String>, String> {
        if let Some(path) = &self.file {
            return read_secret_file(path, "password_file").map(Some);
        }
        if let Some(var) = &self.env {
            return read_secret_env(var, "password_env").map(Some);
        }
        Ok(self.inline.clone())
    }
}

/// Problems with `var`, the name of an environment variable holding a secret (`key` is the
/// setting).
pub fn validate_secret_env(var: &str, key: &str, problems: &mut Vec<(String, String)>) {
    if var.is_empty() || var.contains('=') {
        problems.push((
            key.into(),
            "must be the name of an environment variable".into(),
        ));
    } else if var.to_uppercase().starts_with("HEALTHD_") {
        problems.push((
            key.into(),
            "HEALTHD_* variables are configuration overrides; use another name".into(),
        ));
    }
}

/// A secret read from a file now: one trailing newline ignored (how editors and `echo`
/// write files), empty is an error. Errors name `key` and the file, never the content.
pub fn read_secret_file(path: &Path, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {key} {}: {e}", path.display()))?;
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    Ok(secret.to_string())
}

/// A secret read from an environment variable now; unset or empty is an error.
pub fn read_secret_env(var: &str, key: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => Err(format!("environment variable {var} ({key}) is empty")),
        Err(_) => Err(format!("environment variable {var} ({key}) is not set")),
    }
}

/// Log that a password sits in the configuration itself; called while validating, so it
/// shows in `healthd validate`, at start and at every reload. Never logs the password.
pub fn warn_inline_password(kind: &str, target: &str, key: &str) {
    tracing::warn!(
        kind,
        target,
        key,
        "Password given inline in the configuration; prefer password_file or password_env."
    );
}

/// Replace every occurrence of each secret with `***`: the last line of defence, applied to
/// every message a probe returns, whatever produced it.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s, "***");
        }
    }
    out
}

/// Connection bookkeeping for one check: at most one connection, reconnect with backoff,
/// and detection of a run that the scheduler dropped at the timeout.
#[derive(Debug, Default)]
pub struct Reconnect {
    /// Set while a run is in progress; still set at the start of the next run only when the
    /// previous one was dropped mid-way (the scheduler cancels a run at the timeout).
    in_run: bool,
    /// Connection failures in a row.
    failures: u32,
    /// No new connection attempt before this.
    not_before: Option<Instant>,
    /// What the last failed attempt returned, repeated while backing off.
    last_error: Option<Outcome>,
    /// When the previous run started, to learn the check's interval.
    last_start: Option<Instant>,
    /// The time between the last two runs: the cap of the backoff.
    interval: Option<Duration>,
    /// The check's timeout (the cap's floor).
    timeout: Duration,
}

/// What the start of a run found.
pub struct RunStart {
    /// The previous run was cut off at the timeout: drop the connection it was using.
    pub cancelled: bool,
    /// Still backing off after failed connects: report this without touching the network.
    pub backoff: Option<Outcome>,
}

impl Reconnect {
    /// Call first thing in a run.
    pub fn start(&mut self, timeout: Duration) -> RunStart {
        let now = Instant::now();
        self.timeout = timeout;
        if let Some(prev) = self.last_start.replace(now) {
            self.interval = Some(now - prev);
        }
        let cancelled = std::mem::replace(&mut self.in_run, true);
        if cancelled {
            // The dropped run got no answer within the timeout: a failure like any other, so
            // a frozen server is not sent a new connection on every run either.
            self.failed(Outcome::failed(
                Reason::Timeout,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ));
        }
        let backoff = match (self.not_before, &self.last_error) {
            (Some(t), Some(last)) if now < t => {
                let mut out = last.clone();
                out.message = format!("{} (reconnecting in {})", out.message, fmt_latency(t - now));
                Some(out.with_detail("connect_failures", self.failures))
            }
            _ => None,
        };
        RunStart { cancelled, backoff }
    }

    /// Call when a run ends (whatever its result); a run that never gets here was dropped.
    pub fn finish(&mut self) {
        self.in_run = false;
    }

    /// A connection attempt (or a kept connection) failed with `outcome`.
    pub fn failed(&mut self, outcome: Outcome) {
        self.failures = self.failures.saturating_add(1);
        // Up to the interval (learned from the runs), and at least the timeout, which the
        // config keeps below the interval.
        let cap = self
            .interval
            .map(|i| i.max(self.timeout))
            .unwrap_or(BACKOFF_CAP_FALLBACK);
        let delay = match self.failures {
            0 | 1 => Duration::ZERO,
            n => BACKOFF_BASE
                .saturating_mul(1u32 << (n - 2).min(16))
                .min(cap),
        };
        self.not_before = (!delay.is_zero()).then(|| later(Instant::now(), delay));
        self.last_error = Some(outcome);
    }

    /// A connection was made or used successfully: forget past failures.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
        self.last_error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_secret() {
        assert_eq!(
            scrub("pw s3cret and s3cret again, tok", &["s3cret", "", "tok"]),
            "pw *** and *** again, ***"
        );
    }

    #[test]
    fn backoff_grows_from_zero_up_to_the_interval_and_resets() {
        let mut r = Reconnect {
            interval: Some(Duration::from_millis(300)),
            ..Reconnect::default()
        };
        let timeout = Duration::from_millis(100);
        r.failed(Outcome::failed(Reason::Connect, "refused"));
        let s = r.start(timeout);
        assert!(!s.cancelled && s.backoff.is_none());
        r.finish();
        r.failed(Outcome::failed(Reason::Connect, "refused"));
        let o = r.start(timeout).backoff.expect("expected to back off");
        assert_eq!(o.reason, Some(Reason::Connect));
        assert!(
            o.message.starts_with("refused (reconnecting in"),
            "{}",
            o.message
        );
        r.finish();
        for _ in 0..10 {
            r.failed(Outcome::failed(Reason::Connect, "refused"));
        }
        let wait = r.not_before.map(|t| t - Instant::now()).unwrap_or_default();
        assert!(wait <= Duration::from_millis(300), "capped: {wait:?}");
        r.succeeded();
        let s = r.start(timeout);
        assert!(!s.cancelled && s.backoff.is_none());
    }

    #[test]
    fn a_run_dropped_midway_is_noticed() {
        let mut r = Reconnect::default();
        let timeout = Duration::from_millis(100);
        let s = r.start(timeout);
        assert!(!s.cancelled && s.backoff.is_none());
        // No finish(): the scheduler dropped the run. The first retry is immediate.
        let s = r.start(timeout);
        assert!(s.cancelled && s.backoff.is_none());
        assert_eq!(r.failures, 1);
        // Cut off again: now it backs off, still reporting the timeout.
        let s = r.start(timeout);
        assert!(s.cancelled);
        let o = s.backoff.expect("backs off after two cut-off runs");
        assert_eq!(o.reason, Some(Reason::Timeout));
    }
}
