//! Rules on each probe of a manifest that reaches healthd, judged against the config the
//! healthd container of that pod runs: ports, listen addresses and schemes, what the probe
//! asks (the rules of [`endpoint`]); [`timing`]: startup budgets, and `healthd check` as an
//! exec probe.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use super::config_rules;
use super::endpoint::{self, Endpoint};
use super::manifest::{Action, Container, Manifest, Port, Probe, Role, Workload};
use super::{Finding, Options, Severity, source};
use crate::config::Config;
use crate::model::Group;

mod timing;

/// Lint a manifest and the config(s) its healthd containers run; returns what was read.
pub fn check_manifest(options: &Options, path: &Path, out: &mut Vec<Finding>) -> String {
    let manifest = match Manifest::read(path) {
        Ok(m) => m,
        Err(e) => {
            out.push(Finding::new(
                Severity::Error,
                "manifest",
                path.display().to_string(),
                "",
                e,
                "make it valid YAML (`kubectl apply --dry-run=client -f FILE` reads it too)",
            ));
            return path.display().to_string();
        }
    };
    let workloads = manifest.workloads();
    if workloads.is_empty() {
        out.push(Finding::new(
            Severity::Warning,
            "no-workload",
            &manifest.file,
            "",
            "no Pod, Deployment, StatefulSet or DaemonSet in it",
            "give the manifest that runs healthd, or leave out --pod to lint the config alone",
        ));
    }
    let mut reached = 0;
    let mut read = Vec::new();
    for w in &workloads {
        let healthd: Vec<&Container> = w.containers.iter().filter(|c| c.is_healthd()).collect();
        if healthd.is_empty() {
            out.push(Finding::new(
                Severity::Warning,
                "no-healthd-container",
                manifest.place(w.line),
                &w.id,
                "no container runs healthd (an image named healthd, or the command healthd)",
                "add healthd as a sidecar (see examples/kubernetes/pod.yaml), or lint the manifest that runs it",
            ));
        }
        for h in healthd {
            let view = source::for_container(options, &manifest, h);
            read.push(view.describe());
            match &view.config {
                Ok(config) => {
                    config_rules::check(config, &view.names, out);
                    let pod = Pod {
                        manifest: &manifest,
                        workload: w,
                        healthd: h,
                        config,
                    };
                    reached += pod.check(out);
                }
                Err(findings) => out.extend(findings.iter().cloned()),
            }
        }
    }
    read.sort();
    read.dedup();
    let mut summary = format!(
        "{}: {} workload(s), {} probe(s) on healthd",
        manifest.file,
        workloads.len(),
        reached
    );
    if !read.is_empty() {
        summary.push_str(&format!("; config {}", read.join(", ")));
    }
    summary
}

/// Whether a probe reaches healthd, and what it asks if it may be judged further.
enum Reach {
    No,
    /// It is meant for healthd but cannot work (already reported).
    Broken,
    Asks(Endpoint, String),
}

struct Pod<'a> {
    manifest: &'a Manifest,
    workload: &'a Workload<'a>,
    healthd: &'a Container<'a>,
    config: &'a Config,
}

