//! Length limits on config strings. Hosts, URLs, headers, queries and paths are echoed in
//! messages, logs, `/health` and metrics; a 50 MB value must be refused at validation, not
//! copied into every one of them.

use super::problems::Problems;
use super::recover::join_key;

/// The longest string value any key accepts, in bytes.
pub const MAX_STRING_BYTES: usize = 4096;

/// Report every string under `value` (at key path `at`) longer than [`MAX_STRING_BYTES`],
/// and cut it to that length so that no later message can echo more.
pub(crate) fn refuse_long_strings(
    value: &mut toml::Value,
    at: &str,
    file: &str,
    problems: &mut Problems,
) {
    match value {
        toml::Value::String(s) if s.len() > MAX_STRING_BYTES => {
            problems.push(
                file,
                at,
                format!(
                    "too long: {} bytes (a value is at most {MAX_STRING_BYTES} bytes)",
                    s.len()
                ),
            );
            let mut end = MAX_STRING_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                refuse_long_strings(item, &format!("{at}[{i}]"), file, problems);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let key = if key.len() > MAX_STRING_BYTES {
                    problems.push(file, at, format!("a key is too long: {} bytes (a key is at most {MAX_STRING_BYTES} bytes)", key.len()));
                    continue;
                } else {
                    join_key(at, key)
                };
                refuse_long_strings(item, &key, file, problems);
            }
        }
        _ => {}
    }
}
