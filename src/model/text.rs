//! Text for humans: one-line messages and error chains.

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
    fn error_chain_skips_repeats() {
        let inner = std::io::Error::other("refused");
        let outer = std::io::Error::other(format!("connect: {inner}"));
        assert_eq!(error_chain(&outer), "connect: refused");
    }
}
