//! Sending requests: HTTP/protobuf through reqwest, gRPC through tonic, and the export loop
//! with its bounded retries.

use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::{IntCounter, Registry};
use prost::Message as _;

use super::convert::to_request;
use super::{OtlpConfig, Protocol};
use crate::backoff::Backoff;

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

pub(super) async fn run(
    registry: Registry,
    config: OtlpConfig,
    resource: Resource,
    dropped: IntCounter,
) {
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
