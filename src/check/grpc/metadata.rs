//! Request metadata of a gRPC check: values written in the config (`metadata`), read from
//! files (`metadata_file`) or from environment variables (`metadata_env`). File and variable
//! values are secrets: read at every connect (a rotated token is used at the next
//! reconnect), never shown, and scrubbed from every message.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

use crate::check::session::{read_secret_env, read_secret_file, validate_secret_env};

/// The three metadata tables, as configured.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub inline: BTreeMap<String, String>,
    pub file: BTreeMap<String, PathBuf>,
    pub env: BTreeMap<String, String>,
}

/// Metadata ready to send, and the secret values in it (to scrub).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub map: MetadataMap,
    pub secrets: Vec<String>,
}

/// Names gRPC or HTTP/2 reserve, which the client sets itself.
const RESERVED: &[&str] = &["content-type", "te", "user-agent", "host", "authorization-bin"];

fn check_name(name: &str) -> Result<AsciiMetadataKey, String> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("grpc-") || lower.starts_with(':') || RESERVED.contains(&lower.as_str())
    {
        return Err("reserved by gRPC; healthd sets it itself".into());
    }
    if lower.ends_with("-bin") {
        return Err("binary metadata (-bin) is not supported".into());
    }
    AsciiMetadataKey::from_bytes(lower.as_bytes()).map_err(|_| "invalid metadata name".into())
}

fn value(text: &str) -> Result<AsciiMetadataValue, String> {
    AsciiMetadataValue::try_from(text)
        .map_err(|_| "invalid metadata value (printable ASCII only)".to_string())
}

impl Metadata {
    /// Every configured name, with the table it is in.
    fn names(&self) -> Vec<(&'static str, &String)> {
        let mut all: Vec<(&'static str, &String)> = Vec::new();
        all.extend(self.inline.keys().map(|n| ("metadata", n)));
        all.extend(self.file.keys().map(|n| ("metadata_file", n)));
        all.extend(self.env.keys().map(|n| ("metadata_env", n)));
        all
    }

    pub fn validate(&self, problems: &mut Vec<(String, String)>) {
        let mut seen = Vec::new();
        for (table, name) in self.names() {
            let key = format!("{table}.{name}");
            if let Err(e) = check_name(name) {
                problems.push((key, e));
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                problems.push((key, "set more than once".into()));
            }
            seen.push(lower);
        }
        for (name, text) in &self.inline {
            if let Err(e) = value(text) {
                problems.push((format!("metadata.{name}"), e));
            }
        }
        for (name, path) in &self.file {
            crate::redact::warn_if_world_readable(path, "metadata_file");
            if let Err(e) = std::fs::metadata(path) {
                problems.push((
                    format!("metadata_file.{name}"),
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
        for (name, var) in &self.env {
            validate_secret_env(var, &format!("metadata_env.{name}"), problems);
        }
    }

    /// Read the values now. Errors name the key and the file or variable, never a value.
    pub fn resolve(&self) -> Result<Resolved, String> {
        let mut out = Resolved::default();
        for (name, text) in &self.inline {
            out.map.insert(check_name(name)?, value(text)?);
        }
        let secrets = self
            .file
            .iter()
            .map(|(name, path)| (name, read_secret_file(path, &format!("metadata_file.{name}"))))
            .chain(
                self.env
                    .iter()
                    .map(|(name, var)| (name, read_secret_env(var, &format!("metadata_env.{name}")))),
            );
        for (name, text) in secrets {
            let text = text?;
            let mut v = value(&text).map_err(|e| format!("{name}: {e}"))?;
            v.set_sensitive(true);
            out.map.insert(check_name(name)?, v);
            out.secrets.push(text);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_secrets_kept_apart() {
        let dir = std::env::temp_dir().join(format!("healthd-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "Bearer s3cret\n").unwrap();
        let m = Metadata {
            inline: [("X-Tenant".to_string(), "blue".to_string())].into(),
            file: [("authorization".to_string(), token)].into(),
            env: BTreeMap::new(),
        };
        let mut problems = Vec::new();
        m.validate(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let r = m.resolve().unwrap();
        assert_eq!(r.map.get("x-tenant").unwrap(), "blue");
        assert_eq!(r.map.get("authorization").unwrap(), "Bearer s3cret");
        assert_eq!(r.secrets, vec!["Bearer s3cret".to_string()]);

        let bad = Metadata {
            inline: [
                ("grpc-timeout".to_string(), "1S".to_string()),
                ("key-bin".to_string(), "x".to_string()),
            ]
            .into(),
            file: BTreeMap::new(),
            env: [("x-token".to_string(), "HEALTHD_TOKEN".to_string())].into(),
        };
        let mut problems = Vec::new();
        bad.validate(&mut problems);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["metadata.grpc-timeout", "metadata.key-bin", "metadata_env.x-token"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
