//! One canary's live record: the status that `once`, `/status` and the demo read, and the
//! metric series that `/metrics` renders from it. Every event updates both in one place.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::config::CanaryConfig;
use crate::failure::FailureReason;
use crate::measure::{Fault, LatencyStats, Retention, SequenceDelta, Verdict};
use crate::record::history::{History, HistoryView};
use crate::record::series::{CanarySeries, ExpectedSeries, Phase};
use crate::record::trace::{step, AttemptTrace};
use crate::resume::ResumeOutcome;
use wsmon_catalog as catalog;

/// Failures kept for the status page.
const RECENT_FAILURES: usize = 10;
/// Characters of the last message kept for the status page.
const PREVIEW_CHARS: usize = 160;

/// What the canary is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryState {
    Connecting,
    Up,
    Stalled,
    /// Waiting to reconnect after a failure.
    Backoff,
    Stopped,
}

impl CanaryState {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryState::Connecting => "connecting",
            CanaryState::Up => "up",
            CanaryState::Stalled => "stalled",
            CanaryState::Backoff => "backoff",
            CanaryState::Stopped => "stopped",
        }
    }
}

/// Connect-phase durations of the latest connection attempt, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ConnectPhases {
    pub dns: Option<f64>,
    pub tcp: Option<f64>,
    pub tls: Option<f64>,
    pub upgrade: Option<f64>,
}

/// A failure as shown on the status page.
#[derive(Debug, Clone)]
pub struct RecentFailure {
    pub at: SystemTime,
    pub fault: Fault,
}

/// Everything known about one canary. Cloned out for reports; never holds secrets.
#[derive(Debug, Clone)]
pub struct CanaryStatus {
    pub name: String,
    /// The target with credentials redacted.
    pub target: String,
    pub state: CanaryState,
    pub connect: ConnectPhases,
    /// HTTP status of the latest upgrade response.
    pub status_code: Option<u16>,
    pub upgraded: bool,
    pub first_payload: Option<f64>,
    pub messages: u64,
    pub sequence: SequenceDelta,
    pub stalls: u64,
    pub publishes: u64,
    pub publish_timeouts: u64,
    pub reconnects: u64,
    /// Messages resumed connections delivered that were published before they connected.
    pub replayed: u64,
    pub freshness: LatencyStats,
    pub e2e: LatencyStats,
    pub heartbeat_rtt: LatencyStats,
    pub head_lag: Option<u64>,
    pub last_message_at: Option<Instant>,
    pub last_message_preview: String,
    pub close_code: Option<u16>,
    pub close_reason: String,
    pub verdict: Verdict,
    pub recent_failures: VecDeque<RecentFailure>,
    /// The series `/metrics` renders beside the counts above.
    pub series: CanarySeries,
    /// The series rendered at zero until they move.
    pub expected: ExpectedSeries,
    /// The fresh-connection checks, apart from the held stream above.
    pub connect_check: ConnectCheckStatus,
}

/// What the fresh-connection checks found; `last` is `None` before the first one.
#[derive(Debug, Clone, Default)]
pub struct ConnectCheckStatus {
    pub last: Option<ConnectCheckResult>,
    pub checks: u64,
}

/// The latest check: when, its upgrade status, and its fault if it failed.
#[derive(Debug, Clone)]
pub struct ConnectCheckResult {
    pub at: SystemTime,
    pub status_code: Option<u16>,
    pub fault: Option<Fault>,
}

impl CanaryStatus {
    pub fn last_message_age(&self, now: Instant) -> Option<Duration> {
        self.last_message_at
            .map(|at| now.saturating_duration_since(at))
    }

    /// Latest freshness samples in seconds, oldest first; publish-to-receive times for a
    /// stream without server timestamps. Empty unless kept with [`Retention::Recent`].
    pub fn sparkline(&self) -> Vec<f64> {
        if self.freshness.count() > 0 {
            self.freshness.recent()
        } else {
            self.e2e.recent()
        }
    }
}

/// One canary's record, shared between its task, the HTTP handlers, reports and the
/// metrics collector (which renders it at scrape time).
pub struct CanaryRecorder {
    status: Mutex<CanaryStatus>,
    /// The current attempt's spans, when traces are on.
    trace: Mutex<Option<AttemptTrace>>,
    /// The 24-hour history for `/status`; locked after `status` when both are held.
    history: Mutex<History>,
}

