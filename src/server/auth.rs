//! Who may see details: a bearer token read from a file (compared in constant time) and/or
//! trusted source networks. Bare verdicts stay public either way (see `server::router`).

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::config::server::{AuthConfig, parse_net, read_token};

/// The runtime form of `[server.auth]`.
#[derive(Clone, Default)]
pub struct Authorizer {
    /// `false` when `[server.auth]` is absent: everyone is authorised.
    enabled: bool,
    token: Option<Vec<u8>>,
    networks: Vec<IpNet>,
    /// The token file could not be read: nobody is let in.
    locked: bool,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| crate::redact::MASK))
            .field("networks", &self.networks)
            .field("locked", &self.locked)
            .finish()
    }
}

impl Authorizer {
    /// Build from config, reading the token file. A failure here (the file vanished since
    /// validation) yields an authorizer that lets nobody in: fail closed.
    pub fn of(config: &Option<AuthConfig>) -> Authorizer {
        let Some(c) = config else {
            return Authorizer::default();
        };
        let networks = c
            .trusted_networks
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect();
        let token = match &c.token_file {
            None => None,
            Some(path) => match read_token(path) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot read the auth token; details are denied to everyone until it is readable and healthd reloads.");
                    return Authorizer {
                        enabled: true,
                        token: None,
                        networks: Vec::new(),
                        locked: true,
                    };
                }
            },
        };
        Authorizer {
            enabled: true,
            token,
            networks,
            locked: false,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The token file was unreadable when this was built: details are denied to everyone.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Whether a caller from `peer` sending `headers` may see details.
    pub fn allows(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        if !self.enabled {
            return true;
        }
        if let Some(ip) = peer {
            let ip = ip.to_canonical();
            if self.networks.iter().any(|n| n.contains(&ip)) {
                return true;
            }
        }
        let Some(want) = &self.token else {
            return false;
        };
        if bearer(headers).is_some_and(|got| bool::from(want.as_slice().ct_eq(got))) {
            return true;
        }
        // The status page's login cookie: the token's SHA-256, never the token itself.
        let digest = digest_hex(want);
        cookie(headers).is_some_and(|got| bool::from(digest.as_bytes().ct_eq(got)))
    }

    /// Whether `token` is the configured token (the status page's login form).
    pub fn accepts_token(&self, token: &[u8]) -> bool {
        match &self.token {
            Some(want) => bool::from(want.as_slice().ct_eq(token.trim_ascii())),
            None => false,
        }
    }
}

/// The name of the status page's login cookie.
pub const COOKIE: &str = "healthd_token";

/// The SHA-256 of a token, in hex: what the login cookie holds.
pub fn digest_hex(token: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, token)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cookie(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            pair.strip_prefix(COOKIE.as_bytes())?.strip_prefix(b"=")
        })
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.len().min(7));
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_token(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn token_and_networks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let a = Authorizer::of(&Some(AuthConfig {
            token_file: Some(path),
            trusted_networks: vec!["10.1.0.0/16".into()],
        }));
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(a.allows(Some(outside), &with_token("s3cret-token")));
        assert!(!a.allows(Some(outside), &with_token("s3cret-tokem")));
        assert!(!a.allows(Some(outside), &with_token("s3cret")));
        assert!(!a.allows(Some(outside), &HeaderMap::new()));
        assert!(!a.allows(None, &HeaderMap::new()));
        assert!(a.allows(Some(inside), &HeaderMap::new()));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(a.allows(Some(mapped), &HeaderMap::new()));
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn absent_means_open_and_defaults_trust_loopback() {
        assert!(Authorizer::of(&None).allows(None, &HeaderMap::new()));
        let c: AuthConfig = toml::from_str("").unwrap();
        let a = Authorizer::of(&Some(c));
        assert!(a.allows(Some("127.0.0.1".parse().unwrap()), &HeaderMap::new()));
        assert!(a.allows(Some("::1".parse().unwrap()), &HeaderMap::new()));
        assert!(!a.allows(Some("192.0.2.1".parse().unwrap()), &HeaderMap::new()));
    }

    #[test]
    fn bad_networks_and_missing_token_files_are_reported() {
        let c = AuthConfig {
            token_file: Some("/nonexistent/token".into()),
            trusted_networks: vec!["10.0.0.0/33".into(), "::1".into()],
        };
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["trusted_networks[0]", "token_file"]);
    }
}
