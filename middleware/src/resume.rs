//! Reporting resumes: an application whose clients reconnect with a resume point (for example
//! `GET /ws?from=N`) says how each resume went and how much it replayed.
//!
//! ```no_run
//! # fn run(wsmon: wsmon::WsMon) {
//! use wsmon::ResumeOutcome;
//!
//! // Only a route declared on the builder has a handle, so a raw path never becomes a label.
//! let route = wsmon.route("/ws").expect("/ws is declared");
//! // Everything after the client's sequence was still retained and is replayed:
//! route.record_resume(ResumeOutcome::Hit);
//! route.record_replayed(120);
//! // The client's sequence was older than the retention: 40 messages are gone.
//! route.record_resume(ResumeOutcome::Miss);
//! route.record_resume_missed(40);
//! # }
//! ```
//!
//! The series are `websocket_server_resumes_total{route,outcome}`,
//! `websocket_server_replayed_messages_total{route}` and
//! `websocket_server_resume_missed_messages_total{route}` (see [`crate::catalog`]); `outcome`
//! has the two values of [`ResumeOutcome`], so the label stays bounded. Each call is one
//! relaxed atomic add on a counter resolved when the route was created.

use crate::monitor::RouteHandle;

/// How a resume went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeOutcome {
    /// Every message after the resume point could be replayed.
    Hit,
    /// Part of what followed the resume point was no longer retained (or the point was
    /// unknown to the server), and the client was told.
    Miss,
}

impl ResumeOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResumeOutcome::Hit => "hit",
            ResumeOutcome::Miss => "miss",
        }
    }
}

impl RouteHandle {
    /// Counts one resume on this route.
    pub fn record_resume(&self, outcome: ResumeOutcome) {
        let counters = &self.metrics.resume;
        match outcome {
            ResumeOutcome::Hit => counters.hit.inc(),
            ResumeOutcome::Miss => counters.miss.inc(),
        }
    }

    /// Counts `n` messages replayed from history to a resuming connection.
    pub fn record_replayed(&self, n: u64) {
        self.metrics.resume.replayed.inc_by(n);
    }

    /// Counts `n` messages a resume could not replay (older than the retained history).
    pub fn record_resume_missed(&self, n: u64) {
        self.metrics.resume.missed.inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_the_catalog_values() {
        let labels = [ResumeOutcome::Hit, ResumeOutcome::Miss].map(ResumeOutcome::as_str);
        assert_eq!(labels, crate::catalog::RESUME_OUTCOMES);
    }
}
