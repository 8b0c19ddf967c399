//! Durations: how they are written in config files (and read by serde), their bounds, the
//! one way an `Instant` is advanced by one, and how latencies are written for people.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserializer;
use serde::de::{self, Visitor};

/// The longest duration any setting accepts: 365 days. Longer ones are config errors, so
/// no deadline computed from a setting can leave the clock's range.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a duration setting accepts, for messages.
const ACCEPTED: &str = "use e.g. \"500ms\", \"5s\", \"2m\", \"1h\"";

/// Parse a duration such as `500ms`, `5s`, `2m`, `1h 30m`; a bare integer means seconds.
/// Greater than zero and at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let shown = super::text::printable(text, 64);
    match humantime::parse_duration(text.trim()) {
        Ok(d) => bounded(d, &format!("\"{shown}\"")),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long(&format!("\"{shown}\""))),
        Err(_) => Err(format!("invalid duration \"{shown}\" ({ACCEPTED})")),
    }
}

fn bounded(d: Duration, shown: &str) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else if d > MAX_DURATION {
        Err(too_long(shown))
    } else {
        Ok(d)
    }
}

fn too_long(shown: &str) -> String {
    format!("too long: {shown} (at most 365 days)")
}

fn not_a_duration(shown: impl fmt::Display) -> String {
    format!("not a duration: {shown} ({ACCEPTED}, or a whole number of seconds)")
}

/// Reads a duration from a string or a whole number of seconds, naming what was found
/// otherwise (a negative number, a fraction, a boolean).
struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a duration ({ACCEPTED}) or a whole number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        bounded(Duration::from_secs(v), &format!("{v} seconds")).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "negative: {v} (a duration must be greater than zero)"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(not_a_duration(v)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Duration, E> {
        Err(E::custom(not_a_duration(v)))
    }
}

/// Serde helper for duration fields.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// Serde helper for optional duration fields.
pub fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// `t + d` without overflow: a point beyond the clock's range becomes [`MAX_DURATION`]
/// after `t` (or `t` itself if even that is out of range). Every deadline healthd computes
/// from a setting goes through here.
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(MAX_DURATION))
        .unwrap_or(t)
}

/// Format a latency for messages and tables: `850µs`, `12.3ms`, `1.20s`.
pub fn fmt_latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// A duration in milliseconds, rounded to the microsecond (for details fields).
pub fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_duration("366d").unwrap_err(),
            "too long: \"366d\" (at most 365 days)"
        );
        assert_eq!(
            parse_duration("9223372036854775806s").unwrap_err(),
            "too long: \"9223372036854775806s\" (at most 365 days)"
        );
        assert!(
            parse_duration("99999999999999999999999s")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn later_never_overflows() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert_eq!(later(now, Duration::MAX), now + MAX_DURATION);
    }

    #[test]
    fn latencies_read_well() {
        assert_eq!(fmt_latency(Duration::from_micros(850)), "850µs");
        assert_eq!(fmt_latency(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(fmt_latency(Duration::from_millis(1200)), "1.20s");
        assert_eq!(round_ms(Duration::from_nanos(1_234_567)), 1.235);
    }
}
