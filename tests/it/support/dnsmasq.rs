//! A real DNS server on loopback: Debian's `dnsmasq` ([`DnsServer`]), started by the test
//! on a free port with its own hosts file and command-line config — never the system's
//! (`--conf-file=/dev/null`, `--no-resolv`, `--no-hosts`), so nothing is forwarded anywhere
//! and no system service is involved. `scripts/test` installs `dnsmasq-base` (the binary
//! without the service). Dropping a server kills it (by its PID) and removes its directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{HOST, START_TIMEOUT, effective_uid, free_port, log_tail, open_log, wait_for_exit};

/// The zone the server answers for; names in it that are not in the hosts file get
/// NXDOMAIN (`--local`), and nothing is ever forwarded.
pub const ZONE: &str = "example.test";

/// A throwaway dnsmasq on 127.0.0.1, UDP and TCP on one port, answering from its hosts file
/// (`ADDRESS NAME` lines) plus the records given as dnsmasq options (`--mx-host=…`).
pub struct DnsServer {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DnsServer {
    pub fn start(hosts: &str, records: &[&str]) -> DnsServer {
        let dir = tempfile::Builder::new()
            .prefix("healthd-dnsmasq-")
            .tempdir()
            .expect("create dnsmasq dir");
        let hosts_file = dir.path().join("hosts");
        std::fs::write(&hosts_file, hosts).expect("write hosts file");
        let log = dir.path().join("dnsmasq.log");
        let port = free_port();
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        let bin = ["/usr/sbin/dnsmasq", "dnsmasq"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("dnsmasq");
        let mut cmd = Command::new(bin);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--pid-file=",
            "--log-facility=-",
            "--local-ttl=300",
        ])
        .arg(format!("--listen-address={HOST}"))
        .arg(format!("--port={port}"))
        .arg(format!("--local=/{ZONE}/"))
        .arg(format!("--addn-hosts={}", hosts_file.display()))
        .args(records);
        // As root, dnsmasq drops to `nobody`, who could not read the hosts file again on a
        // reload; stay the user we are.
        if effective_uid() == 0 {
            cmd.arg("--user=root");
        }
        let (out, err) = open_log(&log);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base) is installed by scripts/test");
        let mut server = DnsServer {
            port,
            child: Some(child),
            log,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    /// Ready when its TCP socket accepts (dnsmasq binds UDP and TCP before serving).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let addr = (HOST, self.port);
            if std::net::TcpStream::connect(addr).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "dnsmasq exited at start ({status}):\n{}",
                    log_tail(&self.log, 20)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "dnsmasq did not listen within {START_TIMEOUT:?}:\n{}",
                    log_tail(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, as a check's `server` key takes it.
    pub fn addr(&self) -> String {
        format!("{HOST}:{}", self.port)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_for_exit(&mut child, Duration::from_secs(5));
        }
    }
}
