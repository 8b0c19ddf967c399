//! The probe lane's own answer to the plain verdict requests: `GET` or `HEAD` of `/livez`,
//! `/readyz` or `/startupz`, HTTP/1.1, no query, no body, no JSON asked for. kubelet, load
//! balancers and most probers send nothing else, and the answer is one of a few fixed
//! texts, so a probe connection is read here, each head parsed with `httparse` (hyper's own
//! parser), and the verdict written straight from the snapshot, without hyper's connection
//! machinery, header maps or a timer per request. That machinery was most of the user-space
//! time of a `/readyz` answer (bench/README.md, round eleven).
//!
//! Anything else that arrives on the connection — another path, a query, a body, a head
//! `httparse` rejects or one that is too large, HTTP/1.0 — hands the connection, with every
//! byte read so far and not yet answered, to hyper and the router, which answer it (and any
//! error) as they answer every other connection. A plain request on a connection hyper
//! serves is answered by the same rules before the router ([`fast`]): the same status, body
//! and headers (`Connection: close` while draining).
//!
//! The header read timeout is kept as hyper keeps it: from the start of each request head
//! (also while a keep-alive connection waits for its next one) until the head is complete; a
//! connection that runs out of it is closed without an answer.

use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use axum::http;

use super::conns::Activity;
use super::{CLOSE, NO_STORE, TEXT_PLAIN};
use crate::health::Verdicts;
use crate::model::Group;

/// Headers a plain request may carry; a request with more goes to hyper.
const MAX_HEADERS: usize = 32;

/// What the head at the start of the buffer is.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A plain verdict request, `len` bytes long.
    Plain {
        len: usize,
        group: Group,
        head_only: bool,
        close: bool,
    },
    /// Not complete yet.
    Partial,
    /// Anything else: hyper answers it.
    Other,
}

/// Read the head at the start of `buf`. `max_header_bytes` bounds the headers as the router's
/// limits do (name, value and four bytes each); a larger head is hyper's to refuse.
fn head(buf: &[u8], max_header_bytes: usize) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Head::Other,
    };
    let Some(group) = req.path.and_then(group_of) else {
        return Head::Other;
    };
    if req.version != Some(1) {
        return Head::Other;
    }
    let mut close = false;
    let mut header_bytes = 0;
    for h in req.headers.iter() {
        header_bytes += h.name.len() + h.value.len() + 4;
        if !plain_header(h.name.as_bytes(), h.value, &mut close) {
            return Head::Other;
        }
    }
    if header_bytes > max_header_bytes {
        return Head::Other;
    }
    Head::Plain {
        len,
        group,
        head_only,
        close,
    }
}

/// The group whose whole verdict a path asks for.
fn group_of(path: &str) -> Option<Group> {
    match path {
        "/livez" => Some(Group::Liveness),
        "/readyz" => Some(Group::Readiness),
        "/startupz" => Some(Group::Startup),
        _ => None,
    }
}

