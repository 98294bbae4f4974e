//! The reconnect herd: 2,000 clients lose their server at once. With wsmon's recommended
//! full-jitter backoff their reconnects spread out; with the same backoff minus the jitter
//! they arrive as one spike. Figures for BENCHMARKS.md come from
//! `cargo run --release -p wsmon --example reconnect_herd`.

#[path = "support/herd.rs"]
mod herd;

use herd::HerdConfig;
use wsmon::backoff::Jitter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_jitter_spreads_the_reconnect_herd_that_plain_exponential_backoff_sends_as_a_spike() {
    let plain = herd::run(HerdConfig::standard(Jitter::None)).await;
    eprintln!("{}", herd::render(&plain));
    let jittered = herd::run(HerdConfig::standard(Jitter::Full)).await;
    eprintln!("{}", herd::render(&jittered));

    let clients = HerdConfig::standard(Jitter::Full).clients;
    // On the schedule (see support/herd.rs): this process's own CPU is not under test.
    let (plain_peak, jittered_peak) = (plain.scheduled.peak_window, jittered.scheduled.peak_window);
    assert_eq!(plain.reconnected, clients, "every client came back");
    assert_eq!(jittered.reconnected, clients, "every client came back");
    // Full jitter draws the first delays uniformly over a second: about a tenth of the herd
    // per 100 ms, twice that allows for noise.
    assert!(
        jittered_peak * 5 <= clients,
        "with full jitter no 100 ms window should hold a fifth of the herd: {jittered_peak}"
    );
    assert!(
        plain_peak >= 3 * jittered_peak,
        "without jitter the herd should arrive as a spike at least three times the \
         jittered peak: {} vs {}",
        plain_peak,
        jittered_peak
    );
}
