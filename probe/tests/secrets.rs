//! Secrets from `${VAR}` never show up in `once` output, logs, `/metrics` or `/status`.

mod support;

use std::time::Duration;

const TOKEN: &str = "tok-do-not-print-7f3a";

fn yaml(addr: &str) -> String {
    format!(
        "canaries:\n  - name: s\n    url: ws://user:${{T}}@{addr}/ws?token=${{T}}\n    connect_timeout: 1s\n    headers: {{ Authorization: \"Bearer ${{T}}\" }}\n"
    )
}

/// `once` for one second on the config at `path`, with the secret in `T`.
async fn once(path: &std::path::Path, format: &str, rust_log: &str) -> std::process::Output {
    let path = path.to_str().unwrap();
    let args = ["once", "-c", path, "--duration", "1s", "--format", format];
    support::run_bin(&args, &[("T", TOKEN), ("RUST_LOG", rust_log)]).await
}

#[tokio::test]
async fn once_output_and_logs_never_contain_the_secret() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, path) = support::config_file(&yaml(&format!("127.0.0.1:{port}")));
    for format in ["json", "text", "prom"] {
        let out = once(&path, format, "debug").await;
        assert_eq!(out.status.code(), Some(1), "the port is closed");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(TOKEN), "{format} leaked the secret:\n{all}");
        if format != "prom" {
            assert!(
                all.contains("ws://***@127.0.0.1"),
                "{format}: the redacted target is shown:\n{all}"
            );
        }
    }
}

/// Issue 12, defect 8: `RUST_LOG=trace` is what an operator sets to debug a failing canary,
/// and it must not print the header, the URL's user info or its query either.
#[tokio::test]
async fn a_canary_at_rust_log_trace_never_logs_its_secrets() {
    let feed = support::feed(20.0).await;
    let (_dir, path) = support::config_file(&yaml(&feed.addr.to_string()));
    let out = once(&path, "json", "trace").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("DEBUG"),
        "RUST_LOG=trace took effect, or this test proves nothing:\n{stderr}"
    );
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(TOKEN), "{what} leaked the secret:\n{text}");
        assert!(
            !text.contains("user:"),
            "{what} leaked the user info:\n{text}"
        );
    }
}

#[tokio::test]
async fn daemon_metrics_and_status_never_contain_the_secret() {
    let feed = support::feed(20.0).await;
    let config = wsmon_probe::config::Config::parse(
        &yaml(&feed.addr.to_string()),
        std::path::Path::new("secret.yaml"),
        &|v| (v == "T").then(|| TOKEN.to_string()),
    )
    .unwrap();
    let d = support::RunningDaemon::start(config).await;
    d.wait_for(Duration::from_secs(10), "the canary up", |m| {
        support::sample(m, "websocket_canary_up", r#"canary="s""#) == Some(1.0)
    })
    .await;
    for path in ["/metrics", "/status"] {
        let (_, body) = d.get(path).await;
        assert!(!body.contains(TOKEN), "{path} leaked the secret");
    }
    d.stop().await;
}
