//! What the overhead benchmark's server and load processes exchange: the broadcast message
//! layout and the JSON reports each prints when it exits.

use serde::{Deserialize, Serialize};

/// Phase tags carried in every broadcast message.
pub const PHASE_WARMUP: u8 = 0;
/// Fixed offered rate: latency and CPU per message.
pub const PHASE_FIXED: u8 = 1;
/// Offered rate above capacity: throughput.
pub const PHASE_SATURATE: u8 = 2;
/// The last message; the load process closes its connection on it.
pub const PHASE_END: u8 = 255;

const HEADER: usize = 1 + 8 + 8;

/// `phase | seq (LE u64) | publish time (LE u64, monotonic µs) | padding`.
pub fn encode(phase: u8, seq: u64, published_us: u64, size: usize) -> Vec<u8> {
    let mut buf = vec![b'x'; size.max(HEADER)];
    buf[0] = phase;
    buf[1..9].copy_from_slice(&seq.to_le_bytes());
    buf[9..17].copy_from_slice(&published_us.to_le_bytes());
    buf
}

/// `(phase, seq, published_us)`, or `None` for a message that is not ours.
pub fn decode(buf: &[u8]) -> Option<(u8, u64, u64)> {
    if buf.len() < HEADER {
        return None;
    }
    let seq = u64::from_le_bytes(buf[1..9].try_into().ok()?);
    let ts = u64::from_le_bytes(buf[9..17].try_into().ok()?);
    Some((buf[0], seq, ts))
}

/// One server phase, measured inside the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerPhase {
    pub phase: u8,
    pub seconds: f64,
    pub publishes: u64,
    /// Phase boundaries on the shared monotonic clock, in µs.
    pub start_us: u64,
    pub end_us: u64,
    /// `getrusage(RUSAGE_SELF)` user + system over the phase.
    pub cpu_seconds: f64,
}

/// What the server prints as its last stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    pub mode: String,
    pub connections: usize,
    pub phases: Vec<ServerPhase>,
    /// Broadcast receivers that fell behind and skipped messages (saturation phase).
    pub lagged_messages: u64,
}

/// One phase as the load process saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadPhase {
    pub phase: u8,
    pub messages: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// What the load process prints as its last stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub connected: usize,
    pub failed_connects: usize,
    pub phases: Vec<LoadPhase>,
    /// Messages received per `bin_us` of the monotonic clock from `origin_us`, to count
    /// exactly what arrived inside a server phase.
    pub origin_us: u64,
    pub bin_us: u64,
    pub bins: Vec<u64>,
}

impl LoadReport {
    /// Messages per second received within `[start_us, end_us]`, counting only whole bins.
    pub fn rate_within(&self, start_us: u64, end_us: u64) -> Option<f64> {
        let first = start_us
            .saturating_sub(self.origin_us)
            .div_ceil(self.bin_us) as usize;
        let last = (end_us.saturating_sub(self.origin_us) / self.bin_us) as usize;
        if last <= first || last > self.bins.len() {
            return None;
        }
        let count: u64 = self.bins[first..last].iter().sum();
        Some(count as f64 / ((last - first) as f64 * self.bin_us as f64 / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_and_is_padded_to_size() {
        let m = encode(PHASE_FIXED, 42, 1_234_567, 128);
        assert_eq!(m.len(), 128);
        assert_eq!(decode(&m), Some((PHASE_FIXED, 42, 1_234_567)));
        assert_eq!(decode(&m[..10]), None);
    }

    #[test]
    fn rate_within_counts_only_whole_bins_inside_the_window() {
        let r = LoadReport {
            connected: 1,
            failed_connects: 0,
            phases: vec![],
            origin_us: 1_000,
            bin_us: 100,
            bins: vec![5, 10, 10, 10, 7],
        };
        // Window 1_050..1_450 covers bins 1..4 whole (1_100..1_400): 30 messages in 300 µs.
        let rate = r.rate_within(1_050, 1_450).unwrap();
        assert!((rate - 100_000.0).abs() < 1e-6, "rate {rate}");
        assert_eq!(r.rate_within(1_050, 1_090), None);
    }
}
