//! One held stream: dial it, then watch every frame against the canary's rules. Every await
//! is bounded: a hostile server can fail the canary but never hang it.

use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::canary::dial::connect_to;
use crate::canary::io::{close, send, Socket};
use crate::canary::publish::{PublishFailure, Publisher};
use crate::canary::recycle::{self, open_replacement, Replacement};
use crate::config::{CanaryConfig, ResumeConfig};
use crate::failure::{FailureReason, PING_FLOOD_PER_SECOND};
use crate::measure::{
    self, Fault, JsonRefusal, NonceTracker, RateLimit, SequenceDelta, SequenceTracker,
    StallDetector,
};
use crate::record::recorder::{CanaryRecorder, CanaryState};
use crate::resume::{self, FirstMessage, ResumeOutcome};

/// Why a session returned.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    /// The fault that ended the stream; `None` when it ended because we were told to stop.
    pub fault: Option<Fault>,
    /// Whether any data message arrived (a healthy session resets the backoff).
    pub got_payload: bool,
}

/// How a session should end when nothing goes wrong.
#[derive(Clone)]
pub struct SessionLimits {
    /// Close with 1001 and return when cancelled (daemon shutdown or reload).
    pub shutdown: CancellationToken,
    /// Close with 1000 and return at this instant (`once`, `/probe`).
    pub until: Option<Instant>,
    /// Return successfully as soon as the first payload arrives (`/probe`).
    pub stop_after_first_payload: bool,
}

/// Runs one connection of canary `cfg` until a fault ends it or `limits` say stop.
///
/// `tracker` outlives the session: with `resume` the next session continues it, otherwise it
/// starts a new baseline.
pub async fn run_session(
    cfg: &CanaryConfig,
    rec: &CanaryRecorder,
    tracker: &mut SequenceTracker,
    limits: &SessionLimits,
) -> SessionEnd {
    rec.begin_attempt();
    // With `resume`, every connection after the first data continues from the last sequence.
    let resume_from = cfg.resume.as_ref().and(tracker.last());
    let url = match (&cfg.resume, resume_from) {
        (Some(ResumeConfig::Query(name)), Some(last)) => {
            std::borrow::Cow::Owned(resume::url_with(cfg.url.expose(), name, last))
        }
        _ => std::borrow::Cow::Borrowed(cfg.url.expose()),
    };
    // Boxed: connecting (TLS and upgrade in flight) is the largest state by far, and inline it
    // would stay part of every held canary's task for the stream's whole life.
    let mut ws = match Box::pin(connect_unless_stopped(cfg, &url, rec, limits)).await {
        Some(Ok(ws)) => ws,
        Some(Err(f)) => {
            rec.fault(f.reason, f.detail.clone());
            return SessionEnd {
                fault: Some(f),
                got_payload: false,
            };
        }
        None => {
            return SessionEnd {
                fault: None,
                got_payload: false,
            }
        }
    };
    let mut session = Session::new(cfg, rec, Instant::now(), resume_from);
    let end = session.run(&mut ws, tracker, limits).await;
    if session.resuming.is_some() {
        let unavailable = end
            .fault
            .as_ref()
            .is_some_and(|f| f.reason == FailureReason::ResumeUnavailable);
        rec.resume(if unavailable {
            ResumeOutcome::Unavailable
        } else {
            ResumeOutcome::Interrupted
        });
    }
    // Without resume nothing can fill the pending gaps any more: confirm them now.
    if cfg.resume.is_none() {
        rec.sequence(tracker.flush());
    }
    if let Some(f) = &end.fault {
        rec.fault(f.reason, f.detail.clone());
    }
    if rec.with_status(|s| s.state) != CanaryState::Stopped {
        rec.set_state(CanaryState::Connecting);
    }
    end
}

