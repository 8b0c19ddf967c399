//! Calendar arithmetic and validation of maintenance windows.

use super::*;

fn entry(text: &str) -> MaintenanceEntry {
    toml::from_str(text).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The one valid window of an entry.
fn window(text: &str, now: &str) -> MaintenanceWindow {
    let (mut w, p) = validate(&[(0, entry(text))], &[], ts(now));
    assert!(p.is_empty(), "{p:?}");
    w.remove(0)
}

#[test]
fn weekly_windows_cross_midnight_and_follow_the_time_zone() {
    let w = [window(
        "days = [\"sat\"]\nstart = \"23:00\"\nend = \"01:00\"\ntime_zone = \"Europe/Berlin\"",
        "2026-03-01T00:00:00Z",
    )];
    // Saturday 2026-03-07 23:00 in Berlin (UTC+1) is 22:00 UTC; it ends Sunday 00:00 UTC.
    assert!(w[0].open_at(ts("2026-03-07T22:30:00Z")).is_some());
    assert!(w[0].open_at(ts("2026-03-07T23:59:00Z")).is_some());
    assert!(w[0].open_at(ts("2026-03-08T00:00:00Z")).is_none());
    assert!(w[0].open_at(ts("2026-03-07T21:59:00Z")).is_none());
    // After the change to summer time (UTC+2), the same wall-clock window is an hour
    // earlier in UTC.
    assert!(w[0].open_at(ts("2026-04-04T21:30:00Z")).is_some());
    assert!(w[0].open_at(ts("2026-04-04T22:59:00Z")).is_some());
    assert!(w[0].open_at(ts("2026-04-04T23:00:00Z")).is_none());
}

#[test]
fn one_off_windows_take_offsets_or_civil_time() {
    let w = [window(
        "from = \"2026-12-01T22:00\"\nto = \"2026-12-01T23:30:00+01:00\"\ntime_zone = \"Europe/Berlin\"",
        "2026-01-01T00:00:00Z",
    )];
    assert!(w[0].open_at(ts("2026-12-01T21:00:00Z")).is_some());
    assert!(w[0].open_at(ts("2026-12-01T22:30:00Z")).is_none());
}

#[test]
fn malformed_windows_name_their_key() {
    let now = ts("2026-01-01T00:00:00Z");
    let cases = [
        (
            "from = \"2026-12-02T00:00Z\"\nto = \"2026-12-01T00:00Z\"",
            "maintenance[0].to",
        ),
        (
            "from = \"yesterday\"\nto = \"2026-12-01T00:00Z\"",
            "maintenance[0].from",
        ),
        (
            "days = [\"sat\"]\nstart = \"25:00\"\nend = \"01:00\"",
            "maintenance[0].start",
        ),
        (
            "days = [\"someday\"]\nstart = \"01:00\"\nend = \"02:00\"",
            "maintenance[0].days",
        ),
        ("start = \"01:00\"\nend = \"02:00\"", "maintenance[0].days"),
        (
            "days = [\"mon\"]\nstart = \"01:00\"\nend = \"01:00\"",
            "maintenance[0].end",
        ),
        (
            "days = [\"mon\"]\nstart = \"01:00\"\nend = \"02:00\"\ntime_zone = \"Mars/Base\"",
            "maintenance[0].time_zone",
        ),
        (
            "from = \"2026-12-02T00:00Z\"\ndays = [\"mon\"]",
            "maintenance[0].from",
        ),
        (
            "checks = [\"nope\"]\nfrom = \"2026-12-01T00:00Z\"\nto = \"2026-12-02T00:00Z\"",
            "maintenance[0].checks[0]",
        ),
    ];
    for (text, key) in cases {
        let (_, p) = validate(&[(0, entry(text))], &["db"], now);
        assert_eq!(p.len(), 1, "{text}: {p:?}");
        assert_eq!(p[0].0, key, "{text}: {p:?}");
    }
}

#[test]
fn overlapping_windows_over_a_common_check_are_refused() {
    let now = ts("2026-01-01T00:00:00Z");
    let nightly = entry(
        "checks = [\"db\"]\ndays = [\"mon\", \"tue\"]\nstart = \"02:00\"\nend = \"04:00\"\ntime_zone = \"UTC\"",
    );
    let migration = entry("from = \"2026-03-03T03:00:00Z\"\nto = \"2026-03-03T05:00:00Z\"");
    let (_, p) = validate(
        &[(0, nightly.clone()), (1, migration.clone())],
        &["db", "api"],
        now,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "maintenance[1]");
    assert!(p[0].1.contains("for check \"db\""), "{}", p[0].1);
    // Other checks, or a time the nightly window does not cover: no overlap.
    let api_only = MaintenanceEntry {
        checks: vec!["api".into()],
        ..migration.clone()
    };
    assert!(
        validate(&[(0, nightly.clone()), (1, api_only)], &["db", "api"], now)
            .1
            .is_empty()
    );
    let wednesday = MaintenanceEntry {
        from: Some("2026-03-04T03:00:00Z".into()),
        to: Some("2026-03-04T05:00:00Z".into()),
        ..migration
    };
    assert!(
        validate(&[(0, nightly), (1, wednesday)], &["db", "api"], now)
            .1
            .is_empty()
    );
}
