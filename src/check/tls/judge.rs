//! The verdict on a presented chain: dates first (expired, not yet valid), then whether it
//! verifies for the name, then how close the earliest `not_after` is.

use std::time::Duration;

use rustls::CertificateError;
use serde_json::json;

use super::cert::{CertInfo, days, now, rfc3339};
use crate::check::tls_client::Presented;
use crate::model::{CertSample, Outcome, Reason, Sample};

/// What one handshake gave, and how to judge it.
pub struct Handshake {
    pub server_name: String,
    pub presented: Presented,
    /// Negotiated version (`TLSv1.3`), when the handshake completed.
    pub version: Option<String>,
    /// Why the handshake failed after the chain was read.
    pub error: Option<String>,
    pub insecure_skip_verify: bool,
    pub degraded_within: Duration,
    pub unhealthy_within: Duration,
}

pub fn judge(h: Handshake) -> Outcome {
    judge_at(h, now())
}

fn judge_at(h: Handshake, now: i64) -> Outcome {
    let certs = match h
        .presented
        .chain
        .iter()
        .map(CertInfo::parse)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return Outcome::failed(Reason::Tls, "no certificate presented"),
        Err(e) => {
            return Outcome::failed(Reason::Tls, format!("cannot read the certificate: {e}"));
        }
    };
    let leaf = &certs[0];
    let earliest = certs
        .iter()
        .min_by_key(|c| c.not_after)
        .unwrap_or(leaf);
    let name = &h.server_name;
    // Which certificate a message is about: the server's own, or one further up the chain.
    let which = |c: &CertInfo| {
        if std::ptr::eq(c, leaf) {
            format!("certificate for {name}")
        } else {
            format!("chain certificate {}", c.subject)
        }
    };
    let left = earliest.not_after - now;
    let verify_error = h.presented.verdict.as_ref().err().map(|e| describe(e, &certs));
    let with_details = |o: Outcome| {
        let mut o = o
            .with_detail("server_name", name.as_str())
            .with_detail("subject", leaf.subject.as_str())
            .with_detail("issuer", leaf.issuer.as_str())
            .with_detail("sans", json!(leaf.sans))
            .with_detail("serial", leaf.serial.as_str())
            .with_detail("sha256", leaf.sha256.as_str())
            .with_detail("not_before", rfc3339(leaf.not_before))
            .with_detail("not_after", rfc3339(earliest.not_after))
            .with_detail("days_left", (left as f64 / 864.0).round() / 100.0)
            .with_detail("chain_length", certs.len())
            .with_detail("verified", verify_error.is_none());
        if !std::ptr::eq(earliest, leaf) {
            o = o.with_detail("earliest_expiring", earliest.subject.as_str());
        }
        if let Some(v) = &h.version {
            o = o.with_detail("tls_version", v.as_str());
        }
        if let Some(e) = &verify_error {
            o = o.with_detail("verify_error", e.as_str());
        }
        o.sample = Some(Sample::Tls(CertSample {
            not_after: earliest.not_after,
        }));
        o
    };

    if let Some(c) = certs.iter().find(|c| c.not_after < now) {
        return with_details(Outcome::failed(
            Reason::Tls,
            format!(
                "{} expired {} ago ({})",
                which(c),
                days(now - c.not_after),
                rfc3339(c.not_after)
            ),
        ));
    }
    if let Some(c) = certs.iter().find(|c| c.not_before > now) {
        return with_details(Outcome::failed(
            Reason::Tls,
            format!(
                "{} is not valid yet (not before {})",
                which(c),
                rfc3339(c.not_before)
            ),
        ));
    }
    if let Some(e) = verify_error.as_ref().filter(|_| !h.insecure_skip_verify) {
        return with_details(Outcome::failed(
            Reason::Tls,
            format!("certificate for {name} does not verify: {e}"),
        ));
    }
    if let Some(e) = &h.error {
        return with_details(Outcome::failed(
            Reason::Tls,
            format!("TLS handshake with {name} failed after the certificate was read: {e}"),
        ));
    }
    let expires = format!(
        "{} expires in {} ({})",
        which(earliest),
        days(left),
        rfc3339(earliest.not_after)
    );
    let within = |d: Duration| left <= i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let failed: fn(String) -> Outcome = |m| Outcome::failed(Reason::Threshold, m);
    let degraded: fn(String) -> Outcome = |m| Outcome::degraded(Reason::Threshold, m);
    for (key, limit, outcome) in [
        ("unhealthy_within", h.unhealthy_within, failed),
        ("degraded_within", h.degraded_within, degraded),
    ] {
        if within(limit) {
            return with_details(outcome(format!(
                "{expires}, within {key} ({})",
                humantime::format_duration(limit)
            )));
        }
    }
    let trust = if verify_error.is_some() {
        "not verified (insecure_skip_verify)"
    } else {
        "verified"
    };
    with_details(Outcome::ok(format!("{expires}; {trust}")))
}

/// Why a chain does not verify, in words: untrusted issuer (self-signed or not), the wrong
/// name (with the names it has), or rustls' own words.
fn describe(e: &rustls::Error, certs: &[CertInfo]) -> String {
    let leaf = &certs[0];
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            if certs.len() == 1 && leaf.self_issued() {
                "self-signed, and not a trusted root".into()
            } else {
                let top = certs.last().unwrap_or(leaf);
                format!("issuer not trusted ({})", top.issuer)
            }
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            if leaf.sans.is_empty() {
                "not valid for this name (the certificate names none)".into()
            } else {
                format!(
                    "not valid for this name (valid for {})",
                    leaf.sans.join(", ")
                )
            }
        }
        rustls::Error::InvalidCertificate(c) => format!("{c:?}"),
        other => other.to_string(),
    }
}
