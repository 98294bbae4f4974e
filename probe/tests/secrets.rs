//! Secrets from `${VAR}` never show up in `once` output, logs, `/metrics` or `/status`.

mod support;

use std::time::Duration;

const TOKEN: &str = "tok-do-not-print-7f3a";

fn yaml(addr: &str) -> String {
    format!(
        "canaries:\n  - name: s\n    url: ws://user:${{T}}@{addr}/ws?token=${{T}}\n    connect_timeout: 1s\n    headers: {{ Authorization: \"Bearer ${{T}}\" }}\n"
    )
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
        let out = support::run_bin(
            &[
                "once",
                "-c",
                path.to_str().unwrap(),
                "--duration",
                "1s",
                "--format",
                format,
            ],
            &[("T", TOKEN), ("RUST_LOG", "debug")],
        )
        .await;
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
