//! Redaction by construction: credentials are scrubbed from every probe result in one place
//! (`scheduler::run_once`), so a kind added later is covered without doing anything.
//!
//! Scrubbed: the password of `scheme://user:password@host` URLs and DSNs, `password=…`
//! (and `passwd`, `pwd`, `token`, `secret`, `api_key`, `access_token`) in key/value DSNs and
//! query strings, and bearer tokens.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::model::Outcome;

/// What replaces a secret.
pub const MASK: &str = "***";

static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):[^@\s/]*@")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?P<key>\b(?:password|passwd|pwd|pass|token|secret|api_?key|access_token|auth_token)\s*[=:]\s*)(?:'[^']*'|"[^"]*"|[^\s&;,'"]+)"#,
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<key>bearer\s+)[A-Za-z0-9._~+/=\-]+")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Scrub credentials from one text.
pub fn text(s: &str) -> String {
    let s = URL_PASSWORD.replace_all(s, format!("$head:{MASK}@").as_str());
    let s = KEY_VALUE.replace_all(&s, format!("${{key}}{MASK}").as_str());
    let s = BEARER.replace_all(&s, format!("${{key}}{MASK}").as_str());
    s.into_owned()
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
    static INLINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?im)^\s*(?:password|token|secret|api_key)\s*=\s*"[^"]+""#)
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    INLINE.is_match(config_text) || URL_PASSWORD.is_match(config_text)
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
    }
}
