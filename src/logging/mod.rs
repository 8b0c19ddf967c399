//! Where log lines go: stderr for people and pipes, or journald when stderr is the journal.
//!
//! Under systemd, stderr is a journal stream (`JOURNAL_STREAM` names it). Written there as
//! plain text, every line would be stored at priority 6 (info) and repeat its own timestamp
//! after journald's. So when stderr *is* that stream, healthd sends each event through
//! journald's native protocol instead ([`journal`]): the priority of its level, the readable
//! line without a timestamp as `MESSAGE=`, and every field as its own journal field (`CHECK=`,
//! `REASON=`, `FILE=`, `KEY=`…). If the journal socket cannot be reached, lines still go to
//! stderr, prefixed with the `<N>` syslog priority journald understands, and without a
//! timestamp. `--log-format json` on the journal keeps JSON (without a timestamp) with that
//! prefix.

use std::io::{IsTerminal, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::model::one_log_line;

mod filter;
pub mod journal;

pub use filter::filter;

/// How lines are written when they go to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-11-22T11:48:17.738934Z  WARN Check status changed. check=cache …`
    Plain,
    /// One JSON object per line.
    Json,
}

/// Install the process-wide subscriber: journald when stderr is the journal, else stderr.
pub fn init(filter: EnvFilter, format: Format) {
    let on_journal = stderr_is_journal();
    let native = match (on_journal, format) {
        (true, Format::Plain) => journal::JournalLayer::connect().ok(),
        _ => None,
    };
    if let Some(layer) = native {
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init();
        return;
    }
    let colours = !on_journal && format == Format::Plain && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || OneLineStderr { colours })
        .with_target(false);
    match (on_journal, format) {
        (false, Format::Json) => builder.json().flatten_event(true).init(),
        (false, Format::Plain) => builder.with_ansi(colours).init(),
        (true, Format::Json) => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .without_time()
                .with_target(false);
            builder.event_format(Prefixed(json)).init()
        }
        (true, Format::Plain) => {
            let plain = tracing_subscriber::fmt::format()
                .without_time()
                .with_level(false)
                .with_target(false);
            builder
                .with_ansi(false)
                .event_format(Prefixed(plain))
                .init()
        }
    }
}

/// Stderr for log events, one line each: fields carry text from outside (file names, a
/// collector's error, a panic), and the plain format prints them as they are. The
/// formatter writes each event whole, so every write is one event ([`one_log_line`]).
struct OneLineStderr {
    colours: bool,
}

impl Write for OneLineStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let event = one_log_line(&String::from_utf8_lossy(buf), self.colours);
        std::io::stderr().write_all(event.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Whether stderr is the journal stream systemd connected: `JOURNAL_STREAM` holds the device
/// and inode of that stream, and stderr must still be it (a wrapper may have redirected it).
pub fn stderr_is_journal() -> bool {
    let Ok(named) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    names_stream(&named, stat.st_dev, stat.st_ino)
}

/// `JOURNAL_STREAM` is `DEVICE:INODE`, both decimal.
fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// The syslog priority of a level: err, warning, info, debug.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Print one error line to stderr, at priority err (`<3>`) when stderr is the journal: the
/// configuration problems `healthd run` prints before it exits 78 are found by
/// `journalctl -p err`.
pub fn print_error(line: &str) {
    let prefix = if stderr_is_journal() { "<3>" } else { "" };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{prefix}{line}");
}

/// An event format with the `<N>` priority prefix journald reads from a stream line.
struct Prefixed<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(names_stream("64769:1234", 64769, 1234));
        assert!(!names_stream("64769:1234", 64769, 1235));
        assert!(!names_stream("64769", 64769, 1234));
        assert!(!names_stream("x:1234", 64769, 1234));
        assert!(!names_stream("", 0, 0));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
