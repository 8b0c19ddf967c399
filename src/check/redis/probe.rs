//! The Redis half of a kept connection: how to open one (TLS, the password the driver
//! resolved, `CLIENT SETNAME`) and what to ask on it (`PING`, then `INFO` for the role, the
//! replica link and memory). The driver in `check::session` does the rest.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, ErrorKind};

use super::RedisRole;
use crate::check::session::Connector;
use crate::model::{Outcome, Reason, classify, one_line, round_ms};

/// The Redis half of a kept connection: how to open one and what to ask on it.
pub struct Redis {
    pub(super) info: ConnectionInfo,
    pub(super) ca_pem: Option<Vec<u8>>,
    pub(super) shown: String,
    pub(super) client_name: String,
    pub(super) expect_role: Option<RedisRole>,
    pub(super) expect_replica_link_up: bool,
    pub(super) memory_degraded_above: Option<f64>,
    pub(super) memory_unhealthy_above: Option<f64>,
    pub(super) timeout: Duration,
}

impl Connector for Redis {
    type Conn = MultiplexedConnection;

    fn target(&self) -> &str {
        &self.shown
    }

    async fn open(&mut self, password: Option<&str>) -> Result<MultiplexedConnection, Outcome> {
        let mut info = self.info.clone();
        if let Some(pw) = password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }

        let client = match &self.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| self.error_outcome("connect", &e))?;
        // The scheduler bounds the whole run; these only keep the crate's own short
        // defaults (1 s connect, 500 ms response) from cutting in first.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error_outcome("connect", &e))?;
        let named: redis::RedisResult<()> = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.client_name)
            .query_async(&mut conn)
            .await;
        match named {
            Ok(()) => {}
            // A minimal ACL user may not be allowed to name its connection; that is no
            // reason to fail the check.
            Err(e) if !connection_broken(&e) => {
                tracing::debug!(target = %self.shown, error = %one_line(&e.to_string()), "CLIENT SETNAME refused; continuing unnamed.");
            }
            Err(e) => return Err(self.error_outcome("CLIENT SETNAME", &e)),
        }
        tracing::debug!(target = %self.shown, "Connected to Redis.");
        Ok(conn)
    }

    async fn probe(&mut self, conn: &mut MultiplexedConnection) -> (Outcome, bool) {
        match self.ping_info(conn).await {
            Ok(out) => (out, false),
            Err(e) => (self.error_outcome("PING", &e), connection_broken(&e)),
        }
    }
}

