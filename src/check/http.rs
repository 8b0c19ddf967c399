//! `kind = "http"`: request a URL and judge the status, body and latency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::matcher::{Matcher, validate_regex};
use super::{Kind, Run};
use crate::model::{Outcome, Reason, classify, error_chain, one_line};

/// Most bytes of a body read while matching it.
const MAX_BODY: usize = 1024 * 1024;

/// Settings of an HTTP check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Accepted status codes: numbers and ranges such as `"200-299"`. Default 200 to 399.
    #[serde(default = "default_status")]
    pub expect_status: Vec<StatusRange>,
    /// Substring the body must contain.
    pub body_contains: Option<String>,
    /// Regular expression the body must match.
    pub body_regex: Option<String>,
    /// Follow redirects (up to 10; never to a target with credentials in it). Default false:
    /// a 3xx is judged as it is.
    #[serde(default)]
    pub follow_redirects: bool,
    /// PEM file with extra CA certificates to trust, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For testing only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn default_method() -> String {
    "GET".into()
}

fn default_status() -> Vec<StatusRange> {
    vec![StatusRange(200, 399)]
}

/// An inclusive range of status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange(pub u16, pub u16);

impl StatusRange {
    fn contains(&self, code: u16) -> bool {
        (self.0..=self.1).contains(&code)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Code(i64),
            Text(String),
        }
        let bad = |s: &str| {
            serde::de::Error::custom(format!("invalid status \"{s}\" (use 200 or \"200-299\")"))
        };
        let check =
            |n: i64| -> Option<u16> { u16::try_from(n).ok().filter(|c| (100..=599).contains(c)) };
        match Repr::deserialize(d)? {
            Repr::Code(n) => check(n)
                .map(|c| StatusRange(c, c))
                .ok_or_else(|| bad(&n.to_string())),
            Repr::Text(s) => {
                let (lo, hi) = s.split_once('-').unwrap_or((&s, &s));
                let lo = lo.trim().parse().ok().and_then(check);
                let hi = hi.trim().parse().ok().and_then(check);
                match (lo, hi) {
                    (Some(lo), Some(hi)) if lo <= hi => Ok(StatusRange(lo, hi)),
                    _ => Err(bad(&s)),
                }
            }
        }
    }
}

impl Kind for HttpConfig {
    type Probe = HttpProbe;

    fn build(&self, timeout: Duration) -> Result<HttpProbe, String> {
        HttpProbe::new(self, timeout)
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(u) if u.host_str().is_none() => {
                problems.push(("url".into(), "bad URL: no host".into()))
            }
            Ok(u) => problems.push((
                "url".into(),
                format!("bad URL: scheme \"{}\" (use http or https)", u.scheme()),
            )),
            Err(e) => problems.push(("url".into(), format!("bad URL: {e}"))),
        }
        if reqwest::Method::from_bytes(self.method.as_bytes()).is_err() {
            problems.push((
                "method".into(),
                format!("invalid method \"{}\"", self.method),
            ));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push((format!("headers.{name}"), "invalid header name".into()));
            } else if reqwest::header::HeaderValue::from_str(value).is_err() {
                problems.push((format!("headers.{name}"), "invalid header value".into()));
            }
        }
        if self.expect_status.is_empty() {
            problems.push((
                "expect_status".into(),
                "must list at least one status".into(),
            ));
        }
        if self.body_contains.is_some() && self.body_regex.is_some() {
            problems.push((
                "body_regex".into(),
                "set either body_contains or body_regex, not both".into(),
            ));
        }
        validate_regex("body_regex", &self.body_regex, problems);
        validate_ca_file(&self.ca_file, problems);
    }
}

/// Problems with a `ca_file` key, for every HTTP client healthd builds (this kind,
/// notification receivers). Read and parsed now: a file that holds no certificate would
/// otherwise only show up as a failure after start.
pub fn validate_ca_file(ca_file: &Option<PathBuf>, problems: &mut Vec<(String, String)>) {
    let Some(path) = ca_file else {
        return;
    };
    match std::fs::read(path) {
        Err(e) => problems.push((
            "ca_file".into(),
            format!("cannot read {}: {e}", path.display()),
        )),
        Ok(pem) => match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => {}
            Ok(_) => problems.push((
                "ca_file".into(),
                format!("no PEM certificate in {}", path.display()),
            )),
            Err(e) => problems.push((
                "ca_file".into(),
                format!("bad certificate in {}: {e}", path.display()),
            )),
        },
    }
}

/// An HTTP client with healthd's settings (no proxy, healthd's user agent, no redirects
/// unless asked, never to a target with credentials), trusting the system roots plus
/// `ca_file`, or anything with `insecure_skip_verify`. Clients with the same settings are
/// shared (see [`ClientKey`]).
pub fn client(
    follow_redirects: bool,
    ca_file: Option<&Path>,
    insecure_skip_verify: bool,
) -> Result<reqwest::Client, String> {
    // reqwest is built without a default TLS provider and panics without one; the binary
    // installs ring at start, and this makes the library safe to use on its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_pem = match ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
        }
        None => None,
    };
    shared_client(ClientKey {
        follow_redirects,
        insecure_skip_verify,
        ca_pem,
    })
    .map_err(|e| match ca_file {
        Some(path) => format!("{e} ({})", path.display()),
        None => e,
    })
}

