//! `kind = "redis"`: `PING` over one kept connection, then judge the role, the replica link
//! and memory use from `INFO`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo};
use serde::Deserialize;

use super::Kind;
use super::session::{Connector, Passwords, Session, warn_inline_password};
use crate::model::{Outcome, Reason, classify, one_line, round_ms};

/// Settings of a Redis check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user@]host:port/db` or `rediss://…` (TLS), instead of the separate fields.
    /// A password in it works but is warned about: prefer `password_file` or `password_env`.
    pub url: Option<String>,
    /// Server host name or IP address (required without `url`).
    pub host: Option<String>,
    /// Server port. Default 6379.
    #[serde(default, deserialize_with = "crate::model::de_opt_port")]
    pub port: Option<u16>,
    /// Database index selected after connecting. Default 0.
    pub db: Option<i64>,
    /// ACL user name (Redis 6+). Default: the `default` user.
    pub username: Option<String>,
    /// Connect with TLS (like a `rediss://` URL). Default false.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of CA certificates to trust for TLS *instead of* the system roots.
    pub ca_file: Option<PathBuf>,
    /// Password, inline. Works, but is logged as a warning: use `password_file` or
    /// `password_env`.
    pub password: Option<String>,
    /// File holding the password (one trailing newline is ignored); read at every connect.
    pub password_file: Option<PathBuf>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// Name set with `CLIENT SETNAME`, shown by `CLIENT LIST`. Default `healthd`.
    #[serde(default = "default_client_name")]
    pub client_name: String,
    /// `master` or `replica`, from `INFO replication`; anything else fails (`role`).
    pub expect_role: Option<RedisRole>,
    /// On a replica, require `master_link_status:up`; a down link fails (`role`).
    #[serde(default)]
    pub expect_replica_link_up: bool,
    /// `used_memory` above this percentage of `maxmemory` makes the check degraded.
    pub memory_degraded_above: Option<f64>,
    /// `used_memory` above this percentage of `maxmemory` fails the check.
    pub memory_unhealthy_above: Option<f64>,
}

fn default_client_name() -> String {
    "healthd".into()
}

/// The role a Redis server is expected to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisRole {
    #[serde(alias = "primary")]
    Master,
    #[serde(alias = "slave")]
    Replica,
}

impl RedisRole {
    fn as_str(self) -> &'static str {
        match self {
            RedisRole::Master => "master",
            RedisRole::Replica => "replica",
        }
    }
}

impl RedisConfig {
    /// Where to connect, without any password from the configuration's password keys.
    fn connection_info(&self) -> Result<ConnectionInfo, String> {
        let info = match &self.url {
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err("bad url: use redis:// or rediss://".into());
                }
                url.as_str()
                    .into_connection_info()
                    .map_err(|e| format!("bad url: {}", e.category()))?
            }
            None => {
                let host = self.host.clone().unwrap_or_default();
                let port = self.port.unwrap_or(6379);
                let addr = if self.tls {
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host, port)
                };
                addr.into_connection_info()
                    .map_err(|e| format!("bad address: {}", e.category()))?
            }
        };
        let mut settings = info.redis_settings().clone();
        if let Some(db) = self.db {
            settings = settings.set_db(db);
        }
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        Ok(info.set_redis_settings(settings))
    }

    fn passwords(&self) -> Passwords {
        Passwords {
            inline: self.password.clone(),
            file: self.password_file.clone(),
            env: self.password_env.clone(),
        }
    }
}

impl Kind for RedisConfig {
    type Probe = Session<Redis>;

