//! Byte sizes as config files write them: `"64MiB"`, `"512KiB"`, `"1GiB"`, `"100MB"`, or a
//! whole number of bytes.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// What a size setting accepts, for messages.
const ACCEPTED: &str = "use e.g. \"64MiB\", \"512KiB\", \"1GiB\", or a whole number of bytes";

/// The units, longest first so that `MiB` is not read as `B`.
const UNITS: [(&str, u64); 7] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("B", 1),
];

/// Parse a size such as `64MiB` or `1500000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let shown = super::text::printable(text, 64);
    let (digits, unit) = match UNITS.iter().find(|(u, _)| t.ends_with(u)) {
        Some((u, m)) => (t[..t.len() - u.len()].trim_end(), *m),
        None => (t, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size \"{shown}\" ({ACCEPTED})"))?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("too large: \"{shown}\""))
}

struct SizeVisitor;

impl<'de> Visitor<'de> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a size ({ACCEPTED})")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("negative: {v} ({ACCEPTED})")))
    }
}

/// Serde helper for optional size fields.
pub fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(SizeVisitor).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_binary_or_decimal_and_mistakes_say_what_is_accepted() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        let e = parse_size("64 megs").unwrap_err();
        assert!(
            e.contains("invalid size \"64 megs\"") && e.contains("64MiB"),
            "{e}"
        );
        assert!(parse_size("-1MiB").is_err());
        assert!(
            parse_size("99999999999GiB")
                .unwrap_err()
                .starts_with("too large")
        );
    }
}
