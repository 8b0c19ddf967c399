//! Configs written to temporary files.

use std::collections::HashMap;
use std::path::PathBuf;

use healthd::config::{self, CheckConfig, Config, ConfigError, Sources};

/// A temporary directory holding `healthd.toml`, an empty `probes.d/` and any secret files.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(main: &str) -> ConfigDir {
        let dir = tempfile::Builder::new()
            .prefix("healthd-test-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir(dir.path().join("probes.d")).expect("create probes.d");
        std::fs::write(dir.path().join("healthd.toml"), main).expect("write healthd.toml");
        ConfigDir { dir }
    }

    /// Replace the main config file's text.
    pub fn set_config(&self, main: &str) {
        std::fs::write(self.path(), main).expect("write healthd.toml");
    }

    /// The main config file, `healthd.toml`.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("healthd.toml")
    }

    pub fn probes_dir(&self) -> PathBuf {
        self.dir.path().join("probes.d")
    }

    /// Add a drop-in file `probes.d/<name>`.
    pub fn drop_in(&self, name: &str, text: &str) -> PathBuf {
        let p = self.probes_dir().join(name);
        std::fs::write(&p, text).expect("write drop-in");
        p
    }

    /// Write a secret file (mode 0600, `content` and a newline) and return its path.
    pub fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        super::write_secret(&self.dir.path().join(name), content)
    }

    /// Sources with an empty environment (the process environment is not read); drop-ins
    /// from the default `probes.d/` beside the main file.
    pub fn sources(&self) -> Sources {
        self.sources_with_env(&[])
    }

    pub fn sources_with_env(&self, env: &[(&str, &str)]) -> Sources {
        Sources {
            config: Some(self.path()),
            probes_dir: None,
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
            ),
        }
    }

    pub fn load(&self) -> Result<Config, Vec<ConfigError>> {
        config::load(&self.sources())
    }
}

/// Parse a config and return its only check; panics with every error on a bad config.
pub fn one_check(toml: &str) -> CheckConfig {
    let dir = ConfigDir::new(toml);
    let cfg = dir
        .load()
        .unwrap_or_else(|errs| panic!("config should be valid: {errs:#?}\n{toml}"));
    assert_eq!(cfg.checks.len(), 1, "expected exactly one check");
    (*cfg.checks.into_iter().next().expect("one check")).clone()
}

/// The registered kinds as config errors list them (`"tcp", "http", …`), read from the
/// error for an unknown kind, so fixtures need not change when a kind is added. Stands for
/// `$KINDS` in `tests/fixtures/*.expected`.
pub fn kinds_list() -> String {
    let errors = ConfigDir::new("[[checks]]\nname = \"x\"\nkind = \"no-such-kind\"\n")
        .load()
        .expect_err("unknown kind");
    let reason = &errors[0].reason;
    let list = reason
        .split_once("expected one of ")
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| panic!("no kind list in {reason}"));
    for core in ["\"tcp\"", "\"http\"", "\"cpu\"", "\"memory\"", "\"disk\""] {
        assert!(list.contains(core), "{core} missing from {list}");
    }
    list
}

/// A `[[checks]]` entry of kind tcp on loopback `port`, with `extra` lines.
pub fn tcp_toml(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n"
    )
}
