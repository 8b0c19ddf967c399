//! journald's native protocol: one datagram per event to `/run/systemd/journal/socket`,
//! holding `FIELD=value` lines (a value with a newline is length-prefixed instead).
//!
//! Each event becomes `PRIORITY=` (from its level), `SYSLOG_IDENTIFIER=healthd`,
//! `MESSAGE=` (the line the plain format prints, without timestamp and level:
//! `Check status changed. check=db kind="tcp" …`, because `journalctl` shows only MESSAGE),
//! `CODE_FILE=`/`CODE_LINE=`, and each of the event's fields as its own journal field,
//! upper-cased (`check` → `CHECK=db`), so `journalctl -u healthd CHECK=db` finds a check's
//! lines. `tracing-journald` was not used: it leaves the fields out of `MESSAGE=`, and a
//! `journalctl -p err` reader would then see `Configuration error.` without the file and key.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::layer::{Context, Layer};

use super::priority;
use crate::model::one_log_line;

/// journald's socket for native-protocol datagrams.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Journal fields an event's own field must not overwrite; such a field is sent as
/// `HEALTHD_<NAME>=` instead.
const RESERVED: &[&str] = &[
    "MESSAGE",
    "MESSAGE_ID",
    "PRIORITY",
    "ERRNO",
    "INVOCATION_ID",
    "USER_INVOCATION_ID",
    "DOCUMENTATION",
    "TID",
    "UNIT",
    "USER_UNIT",
];

/// A `tracing` layer writing every event to the journal.
pub struct JournalLayer {
    socket: UnixDatagram,
    path: PathBuf,
}

impl JournalLayer {
    /// Reach journald at [`SOCKET`].
    pub fn connect() -> io::Result<JournalLayer> {
        JournalLayer::at(Path::new(SOCKET))
    }

    /// Reach a journal socket at `path`; fails unless something receives there (journald
    /// discards the empty datagram sent to find out).
    pub fn at(path: &Path) -> io::Result<JournalLayer> {
        let socket = UnixDatagram::unbound()?;
        socket.send_to(&[], path)?;
        Ok(JournalLayer {
            socket,
            path: path.to_path_buf(),
        })
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let priority = priority(event.metadata().level());
        let mut message = String::new();
        if DefaultFields::new()
            .format_fields(Writer::new(&mut message), event)
            .is_err()
        {
            message = "(unformattable log event)".into();
        }
        // One line, as on stderr: field values carry text from outside. Each field's own
        // journal field keeps it as it was.
        let message = one_log_line(&message, false);
        let payload = entry(event, priority, &message);
        // Too large for a datagram, or journald gone: the line still reaches the journal
        // through stderr, with its priority.
        if self.socket.send_to(&payload, &self.path).is_err() {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "<{priority}>{message}");
        }
    }
}

/// The datagram for one event.
fn entry(event: &Event<'_>, priority: u8, message: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 + message.len());
    put(&mut buf, "PRIORITY", priority.to_string().as_bytes());
    put(&mut buf, "SYSLOG_IDENTIFIER", b"healthd");
    put(&mut buf, "MESSAGE", message.as_bytes());
    let meta = event.metadata();
    if let Some(file) = meta.file() {
        put(&mut buf, "CODE_FILE", file.as_bytes());
    }
    if let Some(line) = meta.line() {
        put(&mut buf, "CODE_LINE", line.to_string().as_bytes());
    }
    event.record(&mut FieldVisitor { buf: &mut buf });
    buf
}

/// One field in the journal export format.
fn put(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// A tracing field's journal name: upper case, `A-Z 0-9 _` only, not starting with `_` or a
/// digit, at most 64 bytes, and never one of journald's own fields.
fn field_name(name: &str) -> Option<String> {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = upper.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    if trimmed.is_empty() {
        return None;
    }
    let mut out = if RESERVED.contains(&trimmed)
        || trimmed.starts_with("CODE_")
        || trimmed.starts_with("SYSLOG_")
    {
        format!("HEALTHD_{trimmed}")
    } else {
        trimmed.to_string()
    };
    out.truncate(64);
    Some(out)
}

struct FieldVisitor<'a> {
    buf: &'a mut Vec<u8>,
}

