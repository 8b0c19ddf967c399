//! Probe kinds behind one shape, registered in one place.
//!
//! A kind is one file under `src/check/` holding a `*Config` (plain serde data with
//! `deny_unknown_fields`) that implements [`Kind`], and a probe built from it that implements
//! [`Run`] and owns whatever it keeps between runs (a connection, a `sysinfo::System`).
//! A kind only does its protocol. The caller (`scheduler`) owns what is common to every
//! kind: the deadline, the timing, panic isolation, `degraded_after` (reason `threshold`)
//! and redaction; errors from the network become reasons through the one classifier,
//! [`crate::model::classify`]; kinds that keep a connection open use the one driver,
//! [`session`].
//!
//! **Registry.** The [`kinds!`] invocation below is the only list of kinds: one line per
//! kind declares its module and its config type, and the macro generates the module, the
//! serde-tagged [`ProbeConfig`] enum (`kind = "…"`, the module's name), [`ProbeConfig::kind`],
//! validation, the [`Probe`] enum and its `build`/`run` dispatch. A declarative macro over
//! enums (rather than trait objects) keeps the configs and probes plain data; a run is boxed
//! once, as its own kind's future. Adding a kind: one file, one line here, one example
//! in `probes/`, its tests and its README section.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;

use crate::model::Outcome;

pub mod matcher;
pub mod session;
pub mod tls_client;

/// A kind's settings: validated as data, then built into the probe that runs.
pub trait Kind {
    /// The runtime probe this config builds.
    type Probe: Run;

    /// Semantic problems as (key, reason); `timeout` is the check's, for kinds whose own
    /// durations must fit inside it.
    fn validate(&self, timeout: Duration, problems: &mut Vec<(String, String)>);

    /// Build the runtime probe; fails on what config parsing cannot see (an unreadable CA
    /// file, a bad certificate). Opens no connection.
    fn build(&self, timeout: Duration) -> Result<Self::Probe, String>;
}

/// A built probe: one run at a time, bounded and possibly dropped by the caller.
pub trait Run: Send {
    /// Run once. The caller bounds this with the check's timeout and may drop the future.
    fn run(&mut self) -> impl Future<Output = Outcome> + Send;
}

/// The registry: `module::Config => Variant`, one line per kind (see the module doc).
macro_rules! kinds {
    ($( $(#[$attr:meta])* $module:ident :: $config:ident => $variant:ident, )+) => {
        $( $(#[$attr])* pub mod $module; pub use $module::$config; )+

        /// The settings of one check's kind, selected by `kind = "…"`. Boxed per kind, so
        /// a check's config holds its own kind's settings and not the size of the largest.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        pub enum ProbeConfig {
            $( #[serde(deserialize_with = "apart::deserialize")] $variant(Box<$config>), )+
        }

        /// Every kind's name, as written in `kind = "…"`.
        pub const KINDS: &[&str] = &[$( stringify!($module), )+];

        impl ProbeConfig {
            pub fn kind(&self) -> &'static str {
                match self {
                    $( ProbeConfig::$variant(_) => stringify!($module), )+
                }
            }

            /// Semantic problems as (key, reason).
            pub fn validate(&self, timeout: Duration) -> Vec<(String, String)> {
                let mut problems = Vec::new();
                match self {
                    $( ProbeConfig::$variant(c) => apart::validate(&**c, timeout, &mut problems), )+
                }
                problems
            }
        }

        /// A probe built from its config, owning whatever it keeps between runs. Boxed per
        /// kind, so a check holds its own kind's probe and not the size of the largest.
        pub enum Probe {
            $( $variant(Box<<$config as Kind>::Probe>), )+
        }

        impl Probe {
            /// Build the runtime probe (see [`Kind::build`]).
            pub fn build(config: &ProbeConfig, timeout: Duration) -> Result<Probe, String> {
                Ok(match config {
                    $( ProbeConfig::$variant(c) => Probe::$variant(apart::build(&**c, timeout)?), )+
                })
            }

            /// Run once (see [`Run::run`]). Boxed here, so each run's allocation is its own
            /// kind's future, not the largest kind's, and polled through its own function.
            pub fn run(&mut self) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
                match self {
                    $( Probe::$variant(p) => Box::pin(p.run()), )+
                }
            }
        }
    };
}

/// Each kind's share of [`ProbeConfig`] and [`Probe`]'s work, in a function of its own per
/// kind. Called from one `match` each, they would be inlined into it: every kind's
/// deserializer in one 110 KB function, and so on, all of which a daemon runs, and keeps
/// resident, for its three system checks. Apart, a daemon touches only its own kinds' code.
mod apart {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    use super::Kind;

    #[inline(never)]
    pub fn deserialize<'de, D, T>(d: D) -> Result<Box<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Box::<T>::deserialize(d)
    }

    #[inline(never)]
    pub fn validate<K: Kind>(c: &K, timeout: Duration, problems: &mut Vec<(String, String)>) {
        c.validate(timeout, problems)
    }

    #[inline(never)]
    pub fn build<K: Kind>(c: &K, timeout: Duration) -> Result<Box<K::Probe>, String> {
        c.build(timeout).map(Box::new)
    }
}

kinds! {
    tcp::TcpConfig => Tcp,
    http::HttpConfig => Http,
    #[path = "system/cpu.rs"] cpu::CpuConfig => Cpu,
    #[path = "system/memory.rs"] memory::MemoryConfig => Memory,
    #[path = "system/disk.rs"] disk::DiskConfig => Disk,
    #[path = "system/inodes.rs"] inodes::InodesConfig => Inodes,
    #[path = "system/pressure.rs"] pressure::PressureConfig => Pressure,
    #[path = "system/oom.rs"] oom::OomConfig => Oom,
    postgres::PostgresConfig => Postgres,
    redis::RedisConfig => Redis,
    dns::DnsConfig => Dns,
    exec::ExecConfig => Exec,
    push::PushConfig => Push,
    tls::TlsConfig => Tls,
    grpc::GrpcConfig => Grpc,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name `kind()` gives is the one serde reads, for every kind.
    #[test]
    fn kind_names_round_trip() {
        for kind in KINDS {
            let err = toml::from_str::<ProbeConfig>(&format!("kind = \"{kind}\""))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{kind}: {err}");
        }
        let c: ProbeConfig = toml::from_str("kind = \"tcp\"\nhost = \"h\"\nport = 1").unwrap();
        assert_eq!(c.kind(), "tcp");
    }
}
