//! `kind = "dns"`: one query of `query_name`/`query_type` at a name server, over UDP or
//! TCP, judged on the response code and, optionally, on the answers.
//!
//! The wire protocol is hickory's (`hickory-net`'s client streams and `hickory-proto`'s
//! messages); nothing here encodes or decodes DNS by hand. This file holds the settings
//! and their validation; [`probe`] sends the query and judges the answer.

mod probe;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RecordType};
use serde::Deserialize;

use super::matcher::validate_regex;
use super::{Kind, Run};
use crate::model::Outcome;
pub use probe::DnsProbe;

/// The record types a check may ask for.
pub const QUERY_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR"];

/// Settings of a DNS check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to ask for (`www.example.com`); for `PTR`, an IP address is turned into its
    /// reverse name (`10.0.0.1` → `1.0.0.10.in-addr.arpa.`).
    pub query_name: String,
    /// `A` (default), `AAAA`, `CNAME`, `MX`, `TXT`, `NS`, `SOA`, `SRV` or `PTR`.
    #[serde(default = "default_query_type")]
    pub query_type: String,
    /// The name server, `IP` or `IP:port` (`[::1]:53` for IPv6); default: the first
    /// `nameserver` of `/etc/resolv.conf`.
    pub server: Option<String>,
    /// `udp` (default) or `tcp`. A truncated UDP answer is asked again over TCP.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Ask the server to recurse (the RD flag). Default true.
    #[serde(default = "default_true")]
    pub recursion_desired: bool,
    /// Response codes that count as an answer (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …).
    #[serde(default = "default_rcodes")]
    pub valid_rcodes: Vec<String>,
    /// Addresses the answer must contain (every one of them; `A`/`AAAA` queries).
    #[serde(default)]
    pub expect_addresses: Vec<String>,
    /// A regular expression that at least one answer record (as text, e.g.
    /// `10 mail.example.com.` for MX) must match.
    pub answer_regex: Option<String>,
    /// The fewest answer records that count as an answer.
    pub min_answers: Option<u32>,
}

fn default_query_type() -> String {
    "A".into()
}

fn default_transport() -> String {
    "udp".into()
}

fn default_true() -> bool {
    true
}

fn default_rcodes() -> Vec<String> {
    vec!["NOERROR".into()]
}

/// A response code as written in configs and messages: `NOERROR`, `NXDOMAIN`, …
pub fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::Unknown(n) => format!("RCODE{n}"),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn rcode(n: u16) -> ResponseCode {
    <ResponseCode as From<u16>>::from(n)
}

/// The response codes a config may name (RFC 1035 and RFC 2136: 0 to 10).
fn rcode_names() -> Vec<String> {
    (0u16..=10).map(|n| rcode_name(rcode(n))).collect()
}

/// `IP` or `IP:port` (port 53 when left out).
fn parse_server(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = SocketAddr::from_str(text) {
        return Ok(addr);
    }
    let ip = text.trim_start_matches('[').trim_end_matches(']');
    IpAddr::from_str(ip)
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid server \"{text}\" (use an IP address, e.g. \"10.0.0.53\" or \"127.0.0.1:5353\")"))
}

