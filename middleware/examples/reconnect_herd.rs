//! The reconnect herd, measured: a server dies under 2,000 WebSocket clients that reconnect
//! with `wsmon::backoff`, with and without jitter, and the per-100 ms arrival histograms of
//! their reconnects are printed (the figures in BENCHMARKS.md; the table uses the observed
//! times).
//!
//! ```text
//! cargo run --release -p wsmon --example reconnect_herd
//! ```

#[path = "../tests/support/herd.rs"]
mod herd;

use herd::HerdConfig;
use wsmon::backoff::Jitter;

#[tokio::main]
async fn main() {
    let plain = herd::run(HerdConfig::standard(Jitter::None)).await;
    let jittered = herd::run(HerdConfig::standard(Jitter::Full)).await;
    for report in [&plain, &jittered] {
        println!("{}", herd::render(report));
    }
    let c = plain.config;
    println!(
        "| backoff (initial {:?}, max {:?}) | reconnects | peak per 100 ms bucket | peak in any 100 ms window | attempts refused | all back within | timers late (median / worst) |",
        c.initial, c.max
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("exponential, no jitter", &plain),
        ("exponential, full jitter", &jittered),
    ] {
        let pct = |n: usize| 100.0 * n as f64 / r.reconnected.max(1) as f64;
        let h = &r.observed;
        println!(
            "| {name} | {} | {} ({:.0}%) | {} ({:.0}%) | {} | {:?} | {:?} / {:?} |",
            r.reconnected,
            h.peak_bucket(),
            pct(h.peak_bucket()),
            h.peak_window,
            pct(h.peak_window),
            r.refused_attempts,
            r.all_back_after(),
            r.late_median,
            r.late_max,
        );
    }
}
