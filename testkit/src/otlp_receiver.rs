//! A real OTLP receiver for tests, built on the official opentelemetry-proto definitions:
//! gRPC (tonic) and HTTP/protobuf, for metrics and traces. It keeps every request it decodes,
//! with the request headers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// Request headers as `(name, value)` pairs.
pub type Headers = Vec<(String, String)>;

/// Everything a receiver has decoded so far.
#[derive(Clone, Default)]
pub struct Received {
    metrics: Arc<Mutex<Vec<(ExportMetricsServiceRequest, Headers)>>>,
    traces: Arc<Mutex<Vec<(ExportTraceServiceRequest, Headers)>>>,
}

impl Received {
    pub fn metric_requests(&self) -> usize {
        self.metrics.lock().unwrap().len()
    }

    /// The newest metrics request and its headers.
    pub fn last_metrics(&self) -> (ExportMetricsServiceRequest, Headers) {
        self.metrics
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a metrics export arrived")
    }

    /// Every span received so far, across requests.
    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(r, _)| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter().cloned())
            .collect()
    }

    /// Resource attributes of the first trace request.
    pub fn trace_resource(&self) -> Vec<KeyValue> {
        self.traces.lock().unwrap()[0].0.resource_spans[0]
            .resource
            .clone()
            .unwrap_or_default()
            .attributes
    }
}

fn grpc_headers(metadata: &tonic::metadata::MetadataMap) -> Headers {
    metadata
        .iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                Some((k.to_string(), v.to_str().unwrap_or("").to_string()))
            }
            _ => None,
        })
        .collect()
}

fn http_headers(headers: &HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = grpc_headers(request.metadata());
        self.metrics
            .lock()
            .unwrap()
            .push((request.into_inner(), headers));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = grpc_headers(request.metadata());
        self.traces
            .lock()
            .unwrap()
            .push((request.into_inner(), headers));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts a gRPC receiver for metrics and traces on a free loopback port.
pub async fn grpc() -> (SocketAddr, Received) {
    let received = Received::default();
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(received.clone()))
            .add_service(TraceServiceServer::new(received.clone()))
            .serve_with_incoming(incoming),
    );
    (addr, received)
}

/// Starts an HTTP/protobuf receiver (`/v1/metrics`, `/v1/traces`) on a free loopback port.
pub async fn http() -> (SocketAddr, Received) {
    let received = Received::default();
    let (metrics, traces) = (received.clone(), received.clone());
    let app = axum::Router::new()
        .route(
            "/v1/metrics",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportMetricsServiceRequest::decode(body).expect("valid protobuf");
                metrics
                    .metrics
                    .lock()
                    .unwrap()
                    .push((request, http_headers(&headers)));
                ExportMetricsServiceResponse::default().encode_to_vec()
            }),
        )
        .route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body).expect("valid protobuf");
                traces
                    .traces
                    .lock()
                    .unwrap()
                    .push((request, http_headers(&headers)));
                ExportTraceServiceResponse::default().encode_to_vec()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// String attributes as a sorted map; panics on a non-string value.
pub fn string_attributes(kvs: &[KeyValue]) -> std::collections::BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref())? {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                any_value::Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), v))
        })
        .collect()
}