impl Redis {
    /// PING, then INFO; `Err` only for errors from the connection or the server.
    async fn ping_info(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<Outcome, redis::RedisError> {
        let started = Instant::now();
        let pong: redis::Value = redis::cmd("PING").query_async(conn).await?;
        let ping_elapsed = started.elapsed();
        let pong_text = match &pong {
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        };
        if pong_text != "PONG" {
            return Ok(Outcome::failed(
                Reason::Protocol,
                format!(
                    "{}: PING answered \"{}\", expected PONG",
                    self.shown,
                    one_line(&pong_text)
                ),
            ));
        }
        let (server, replication, memory): (String, String, String) = redis::pipe()
            .cmd("INFO")
            .arg("server")
            .cmd("INFO")
            .arg("replication")
            .cmd("INFO")
            .arg("memory")
            .query_async(conn)
            .await?;
        let elapsed = started.elapsed();
        let version = info_field(&server, "redis_version");
        let role_text = info_field(&replication, "role");
        let link = info_field(&replication, "master_link_status");
        let used: Option<u64> = info_field(&memory, "used_memory").and_then(|v| v.parse().ok());
        let max: Option<u64> = info_field(&memory, "maxmemory").and_then(|v| v.parse().ok());
        let role = match role_text.as_deref() {
            Some("master") => Some(RedisRole::Master),
            Some("slave") | Some("replica") => Some(RedisRole::Replica),
            _ => None,
        };
        let memory_percent = match (used, max) {
            (Some(u), Some(m)) if m > 0 => Some(u as f64 * 100.0 / m as f64),
            _ => None,
        };

        let details = |o: Outcome| {
            let mut o = o
                .with_detail("ping_ms", round_ms(ping_elapsed))
                .with_detail("latency_ms", round_ms(elapsed))
                .answered_in(elapsed);
            if let Some(v) = &version {
                o = o.with_detail("server_version", v.as_str());
            }
            if let Some(r) = role {
                o = o.with_detail("role", r.as_str());
            }
            if let Some(l) = &link {
                o = o.with_detail("master_link_status", l.as_str());
            }
            if let Some(u) = used {
                o = o.with_detail("used_memory", u);
            }
            if let Some(m) = max {
                o = o.with_detail("maxmemory", m);
            }
            if let Some(p) = memory_percent {
                o = o.with_detail("memory_percent", (p * 100.0).round() / 100.0);
            }
            o
        };

        if let Some(expected) = self.expect_role
            && role != Some(expected)
        {
            return Ok(details(Outcome::failed(
                Reason::Role,
                format!(
                    "{} is a {}, expected a {}",
                    self.shown,
                    role.map(RedisRole::as_str)
                        .or(role_text.as_deref())
                        .unwrap_or("server of unknown role"),
                    expected.as_str()
                ),
            )));
        }
        if self.expect_replica_link_up
            && role == Some(RedisRole::Replica)
            && link.as_deref() != Some("up")
        {
            return Ok(details(Outcome::failed(
                Reason::Role,
                format!(
                    "{}: replica link to its master is {}",
                    self.shown,
                    link.as_deref().unwrap_or("unknown")
                ),
            )));
        }
        if let Some(p) = memory_percent {
            let above = |limit: Option<f64>| limit.is_some_and(|l| p > l);
            let text = |limit: f64| {
                format!(
                    "{}: memory {p:.1}% of maxmemory is above {limit}%",
                    self.shown
                )
            };
            if above(self.memory_unhealthy_above) {
                let limit = self.memory_unhealthy_above.unwrap_or_default();
                return Ok(details(Outcome::failed(Reason::Threshold, text(limit))));
            }
            if above(self.memory_degraded_above) {
                let limit = self.memory_degraded_above.unwrap_or_default();
                return Ok(details(Outcome::degraded(Reason::Threshold, text(limit))));
            }
        }
        let role = role
            .map(RedisRole::as_str)
            .or(role_text.as_deref())
            .unwrap_or("unknown role");
        let version = version.as_deref().unwrap_or("?");
        let memory_note = match (memory_percent, max) {
            (Some(p), _) => format!(", memory {p:.1}% of maxmemory"),
            (None, Some(0)) => ", no maxmemory set".to_string(),
            _ => String::new(),
        };
        Ok(details(Outcome::ok(format!(
            "{} answered PONG ({role}, Redis {version}{memory_note})",
            self.shown
        ))))
    }

    fn error_outcome(&self, doing: &str, e: &redis::RedisError) -> Outcome {
        let code = e.code().unwrap_or("");
        let text = e.to_string();
        let reason = if e.kind() == ErrorKind::AuthenticationFailed
            || matches!(code, "WRONGPASS" | "NOAUTH")
            || text.contains("WRONGPASS")
            || text.contains("NOAUTH")
        {
            Reason::Auth
        } else if e.is_timeout() {
            Reason::Timeout
        } else if e.is_connection_refusal() {
            Reason::Connect
        } else if let Some(reason) = classify(e) {
            reason
        } else if e.kind() == ErrorKind::Io || e.is_connection_dropped() {
            Reason::Connect
        } else {
            Reason::Protocol
        };
        if e.kind() == ErrorKind::AuthenticationFailed {
            // The crate replaces the server's WRONGPASS text with its own; say it plainly.
            let user = self.info.redis_settings().username().unwrap_or("default");
            return Outcome::failed(
                reason,
                format!(
                    "{}: authentication failed: password rejected for user \"{user}\" (WRONGPASS)",
                    self.shown
                ),
            );
        }
        let what = if reason == Reason::Auth {
            "authentication failed"
        } else {
            doing
        };
        Outcome::failed(
            reason,
            format!("{}: {what}: {}", self.shown, one_line(&text)),
        )
    }
}

/// The connection cannot be used any more and must be replaced.
fn connection_broken(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Io || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// `name:value` from an INFO section.
pub(super) fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k == name).then(|| v.to_string())
    })
}

