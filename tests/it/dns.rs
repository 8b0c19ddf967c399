//! `kind = "dns"` against a real dnsmasq started by the test on a free loopback port with
//! its own hosts file: an existing name over UDP and over TCP, NXDOMAIN (refused by default,
//! accepted when listed in `valid_rcodes`), an address mismatch, MX answers with
//! `answer_regex` and `min_answers`, a server that never answers (timeout) and a TCP port
//! that refuses (connect). Probes run through `scheduler::run_once`, as the scheduler runs
//! them, and once through the daemon.

use std::time::{Duration, Instant};

use healthd::config::CheckConfig;
use healthd::model::{Level, Outcome, Reason};
use healthd::scheduler::run_once;

use crate::support::config::one_check;
use crate::support::daemon::{TestDaemon, status_is};
use crate::support::dnsmasq::DnsServer;
use crate::support::peers::RefusingPort;
use crate::support::toml_str;

const HOSTS: &str = "10.1.2.3 www.example.test\n10.1.2.4 www.example.test\n\
                     fd00::7 v6.example.test\n";

fn server() -> DnsServer {
    DnsServer::start(
        HOSTS,
        &[
            "--mx-host=example.test,mx1.example.test,10",
            "--mx-host=example.test,mx2.example.test,20",
            "--txt-record=example.test,\"v=spf1 -all\"",
        ],
    )
}

fn dns_check(server: &str, keys: &str, timeout: &str) -> CheckConfig {
    one_check(&format!(
        "[[checks]]\nname = \"d\"\nkind = \"dns\"\nserver = {}\ninterval = \"10s\"\n\
         timeout = \"{timeout}\"\n{keys}\n",
        toml_str(server)
    ))
}

async fn probe(server: &str, keys: &str) -> Outcome {
    run_once(&mut None, &dns_check(server, keys, "2s")).await
}

fn detail<'a>(o: &'a Outcome, key: &str) -> &'a serde_json::Value {
    o.details
        .get(key)
        .unwrap_or_else(|| panic!("no details.{key} in {o:?}"))
}

#[tokio::test]
async fn an_existing_name_over_udp_is_healthy_with_its_answers() {
    let dns = server();
    let o = probe(
        &dns.addr(),
        "query_name = \"www.example.test\"\nexpect_addresses = [\"10.1.2.4\"]",
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(detail(&o, "rcode"), "NOERROR");
    assert_eq!(detail(&o, "transport"), "udp");
    assert_eq!(detail(&o, "ttl_min"), 300);
    let answers = detail(&o, "answers").to_string();
    assert!(
        answers.contains("A 10.1.2.3") && answers.contains("A 10.1.2.4"),
        "{answers}"
    );
    assert!(o.message.contains("2 answer(s)"), "{}", o.message);
}

#[tokio::test]
async fn an_existing_name_over_tcp_is_healthy() {
    let dns = server();
    let o = probe(
        &dns.addr(),
        "query_name = \"v6.example.test\"\nquery_type = \"AAAA\"\ntransport = \"tcp\"\n\
         expect_addresses = [\"fd00::7\"]",
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(detail(&o, "transport"), "tcp");
    assert!(detail(&o, "answers").to_string().contains("AAAA fd00::7"));
}

#[tokio::test]
async fn nxdomain_fails_unless_it_is_a_valid_rcode() {
    let dns = server();
    let o = probe(&dns.addr(), "query_name = \"nope.example.test\"").await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:?}");
    assert_eq!(detail(&o, "rcode"), "NXDOMAIN");
    assert!(
        o.message
            .contains("response code NXDOMAIN (expected NOERROR)"),
        "{}",
        o.message
    );
    // A check that a name is gone: NXDOMAIN is the expected answer.
    let o = probe(
        &dns.addr(),
        "query_name = \"nope.example.test\"\nvalid_rcodes = [\"NXDOMAIN\"]",
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
}

#[tokio::test]
async fn an_address_mismatch_names_what_is_missing() {
    let dns = server();
    let o = probe(
        &dns.addr(),
        "query_name = \"www.example.test\"\nexpect_addresses = [\"10.1.2.3\", \"10.9.9.9\"]",
    )
    .await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:?}");
    assert!(
        o.message.contains("answer lacks 10.9.9.9") && o.message.contains("10.1.2.4"),
        "{}",
        o.message
    );
}

#[tokio::test]
async fn mx_answers_are_judged_by_regex_and_count() {
    let dns = server();
    let mx = "query_name = \"example.test\"\nquery_type = \"MX\"\n";
    let o = probe(
        &dns.addr(),
        &format!("{mx}answer_regex = '^20 mx2\\.'\nmin_answers = 2"),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let o = probe(&dns.addr(), &format!("{mx}min_answers = 3")).await;
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:?}");
    assert!(o.message.contains("expected at least 3"), "{}", o.message);
    let o = probe(&dns.addr(), &format!("{mx}answer_regex = 'mx9'")).await;
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:?}");
    assert!(o.message.contains("no answer matches"), "{}", o.message);
    let o = probe(
        &dns.addr(),
        "query_name = \"example.test\"\nquery_type = \"TXT\"\nanswer_regex = 'spf1'",
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_timeout() {
    // A bound UDP socket that reads nothing: the query goes out and no answer comes back.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = silent.local_addr().expect("addr").to_string();
    let check = dns_check(&addr, "query_name = \"www.example.test\"", "600ms");
    let started = Instant::now();
    let o = run_once(&mut None, &check).await;
    let took = started.elapsed();
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
    assert!(o.message.contains(&addr), "{}", o.message);
    assert!(
        took >= Duration::from_millis(400),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "not bounded: {took:?}");
}

#[tokio::test]
async fn a_refusing_tcp_port_is_connect() {
    let refusing = RefusingPort::new();
    let o = probe(
        &format!("127.0.0.1:{}", refusing.port),
        "query_name = \"www.example.test\"\ntransport = \"tcp\"",
    )
    .await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");
}

#[tokio::test]
async fn the_daemon_reports_a_dns_check() {
    let dns = server();
    let d = TestDaemon::start(&format!(
        "[[checks]]\nname = \"resolver\"\nkind = \"dns\"\nserver = {}\n\
         query_name = \"www.example.test\"\ninterval = \"300ms\"\ntimeout = \"200ms\"\n",
        toml_str(&dns.addr())
    ))
    .await;
    let c = d
        .wait_check(
            "resolver",
            "healthy",
            Duration::from_secs(10),
            status_is("healthy", None),
        )
        .await;
    assert_eq!(c["kind"], "dns");
    assert_eq!(c["details"]["rcode"], "NOERROR");
}
