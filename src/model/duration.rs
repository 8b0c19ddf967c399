//! Durations: how they are written in config files (and read by serde), and how latencies
//! are written for people.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parse a duration such as `500ms`, `5s`, `2m`, `1h 30m`; a bare integer means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        format!("invalid duration \"{text}\" (use e.g. \"500ms\", \"5s\", \"2m\", \"1h\")")
    })?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Text(String),
    Seconds(u64),
}

/// Serde helper for duration fields.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match DurationRepr::deserialize(d)? {
        DurationRepr::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        DurationRepr::Seconds(0) => Err(serde::de::Error::custom("must be greater than zero")),
        DurationRepr::Seconds(s) => Ok(Duration::from_secs(s)),
    }
}

/// Serde helper for optional duration fields.
pub fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
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
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn latencies_read_well() {
        assert_eq!(fmt_latency(Duration::from_micros(850)), "850µs");
        assert_eq!(fmt_latency(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(fmt_latency(Duration::from_millis(1200)), "1.20s");
        assert_eq!(round_ms(Duration::from_nanos(1_234_567)), 1.235);
    }
}
