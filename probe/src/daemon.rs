//! `daemon`: hold every canary, reconnect with full-jitter backoff, serve the HTTP endpoints.
//!
//! Reload swaps canaries whose config changed and keeps the others running untouched.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff;
use crate::canary::{run_session, SessionLimits};
use crate::config::{CanaryConfig, Config};
use crate::failure::FailureReason;
use crate::measure::SequenceTracker;
use crate::metrics::CanaryMetrics;
use crate::recorder::{CanaryRecorder, CanaryState};

struct Running {
    cfg: CanaryConfig,
    recorder: Arc<CanaryRecorder>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct Inner {
    registry: Registry,
    metrics: CanaryMetrics,
    config: RwLock<Config>,
    running: Mutex<Vec<Running>>,
    started: Instant,
}

/// The running daemon; cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

impl Daemon {
    /// Registers the canary metrics and starts every canary of `config`.
    pub fn start(config: Config) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let metrics = CanaryMetrics::register(&registry)?;
        let daemon = Self {
            inner: Arc::new(Inner {
                registry,
                metrics,
                config: RwLock::new(config.clone()),
                running: Mutex::new(Vec::new()),
                started: Instant::now(),
            }),
        };
        let mut running = daemon.lock_running();
        for cfg in config.canaries {
            running.push(daemon.spawn_canary(cfg));
        }
        drop(running);
        Ok(daemon)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn config(&self) -> Config {
        self.inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }

    /// Every canary's recorder, in config order.
    pub fn recorders(&self) -> Vec<Arc<CanaryRecorder>> {
        self.lock_running()
            .iter()
            .map(|r| r.recorder.clone())
            .collect()
    }

    fn spawn_canary(&self, cfg: CanaryConfig) -> Running {
        let recorder = Arc::new(CanaryRecorder::new(
            &cfg.name,
            cfg.url.redacted(),
            Some(self.inner.metrics.clone()),
        ));
        let stop = CancellationToken::new();
        let task = tokio::spawn(hold(cfg.clone(), recorder.clone(), stop.clone()));
        Running {
            cfg,
            recorder,
            stop,
            task,
        }
    }

    /// Applies a new config: unchanged canaries keep running, changed or removed ones are
    /// closed with 1001, new ones start. `listen` changes need a restart.
    pub async fn reload(&self, new: Config) {
        let old: Vec<Running> = std::mem::take(&mut *self.lock_running());
        let mut keep = Vec::new();
        let mut stopping = Vec::new();
        for r in old {
            if new.canaries.contains(&r.cfg) {
                keep.push(r);
            } else {
                r.stop.cancel();
                stopping.push(r);
            }
        }
        for r in stopping {
            let _ = r.task.await;
            self.inner.metrics.forget(&r.cfg.name);
        }
        let mut next = Vec::new();
        for cfg in &new.canaries {
            match keep.iter().position(|r| r.cfg == *cfg) {
                Some(i) => next.push(keep.swap_remove(i)),
                None => next.push(self.spawn_canary(cfg.clone())),
            }
        }
        *self.lock_running() = next;
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = new;
        tracing::info!("configuration reloaded");
    }

    /// Closes every canary with 1001 and waits for them.
    pub async fn shutdown(&self) {
        let running: Vec<Running> = std::mem::take(&mut *self.lock_running());
        for r in &running {
            r.stop.cancel();
        }
        for r in running {
            let _ = r.task.await;
        }
    }
}

/// Holds one canary until `stop`: connect, watch, and on failure wait a full-jitter backoff.
async fn hold(cfg: CanaryConfig, recorder: Arc<CanaryRecorder>, stop: CancellationToken) {
    let mut tracker = SequenceTracker::new(cfg.sequence.as_ref().map_or(0, |s| s.reorder_window));
    let limits = SessionLimits {
        shutdown: stop.clone(),
        until: None,
        stop_after_first_payload: false,
    };
    let mut attempt: u32 = 0;
    loop {
        let end = run_session(&cfg, &recorder, &mut tracker, &limits).await;
        recorder.end_attempt();
        if stop.is_cancelled() {
            break;
        }
        // A session that delivered data was healthy: the next failure starts the backoff over.
        if end.got_payload {
            attempt = 0;
        }
        let reason = end
            .fault
            .as_ref()
            .map_or(FailureReason::Closed, |f| f.reason);
        let delay = backoff::next_delay(&cfg.backoff, attempt);
        attempt = attempt.saturating_add(1);
        tracing::info!(canary = %cfg.name, reason = reason.as_str(), delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
        recorder.set_state(CanaryState::Backoff);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => break,
        }
        recorder.reconnect(reason);
    }
    recorder.set_state(CanaryState::Stopped);
}
