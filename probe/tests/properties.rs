//! Property tests of everything a config author or a server controls: the config loader, the
//! JSON-pointer extraction of sequences, timestamps and nonces, and the sequence tracker.
//!
//! Bounded for the normal test run; `scripts/fuzz.sh` runs them with `PROPTEST_CASES` set
//! much higher. A failure found is kept below as a plain regression test.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::Value;
use wsmon_probe::config::{Config, TimeUnit};
use wsmon_probe::measure::{self, SequenceDelta, SequenceTracker};
use wsmon_probe::record::recorder::CanaryRecorder;

/// `PROPTEST_CASES` if set (the fuzz script), else `default` (the normal test run).
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const GOOD: &str = include_str!("fixtures/config/good.yaml");
const FILE: &str = "fuzz/probe.yaml";

/// YAML-ish text: tokens of the config language (keys, values, indentation, flow syntax,
/// anchors, tags, `${VAR}`) in any order.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("canaries:".to_string()),
        Just("defaults:".to_string()),
        Just("listen: 127.0.0.1:0".to_string()),
        Just("\n".to_string()),
        Just("\n  - ".to_string()),
        Just("    ".to_string()),
        Just("name: c".to_string()),
        Just("url: ws://127.0.0.1:1/ws".to_string()),
        Just("sequence: { pointer: /seq }".to_string()),
        Just("heartbeat: { every: 1s }".to_string()),
        Just("max_message_bytes: ".to_string()),
        Just("max_message_rate: ".to_string()),
        Just("publish:".to_string()),
        Just("resume: { send: '{{last_seq}}' }".to_string()),
        Just("${WSMON_FUZZ}".to_string()),
        Just("$$".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!binary ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(": ".to_string()),
        Just(", ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("#".to_string()),
        Just("---\n".to_string()),
        "[0-9]{1,25}(us|ms|s|m|h|B|KiB|GiB|e99)?",
        "-?[0-9]+\\.[0-9]+",
        "\\PC{0,12}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// The good fixture with a few characters replaced, inserted or deleted.
fn mutated_good() -> impl Strategy<Value = String> {
    let edit = (any::<prop::sample::Index>(), 0u8..3, any::<char>());
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut chars: Vec<char> = GOOD.chars().collect();
        for (at, kind, c) in edits {
            let i = at.index(chars.len().max(1)).min(chars.len());
            match kind {
                0 if i < chars.len() => chars[i] = c,
                1 => chars.insert(i, c),
                _ if i < chars.len() => {
                    chars.remove(i);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

fn check_config(text: &str) {
    let env = |var: &str| (var == "WSMON_FUZZ").then(|| "x".to_string());
    if let Err(e) = Config::parse(text, Path::new(FILE), &env) {
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("{FILE}: ")),
            "the error does not name the file: {message:?}"
        );
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_text_loads_or_fails_with_an_error_naming_the_file(text in "\\PC{0,200}") {
        check_config(&text);
    }

    #[test]
    fn yamlish_text_loads_or_fails_with_an_error_naming_the_file(text in yamlish()) {
        check_config(&text);
    }

    #[test]
    fn a_mutated_good_config_loads_or_fails_with_an_error_naming_the_file(text in mutated_good()) {
        check_config(&text);
    }
}

/// Any JSON value, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(0u64), (u64::MAX - 3)..=u64::MAX].prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        any::<u64>().prop_map(|n| Value::String(n.to_string())),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z~/0-9]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON pointer: `/`-separated tokens, with RFC 6901 escapes and odd characters.
fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec("([a-z0-9]{0,3}|~0|~1|~|~2|\\PC{0,2})", 0..4)
        .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect())
}

/// `value` nested under `path` (object keys), with the pointer that reaches it.
fn nest(path: &[String], value: Value) -> (Value, String) {
    let mut v = value;
    for key in path.iter().rev() {
        v = Value::Object([(key.clone(), v)].into_iter().collect());
    }
    let pointer = path
        .iter()
        .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
        .collect();
    (v, pointer)
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn extraction_never_panics_and_reads_only_unsigned_integers(doc in json(), ptr in pointer()) {
        match measure::sequence_at(&doc, &ptr) {
            Ok(Some(n)) => {
                let found = doc.pointer(&ptr).expect("found");
                let ok = found.as_u64() == Some(n)
                    || found.as_str().and_then(|s| s.parse().ok()) == Some(n)
                    || found.as_f64().is_some_and(|f| f.fract() == 0.0 && f >= 0.0);
                prop_assert!(ok, "{n} from {found}");
            }
            Ok(None) => prop_assert!(doc.pointer(&ptr).is_none()),
            Err(e) => {
                prop_assert!(doc.pointer(&ptr).is_some());
                prop_assert!(e.0.chars().count() < 120, "bounded detail: {}", e.0);
            }
        }
        let _ = measure::text_at(&doc, &ptr);
        for unit in [TimeUnit::Seconds, TimeUnit::Millis, TimeUnit::Micros, TimeUnit::Nanos] {
            if let Some(f) = measure::freshness_seconds(SystemTime::now(), &doc, &ptr, unit) {
                prop_assert!(f.is_finite());
            }
        }
    }

    #[test]
    fn every_u64_is_read_back_as_a_number_or_a_string(
        n in prop_oneof![any::<u64>(), Just(u64::MAX), Just(0u64)],
        path in prop::collection::vec("\\PC{0,4}", 1..4),
        as_string in any::<bool>(),
    ) {
        let value = if as_string { Value::String(n.to_string()) } else { Value::from(n) };
        let (doc, ptr) = nest(&path, value);
        prop_assert_eq!(measure::sequence_at(&doc, &ptr), Ok(Some(n)));
    }

    #[test]
    fn any_server_timestamp_is_recorded_without_panicking(
        ts in prop_oneof![any::<f64>(), Just(f64::MAX), Just(-f64::MAX), Just(-1e300), Just(1e300)],
        unit in prop_oneof![Just(TimeUnit::Seconds), Just(TimeUnit::Millis), Just(TimeUnit::Nanos)],
    ) {
        let doc = serde_json::json!({ "ts": ts });
        let rec = CanaryRecorder::new("fuzz", String::new(), wsmon_probe::measure::Retention::Recent);
        if let Some(f) = measure::freshness_seconds(SystemTime::now(), &doc, "/ts", unit) {
            rec.freshness(f);
        }
    }
}

/// Sequences that hit the u64 edges often.
fn sequences() -> impl Strategy<Value = Vec<u64>> {
    let seq = prop_oneof![
        3 => 0u64..64,
        1 => (u64::MAX - 64)..=u64::MAX,
        1 => any::<u64>(),
    ];
    prop::collection::vec(seq, 0..64)
}

fn observe_all(t: &mut SequenceTracker, seqs: &[u64]) -> SequenceDelta {
    let mut sum = SequenceDelta::default();
    for s in seqs.iter().copied() {
        add(&mut sum, t.observe(s));
    }
    add(&mut sum, t.flush());
    sum
}

fn add(sum: &mut SequenceDelta, d: SequenceDelta) {
    sum.gaps = sum.gaps.saturating_add(d.gaps);
    sum.missed = sum.missed.saturating_add(d.missed);
    sum.duplicates += d.duplicates;
    sum.reorders += d.reorders;
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn the_tracker_never_panics_and_its_totals_are_the_sum_of_its_deltas(
        seqs in sequences(),
        window in 0u32..8,
    ) {
        let mut t = SequenceTracker::new(window);
        let sum = observe_all(&mut t, &seqs);
        prop_assert_eq!(t.totals(), sum);
        // Every confirmed gap misses at least one message.
        prop_assert!(sum.missed >= sum.gaps);
        // Each message is at most one of: a duplicate, a reorder.
        prop_assert!(sum.duplicates + sum.reorders <= seqs.len() as u64);
        prop_assert_eq!(t.last(), seqs.iter().copied().max());
    }

    #[test]
    fn in_an_increasing_stream_each_jump_is_one_gap_and_missed_is_the_sum_of_their_sizes(
        start in prop_oneof![0u64..10, (u64::MAX - 1000)..u64::MAX],
        steps in prop::collection::vec(1u64..20, 0..40),
        window in 0u32..8,
    ) {
        let mut seqs = vec![start];
        for step in &steps {
            match seqs.last().unwrap().checked_add(*step) {
                Some(next) => seqs.push(next),
                None => break,
            }
        }
        let jumps: Vec<u64> = seqs.windows(2).map(|w| w[1] - w[0] - 1).filter(|m| *m > 0).collect();
        let mut t = SequenceTracker::new(window);
        let sum = observe_all(&mut t, &seqs);
        prop_assert_eq!(sum.gaps, jumps.len() as u64);
        prop_assert_eq!(sum.missed, jumps.iter().sum::<u64>());
        prop_assert_eq!(sum.duplicates, 0);
        prop_assert_eq!(sum.reorders, 0);
    }

    #[test]
    fn neighbours_swapped_within_the_window_are_reorders_not_gaps(
        start in prop_oneof![0u64..10, (u64::MAX - 200)..(u64::MAX - 100)],
        len in 2usize..60,
        swaps in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        window in 1u32..8,
    ) {
        let mut seqs: Vec<u64> = (0..len as u64).map(|i| start + i).collect();
        // Swap disjoint neighbour pairs (i, i+1), never at the baseline.
        let mut swapped = vec![false; len];
        let mut count = 0u64;
        for at in swaps {
            let i = 1 + at.index(len - 1);
            if i + 1 < len && !swapped[i] && !swapped[i + 1] {
                seqs.swap(i, i + 1);
                swapped[i] = true;
                swapped[i + 1] = true;
                count += 1;
            }
        }
        let mut t = SequenceTracker::new(window);
        let sum = observe_all(&mut t, &seqs);
        prop_assert_eq!(sum, SequenceDelta { reorders: count, ..SequenceDelta::default() });
    }

    #[test]
    fn a_repeat_of_a_delivered_sequence_is_one_duplicate(
        start in prop_oneof![0u64..10, (u64::MAX - 100)..(u64::MAX - 50)],
        len in 1u64..40,
        again in any::<prop::sample::Index>(),
    ) {
        let mut seqs: Vec<u64> = (start..start + len).collect();
        seqs.push(seqs[again.index(seqs.len())]);
        let mut t = SequenceTracker::new(4);
        let sum = observe_all(&mut t, &seqs);
        prop_assert_eq!(sum, SequenceDelta { duplicates: 1, ..SequenceDelta::default() });
    }
}

#[test]
fn the_empty_config_is_an_error_naming_the_file() {
    check_config("");
    assert!(Config::parse("", Path::new(FILE), &|_| None).is_err());
}

// Regressions: failures the properties above found, kept as plain tests.

#[test]
fn regression_the_sequence_after_u64_max_does_not_overflow() {
    // Found by the_tracker_never_panics...: `h + 1` overflowed when h was u64::MAX.
    let mut t = SequenceTracker::new(4);
    t.observe(u64::MAX);
    assert_eq!(t.observe(u64::MAX).duplicates, 1);
    assert_eq!(t.observe(0).duplicates, 1);
}

#[test]
fn regression_totals_saturate_instead_of_overflowing() {
    // Found by the_tracker_never_panics...: two 0 -> u64::MAX jumps overflowed `missed`.
    let mut t = SequenceTracker::new(0);
    for _ in 0..2 {
        t.observe(0);
        t.observe(u64::MAX);
        t.new_baseline();
    }
    assert_eq!(t.totals().missed, u64::MAX);
    assert_eq!(t.totals().gaps, 2);
}

#[test]
fn regression_a_timestamp_from_before_time_is_recorded_without_panicking() {
    // Found by any_server_timestamp...: Duration::from_secs_f64 panicked on 4.4e204 seconds,
    // with the recorder's lock held.
    let doc = serde_json::json!({ "ts": -4.4464748418869283e204 });
    let f = measure::freshness_seconds(SystemTime::now(), &doc, "/ts", TimeUnit::Seconds).unwrap();
    let rec = CanaryRecorder::new(
        "fuzz",
        String::new(),
        wsmon_probe::measure::Retention::Recent,
    );
    rec.freshness(f);
    rec.freshness(1.0);
    assert_eq!(rec.snapshot().freshness.count(), 2);
}

#[test]
fn freshness_durations_round_trip_for_ordinary_timestamps() {
    let now = SystemTime::now();
    let ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as f64 - 1500.0;
    let doc = serde_json::json!({ "ts": ms });
    let f = measure::freshness_seconds(now, &doc, "/ts", TimeUnit::Millis).unwrap();
    assert!((f - 1.5).abs() < 0.01, "{f}");
    let _ = Duration::from_secs_f64(f);
}
