//! OpenTelemetry traces of probe runs, exported over OTLP. Off unless configured.
//!
//! Each `once` run and each daemon connect cycle is one trace: a root `canary run` span, with
//! child spans for the DNS, TCP, TLS and upgrade phases, the first payload, and every
//! publish-to-receive round. Spans carry the times the canary measured (they are built from
//! the recorder's events, not by timing the code twice), OTel semantic-convention attributes,
//! and an error status with the `failure_reason` when the run fails.
//!
//! Traces turn on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or when
//! `OTEL_TRACES_EXPORTER=otlp` (the endpoint then comes from `OTEL_EXPORTER_OTLP_ENDPOINT`).
//! The protocol follows `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceInitError {
    #[error("{var}={value:?}: expected `grpc` or `http/protobuf`")]
    Protocol { var: &'static str, value: String },
    #[error("building the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The installed tracer provider; [`Tracing::shutdown`] flushes pending spans.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    pub fn shutdown(self) {
        ENABLED.store(false, Relaxed);
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "flushing traces failed");
        }
    }
}

fn non_empty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Installs an OTLP tracer provider if the environment asks for traces.
pub fn init_from_env() -> Result<Option<Tracing>, TraceInitError> {
    let wanted = non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || non_empty("OTEL_TRACES_EXPORTER")
            .is_some_and(|v| v.split(',').any(|e| e.trim() == "otlp"));
    if !wanted {
        return Ok(None);
    }
    let (var, protocol) = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|var| non_empty(var).map(|v| (var, v)))
    .unwrap_or(("", "http/protobuf".into()));
    let exporter = match protocol.trim() {
        "grpc" => SpanExporter::builder().with_tonic().build()?,
        "http/protobuf" => SpanExporter::builder().with_http().build()?,
        _ => {
            return Err(TraceInitError::Protocol {
                var,
                value: protocol,
            })
        }
    };
    let mut resource = Resource::builder().with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new(
            "service.instance.id",
            format!("{:032x}", rand::random::<u128>()),
        ),
    ]);
    if non_empty("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("wsmon-probe");
    }
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build();
    global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Relaxed);
    tracing::info!(protocol = %protocol, "OTLP traces of probe runs on");
    Ok(Some(Tracing { provider }))
}

/// The spans of one connection attempt and the stream it held.
pub struct AttemptTrace {
    cx: Context,
    failed: bool,
}

/// Child span names, one per measured step.
pub mod step {
    pub const FIRST_PAYLOAD: &str = "first payload";
    pub const PUBLISH_ROUND: &str = "publish round";
}

impl AttemptTrace {
    /// Starts the root span of an attempt; `None` when tracing is off. `target` must already
    /// be redacted.
    pub fn start(canary: &str, target: &str) -> Option<Self> {
        if !ENABLED.load(Relaxed) {
            return None;
        }
        let mut attributes = vec![
            KeyValue::new("wsmon.canary", canary.to_string()),
            KeyValue::new("url.full", target.to_string()),
            KeyValue::new("network.protocol.name", "websocket"),
        ];
        if let Ok(url) = url::Url::parse(target) {
            if let Some(host) = url.host_str() {
                attributes.push(KeyValue::new("server.address", host.to_string()));
            }
            if let Some(port) = url.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        let tracer = global::tracer("wsmon-probe");
        let root = tracer
            .span_builder("canary run")
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start(&tracer);
        Some(Self {
            cx: Context::current_with_span(root),
            failed: false,
        })
    }

    /// A finished child step that took `took` and ended now.
    pub fn step(&self, name: &'static str, took: Duration) {
        let end = SystemTime::now();
        let tracer = global::tracer("wsmon-probe");
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(end.checked_sub(took).unwrap_or(end))
            .start_with_context(&tracer, &self.cx);
        span.end_with_timestamp(end);
    }

    pub fn close_code(&self, code: u16) {
        self.cx
            .span()
            .set_attribute(KeyValue::new("websocket.close_code", i64::from(code)));
    }

    /// Marks the run failed with its first failure, as the verdict does.
    pub fn fail(&mut self, reason: &'static str, detail: &str) {
        if std::mem::replace(&mut self.failed, true) {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", reason));
        span.set_attribute(KeyValue::new(
            "wsmon.failure_detail",
            detail.chars().take(256).collect::<String>(),
        ));
        span.set_status(Status::error(reason));
    }

    pub fn end(self) {
        self.cx.span().end();
    }
}
