//! The config file: the good fixture sets every key, and each bad fixture gets an error that
//! names the file, the key and what was expected.

use std::path::PathBuf;
use std::time::Duration;

use wsmon_proxy::config::FileConfig;
use wsmon_proxy::{Settings, Upstream};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

#[test]
fn the_good_config_sets_every_setting() {
    let mut s = Settings::new(
        "127.0.0.1:1".parse().unwrap(),
        Upstream::parse("http://x:1").unwrap(),
    );
    FileConfig::load(&fixture("good.yaml"))
        .unwrap()
        .apply(&mut s);
    assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.upstream.authority, "127.0.0.1:3000");
    assert_eq!(s.routes, ["/ws", "/rooms/{id}"]);
    assert_eq!(s.metrics_listen, Some("127.0.0.1:9478".parse().unwrap()));
    assert_eq!(
        s.allowed_origins.as_deref(),
        Some(&["https://app.example".to_owned()][..])
    );
    assert_eq!(s.relay.max_message_bytes, Some(1 << 20));
    assert_eq!(s.close_code_allowlist, [4001, 4404]);
    let p = s.stamp_pointers.as_ref().unwrap();
    assert_eq!(
        (p.seq.as_str(), p.published_ms.as_deref()),
        ("/seq", Some("/ts"))
    );
    assert_eq!(s.upstream_timeout, Duration::from_secs(5));
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.max_header_bytes, 32 << 10);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(20));
    assert_eq!(s.threads, 2);
    assert_eq!(s.relay.buffer_bytes, 64 << 10);
    assert_eq!(s.relay.slow_after, Duration::from_millis(500));
    assert_eq!(s.relay.stall_timeout, Duration::from_secs(30));
}

const BAD: &[(&str, &str)] = &[
    ("bad-unknown-key.yaml", "FILE: heartbeat: unknown field `heartbeat`, expected one of `listen`, `upstream`, `routes`, `metrics_listen`, `allowed_origins`, `max_message_size`, `close_code_allowlist`, `stamp_pointers`, `upstream_timeout`, `header_read_timeout`, `max_header_size`, `shutdown_timeout`, `threads`, `queue` at line 2 column 1"),
    ("bad-nested-key.yaml", "FILE: queue.buffr: unknown field `buffr`, expected one of `buffer`, `slow_after`, `stall_timeout` at line 2 column 3"),
    ("bad-duration.yaml", "FILE: queue.stall_timeout: expected a duration like 500ms, 5s or 2m, found \"5 parsecs\" at line 2 column 3"),
    ("bad-upstream.yaml", "FILE: upstream: expected an http:// URL (TLS to the upstream is not supported), found \"https://app.example\""),
    ("bad-close-code.yaml", "FILE: close_code_allowlist[1]: expected an application close code (3000-4999), found 1000 at line 1 column 23"),
    ("bad-listen.yaml", "FILE: listen: expected an address like 0.0.0.0:8080, found \"everywhere\""),
    ("bad-pointer.yaml", "FILE: stamp_pointers.seq: expected a JSON pointer starting with '/', found \"seq\""),
    ("bad-size.yaml", "FILE: max_message_size: expected a size like 65536, 64KiB or 1MiB, found \"lots\""),
    ("bad-threads.yaml", "FILE: threads: expected a thread count from 1 to 1024, found 0"),
    ("bad-syntax.yaml", "FILE: routes: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 9"),
];

#[test]
fn each_bad_config_names_the_file_the_key_and_what_was_expected() {
    for (name, expected) in BAD {
        let path = fixture(name);
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert_eq!(
            err.replace(&path.display().to_string(), "FILE"),
            *expected,
            "{name}"
        );
    }
}

#[test]
fn every_bad_fixture_has_an_expected_error() {
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("bad-") {
            assert!(
                BAD.iter().any(|(n, _)| *n == name),
                "{name} has no expected error"
            );
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = FileConfig::load(&fixture("absent.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot read the file",
            fixture("absent.yaml").display()
        )),
        "{err}"
    );
}
