//! Network interfaces' counters from `/proc/net/dev` and TCP connections by state from
//! `/proc/net/tcp` and `/proc/net/tcp6` (procfs). Both are the network namespace's healthd
//! runs in: inside a container, the container's interfaces.

use std::time::Instant;

use procfs::net::TcpState;

use crate::model::host::{Interface, NetworkReading};

use super::NameFilter;

/// The `network.connection.state` value of a kernel TCP state.
pub fn state_name(s: &TcpState) -> &'static str {
    match s {
        TcpState::Established => "established",
        TcpState::SynSent => "syn_sent",
        TcpState::SynRecv | TcpState::NewSynRecv => "syn_received",
        TcpState::FinWait1 => "fin_wait_1",
        TcpState::FinWait2 => "fin_wait_2",
        TcpState::TimeWait => "time_wait",
        TcpState::Close => "closed",
        TcpState::CloseWait => "close_wait",
        TcpState::LastAck => "last_ack",
        TcpState::Listen => "listen",
        TcpState::Closing => "closing",
    }
}

/// Every state, so a state with no socket shows as 0 rather than disappearing.
const STATES: [&str; 11] = [
    "established",
    "syn_sent",
    "syn_received",
    "fin_wait_1",
    "fin_wait_2",
    "time_wait",
    "closed",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

fn tcp_states() -> Option<Vec<(&'static str, u64)>> {
    let mut counts: Vec<(&'static str, u64)> = STATES.iter().map(|s| (*s, 0)).collect();
    let v4 = procfs::net::tcp().ok()?;
    let v6 = procfs::net::tcp6().unwrap_or_default();
    for e in v4.iter().chain(v6.iter()) {
        let name = state_name(&e.state);
        if let Some(c) = counts.iter_mut().find(|(s, _)| *s == name) {
            c.1 += 1;
        }
    }
    Some(counts)
}

pub fn read(filter: &NameFilter, connections: bool) -> Option<NetworkReading> {
    let dev = procfs::net::dev_status().ok()?;
    let mut interfaces: Vec<Interface> = dev
        .into_values()
        .filter(|d| filter.admits(&d.name))
        .map(|d| Interface {
            rx_bytes: d.recv_bytes,
            tx_bytes: d.sent_bytes,
            rx_packets: d.recv_packets,
            tx_packets: d.sent_packets,
            rx_errors: d.recv_errs,
            tx_errors: d.sent_errs,
            rx_dropped: d.recv_drop,
            tx_dropped: d.sent_drop,
            name: d.name,
        })
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    Some(NetworkReading {
        at: Instant::now(),
        interfaces,
        tcp_states: if connections { tcp_states() } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_a_listening_socket_are_seen() {
        let _l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let all = NameFilter {
            include: None,
            exclude: None,
        };
        let r = read(&all, true).expect("/proc/net/dev");
        assert!(r.interfaces.iter().any(|i| i.name == "lo"), "{r:?}");
        let states = r.tcp_states.expect("tcp states");
        assert_eq!(states.len(), STATES.len());
        assert!(states.iter().any(|(s, n)| *s == "listen" && *n >= 1));
    }
}
