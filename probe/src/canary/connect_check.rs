//! The fresh-connection check (`connect_check: { every }`): beside the held stream, a new
//! connection every `every` that must upgrade and deliver its first data message, then closes
//! with 1000.
//!
//! A held stream proves that old connections still work, not that a new one can connect: a
//! release that breaks every new upgrade leaves streams opened before it flowing (on an old
//! instance, or an old nginx worker after `nginx -s reload`). This check reports "can a new
//! client connect right now" in its own series, so the two never mask each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::canary::session::{run_session, SessionLimits};
use crate::config::CanaryConfig;
use crate::failure::FailureReason;
use crate::measure::{Fault, Retention, SequenceTracker};
use crate::record::recorder::CanaryRecorder;

/// How one check went.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Connect phases plus the first payload's wait, or the fault that failed the check.
    pub result: Result<Duration, Fault>,
    /// The upgrade response's status, if one arrived.
    pub status_code: Option<u16>,
}

/// Runs one check of `cfg` (already [`CanaryConfig::for_connect_check`]); `None` if `stop`
/// came first.
pub async fn check_once(cfg: &CanaryConfig, stop: &CancellationToken) -> Option<CheckOutcome> {
    // A scratch record: the check's phases and faults must not count as the held stream's.
    let scratch = CanaryRecorder::new(&cfg.name, cfg.url.redacted(), Retention::WholeRun);
    let mut tracker = SequenceTracker::new(cfg.sequence.as_ref().map_or(0, |s| s.reorder_window));
    // Each phase is bounded by connect_timeout and the payload by first_payload_within; this
    // is only the backstop.
    let limit = cfg.connect_timeout * 4 + cfg.first_payload_within + Duration::from_secs(1);
    let limits = SessionLimits {
        shutdown: stop.clone(),
        until: Some(Instant::now() + limit),
        stop_after_first_payload: true,
    };
    let end = Box::pin(run_session(cfg, &scratch, &mut tracker, &limits)).await;
    scratch.end_attempt();
    if stop.is_cancelled() {
        return None;
    }
    let s = scratch.snapshot();
    let result = match end.fault {
        Some(f) => Err(f),
        None if !end.got_payload => Err(Fault::new(
            FailureReason::FirstPayloadTimeout,
            format!("no data message within {limit:?}"),
        )),
        None => {
            let c = s.connect;
            let secs = [c.dns, c.tcp, c.tls, c.upgrade, s.first_payload]
                .into_iter()
                .flatten()
                .sum::<f64>();
            Ok(Duration::from_secs_f64(secs))
        }
    };
    Some(CheckOutcome {
        result,
        status_code: s.status_code,
    })
}

/// Runs a check every `every` (±10%, the first one at a random point within the first
/// interval so that canaries started together do not check together) until `stop`.
pub async fn run_checks(
    cfg: Arc<CanaryConfig>,
    rec: Arc<CanaryRecorder>,
    every: Duration,
    stop: CancellationToken,
) {
    let check_cfg = cfg.for_connect_check();
    let mut delay = every.mul_f64(rand::rng().random_range(0.0..1.0));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return,
        }
        let Some(outcome) = check_once(&check_cfg, &stop).await else {
            return;
        };
        match &outcome.result {
            Ok(took) => {
                tracing::debug!(canary = %cfg.name, took_ms = took.as_millis() as u64, "connect check passed")
            }
            Err(f) => {
                tracing::warn!(canary = %cfg.name, reason = f.reason.as_str(), detail = %f.detail, "connect check failed")
            }
        }
        rec.connect_check(outcome.result.as_ref(), outcome.status_code);
        delay = every.mul_f64(rand::rng().random_range(0.9..1.1));
    }
}