    fn build(&self, timeout: Duration) -> Result<Session<Redis>, String> {
        let info = self.connection_info()?;
        let ca_pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let url_password = info.redis_settings().password().map(str::to_string);
        let redis = Redis {
            shown: describe(&info),
            info,
            ca_pem,
            client_name: self.client_name.clone(),
            expect_role: self.expect_role,
            expect_replica_link_up: self.expect_replica_link_up,
            memory_degraded_above: self.memory_degraded_above,
            memory_unhealthy_above: self.memory_unhealthy_above,
            timeout,
        };
        Ok(Session::new(redis, self.passwords(), url_password, timeout))
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.url.is_some() {
            for (key, set) in [
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("tls", self.tls),
            ] {
                if set {
                    problems.push((
                        key.into(),
                        "set either url or host/port/tls, not both".into(),
                    ));
                }
            }
        } else if self.host.as_deref().is_none_or(|h| h.trim().is_empty()) {
            problems.push(("host".into(), "missing (set host or url)".into()));
        }
        match self.connection_info() {
            Ok(info) => {
                let url_password = info.redis_settings().password().is_some();
                self.passwords().validate(url_password, problems);
                let shown = describe(&info);
                if url_password {
                    warn_inline_password("redis", &shown, "url");
                } else if self.password.is_some() {
                    warn_inline_password("redis", &shown, "password");
                }
                if self.ca_file.is_some() && !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
                    problems.push((
                        "ca_file".into(),
                        "has no effect without TLS (set tls = true or use rediss://)".into(),
                    ));
                }
            }
            Err(e) => problems.push(("url".into(), e)),
        }
        if let Some(path) = &self.ca_file
            && let Err(e) = std::fs::metadata(path)
        {
            problems.push((
                "ca_file".into(),
                format!("cannot read {}: {e}", path.display()),
            ));
        }
        for (key, value) in [
            ("memory_degraded_above", self.memory_degraded_above),
            ("memory_unhealthy_above", self.memory_unhealthy_above),
        ] {
            if let Some(v) = value
                && !(v > 0.0 && v <= 100.0)
            {
                problems.push((
                    key.into(),
                    format!("must be a percentage above 0 up to 100, not {v}"),
                ));
            }
        }
        if let (Some(d), Some(u)) = (self.memory_degraded_above, self.memory_unhealthy_above)
            && d >= u
        {
            problems.push((
                "memory_degraded_above".into(),
                format!("must be below memory_unhealthy_above ({d} is not below {u})"),
            ));
        }
        if self.client_name.is_empty() || self.client_name.chars().any(|c| c.is_whitespace()) {
            problems.push((
                "client_name".into(),
                "must be non-empty and contain no spaces".into(),
            ));
        }
    }
}

/// `[user@]host:port/db`, for messages (never the password).
fn describe(info: &ConnectionInfo) -> String {
    let (scheme, host, port) = match info.addr() {
        ConnectionAddr::Tcp(h, p) => ("redis", h.clone(), *p),
        ConnectionAddr::TcpTls { host, port, .. } => ("rediss", host.clone(), *port),
        ConnectionAddr::Unix(path) => ("unix", path.display().to_string(), 0),
        other => ("redis", format!("{other:?}"), 0),
    };
    let user = info
        .redis_settings()
        .username()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!(
        "{scheme}://{user}{host}:{port}/{}",
        info.redis_settings().db()
    )
}

/// The Redis half of a kept connection: how to open one and what to ask on it.
pub struct Redis {
    info: ConnectionInfo,
    ca_pem: Option<Vec<u8>>,
    shown: String,
    client_name: String,
    expect_role: Option<RedisRole>,
    expect_replica_link_up: bool,
    memory_degraded_above: Option<f64>,
    memory_unhealthy_above: Option<f64>,
    timeout: Duration,
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
fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k == name).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> RedisConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn url_and_fields_describe_without_password() {
        let c = cfg("url = \"rediss://app:s3cret@cache.example:6380/2\"");
        let info = c.connection_info().unwrap();
        assert_eq!(describe(&info), "rediss://app@cache.example:6380/2");
        let mut problems = Vec::new();
        c.validate(Duration::from_secs(1), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let c = cfg("host = \"127.0.0.1\"\ndb = 3\nusername = \"app\"\ntls = true");
        assert_eq!(
            describe(&c.connection_info().unwrap()),
            "rediss://app@127.0.0.1:6379/3"
        );
    }

    #[test]
    fn bad_settings_are_reported() {
        let mut problems = Vec::new();
        cfg("port = 6379\npassword = \"x\"\npassword_env = \"PW\"\nmemory_degraded_above = 90\nmemory_unhealthy_above = 80\nca_file = \"/nonexistent/ca.pem\"")
            .validate(Duration::from_secs(1), &mut problems);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "host",
                "password_file",
                "ca_file",
                "ca_file",
                "memory_degraded_above"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\n";
        assert_eq!(info_field(info, "role").as_deref(), Some("slave"));
        assert_eq!(
            info_field(info, "master_link_status").as_deref(),
            Some("down")
        );
        assert_eq!(info_field(info, "nope"), None);
    }
}
