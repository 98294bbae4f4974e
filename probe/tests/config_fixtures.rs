//! Every `bad-*.yaml` fixture fails with exactly the error a user should see.

use std::path::{Path, PathBuf};

use wsmon_probe::config::{Config, CANARY_KEYS};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn env(var: &str) -> Option<String> {
    (var == "FEED_TOKEN").then(|| "tok-123".to_string())
}

fn load(name: &str) -> Result<Config, String> {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse(&text, Path::new(name), &env).map_err(|e| e.to_string())
}

#[test]
fn good_config_parses_with_every_key() {
    let c = load("good.yaml").unwrap();
    assert_eq!(c.canaries.len(), 2);
    let feed = &c.canaries[0];
    assert_eq!(feed.name, "feed");
    assert_eq!(feed.headers[0].1.expose(), "Bearer tok-123");
    assert_eq!(feed.first_payload_within, std::time::Duration::from_secs(2));
    assert_eq!(feed.sequence.as_ref().unwrap().pointer, "/seq");
    assert_eq!(
        feed.head_check
            .as_ref()
            .unwrap()
            .reply
            .as_ref()
            .unwrap()
            .equals,
        "head"
    );
    assert_eq!(feed.publish.as_ref().unwrap().match_pointer, "/nonce");
    let minimal = &c.canaries[1];
    assert_eq!(minimal.max_message_bytes, 64 * 1024);
    assert_eq!(minimal.backoff.initial, std::time::Duration::from_secs(1));
    assert_eq!(
        minimal.backoff.max,
        std::time::Duration::from_secs(30),
        "inherited"
    );
    assert!(minimal.tls.insecure_skip_verify);
    let rendered = c.render();
    assert!(!rendered.contains("tok-123"), "{rendered}");
}

#[test]
fn every_bad_fixture_fails_with_its_exact_error() {
    // The hint lists every canary key: today's, in this order, then any added since.
    assert_eq!(CANARY_KEYS[..TODAYS_CANARY_KEYS.len()], *TODAYS_CANARY_KEYS);
    let expect_unknown_key = format!(
        "bad-unknown-key.yaml: canaries[0].heartbeet: unknown key; expected one of: {}",
        CANARY_KEYS.join(", ")
    );
    let cases: &[(&str, &str)] = &[
        ("bad-unknown-key.yaml", expect_unknown_key.as_str()),
        ("bad-duration.yaml", "bad-duration.yaml: canaries[0].heartbeat.every: expected a duration like 500ms, 5s or 2m, found 15"),
        ("bad-duration-unit.yaml", "bad-duration-unit.yaml: canaries[0].heartbeat.every: expected a duration like 500ms, 5s or 2m, found \"15 parsecs\""),
        ("bad-size.yaml", "bad-size.yaml: defaults.max_message_bytes: expected a size like 64KiB or 1MiB, found \"1 megabyte\""),
        ("bad-url-scheme.yaml", "bad-url-scheme.yaml: canaries[0].url: expected a ws:// or wss:// URL, found \"http://127.0.0.1:8080/ws\""),
        ("bad-missing-url.yaml", "bad-missing-url.yaml: canaries[0].url: missing; expected a ws:// or wss:// URL"),
        ("bad-missing-env.yaml", "bad-missing-env.yaml: canaries[0].headers.Authorization: environment variable WSMON_TEST_UNSET_TOKEN is not set"),
        ("bad-duplicate-name.yaml", "bad-duplicate-name.yaml: canaries[1].name: expected a name not used by another canary, found \"feed\""),
        ("bad-pointer.yaml", "bad-pointer.yaml: canaries[0].sequence.pointer: expected a JSON pointer like /seq, found \"seq\""),
        ("bad-publish-no-target.yaml", "bad-publish-no-target.yaml: canaries[0].publish.http: missing; expected one of http or ws"),
        ("bad-publish-template.yaml", "bad-publish-template.yaml: canaries[0].publish.http.body: expected a template containing {{nonce}}, found \"{}\""),
        ("bad-resume-both.yaml", "bad-resume-both.yaml: canaries[0].resume.query: expected one of send or query, not both, found \"from\""),
        ("bad-resume-neither.yaml", "bad-resume-neither.yaml: canaries[0].resume.send: missing; expected one of send or query"),
        ("bad-resume-without-sequence.yaml", "bad-resume-without-sequence.yaml: canaries[0].sequence: missing; expected a sequence pointer, which resume needs"),
        ("bad-recycle-every.yaml", "bad-recycle-every.yaml: canaries[0].recycle.every: expected a duration like 500ms, 5s or 2m, found \"0s\""),
        ("bad-recycle-key.yaml", "bad-recycle-key.yaml: canaries[0].recycle.jitter: unknown key; expected one of: every"),
        ("bad-backoff-order.yaml", "bad-backoff-order.yaml: defaults.backoff.max: expected backoff.max >= backoff.initial (10s), found \"1s\""),
        ("bad-no-canaries.yaml", "bad-no-canaries.yaml: canaries: expected at least one canary, found a list"),
        ("bad-listen.yaml", "bad-listen.yaml: listen: expected an address like 127.0.0.1:9477, found \"localhost\""),
        ("bad-syntax.yaml", EXPECT_SYNTAX),
        ("bad-timestamp-unit.yaml", "bad-timestamp-unit.yaml: canaries[0].timestamp.unit: expected one of s, ms, us, ns, found \"minutes\""),
        ("bad-name.yaml", "bad-name.yaml: canaries[0].name: expected 1-64 characters of [A-Za-z0-9_.-], found \"feed one\""),
    ];
    let mut listed: Vec<&str> = cases.iter().map(|(f, _)| *f).collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("bad-"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk, "every bad fixture has an expected error");
    for (file, expected) in cases {
        assert_eq!(load(file).unwrap_err(), *expected, "{file}");
    }
}

/// The keys the unknown-key fixture's message listed when it was written.
const TODAYS_CANARY_KEYS: &[&str] = &[
    "name",
    "url",
    "headers",
    "origin",
    "subprotocols",
    "on_open",
    "connect_timeout",
    "first_payload_within",
    "max_message_bytes",
    "max_message_rate",
    "backoff",
    "tls",
    "sequence",
    "timestamp",
    "max_silence",
    "heartbeat",
    "head_check",
    "publish",
    "resume",
];
const EXPECT_SYNTAX: &str =
    "bad-syntax.yaml: invalid YAML at line 4, column 1: did not find expected ',' or ']'";
