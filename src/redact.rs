//! Redaction by construction: credentials are scrubbed from every probe result in one place
//! (`scheduler::run_once`), so a kind added later is covered without doing anything.
//!
//! Scrubbed: the password of `scheme://user:password@host` URLs and DSNs, `password=…`
//! (and `passwd`, `pwd`, `token`, `secret`, `api_key`, `access_token`) in key/value DSNs and
//! query strings, and bearer tokens.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{LazyLock, OnceLock};

use regex::Regex;

use crate::model::Outcome;

/// What replaces a secret.
pub const MASK: &str = "***";

/// A pattern compiled on its first use. Not a `LazyLock<Regex>`: that dereferences to the
/// regex wherever a `&Regex` is expected, and so compiled all three patterns on the first
/// text scrubbed (7.6 M instructions and 300 KB of heap at every start, for `CPU 1% used`).
/// Only [`Pattern::regex`] compiles.
struct Pattern {
    source: &'static str,
    compiled: OnceLock<Regex>,
}

impl Pattern {
    const fn new(source: &'static str) -> Pattern {
        Pattern {
            source,
            compiled: OnceLock::new(),
        }
    }

    fn regex(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            Regex::new(self.source).unwrap_or_else(|e| unreachable!("static regex: {e}"))
        })
    }
}

static URL_PASSWORD: Pattern =
    Pattern::new(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):[^@\s/]*@");
static KEY_VALUE: Pattern = Pattern::new(
    r#"(?i)(?P<key>\b(?:password|passwd|pwd|pass|token|secret|api_?key|access_token|auth_token)\s*[=:]\s*)(?:'[^']*'|"[^"]*"|[^\s&;,'"]+)"#,
);
static BEARER: Pattern = Pattern::new(r"(?i)\b(?P<key>bearer\s+)[A-Za-z0-9._~+/=\-]+");

/// What replaces a URL's password, and a keyword's value.
static URL_MASKED: LazyLock<String> = LazyLock::new(|| format!("$head:{MASK}@"));
static KEY_MASKED: LazyLock<String> = LazyLock::new(|| format!("${{key}}{MASK}"));

/// Scrub credentials from one text.
pub fn text(s: &str) -> String {
    // One lowercase copy of the original decides for both keyword patterns: masking puts
    // `***` where a value was, so it never makes a keyword appear.
    let lower = folded(s);
    let lower = lower.as_deref();
    let s = scrub(
        Cow::Borrowed(s),
        may_hold_url_password(s),
        &URL_PASSWORD,
        &URL_MASKED,
    );
    let words = ["pass", "pwd", "token", "secret", "api"];
    let s = scrub(s, may_hold(lower, &words), &KEY_VALUE, &KEY_MASKED);
    scrub(s, may_hold(lower, &["bearer"]), &BEARER, &KEY_MASKED).into_owned()
}

/// `s` with `re`'s matches replaced, when `may_match` says there can be any (only then is
/// `re` compiled).
fn scrub<'a>(s: Cow<'a, str>, may_match: bool, re: &Pattern, with: &str) -> Cow<'a, str> {
    if may_match {
        Cow::Owned(re.regex().replace_all(&s, with).into_owned())
    } else {
        s
    }
}

/// Whether `s` can match [`URL_PASSWORD`]: most texts (every system check's message) cannot,
/// and skipping the regex spares the compilation of the patterns and the search on each result.
fn may_hold_url_password(s: &str) -> bool {
    s.contains("://") && s.contains('@')
}

/// `s` in lowercase for [`may_hold`]; `None` when it is not ASCII, and then every pattern
/// may match: Unicode case folding maps e.g. U+212A (Kelvin sign) to `k`.
fn folded(s: &str) -> Option<String> {
    s.is_ascii().then(|| s.to_ascii_lowercase())
}

/// Whether a text ([`folded`]) can match a case-insensitive pattern that needs one of
/// `words` (lowercase ASCII).
fn may_hold(folded: Option<&str>, words: &[&str]) -> bool {
    folded.is_none_or(|l| words.iter().any(|w| l.contains(w)))
}

/// Scrub an outcome's message and its string details.
pub fn outcome(mut o: Outcome) -> Outcome {
    o.message = text(&o.message);
    for v in o.details.values_mut() {
        if let serde_json::Value::String(s) = v {
            *s = text(s);
        }
    }
    o
}

