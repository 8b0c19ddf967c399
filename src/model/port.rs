//! Port numbers as config values.

use serde::{Deserialize, Deserializer};

/// Deserialize a port number with a clear out-of-range message.
pub fn de_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = i64::deserialize(d)?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(serde::de::Error::custom(format!(
            "out of range: {n} (must be 1 to 65535)"
        ))),
    }
}

/// Deserialize an optional port number (see [`de_port`]).
pub fn de_opt_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    de_port(d).map(Some)
}