/// Connects, or returns `None` if `limits` say stop first.
async fn connect_unless_stopped(
    cfg: &CanaryConfig,
    url: &url::Url,
    rec: &CanaryRecorder,
    limits: &SessionLimits,
) -> Option<Result<Socket, Fault>> {
    tokio::select! {
        r = connect_to(cfg, url, rec) => Some(r),
        _ = limits.shutdown.cancelled() => None,
        _ = sleep_or_never(limits.until) => None,
    }
}

async fn sleep_or_never(until: Option<Instant>) {
    match until {
        Some(t) => sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// The per-connection timers and pending checks.
struct Session<'a> {
    cfg: &'a CanaryConfig,
    rec: &'a CanaryRecorder,
    upgraded_at: Instant,
    got_payload: bool,
    stall: Option<StallDetector>,
    next_ping: Option<Instant>,
    ping_pending: Option<(u64, Instant)>,
    ping_counter: u64,
    next_head: Option<Instant>,
    head_pending: Option<Instant>,
    next_publish: Option<Instant>,
    nonces: NonceTracker,
    /// Boxed: few canaries publish.
    publisher: Option<Box<Publisher>>,
    /// Only canaries that read pointers pay for JSON parsing (a flood of text costs little).
    needs_json: bool,
    pings: RateLimit,
    messages: Option<RateLimit>,
    reported_invalid_sequence: bool,
    reported_too_deep: bool,
    /// The resume point this connection continues from, until its first telling message.
    resuming: Option<u64>,
    /// The resumed connection's upgrade, until a message published after it arrives: the
    /// messages before that were replayed.
    replay_since: Option<SystemTime>,
    /// With `recycle`, in the daemon. Boxed: inline, it would grow every held canary's task.
    recycling: Option<Box<Recycling<'a>>>,
}

/// A held stream's recycling state (see [`crate::canary::recycle`]).
struct Recycling<'a> {
    every: Duration,
    /// When to open the next replacement (`None` while one is being opened).
    next: Option<Instant>,
    replacing: Option<BoxFuture<'a, Result<Box<Replacement>, Fault>>>,
    /// After a recycle, the last sequence the old stream delivered: the new stream's messages
    /// up to it are the overlap, not duplicates.
    overlap_until: Option<u64>,
}

impl<'a> Session<'a> {
    fn new(
        cfg: &'a CanaryConfig,
        rec: &'a CanaryRecorder,
        now: Instant,
        resuming: Option<u64>,
    ) -> Self {
        Self {
            cfg,
            rec,
            upgraded_at: now,
            got_payload: false,
            stall: cfg.max_silence.map(StallDetector::new),
            next_ping: cfg.heartbeat.map(|h| now + h.every),
            ping_pending: None,
            ping_counter: 0,
            next_head: cfg
                .head_check
                .as_ref()
                .map(|h| now + h.every.min(Duration::from_millis(200))),
            head_pending: None,
            next_publish: cfg
                .publish
                .as_ref()
                .map(|_| now + Duration::from_millis(100)),
            nonces: NonceTracker::default(),
            publisher: cfg
                .publish
                .as_ref()
                .map(|p| Box::new(Publisher::new(cfg, p))),
            needs_json: cfg.sequence.is_some()
                || cfg.timestamp.is_some()
                || cfg.publish.is_some()
                || cfg.head_check.is_some(),
            pings: RateLimit::new(PING_FLOOD_PER_SECOND, now),
            messages: cfg.max_message_rate.map(|r| RateLimit::new(r, now)),
            reported_invalid_sequence: false,
            reported_too_deep: false,
            resuming,
            replay_since: resuming
                .and(cfg.timestamp.as_ref())
                .map(|_| SystemTime::now()),
            recycling: None,
        }
    }

    fn end(&self, fault: Option<Fault>) -> SessionEnd {
        SessionEnd {
            fault,
            got_payload: self.got_payload,
        }
    }

