//! `/probe?target=URL&module=NAME`: an on-demand check in the style of blackbox_exporter.
//!
//! The module is a canary from the config used as a template: its timeouts, limits, origin and
//! subprotocols apply to `target`. The check connects, waits for the first payload and closes.
//! Each request gets its own registry, so results never leak between scrapes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Gauge, GaugeVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use wsmon_catalog::{self as catalog, MetricDef};

use crate::canary::session::SessionLimits;
use crate::config::{CanaryConfig, TargetUrl};
use crate::measure::Retention;
use crate::record::recorder::CanaryRecorder;
use crate::run::daemon::Daemon;

/// Used when Prometheus does not send its scrape timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Kept back from the scrape timeout so the answer arrives before Prometheus gives up.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(500);
/// A scrape timeout header above this is taken as this (Prometheus' own limit is the interval).
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(serde::Deserialize)]
pub struct ProbeParams {
    target: Option<String>,
    module: Option<String>,
}

pub fn router() -> Router<Daemon> {
    Router::new().route("/probe", get(probe))
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg + "\n").into_response()
}

/// The module's settings aimed at `target`. Headers (which may carry credentials) go only to
/// the module's own host: an arbitrary target must not receive the module's secrets.
pub fn module_for_target(module: &CanaryConfig, target: TargetUrl) -> CanaryConfig {
    let mut cfg = module.clone();
    let same_host = module.url.expose().host_str() == target.expose().host_str();
    if !same_host {
        cfg.headers.clear();
    }
    cfg.url = target;
    cfg
}

fn scrape_timeout(headers: &HeaderMap) -> Duration {
    headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        // Capped before converting: `from_secs_f64(1e300)` would panic the handler.
        .map(|s| Duration::from_secs_f64(s.min(MAX_TIMEOUT.as_secs_f64())))
        .map(|d| d.saturating_sub(TIMEOUT_MARGIN))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT)
}

async fn probe(
    State(daemon): State<Daemon>,
    Query(params): Query<ProbeParams>,
    headers: HeaderMap,
) -> Response {
    let modules = daemon.modules();
    let module = match params.module.as_deref() {
        Some(name) => match modules.iter().find(|c| c.name == name) {
            Some(m) => m.clone(),
            None => {
                let known: Vec<&str> = modules.iter().map(|c| c.name.as_str()).collect();
                return bad_request(format!(
                    "unknown module {:?}; modules are the configured canaries: {}",
                    name,
                    known.join(", ")
                ));
            }
        },
        None if modules.len() == 1 => modules[0].clone(),
        None => {
            return bad_request("module is required when more than one canary is configured".into())
        }
    };
    let target = match params.target.as_deref().map(TargetUrl::parse) {
        Some(Ok(t)) if ["ws", "wss"].contains(&t.scheme()) && t.expose().host_str().is_some() => t,
        Some(_) => return bad_request("target must be a ws:// or wss:// URL".into()),
        None => return bad_request("target is required, e.g. /probe?target=ws://host/ws".into()),
    };
    let cfg = module_for_target(&module, target);
    let started = Instant::now();
    let recorder = Arc::new(CanaryRecorder::new(
        &cfg.name,
        cfg.url.redacted(),
        Retention::WholeRun,
    ));
    let limits = SessionLimits {
        shutdown: CancellationToken::new(),
        until: Some(started + scrape_timeout(&headers)),
        stop_after_first_payload: true,
    };
    let run = crate::run::once::run_one(cfg, recorder, limits).await;
    let registry = Registry::new();
    if let Err(e) = record(&registry, &run, started.elapsed()) {
        tracing::error!(error = %e, "registering probe metrics failed");
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            wsmon::export::prometheus::CONTENT_TYPE,
        )],
        wsmon::export::prometheus::render(&registry),
    )
        .into_response()
}

fn gauge(registry: &Registry, def: &MetricDef, value: f64) -> Result<(), prometheus::Error> {
    let g = Gauge::with_opts(Opts::new(def.name, def.help))?;
    g.set(value);
    registry.register(Box::new(g))
}

fn gauge_vec(registry: &Registry, def: &MetricDef) -> Result<GaugeVec, prometheus::Error> {
    let g = GaugeVec::new(Opts::new(def.name, def.help), def.labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Writes one probe's result into `registry` under the catalog's `probe_*` names.
pub fn record(
    registry: &Registry,
    run: &crate::run::once::CanaryRun,
    took: Duration,
) -> Result<(), prometheus::Error> {
    let s = &run.status;
    gauge(
        registry,
        catalog::PROBE_SUCCESS,
        if run.success() { 1.0 } else { 0.0 },
    )?;
    gauge(
        registry,
        catalog::PROBE_DURATION_SECONDS,
        took.as_secs_f64(),
    )?;
    gauge(
        registry,
        catalog::PROBE_WEBSOCKET_STATUS_CODE,
        f64::from(s.status_code.unwrap_or(0)),
    )?;
    gauge(
        registry,
        catalog::PROBE_WEBSOCKET_CONNECTION_UPGRADED,
        if s.upgraded { 1.0 } else { 0.0 },
    )?;
    let phases = gauge_vec(registry, catalog::PROBE_WEBSOCKET_CONNECT_PHASE_SECONDS)?;
    for (phase, value) in [
        ("dns", s.connect.dns),
        ("tcp", s.connect.tcp),
        ("tls", s.connect.tls),
        ("upgrade", s.connect.upgrade),
    ] {
        if let Some(v) = value {
            phases.with_label_values(&[phase]).set(v);
        }
    }
    if let Some(fp) = s.first_payload {
        gauge(registry, catalog::PROBE_WEBSOCKET_FIRST_PAYLOAD_SECONDS, fp)?;
    }
    let failure = gauge_vec(registry, catalog::PROBE_WEBSOCKET_FAILURE_INFO)?;
    if let Some(f) = s.verdict.first() {
        failure.with_label_values(&[f.reason.as_str()]).set(1.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Defaults;

    #[test]
    fn module_headers_go_only_to_the_module_host() {
        let mut module = CanaryConfig::new(
            "m",
            TargetUrl::parse("ws://feed.internal/ws").unwrap(),
            &Defaults::default(),
        );
        module.headers = vec![(
            "Authorization".into(),
            crate::config::Secret::new("Bearer t"),
        )];
        let same = module_for_target(
            &module,
            TargetUrl::parse("ws://feed.internal/other").unwrap(),
        );
        assert_eq!(same.headers.len(), 1);
        let other = module_for_target(&module, TargetUrl::parse("ws://evil.example/ws").unwrap());
        assert!(other.headers.is_empty());
    }

    #[test]
    fn the_scrape_timeout_header_bounds_the_probe() {
        let mut h = HeaderMap::new();
        assert_eq!(scrape_timeout(&h), DEFAULT_TIMEOUT);
        h.insert("X-Prometheus-Scrape-Timeout-Seconds", "3".parse().unwrap());
        assert_eq!(scrape_timeout(&h), Duration::from_millis(2500));
        h.insert(
            "X-Prometheus-Scrape-Timeout-Seconds",
            "nan".parse().unwrap(),
        );
        assert_eq!(scrape_timeout(&h), DEFAULT_TIMEOUT);
        // Found by reading for from_secs_f64 after the timestamp fuzz: this used to panic.
        h.insert(
            "X-Prometheus-Scrape-Timeout-Seconds",
            "1e300".parse().unwrap(),
        );
        assert_eq!(scrape_timeout(&h), MAX_TIMEOUT - TIMEOUT_MARGIN);
    }
}
