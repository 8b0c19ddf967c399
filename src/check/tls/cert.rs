//! What a certificate says, for people: names, serial, fingerprint and validity dates,
//! read with `x509-cert` from the DER the server presented.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// One certificate of a presented chain.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// RFC 4514, e.g. `CN=example.com,O=Example`.
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses; other kinds prefixed (`email:`, `URI:`).
    pub sans: Vec<String>,
    /// Lowercase hex, no separators, leading zero bytes dropped.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex (as `openssl x509 -fingerprint -sha256` without the
    /// colons).
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

impl CertInfo {
    pub fn parse(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
        let cert = Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
        let tbs = &cert.tbs_certificate;
        let sans = match tbs.get::<SubjectAltName>() {
            Ok(Some((_, san))) => san.0.iter().filter_map(general_name).collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(format!("bad subjectAltName: {e}")),
        };
        let serial = tbs.serial_number.as_bytes();
        let first = serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(serial.len().saturating_sub(1));
        Ok(CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            sans,
            serial: hex(&serial[first..]),
            sha256: hex(ring::digest::digest(&ring::digest::SHA256, der.as_ref()).as_ref()),
            not_before: unix(tbs.validity.not_before.to_unix_duration()),
            not_after: unix(tbs.validity.not_after.to_unix_duration()),
        })
    }

    /// Issued by itself (subject and issuer alike).
    pub fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

fn general_name(name: &GeneralName) -> Option<String> {
    Some(match name {
        GeneralName::DnsName(n) => n.to_string(),
        GeneralName::IpAddress(octets) => match octets.as_bytes().len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(octets.as_bytes()).ok()?).to_string(),
            16 => IpAddr::from(<[u8; 16]>::try_from(octets.as_bytes()).ok()?).to_string(),
            _ => return None,
        },
        GeneralName::Rfc822Name(n) => format!("email:{n}"),
        GeneralName::UniformResourceIdentifier(n) => format!("URI:{n}"),
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix(since_epoch: Duration) -> i64 {
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(unix)
        .unwrap_or(0)
}

/// A Unix time as RFC 3339, to the second (`2026-12-01T10:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A span of seconds as days for messages: `14.9 days`, `1 day`.
pub fn days(secs: i64) -> String {
    let d = secs.unsigned_abs() as f64 / 86_400.0;
    if (d - 1.0).abs() < 0.05 {
        "1 day".into()
    } else {
        format!("{d:.1} days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_read_well() {
        assert_eq!(days(86_400 * 15 - 3600), "15.0 days");
        assert_eq!(days(-86_400), "1 day");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}
