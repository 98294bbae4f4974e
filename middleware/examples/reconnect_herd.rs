//! The reconnect herd, measured: a server dies under 2,000 WebSocket clients that reconnect
//! with `wsmon::backoff`, with and without jitter, and the per-100 ms arrival histogram of
//! their reconnects is printed (the figures in BENCHMARKS.md).
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
        "| backoff (initial {:?}, max {:?}) | reconnects | peak per 100 ms bucket | peak in any 100 ms window | attempts refused | all back within |",
        c.initial, c.max
    );
    println!("|---|---|---|---|---|---|");
    for (name, r) in [
        ("exponential, no jitter", &plain),
        ("exponential, full jitter", &jittered),
    ] {
        println!(
            "| {name} | {} | {} ({:.0}%) | {} ({:.0}%) | {} | {:?} |",
            r.reconnected,
            r.peak_bucket(),
            100.0 * r.peak_bucket() as f64 / r.reconnected.max(1) as f64,
            r.peak_window,
            100.0 * r.peak_window as f64 / r.reconnected.max(1) as f64,
            r.refused_attempts,
            r.all_back_after(),
        );
    }
}
