//! Text for humans: one-line messages, error chains, and text from outside made safe to
//! print.

use std::fmt::Write as _;

/// Most bytes of a check's message kept in the snapshot (and so in `/health`, logs,
/// metrics and notifications).
pub const MAX_MESSAGE: usize = 1024;

/// Shorten a message to one line of reasonable length.
pub fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        let mut short: String = line.chars().take(197).collect();
        short.push_str("...");
        short
    } else {
        line
    }
}

/// Characters that must not reach a terminal or a log as they are: control characters
/// (newline, ESC, DEL, C1 codes) and Unicode direction overrides.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Text from outside (a peer's answer, a config value, a file name) made safe to print on
/// one line of a terminal or a log: control characters and direction overrides become
/// escapes (`\n`, `\u{1b}`), and at most `max` bytes are kept, the rest replaced by
/// `…(N more bytes)`.
pub fn printable(text: &str, max: usize) -> String {
    if text.len() <= max && !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::new();
    for (at, c) in text.char_indices() {
        let before = out.len();
        push_escaped(&mut out, c);
        if out.len() > max {
            out.truncate(before);
            let _ = write!(out, "…({} more bytes)", text.len() - at);
            break;
        }
    }
    out
}

/// One formatted log event kept on one line: every control character is escaped except
/// the final newline and, when `colours`, the formatter's own colour codes (`ESC [ … m`,
/// which only change the colour). Whatever a field holds, it cannot start a line of its own.
pub fn one_log_line(event: &str, colours: bool) -> String {
    let (body, end) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    if !body.chars().any(needs_escape) {
        return event.to_string();
    }
    let mut out = String::with_capacity(event.len() + 16);
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if colours && c == '\u{1b}' {
            let sgr = rest[1..]
                .strip_prefix('[')
                .and_then(|r| {
                    r.find(|c: char| !(c.is_ascii_digit() || c == ';'))
                        .map(|n| (r, n))
                })
                .filter(|(r, n)| r[*n..].starts_with('m'))
                .map(|(_, n)| n + 3);
            if let Some(len) = sgr {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        push_escaped(&mut out, c);
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(end);
    out
}

/// Whether `text` holds any of `words` (callers lower-case both).
pub fn mentions_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// An error and its causes, `a: b: c`, leaving out a cause whose text an earlier one holds.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !chain.iter().any(|c| c.contains(&text)) {
            chain.push(text);
        }
        source = s.source();
    }
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_folds_and_shortens() {
        assert_eq!(one_line(" a\n b\tc "), "a b c");
        let long = "x".repeat(300);
        assert_eq!(one_line(&long).chars().count(), 200);
    }

    #[test]
    fn printable_escapes_controls_and_bounds_length() {
        assert_eq!(printable("plain text", 100), "plain text");
        assert_eq!(
            printable("a\nok: 9 check(s)\u{1b}[31m\u{202e}", 100),
            "a\\nok: 9 check(s)\\u{1b}[31m\\u{202e}"
        );
        let long = "x".repeat(5000);
        let short = printable(&long, 100);
        assert_eq!(short, format!("{}…(4900 more bytes)", "x".repeat(100)));
        // Never cuts inside a character.
        assert_eq!(printable("ééé", 3), "é…(4 more bytes)");
    }

    #[test]
    fn a_log_event_stays_on_one_line() {
        let event =
            "\u{1b}[2mtime\u{1b}[0m \u{1b}[33mWARN\u{1b}[0m file=x\nFORGED \u{1b}]0;t\u{7}\n";
        assert_eq!(
            one_log_line(event, true),
            "\u{1b}[2mtime\u{1b}[0m \u{1b}[33mWARN\u{1b}[0m file=x\\nFORGED \\u{1b}]0;t\\u{7}\n"
        );
        assert_eq!(one_log_line("a\u{1b}[31mb\n", false), "a\\u{1b}[31mb\n");
        assert_eq!(one_log_line("plain\n", false), "plain\n");
    }

    #[test]
    fn error_chain_skips_repeats() {
        let inner = std::io::Error::other("refused");
        let outer = std::io::Error::other(format!("connect: {inner}"));
        assert_eq!(error_chain(&outer), "connect: refused");
    }
}
