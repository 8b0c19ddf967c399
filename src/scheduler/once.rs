//! `healthd check`: every check run once, concurrently (bounded), and the results as a table
//! or as JSON.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{run_timed, status_of};
use crate::config::{CheckConfig, Config};
use crate::model::{Outcome, Reason, Status, fmt_latency};

/// Run every check once, concurrently (bounded).
pub async fn run_all_once(
    checks: &[Arc<CheckConfig>],
    max_in_flight: usize,
) -> Vec<(Outcome, Duration)> {
    let limiter = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let tasks: Vec<_> = checks
        .iter()
        .cloned()
        .map(|c| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let _permit = limiter.acquire().await;
                run_timed(&mut None, &c).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(match t.await {
            Ok(r) => r,
            Err(e) => (
                Outcome::failed(Reason::Internal, format!("check task failed: {e}")),
                Duration::ZERO,
            ),
        });
    }
    out
}

/// Run every check of `config` once; the report to print (JSON or a table, each line ended)
/// and the overall status (unknown when there are no checks).
pub async fn report(config: &Config, json: bool) -> (String, Status) {
    let results: Vec<_> = run_all_once(&config.checks, config.server.max_in_flight)
        .await
        .into_iter()
        .map(|(o, latency)| (o.printable(), latency))
        .collect();
    let statuses: Vec<Status> = config
        .checks
        .iter()
        .zip(&results)
        .map(|(c, (o, _))| status_of(o, c.critical))
        .collect();
    let overall = if config.checks.is_empty() {
        Status::Unknown
    } else {
        statuses.iter().fold(Status::Healthy, |a, b| a.worst(*b))
    };
    let mut out = String::new();
    if json {
        let checks: Vec<serde_json::Value> = config
            .checks
            .iter()
            .zip(&results)
            .zip(&statuses)
            .map(|((c, (o, latency)), s)| {
                serde_json::json!({
                    "name": c.name,
                    "kind": c.kind(),
                    "status": s,
                    "critical": c.critical,
                    "latency_ms": (latency.as_secs_f64() * 1e6).round() / 1000.0,
                    "reason": o.reason,
                    "message": o.message,
                    "details": o.details,
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "status": overall, "checks": checks })
        );
        return (out, overall);
    }
    let rows: Vec<[String; 6]> = config
        .checks
        .iter()
        .zip(&results)
        .zip(&statuses)
        .map(|((c, (o, latency)), s)| {
            [
                c.name.clone(),
                c.kind().to_string(),
                s.as_str().to_string(),
                fmt_latency(*latency),
                o.reason.map(|r| r.as_str()).unwrap_or("-").to_string(),
                o.message.clone(),
            ]
        })
        .collect();
    let header = ["NAME", "KIND", "STATUS", "LATENCY", "REASON", "MESSAGE"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 5 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "overall: {}", overall.as_str());
    (out, overall)
}
