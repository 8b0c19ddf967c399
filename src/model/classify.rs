//! The one place where an error from the network becomes a [`Reason`]: every kind (and the
//! OTLP exporter's self-check) asks here first and adds only what its own protocol knows
//! (an SQLSTATE, a Redis `WRONGPASS`, an HTTP status).
//!
//! The error's whole source chain is read: typed causes first (`std::io::ErrorKind`, a
//! `rustls::Error`, also when tokio-rustls wraps it in an `io::Error`), then the words of the
//! chain, because client crates often flatten their causes into text.

use std::error::Error;
use std::io::ErrorKind;

use super::outcome::Reason;
use super::text::mentions_any;

/// The reason for a failed connection or exchange, or `None` when nothing in the error says
/// network, name resolution, TLS or timeout (the caller then knows best, usually `protocol`).
pub fn classify(e: &(dyn Error + 'static)) -> Option<Reason> {
    let mut text = String::new();
    let mut tls = false;
    let mut kind = None;
    let mut source: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(s) = source {
        text.push_str(&s.to_string().to_lowercase());
        text.push(' ');
        tls |= is_rustls_error(s);
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(EMFILE | ENFILE)) {
                return Some(Reason::Internal);
            }
            kind = kind.or(Some(io.kind()));
        }
        source = s.source();
    }
    // A handshake that fails on the wire ("received corrupt message", e.g. https to a
    // plain-HTTP port) carries no telling words, but its cause is a rustls error.
    if tls {
        return Some(Reason::Tls);
    }
    classify_text(&text).or(match kind {
        Some(ErrorKind::TimedOut) => Some(Reason::Timeout),
        Some(
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::AddrNotAvailable,
        ) => Some(Reason::Connect),
        _ => None,
    })
}

/// The same judgement from an error's text alone (for errors that arrive as text, such as
/// the OTLP exporter's). Name resolution first, then TLS, timeouts and connections.
pub fn classify_text(text: &str) -> Option<Reason> {
    let t = text.to_lowercase();
    let has = |words: &[&str]| mentions_any(&t, words);
    if out_of_descriptors(&t) {
        Some(Reason::Internal)
    } else if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "temporary failure in name resolution",
        "nodename nor servname",
    ]) {
        Some(Reason::Dns)
    } else if has(&["certificate", "tls", "handshake"]) {
        Some(Reason::Tls)
    } else if has(&["timed out", "timeout", "deadline"]) {
        Some(Reason::Timeout)
    } else if has(&[
        "connection refused",
        "connection reset",
        "connection closed",
        "connection aborted",
        "error connecting",
        "error communicating",
        "broken pipe",
        "network is unreachable",
        "no route to host",
    ]) {
        Some(Reason::Connect)
    } else {
        None
    }
}

/// `EMFILE` and `ENFILE` (Linux): the process or the system is out of file descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The text of a run that failed because healthd (or the host) ran out of file
/// descriptors: healthd's own failure, which says nothing about the dependency.
pub fn out_of_descriptors(text: &str) -> bool {
    let t = text.to_lowercase();
    mentions_any(
        &t,
        &[
            "too many open files",
            "file table overflow",
            "os error 24)",
            "os error 23)",
        ],
    )
}

/// A rustls error, directly or inside the `io::Error` that tokio-rustls wraps it in
/// (`io::Error::source` skips the wrapped error itself, so look inside).
fn is_rustls_error(e: &(dyn Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_rustls_error(inner),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: ErrorKind, text: &str) -> std::io::Error {
        std::io::Error::new(kind, text.to_string())
    }

    #[test]
    fn io_kinds() {
        assert_eq!(
            classify(&io(ErrorKind::TimedOut, "x")),
            Some(Reason::Timeout)
        );
        assert_eq!(
            classify(&io(ErrorKind::ConnectionRefused, "x")),
            Some(Reason::Connect)
        );
        assert_eq!(
            classify(&io(ErrorKind::UnexpectedEof, "x")),
            Some(Reason::Connect)
        );
        assert_eq!(classify(&io(ErrorKind::InvalidData, "x")), None);
    }

    #[test]
    fn words_of_the_chain() {
        let e = io(ErrorKind::Other, "failed to lookup address information");
        assert_eq!(classify(&e), Some(Reason::Dns));
        let e = io(ErrorKind::Other, "invalid peer certificate: UnknownIssuer");
        assert_eq!(classify(&e), Some(Reason::Tls));
        let e = io(
            ErrorKind::Other,
            "error connecting to server: Connection refused",
        );
        assert_eq!(classify(&e), Some(Reason::Connect));
        assert_eq!(classify_text("operation timed out"), Some(Reason::Timeout));
        assert_eq!(classify_text("unexpected message"), None);
    }

    #[test]
    fn running_out_of_descriptors_is_healthds_own_failure() {
        let e = std::io::Error::from_raw_os_error(24);
        assert_eq!(classify(&e), Some(Reason::Internal));
        let wrapped = io(ErrorKind::Other, &format!("error connecting: {e}"));
        assert_eq!(classify(&wrapped), Some(Reason::Internal));
        assert!(out_of_descriptors(&wrapped.to_string()));
        assert!(!out_of_descriptors("connection refused (os error 111)"));
    }

    #[test]
    fn a_wrapped_rustls_error_is_tls() {
        let inner = rustls::Error::General("corrupt".into());
        let e = std::io::Error::new(ErrorKind::InvalidData, inner);
        assert_eq!(classify(&e), Some(Reason::Tls));
    }
}
