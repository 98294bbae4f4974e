//! `once`: run each canary for a bounded time, evaluate it, and report.
//!
//! A fault that ends the stream ends that canary's run early with that verdict; `duration` is an
//! upper bound, not a promise to keep retrying. When several faults occur, the first one wins.
//! With `stop_after_first_payload` (`--until-first-payload`) a run also ends, successfully
//! unless a check failed, once the first data message has been checked, as `/probe` does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use crate::canary::session::{run_session, SessionLimits};
use crate::config::CanaryConfig;
use crate::failure::FailureReason;
use crate::measure::Retention;
use crate::measure::SequenceTracker;
use crate::record::metrics::{CanaryCollector, CanarySet, UpMeans};
use crate::record::recorder::{CanaryRecorder, CanaryState, CanaryStatus};

/// One canary's evaluated run.
#[derive(Debug, Clone)]
pub struct CanaryRun {
    pub status: CanaryStatus,
    pub duration: Duration,
}

impl CanaryRun {
    pub fn success(&self) -> bool {
        self.status.verdict.success()
    }
}

/// Runs `canaries` concurrently for at most `duration`, recording into `registry`.
pub async fn run(
    canaries: &[CanaryConfig],
    duration: Duration,
    registry: &Registry,
) -> Result<Vec<CanaryRun>, prometheus::Error> {
    run_with(canaries, duration, false, registry).await
}

/// As [`run`]; with `stop_after_first_payload` each canary closes with 1000 as soon as its first
/// data message has been checked, and `duration` only bounds the wait for it.
pub async fn run_with(
    canaries: &[CanaryConfig],
    duration: Duration,
    stop_after_first_payload: bool,
    registry: &Registry,
) -> Result<Vec<CanaryRun>, prometheus::Error> {
    let recorders: Vec<Arc<CanaryRecorder>> = canaries
        .iter()
        .map(|cfg| Arc::new(CanaryRecorder::for_canary(cfg, Retention::WholeRun)))
        .collect();
    let set = CanarySet::new(recorders.clone().into());
    registry.register(Box::new(CanaryCollector::new(set, UpMeans::Verdict)))?;
    let runs = canaries.iter().zip(recorders).map(|(cfg, recorder)| {
        let limits = SessionLimits {
            shutdown: CancellationToken::new(),
            until: Some(Instant::now() + duration),
            stop_after_first_payload,
        };
        run_one(cfg.clone(), recorder, limits)
    });
    Ok(futures_util::future::join_all(runs).await)
}

/// One bounded session, evaluated. Also the body of a `/probe` request.
pub async fn run_one(
    cfg: CanaryConfig,
    recorder: Arc<CanaryRecorder>,
    limits: SessionLimits,
) -> CanaryRun {
    let started = Instant::now();
    let mut tracker = SequenceTracker::new(cfg.sequence.as_ref().map_or(0, |s| s.reorder_window));
    let end = run_session(&cfg, &recorder, &mut tracker, &limits).await;
    if end.fault.is_none() && !end.got_payload {
        recorder.fault(
            FailureReason::FirstPayloadTimeout,
            "no data message before the run ended",
        );
    }
    recorder.end_attempt();
    recorder.set_state(CanaryState::Stopped);
    CanaryRun {
        status: recorder.snapshot(),
        duration: started.elapsed(),
    }
}