/// The name to query: an IP address for `PTR` becomes its reverse name; otherwise the name
/// as written, made absolute (no search domains are applied).
fn query_name(text: &str, rtype: RecordType) -> Result<Name, String> {
    if rtype == RecordType::PTR
        && let Ok(ip) = IpAddr::from_str(text.trim())
    {
        return Ok(Name::from(ip));
    }
    let mut name =
        Name::from_utf8(text.trim()).map_err(|e| format!("invalid name \"{text}\": {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

impl DnsConfig {
    fn record_type(&self) -> Result<RecordType, String> {
        let upper = self.query_type.to_ascii_uppercase();
        if !QUERY_TYPES.contains(&upper.as_str()) {
            return Err(format!(
                "unknown query type \"{}\" (expected one of {})",
                self.query_type,
                QUERY_TYPES.join(", ")
            ));
        }
        RecordType::from_str(&upper).map_err(|e| e.to_string())
    }

    fn tcp(&self) -> bool {
        self.transport.eq_ignore_ascii_case("tcp")
    }
}

impl Kind for DnsConfig {
    type Probe = DnsProbe;

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        let rtype = match self.record_type() {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(("query_type".into(), e));
                None
            }
        };
        if self.query_name.trim().is_empty() {
            problems.push(("query_name".into(), "must not be empty".into()));
        } else if let Err(e) = query_name(&self.query_name, rtype.unwrap_or(RecordType::A)) {
            problems.push(("query_name".into(), e));
        }
        if let Some(server) = &self.server
            && let Err(e) = parse_server(server)
        {
            problems.push(("server".into(), e));
        }
        if !["udp", "tcp"].contains(&self.transport.to_ascii_lowercase().as_str()) {
            problems.push((
                "transport".into(),
                format!("must be \"udp\" or \"tcp\", not \"{}\"", self.transport),
            ));
        }
        let known = rcode_names();
        if self.valid_rcodes.is_empty() {
            problems.push(("valid_rcodes".into(), "must name at least one".into()));
        }
        for (i, rc) in self.valid_rcodes.iter().enumerate() {
            if !known.contains(&rc.to_ascii_uppercase()) {
                problems.push((
                    format!("valid_rcodes[{i}]"),
                    format!(
                        "unknown response code \"{rc}\" (expected one of {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        for (i, a) in self.expect_addresses.iter().enumerate() {
            if IpAddr::from_str(a.trim()).is_err() {
                problems.push((
                    format!("expect_addresses[{i}]"),
                    format!("invalid IP address \"{a}\""),
                ));
            }
        }
        if !self.expect_addresses.is_empty()
            && rtype.is_some_and(|t| !matches!(t, RecordType::A | RecordType::AAAA))
        {
            problems.push((
                "expect_addresses".into(),
                "only for query_type \"A\" or \"AAAA\"".into(),
            ));
        }
        validate_regex("answer_regex", &self.answer_regex, problems);
    }

    fn build(&self, timeout: Duration) -> Result<DnsProbe, String> {
        let rtype = self.record_type()?;
        let server = match &self.server {
            Some(s) => parse_server(s)?,
            None => system_server()?,
        };
        let mut valid_rcodes = Vec::new();
        for rc in &self.valid_rcodes {
            let upper = rc.to_ascii_uppercase();
            let code = (0u16..=10)
                .map(rcode)
                .find(|c| rcode_name(*c) == upper)
                .ok_or_else(|| format!("unknown response code \"{rc}\""))?;
            valid_rcodes.push(code);
        }
        let expect_addresses = self
            .expect_addresses
            .iter()
            .map(|a| IpAddr::from_str(a.trim()).map_err(|e| format!("expect_addresses: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let answer_regex = match &self.answer_regex {
            Some(r) => Some(regex::Regex::new(r).map_err(|e| format!("answer_regex: {e}"))?),
            None => None,
        };
        Ok(DnsProbe {
            name: query_name(&self.query_name, rtype)?,
            rtype,
            server,
            tcp: self.tcp(),
            recursion_desired: self.recursion_desired,
            valid_rcodes,
            expect_addresses,
            answer_regex,
            min_answers: self.min_answers,
            // Our own bound a little below the check's, so a silent server is reported with
            // what was asked and where, rather than as the scheduler's bare cut-off.
            wait: timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250))),
            udp: None,
            provider: Default::default(),
        })
    }
}

/// The first name server of `/etc/resolv.conf`.
fn system_server() -> Result<SocketAddr, String> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| format!("cannot read the system resolvers (/etc/resolv.conf): {e}"))?;
    let ns = config
        .name_servers
        .first()
        .ok_or("no nameserver in /etc/resolv.conf; set server")?;
    let port = ns.connections.first().map(|c| c.port).unwrap_or(53);
    Ok(SocketAddr::new(ns.ip, port))
}

impl Run for DnsProbe {
    async fn run(&mut self) -> Outcome {
        self.query().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcode_names_are_the_mnemonics() {
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Unknown(3999)), "RCODE3999");
        assert_eq!(rcode_names().len(), 11);
    }

    #[test]
    fn servers_and_reverse_names() {
        assert_eq!(
            parse_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_server("dns.example").is_err());
        let n = query_name("10.0.0.1", RecordType::PTR).unwrap();
        assert_eq!(n.to_string(), "1.0.0.10.in-addr.arpa.");
        let n = query_name("www.example.test", RecordType::A).unwrap();
        assert_eq!(n.to_string(), "www.example.test.");
    }
}
