//! The binary itself: `check` on good and bad configs, exit codes, redaction, `--help`.

mod support;

use std::path::Path;

use support::run_bin;

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
            support::sample(text, wsmon::catalog::CANARY_UP.name, r#"canary="feed""#),
            Some(1.0),
            "{text}"
        );
        assert!(
            support::sample(
                text,
                wsmon::catalog::CANARY_MESSAGES_TOTAL.name,
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
        support::sample(&body, wsmon::catalog::CANARY_UP.name, r#"canary="feed""#),
        Some(1.0),
        "{body}"
    );
}

fn assert_passed(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