/// Whether a request with this header can still be plain: no body, no JSON asked for, no
/// upgrade or `Expect`. Sets `close` when it asks for the connection to be closed.
fn plain_header(name: &[u8], value: &[u8], close: &mut bool) -> bool {
    if name.eq_ignore_ascii_case(b"content-length") {
        value.trim_ascii() == b"0"
    } else if name.eq_ignore_ascii_case(b"accept") {
        !contains_ignore_case(value, b"application/json")
    } else if name.eq_ignore_ascii_case(b"connection") {
        *close |= has_token(value, b"close");
        !has_token(value, b"upgrade")
    } else {
        !(name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade"))
    }
}

/// The plain verdict of a whole group on a connection hyper serves (one that began with
/// another request, or TLS), answered before the router by the same rules as [`Plain`];
/// `None` for anything else, which the router then serves. hyper itself honours a
/// `Connection: close` the client sent.
pub fn fast<B>(
    verdicts: &Verdicts,
    req: &http::Request<B>,
    max_header_bytes: usize,
) -> Option<http::Response<axum::body::Body>> {
    use axum::http::{Method, StatusCode, header};
    if req.method() != Method::GET && req.method() != Method::HEAD || req.uri().query().is_some() {
        return None;
    }
    let group = group_of(req.uri().path())?;
    let mut header_bytes = 0;
    let mut close = false;
    for (name, value) in req.headers() {
        header_bytes += name.as_str().len() + value.len() + 4;
        if !plain_header(name.as_str().as_bytes(), value.as_bytes(), &mut close) {
            return None;
        }
    }
    if header_bytes > max_header_bytes {
        return None;
    }
    let (pass, word) = verdicts.group(group);
    let body = match word {
        "ok" => axum::body::Bytes::from_static(b"ok\n"),
        other => axum::body::Bytes::from(format!("{other}\n")),
    };
    let mut r = http::Response::new(axum::body::Body::from(body));
    *r.status_mut() = if pass {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    h.insert(header::CACHE_CONTROL, NO_STORE.clone());
    if verdicts.draining() {
        h.insert(header::CONNECTION, CLOSE.clone());
    }
    Some(r)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether a comma-separated header value lists `token`.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Append the answer to a plain request to `out`.
fn answer(out: &mut Vec<u8>, pass: bool, word: &str, head_only: bool, close: bool) {
    out.extend_from_slice(if pass {
        b"HTTP/1.1 200 OK\r\n"
    } else {
        b"HTTP/1.1 503 Service Unavailable\r\n"
    });
    out.extend_from_slice(
        b"content-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\n",
    );
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    push_decimal(out, word.len() + 1);
    out.extend_from_slice(b"\r\ndate: ");
    DATE.with(|d| out.extend_from_slice(&d.now()));
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(word.as_bytes());
        out.push(b'\n');
    }
}

/// `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
}

/// The `Date` header's value, formatted once a second per thread.
struct DateCache {
    at: std::cell::Cell<u64>,
    text: std::cell::Cell<[u8; 29]>,
}

impl DateCache {
    fn now(&self) -> [u8; 29] {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.at.get() {
            let mut text = [b' '; 29];
            let formatted = httpdate::fmt_http_date(now);
            let n = formatted.len().min(29);
            text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
            self.text.set(text);
            self.at.set(secs);
        }
        self.text.get()
    }
}

thread_local! {
    static DATE: DateCache = const {
        DateCache { at: std::cell::Cell::new(u64::MAX), text: std::cell::Cell::new([b' '; 29]) }
    };
}

/// How a connection served here ended.
pub enum Ended {
    /// Closed: by the client, by a `Connection: close` answer, the header read timeout, an
    /// error, or the listener stopping between requests.
    Closed,
    /// A request for hyper arrived: these bytes of it (and maybe more) are read already.
    ToRouter(Vec<u8>),
}

/// What serving a probe connection here needs.
pub struct Plain<'a> {
    pub verdicts: &'a Verdicts,
    pub activity: &'a Activity,
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    /// The largest head hyper accepts; a longer one goes to hyper, which refuses it.
    pub max_head: usize,
    /// The connection's close signal: closed to make room (at once), or the listener
    /// stopping (`stop` cancelled too: closed once no request is in progress).
    pub close: &'a CancellationToken,
    pub stop: &'a CancellationToken,
}