impl FieldVisitor<'_> {
    fn put_field(&mut self, field: &Field, value: &[u8]) {
        // The message is in MESSAGE= already, with the fields.
        if field.name() == "message" {
            return;
        }
        if let Some(name) = field_name(field.name()) {
            put(self.buf, &name, value);
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_field(field, value.as_bytes());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put_field(field, format!("{value:?}").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Parse the journal export format back into fields.
    fn parse(mut data: &[u8]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        while !data.is_empty() {
            let end = data.iter().position(|b| *b == b'\n').expect("a line end");
            let line = &data[..end];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                out.insert(
                    String::from_utf8_lossy(&line[..eq]).into_owned(),
                    String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
                );
                data = &data[end + 1..];
            } else {
                let name = String::from_utf8_lossy(line).into_owned();
                let rest = &data[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                out.insert(
                    name,
                    String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
                );
                assert_eq!(rest[8 + len], b'\n');
                data = &rest[9 + len..];
            }
        }
        out
    }

    #[test]
    fn an_event_becomes_priority_message_and_one_field_per_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::at(&path).unwrap();
        let mut probe = [0u8; 16];
        assert_eq!(
            receiver.recv(&mut probe).unwrap(),
            0,
            "the empty probe datagram"
        );

        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                file = "probes.d/db.toml",
                key = "checks.\"db\".port",
                reason = "out of range",
                "Configuration error."
            );
            tracing::info!(check = %"db", detail = %"two\nlines", priority = 1, "Check status changed.");
        });

        let mut buf = vec![0u8; 65536];
        let n = receiver.recv(&mut buf).unwrap();
        let error = parse(&buf[..n]);
        assert_eq!(error["PRIORITY"], "3");
        assert_eq!(error["SYSLOG_IDENTIFIER"], "healthd");
        assert_eq!(
            error["MESSAGE"],
            "Configuration error. file=\"probes.d/db.toml\" key=\"checks.\\\"db\\\".port\" reason=\"out of range\""
        );
        assert_eq!(error["FILE"], "probes.d/db.toml");
        assert_eq!(error["KEY"], "checks.\"db\".port");
        assert_eq!(error["REASON"], "out of range");
        assert!(error["CODE_FILE"].ends_with("journal.rs"));
        assert!(!error.contains_key("message") && !error.contains_key("MESSAGE_ID"));

        let n = receiver.recv(&mut buf).unwrap();
        let info = parse(&buf[..n]);
        assert_eq!(info["PRIORITY"], "6");
        assert_eq!(info["CHECK"], "db");
        assert_eq!(
            info["DETAIL"], "two\nlines",
            "a multi-line value is length-prefixed"
        );
        assert!(
            !info["MESSAGE"].contains('\n') && info["MESSAGE"].contains("detail=two"),
            "MESSAGE= stays one line: {}",
            info["MESSAGE"]
        );
        // An event field may not overwrite journald's own (PRIORITY is still 6 above).
        assert_eq!(info["HEALTHD_PRIORITY"], "1");
    }

    #[test]
    fn field_names_follow_journal_rules() {
        assert_eq!(field_name("check").as_deref(), Some("CHECK"));
        assert_eq!(field_name("stall_after").as_deref(), Some("STALL_AFTER"));
        assert_eq!(field_name("a.b-c").as_deref(), Some("A_B_C"));
        assert_eq!(field_name("_x").as_deref(), Some("X"));
        assert_eq!(field_name("9lives").as_deref(), Some("LIVES"));
        assert_eq!(field_name("message").as_deref(), Some("HEALTHD_MESSAGE"));
        assert_eq!(
            field_name("code_line").as_deref(),
            Some("HEALTHD_CODE_LINE")
        );
        assert_eq!(field_name("__"), None);
        assert_eq!(field_name(&"x".repeat(100)).map(|n| n.len()), Some(64));
    }

    #[test]
    fn a_missing_journal_is_an_error_not_a_silent_sink() {
        let dir = tempfile::tempdir().unwrap();
        assert!(JournalLayer::at(&dir.path().join("nobody-listens")).is_err());
    }
}
