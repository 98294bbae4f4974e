//! The measurement rules, free of I/O: sequence tracking, stalls, freshness, nonces and the
//! verdict. The canary feeds these with receive times; everything here is tested without sockets.
//!
//! One file per concern, none importing another: `sequence` (gaps, reorders, duplicates),
//! `latency` (samples and quantiles), `stall`, `rate`, `pointer` (values read out of a
//! message), `nonce` (published nonces awaiting arrival) and `verdict` (faults, first wins).

mod latency;
mod nonce;
mod pointer;
mod rate;
mod sequence;
mod stall;
mod verdict;

pub use latency::{LatencyStats, LatencySummary, Retention, RECENT_SAMPLES};
pub use nonce::NonceTracker;
pub use pointer::{
    freshness_seconds, parse_json, sequence_at, text_at, u64_at, InvalidSequence, JsonRefusal,
};
pub use rate::RateLimit;
pub use sequence::{SequenceDelta, SequenceTracker};
pub use stall::StallDetector;
pub use verdict::{Fault, Verdict};
