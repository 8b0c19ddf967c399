//! Serde stops at the first error; an operator wants them all, each with its key path. These
//! helpers deserialize again with each offending key set aside, and put serde's words into
//! an operator's.

use serde::Deserialize;

use super::problems::Problems;

/// Deserialize `[name]` from the root, reporting problems with their key path.
pub(crate) fn section<T>(root: &toml::Table, name: &str, file: &str, problems: &mut Problems) -> T
where
    T: for<'de> Deserialize<'de> + Default,
{
    let Some(value) = root.get(name) else {
        return T::default();
    };
    let mut found = Vec::new();
    // What is left once the bad keys are set aside is still validated as a whole, so
    // its problems show too.
    let parsed = deserialize_rest::<T>(value.clone(), &[], &mut found);
    for (path, reason) in found {
        problems.push(file, join_key(name, &path), reason);
    }
    parsed.unwrap_or_default()
}

/// The reason given for a required key that is absent.
pub(crate) const MISSING: &str = "missing (required)";

/// Deserialize a table reporting every bad key, not only the first: after each error the
/// offending key is set aside and the rest deserialized again. A key inside a nested table
/// (`limits.max_connections` of `[server]`) is set aside on its own, so the other keys of
/// that table are still checked. Keys in `keep` are never set aside (e.g. `kind`). Returns
/// the value only when there was no problem.
pub(crate) fn deserialize_all<T>(
    value: toml::Value,
    keep: &[&str],
    found: &mut Vec<(String, String)>,
) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    let before = found.len();
    deserialize_rest(value, keep, found).filter(|_| found.len() == before)
}

/// [`deserialize_all`], returning what is left once the bad keys are set aside (if that
/// deserializes), even when there were problems.
fn deserialize_rest<T>(
    value: toml::Value,
    keep: &[&str],
    found: &mut Vec<(String, String)>,
) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    let toml::Value::Table(mut table) = value else {
        return match deserialize_at::<T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                found.push(e);
                None
            }
        };
    };
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..=count_keys(&table) {
        let (path, reason) = match deserialize_at::<T>(toml::Value::Table(table.clone())) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        // Setting a key aside made a required one "missing": that is not a new problem,
        // but its whole section has to go to see past it.
        if reason == MISSING && removed.contains(&path) {
            match first_segment(&path) {
                Some(top) if top != path && !keep.contains(&top) => {
                    table.remove(top);
                    continue;
                }
                _ => break,
            }
        }
        if path.contains('.') && set_aside_nested(&mut table, &path) {
            found.push((path.clone(), reason));
            removed.push(path);
            continue;
        }
        let key = match first_segment(&path) {
            Some(k) => Some(k.to_string()),
            None => culprit::<T>(&table, keep, &path, &reason),
        };
        let path = match (&key, path.is_empty()) {
            (Some(k), true) => k.clone(),
            _ => path,
        };
        found.push((path, reason));
        match key {
            Some(k) if !keep.contains(&k.as_str()) && table.remove(&k).is_some() => removed.push(k),
            _ => break,
        }
    }
    None
}

/// Keys in a table and every table inside it: a bound on how many can be set aside.
fn count_keys(table: &toml::Table) -> usize {
    table
        .values()
        .map(|v| 1 + v.as_table().map_or(0, count_keys))
        .sum()
}

/// Remove the key a dotted path such as `limits.max_connections` names inside nested
/// tables; false if the path does not lead through tables to an existing key.
fn set_aside_nested(table: &mut toml::Table, path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut t = table;
    for part in parts {
        match t.get_mut(part) {
            Some(toml::Value::Table(inner)) => t = inner,
            _ => return false,
        }
    }
    t.remove(last).is_some()
}

/// The top-level key of a path such as `headers.x` or `groups[1]`.
fn first_segment(path: &str) -> Option<&str> {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    (end > 0).then(|| &path[..end])
}

/// Serde loses the key path inside internally tagged enums (the check kinds); find the key
/// whose removal changes the error.
fn culprit<T>(table: &toml::Table, keep: &[&str], path: &str, reason: &str) -> Option<String>
where
    T: for<'de> Deserialize<'de>,
{
    table
        .keys()
        .filter(|k| !keep.contains(&k.as_str()))
        .find(|k| {
            let mut without = table.clone();
            without.remove(k.as_str());
            match deserialize_at::<T>(toml::Value::Table(without)) {
                Ok(_) => true,
                Err((p, r)) => p != path || r != reason,
            }
        })
        .cloned()
}

/// Deserialize with the failing key path and a reason, serde's error split in two.
fn deserialize_at<T>(value: toml::Value) -> Result<T, (String, String)>
where
    T: for<'de> Deserialize<'de>,
{
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        // The bare message: the full Display adds an "in `key`" line we show as the path.
        let mut reason = e.inner().message().trim().to_string();
        // serde may report an unknown field at its parent; name the field itself, once.
        if let Some(rest) = reason.strip_prefix("unknown field `")
            && let Some((field, expected)) = rest.split_once('`')
        {
            if path != field && !path.ends_with(&format!(".{field}")) {
                path = join_key(&path, field);
            }
            reason = format!("unknown key{}", expected.replace('`', "\""));
        }
        // A required key that is absent: name the key itself.
        if let Some(field) = reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split_once('`'))
            .map(|(f, _)| f.to_string())
        {
            path = join_key(&path, &field);
            reason = MISSING.to_string();
        }
        // A negative count: the number is the problem, not its type.
        if let Some(rest) = reason.strip_prefix("invalid value: integer `")
            && let Some((n, expected)) = rest.split_once('`')
            && [", expected u64", ", expected u32", ", expected usize"].contains(&expected)
        {
            reason = format!("out of range: {n} (expected a whole number, 0 or more)");
        }
        // Rust type names mean nothing to an operator.
        for (rust, words) in [
            ("expected f64", "expected a number"),
            ("expected u64", "expected a whole number"),
            ("expected u32", "expected a whole number"),
            ("expected u16", "expected a whole number"),
            ("expected usize", "expected a whole number"),
            ("expected i64", "expected a whole number"),
            ("expected a sequence", "expected a list"),
        ] {
            if let Some(head) = reason.strip_suffix(rust) {
                reason = format!("{head}{words}");
            }
        }
        if let Some(rest) = reason.strip_prefix("unknown variant `")
            && let Some((variant, expected)) = rest.split_once('`')
        {
            reason = format!("unknown value \"{variant}\"{}", expected.replace('`', "\""));
        }
        (path, reason)
    })
}

pub(crate) fn join_key(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ => format!("{parent}.{child}"),
    }
}
