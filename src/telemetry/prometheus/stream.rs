//! `/metrics` for many checks, rendered in bounded chunks from one snapshot (and one history
//! view): the families that do not grow with the checks first, then each per-check family
//! (the snapshot's, then history's uptime and SLO gauges) a range of checks at a time (its
//! `# HELP`/`# TYPE` only in its first chunk, so every family stays together), then `# EOF`.
//! Memory is one chunk's text, whatever the number of checks.

use std::ops::Range;
use std::sync::Arc;

use prometheus_client::collector::Collector;

use super::super::history::{GAUGE_FAMILIES, HistoryPart, PrometheusHistory, counters};
use super::{
    Extra, PER_CHECK_FAMILIES, Part, SnapshotCollector, collectors, encode_all, to_text_format,
};
use crate::health::Snapshot;
use crate::history::History;
use crate::model::host::HostSample;

/// Above this many checks `/metrics` is streamed in chunks instead of rendered whole and
/// kept (at 1,000 checks a body is ~2.5 MB; at 100,000 ~250 MB).
pub const STREAM_ABOVE: usize = 2_000;

/// Checks per chunk of one family (a chunk of the duration histogram is ~1 MB).
const CHECKS_PER_CHUNK: usize = 512;

/// Families with series per check, by number, for a range of checks.
type Source = Box<dyn Fn(usize, Range<usize>) -> Box<dyn Collector> + Send>;

/// One source of per-check families: how many families, over how many checks.
struct PerCheck {
    families: usize,
    checks: usize,
    collector: Source,
}

/// The chunks of one rendering, produced as they are asked for.
pub struct Chunks {
    open_metrics: bool,
    fixed: Option<String>,
    /// The snapshot's per-check families, then history's.
    sources: Vec<PerCheck>,
    source: usize,
    family: usize,
    next_check: usize,
    described: bool,
    done: bool,
}

impl Chunks {
    /// The rendering of `snapshot` (OpenMetrics if `open_metrics`, else the text format
    /// 0.0.4); the families that do not grow with the checks are rendered now.
    pub fn new(
        snapshot: Arc<Snapshot>,
        host: Option<Arc<HostSample>>,
        history: Option<&History>,
        extra: &[Extra],
        open_metrics: bool,
    ) -> Chunks {
        let fixed = encode_all(collectors(
            snapshot.clone(),
            host,
            Part::Fixed,
            history,
            extra,
        ));
        let checks = snapshot.checks.len();
        let mut sources = vec![PerCheck {
            families: PER_CHECK_FAMILIES,
            checks,
            collector: Box::new(move |f, r| {
                Box::new(SnapshotCollector(
                    snapshot.clone(),
                    None,
                    Part::Family(f, r),
                ))
            }),
        }];
        if let Some(h) = history {
            let view = h.view.load_full();
            let counters = counters(h);
            sources.push(PerCheck {
                families: GAUGE_FAMILIES,
                checks: view.checks.len(),
                collector: Box::new(move |f, r| {
                    Box::new(PrometheusHistory(
                        view.clone(),
                        counters,
                        HistoryPart::Gauges(f, r),
                    ))
                }),
            });
        }
        let mut chunks = Chunks {
            open_metrics,
            fixed: None,
            sources,
            source: 0,
            family: 0,
            next_check: 0,
            described: false,
            done: false,
        };
        chunks.fixed = Some(chunks.format(fixed));
        chunks
    }

    /// One encoding in the chosen format, without its `# EOF`.
    fn format(&self, open_metrics: String) -> String {
        let mut text = if self.open_metrics {
            open_metrics
        } else {
            to_text_format(&open_metrics)
        };
        if text.ends_with("# EOF\n") {
            text.truncate(text.len() - "# EOF\n".len());
        }
        text
    }

    /// The next chunk of the current per-check family, if it has series.
    fn family_chunk(&mut self, source: usize) -> Option<String> {
        let src = &self.sources[source];
        let end = (self.next_check + CHECKS_PER_CHUNK).min(src.checks);
        let collector = (src.collector)(self.family, self.next_check..end);
        self.next_check = end;
        let text = self.format(encode_all(vec![collector]));
        if text.is_empty() {
            return None;
        }
        if !std::mem::replace(&mut self.described, true) {
            return Some(text);
        }
        // Label values are escaped, so only descriptors start a line with `# `.
        Some(
            text.split_inclusive('\n')
                .filter(|l| !l.starts_with("# "))
                .collect(),
        )
    }
}

impl Iterator for Chunks {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if let Some(fixed) = self.fixed.take() {
            return Some(fixed);
        }
        while let Some(src) = self.sources.get(self.source) {
            if self.family >= src.families {
                self.source += 1;
                self.family = 0;
                continue;
            }
            if self.next_check >= src.checks {
                self.family += 1;
                self.next_check = 0;
                self.described = false;
                continue;
            }
            if let Some(chunk) = self.family_chunk(self.source) {
                return Some(chunk);
            }
        }
        if std::mem::replace(&mut self.done, true) || !self.open_metrics {
            return None;
        }
        Some("# EOF\n".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::checks::{CHUNK, Checks};
    use crate::health::state::CheckState;
    use crate::health::{CheckMeta, CheckView};
    use crate::model::Status;

    fn snapshot(n: usize) -> Arc<Snapshot> {
        let views: Vec<Arc<CheckView>> = (0..n)
            .map(|i| {
                let mut v = CheckView::clone(
                    &CheckState::new(CheckMeta::for_test(&format!("check-{i}"))).view,
                );
                v.status = if i % 3 == 0 {
                    Status::Unhealthy
                } else {
                    Status::Healthy
                };
                v.flapping = i % 7 == 0;
                Arc::new(v)
            })
            .collect();
        let mut snap = Snapshot::empty();
        snap.checks = Checks {
            chunks: views.chunks(CHUNK).map(Arc::from).collect(),
            probes: n,
            builtins: Arc::from([]),
        };
        Arc::new(snap)
    }

    fn sorted_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn the_chunks_hold_every_line_of_the_whole_body_once_per_family() {
        let snap = snapshot(3 * CHECKS_PER_CHUNK + 17);
        for open_metrics in [true, false] {
            let whole = if open_metrics {
                super::super::render(snap.clone(), None)
            } else {
                super::super::render_text(snap.clone(), None)
            };
            let chunks: Vec<String> =
                Chunks::new(snap.clone(), None, None, &[], open_metrics).collect();
            assert!(chunks.len() > PER_CHECK_FAMILIES, "{} chunks", chunks.len());
            let streamed = chunks.concat();
            assert_eq!(sorted_lines(&streamed), sorted_lines(&whole));
            assert_eq!(streamed.ends_with("# EOF\n"), open_metrics);
            assert_eq!(streamed.matches("# TYPE healthd_check_status ").count(), 1);
            assert!(streamed.contains(&format!(
                "healthd_check_flapping{{healthd_check_name=\"check-{}\",",
                3 * CHECKS_PER_CHUNK + 14
            )));
        }
    }
}
