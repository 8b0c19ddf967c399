//! Helpers for the fault and abuse suites: an in-process healthd on a loopback port and
//! real peers that misbehave on demand.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use healthd::config::Sources;
use healthd::daemon::Daemon;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A daemon running in this test's runtime, with its config directory.
pub struct Healthd {
    pub daemon: Daemon,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Start healthd with `config` (TOML), listening on a free loopback port.
pub async fn start(config: &str) -> Healthd {
    install_crypto();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("healthd.toml");
    std::fs::write(&path, config).expect("write config");
    let probes = dir.path().join("probes.d");
    std::fs::create_dir(&probes).expect("probes.d");
    let sources = Sources {
        config: Some(path),
        probes_dir: Some(probes),
        env: Some(HashMap::new()),
    };
    let daemon = Daemon::start(sources, Some("127.0.0.1:0".parse().expect("addr")))
        .await
        .unwrap_or_else(|e| panic!("healthd did not start: {e:?}"));
    let base = format!("http://{}", daemon.local_addr);
    // Idle connections are dropped before the server's header read timeout (1 s in the
    // slowloris test) would close them under a request.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_millis(500))
        .no_proxy()
        .build()
        .expect("client");
    Healthd {
        daemon,
        base,
        client,
        dir,
    }
}

impl Healthd {
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = r.status().as_u16();
        (code, r.text().await.unwrap_or_default())
    }

    /// The check's view from `/health`.
    pub async fn view(&self, name: &str) -> Value {
        let (code, body) = self.get("/health").await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("health JSON");
        v["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no check {name} in {body}"))
    }

    /// Poll the check's view until `cond` holds; returns how long it took.
    pub async fn wait_for(
        &self,
        name: &str,
        within: Duration,
        what: &str,
        cond: impl Fn(&Value) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let v = self.view(name).await;
            if cond(&v) {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!("{name}: not {what} within {within:?}; last view: {v:#}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `/livez` and `/readyz` answer the expected codes.
    pub async fn assert_probes(&self, live: u16, ready: u16) {
        let (code, body) = self.get("/livez?verbose").await;
        assert_eq!(code, live, "/livez: {body}");
        let (code, body) = self.get("/readyz?verbose").await;
        assert_eq!(code, ready, "/readyz: {body}");
    }
}

pub fn is(status: &'static str, reason: Option<&'static str>) -> impl Fn(&Value) -> bool {
    move |v| v["status"] == status && reason.is_none_or(|r| v["reason"] == r)
}

pub fn last_run(v: &Value) -> String {
    v["last_run"].as_str().unwrap_or_default().to_string()
}

/// A TCP peer: counts connections; in mode `ANSWER` it replies `PONG\n` to anything, in
/// `HOLD` it accepts and never answers. It reads until the client closes, so the client
/// closes first.
pub struct TcpPeer {
    pub addr: SocketAddr,
    pub mode: Arc<AtomicU8>,
    pub accepted: Arc<AtomicUsize>,
    pub open: Arc<AtomicUsize>,
    accept_task: tokio::task::JoinHandle<()>,
}

pub const ANSWER: u8 = 0;
pub const HOLD: u8 = 1;

impl TcpPeer {
    pub async fn start(mode: u8) -> TcpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, mode)
    }

    pub fn serve(listener: TcpListener, mode: u8) -> TcpPeer {
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(AtomicU8::new(mode));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (m, a, o) = (mode.clone(), accepted.clone(), open.clone());
        let accept_task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (m, o) = (m.clone(), o.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) if m.load(Ordering::SeqCst) == ANSWER => {
                                if s.write_all(b"PONG\n").await.is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TcpPeer {
            addr,
            mode,
            accepted,
            open,
            accept_task,
        }
    }

    /// Stop listening: new connections are refused.
    pub async fn stop_listening(&self) {
        self.accept_task.abort();
        while !self.accept_task.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// An HTTP upstream whose behaviour is switched at run time.
pub struct HttpPeer {
    pub addr: SocketAddr,
    pub mode: Arc<AtomicU8>,
    pub requests: Arc<AtomicUsize>,
    /// Distinct client ports seen (one per connection).
    pub connections: Arc<std::sync::Mutex<std::collections::HashSet<u16>>>,
}

pub const OK: u8 = 0;
pub const FAIL_500: u8 = 1;
pub const HANG_MID_BODY: u8 = 2;
pub const SLOW: u8 = 3;
/// Alternate 200 and 500 on every request.
pub const ALTERNATE: u8 = 4;

impl HttpPeer {
    pub async fn start() -> HttpPeer {
        use axum::body::Body;
        use axum::extract::{ConnectInfo, State};
        use axum::response::Response;
        type S = (
            Arc<AtomicU8>,
            Arc<AtomicUsize>,
            Arc<std::sync::Mutex<std::collections::HashSet<u16>>>,
        );
        async fn handler(
            State((mode, n, conns)): State<S>,
            ConnectInfo(peer): ConnectInfo<SocketAddr>,
        ) -> Response {
            let i = n.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut c) = conns.lock() {
                c.insert(peer.port());
            }
            let build = |code: u16, body: Body| {
                Response::builder()
                    .status(code)
                    .body(body)
                    .unwrap_or_default()
            };
            match mode.load(Ordering::SeqCst) {
                FAIL_500 => build(500, Body::from("broken end")),
                HANG_MID_BODY => {
                    let first = futures_util::stream::once(async {
                        Ok::<_, std::io::Error>(bytes_of("partial "))
                    });
                    let rest = futures_util::stream::pending();
                    use futures_util::StreamExt;
                    build(200, Body::from_stream(first.chain(rest)))
                }
                SLOW => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    build(200, Body::from("late end"))
                }
                ALTERNATE if i % 2 == 1 => build(500, Body::from("odd end")),
                _ => build(200, Body::from("fine end")),
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state: S = Default::default();
        let app = axum::Router::new()
            .route("/", axum::routing::get(handler))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        HttpPeer {
            addr,
            mode: state.0,
            requests: state.1,
            connections: state.2,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

fn bytes_of(s: &'static str) -> axum::body::Bytes {
    axum::body::Bytes::from_static(s.as_bytes())
}

/// A port nothing listens on (bound, then released).
pub async fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

/// A line the README's failure table is filled from.
pub fn report(name: &str, detect: Option<Duration>, recover: Option<Duration>) {
    let f = |d: Option<Duration>| match d {
        Some(d) => format!("{:.2}s", d.as_secs_f64()),
        None => "n/a".into(),
    };
    eprintln!("FAULT {name} detect={} recover={}", f(detect), f(recover));
}