impl Pod<'_> {
    /// Judge every probe of the pod; returns how many reach healthd.
    fn check(&self, out: &mut Vec<Finding>) -> usize {
        let mut reached = 0;
        let mut startup_probe = false;
        let mut said = HashSet::new();
        for c in &self.workload.containers {
            for p in &c.probes {
                let (endpoint, asked) = match self.reach(c, p, &mut said, out) {
                    Reach::No => continue,
                    Reach::Broken => {
                        reached += 1;
                        continue;
                    }
                    Reach::Asks(e, asked) => (e, asked),
                };
                reached += 1;
                let grpc = matches!(p.action, Action::Grpc { .. });
                if let Some((rule, problem, fix)) =
                    endpoint::judge(&endpoint, p.role, &asked, grpc, self.config)
                {
                    out.push(self.finding(Severity::Error, rule, p, what_key(p), problem, fix));
                }
                if endpoint == Endpoint::CheckCommand {
                    self.exec_rules(p, out);
                }
                let asks_startup = matches!(
                    endpoint,
                    Endpoint::Group(Group::Startup) | Endpoint::Check(Group::Startup, _)
                );
                if p.role == Role::Startup && asks_startup {
                    startup_probe = true;
                    self.startup_budget(p, out);
                }
            }
        }
        let h = self.healthd;
        if reached == 0 {
            out.push(Finding::new(
                Severity::Warning,
                "no-probe-on-healthd",
                self.manifest.place(h.line),
                &h.key,
                "no probe of the pod asks healthd: kubelet never learns its verdicts",
                "add readinessProbe (/readyz), livenessProbe (/livez) and startupProbe (/startupz) on healthd's port",
            ));
        } else if !startup_probe {
            let startup: Vec<&str> = self
                .config
                .checks
                .iter()
                .filter(|c| c.groups.contains(&Group::Startup))
                .map(|c| c.name.as_str())
                .collect();
            if !startup.is_empty() {
                out.push(Finding::new(
                    Severity::Warning,
                    "startup-probe-missing",
                    self.manifest.place(h.line),
                    &h.key,
                    format!(
                        "startup checks ({}) but no startupProbe asks /startupz: kubelet runs the liveness probe from the first second and knows nothing of a slow start",
                        startup.join(", ")
                    ),
                    "add a startupProbe on /startupz whose periodSeconds × failureThreshold covers the longest start",
                ));
            }
        }
        reached
    }

    fn finding(
        &self,
        severity: Severity,
        rule: &'static str,
        p: &Probe,
        key: String,
        problem: String,
        fix: String,
    ) -> Finding {
        // The line of the deepest node of `key` that is written (a left-out
        // failureThreshold points at its probe).
        let mut at = p.at.clone();
        for part in key
            .strip_prefix(&p.at.path)
            .unwrap_or("")
            .split('.')
            .filter(|s| !s.is_empty())
        {
            match at.get(part) {
                Some(next) => at = next,
                None => break,
            }
        }
        Finding::new(
            severity,
            rule,
            self.manifest.place(at.line()),
            format!("{}: {key}", self.workload.id),
            problem,
            fix,
        )
    }

    fn reach(
        &self,
        c: &Container,
        p: &Probe,
        said: &mut HashSet<&'static str>,
        out: &mut Vec<Finding>,
    ) -> Reach {
        let on_healthd = std::ptr::eq(c, self.healthd);
        let listen = self.config.server.listen;
        let grpc = self.config.server.grpc.as_ref().map(|g| g.listen);
        let is = |addr: Option<SocketAddr>, n: i64| addr.is_some_and(|a| i64::from(a.port()) == n);
        match &p.action {
            Action::Http {
                path, port, https, ..
            } => {
                let n = match self.target(c, p, *port, on_healthd, out) {
                    Ok(n) => n,
                    Err(reach) => return reach,
                };
                if !is(Some(listen), n) {
                    let problem = match grpc {
                        Some(g) if is(grpc, n) => format!(
                            "httpGet on port {n}, healthd's gRPC port ({g}, server.grpc.listen), where it speaks gRPC, not HTTP/1.1"
                        ),
                        _ => format!(
                            "port {n} is not healthd's: it serves HTTP on {listen} (server.listen)"
                        ),
                    };
                    let fix = format!("set the port to {}", listen.port());
                    return self.port_mismatch(p, problem, fix, out);
                }
                if self.unreachable(p, listen, "server.listen", said, out) {
                    return Reach::Broken;
                }
                let tls = self.config.server.tls.is_some();
                if *https != tls {
                    let problem = if tls {
                        "healthd serves HTTPS ([server.tls]), but the probe speaks plain HTTP to it"
                            .to_string()
                    } else {
                        "the probe speaks HTTPS, but healthd serves plain HTTP ([server.tls] is not set)".to_string()
                    };
                    let fix = if tls {
                        "set scheme: HTTPS (kubelet does not verify the certificate)"
                    } else {
                        "leave out scheme (HTTP)"
                    };
                    out.push(self.finding(
                        Severity::Error,
                        "scheme-mismatch",
                        p,
                        port_key(p).replace(".port", ".scheme"),
                        problem,
                        fix.into(),
                    ));
                    return Reach::Broken;
                }
                let bare = path.split('?').next().unwrap_or("");
                Reach::Asks(endpoint::of_path(path), bare.to_string())
            }
            Action::Grpc { port, service, .. } => {
                let n = *port;
                if !on_healthd && !is(Some(listen), n) && !is(grpc, n) {
                    return Reach::No;
                }
                let Some(g) = grpc.filter(|_| is(grpc, n)) else {
                    let problem = match grpc {
                        None => format!(
                            "healthd serves no gRPC ([server.grpc] is not set): nothing answers grpc on port {n}"
                        ),
                        Some(g) => format!(
                            "port {n} is not healthd's gRPC port: it serves gRPC on {g} (server.grpc.listen)"
                        ),
                    };
                    let fix = match grpc {
                        None => format!(
                            "add [server.grpc] listen = \"0.0.0.0:{n}\", or probe httpGet on port {}",
                            listen.port()
                        ),
                        Some(g) => format!("set the port to {}", g.port()),
                    };
                    return self.port_mismatch(p, problem, fix, out);
                };
                if self.unreachable(p, g, "server.grpc.listen", said, out) {
                    return Reach::Broken;
                }
                Reach::Asks(
                    endpoint::of_service(service),
                    format!("service \"{service}\""),
                )
            }
            Action::Exec { command } if runs_healthd_check(command) => {
                Reach::Asks(Endpoint::CheckCommand, "healthd check".into())
            }
            Action::Tcp { port } => {
                let n = match self.target(c, p, *port, on_healthd, out) {
                    Ok(n) => n,
                    Err(reach) => return reach,
                };
                if !is(Some(listen), n) && !is(grpc, n) {
                    return Reach::No;
                }
                let path = match p.role {
                    Role::Liveness => "/livez",
                    Role::Readiness => "/readyz",
                    Role::Startup => "/startupz",
                };
                out.push(self.finding(
                    Severity::Warning,
                    "tcp-probe-on-healthd",
                    p,
                    format!("{}.tcpSocket", p.at.path),
                    "a TCP probe shows only that healthd's port is open, never what its checks say".into(),
                    format!("use httpGet on {path}"),
                ));
                Reach::Broken
            }
            Action::Exec { .. } | Action::Unknown => Reach::No,
        }
    }

    fn port_mismatch(
        &self,
        p: &Probe,
        problem: String,
        fix: String,
        out: &mut Vec<Finding>,
    ) -> Reach {
        out.push(self.finding(
            Severity::Error,
            "probe-port-mismatch",
            p,
            port_key(p),
            problem,
            fix,
        ));
        Reach::Broken
    }

    /// The number of a probe's port if the probe is meant for healthd: it is on the healthd
    /// container, or on one of healthd's ports. A name the container does not declare is
    /// reported when the probe is on the healthd container.
    fn target(
        &self,
        c: &Container,
        p: &Probe,
        port: Port,
        on_healthd: bool,
        out: &mut Vec<Finding>,
    ) -> Result<i64, Reach> {
        let n = c.resolve(port);
        let ours = |n: i64| {
            i64::from(self.config.server.listen.port()) == n
                || self
                    .config
                    .server
                    .grpc
                    .as_ref()
                    .is_some_and(|g| i64::from(g.listen.port()) == n)
        };
        match n {
            Some(n) if on_healthd || ours(n) => return Ok(n),
            Some(_) => return Err(Reach::No),
            None if !on_healthd => return Err(Reach::No),
            None => {}
        }
        if let Port::Name(name) = port {
            let listen = self.config.server.listen.port();
            out.push(self.finding(
                Severity::Error,
                "unknown-port-name",
                p,
                port_key(p),
                format!("container {} has no port named \"{name}\": kubelet cannot resolve it and the probe fails", c.name),
                format!("add ports: [{{name: {name}, containerPort: {listen}}}] to the container, or give the number {listen}"),
            ));
        }
        Err(Reach::Broken)
    }

    /// healthd listens on loopback only: kubelet, connecting to the pod IP, gets no answer.
    fn unreachable(
        &self,
        p: &Probe,
        addr: SocketAddr,
        key: &'static str,
        said: &mut HashSet<&'static str>,
        out: &mut Vec<Finding>,
    ) -> bool {
        if !addr.ip().is_loopback() {
            return false;
        }
        if said.insert(key) {
            let var = format!("HEALTHD_{}", key.to_uppercase().replace('.', "__"));
            out.push(self.finding(
                Severity::Error,
                "listen-unreachable",
                p,
                port_key(p),
                format!("kubelet connects to the pod IP, but healthd listens on {addr} ({key}) only: the probe always fails"),
                format!("listen on 0.0.0.0:{port}: set {var}=0.0.0.0:{port} in the env of container {} (as examples/kubernetes/pod.yaml does) or {key} in the config", self.healthd.name, port = addr.port()),
            ));
        }
        true
    }
}

/// The key of the value a probe asks for (path, service or command).
fn what_key(p: &Probe) -> String {
    let leaf = match &p.action {
        Action::Http { .. } => "httpGet.path",
        Action::Grpc { .. } => "grpc.service",
        Action::Exec { .. } => "exec.command",
        Action::Tcp { .. } => "tcpSocket",
        Action::Unknown => "",
    };
    format!("{}.{leaf}", p.at.path)
}

/// The key of a probe's port.
fn port_key(p: &Probe) -> String {
    match &p.action {
        Action::Http { at, .. } | Action::Grpc { at, .. } => format!("{}.port", at.path),
        _ => format!("{}.port", p.at.path),
    }
}

/// `healthd [flags] check …`, also inside `sh -c "…"`.
fn runs_healthd_check(command: &[&str]) -> bool {
    let words: Vec<&str> = command.iter().flat_map(|c| c.split_whitespace()).collect();
    words
        .iter()
        .position(|w| w.rsplit('/').next() == Some("healthd"))
        .is_some_and(|i| words[i + 1..].contains(&"check"))
}
