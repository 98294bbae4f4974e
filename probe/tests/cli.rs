//! The binary itself: `check` on good and bad configs, exit codes, redaction, `--help`,
//! `once --until-first-payload`.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::{faulty, run_bin};
use tokio_tungstenite::tungstenite::Message;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn check_prints_the_resolved_config_with_secrets_redacted() {
    let out = run_bin(
        &["check", "-c", &fixture("good.yaml")],
        &[("FEED_TOKEN", "tok-SECRET-42")],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains("tok-SECRET-42") && !stderr.contains("tok-SECRET-42"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains(r#""Authorization": "***""#), "{stdout}");
    assert!(
        stdout.contains("wss://stream.example.com/ws?token=***"),
        "{stdout}"
    );
    assert!(stdout.contains("first_payload_within: 2s"), "{stdout}");
    assert!(stderr.contains("ok, 2 canaries"), "{stderr}");
}

#[tokio::test]
async fn check_on_a_bad_config_exits_2_naming_file_key_and_expectation() {
    let path = fixture("bad-duration.yaml");
    let out = run_bin(&["check", "-c", &path], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("error: {path}: canaries[0].heartbeat.every: expected a duration like 500ms, 5s or 2m, found 15")
    );
}

#[tokio::test]
async fn check_names_a_missing_secret_variable_without_guessing_its_value() {
    let out = run_bin(&["check", "-c", &fixture("good.yaml")], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "canaries[0].headers.Authorization: environment variable FEED_TOKEN is not set"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_config_file_and_bad_flags_exit_2() {
    let out = run_bin(&["check", "-c", "/nonexistent/probe.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/nonexistent/probe.yaml: cannot read the file"));
    let out = run_bin(
        &["once", "-c", &fixture("good.yaml"), "--duration", "soon"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = run_bin(
        &["once", "-c", &fixture("good.yaml"), "--canary", "nope"],
        &[("FEED_TOKEN", "x")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no canary named \"nope\"; the file has: feed, minimal"));
}

#[tokio::test]
async fn help_shows_examples() {
    let out = run_bin(&["--help"], &[]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("wsmon-probe once -c probe.yaml --duration 10s --format json"),
        "{help}"
    );
    for sub in ["once", "daemon", "check", "demo"] {
        let out = run_bin(&[sub, "--help"], &[]).await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{sub} --help"
        );
    }
}

#[tokio::test]
async fn once_writes_a_textfile_and_prom_output_from_the_catalog() {
    let feed = support::feed(20.0).await;
    let (dir, path) = support::config_file(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    sequence: {{ pointer: /seq }}\n",
        feed.addr
    ));
    let textfile_dir = dir.path().join("textfile");
    std::fs::create_dir(&textfile_dir).unwrap();
    let out = run_bin(
        &[
            "once",
            "-c",
            path.to_str().unwrap(),
            "--duration",
            "1s",
            "--format",
            "prom",
            "--textfile",
            textfile_dir.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_passed(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let written = std::fs::read_to_string(textfile_dir.join("wsmon-probe.prom")).unwrap();
    for text in [&*stdout, &written] {
        assert_eq!(
            support::sample(text, wsmon_catalog::CANARY_UP.name, r#"canary="feed""#),
            Some(1.0),
            "{text}"
        );
        assert!(
            support::sample(
                text,
                wsmon_catalog::CANARY_MESSAGES_TOTAL.name,
                r#"canary="feed""#
            )
            .unwrap()
                > 1.0
        );
    }
}

#[tokio::test]
async fn once_pushes_to_a_pushgateway_with_put() {
    // A minimal Pushgateway stand-in that records the request line and body.
    let received = std::sync::Arc::new(tokio::sync::Mutex::new(String::new()));
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/metrics/job/wsmon_probe",
        axum::routing::put(move |body: String| {
            let seen = seen.clone();
            async move {
                *seen.lock().await = body;
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pg = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let feed = support::feed(20.0).await;
    let (_dir, path) = support::config_file(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n",
        feed.addr
    ));
    let out = run_bin(
        &[
            "once",
            "-c",
            path.to_str().unwrap(),
            "--duration",
            "500ms",
            "--format",
            "json",
            "--push",
            &format!("http://{pg}"),
        ],
        &[],
    )
    .await;
    assert_passed(&out);
    let body = received.lock().await.clone();
    assert_eq!(
        support::sample(&body, wsmon_catalog::CANARY_UP.name, r#"canary="feed""#),
        Some(1.0),
        "{body}"
    );
}

/// `once --until-first-payload --format json` on `config`.
async fn once_until_first_payload(config: &Path, duration: &str) -> std::process::Output {
    let config = config.to_str().unwrap();
    let args = [
        "once",
        "-c",
        config,
        "--until-first-payload",
        "--duration",
        duration,
    ];
    run_bin(&[&args[..], &["--format", "json"]].concat(), &[]).await
}

/// Each canary's `--format json` object, by name.
fn json_by_name(out: &std::process::Output) -> HashMap<String, serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[tokio::test]
async fn once_until_first_payload_passes_at_the_first_message_long_before_duration() {
    let feed = support::feed(20.0).await;
    // One message, then silence: without the flag this canary would be held the full 30s.
    let closes: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let seen = closes.clone();
    let single = faulty::ws(move |mut ws| {
        let seen = seen.clone();
        async move {
            let _ = ws.send(faulty::seq_msg(1)).await;
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Close(Some(f)) = msg {
                    seen.lock()
                        .unwrap()
                        .push((u16::from(f.code), f.reason.to_string()));
                }
            }
        }
    })
    .await;
    let (_dir, path) = support::config_file(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    sequence: {{ pointer: /seq }}\n  - name: single\n    url: {}\n    sequence: {{ pointer: /seq }}\n",
        feed.addr,
        single.url()
    ));
    let started = Instant::now();
    let out = once_until_first_payload(&path, "30s").await;
    let elapsed = started.elapsed();
    assert_passed(&out);
    let runs = json_by_name(&out);
    assert_eq!(runs.len(), 2, "{runs:?}");
    for (name, run) in &runs {
        assert_eq!(run["success"], true, "{name}: {run}");
        assert!(run["failure_reason"].is_null(), "{name}: {run}");
        // Stopped right after the first message was checked.
        assert_eq!(run["messages"], 1, "{name}: {run}");
        assert!(
            run["first_payload_seconds"].as_f64().is_some(),
            "{name}: {run}"
        );
        let took = run["duration_seconds"].as_f64().unwrap();
        assert!(took < 10.0, "{name} held the stream {took}s: {run}");
    }
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    // The server's side of the close can land just after the prober exits.
    let deadline = Instant::now() + Duration::from_secs(2);
    while closes.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *closes.lock().unwrap(),
        [(1000, "probe finished".to_string())]
    );
}

#[tokio::test]
async fn once_until_first_payload_still_fails_without_a_payload_or_on_a_bad_first_message() {
    let silent = faulty::ws(|mut ws| async move { faulty::drain(&mut ws).await }).await;
    let bad = faulty::ws(|mut ws| async move {
        let _ = ws.send(Message::text(r#"{"seq":-1}"#)).await;
        faulty::drain(&mut ws).await;
    })
    .await;
    // first_payload_within above --duration: only the duration can end the silent canary.
    let (_dir, path) = support::config_file(&format!(
        "canaries:\n  - name: silent\n    url: {}\n    first_payload_within: 60s\n  - name: bad\n    url: {}\n    sequence: {{ pointer: /seq }}\n",
        silent.url(),
        bad.url()
    ));
    let out = once_until_first_payload(&path, "4s").await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = json_by_name(&out);
    let silent = &runs["silent"];
    assert_eq!(silent["success"], false, "{silent}");
    assert_eq!(
        silent["failure_reason"], "first_payload_timeout",
        "{silent}"
    );
    assert_eq!(
        silent["failure_detail"], "no data message before the run ended",
        "{silent}"
    );
    assert_eq!(silent["messages"], 0, "{silent}");
    assert!(silent["first_payload_seconds"].is_null(), "{silent}");
    let took = silent["duration_seconds"].as_f64().unwrap();
    assert!(
        (3.9..10.0).contains(&took),
        "not ended by --duration 4s: {silent}"
    );
    // The first message fails its check: the run stops there, and fails.
    let bad = &runs["bad"];
    assert_eq!(bad["success"], false, "{bad}");
    assert_eq!(bad["failure_reason"], "invalid_sequence", "{bad}");
    assert_eq!(bad["messages"], 1, "{bad}");
    let took = bad["duration_seconds"].as_f64().unwrap();
    assert!(took < 3.0, "held past the first message: {bad}");
}

fn assert_passed(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