impl CanaryRecorder {
    pub fn new(name: &str, target: String, retention: Retention) -> Self {
        Self {
            status: Mutex::new(CanaryStatus {
                name: name.to_string(),
                target,
                state: CanaryState::Connecting,
                connect: ConnectPhases::default(),
                status_code: None,
                upgraded: false,
                first_payload: None,
                messages: 0,
                sequence: SequenceDelta::default(),
                stalls: 0,
                publishes: 0,
                publish_timeouts: 0,
                reconnects: 0,
                replayed: 0,
                freshness: LatencyStats::new(retention),
                e2e: LatencyStats::new(retention),
                heartbeat_rtt: LatencyStats::new(retention),
                head_lag: None,
                last_message_at: None,
                last_message_preview: String::new(),
                close_code: None,
                close_reason: String::new(),
                verdict: Verdict::default(),
                recent_failures: VecDeque::new(),
                series: CanarySeries::default(),
                expected: ExpectedSeries::default(),
                connect_check: ConnectCheckStatus::default(),
            }),
            trace: Mutex::new(None),
            history: Mutex::new(History::new()),
        }
    }

    /// The record of canary `cfg`, whose series exist at zero from the start.
    pub fn for_canary(cfg: &CanaryConfig, retention: Retention) -> Self {
        let rec = Self::new(&cfg.name, cfg.url.redacted(), retention);
        rec.lock().expected = ExpectedSeries::for_canary(cfg);
        rec
    }

