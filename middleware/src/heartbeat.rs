//! Server heartbeats: a ping every `every`, pong round-trip time measured, and the peer cut
//! off after `max_missed` unanswered pings.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Heartbeat settings: `Heartbeat::every(interval)`, optionally `.max_missed(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    every: Duration,
    max_missed: u32,
}

impl Heartbeat {
    /// A ping every `every`; the peer is closed after two missed pongs.
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            max_missed: 2,
        }
    }

    /// Close the peer after `n` consecutive unanswered pings (at least 1).
    pub fn max_missed(mut self, n: u32) -> Self {
        self.max_missed = n.max(1);
        self
    }

    /// The ping interval.
    pub fn interval(&self) -> Duration {
        self.every
    }

    /// Unanswered pings in a row after which the peer is closed.
    pub fn missed_limit(&self) -> u32 {
        self.max_missed
    }
}

/// What the socket must do after polling the heartbeat timer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    Idle,
    /// Send a ping with this payload.
    Ping([u8; 8]),
    /// The peer missed too many pongs.
    TimedOut,
}

/// One connection's heartbeat state.
pub(crate) struct HeartbeatState {
    config: Heartbeat,
    timer: Pin<Box<Sleep>>,
    outstanding: Option<(u64, Instant)>,
    missed: u32,
    next_nonce: u64,
}

impl HeartbeatState {
    pub(crate) fn new(config: Heartbeat) -> Self {
        Self {
            config,
            timer: Box::pin(tokio::time::sleep(config.every)),
            outstanding: None,
            missed: 0,
            next_nonce: 0,
        }
    }

    pub(crate) fn poll_beat(&mut self, cx: &mut Context<'_>) -> Beat {
        if self.timer.as_mut().poll(cx) == Poll::Pending {
            return Beat::Idle;
        }
        if self.outstanding.is_some() {
            self.missed += 1;
            if self.missed >= self.config.max_missed {
                return Beat::TimedOut;
            }
        }
        self.next_nonce += 1;
        let now = Instant::now();
        self.outstanding = Some((self.next_nonce, now));
        self.timer.as_mut().reset(now + self.config.every);
        // Register the waker for the next tick.
        let _ = self.timer.as_mut().poll(cx);
        Beat::Ping(self.next_nonce.to_be_bytes())
    }

    /// If `payload` answers our outstanding ping, clears it and returns the round-trip time.
    pub(crate) fn on_pong(&mut self, payload: &[u8]) -> Option<Duration> {
        let (nonce, sent) = self.outstanding?;
        if payload != nonce.to_be_bytes() {
            return None;
        }
        self.outstanding = None;
        self.missed = 0;
        Some(sent.elapsed())
    }
}
