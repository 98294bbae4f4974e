//! Reading measured values out of a message: JSON parsing, sequence, text and timestamp
//! at a JSON pointer.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::TimeUnit;

/// Reads an unsigned sequence (a JSON number or numeric string) at `pointer`.
pub fn u64_at(value: &Value, pointer: &str) -> Option<u64> {
    sequence_at(value, pointer).ok().flatten()
}

/// The sequence at `pointer`: `Ok(None)` when absent, `Err` (saying what was found) when
/// present but not an unsigned 64-bit integer, so a broken sequence is reported, not ignored.
pub fn sequence_at(value: &Value, pointer: &str) -> Result<Option<u64>, InvalidSequence> {
    let Some(found) = value.pointer(pointer) else {
        return Ok(None);
    };
    let seq = match found {
        Value::Number(n) => n.as_u64().or_else(|| {
            // 2^64 as f64: anything at or above it would saturate silently.
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 18_446_744_073_709_551_616.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    seq.map(Some)
        .ok_or_else(|| InvalidSequence::describe(found))
}

/// What stood where a sequence number should be (kind and a short preview, never a label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSequence(pub String);

impl InvalidSequence {
    const PREVIEW_CHARS: usize = 32;

    fn describe(found: &Value) -> Self {
        let kind = match found {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number that is not an unsigned 64-bit integer",
            Value::String(_) => "a string that is not an unsigned 64-bit integer",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        let preview: String = found
            .to_string()
            .chars()
            .take(Self::PREVIEW_CHARS)
            .collect();
        Self(format!("{kind} ({preview})"))
    }
}

/// Why a message was not measured as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonRefusal {
    /// Not JSON at all: such messages count but are not otherwise measured.
    NotJson,
    /// Nested past serde_json's recursion limit (128): refused without deep recursion.
    TooDeep,
}

/// Parses a message for measurement. Parsing is bounded twice over: the message is already
/// capped at `max_message_bytes`, and serde_json refuses nesting deeper than 128.
pub fn parse_json(text: &str) -> Result<Value, JsonRefusal> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json has no public error code for this; its message is stable.
        if e.to_string().starts_with("recursion limit exceeded") {
            JsonRefusal::TooDeep
        } else {
            JsonRefusal::NotJson
        }
    })
}

/// Reads the value at `pointer` as text, for nonce and reply matching.
pub fn text_at(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Receive time minus the server's timestamp at `pointer`, in seconds. Negative when the
/// server's clock is ahead of ours: freshness from a server timestamp includes clock skew.
pub fn freshness_seconds(
    received: SystemTime,
    value: &Value,
    pointer: &str,
    unit: TimeUnit,
) -> Option<f64> {
    let ts = match value.pointer(pointer)? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    let ts_secs = match unit {
        TimeUnit::Seconds => ts,
        TimeUnit::Millis => ts / 1e3,
        TimeUnit::Micros => ts / 1e6,
        TimeUnit::Nanos => ts / 1e9,
    };
    let now = received.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    let f = now - ts_secs;
    f.is_finite().then_some(f)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn freshness_is_receive_time_minus_timestamp_in_any_unit() {
        let recv = UNIX_EPOCH + Duration::from_millis(10_250);
        let v: Value =
            serde_json::json!({"ts": 10_000, "s": 10.0, "us": 10_000_000u64, "str": "10000"});
        let f = |p, u| freshness_seconds(recv, &v, p, u).unwrap();
        assert!((f("/ts", TimeUnit::Millis) - 0.25).abs() < 1e-9);
        assert!((f("/s", TimeUnit::Seconds) - 0.25).abs() < 1e-9);
        assert!((f("/us", TimeUnit::Micros) - 0.25).abs() < 1e-9);
        assert!((f("/str", TimeUnit::Millis) - 0.25).abs() < 1e-9);
        assert_eq!(
            freshness_seconds(recv, &v, "/missing", TimeUnit::Millis),
            None
        );
    }

    #[test]
    fn a_server_clock_ahead_gives_negative_freshness() {
        let recv = UNIX_EPOCH + Duration::from_secs(10);
        let v = serde_json::json!({"ts": 11_000});
        assert!(freshness_seconds(recv, &v, "/ts", TimeUnit::Millis).unwrap() < 0.0);
    }

    #[test]
    fn sequences_read_from_numbers_and_numeric_strings() {
        let v = serde_json::json!({"a": 5, "b": "6", "c": -1, "d": 1.5, "e": {"f": 7}});
        assert_eq!(u64_at(&v, "/a"), Some(5));
        assert_eq!(u64_at(&v, "/b"), Some(6));
        assert_eq!(u64_at(&v, "/c"), None);
        assert_eq!(u64_at(&v, "/d"), None);
        assert_eq!(u64_at(&v, "/e/f"), Some(7));
    }

    #[test]
    fn a_present_sequence_that_is_not_a_u64_is_invalid_and_an_absent_one_is_not() {
        let v = serde_json::json!({
            "neg": -1, "frac": 1.5, "big": 1e20, "word": "abc", "null": null,
            "list": [1], "obj": {}, "flag": true, "max": u64::MAX, "maxs": "18446744073709551615"
        });
        assert_eq!(sequence_at(&v, "/absent"), Ok(None));
        assert_eq!(sequence_at(&v, "/max"), Ok(Some(u64::MAX)));
        assert_eq!(sequence_at(&v, "/maxs"), Ok(Some(u64::MAX)));
        for bad in [
            "/neg", "/frac", "/big", "/word", "/null", "/list", "/obj", "/flag",
        ] {
            assert!(sequence_at(&v, bad).is_err(), "{bad}");
        }
        let long = serde_json::json!({ "s": "x".repeat(1000) });
        assert!(sequence_at(&long, "/s").unwrap_err().0.len() < 100);
    }

    #[test]
    fn json_nested_past_the_recursion_limit_is_too_deep_not_merely_not_json() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_json(&deep).unwrap_err(), JsonRefusal::TooDeep);
        assert_eq!(parse_json("{not json").unwrap_err(), JsonRefusal::NotJson);
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_json(&ok).is_ok());
    }
}