    /// The earliest instant at which a timer needs attention.
    fn next_deadline(&self, until: Option<Instant>) -> Instant {
        let mut candidates: Vec<Instant> = Vec::with_capacity(8);
        if !self.got_payload {
            candidates.push(self.upgraded_at + self.cfg.first_payload_within);
        }
        if let Some(s) = &self.stall {
            candidates.extend(s.deadline());
        }
        if let (Some(hb), Some((_, sent))) = (self.cfg.heartbeat, self.ping_pending) {
            candidates.push(sent + hb.timeout);
        }
        candidates.extend(self.next_ping);
        if let (Some(h), Some(sent)) = (&self.cfg.head_check, self.head_pending) {
            candidates.push(sent + h.timeout);
        }
        candidates.extend(self.next_head);
        candidates.extend(self.next_publish);
        if let Some(p) = &self.cfg.publish {
            candidates.extend(self.nonces.deadline(p.timeout));
        }
        candidates.extend(until);
        candidates.extend(self.recycling.as_ref().and_then(|r| r.next));
        candidates
            .into_iter()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn run(
        &mut self,
        ws: &mut Socket,
        tracker: &mut SequenceTracker,
        limits: &SessionLimits,
    ) -> SessionEnd {
        let write_limit = self.cfg.connect_timeout;
        // Subscribe first, then ask for the replay: the resume refers to the subscription.
        for text in &self.cfg.on_open {
            if let Err(f) = Box::pin(send(ws, Message::text(text.clone()), write_limit)).await {
                return self.end(Some(f));
            }
        }
        match (&self.cfg.resume, self.resuming) {
            (Some(ResumeConfig::Send(template)), Some(last)) => {
                let text = template.replace("{{last_seq}}", &last.to_string());
                if let Err(f) = Box::pin(send(ws, Message::text(text), write_limit)).await {
                    return self.end(Some(f));
                }
            }
            // The URL already carried the resume point.
            (Some(ResumeConfig::Query(_)), Some(_)) => {}
            _ => self.rec.sequence(tracker.new_baseline()),
        }
        // Only a held stream is recycled: `once`, `/probe` and the checks end on their own.
        if limits.until.is_none() && !limits.stop_after_first_payload {
            self.recycling = self.cfg.recycle.map(|r| {
                Box::new(Recycling {
                    every: r.every,
                    next: Some(Instant::now() + recycle::next_delay(r.every)),
                    replacing: None,
                    overlap_until: None,
                })
            });
        }
        loop {
            let deadline = self.next_deadline(limits.until);
            tokio::select! {
                _ = limits.shutdown.cancelled() => {
                    Box::pin(close(ws, CloseCode::Away, "prober shutting down")).await;
                    return self.end(None);
                }
                _ = sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    if limits.until.is_some_and(|u| now >= u) {
                        Box::pin(close(ws, CloseCode::Normal, "probe finished")).await;
                        return self.end(None);
                    }
                    if let Some(r) = self.recycling.as_mut().filter(|r| r.next.is_some_and(|t| now >= t)) {
                        r.next = None;
                        r.replacing = Some(Box::pin(open_replacement(self.cfg, tracker.last())));
                    }
                    // Boxed, as are the other rare paths: the held task's size is its largest
                    // state, and these would otherwise set it.
                    if let Some(end) = Box::pin(self.on_timers(ws, now)).await {
                        return end;
                    }
                }
                frame = ws.next() => {
                    // Receive time is taken as the frame is read, before any parsing.
                    let received = Instant::now();
                    let received_wall = SystemTime::now();
                    match frame {
                        Some(Ok(msg)) => {
                            // Boxed too: inline, its state would be part of every idle canary.
                            if let Some(end) = Box::pin(self.on_frame(ws, msg, received, received_wall, tracker)).await {
                                return end;
                            }
                            if limits.stop_after_first_payload && self.got_payload {
                                Box::pin(close(ws, CloseCode::Normal, "probe finished")).await;
                                return self.end(None);
                            }
                        }
                        Some(Err(e)) => return Box::pin(self.on_error(ws, e)).await,
                        None => {
                            self.rec.closed(wsmon::close_code::ABNORMAL, "");
                            return self.end(Some(Fault::new(FailureReason::Closed, "the connection ended without a close frame (1006)")));
                        }
                    }
                }
                r = std::future::poll_fn(|cx| poll_replacement(&mut self.recycling, cx)) => {
                    if let Some(rc) = self.recycling.as_mut() {
                        rc.replacing = None;
                        rc.next = Some(Instant::now() + recycle::next_delay(rc.every));
                    }
                    match r {
                        Ok(new) => {
                            if let Some(end) = Box::pin(self.hand_over(ws, new, tracker)).await {
                                return end;
                            }
                        }
                        Err(f) => {
                            tracing::warn!(canary = %self.cfg.name, reason = f.reason.as_str(), detail = %f.detail, "recycle failed; keeping the held stream");
                            self.rec.recycle(Err(&f));
                        }
                    }
                }
                Some(failure) = recv_error(&mut self.publisher) => {
                    // The nonce can never arrive: undelivered now (the e2e SLI counts it bad),
                    // and its fault is the refusal, not a later timeout as well.
                    if self.nonces.forget(&failure.nonce) {
                        self.rec.publish_timeouts(1);
                    }
                    self.rec.fault(FailureReason::PublishError, failure.detail);
                }
            }
        }
    }

