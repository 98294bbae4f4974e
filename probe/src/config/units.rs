//! Durations, sizes and strings in the config's own notation, both ways.

use std::time::Duration;

use wsmon::Secret;

/// Formats a duration in the config's own notation.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}us", d.as_micros());
    }
    if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `500ms`, `5s`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Parses `1MiB`, `64KiB`, `1GiB`, `1MB`, `512B` or a plain byte count.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    usize::try_from(value.checked_mul(mult)?).ok()
}

/// A string as `check` and error messages show it: JSON-quoted, so YAML reads it back as is.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Headers as `check` shows them: names as written, values (secrets) as `***`.
pub(super) fn show_headers(headers: &[(String, Secret)]) -> String {
    let h: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{}: {}", quote(k), quote(&v.to_string())))
        .collect();
    format!("{{ {} }}", h.join(", "))
}

// How `check` shows a single value; `Option` so that tables can pass them as a key's `show`.

pub(super) fn show_duration(d: &Duration) -> Option<String> {
    Some(fmt_duration(*d))
}

pub(super) fn show_quoted(s: &str) -> Option<String> {
    Some(quote(s))
}

/// Numbers and booleans, as YAML reads them back.
pub(super) fn show_plain(v: &impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// A list of strings, or nothing when it is empty.
pub(super) fn show_strings(items: &[String]) -> Option<String> {
    let s: Vec<String> = items.iter().map(|s| quote(s)).collect();
    (!items.is_empty()).then(|| format!("[{}]", s.join(", ")))
}
