//! `kind = "redis"`: `PING` over one kept connection, then judge the role, the replica link
//! and memory use from `INFO`.

use std::path::PathBuf;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use serde::Deserialize;

use probe::Redis;

use super::Kind;
use super::session::{Passwords, Session, warn_inline_password};

mod probe;

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
    pub(crate) fn as_str(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::probe::info_field;
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
