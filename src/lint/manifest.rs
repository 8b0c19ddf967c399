//! What the linter reads from a Kubernetes manifest: each workload's pod spec, its containers
//! (image, command, args, literal env values, ports, mounts) and their probes with kubelet's
//! defaults filled in, and the ConfigMaps of the same file.

use std::path::Path;

use serde_saphyr::Spanned;

use super::yaml::{self, At, Node};

/// The kinds whose pod template the linter reads.
const WORKLOADS: &[&str] = &["Pod", "Deployment", "StatefulSet", "DaemonSet"];

/// A manifest file, parsed.
pub struct Manifest {
    /// The path as given (for findings).
    pub file: String,
    docs: Vec<Spanned<Node>>,
}

/// One Pod, or the pod template of a Deployment, StatefulSet or DaemonSet.
pub struct Workload<'a> {
    /// `Deployment/shop-api`.
    pub id: String,
    pub line: u64,
    pub containers: Vec<Container<'a>>,
}

/// Which of kubelet's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Liveness,
    Readiness,
    Startup,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Startup, Role::Liveness, Role::Readiness];

    pub fn field(self) -> &'static str {
        match self {
            Role::Liveness => "livenessProbe",
            Role::Readiness => "readinessProbe",
            Role::Startup => "startupProbe",
        }
    }
}

/// A probe's port: a number or the name of one of the container's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port<'a> {
    Number(i64),
    Name(&'a str),
}

/// What kubelet does to probe.
pub enum Action<'a> {
    Http {
        path: &'a str,
        port: Port<'a>,
        https: bool,
        /// The node at `httpGet` (findings about the port or scheme point here).
        at: At<'a>,
    },
    Grpc {
        port: i64,
        service: &'a str,
        at: At<'a>,
    },
    Exec {
        command: Vec<&'a str>,
    },
    Tcp {
        port: Port<'a>,
    },
    Unknown,
}

/// One probe with kubelet's defaults for what it leaves out.
pub struct Probe<'a> {
    pub role: Role,
    pub at: At<'a>,
    pub action: Action<'a>,
    pub initial_delay: i64,
    pub period: i64,
    pub timeout: i64,
    pub failure_threshold: i64,
}

impl Probe<'_> {
    /// How long kubelet tolerates failures before acting:
    /// `initialDelaySeconds + periodSeconds × failureThreshold`.
    pub fn budget_secs(&self) -> i64 {
        self.initial_delay + self.period * self.failure_threshold
    }
}

/// A volume mount of a container.
pub struct Mount<'a> {
    pub volume: &'a str,
    pub path: &'a str,
    pub sub_path: Option<&'a str>,
}

/// A `configMap` volume of the pod: its name and any `items` (key → path).
pub struct ConfigMapVolume<'a> {
    pub volume: &'a str,
    pub config_map: &'a str,
    pub items: Vec<(&'a str, &'a str)>,
}

pub struct Container<'a> {
    /// `Deployment/shop-api: spec.template.spec.containers[1]`.
    pub key: String,
    pub line: u64,
    pub args_line: u64,
    pub name: &'a str,
    pub image: &'a str,
    /// `command` then `args`.
    pub argv: Vec<&'a str>,
    /// Env entries with a literal `value` (`valueFrom` cannot be known here).
    pub env: Vec<(&'a str, &'a str)>,
    pub ports: Vec<(Option<&'a str>, i64)>,
    pub mounts: Vec<Mount<'a>>,
    pub volumes: Vec<ConfigMapVolume<'a>>,
    pub probes: Vec<Probe<'a>>,
}

impl<'a> Container<'a> {
    /// Whether this container runs healthd: its image is `…/healthd[:tag]` or its command is
    /// `healthd`.
    pub fn is_healthd(&self) -> bool {
        let image = self.image.rsplit('/').next().unwrap_or("");
        let image = image.split([':', '@']).next().unwrap_or("");
        image == "healthd"
            || self.argv.first().and_then(|c| c.rsplit('/').next()) == Some("healthd")
    }

    /// The value of the first of `flags` in `command` + `args` (`--config X` or `--config=X`).
    pub fn flag(&self, flags: &[&str]) -> Option<&'a str> {
        let mut words = self.argv.iter();
        while let Some(w) = words.next() {
            for f in flags {
                if w == f {
                    return words.next().copied();
                }
                if let Some(v) = w.strip_prefix(f).and_then(|r| r.strip_prefix('=')) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// The number of a probe's port: named ports are looked up among this container's ports,
    /// as kubelet does.
    pub fn resolve(&self, port: Port) -> Option<i64> {
        match port {
            Port::Number(n) => Some(n),
            Port::Name(name) => self
                .ports
                .iter()
                .find(|(n, _)| *n == Some(name))
                .map(|(_, p)| *p),
        }
    }
}

/// A ConfigMap key found at a path inside a container.
pub struct Mounted<'a> {
    pub label: String,
    pub text: &'a str,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let docs = yaml::documents(&text)?;
        Ok(Manifest {
            file: path.display().to_string(),
            docs,
        })
    }

    /// `pod.yaml:57`.
    pub fn place(&self, line: u64) -> String {
        format!("{}:{line}", self.file)
    }

