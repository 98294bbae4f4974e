//! The standard `OTEL_*` environment variables, read into an [`OtlpConfig`].

use std::time::Duration;

use super::{OtlpConfig, OtlpConfigError, Protocol};
use crate::Secret;

impl OtlpConfig {
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
                    .map(|(k, v)| (k, Secret::new(v)))
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

pub(super) fn signal_url(base: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::otlp::Protocol;
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
