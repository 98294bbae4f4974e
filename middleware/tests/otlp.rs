//! OTLP export against a real receiver built on the official opentelemetry-proto definitions,
//! over gRPC (tonic) and HTTP/protobuf, checked against the Prometheus scrape of the same run.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wsmon::catalog::{self, Kind};
use wsmon::export::otlp::{self, OtlpConfig};
use wsmon::Secret;
use wsmon_feed::FeedConfig;
use wsmon_testkit::otlp_receiver;

/// Connects, reads, publishes and closes, then waits for the feed to go quiet.
async fn drive_traffic(server: &FeedServer) {
    let mut client = connect(&server.ws_url()).await;
    client.next().await.unwrap().unwrap();
    for _ in 0..5 {
        server.feed.hub().publish_tick();
        client.next().await.unwrap().unwrap();
    }
    client
        .send(Message::text(r#"{"op":"head"}"#))
        .await
        .unwrap();
    client.next().await.unwrap().unwrap();
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    wait_until("connection gone", Duration::from_secs(5), || async {
        server
            .metrics()
            .sum("websocket_server_active_connections", &[])
            == 0.0
    })
    .await;
}

fn quiet_feed() -> FeedConfig {
    FeedConfig {
        rate: 0.0,
        heartbeat: None,
        ..FeedConfig::default()
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    otlp_receiver::string_attributes(kvs)
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        Some(number_data_point::Value::AsDouble(d)) => *d,
        None => panic!("data point without value"),
    }
}

/// Asserts that every catalog family in `scrape` arrived in `request` with its OTel name,
/// unit, bucket boundaries, attributes and the same values.
fn assert_export_matches_scrape(request: &ExportMetricsServiceRequest, scrape: &Scrape) {
    let metrics: BTreeMap<&str, &Metric> = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let mut checked = 0;
    for def in catalog::SERVER_METRICS {
        let m = metrics
            .get(def.otel_name)
            .unwrap_or_else(|| panic!("{} ({}) was not exported", def.otel_name, def.name));
        assert_eq!(m.unit, def.unit, "{}", def.otel_name);
        match (def.kind, m.data.as_ref().unwrap()) {
            (Kind::Counter, metric::Data::Sum(sum)) => {
                assert!(sum.is_monotonic);
                for sample in scrape.matching(def.name, &[]) {
                    let (labels, value) = (&sample.labels, sample.value);
                    let dp = sum
                        .data_points
                        .iter()
                        .find(|dp| attrs(&dp.attributes) == *labels)
                        .unwrap_or_else(|| panic!("{}{labels:?} missing", def.name));
                    assert_eq!(number(&dp.value), value, "{}{labels:?}", def.name);
                    checked += 1;
                }
            }
            (Kind::Gauge, metric::Data::Gauge(g)) => {
                for sample in scrape.matching(def.name, &[]) {
                    let (labels, value) = (&sample.labels, sample.value);
                    let dp = g
                        .data_points
                        .iter()
                        .find(|dp| attrs(&dp.attributes) == *labels)
                        .unwrap();
                    assert_eq!(number(&dp.value), value, "{}{labels:?}", def.name);
                    checked += 1;
                }
            }
            (Kind::Histogram, metric::Data::Histogram(h)) => {
                let count_name = format!("{}_count", def.name);
                let sum_name = format!("{}_sum", def.name);
                for sample in scrape.matching(&count_name, &[]) {
                    let (labels, count) = (&sample.labels, sample.value);
                    let dp = h
                        .data_points
                        .iter()
                        .find(|dp| attrs(&dp.attributes) == *labels)
                        .unwrap();
                    assert_eq!(dp.explicit_bounds, def.buckets, "{} bounds", def.name);
                    assert_eq!(dp.bucket_counts.len(), def.buckets.len() + 1);
                    assert_eq!(dp.count as f64, count, "{}{labels:?} count", def.name);
                    assert_eq!(dp.bucket_counts.iter().sum::<u64>(), dp.count);
                    let sum = scrape
                        .matching(&sum_name, &[])
                        .find(|s| s.labels == *labels)
                        .unwrap()
                        .value;
                    assert!((dp.sum.unwrap() - sum).abs() < 1e-9, "{} sum", def.name);
                    checked += 1;
                }
            }
            (kind, data) => panic!("{}: {kind:?} exported as {data:?}", def.name),
        }
    }
    assert!(checked > 50, "only {checked} series compared");
}

#[tokio::test]
async fn grpc_export_carries_the_catalog_and_agrees_with_the_scrape() {
    let (addr, received) = otlp_receiver::grpc().await;
    let server = start_feed(quiet_feed()).await;
    let config = OtlpConfig::grpc(format!("http://{addr}"), "wsmon-test")
        .interval(Duration::from_millis(200))
        .header("x-tenant", Secret::new("team-a"))
        .resource_attribute("deployment.environment", "test");
    let _exporter = otlp::spawn(server.registry.clone(), config, "9.9.9").unwrap();
    drive_traffic(&server).await;
    let scrape = server.metrics();
    let seen = received.metric_requests();
    wait_until(
        "an export after the traffic",
        Duration::from_secs(5),
        || async { received.metric_requests() > seen + 1 },
    )
    .await;
    let (request, headers) = received.last_metrics();
    assert!(
        headers.contains(&("x-tenant".into(), "team-a".into())),
        "{headers:?}"
    );

    let resource = attrs(
        &request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes,
    );
    assert_eq!(resource["service.name"], "wsmon-test");
    assert_eq!(resource["service.version"], "9.9.9");
    assert_eq!(resource["service.instance.id"].len(), 32);
    assert_eq!(resource["deployment.environment"], "test");
    assert_export_matches_scrape(&request, &scrape);
    assert!(
        scrape.sum(
            "websocket_server_messages_total",
            &[("direction", "transmit")]
        ) >= 7.0
    );
}

#[tokio::test]
async fn http_protobuf_export_carries_the_catalog_and_agrees_with_the_scrape() {
    let (addr, received) = otlp_receiver::http().await;
    let server = start_feed(quiet_feed()).await;
    let config = OtlpConfig::new(format!("http://{addr}"), "wsmon-http")
        .interval(Duration::from_millis(200))
        .header("authorization", Secret::new("Bearer t0ken"));
    let _exporter = otlp::spawn(server.registry.clone(), config, "1.0.0").unwrap();
    drive_traffic(&server).await;
    let scrape = server.metrics();
    let seen = received.metric_requests();
    wait_until(
        "an export after the traffic",
        Duration::from_secs(5),
        || async { received.metric_requests() > seen + 1 },
    )
    .await;
    let (request, headers) = received.last_metrics();
    assert!(headers.contains(&("authorization".into(), "Bearer t0ken".into())));
    assert_export_matches_scrape(&request, &scrape);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_collector_drops_exports_without_blocking_the_server() {
    // A port with nothing listening.
    let closed = wsmon_testkit::free_local_addr();
    let server = start_feed(quiet_feed()).await;
    let config = OtlpConfig::grpc(format!("http://{closed}"), "wsmon-down")
        .interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(50));
    let _exporter = otlp::spawn(server.registry.clone(), config, "1").unwrap();

    let mut client = connect(&server.ws_url()).await;
    client.next().await.unwrap().unwrap();
    let rss_before = rss_bytes();
    // Keep the feed busy for 2 s while exports fail: every request is answered promptly.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut answered = 0;
    while std::time::Instant::now() < until {
        client
            .send(Message::text(r#"{"op":"head"}"#))
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(1), client.next()).await;
        assert!(
            reply.is_ok(),
            "the server stopped answering while the collector was down"
        );
        answered += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dropped = server
        .metrics()
        .sum("wsmon_otlp_dropped_exports_total", &[]);
    assert!(dropped >= 5.0, "dropped exports counted: {dropped}");
    assert!(answered > 50);
    let growth = rss_bytes().saturating_sub(rss_before);
    assert!(
        growth < 8 << 20,
        "RSS grew {growth} bytes while exports were failing"
    );
}

fn example_feed_binary() -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), Into::into);
    let bin = target.join("debug/wsmon-feed");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "wsmon-feed", "--bin", "wsmon-feed"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success(), "building the example feed failed");
    }
    bin
}

#[tokio::test]
async fn example_feed_exports_over_otlp_when_the_environment_names_a_collector() {
    let (addr, received) = otlp_receiver::grpc().await;
    let port = wsmon_testkit::free_port();
    let mut feed = tokio::process::Command::new(example_feed_binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--rate", "5"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until("the feed exports", Duration::from_secs(20), || async {
        received.metric_requests() >= 1
    })
    .await;
    let (request, _) = received.last_metrics();
    let resource = attrs(
        &request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes,
    );
    assert_eq!(resource["service.name"], "wsmon-feed");
    let names: Vec<&str> = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert!(names.contains(&"websocket.server.upgrades"), "{names:?}");
    feed.kill().await.unwrap();
}
