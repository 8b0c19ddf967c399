//! libpq connection strings: taking out what tokio-postgres cannot parse itself.

use std::fmt::Write as _;

/// Take `sslmode` and `sslrootcert` out of a URL or key/value DSN (tokio-postgres knows
/// only disable/prefer/require); returns the rest and the taken pairs.
pub(super) fn split_tls_params(dsn: &str) -> Result<(String, Vec<(String, String)>), String> {
    const TAKEN: [&str; 2] = ["sslmode", "sslrootcert"];
    let mut taken = Vec::new();
    let trimmed = dsn.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else {
            return Ok((trimmed.to_string(), taken));
        };
        let mut kept = form_urlencoded::Serializer::new(String::new());
        let mut any = false;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if TAKEN.contains(&k.as_ref()) {
                taken.push((k.into_owned(), v.into_owned()));
            } else {
                kept.append_pair(&k, &v);
                any = true;
            }
        }
        let rest = if any {
            format!("{base}?{}", kept.finish())
        } else {
            base.to_string()
        };
        return Ok((rest, taken));
    }
    let mut rest = String::new();
    for (k, v) in parse_key_values(trimmed)? {
        if TAKEN.contains(&k.as_str()) {
            taken.push((k, v));
        } else {
            let quoted = v.replace('\\', "\\\\").replace('\'', "\\'");
            let _ = write!(rest, "{k}='{quoted}' ");
        }
    }
    Ok((rest.trim_end().to_string(), taken))
}

/// Parse libpq's `key=value key='quoted value'` form. Errors never echo a value.
pub(super) fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            // The stray word could be a password: never echo it.
            return Err("a word without \"=\" (use a postgres:// URL or key=value pairs such as \"host=db user=app\")".into());
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted value of {key}")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value of {key}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}