/// Whether a file can be read by every user (mode `o+r`).
pub fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// Warn when a file holding a secret is world-readable.
pub fn warn_if_world_readable(path: &Path, what: &str) {
    if world_readable(path) {
        tracing::warn!(
            file = %path.display(),
            holds = what,
            "File holding a secret is world-readable; restrict it (chmod o-rwx)."
        );
    }
}

/// Whether config text sets a secret inline (`password = "…"`, `token = "…"`, a URL with a
/// password).
pub fn has_inline_secret(config_text: &str) -> bool {
    static INLINE: Pattern =
        Pattern::new(r#"(?im)^\s*(?:password|token|secret|api_key)\s*=\s*"[^"]+""#);
    (may_hold(
        folded(config_text).as_deref(),
        &["password", "token", "secret", "api_key"],
    ) && INLINE.regex().is_match(config_text))
        || (may_hold_url_password(config_text) && URL_PASSWORD.regex().is_match(config_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_dsns_lose_their_passwords() {
        let cases = [
            (
                "connect to postgres://app:s3cret@db:5432/x failed",
                "connect to postgres://app:***@db:5432/x failed",
            ),
            ("redis://:pa55@cache:6379", "redis://:***@cache:6379"),
            (
                "host=db user=app password=s3cret dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "password='a b c' sslmode=require",
                "password=*** sslmode=require",
            ),
            ("GET /x?token=abc123&y=1", "GET /x?token=***&y=1"),
            (
                "Authorization: Bearer eyJ.abc-def",
                "Authorization: Bearer ***",
            ),
            (
                "http://example.org/path answered 500",
                "http://example.org/path answered 500",
            ),
            ("user@host connected", "user@host connected"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input}");
        }
    }

    #[test]
    fn outcomes_are_scrubbed_in_message_and_details() {
        let o = Outcome::failed(
            crate::model::Reason::Auth,
            "postgres://u:p@h/d: auth failed",
        )
        .with_detail("dsn", "password=p host=h")
        .with_detail("code", 5);
        let o = outcome(o);
        assert_eq!(o.message, "postgres://u:***@h/d: auth failed");
        assert_eq!(o.details["dsn"], "password=*** host=h");
        assert_eq!(o.details["code"], 5);
    }

    #[test]
    fn world_readable_files_are_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "t").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(world_readable(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(!world_readable(&path));
        assert!(!world_readable(&dir.path().join("missing")));
    }

    #[test]
    fn inline_secrets_are_noticed() {
        assert!(has_inline_secret("[[checks]]\npassword = \"x\"\n"));
        assert!(has_inline_secret("url = \"postgres://a:b@h/d\"\n"));
        assert!(!has_inline_secret("password_file = \"/run/secret\"\n"));
        assert!(has_inline_secret("TOKEN = \"x\"\n"));
        assert!(!has_inline_secret("[[checks]]\nname = \"cpu\"\n"));
    }

    #[test]
    fn a_pattern_is_compiled_only_for_a_text_that_may_match() {
        let p = Pattern::new(r"s3cret");
        let plain = scrub(Cow::Borrowed("CPU 1% used"), false, &p, MASK);
        assert_eq!(plain, "CPU 1% used");
        assert!(
            p.compiled.get().is_none(),
            "compiled for a text that cannot match"
        );
        let masked = scrub(Cow::Borrowed("pw s3cret"), true, &p, MASK);
        assert_eq!(masked, "pw ***");
        assert!(p.compiled.get().is_some());
    }

    #[test]
    fn the_quick_test_before_each_pattern_misses_nothing() {
        let cases = [
            ("PassWord=s3cret", "PassWord=***"),
            ("API_KEY: abc", "API_KEY: ***"),
            ("authorization: BEARER abc", "authorization: BEARER ***"),
            ("HTTPS://u:p@h/", "HTTPS://u:***@h/"),
            // Unicode case folding: U+212A (Kelvin sign) is a `k` to the pattern.
            ("to\u{212A}en=abc", "to\u{212A}en=***"),
            ("CPU 90.9% used, above 90%", "CPU 90.9% used, above 90%"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input}");
        }
    }
}
