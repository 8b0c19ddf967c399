//! Real peers on loopback: a listener that accepts and never answers ([`SilentPeer`]), a
//! bound port that refuses ([`RefusingPort`]), a listener that accepts and closes
//! ([`live_port`]), TCP and HTTP peers that misbehave on demand ([`TcpPeer`], [`HttpPeer`]),
//! and a throwaway PKI ([`TestCerts`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// A peer that accepts connections, reads and discards what it is sent, and never answers.
/// Connections stay open until the peer is dropped.
pub struct SilentPeer {
    pub addr: std::net::SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl SilentPeer {
    pub async fn start() -> SilentPeer {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> SilentPeer {
        let listener = TcpListener::bind(addr).await.expect("bind silent peer");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                held.push(tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    // Drain what the client sends; never write; keep the socket open.
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    std::future::pending::<()>().await;
                }));
            }
        });
        SilentPeer {
            addr,
            accepted,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port that is bound (so nobody else takes it) but not listening: connecting is refused.
/// The only refused-port helper: a port bound and then released could be taken by a parallel
/// test before the check runs.
pub struct RefusingPort {
    pub socket: TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind without listening");
        let port = socket.local_addr().expect("local addr").port();
        RefusingPort { socket, port }
    }

    /// Start listening on the port (the dependency comes up); needs a tokio runtime.
    pub fn listen(self) -> TcpListener {
        self.socket
            .listen(1024)
            .expect("listen on the refusing port")
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        Self::new()
    }
}

/// A TCP server on 127.0.0.1 that accepts and closes every connection (a healthy `tcp`
/// check target), for the rest of the test process. Accepting matters: an unaccepted
/// backlog fills up after ~128 checks and connections then hang.
pub fn live_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind live listener");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

/// A loopback port whose peer answers `PONG\n` to the first bytes of every connection after
/// `delay` (a thread per connection), so probes hold their connection that long.
pub fn slow_answer_port(delay: std::time::Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind slow listener");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                if conn.read(&mut buf).is_ok_and(|n| n > 0) {
                    std::thread::sleep(delay);
                    let _ = conn.write_all(b"PONG\n");
                }
            });
        }
    });
    port
}

/// A TCP peer: counts open connections; in mode `ANSWER` it replies `PONG\n` to anything, in
/// `HOLD` it accepts and never answers, in `ECHO` it sends back what it reads. It reads until
/// the client closes, so the client closes first.
pub struct TcpPeer {
    pub addr: SocketAddr,
    pub mode: Arc<AtomicU8>,
    pub open: Arc<AtomicUsize>,
    accept_task: tokio::task::JoinHandle<()>,
}

pub const ANSWER: u8 = 0;
pub const HOLD: u8 = 1;
pub const ECHO: u8 = 2;

impl TcpPeer {
    pub async fn start(mode: u8) -> TcpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, mode)
    }

    pub fn serve(listener: TcpListener, mode: u8) -> TcpPeer {
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(AtomicU8::new(mode));
        let open = Arc::new(AtomicUsize::new(0));
        let (m, o) = (mode.clone(), open.clone());
        let accept_task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
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
                            Ok(n) if m.load(Ordering::SeqCst) == ECHO => {
                                if s.write_all(&buf[..n]).await.is_err() {
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

/// A line the README's failure table is filled from.
pub fn report(name: &str, detect: Option<Duration>, recover: Option<Duration>) {
    let f = |d: Option<Duration>| match d {
        Some(d) => format!("{:.2}s", d.as_secs_f64()),
        None => "n/a".into(),
    };
    eprintln!("FAULT {name} detect={} recover={}", f(detect), f(recover));
}

/// A test CA and a server certificate it issued for IP 127.0.0.1 only, made with the
/// `openssl` command (PEM files in a directory).
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    pub fn make(dir: &Path) -> TestCerts {
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=healthd test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=healthd test server",
        ]);
        openssl(dir, &csr);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestCerts {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// Runs `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP peer that can be taken down (port closed: refused) and brought back on the same
/// port.
pub struct Switch {
    pub port: u16,
    task: Option<JoinHandle<()>>,
}

impl Switch {
    pub async fn up_on(port: u16) -> Switch {
        let mut s = Switch { port, task: None };
        s.up().await;
        s
    }

    pub async fn new_up() -> Switch {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Self::up_on(port).await
    }

    pub async fn up(&mut self) {
        if self.task.is_some() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(async move {
            while listener.accept().await.is_ok() {}
        }));
    }

    pub async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}
