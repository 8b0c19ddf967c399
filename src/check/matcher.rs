//! What a body or banner must hold: a substring or a regular expression, and the
//! validation of a regex key.

use crate::model::one_line;

/// A body/banner matcher: a substring or a regular expression.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Contains(String),
    Regex(regex::Regex),
}

impl Matcher {
    pub(crate) fn new(
        contains: &Option<String>,
        regex: &Option<String>,
    ) -> Result<Option<Matcher>, String> {
        match (contains, regex) {
            (Some(s), _) => Ok(Some(Matcher::Contains(s.clone()))),
            (None, Some(r)) => regex::Regex::new(r)
                .map(|r| Some(Matcher::Regex(r)))
                .map_err(|e| format!("invalid regex: {e}")),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Contains(s) => text.contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(text),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Matcher::Contains(s) => format!("\"{}\"", one_line(s)),
            Matcher::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

/// Validate a regex field, adding a problem if it does not compile.
pub(crate) fn validate_regex(
    key: &str,
    regex: &Option<String>,
    problems: &mut Vec<(String, String)>,
) {
    if let Some(r) = regex
        && let Err(e) = regex::Regex::new(r)
    {
        // regex's syntax errors span several lines (pattern, caret, "error: ..."); keep the
        // pattern and the last line.
        let text = e.to_string();
        let what = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| one_line(&text));
        problems.push((key.into(), format!("invalid regex \"{r}\": {what}")));
    }
}
