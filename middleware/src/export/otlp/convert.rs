//! Registry snapshot to OTLP request: the one place that knows both data models.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use rand::Rng;

use super::OtlpConfig;
use crate::catalog::Kind;

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
pub(super) fn resource(config: &OtlpConfig, service_version: &str) -> Resource {
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
pub(super) fn to_request(
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
