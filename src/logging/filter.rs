//! Which log lines are shown: the operator's level (`--log-level`, else `RUST_LOG`, else
//! `info`), with two libraries kept quiet unless the operator names them.

use tracing_subscriber::EnvFilter;

/// The filter for `level` (the command line's), falling back to `RUST_LOG` and `info`.
pub fn filter(level: Option<&str>) -> EnvFilter {
    let mut filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // The OpenTelemetry SDK logs every failed export; healthd logs them rate-limited itself.
    // Naming `opentelemetry` in the filter (e.g. `info,opentelemetry=debug`) shows them.
    let spec = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_default();
    if !spec.contains("opentelemetry")
        && let Ok(d) = "opentelemetry=off".parse()
    {
        filter = filter.add_directive(d);
    }
    // The HTTP client's own debug and trace lines print connection-pool keys (scheme and
    // authority): kept out unless named, so no URL with userinfo can reach the log.
    for client in ["hyper_util", "reqwest"] {
        if !spec.contains(client)
            && let Ok(d) = format!("{client}=info").parse()
        {
            filter = filter.add_directive(d);
        }
    }
    filter
}
