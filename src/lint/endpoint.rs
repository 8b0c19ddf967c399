//! What a probe asks healthd: an HTTP path or a gRPC service name, read as healthd serves
//! them (README, "Endpoints" and "gRPC health service"), and whether that fits the probe.

use super::manifest::Role;
use crate::config::Config;
use crate::model::Group;

/// What healthd answers at a path or service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/readyz`, gRPC `readiness`: a group's verdict.
    Group(Group),
    /// `/readyz/db`, gRPC `readiness/db`: one check of a group.
    Check(Group, String),
    /// `/livez/ping`: 200 whenever the process answers.
    Ping(Group),
    /// `/health`, `/metrics`: always 200 (details).
    Details(&'static str),
    /// `healthd check` run by kubelet: every check, once.
    CheckCommand,
    /// Anything else: 404, or `NOT_FOUND`.
    Unknown,
}

/// An HTTP path (its query ignored).
pub fn of_path(path: &str) -> Endpoint {
    let path = path.split('?').next().unwrap_or("");
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let first = parts.next().unwrap_or("");
    let rest = parts.next();
    match (first, rest) {
        ("health", None) => return Endpoint::Details("/health"),
        ("metrics", None) => return Endpoint::Details("/metrics"),
        _ => {}
    }
    let Some(group) = Group::ALL.into_iter().find(|g| g.path() == first) else {
        return Endpoint::Unknown;
    };
    match rest {
        None | Some("") => Endpoint::Group(group),
        Some("ping") => Endpoint::Ping(group),
        Some(name) if !name.contains('/') => Endpoint::Check(group, name.to_string()),
        Some(_) => Endpoint::Unknown,
    }
}

/// A gRPC service name: `""` is readiness.
pub fn of_service(service: &str) -> Endpoint {
    if service.is_empty() {
        return Endpoint::Group(Group::Readiness);
    }
    match service.split_once('/') {
        Some((g, name)) => match Group::named(g) {
            Some(group) if !name.is_empty() => Endpoint::Check(group, name.to_string()),
            _ => Endpoint::Unknown,
        },
        None => Group::named(service).map_or(Endpoint::Unknown, Endpoint::Group),
    }
}

/// A problem with what a probe asks: (rule, problem, fix). `asked` names it as written
/// (`/readyz`, `service "readiness"`); `grpc` picks the wording of the fix.
pub fn judge(
    endpoint: &Endpoint,
    role: Role,
    asked: &str,
    grpc: bool,
    config: &Config,
) -> Option<(&'static str, String, String)> {
    let want = |g: Group| -> String {
        if grpc {
            format!("grpc service \"{}\"", g.as_str())
        } else {
            format!("/{}", g.path())
        }
    };
    let own = match role {
        Role::Liveness => Group::Liveness,
        Role::Readiness => Group::Readiness,
        Role::Startup => Group::Startup,
    };
    let group = match endpoint {
        Endpoint::Unknown => {
            return Some((
                "unknown-endpoint",
                format!(
                    "healthd has no {asked}: it answers {}, so the probe always fails",
                    if grpc { "NOT_FOUND" } else { "404" }
                ),
                format!("point the {} at {}", role.field(), want(own)),
            ));
        }
        Endpoint::Details(path) => {
            return Some((
                "probe-never-fails",
                format!("{path} always answers 200, whatever the checks say"),
                format!("point the {} at {}", role.field(), want(own)),
            ));
        }
        Endpoint::Ping(g) if role != Role::Liveness => {
            return Some((
                "probe-never-fails",
                format!("{asked} answers 200 whenever healthd runs, whatever its checks say"),
                format!("point the {} at {}", role.field(), want(*g)),
            ));
        }
        Endpoint::Ping(_) => return None,
        Endpoint::Check(g, name) => {
            let members: Vec<&str> = config
                .checks
                .iter()
                .filter(|c| c.groups.contains(g))
                .map(|c| c.name.as_str())
                .collect();
            if !members.contains(&name.as_str()) {
                return Some((
                    "unknown-check",
                    format!(
                        "no check named \"{name}\" in {}: healthd answers {}, so the probe always fails",
                        g.as_str(),
                        if grpc { "NOT_FOUND" } else { "404" }
                    ),
                    if members.is_empty() {
                        format!("point it at {}", want(*g))
                    } else {
                        format!(
                            "name a check of {} ({}) or the whole group, {}",
                            g.as_str(),
                            members.join(", "),
                            want(*g)
                        )
                    },
                ));
            }
            *g
        }
        Endpoint::Group(g) => *g,
        Endpoint::CheckCommand => Group::Readiness,
    };
    let what = if *endpoint == Endpoint::CheckCommand {
        "`healthd check` runs every check, dependencies included".to_string()
    } else {
        format!("{asked} is healthd's {} verdict", group.as_str())
    };
    match (role, group) {
        (Role::Liveness | Role::Startup, Group::Readiness) => Some((
            "liveness-on-readiness",
            format!(
                "{what}: when a dependency fails, kubelet restarts the container in every pod at once, which cannot fix the dependency and adds load to it{}",
                if role == Role::Startup {
                    " (here: pods never finish starting while it is down)"
                } else {
                    ""
                }
            ),
            format!("point the {} at {}", role.field(), want(own)),
        )),
        (Role::Readiness, Group::Liveness) => Some((
            "readiness-on-liveness",
            format!(
                "{what}, which holds healthd's own health and not the dependencies: the pod stays in the Service while they fail"
            ),
            format!("point the readinessProbe at {}", want(Group::Readiness)),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_services_name_what_healthd_serves() {
        assert_eq!(of_path("/readyz"), Endpoint::Group(Group::Readiness));
        assert_eq!(of_path("/livez?verbose"), Endpoint::Group(Group::Liveness));
        assert_eq!(of_path("/startupz/"), Endpoint::Group(Group::Startup));
        assert_eq!(
            of_path("/readyz/db"),
            Endpoint::Check(Group::Readiness, "db".into())
        );
        assert_eq!(of_path("/livez/ping"), Endpoint::Ping(Group::Liveness));
        assert_eq!(of_path("/health"), Endpoint::Details("/health"));
        assert_eq!(of_path("/healthz"), Endpoint::Unknown);
        assert_eq!(of_path("/readyz/a/b"), Endpoint::Unknown);
        assert_eq!(of_service(""), Endpoint::Group(Group::Readiness));
        assert_eq!(of_service("livez"), Endpoint::Group(Group::Liveness));
        assert_eq!(of_service("startup"), Endpoint::Group(Group::Startup));
        assert_eq!(
            of_service("readiness/db"),
            Endpoint::Check(Group::Readiness, "db".into())
        );
        assert_eq!(of_service("readyz/"), Endpoint::Unknown);
        assert_eq!(of_service("grpc.health.v1.Health"), Endpoint::Unknown);
    }
}