/// What makes two HTTP checks need different clients. Checks that agree share one client:
/// building one loads and parses the system's root certificates (~130 KiB and ~5 ms each),
/// and a shared client keeps one connection pool per target host for all of them.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    follow_redirects: bool,
    insecure_skip_verify: bool,
    /// The CA file's contents, so a file changed before a reload gets a new client.
    ca_pem: Option<Vec<u8>>,
}

/// Most distinct clients kept for reuse; past it the cache starts over (probes keep theirs).
const MAX_SHARED_CLIENTS: usize = 64;
/// Idle keep-alive connections a shared client keeps per target host.
const IDLE_PER_HOST: usize = 32;

fn shared_client(key: ClientKey) -> Result<reqwest::Client, String> {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<ClientKey, reqwest::Client>>,
    > = std::sync::OnceLock::new();
    let cache = CLIENTS.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked while holding it; the map is
    // still a valid cache.
    let mut clients = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .user_agent(concat!("healthd/", env!("CARGO_PKG_VERSION")))
        .redirect(if key.follow_redirects {
            reqwest::redirect::Policy::custom(follow)
        } else {
            reqwest::redirect::Policy::none()
        });
    if let Some(pem) = &key.ca_pem {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("bad CA file: {e}"))?;
        if certs.is_empty() {
            return Err("bad CA file: no certificates".into());
        }
        builder = builder.tls_certs_merge(certs);
    }
    if key.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    if clients.len() >= MAX_SHARED_CLIENTS {
        clients.clear();
    }
    clients.insert(key, client.clone());
    Ok(client)
}

pub struct HttpProbe {
    client: reqwest::Client,
    /// Bound on each request (the client is shared by checks with other timeouts).
    timeout: Duration,
    method: reqwest::Method,
    url: reqwest::Url,
    /// The URL without credentials, for messages.
    shown: String,
    headers: reqwest::header::HeaderMap,
    expect_status: Vec<StatusRange>,
    body: Option<Matcher>,
}

impl HttpProbe {
    fn new(c: &HttpConfig, timeout: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(&c.url).map_err(|e| format!("bad URL: {e}"))?;
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        let client = client(
            c.follow_redirects,
            c.ca_file.as_deref(),
            c.insecure_skip_verify,
        )?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &c.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("header {k}: {e}"))?;
            let mut value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| format!("header {k}: {e}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(HttpProbe {
            client,
            timeout,
            method: reqwest::Method::from_bytes(c.method.as_bytes()).map_err(|e| e.to_string())?,
            url,
            shown: shown.to_string(),
            headers,
            expect_status: c.expect_status.clone(),
            body: Matcher::new(&c.body_contains, &c.body_regex)?,
        })
    }

    fn error_outcome(&self, e: reqwest::Error) -> Outcome {
        let reason = classify_reqwest(&e);
        let e = e.without_url();
        Outcome::failed(
            reason,
            format!("{}: {}", self.shown, one_line(&error_chain(&e))),
        )
    }
}

impl Run for HttpProbe {
    async fn run(&mut self) -> Outcome {
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .timeout(self.timeout)
            .headers(self.headers.clone());
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.error_outcome(e),
        };
        let code = response.status().as_u16();
        if !self.expect_status.iter().any(|r| r.contains(code)) {
            drain(&mut response).await;
            return Outcome::failed(Reason::Status, format!("{} answered {code}", self.shown))
                .with_detail("status_code", code);
        }
        if let Some(matcher) = &self.body {
            let mut body = Vec::new();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        body.extend_from_slice(&chunk);
                        if body.len() >= MAX_BODY {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.error_outcome(e),
                }
            }
            let text = String::from_utf8_lossy(&body);
            if !matcher.matches(&text) {
                return Outcome::failed(
                    Reason::Body,
                    format!(
                        "{} answered {code} without {} in the body",
                        self.shown,
                        matcher.describe()
                    ),
                )
                .with_detail("status_code", code);
            }
        }
        if self.body.is_none() {
            drain(&mut response).await;
        }
        Outcome::ok(format!("{} answered {code}", self.shown)).with_detail("status_code", code)
    }
}

/// Read what is left of a short body, briefly, so the connection can go back to the pool
/// (keep-alive: no new connection, no TIME_WAIT, per run). A slow or long body is left
/// alone; the connection is then simply not reused.
async fn drain(response: &mut reqwest::Response) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read >= MAX_BODY {
                break;
            }
        }
    })
    .await;
}

/// How long [`drain`] waits for the rest of a body.
const DRAIN_FOR: Duration = Duration::from_millis(50);

/// Most redirects followed in one run.
const MAX_REDIRECTS: usize = 10;

/// Follow up to [`MAX_REDIRECTS`] redirects, but never one whose target carries credentials
/// (`user:password@`): the HTTP client would log them at trace level and send them on.
fn follow(attempt: reqwest::redirect::Attempt) -> reqwest::redirect::Action {
    let target = attempt.url();
    if !target.username().is_empty() || target.password().is_some() {
        attempt.error("redirect refused: its target carries credentials (user:password@)")
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
    } else {
        attempt.follow()
    }
}

/// Map a reqwest error to a reason: reqwest's own timeout flag, then the common classifier,
/// then reqwest's connect flag; an answer that is not HTTP is `protocol`.
fn classify_reqwest(e: &reqwest::Error) -> Reason {
    if e.is_timeout() {
        return Reason::Timeout;
    }
    classify(e).unwrap_or(if e.is_connect() {
        Reason::Connect
    } else {
        Reason::Protocol
    })
}
