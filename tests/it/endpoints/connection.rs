//! One connection's requests over a real socket, as the probe lane reads them
//! (`server/plain.rs`): pipelined verdicts answered in order, a request for the router after
//! them on the same connection, a head sent a few bytes at a time, and the header read
//! timeout between requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{tcp, wait_reported};
use crate::support::daemon::TestDaemon;
use crate::support::peers::{RefusingPort, Switch};

/// One answer read off the connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one answer (its body by `Content-Length`; none after a HEAD).
fn read_answer(s: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> Answer {
    let end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read a head");
        assert!(n > 0, "closed before a complete head: {pending:?}");
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(pending.drain(..end).collect()).expect("utf-8 head");
    let mut lines = head.trim_end().split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("a header line");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let len = if head_only { 0 } else { len };
    while pending.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read a body");
        assert!(n > 0, "closed inside a body");
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8(pending.drain(..len).collect()).expect("utf-8 body");
    Answer {
        status,
        headers,
        body,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Whether the server closed the connection (a read returns end of file or a reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_pipelined_verdicts_then_the_router_then_a_slow_head() {
    let up = Switch::new_up().await;
    let down = RefusingPort::new();
    let d = TestDaemon::start(&format!(
        "[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
         [server.limits]\nheader_read_timeout = \"1s\"\n{}{}",
        tcp("api", up.port, ""),
        tcp("db", down.port, ""),
    ))
    .await;
    wait_reported(&d, &["api", "db"], true).await;
    let addr = d.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        // Five requests in one write: three verdicts, one for the router, one verdict after it.
        s.write_all(
            b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n\
              HEAD /livez HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /startupz HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n\
              GET /readyz?verbose HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /livez HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .expect("send");
        let mut pending = Vec::new();
        let readyz = read_answer(&mut s, &mut pending, false);
        assert_eq!((readyz.status, readyz.body.as_str()), (503, "unhealthy\n"));
        assert_eq!(readyz.header("cache-control"), Some("no-store"));
        assert_eq!(
            readyz.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let date = httpdate::parse_http_date(readyz.header("date").expect("a date"))
            .expect("an HTTP date");
        let skew = std::time::SystemTime::now()
            .duration_since(date)
            .unwrap_or_default();
        assert!(skew < Duration::from_secs(60), "{skew:?}");
        let head = read_answer(&mut s, &mut pending, true);
        assert_eq!(
            (head.status, head.header("content-length")),
            (200, Some("3"))
        );
        let startupz = read_answer(&mut s, &mut pending, false);
        assert_eq!((startupz.status, startupz.body.as_str()), (200, "ok\n"));
        let verbose = read_answer(&mut s, &mut pending, false);
        assert_eq!(verbose.status, 503);
        assert!(
            verbose.body.contains("[+]api ok\n")
                && verbose.body.contains("[-]db failed: ")
                && verbose.body.ends_with("readyz check failed\n"),
            "{}",
            verbose.body
        );
        let livez = read_answer(&mut s, &mut pending, false);
        assert_eq!((livez.status, livez.body.as_str()), (200, "ok\n"));
        assert!(pending.is_empty(), "nothing more was asked: {pending:?}");

        // A new connection, its head a few bytes at a time; then it waits, and is closed
        // by the header read timeout (1 s), with no answer.
        let mut s = connect(addr);
        let request = b"GET /readyz HTTP/1.1\r\nHost: a\r\nUser-Agent: slow\r\n\r\n";
        for part in request.chunks(7) {
            s.write_all(part).expect("send a part");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut pending = Vec::new();
        let slow = read_answer(&mut s, &mut pending, false);
        assert_eq!((slow.status, slow.body.as_str()), (503, "unhealthy\n"));
        let waiting = Instant::now();
        assert!(closed(&mut s), "an idle connection stays open");
        let waited = waiting.elapsed();
        assert!(
            waited >= Duration::from_millis(500),
            "closed after {waited:?}, before its header read timeout"
        );

        // `Connection: close` is honoured: the answer, then the end of the connection.
        let mut s = connect(addr);
        s.write_all(b"GET /livez HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read until closed");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("\r\nconnection: close\r\n") && answer.ends_with("\r\n\r\nok\n"),
            "{answer}"
        );

        // HTTP/1.0 is the router's: answered (and closed, as HTTP/1.0 asks), not dropped.
        let mut s = connect(addr);
        s.write_all(b"GET /livez HTTP/1.0\r\n\r\n").expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read until closed");
        assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
    })
    .await
    .unwrap();
}
