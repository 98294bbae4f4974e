//! `daemon`: hold every canary, reconnect with full-jitter backoff, serve the HTTP endpoints.
//!
//! Reload swaps canaries whose config changed and keeps the others running untouched.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::canary::connect_check::run_checks;
use crate::canary::session::{run_session, SessionLimits};
use crate::config::{CanaryConfig, Config};
use crate::failure::FailureReason;
use crate::measure::Retention;
use crate::measure::SequenceTracker;
use crate::record::metrics::{CanaryCollector, CanarySet, UpMeans};
use crate::record::recorder::{CanaryRecorder, CanaryState};

struct Running {
    cfg: Arc<CanaryConfig>,
    recorder: Arc<CanaryRecorder>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The fresh-connection checks, with `connect_check`: a task of their own, so the held
    /// stream's task stays small and neither waits for the other.
    checks: Option<JoinHandle<()>>,
}

impl Running {
    /// Waits for the canary's tasks after `stop` was cancelled.
    async fn stopped(self) {
        let _ = self.task.await;
        if let Some(checks) = self.checks {
            let _ = checks.await;
        }
    }
}

struct Inner {
    registry: Registry,
    /// The recorders `/metrics` renders, kept in step with `running`.
    canaries: CanarySet,
    /// Fixed for the process: a reload cannot move the listener.
    listen: SocketAddr,
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
        let canaries = CanarySet::default();
        registry.register(Box::new(CanaryCollector::new(
            canaries.clone(),
            UpMeans::Holding,
        )))?;
        let daemon = Self {
            inner: Arc::new(Inner {
                registry,
                canaries,
                listen: config.listen,
                running: Mutex::new(Vec::new()),
                started: Instant::now(),
            }),
        };
        let mut running = daemon.lock_running();
        for cfg in config.canaries {
            running.push(daemon.spawn_canary(cfg));
        }
        daemon.publish_canaries(&running);
        drop(running);
        Ok(daemon)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn listen(&self) -> SocketAddr {
        self.inner.listen
    }

    /// The running canaries' configs, in config order: the modules of `/probe`.
    pub fn modules(&self) -> Vec<Arc<CanaryConfig>> {
        self.lock_running().iter().map(|r| r.cfg.clone()).collect()
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

    /// Points the metrics collector at the canaries now running.
    fn publish_canaries(&self, running: &[Running]) {
        *self
            .inner
            .canaries
            .write()
            .unwrap_or_else(|e| e.into_inner()) =
            running.iter().map(|r| r.recorder.clone()).collect();
    }

    fn spawn_canary(&self, cfg: CanaryConfig) -> Running {
        // One copy of the config per canary, shared by the task and the reload check.
        let cfg = Arc::new(cfg);
        let recorder = Arc::new(CanaryRecorder::for_canary(&cfg, Retention::Recent));
        let stop = CancellationToken::new();
        let task = tokio::spawn(hold(cfg.clone(), recorder.clone(), stop.clone()));
        let checks = cfg.connect_check.map(|c| {
            tokio::spawn(run_checks(
                cfg.clone(),
                recorder.clone(),
                c.every,
                stop.clone(),
            ))
        });
        Running {
            cfg,
            recorder,
            stop,
            task,
            checks,
        }
    }

    /// Applies a new config: unchanged canaries keep running, changed or removed ones are
    /// closed with 1001, new ones start. `listen` changes need a restart.
    pub async fn reload(&self, new: Config) {
        let old: Vec<Running> = std::mem::take(&mut *self.lock_running());
        let mut keep = Vec::new();
        let mut stopping = Vec::new();
        for r in old {
            if new.canaries.contains(&*r.cfg) {
                keep.push(r);
            } else {
                r.stop.cancel();
                stopping.push(r);
            }
        }
        for r in stopping {
            r.stopped().await;
        }
        let mut next = Vec::new();
        for cfg in &new.canaries {
            match keep.iter().position(|r| *r.cfg == *cfg) {
                Some(i) => next.push(keep.swap_remove(i)),
                None => next.push(self.spawn_canary(cfg.clone())),
            }
        }
        // Removed canaries' series go with their recorders.
        self.publish_canaries(&next);
        *self.lock_running() = next;
        tracing::info!("configuration reloaded");
    }

    /// Closes every canary with 1001 and waits for them.
    pub async fn shutdown(&self) {
        let running: Vec<Running> = std::mem::take(&mut *self.lock_running());
        for r in &running {
            r.stop.cancel();
        }
        for r in running {
            r.stopped().await;
        }
    }
}

/// Holds one canary until `stop`: connect, watch, and on failure wait a full-jitter backoff.
async fn hold(cfg: Arc<CanaryConfig>, recorder: Arc<CanaryRecorder>, stop: CancellationToken) {
    let mut tracker = SequenceTracker::new(cfg.sequence.as_ref().map_or(0, |s| s.reorder_window));
    let limits = SessionLimits {
        shutdown: stop.clone(),
        until: None,
        stop_after_first_payload: false,
    };
    let mut backoff = wsmon::backoff::Backoff::new(cfg.backoff.initial, cfg.backoff.max);
    loop {
        let end = run_session(&cfg, &recorder, &mut tracker, &limits).await;
        recorder.end_attempt();
        if stop.is_cancelled() {
            break;
        }
        // A session that delivered data was healthy: the next failure starts the backoff over.
        if end.got_payload {
            backoff.reset();
        }
        let reason = end
            .fault
            .as_ref()
            .map_or(FailureReason::Closed, |f| f.reason);
        let delay = backoff.next_delay();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A held canary's task lives as long as its stream, so its size is paid per canary for
    /// good: connecting, closing and message handling are boxed to keep them out of it. The
    /// footprint benchmark measures the whole; this catches a large future creeping back in.
    #[test]
    fn a_held_canary_costs_little_besides_its_socket() {
        let cfg = crate::config::Config::parse(
            "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n",
            std::path::Path::new("size.yaml"),
            &|_| None,
        )
        .unwrap()
        .canaries
        .remove(0);
        let rec = Arc::new(CanaryRecorder::new("a", String::new(), Retention::Recent));
        let task = hold(Arc::new(cfg), rec, CancellationToken::new());
        let task_bytes = std::mem::size_of_val(&task);
        let config_bytes = std::mem::size_of::<CanaryConfig>();
        eprintln!("held task {task_bytes} B, config {config_bytes} B");
        assert!(
            task_bytes <= 1600,
            "the held task's future is {task_bytes} bytes"
        );
        assert!(config_bytes <= 512, "CanaryConfig is {config_bytes} bytes");
    }
}
