//! docs/probe.md documents every failure reason and every canary key the code knows.

use wsmon_probe::config::CANARY_KEYS;
use wsmon_probe::failure::FailureReason;

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/probe.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_failure_reason_has_a_row_in_docs_probe_md() {
    let doc = doc();
    for r in FailureReason::ALL {
        let row = format!(
            "| `{}` | {} |",
            r.as_str(),
            if r.ends_stream() { "yes" } else { "no" }
        );
        assert!(
            doc.contains(&row),
            "docs/probe.md lacks the row starting {row:?}"
        );
    }
}

#[test]
fn every_canary_key_is_documented() {
    let doc = doc();
    for key in CANARY_KEYS {
        assert!(
            doc.contains(&format!("| `{key}` |")) || doc.contains(&format!("| `{key}.")),
            "docs/probe.md does not document canary key {key:?}"
        );
    }
}

/// The series a daemon exports from the start, at `canaries` canaries shaped like `yaml`'s
/// one canary: counted in the text exposition (`text`), or from the collected families, which
/// is the same count without encoding millions of lines.
fn series_at_start(yaml: &str, canaries: usize, text: bool) -> usize {
    use std::sync::{Arc, RwLock};
    use wsmon_probe::record::metrics::{CanaryCollector, UpMeans};
    use wsmon_probe::record::recorder::CanaryRecorder;
    let config =
        wsmon_probe::config::Config::parse(yaml, std::path::Path::new("t.yaml"), &|_| None)
            .unwrap();
    let mut cfg = config.canaries[0].clone();
    let recorders: Vec<_> = (0..canaries)
        .map(|i| {
            cfg.name = format!("canary-{i}");
            Arc::new(CanaryRecorder::for_canary(
                &cfg,
                wsmon_probe::measure::Retention::Recent,
            ))
        })
        .collect();
    let registry = prometheus::Registry::new();
    let set = Arc::new(RwLock::new(recorders));
    registry
        .register(Box::new(CanaryCollector::new(set, UpMeans::Holding)))
        .unwrap();
    if text {
        return wsmon::export::prometheus::render(&registry)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
    }
    registry
        .gather()
        .iter()
        .flat_map(|f| {
            let histogram = f.get_field_type() == prometheus::proto::MetricType::HISTOGRAM;
            f.get_metric().iter().map(move |m| match histogram {
                // Each bucket, +Inf, _sum and _count.
                true => m.get_histogram().get_bucket().len() + 3,
                false => 1,
            })
        })
        .sum()
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Issue 12, defect 5: the figure docs/metrics.md gives for 10,000 canaries is measured, here.
#[test]
fn docs_metrics_md_gives_the_series_count_measured_at_ten_thousand_canaries() {
    const MINIMAL: &str = "canaries:\n  - name: m\n    url: ws://127.0.0.1:1/ws\n";
    const EVERY_CHECK: &str = "canaries:\n  - name: e\n    url: wss://127.0.0.1:1/ws\n    sequence: { pointer: /seq }\n    timestamp: { pointer: /ts }\n    max_silence: 10s\n    max_message_rate: 1000\n    heartbeat: { every: 15s }\n    head_check: { send: head, pointer: /seq, every: 30s, max_lag: 10 }\n    publish: { ws: { url: 'ws://127.0.0.1:1/p', send: '{{nonce}}' }, every: 10s, match: /nonce }\n    resume: { send: '{{last_seq}}' }\n";
    for yaml in [MINIMAL, EVERY_CHECK] {
        assert_eq!(
            series_at_start(yaml, 2, true),
            series_at_start(yaml, 2, false)
        );
    }
    let one = series_at_start(MINIMAL, 1, true);
    let minimal = series_at_start(MINIMAL, 10_000, false);
    let every = series_at_start(EVERY_CHECK, 10_000, false);
    assert_eq!(minimal, 10_000 * one, "the count is linear in canaries");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let sentence = format!(
        "at 10,000 canaries it exports {} series from the start with minimal canaries \
         (`name` and `url` only, {} each) and {} with every check configured",
        thousands(minimal),
        one,
        thousands(every),
    );
    assert!(
        doc.replace('\n', " ").contains(&sentence),
        "docs/metrics.md must say: {sentence}"
    );
}
