//! The overhead benchmark's broadcast server (`--mode bare|instrumented|instrumented-otlp`).
//! Started by `wsmon-bench overhead`; prints `LISTEN addr` first and a JSON report last.

use clap::Parser;
use wsmon_bench::server::{self, ServerArgs};

#[derive(Parser)]
#[command(about = "Broadcast server for the middleware-overhead benchmark")]
struct Cli {
    #[command(flatten)]
    args: ServerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wsmon_bench::init_tracing();
    let report = server::run(Cli::parse().args).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