    /// Makes `new` the held stream: reads the old one up to the new one's first sequence,
    /// closes it with 1000 and measures the new one's first message. A recycle is no
    /// reconnect, fault or abnormal close, so none of those are recorded.
    async fn hand_over(
        &mut self,
        ws: &mut Socket,
        new: Box<Replacement>,
        tracker: &mut SequenceTracker,
    ) -> Option<SessionEnd> {
        let Replacement {
            ws: mut other,
            first,
            first_seq,
        } = *new;
        let mut old_ended = false;
        if let Some(m) = first_seq {
            // Bounded: an old stream that stopped delivering must not hold up its replacement.
            let until = Instant::now() + self.cfg.first_payload_within;
            while !matches!(tracker.last(), Some(last) if last >= m) {
                let left = until.saturating_duration_since(Instant::now());
                let Ok(Some(Ok(msg))) = timeout(left, ws.next()).await else {
                    break;
                };
                let (received, wall) = (Instant::now(), SystemTime::now());
                if let Some(end) = self.on_frame(ws, msg, received, wall, tracker).await {
                    // The old stream ended during the switch; the new one carries on.
                    if let Some(f) = &end.fault {
                        self.rec.fault(f.reason, f.detail.clone());
                    }
                    old_ended = true;
                    break;
                }
            }
        }
        std::mem::swap(ws, &mut other);
        if !old_ended {
            close(&mut other, CloseCode::Normal, "recycled").await;
        }
        drop(other);
        // Pending pings and head checks went out on the old connection.
        self.ping_pending = None;
        self.head_pending = None;
        self.next_ping = self.cfg.heartbeat.map(|h| Instant::now() + h.every);
        let last = tracker.last();
        if let Some(r) = self.recycling.as_mut() {
            r.overlap_until = last;
        }
        self.rec.recycle(Ok(()));
        tracing::debug!(canary = %self.cfg.name, "recycled the held stream");
        let (received, wall) = (Instant::now(), SystemTime::now());
        self.on_frame(ws, first, received, wall, tracker).await
    }