    // One canary's events come from one task, so this lock is never contended on the hot path.
    fn lock(&self) -> MutexGuard<'_, CanaryStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name(&self) -> String {
        self.lock().name.clone()
    }

    pub fn snapshot(&self) -> CanaryStatus {
        self.lock().clone()
    }

    /// Reads the status in place, for the collector's scrape of thousands of canaries.
    pub fn with_status<T>(&self, f: impl FnOnce(&CanaryStatus) -> T) -> T {
        f(&self.lock())
    }

    fn history_slot(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The history as of now, for `/status`.
    pub fn history(&self) -> HistoryView {
        self.history_slot().view(SystemTime::now())
    }

    /// Moves `s` to `to`, noting the change in the history.
    fn transition(&self, s: &mut CanaryStatus, to: CanaryState) {
        if s.state != to {
            self.history_slot().state_change(
                SystemTime::now(),
                s.state.as_str(),
                to.as_str(),
                to == CanaryState::Up,
            );
            s.state = to;
        }
    }

    pub fn set_state(&self, state: CanaryState) {
        let mut s = self.lock();
        self.transition(&mut s, state);
    }

    pub fn begin_attempt(&self) {
        let mut s = self.lock();
        self.transition(&mut s, CanaryState::Connecting);
        s.connect = ConnectPhases::default();
        s.status_code = None;
        s.upgraded = false;
        let trace = AttemptTrace::start(&s.name, &s.target);
        drop(s);
        if let Some(previous) = std::mem::replace(&mut *self.trace_slot(), trace) {
            previous.end();
        }
    }

    /// Ends the attempt's trace; called once its verdict is known.
    pub fn end_attempt(&self) {
        if let Some(trace) = self.trace_slot().take() {
            trace.end();
        }
    }

    fn trace_slot(&self) -> MutexGuard<'_, Option<AttemptTrace>> {
        self.trace.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trace_step(&self, name: &'static str, took: Duration) {
        if let Some(trace) = self.trace_slot().as_ref() {
            trace.step(name, took);
        }
    }

    pub fn phase(&self, phase: Phase, took: Duration) {
        let mut s = self.lock();
        let secs = took.as_secs_f64();
        match phase {
            Phase::Dns => s.connect.dns = Some(secs),
            Phase::Tcp => s.connect.tcp = Some(secs),
            Phase::Tls => s.connect.tls = Some(secs),
            Phase::Upgrade => s.connect.upgrade = Some(secs),
        }
        s.series
            .phase(phase)
            .observe(catalog::CANARY_CONNECT_PHASE_SECONDS, secs);
        drop(s);
        self.trace_step(phase.as_str(), took);
    }

    pub fn handshake_status(&self, code: u16, upgraded: bool) {
        let mut s = self.lock();
        s.status_code = Some(code);
        s.upgraded = upgraded;
        if upgraded {
            self.transition(&mut s, CanaryState::Up);
        }
    }

    pub fn first_payload(&self, took: Duration) {
        self.trace_step(step::FIRST_PAYLOAD, took);
        let mut s = self.lock();
        s.first_payload = Some(took.as_secs_f64());
        s.series
            .first_payload
            .observe(catalog::CANARY_FIRST_PAYLOAD_SECONDS, took.as_secs_f64());
    }

    /// A data message arrived at `at`; `preview` is its text, kept truncated for `/status`.
    pub fn message(&self, at: Instant, preview: &str) {
        let mut s = self.lock();
        s.messages += 1;
        s.last_message_at = Some(at);
        if s.state == CanaryState::Stalled {
            self.transition(&mut s, CanaryState::Up);
        }
        // One uncontended per-canary lock and a vDSO clock read per message.
        self.history_slot().message(SystemTime::now());
        s.last_message_preview.clear();
        s.last_message_preview
            .extend(preview.chars().take(PREVIEW_CHARS));
    }

    pub fn sequence(&self, d: SequenceDelta) {
        if d == SequenceDelta::default() {
            return;
        }
        let mut s = self.lock();
        s.sequence.gaps += d.gaps;
        s.sequence.missed += d.missed;
        s.sequence.duplicates += d.duplicates;
        s.sequence.reorders += d.reorders;
    }

    /// Freshness from the server's timestamp; negative values (server clock ahead) record as 0.
    pub fn freshness(&self, secs: f64) {
        let secs = secs.max(0.0);
        let mut s = self.lock();
        // A server timestamp from long before the epoch gives a finite but huge value:
        // `from_secs_f64` would panic (with the lock held) on it.
        s.freshness
            .record(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
        s.series
            .freshness
            .observe(catalog::CANARY_FRESHNESS_SECONDS, secs);
        self.history_slot().freshness(SystemTime::now(), secs);
    }

    pub fn e2e(&self, took: Duration) {
        self.trace_step(step::PUBLISH_ROUND, took);
        let mut s = self.lock();
        s.e2e.record(took);
        s.series
            .e2e
            .observe(catalog::CANARY_E2E_SECONDS, took.as_secs_f64());
    }

    pub fn published(&self) {
        self.lock().publishes += 1;
    }

    pub fn publish_timeouts(&self, n: u64) {
        self.lock().publish_timeouts += n;
    }

    pub fn heartbeat_rtt(&self, rtt: Duration) {
        let mut s = self.lock();
        s.heartbeat_rtt.record(rtt);
        s.series
            .heartbeat_rtt
            .observe(catalog::CANARY_HEARTBEAT_RTT_SECONDS, rtt.as_secs_f64());
    }

    pub fn head_lag(&self, lag: u64) {
        self.lock().head_lag = Some(lag);
    }

    pub fn stall(&self) {
        let mut s = self.lock();
        s.stalls += 1;
        if s.state == CanaryState::Up {
            self.transition(&mut s, CanaryState::Stalled);
        }
    }

    /// The stream ended with `code` (1006 when no close frame arrived); `reason` is the
    /// server's close reason, untrusted text.
    pub fn closed(&self, code: u16, reason: &str) {
        if let Some(trace) = self.trace_slot().as_ref() {
            trace.close_code(code);
        }
        let mut s = self.lock();
        s.close_code = Some(code);
        s.close_reason = reason.chars().take(PREVIEW_CHARS).collect();
        s.series.closes.inc(wsmon::close_code::classify(code));
        self.history_slot().closed(code, reason);
    }

    /// A resumed connection was judged (see [`crate::resume`]).
    pub fn resume(&self, outcome: ResumeOutcome) {
        self.lock().series.resumes.inc(outcome.as_str());
    }

    /// `n` messages of a resumed connection were published before it connected.
    pub fn replayed(&self, n: u64) {
        self.lock().replayed += n;
    }

    pub fn reconnect(&self, reason: FailureReason) {
        let mut s = self.lock();
        s.reconnects += 1;
        s.series.reconnect(reason);
    }

    /// Records a fresh-connection check; it never touches the held stream's state or verdict.
    pub fn connect_check(&self, result: Result<&Duration, &Fault>, status_code: Option<u16>) {
        let mut s = self.lock();
        s.connect_check.checks += 1;
        match result {
            Ok(took) => s
                .series
                .connect_check
                .observe(catalog::CANARY_CONNECT_CHECK_SECONDS, took.as_secs_f64()),
            Err(f) => s.series.connect_check_failures.inc(f.reason.as_str()),
        }
        s.connect_check.last = Some(ConnectCheckResult {
            at: SystemTime::now(),
            status_code,
            fault: result.err().cloned(),
        });
    }

    /// Records a recycle of the held stream: not a reconnect, a fault or a close, so none of
    /// those counts move.
    pub fn recycle(&self, result: Result<(), &Fault>) {
        let mut s = self.lock();
        match result {
            Ok(()) => s.series.recycles.inc("ok"),
            Err(f) => {
                s.series.recycles.inc("failed");
                s.series.recycle_failures.inc(f.reason.as_str());
            }
        }
    }

    /// Records a fault: counted, kept for `/status`, and the verdict if it is the first.
    pub fn fault(&self, reason: FailureReason, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::warn!(canary = %self.name(), reason = reason.as_str(), detail = %detail, "canary fault");
        if let Some(trace) = self.trace_slot().as_mut() {
            trace.fail(reason.as_str(), &detail);
        }
        let mut s = self.lock();
        s.verdict.fault(reason, detail.clone());
        if s.recent_failures.len() == RECENT_FAILURES {
            s.recent_failures.pop_front();
        }
        s.recent_failures.push_back(RecentFailure {
            at: SystemTime::now(),
            fault: Fault { reason, detail },
        });
        s.series.failure(reason);
        let detail = &s.recent_failures.back().expect("pushed above").fault.detail;
        self.history_slot()
            .failure(SystemTime::now(), reason, detail);
    }
}
