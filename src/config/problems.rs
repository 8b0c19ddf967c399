//! The problems found while loading, each tagged with the file (or environment variable) it
//! belongs to.

use std::collections::HashMap;

use super::ConfigError;

/// Collects problems while loading; each one is tagged with the file it belongs to.
pub(crate) struct Problems {
    pub(crate) errors: Vec<ConfigError>,
    /// Keys whose value came from the environment, mapped to the variable's name.
    pub(crate) env_keys: HashMap<String, String>,
}

impl Problems {
    pub(crate) fn push(&mut self, file: &str, key: impl Into<String>, reason: impl Into<String>) {
        let key = key.into();
        let file = match self.env_keys.get(&key) {
            Some(var) => format!("environment ({var})"),
            None => file.to_string(),
        };
        self.errors.push(ConfigError::new(file, key, reason.into()));
    }
}
