//! OTLP metric export over gRPC or HTTP/protobuf.
//!
//! The exporter reads the same registry a Prometheus scrape reads, on its own task, so turning
//! it on adds nothing to the message path. It sends what the recorders already aggregated:
//! cumulative sums, gauges, and histograms with the catalog's explicit bucket boundaries. (The
//! OpenTelemetry SDK's metric pipeline only accepts data from its own instruments and has no
//! asynchronous histogram, so feeding it would mean recording every message twice.) Requests
//! are built from the official `opentelemetry-proto` definitions.
//!
//! A collector that is down costs a bounded amount: one request in flight, retried with
//! jittered backoff until the next interval, then dropped and counted in
//! `wsmon_otlp_dropped_exports_total`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{IntCounter, Registry};
use prost::Message as _;
use rand::Rng;

use crate::backoff::Backoff;
use crate::catalog::{self, Kind};

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl FromStr for Protocol {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            _ => Err(()),
        }
    }
}

/// A header value that never prints (collector tokens travel in headers).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// For gRPC, the collector address (`http://host:4317`); for HTTP, the full metrics URL
    /// (`http://host:4318/v1/metrics`).
    pub endpoint: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, SecretValue)>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Resource attributes beyond `service.name`, `service.version`, `service.instance.id`.
    pub resource: Vec<(String, String)>,
    pub service_name: String,
}

/// A bad `OTEL_*` variable: which one, its value, and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: expected {expected}")]
pub struct OtlpConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl OtlpConfig {
    /// HTTP/protobuf to `endpoint` (a base URL; `/v1/metrics` is appended), every 60 s.
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            endpoint: signal_url(&endpoint.into()),
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            resource: Vec::new(),
            service_name: service_name.into(),
        }
    }

    /// gRPC instead of HTTP; `endpoint` is the collector address.
    pub fn grpc(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol: Protocol::Grpc,
            ..Self::new("", service_name)
        }
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: SecretValue) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Reads the standard `OTEL_EXPORTER_OTLP_*` variables. `None` when no endpoint is set,
    /// which means export is off.
    pub fn from_env(default_service_name: &str) -> Option<Result<Self, OtlpConfigError>> {
        Self::from_vars(default_service_name, |k| std::env::var(k).ok())
    }

    /// [`OtlpConfig::from_env`] over any variable source.
    pub fn from_vars(
        default_service_name: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<Result<Self, OtlpConfigError>> {
        let pick = |specific: &'static str, general: &'static str| {
            var(specific)
                .filter(|v| !v.is_empty())
                .map(|v| (specific, v))
                .or_else(|| var(general).filter(|v| !v.is_empty()).map(|v| (general, v)))
        };
        let specific_endpoint =
            var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").filter(|v| !v.is_empty());
        let base_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty());
        if specific_endpoint.is_none() && base_endpoint.is_none() {
            return None;
        }
        Some((|| {
            let protocol = match pick(
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ) {
                None => Protocol::HttpProtobuf,
                Some((name, v)) => v.parse().map_err(|()| OtlpConfigError {
                    var: name,
                    value: v,
                    expected: "`grpc` or `http/protobuf`",
                })?,
            };
            let endpoint = match (specific_endpoint, base_endpoint, protocol) {
                (Some(url), _, _) => url,
                (None, Some(base), Protocol::HttpProtobuf) => signal_url(&base),
                (None, Some(base), Protocol::Grpc) => base,
                (None, None, _) => unreachable!("checked above"),
            };
            let millis = |specific, general, default: u64| -> Result<Duration, OtlpConfigError> {
                match pick(specific, general) {
                    None => Ok(Duration::from_millis(default)),
                    Some((name, v)) => {
                        v.trim()
                            .parse::<u64>()
                            .map(Duration::from_millis)
                            .map_err(|_| OtlpConfigError {
                                var: name,
                                value: v,
                                expected: "a whole number of milliseconds",
                            })
                    }
                }
            };
            let timeout = millis(
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                10_000,
            )?;
            let interval = millis(
                "OTEL_METRIC_EXPORT_INTERVAL",
                "OTEL_METRIC_EXPORT_INTERVAL",
                60_000,
            )?;
            let headers = match pick(
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ) {
                None => Vec::new(),
                // The value may hold a token: never echo it in the error.
                Some((name, v)) => parse_pairs(&v)
                    .ok_or(OtlpConfigError {
                        var: name,
                        value: "***".into(),
                        expected: "comma-separated key=value pairs",
                    })?
                    .into_iter()
                    .map(|(k, v)| (k, SecretValue(v)))
                    .collect(),
            };
            let resource = match var("OTEL_RESOURCE_ATTRIBUTES").filter(|v| !v.is_empty()) {
                None => Vec::new(),
                Some(v) => parse_pairs(&v).ok_or(OtlpConfigError {
                    var: "OTEL_RESOURCE_ATTRIBUTES",
                    value: v,
                    expected: "comma-separated key=value pairs",
                })?,
            };
            let service_name = var("OTEL_SERVICE_NAME")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default_service_name.to_owned());
            Ok(Self {
                endpoint,
                protocol,
                headers,
                interval,
                timeout,
                resource,
                service_name,
            })
        })())
    }
}

