//! `kind = "tcp"`: connect to host:port, optionally send a line and expect an answer.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::matcher::{Matcher, validate_regex};
use super::{Kind, Run};
use crate::model::{Outcome, Reason, classify, later, one_line};

/// Most bytes read while looking for `expect`.
const MAX_READ: usize = 64 * 1024;

/// Settings of a TCP check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Host name or IP address (IPv4 or IPv6); names are resolved on every run.
    pub host: String,
    /// Port, 1 to 65535.
    #[serde(deserialize_with = "crate::model::de_port")]
    pub port: u16,
    /// Bytes to send once connected (TOML escapes such as `\r\n` work).
    pub send: Option<String>,
    /// Substring expected in the first bytes read.
    pub expect: Option<String>,
    /// Regular expression expected to match the first bytes read.
    pub expect_regex: Option<String>,
}

impl Kind for TcpConfig {
    type Probe = TcpProbe;

    fn build(&self, timeout: Duration) -> Result<TcpProbe, String> {
        Ok(TcpProbe {
            host: self.host.clone(),
            port: self.port,
            send: self.send.as_ref().map(|s| s.as_bytes().to_vec()),
            expect: Matcher::new(&self.expect, &self.expect_regex)?,
            read_window: timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250))),
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.host.trim().is_empty() {
            problems.push(("host".into(), "must not be empty".into()));
        }
        if self.expect.is_some() && self.expect_regex.is_some() {
            problems.push((
                "expect_regex".into(),
                "set either expect or expect_regex, not both".into(),
            ));
        }
        validate_regex("expect_regex", &self.expect_regex, problems);
    }
}

pub struct TcpProbe {
    host: String,
    port: u16,
    send: Option<Vec<u8>>,
    expect: Option<Matcher>,
    /// How long to wait for `expect` before judging what was read; a little below the
    /// check's timeout, so a peer that answered the wrong thing is reported as `protocol`
    /// with what it said rather than as a bare `timeout`.
    read_window: Duration,
}

impl Run for TcpProbe {
    async fn run(&mut self) -> Outcome {
        let read_until = tokio::time::Instant::from_std(later(
            std::time::Instant::now(),
            self.read_window,
        ));
        let (mut stream, addr) = match connect(&self.host, self.port).await {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        // A connect-only probe sends nothing: no `TCP_NODELAY` (one system call fewer).
        if let Some(bytes) = &self.send {
            let _ = stream.set_nodelay(true);
            if let Err(e) = stream.write_all(bytes).await {
                return Outcome::failed(Reason::Connect, format!("send to {addr}: {e}"));
            }
        }
        if let Some(matcher) = &self.expect {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 4096];
            loop {
                let read = tokio::time::timeout_at(read_until, stream.read(&mut chunk)).await;
                let Ok(read) = read else {
                    if buf.is_empty() {
                        return Outcome::failed(
                            Reason::Timeout,
                            format!(
                                "no answer from {addr} while waiting for {}",
                                matcher.describe()
                            ),
                        );
                    }
                    return Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "expected {} from {addr}, got \"{}\"",
                            matcher.describe(),
                            one_line(&String::from_utf8_lossy(&buf))
                        ),
                    );
                };
                match read {
                    Ok(0) => {
                        let seen = String::from_utf8_lossy(&buf);
                        return Outcome::failed(
                            Reason::Protocol,
                            format!(
                                "expected {} from {addr}, connection closed after \"{}\"",
                                matcher.describe(),
                                one_line(&seen)
                            ),
                        );
                    }
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if matcher.matches(&String::from_utf8_lossy(&buf)) {
                            break;
                        }
                        if buf.len() >= MAX_READ {
                            return Outcome::failed(
                                Reason::Protocol,
                                format!(
                                    "expected {} in the first {MAX_READ} bytes from {addr}",
                                    matcher.describe()
                                ),
                            );
                        }
                    }
                    Err(e) => {
                        return Outcome::failed(Reason::Connect, format!("read from {addr}: {e}"));
                    }
                }
            }
        }
        // Close our side first and cleanly; the TIME_WAIT stays here, not on the target.
        let _ = stream.shutdown().await;
        Outcome::ok(format!("connected to {addr}")).with_detail("address", addr.to_string())
    }
}

/// Resolve and connect, trying each address in turn; failures map to `dns` or `connect`.
/// The stream is as the system gives it: a caller that writes in pieces sets `TCP_NODELAY`.
pub(crate) async fn connect(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), Outcome> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(Outcome::failed(
                Reason::Dns,
                format!("cannot resolve {host}: {e}"),
            ));
        }
    };
    if addrs.is_empty() {
        return Err(Outcome::failed(
            Reason::Dns,
            format!("{host} has no addresses"),
        ));
    }
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("at least one address was tried");
    Err(Outcome::failed(
        classify(&e).unwrap_or(Reason::Connect),
        format!("connect to {addr}: {e}"),
    ))
}