    async fn on_timers(&mut self, ws: &mut Socket, now: Instant) -> Option<SessionEnd> {
        let write_limit = self.cfg.connect_timeout;
        if !self.got_payload && now >= self.upgraded_at + self.cfg.first_payload_within {
            close(ws, CloseCode::Normal, "no first payload").await;
            return Some(self.end(Some(Fault::new(
                FailureReason::FirstPayloadTimeout,
                format!(
                    "no data message within {:?} of the upgrade",
                    self.cfg.first_payload_within
                ),
            ))));
        }
        if let Some(s) = &mut self.stall {
            if s.poll(now) {
                self.rec.stall();
                self.rec.fault(
                    FailureReason::Stall,
                    format!(
                        "no message for longer than {:?}",
                        self.cfg.max_silence.unwrap_or_default()
                    ),
                );
            }
        }
        if let Some(hb) = self.cfg.heartbeat {
            if let Some((_, sent)) = self.ping_pending {
                if now >= sent + hb.timeout {
                    close(ws, CloseCode::Normal, "heartbeat timeout").await;
                    return Some(self.end(Some(Fault::new(
                        FailureReason::HeartbeatTimeout,
                        format!("no pong within {:?}", hb.timeout),
                    ))));
                }
            }
            if self.next_ping.is_some_and(|t| now >= t) {
                self.next_ping = Some(now + hb.every);
                // One ping in flight at a time keeps RTTs unambiguous.
                if self.ping_pending.is_none() {
                    self.ping_counter += 1;
                    let payload = self.ping_counter.to_be_bytes().to_vec();
                    // Stamped before the write, as ping(8) does: on loopback the write itself
                    // delivers the frame and wakes the server, which is part of the trip.
                    let sent = Instant::now();
                    if let Err(f) = send(ws, Message::Ping(payload.into()), write_limit).await {
                        return Some(self.end(Some(f)));
                    }
                    self.ping_pending = Some((self.ping_counter, sent));
                }
            }
        }
        if let Some(h) = &self.cfg.head_check {
            if self
                .head_pending
                .is_some_and(|sent| now >= sent + h.timeout)
            {
                self.head_pending = None;
                self.rec.fault(
                    FailureReason::HeadTimeout,
                    format!("no head check reply within {:?}", h.timeout),
                );
            }
            if self.next_head.is_some_and(|t| now >= t) {
                self.next_head = Some(now + h.every);
                if self.head_pending.is_none() && self.got_payload {
                    if let Err(f) = send(ws, Message::text(h.send.clone()), write_limit).await {
                        return Some(self.end(Some(f)));
                    }
                    self.head_pending = Some(Instant::now());
                }
            }
        }
        if let Some(p) = &self.cfg.publish {
            let expired = self.nonces.expire(now, p.timeout);
            if expired > 0 {
                self.rec.publish_timeouts(expired as u64);
                self.rec.fault(
                    FailureReason::PublishTimeout,
                    format!(
                        "{expired} published nonce(s) did not arrive within {:?}",
                        p.timeout
                    ),
                );
            }
            if self.next_publish.is_some_and(|t| now >= t) {
                self.next_publish = Some(now + p.every);
                if self.got_payload {
                    let nonce = crate::canary::publish::new_nonce();
                    // The clock starts before the request: publish latency is part of e2e.
                    self.nonces.published(nonce.clone(), Instant::now());
                    self.rec.published();
                    if let Some(publisher) = &self.publisher {
                        publisher.publish(&nonce);
                    }
                }
            }
        }
        None
    }