    fn of_kind<'a>(
        &'a self,
        kinds: &'a [&'a str],
    ) -> impl Iterator<Item = (At<'a>, &'a str, &'a str)> {
        self.docs.iter().filter_map(move |doc| {
            let root = At::root(doc);
            let kind = root.str_at("kind")?;
            kinds.contains(&kind).then(|| {
                let name = root
                    .get("metadata")
                    .and_then(|m| m.str_at("name"))
                    .unwrap_or("unnamed");
                (root, kind, name)
            })
        })
    }

    pub fn workloads(&self) -> Vec<Workload<'_>> {
        self.of_kind(WORKLOADS)
            .filter_map(|(root, kind, name)| {
                let spec = root.get("spec")?;
                let pod = if kind == "Pod" {
                    spec
                } else {
                    spec.get("template")?.get("spec")?
                };
                let id = format!("{kind}/{name}");
                let volumes = config_map_volumes(&pod);
                let containers = pod
                    .get("containers")
                    .map(|c| c.items())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| container(&id, c, &volumes))
                    .collect();
                Some(Workload {
                    line: root.line(),
                    id,
                    containers,
                })
            })
            .collect()
    }

    /// The text of the ConfigMap key a container sees at `path` (a file in a mounted
    /// directory, or a `subPath` mount).
    pub fn mounted_config(&self, container: &Container, path: &str) -> Option<Mounted<'_>> {
        container.mounts.iter().find_map(|m| {
            let rel = match m.sub_path {
                Some(sub) if m.path == path => sub,
                Some(_) => return None,
                None => path
                    .strip_prefix(m.path.trim_end_matches('/'))?
                    .strip_prefix('/')?,
            };
            let volume = container.volumes.iter().find(|v| v.volume == m.volume)?;
            let key = if volume.items.is_empty() {
                rel
            } else {
                volume.items.iter().find(|(_, p)| *p == rel)?.0
            };
            let (config_map, _, _) = self
                .of_kind(&["ConfigMap"])
                .find(|(_, _, name)| *name == volume.config_map)?;
            let text = config_map.get("data")?.str_at(key)?;
            Some(Mounted {
                label: format!("{} (ConfigMap/{} {key})", self.file, volume.config_map),
                text,
            })
        })
    }
}

fn config_map_volumes<'a>(pod: &At<'a>) -> Vec<ConfigMapVolume<'a>> {
    pod.get("volumes")
        .map(|v| v.items())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let cm = v.get("configMap")?;
            Some(ConfigMapVolume {
                volume: v.str_at("name")?,
                config_map: cm.str_at("name")?,
                items: cm
                    .get("items")
                    .map(|i| i.items())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| Some((i.str_at("key")?, i.str_at("path")?)))
                    .collect(),
            })
        })
        .collect()
}

fn container<'a>(workload: &str, c: At<'a>, volumes: &[ConfigMapVolume<'a>]) -> Container<'a> {
    let mut argv = c.strings_at("command");
    argv.extend(c.strings_at("args"));
    let args_line = c
        .get("args")
        .or_else(|| c.get("command"))
        .map_or(c.line(), |a| a.line());
    let list = |key: &str| c.get(key).map(|l| l.items()).unwrap_or_default();
    // In the order they are written, so findings follow the file.
    let probes = c
        .entries()
        .into_iter()
        .filter_map(|(key, at)| {
            let role = Role::ALL.into_iter().find(|r| r.field() == key)?;
            Some(probe(role, at))
        })
        .collect();
    Container {
        key: format!("{workload}: {}", c.path),
        line: c.line(),
        args_line,
        name: c.str_at("name").unwrap_or("unnamed"),
        image: c.str_at("image").unwrap_or(""),
        argv,
        env: list("env")
            .iter()
            .filter_map(|e| Some((e.str_at("name")?, e.str_at("value")?)))
            .collect(),
        ports: list("ports")
            .iter()
            .filter_map(|p| Some((p.str_at("name"), p.int_at("containerPort")?)))
            .collect(),
        mounts: list("volumeMounts")
            .iter()
            .filter_map(|m| {
                Some(Mount {
                    volume: m.str_at("name")?,
                    path: m.str_at("mountPath")?,
                    sub_path: m.str_at("subPath"),
                })
            })
            .collect(),
        volumes: volumes
            .iter()
            .map(|v| ConfigMapVolume {
                volume: v.volume,
                config_map: v.config_map,
                items: v.items.clone(),
            })
            .collect(),
        probes,
    }
}

fn port<'a>(at: &At<'a>) -> Port<'a> {
    let text = at.str_at("port").unwrap_or("");
    text.parse().map_or(Port::Name(text), Port::Number)
}

fn probe<'a>(role: Role, at: At<'a>) -> Probe<'a> {
    let action = if let Some(http) = at.get("httpGet") {
        Action::Http {
            path: http.str_at("path").unwrap_or("/"),
            port: port(&http),
            https: http
                .str_at("scheme")
                .is_some_and(|s| s.eq_ignore_ascii_case("https")),
            at: http,
        }
    } else if let Some(grpc) = at.get("grpc") {
        Action::Grpc {
            port: grpc.int_at("port").unwrap_or(0),
            service: grpc.str_at("service").unwrap_or(""),
            at: grpc,
        }
    } else if let Some(exec) = at.get("exec") {
        Action::Exec {
            command: exec.strings_at("command"),
        }
    } else if let Some(tcp) = at.get("tcpSocket") {
        Action::Tcp { port: port(&tcp) }
    } else {
        Action::Unknown
    };
    // kubelet's defaults (k8s.io/api core/v1 Probe).
    let or = |key: &str, default: i64| at.int_at(key).unwrap_or(default);
    Probe {
        role,
        action,
        initial_delay: or("initialDelaySeconds", 0),
        period: or("periodSeconds", 10),
        timeout: or("timeoutSeconds", 1),
        failure_threshold: or("failureThreshold", 3),
        at,
    }
}
