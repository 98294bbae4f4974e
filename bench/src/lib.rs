//! wsmon's benchmarks: middleware overhead against bare axum, `/metrics` scrape cost, and the
//! prober's footprint, accuracy and cold start against k6.
//!
//! Run them all with `bash scripts/bench.sh` (or `--quick`); it builds in release mode,
//! prints each table and rewrites the generated part of `BENCHMARKS.md`. Nothing here is part
//! of the test command except the unit tests of the pure helpers.

pub mod accuracy;
pub mod backpressure;
pub mod cold_start;
pub mod counted;
pub mod feed_host;
pub mod footprint;
pub mod instructions;
pub mod load;
pub mod machine;
pub mod markdown;
pub mod otlp_sink;
pub mod overhead;
pub mod procs;
pub mod relay_cost;
pub mod relay_counted;
pub mod replay;
pub mod requests;
pub mod scrape;
pub mod server;
pub mod summary;
pub mod sys;
pub mod syscalls;
pub mod wire;

/// Logs to stderr (stdout carries the reports), `warn` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}