    async fn on_frame(
        &mut self,
        ws: &mut Socket,
        msg: Message,
        received: Instant,
        received_wall: SystemTime,
        tracker: &mut SequenceTracker,
    ) -> Option<SessionEnd> {
        let text: &str = match &msg {
            Message::Text(t) => t.as_str(),
            Message::Binary(b) => std::str::from_utf8(b).unwrap_or(""),
            Message::Pong(payload) => {
                if let Some((id, sent)) = self.ping_pending {
                    if payload.as_ref() == id.to_be_bytes() {
                        self.ping_pending = None;
                        self.rec
                            .heartbeat_rtt(received.saturating_duration_since(sent));
                    }
                }
                return None;
            }
            Message::Close(frame) => {
                let (code, reason) = frame
                    .as_ref()
                    .map_or((wsmon::close_code::NO_STATUS, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                self.rec.closed(code, &reason);
                // tungstenite queued the close reply; flush it, bounded.
                let _ = timeout(Duration::from_secs(1), ws.flush()).await;
                // tungstenite hides a forbidden close code (0, 1005, 1006, 5000, ...) by
                // handing us this exact frame instead; a server's own 1002 says something else.
                if code == wsmon::close_code::PROTOCOL_ERROR && reason == "Protocol violation" {
                    return Some(self.end(Some(Fault::new(
                        FailureReason::InvalidCloseCode,
                        "the server closed with a code RFC 6455 forbids on the wire",
                    ))));
                }
                // The server should now end TCP; anything more it sends is a violation.
                if let Ok(Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ReceivedAfterClosing,
                )))) = timeout(Duration::from_secs(1), ws.next()).await
                {
                    return Some(self.end(Some(Fault::new(
                        FailureReason::DataAfterClose,
                        format!("the server sent more frames after closing with {code}"),
                    ))));
                }
                if let Some(from) = self.resuming {
                    if resume::is_unavailable(code, &reason) {
                        return Some(self.end(Some(Fault::new(
                            FailureReason::ResumeUnavailable,
                            format!("the server closed with {code} {reason:?}; the canary retries from {from}"),
                        ))));
                    }
                }
                let detail = if reason.is_empty() {
                    format!("the server closed the stream with {code}")
                } else {
                    format!("the server closed the stream with {code}: {reason}")
                };
                return Some(self.end(Some(Fault::new(
                    FailureReason::for_close_code(code),
                    detail,
                ))));
            }
            Message::Ping(_) => {
                if self.pings.exceeded(received) {
                    close(ws, CloseCode::Policy, "ping flood").await;
                    self.rec.closed(u16::from(CloseCode::Policy), "");
                    return Some(self.end(Some(Fault::new(
                        FailureReason::PingFlood,
                        format!("more than {PING_FLOOD_PER_SECOND} pings within a second"),
                    ))));
                }
                return None;
            }
            Message::Frame(_) => return None,
        };
        if let Some(limit) = &mut self.messages {
            if limit.exceeded(received) {
                close(ws, CloseCode::Policy, "message flood").await;
                self.rec.closed(u16::from(CloseCode::Policy), "");
                return Some(self.end(Some(Fault::new(
                    FailureReason::MessageFlood,
                    format!(
                        "more than {} messages within a second (max_message_rate)",
                        self.cfg.max_message_rate.unwrap_or_default()
                    ),
                ))));
            }
        }
        if !self.got_payload {
            self.got_payload = true;
            self.rec
                .first_payload(received.saturating_duration_since(self.upgraded_at));
        }
        if let Some(s) = &mut self.stall {
            s.on_message(received);
        }
        self.rec.message(received, text);
        if !self.needs_json {
            return None;
        }
        let value = match measure::parse_json(text) {
            Ok(value) => value,
            Err(JsonRefusal::NotJson) => return None,
            Err(JsonRefusal::TooDeep) => {
                // Once per session: a server that always does this must not flood the log.
                if !std::mem::replace(&mut self.reported_too_deep, true) {
                    self.rec.fault(
                        FailureReason::PayloadTooDeep,
                        "a JSON message nested deeper than 128 levels was not measured",
                    );
                }
                return None;
            }
        };
        if self.take_head_reply(&value, tracker) {
            return None;
        }
        if self.judge_resume(&value, tracker) {
            return None;
        }
        if let (Some(since), Some(ts)) = (self.replay_since, &self.cfg.timestamp) {
            match measure::freshness_seconds(since, &value, &ts.pointer, ts.unit) {
                Some(age) if age > 0.0 => self.rec.replayed(1),
                // Published after the upgrade: live from here on.
                Some(_) => self.replay_since = None,
                None => {}
            }
        }
        if let Some(p) = &self.cfg.publish {
            if let Some(nonce) = measure::text_at(&value, &p.match_pointer) {
                if let Some(took) = self.nonces.observe(&nonce, received) {
                    self.rec.e2e(took);
                }
            }
        }
        if let Some(seq_cfg) = &self.cfg.sequence {
            let seq = match measure::sequence_at(&value, &seq_cfg.pointer) {
                Ok(seq) => seq,
                Err(invalid) => {
                    if !std::mem::replace(&mut self.reported_invalid_sequence, true) {
                        self.rec.fault(
                            FailureReason::InvalidSequence,
                            format!("{} is {}", seq_cfg.pointer, invalid.0),
                        );
                    }
                    None
                }
            };
            if let (Some(seq), Some(r)) = (seq, self.recycling.as_mut()) {
                if r.overlap_until.is_some_and(|o| seq <= o) {
                    return None;
                }
                r.overlap_until = None;
            }
            if let Some(seq) = seq {
                let d = tracker.observe(seq);
                self.rec.sequence(d);
                if d.gaps > 0 {
                    self.rec.fault(
                        FailureReason::SequenceGap,
                        format!("{} message(s) missing before sequence {seq}", d.missed),
                    );
                }
                if d.duplicates > 0 {
                    self.rec.fault(
                        FailureReason::SequenceDuplicate,
                        format!("sequence {seq} arrived again"),
                    );
                }
            }
        }
        if let Some(ts) = &self.cfg.timestamp {
            if let Some(f) = measure::freshness_seconds(received_wall, &value, &ts.pointer, ts.unit)
            {
                self.rec.freshness(f);
            }
        }
        None
    }

    /// Judges a resumed connection by its first telling message (see [`crate::resume`]);
    /// true when `value` is no part of the sequence (a snapshot or a `resume_miss`).
    fn judge_resume(&mut self, value: &Value, tracker: &mut SequenceTracker) -> bool {
        let (Some(from), Some(seq_cfg)) = (self.resuming, &self.cfg.sequence) else {
            return false;
        };
        let verdict = resume::judge(value, &seq_cfg.pointer, from);
        if verdict != FirstMessage::Undecided {
            self.resuming = None;
        }
        match verdict {
            FirstMessage::Undecided => false,
            FirstMessage::Next => {
                self.rec.resume(ResumeOutcome::Hit);
                false
            }
            FirstMessage::Miss { oldest, lost } => {
                self.rec.resume(ResumeOutcome::Miss);
                // The stream goes on from `oldest`: that is the next sequence, not a gap.
                self.rec.sequence(tracker.new_baseline());
                if let Some(before) = oldest.checked_sub(1) {
                    tracker.observe(before);
                }
                if lost > 0 {
                    self.rec.sequence(SequenceDelta {
                        gaps: 1,
                        missed: lost,
                        ..SequenceDelta::default()
                    });
                }
                self.rec.fault(
                    FailureReason::ResumeMiss,
                    format!("resumed from {from}, the server no longer had {lost} message(s) before {oldest}"),
                );
                true
            }
            FirstMessage::Snapshot => {
                self.rec.resume(ResumeOutcome::Failed);
                self.rec.fault(
                    FailureReason::ResumeIgnored,
                    format!(
                        "resumed from {from}, the server sent a snapshot instead of the replay"
                    ),
                );
                true
            }
            FirstMessage::Elsewhere => {
                self.rec.resume(ResumeOutcome::Failed);
                let at = measure::sequence_at(value, &seq_cfg.pointer)
                    .ok()
                    .flatten()
                    .map_or("a resume_miss for another point".to_string(), |s| {
                        format!("sequence {s}")
                    });
                self.rec.fault(
                    FailureReason::ResumeIgnored,
                    format!("resumed from {from}, the stream continued at {at}"),
                );
                false
            }
        }
    }

    /// Takes `value` as the head check reply if one is pending and it matches.
    fn take_head_reply(&mut self, value: &Value, tracker: &SequenceTracker) -> bool {
        let (Some(h), Some(_)) = (&self.cfg.head_check, self.head_pending) else {
            return false;
        };
        let is_reply = match &h.reply {
            Some(rule) => measure::text_at(value, &rule.pointer).is_some_and(|v| v == rule.equals),
            None => true,
        };
        if !is_reply {
            return false;
        }
        self.head_pending = None;
        if let (Some(head), Some(last)) = (measure::u64_at(value, &h.pointer), tracker.last()) {
            let lag = head.saturating_sub(last);
            self.rec.head_lag(lag);
            if h.max_lag.is_some_and(|max| lag > max) {
                self.rec.fault(
                    FailureReason::HeadLag,
                    format!("{lag} messages behind the server's head {head}"),
                );
            }
        }
        true
    }

    async fn on_error(&mut self, ws: &mut Socket, e: tungstenite::Error) -> SessionEnd {
        let (reason, reply) = classify_error(&e, self.cfg.max_message_bytes);
        let detail = match &e {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size })
                if reason == FailureReason::FrameTooBig =>
            {
                format!(
                    "a frame header declared {size} bytes, over max_message_bytes ({})",
                    max_size - 1
                )
            }
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                format!("a {size}-byte message exceeded max_message_bytes ({max_size})")
            }
            _ if reason == FailureReason::Closed => {
                "the connection dropped without a close frame (1006)".to_string()
            }
            _ if reason == FailureReason::Reset => {
                "the connection was reset (TCP RST) without a close frame (1006)".to_string()
            }
            other => other.to_string(),
        };
        match reply {
            Some(code) => {
                close(ws, code, reason.as_str()).await;
                self.rec.closed(u16::from(code), "");
            }
            None => self.rec.closed(wsmon::close_code::ABNORMAL, ""),
        }
        self.end(Some(Fault::new(reason, detail)))
    }
}

