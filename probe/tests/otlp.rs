//! OTLP from the prober, against a real receiver built on opentelemetry-proto: a trace per
//! `once` run with a child span per measured step, error status on failure, and the daemon's
//! canary metrics.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use support::*;
use wsmon_testkit::otlp_receiver::{self, string_attributes};

fn canary_yaml(url: &str) -> String {
    format!(
        r#"
canaries:
  - name: feed
    url: {url}
    connect_timeout: 2s
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    publish:
      http: {{ url: {publish}, method: POST, body: '{{"nonce":"{{{{nonce}}}}"}}' }}
      every: 200ms
      match: /nonce
      timeout: 2s
"#,
        publish = url.replace("ws://", "http://").replace("/ws", "/publish"),
    )
}

fn otel_env(addr: std::net::SocketAddr, protocol: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_TRACES_EXPORTER", "otlp".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
        ("OTEL_SERVICE_NAME", "probe-under-test".into()),
    ]
}

async fn once_with_env(yaml: &str, env: &[(&'static str, String)]) -> i32 {
    let (_dir, path) = config_file(yaml);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_bin(
        &[
            "once",
            "-c",
            path.to_str().unwrap(),
            "--duration",
            "1500ms",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    out.status.code().unwrap_or(-1)
}

fn by_name(spans: &[Span]) -> BTreeMap<&str, Vec<&Span>> {
    let mut map: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in spans {
        map.entry(s.name.as_str()).or_default().push(s);
    }
    map
}

#[tokio::test]
async fn a_once_run_is_one_trace_with_a_child_span_per_step() {
    let (addr, received) = otlp_receiver::grpc().await;
    let feed = feed(20.0).await;
    let code = once_with_env(
        &canary_yaml(&format!("ws://{}/ws", feed.addr)),
        &otel_env(addr, "grpc"),
    )
    .await;
    assert_eq!(code, 0, "the run passes");

    let spans = received.spans();
    let names = by_name(&spans);
    let roots = &names["canary run"];
    assert_eq!(roots.len(), 1, "one root span per run: {names:?}");
    let root = roots[0];
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.kind, SpanKind::Client as i32);
    let attrs = string_attributes(&root.attributes);
    assert_eq!(attrs["server.address"], "127.0.0.1");
    assert_eq!(attrs["server.port"], feed.addr.port().to_string());
    assert_eq!(attrs["url.full"], format!("ws://{}/ws", feed.addr));
    assert_eq!(attrs["network.protocol.name"], "websocket");
    assert_eq!(attrs["wsmon.canary"], "feed");
    assert_ne!(
        root.status.as_ref().map_or(0, |s| s.code),
        StatusCode::Error as i32
    );

    for step in ["dns", "tcp", "upgrade", "first payload"] {
        assert_eq!(names.get(step).map_or(0, Vec::len), 1, "one {step:?} span");
    }
    assert!(
        names.get("publish round").map_or(0, Vec::len) >= 2,
        "publish rounds: {names:?}"
    );
    assert!(!names.contains_key("tls"), "no TLS on ws://");
    for span in spans.iter().filter(|s| s.name != "canary run") {
        assert_eq!(
            span.trace_id, root.trace_id,
            "{} in the run's trace",
            span.name
        );
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{} is a child of the run",
            span.name
        );
        assert!(
            span.start_time_unix_nano >= root.start_time_unix_nano,
            "{} starts inside",
            span.name
        );
        assert!(
            span.end_time_unix_nano <= root.end_time_unix_nano,
            "{} ends inside",
            span.name
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    let resource = string_attributes(&received.trace_resource());
    assert_eq!(resource["service.name"], "probe-under-test");
    assert!(
        resource.contains_key("service.version") && resource.contains_key("service.instance.id")
    );
}

#[tokio::test]
async fn a_failed_run_has_error_status_with_its_failure_reason() {
    let (addr, received) = otlp_receiver::http().await;
    let closed = wsmon_testkit::free_local_addr();
    let yaml =
        format!("canaries:\n  - name: down\n    url: ws://{closed}/ws\n    connect_timeout: 1s\n");
    let code = once_with_env(&yaml, &otel_env(addr, "http/protobuf")).await;
    assert_eq!(code, 1, "the run fails");
    let spans = received.spans();
    let root = spans
        .iter()
        .find(|s| s.name == "canary run")
        .expect("root span exported");
    let status = root.status.as_ref().expect("status set");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "connect_refused");
    assert_eq!(
        string_attributes(&root.attributes)["error.type"],
        "connect_refused"
    );
    assert!(spans
        .iter()
        .any(|s| s.name == "dns" && s.parent_span_id == root.span_id));
    assert!(
        !spans.iter().any(|s| s.name == "upgrade"),
        "no upgrade after a refused connect"
    );
}

#[tokio::test]
async fn without_configuration_no_trace_is_sent() {
    let (addr, received) = otlp_receiver::grpc().await;
    let feed = feed(20.0).await;
    // An endpoint alone turns on metrics export only; traces need OTEL_TRACES_EXPORTER.
    let env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))];
    assert_eq!(
        once_with_env(&canary_yaml(&format!("ws://{}/ws", feed.addr)), &env).await,
        0
    );
    assert!(received.spans().is_empty());
}

#[tokio::test]
async fn the_daemon_exports_canary_metrics_over_otlp() {
    let (addr, received) = otlp_receiver::grpc().await;
    let feed = feed(20.0).await;
    let yaml = format!(
        "listen: 127.0.0.1:0\n{}",
        canary_yaml(&format!("ws://{}/ws", feed.addr))
    );
    let (_dir, path) = config_file(&yaml);
    let mut daemon = tokio::process::Command::new(BIN)
        .args(["daemon", "-c", path.to_str().unwrap()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let found = loop {
        if received.metric_requests() > 0 {
            let (request, _) = received.last_metrics();
            let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
            let e2e = metrics.iter().find(|m| m.name == "websocket.canary.e2e");
            if let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) =
                e2e.and_then(|m| m.data.as_ref())
            {
                if h.data_points.iter().any(|dp| dp.count > 0) {
                    let dp = &h.data_points[0];
                    assert_eq!(string_attributes(&dp.attributes)["canary"], "feed");
                    assert_eq!(
                        dp.explicit_bounds,
                        wsmon_catalog::CANARY_E2E_SECONDS.buckets
                    );
                    break true;
                }
            }
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    daemon.kill().await.unwrap();
    assert!(found, "the daemon exported e2e freshness samples over OTLP");
    let (request, _) = received.last_metrics();
    let resource = string_attributes(
        &request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes,
    );
    assert_eq!(resource["service.name"], "wsmon-probe");
}
