//! Nagios plugin output: the message (the first line, before `|`) and the performance data
//! (`'label'=value[UOM];warn;crit;min;max`, after `|` on the first line and after the first
//! `|` of the long output), as the Nagios plugin guidelines define them.

use crate::model::Perfdata;

/// Split plugin output into its first line (without perfdata) and the perfdata items.
pub fn split(output: &str) -> (String, Vec<Perfdata>) {
    let mut lines = output.lines();
    let first = lines.next().unwrap_or("");
    let (message, mut perf) = match first.split_once('|') {
        Some((m, p)) => (m.trim().to_string(), p.to_string()),
        None => (first.trim().to_string(), String::new()),
    };
    // Long output: text lines, then `| perfdata` on one of them; every line after that
    // holds perfdata too.
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf.push(' ');
            perf.push_str(line);
        } else if let Some((_, p)) = line.split_once('|') {
            in_perf = true;
            perf.push(' ');
            perf.push_str(p);
        }
    }
    (message, parse(&perf))
}

/// Parse perfdata items; items that do not parse (or whose value is `U`) are skipped.
pub fn parse(text: &str) -> Vec<Perfdata> {
    tokens(text).iter().filter_map(|t| item(t)).collect()
}

/// Items separated by spaces; a quoted label may hold spaces (`''` is a quote).
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn item(token: &str) -> Option<Perfdata> {
    let (label, rest) = token.rsplit_once('=')?;
    if label.is_empty() {
        return None;
    }
    let mut fields = rest.split(';');
    let value_uom = fields.next()?;
    let split_at = value_uom
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(value_uom.len());
    let (number, uom) = value_uom.split_at(split_at);
    let value: f64 = number.parse().ok()?;
    let (factor, unit) = base_unit(uom);
    let text = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<f64>().ok()).map(|v| v * factor);
    let (warn, crit) = (text(fields.next()), text(fields.next()));
    let (min, max) = (num(fields.next()), num(fields.next()));
    Some(Perfdata {
        label: label.to_string(),
        value: value * factor,
        unit,
        warn,
        crit,
        min,
        max,
    })
}

/// The factor to base units and the unit after conversion: times to seconds, sizes to
/// bytes (KB, MB, GB, TB as powers of 1024, as the monitoring plugins compute them).
fn base_unit(uom: &str) -> (f64, String) {
    const K: f64 = 1024.0;
    match uom {
        "s" => (1.0, "s".into()),
        "ms" => (1e-3, "s".into()),
        "us" => (1e-6, "s".into()),
        "B" => (1.0, "B".into()),
        "KB" | "kB" => (K, "B".into()),
        "MB" => (K * K, "B".into()),
        "GB" => (K * K * K, "B".into()),
        "TB" => (K * K * K * K, "B".into()),
        other => (1.0, other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_perfdata_of_check_disk_style_output() {
        let out = "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n";
        let (msg, perf) = split(out);
        assert_eq!(msg, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(perf.len(), 1);
        let p = &perf[0];
        assert_eq!(p.label, "/");
        assert_eq!(p.value, 2643.0 * 1024.0 * 1024.0);
        assert_eq!(p.unit, "B");
        assert_eq!(p.warn.as_deref(), Some("5948"));
        assert_eq!(p.max, Some(5968.0 * 1024.0 * 1024.0));
    }

    #[test]
    fn quoted_labels_units_and_long_output() {
        let out = "OK - 2 things | 'time taken'=12ms;100;200 'it''s'=5%\nmore text\n\
                   still text | rx=10c\ntx=U count=3";
        let (msg, perf) = split(out);
        assert_eq!(msg, "OK - 2 things");
        let labels: Vec<&str> = perf.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["time taken", "it's", "rx", "count"]);
        assert!((perf[0].value - 0.012).abs() < 1e-12);
        assert_eq!(perf[0].unit, "s");
        assert_eq!(perf[1].unit, "%");
        assert_eq!(perf[2].unit, "c");
        assert_eq!(perf[3].unit, "");
    }
}
