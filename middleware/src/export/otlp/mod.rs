//! OTLP metric export over gRPC or HTTP/protobuf (feature `otlp`).
//!
//! The exporter reads the same registry a Prometheus scrape reads, on its own task, so turning
//! it on adds nothing to the message path. It sends what the recorders already aggregated:
//! cumulative sums, gauges, and histograms with the catalog's explicit bucket boundaries. (The
//! OpenTelemetry SDK's metric pipeline only accepts data from its own instruments and has no
//! asynchronous histogram, so feeding it would mean recording every message twice.) Requests
//! are built from the official `opentelemetry-proto` definitions, which stay private: nothing
//! in this module's API names a type of an OTLP crate.
//!
//! A collector that is down costs a bounded amount: one request in flight, retried with
//! jittered backoff until the next interval, then dropped and counted in
//! `wsmon_otlp_dropped_exports_total`.
//!
//! ```no_run
//! # async fn run(wsmon: wsmon::WsMon) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use wsmon::export::otlp::{self, OtlpConfig};
//! use wsmon::Secret;
//!
//! let config = OtlpConfig::new("http://collector:4318", "my-service")
//!     .interval(Duration::from_secs(15))
//!     .header("authorization", Secret::from_env("OTLP_TOKEN")?);
//! let _exporter = otlp::spawn(wsmon.registry().clone(), config, env!("CARGO_PKG_VERSION"))?;
//! # Ok(()) }
//! ```

mod convert;
mod env;
mod transport;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use prometheus::Registry;

use crate::catalog;
use crate::Secret;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// gRPC (`grpc`), to the collector's port 4317.
    Grpc,
    /// HTTP with a protobuf body (`http/protobuf`), to port 4318's `/v1/metrics`.
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

/// Where and how to export. Built with [`OtlpConfig::new`] or [`OtlpConfig::grpc`] and the
/// setters, or read from the environment with [`OtlpConfig::from_env`].
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// For gRPC, the collector address (`http://host:4317`); for HTTP, the full metrics URL
    /// (`http://host:4318/v1/metrics`).
    endpoint: String,
    protocol: Protocol,
    headers: Vec<(String, Secret)>,
    interval: Duration,
    timeout: Duration,
    /// Resource attributes beyond `service.name`, `service.version`, `service.instance.id`.
    resource: Vec<(String, String)>,
    service_name: String,
}

/// A bad `OTEL_*` variable: which one, its value, and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: expected {expected}")]
#[non_exhaustive]
pub struct OtlpConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// Its value (`***` for the headers variable, which may hold a token).
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl OtlpConfig {
    /// HTTP/protobuf to `endpoint` (a base URL; `/v1/metrics` is appended), every 60 s, with
    /// a 10 s timeout, no headers and no extra resource attributes.
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            endpoint: env::signal_url(&endpoint.into()),
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            resource: Vec::new(),
            service_name: service_name.into(),
        }
    }

    /// gRPC instead of HTTP; `endpoint` is the collector address. Other defaults as
    /// [`OtlpConfig::new`].
    pub fn grpc(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol: Protocol::Grpc,
            ..Self::new("", service_name)
        }
    }

    /// How often to export. Default: 60 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The timeout of one export request (and of the gRPC connect). Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a request header (repeatable), such as the collector's token.
    pub fn header(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// Adds a resource attribute (repeatable); it may override `service.name` or
    /// `service.version`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The transport.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// A running exporter; dropping it stops the export task.
pub struct OtlpExporter {
    task: tokio::task::JoinHandle<()>,
    endpoint: String,
    protocol: Protocol,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("running", &!self.task.is_finished())
            .finish()
    }
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
    let resource = convert::resource(&config, service_version);
    tracing::info!(
        endpoint = %config.endpoint,
        protocol = ?config.protocol,
        interval = ?config.interval,
        "OTLP metric export on"
    );
    let (endpoint, protocol) = (config.endpoint.clone(), config.protocol);
    let task = tokio::spawn(transport::run(registry, config, resource, dropped));
    Ok(OtlpExporter {
        task,
        endpoint,
        protocol,
    })
}

/// Why [`spawn_from_env`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpStartError {
    /// A variable is malformed.
    #[error("invalid OpenTelemetry environment: {0}")]
    Config(#[from] OtlpConfigError),
    /// The exporter's own counter could not be registered.
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