fn signal_url(base: &str) -> String {
    format!("{}/v1/metrics", base.trim_end_matches('/'))
}

/// `k=v,k2=v2` with percent-encoded values, as the OTel environment variables use.
fn parse_pairs(s: &str) -> Option<Vec<(String, String)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The resource: `service.name`, `service.version`, a random `service.instance.id`, plus
/// the configured attributes (which may override the first two).
pub fn resource(config: &OtlpConfig, service_version: &str) -> Resource {
    let instance: u128 = rand::rng().random();
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), config.service_name.clone()),
        ("service.version".into(), service_version.to_owned()),
        ("service.instance.id".into(), format!("{instance:032x}")),
    ];
    for (k, v) in &config.resource {
        attrs.retain(|(key, _)| key != k);
        attrs.push((k.clone(), v.clone()));
    }
    Resource {
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        ..Default::default()
    }
}

/// Converts catalog families from a registry snapshot into one OTLP request. Families that are
/// not in the catalog are left out.
pub fn to_request(
    families: &[MetricFamily],
    resource: &Resource,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, now) = (unix_nanos(start), unix_nanos(now));
    let mut metrics = Vec::new();
    for family in families {
        // The whole catalog, not only the server's part: the prober exports through here too.
        let Some(def) = wsmon_catalog::find(family.name()) else {
            continue;
        };
        let attributes = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
            m.get_label()
                .iter()
                .map(|l| kv(l.name(), l.value()))
                .collect()
        };
        let number = |m: &prometheus::proto::Metric, v: f64| NumberDataPoint {
            attributes: attributes(m),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(if v.fract() == 0.0 && v.abs() < 9.0e15 {
                number_data_point::Value::AsInt(v as i64)
            } else {
                number_data_point::Value::AsDouble(v)
            }),
            ..Default::default()
        };
        let data = match (def.kind, family.get_field_type()) {
            (Kind::Counter, MetricType::COUNTER) => metric::Data::Sum(Sum {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_counter().value()))
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            (Kind::Gauge, MetricType::GAUGE) => metric::Data::Gauge(Gauge {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_gauge().value()))
                    .collect(),
            }),
            (Kind::Histogram, MetricType::HISTOGRAM) => metric::Data::Histogram(Histogram {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| {
                        let h = m.get_histogram();
                        // Prometheus buckets are cumulative; OTLP counts each bucket alone.
                        let mut previous = 0;
                        let mut bucket_counts: Vec<u64> = h
                            .get_bucket()
                            .iter()
                            .filter(|b| b.upper_bound().is_finite())
                            .map(|b| {
                                let c = b.cumulative_count() - previous;
                                previous = b.cumulative_count();
                                c
                            })
                            .collect();
                        bucket_counts.push(h.sample_count() - previous);
                        HistogramDataPoint {
                            attributes: attributes(m),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: h.sample_count(),
                            sum: Some(h.sample_sum()),
                            bucket_counts,
                            explicit_bounds: def.buckets.to_vec(),
                            ..Default::default()
                        }
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
            _ => continue,
        };
        metrics.push(Metric {
            name: def.otel_name.to_owned(),
            description: def.help.to_owned(),
            unit: def.unit.to_owned(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "wsmon".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Why one export attempt failed.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("HTTP export failed: {0}")]
    Http(String),
    #[error("gRPC export failed: {0}")]
    Grpc(String),
}

enum Transport {
    Http(reqwest::Client),
    Grpc(Option<MetricsServiceClient<tonic::transport::Channel>>),
}

/// A running exporter; dropping it stops the export task.
pub struct OtlpExporter {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers `wsmon_otlp_dropped_exports_total` in `registry` and starts exporting it every
/// `config.interval`. Must be called inside a Tokio runtime.
pub fn spawn(
    registry: Registry,
    config: OtlpConfig,
    service_version: &str,
) -> Result<OtlpExporter, prometheus::Error> {
    let dropped = catalog::OTLP_DROPPED_EXPORTS_TOTAL.int_counter();
    registry.register(Box::new(dropped.clone()))?;
    let resource = resource(&config, service_version);
    tracing::info!(
        endpoint = %config.endpoint,
        protocol = ?config.protocol,
        interval = ?config.interval,
        "OTLP metric export on"
    );
    let task = tokio::spawn(run(registry, config, resource, dropped));
    Ok(OtlpExporter { task })
}

/// Why [`spawn_from_env`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpStartError {
    #[error("invalid OpenTelemetry environment: {0}")]
    Config(#[from] OtlpConfigError),
    #[error("registering the OTLP exporter's metrics failed: {0}")]
    Register(#[from] prometheus::Error),
}

/// Starts exporting `registry` when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the metrics-specific
/// variable) is set; `Ok(None)` when it is not. This is how the example feed and the prober
/// turn OTLP on without a flag.
pub fn spawn_from_env(
    registry: &Registry,
    default_service_name: &str,
    service_version: &str,
) -> Result<Option<OtlpExporter>, OtlpStartError> {
    match OtlpConfig::from_env(default_service_name) {
        None => Ok(None),
        Some(config) => Ok(Some(spawn(registry.clone(), config?, service_version)?)),
    }
}

async fn run(registry: Registry, config: OtlpConfig, resource: Resource, dropped: IntCounter) {
    let start = SystemTime::now();
    let mut transport = match config.protocol {
        Protocol::HttpProtobuf => Transport::Http(
            reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .unwrap_or_default(),
        ),
        Protocol::Grpc => Transport::Grpc(None),
    };
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let request = to_request(&registry.gather(), &resource, start, SystemTime::now());
        // Retries stop before the next interval: a down collector never builds a backlog.
        let deadline = tokio::time::Instant::now() + config.interval.mul_f64(0.9);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match send(&mut transport, &config, &request).await {
                Ok(()) => break,
                Err(err) => {
                    let pause = backoff.next_delay();
                    if tokio::time::Instant::now() + pause >= deadline {
                        dropped.inc();
                        tracing::warn!(error = %err, "OTLP export dropped");
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

async fn send(
    transport: &mut Transport,
    config: &OtlpConfig,
    request: &ExportMetricsServiceRequest,
) -> Result<(), SendError> {
    match transport {
        Transport::Http(client) => {
            let mut req = client
                .post(&config.endpoint)
                .header("content-type", "application/x-protobuf")
                .body(request.encode_to_vec());
            for (k, v) in &config.headers {
                req = req.header(k.as_str(), v.expose());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| SendError::Http(e.without_url().to_string()))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(SendError::Http(format!(
                    "collector answered {}",
                    resp.status()
                )))
            }
        }
        Transport::Grpc(client) => {
            if client.is_none() {
                let channel = tonic::transport::Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| SendError::Grpc(e.to_string()))?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .connect()
                    .await
                    .map_err(|e| SendError::Grpc(e.to_string()))?;
                *client = Some(MetricsServiceClient::new(channel));
            }
            let mut req = tonic::Request::new(request.clone());
            for (k, v) in &config.headers {
                if let (Ok(key), Ok(value)) = (
                    tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                    v.expose().parse(),
                ) {
                    req.metadata_mut().insert(key, value);
                }
            }
            let grpc = client.as_mut().expect("connected above");
            match grpc.export(req).await {
                Ok(_) => Ok(()),
                Err(status) => {
                    // Reconnect next time: the channel may point at a dead collector.
                    *client = None;
                    Err(SendError::Grpc(status.message().to_owned()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_endpoint_means_export_is_off() {
        assert!(
            OtlpConfig::from_vars("svc", vars(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]))
                .is_none()
        );
    }

    #[test]
    fn http_base_endpoint_gets_the_signal_path_and_grpc_does_not() {
        let http = OtlpConfig::from_vars(
            "svc",
            vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(http.endpoint, "http://c:4318/v1/metrics");
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        let grpc = OtlpConfig::from_vars(
            "svc",
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(grpc.endpoint, "http://c:4317");
        assert_eq!(grpc.protocol, Protocol::Grpc);
    }

    #[test]
    fn signal_specific_variables_win_and_values_are_decoded() {
        let c = OtlpConfig::from_vars(
            "svc",
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "http://specific:9999/custom",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20abc,x-tenant=t1",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
                ("OTEL_SERVICE_NAME", "feed-eu"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://specific:9999/custom");
        assert_eq!(c.headers[0].0, "authorization");
        assert_eq!(c.headers[0].1.expose(), "Bearer abc");
        assert_eq!(format!("{:?}", c.headers[0].1), "***");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.service_name, "feed-eu");
        assert_eq!(
            c.resource,
            vec![("deployment.environment".into(), "prod".into())]
        );
    }

    #[test]
    fn bad_variables_name_the_variable_and_never_echo_headers() {
        let err = OtlpConfig::from_vars(
            "svc",
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]),
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"OTEL_EXPORTER_OTLP_PROTOCOL="http/json": expected `grpc` or `http/protobuf`"#
        );
        let err = OtlpConfig::from_vars(
            "svc",
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "token-without-key"),
            ]),
        )
        .unwrap()
        .unwrap_err();
        assert!(!err.to_string().contains("token-without-key"), "{err}");
        let err = OtlpConfig::from_vars(
            "svc",
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "5s"),
            ]),
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(err.var, "OTEL_EXPORTER_OTLP_TIMEOUT");
    }
}
