//! Sending one DNS query and judging the response.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::xfer::{DnsExchange, DnsHandle, FirstAnswer};
use hickory_resolver::proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use regex::Regex;

use super::rcode_name;
use crate::model::{Outcome, Reason, classify};

/// Answers listed in `details.answers`.
const SHOWN_ANSWERS: usize = 5;

pub struct DnsProbe {
    pub(super) name: Name,
    pub(super) rtype: RecordType,
    pub(super) server: SocketAddr,
    pub(super) tcp: bool,
    pub(super) recursion_desired: bool,
    pub(super) valid_rcodes: Vec<ResponseCode>,
    pub(super) expect_addresses: Vec<IpAddr>,
    pub(super) answer_regex: Option<Regex>,
    pub(super) min_answers: Option<u32>,
    /// How long to wait for the answer (a little below the check's timeout).
    pub(super) wait: Duration,
    /// The UDP exchange, kept between runs (each query still uses a fresh socket and ID).
    pub(super) udp: Option<DnsExchange<TokioRuntimeProvider>>,
    /// Owns the exchanges' background tasks: hickory aborts them when the last clone of
    /// the provider is dropped, so the probe keeps one.
    pub(super) provider: TokioRuntimeProvider,
}

impl DnsProbe {
    fn transport(&self, tcp: bool) -> &'static str {
        if tcp { "tcp" } else { "udp" }
    }

    fn request(&self) -> DnsRequest {
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = self.recursion_desired;
        options.use_edns = true;
        DnsRequest::from_query(Query::query(self.name.clone(), self.rtype), options)
    }

    /// Ask once over the configured transport (UDP answers with the TC flag again over
    /// TCP), then judge the response.
    pub(super) async fn query(&mut self) -> Outcome {
        let mut tcp = self.tcp;
        let mut response = self.exchange(tcp).await;
        if let Ok(r) = &response
            && !tcp
            && r.metadata.truncation
        {
            tcp = true;
            response = self.exchange(true).await;
        }
        let what = format!("{} {}", self.name, self.rtype);
        match response {
            Ok(r) => self.judge(&r, tcp, &what),
            Err(e) => {
                if !tcp {
                    // A broken exchange is rebuilt on the next run.
                    self.udp = None;
                }
                let (reason, text) = match &e {
                    NetError::Timeout => (
                        Reason::Timeout,
                        format!(
                            "no answer within {}",
                            humantime::format_duration(self.wait)
                        ),
                    ),
                    other => (
                        classify(other).unwrap_or(Reason::Protocol),
                        other.to_string(),
                    ),
                };
                Outcome::failed(
                    reason,
                    format!(
                        "{what} at {} ({}): {text}",
                        self.server,
                        self.transport(tcp)
                    ),
                )
                .with_detail("server", self.server.to_string())
            }
        }
    }

    async fn exchange(&mut self, tcp: bool) -> Result<DnsResponse, NetError> {
        let provider = self.provider.clone();
        let request = self.request();
        // The exchange must outlive the answer: dropping it stops its background task.
        let tcp_exchange;
        let exchange = if tcp {
            let connect =
                TcpClientStream::exchange(self.server, None, self.wait, Some(1), provider);
            tcp_exchange = match tokio::time::timeout(self.wait, connect).await {
                Ok(Ok(exchange)) => exchange,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(NetError::Timeout),
            };
            &tcp_exchange
        } else {
            let (wait, server) = (self.wait, self.server);
            self.udp.get_or_insert_with(|| {
                UdpClientStream::builder(server, provider)
                    .with_timeout(Some(wait))
                    .exchange()
            })
        };
        match tokio::time::timeout(self.wait, exchange.send(request).first_answer()).await {
            Ok(r) => r,
            Err(_) => Err(NetError::Timeout),
        }
    }

    fn judge(&self, r: &DnsResponse, tcp: bool, what: &str) -> Outcome {
        let rcode = r.metadata.response_code;
        let answers: Vec<String> = r
            .answers
            .iter()
            .map(|a| format!("{} {}", a.record_type(), a.data))
            .collect();
        let ttl_min = r.answers.iter().map(|a| a.ttl).min();
        let at = format!("{} ({})", self.server, self.transport(tcp));
        let done = |o: Outcome| {
            let o = o
                .with_detail("rcode", rcode_name(rcode))
                .with_detail("server", self.server.to_string())
                .with_detail("transport", self.transport(tcp))
                .with_detail(
                    "answers",
                    answers.iter().take(SHOWN_ANSWERS).cloned().collect::<Vec<_>>(),
                )
                .with_detail("answer_count", answers.len());
            match ttl_min {
                Some(t) => o.with_detail("ttl_min", t),
                None => o,
            }
        };
        if !self.valid_rcodes.contains(&rcode) {
            let valid: Vec<String> = self.valid_rcodes.iter().map(|c| rcode_name(*c)).collect();
            return done(Outcome::failed(
                Reason::Protocol,
                format!(
                    "{what} at {at}: response code {} (expected {})",
                    rcode_name(rcode),
                    valid.join(" or ")
                ),
            ));
        }
        if let Some(min) = self.min_answers
            && (answers.len() as u64) < u64::from(min)
        {
            return done(Outcome::failed(
                Reason::Protocol,
                format!(
                    "{what} at {at}: {} answer(s), expected at least {min}",
                    answers.len()
                ),
            ));
        }
        let addresses: Vec<IpAddr> = r.answers.iter().filter_map(|a| a.data.ip_addr()).collect();
        let missing: Vec<String> = self
            .expect_addresses
            .iter()
            .filter(|a| !addresses.contains(a))
            .map(IpAddr::to_string)
            .collect();
        if !missing.is_empty() {
            let got: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
            return done(Outcome::failed(
                Reason::Protocol,
                format!(
                    "{what} at {at}: answer lacks {} (got {})",
                    missing.join(", "),
                    if got.is_empty() {
                        "no address".to_string()
                    } else {
                        got.join(", ")
                    }
                ),
            ));
        }
        if let Some(re) = &self.answer_regex
            && !r.answers.iter().any(|a| re.is_match(&a.data.to_string()))
        {
            return done(Outcome::failed(
                Reason::Protocol,
                format!(
                    "{what} at {at}: no answer matches /{}/ ({} answer(s))",
                    re.as_str(),
                    answers.len()
                ),
            ));
        }
        done(Outcome::ok(format!(
            "{what} at {at}: {}, {} answer(s)",
            rcode_name(rcode),
            answers.len()
        )))
    }
}