use tungstenite::error::{CapacityError, ProtocolError};

/// The failure reason for a read error, and the close code the prober answers with (`None`
/// when the connection is already gone).
fn classify_error(
    e: &tungstenite::Error,
    max_message_bytes: usize,
) -> (FailureReason, Option<CloseCode>) {
    use tungstenite::Error as E;
    match e {
        E::Capacity(CapacityError::MessageTooLong { max_size, .. })
            if *max_size != max_message_bytes =>
        {
            (FailureReason::FrameTooBig, Some(CloseCode::Size))
        }
        E::Capacity(_) => (FailureReason::MessageTooBig, Some(CloseCode::Size)),
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
            (FailureReason::Reset, None)
        }
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | E::Io(_)
        | E::ConnectionClosed
        | E::AlreadyClosed => (FailureReason::Closed, None),
        E::Protocol(ProtocolError::ReceivedAfterClosing) => (FailureReason::DataAfterClose, None),
        E::Protocol(ProtocolError::NonZeroReservedBits) => {
            (FailureReason::ReservedBits, Some(CloseCode::Protocol))
        }
        E::Protocol(
            ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::UnknownDataFrameType(_)
            | ProtocolError::InvalidOpcode(_),
        ) => (FailureReason::BadOpcode, Some(CloseCode::Protocol)),
        E::Protocol(ProtocolError::FragmentedControlFrame | ProtocolError::ControlFrameTooBig) => {
            (FailureReason::FragmentedControl, Some(CloseCode::Protocol))
        }
        E::Protocol(ProtocolError::InvalidCloseSequence) => {
            (FailureReason::InvalidCloseCode, Some(CloseCode::Protocol))
        }
        E::Utf8(_) => (FailureReason::InvalidUtf8, Some(CloseCode::Invalid)),
        _ => (FailureReason::ProtocolError, Some(CloseCode::Protocol)),
    }
}

/// Polls the replacement being opened; pending forever when there is none. Polled through
/// `poll_fn` rather than an `async fn`: its state is one reference, in every held task.
fn poll_replacement(
    recycling: &mut Option<Box<Recycling<'_>>>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<Box<Replacement>, Fault>> {
    match recycling.as_mut().and_then(|r| r.replacing.as_mut()) {
        Some(f) => f.as_mut().poll(cx),
        None => std::task::Poll::Pending,
    }
}

async fn recv_error(publisher: &mut Option<Box<Publisher>>) -> Option<PublishFailure> {
    match publisher {
        Some(p) => p.next_error().await,
        None => std::future::pending().await,
    }
}