impl Plain<'_> {
    /// Answer the connection's plain requests until it closes or asks something else.
    pub async fn serve(&self, stream: &mut TcpStream) -> Ended {
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut out: Vec<u8> = Vec::with_capacity(256);
        let timeout = tokio::time::sleep(self.header_timeout);
        tokio::pin!(timeout);
        let closed = self.close.cancelled();
        tokio::pin!(closed);
        let mut stopping = false;
        loop {
            // Answer every complete plain request read so far (pipelined ones at once).
            let mut close = false;
            let mut used = 0;
            let other = loop {
                match head(&buf[used..], self.max_header_bytes) {
                    Head::Plain {
                        len,
                        group,
                        head_only,
                        close: asked,
                    } => {
                        used += len;
                        self.activity.mark_probe();
                        let draining = self.verdicts.draining();
                        close = asked || draining || stopping;
                        let (pass, word) = self.verdicts.group(group);
                        answer(&mut out, pass, word, head_only, close);
                        if close {
                            break false;
                        }
                    }
                    Head::Partial => break buf.len() - used >= self.max_head,
                    Head::Other => break true,
                }
            };
            if used > 0 {
                buf.drain(..used);
                // The next head's time starts now, as hyper's does after each request.
                timeout.as_mut().reset(Instant::now() + self.header_timeout);
            }
            if !out.is_empty() {
                // A client that sends and never reads would hold the write here: closing
                // the connection to make room (or the listener stopping) ends it too.
                let written = tokio::select! {
                    biased;
                    r = stream.write_all(&out) => r.is_ok(),
                    () = &mut closed, if !stopping => false,
                };
                if !written {
                    return Ended::Closed;
                }
                out.clear();
            }
            if close {
                let _ = stream.shutdown().await;
                return Ended::Closed;
            }
            if other {
                return Ended::ToRouter(buf);
            }
            tokio::select! {
                biased;
                read = stream.read_buf(&mut buf) => match read {
                    Ok(n) if n > 0 => {}
                    _ => return Ended::Closed,
                },
                () = &mut timeout => return Ended::Closed,
                () = &mut closed, if !stopping => {
                    // Closed to make room, or stopping with no request begun: closed now.
                    if !self.stop.is_cancelled() || buf.is_empty() {
                        return Ended::Closed;
                    }
                    // Stopping in the middle of a head: it is answered, then closed.
                    stopping = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(group: Group, head_only: bool, close: bool, req: &[u8]) -> Head {
        Head::Plain {
            len: req.len(),
            group,
            head_only,
            close,
        }
    }

    #[test]
    fn only_plain_verdict_requests_are_answered_here() {
        let req = b"GET /readyz HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(head(req, 8192), plain(Group::Readiness, false, false, req));
        let req = b"HEAD /livez HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n";
        assert_eq!(head(req, 8192), plain(Group::Liveness, true, true, req));
        let req = b"GET /startupz HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n";
        assert_eq!(
            head(req, 8192),
            Head::Plain {
                len: 26,
                group: Group::Startup,
                head_only: false,
                close: false
            }
        );
        assert_eq!(
            head(b"GET /readyz HTTP/1.1\r\nHost: a\r\n", 8192),
            Head::Partial
        );
        assert_eq!(head(b"GET /rea", 8192), Head::Partial);
        for other in [
            &b"GET /readyz?verbose HTTP/1.1\r\n\r\n"[..],
            b"GET /readyz/db HTTP/1.1\r\n\r\n",
            b"GET /livez/ping HTTP/1.1\r\n\r\n",
            b"GET /health HTTP/1.1\r\n\r\n",
            b"POST /readyz HTTP/1.1\r\n\r\n",
            b"GET /readyz HTTP/1.0\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /readyz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nAccept: text/plain, Application/JSON\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert_eq!(
                head(other, 8192),
                Head::Other,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // Too many headers or too many header bytes: hyper's (and the limits') to refuse.
        let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
        let req = format!("GET /readyz HTTP/1.1\r\n{many}\r\n");
        assert_eq!(head(req.as_bytes(), 8192), Head::Other);
        let req = format!(
            "GET /readyz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "x".repeat(2000)
        );
        assert_eq!(head(req.as_bytes(), 1024), Head::Other);
    }

    #[test]
    fn the_answer_is_a_complete_http_response() {
        let mut out = Vec::new();
        answer(&mut out, false, "starting", false, true);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("HTTP/1.1 503 Service Unavailable"));
        let headers: Vec<(&str, &str)> = lines.map(|l| l.split_once(": ").unwrap()).collect();
        let get = |k: &str| headers.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("content-length"), Some("9"));
        assert_eq!(body, "starting\n");
        assert_eq!(get("connection"), Some("close"));
        assert_eq!(get("cache-control"), Some("no-store"));
        assert_eq!(get("content-type"), Some("text/plain; charset=utf-8"));
        let date = httpdate::parse_http_date(get("date").unwrap()).unwrap();
        let age = SystemTime::now().duration_since(date).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
        let mut out = Vec::new();
        answer(&mut out, true, "ok", true, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("content-length: 3\r\n") && text.ends_with("\r\n\r\n"));
        assert!(!text.contains("connection:"));
    }
}
