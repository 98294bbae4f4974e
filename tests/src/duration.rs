//! Prometheus durations (`90s`, `5m`, `1h30m`), for the `for:` transformation of the live test.

use std::time::Duration;

/// Parses a Prometheus duration: one or more `<number><unit>` with units ms, s, m, h, d, w, y.
pub fn parse(text: &str) -> Option<Duration> {
    let mut total_ms: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(ms_per_unit)?)?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(total_ms))
}

/// Formats a duration the way Prometheus reads it, in whole milliseconds.
pub fn format(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_durations() {
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("3d"), Some(Duration::from_secs(3 * 86400)));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "m", "10", "10x", "1.5m", "-1m"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_whole_seconds_and_milliseconds() {
        assert_eq!(format(Duration::from_secs(10)), "10s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }
}
