//! The tables read, reject and show what the docs say.

use std::path::Path;
use std::time::Duration;

use crate::config::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("t.yaml"), &|v| {
        (v == "TOKEN").then(|| "s3cret".to_string())
    })
}

#[test]
fn durations_and_sizes_read_like_the_docs() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("5 parsecs"), None);
    assert_eq!(parse_size("1MiB"), Some(1 << 20));
    assert_eq!(parse_size("64KiB"), Some(65536));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("1XB"), None);
    assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
}

#[test]
fn env_substitution_fills_secrets_and_redacts_them() {
    let c = parse(
        "canaries:\n  - name: a\n    url: ws://u:${TOKEN}@h/ws?key=${TOKEN}\n    headers: { Authorization: \"Bearer ${TOKEN}\" }\n",
    )
    .unwrap();
    let a = &c.canaries[0];
    assert_eq!(a.headers[0].1.expose(), "Bearer s3cret");
    assert_eq!(a.url.expose().password(), Some("s3cret"));
    let shown = format!("{:?} {} {}", a, a.url, c.render());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("ws://***@h/ws?key=***"), "{shown}");
}

#[test]
fn dollar_dollar_is_a_literal_dollar() {
    let c =
        parse("canaries:\n  - name: a\n    url: ws://h/\n    on_open: ['$${TOKEN}']\n").unwrap();
    assert_eq!(c.canaries[0].on_open[0], "${TOKEN}");
}

#[test]
fn missing_env_names_the_key_and_variable() {
    let err = parse("canaries:\n  - name: a\n    url: ws://h/\n    headers: { X: \"${NOPE}\" }\n")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.yaml: canaries[0].headers.X: environment variable NOPE is not set"
    );
}

#[test]
fn resume_takes_a_template_or_a_query_parameter() {
    let with = |resume: &str| {
        parse(&format!(
            "canaries:\n  - name: a\n    url: ws://h/\n    sequence: {{ pointer: /s }}\n    resume: {resume}\n"
        ))
    };
    let send = with("{ send: 'from {{last_seq}}' }").unwrap();
    assert_eq!(
        send.canaries[0].resume,
        Some(ResumeConfig::Send("from {{last_seq}}".into()))
    );
    let query = with("{ query: from }").unwrap();
    assert_eq!(
        query.canaries[0].resume,
        Some(ResumeConfig::Query("from".into()))
    );
    assert!(query.render().contains("resume: { query: \"from\" }"));
    assert_eq!(
        with("{ query: 'a b' }").unwrap_err().to_string(),
        "t.yaml: canaries[0].resume.query: expected a query parameter name like from, found \"a b\""
    );
}

#[test]
fn every_section_round_trips_through_check_output() {
    let c = parse(
        "listen: 127.0.0.1:1\ncanaries:\n  - name: a\n    url: ws://h/\n    max_message_rate: 5\n    sequence: { pointer: /s, reorder_window: 0 }\n    timestamp: { pointer: /t, unit: ns }\n    heartbeat: { every: 2s }\n    head_check: { send: h, pointer: /s, match: { pointer: /k, equals: 5 }, every: 1m, max_lag: 7 }\n    publish: { ws: { url: ws://h/p, send: 'n {{nonce}}' }, every: 500ms, match: /n }\n    resume: { query: from }\n  - name: b\n    url: ws://h/\n    publish: { http: { url: http://h/p, method: put, body: '{{nonce}}' }, every: 1s, match: /n, timeout: 2s }\n",
    )
    .unwrap();
    assert_eq!(parse(&c.render()).unwrap(), c);
}

#[test]
fn render_round_trips_through_the_parser() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/good.yaml"),
    )
    .unwrap();
    let env = |_: &str| Some("x".to_string());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/good.yaml");
    let c = Config::parse(&text, &file, &env).unwrap();
    let again = Config::parse(&c.render(), &file, &env).unwrap();
    // Secrets render as ***, so compare everything else.
    assert_eq!(c.canaries.len(), again.canaries.len());
    for (a, b) in c.canaries.iter().zip(&again.canaries) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.sequence, b.sequence);
        assert_eq!(a.heartbeat, b.heartbeat);
        assert_eq!(a.head_check, b.head_check);
        assert_eq!(a.backoff, b.backoff);
        assert_eq!(a.first_payload_within, b.first_payload_within);
    }
}
