//! The overhead benchmark's client load: N connections in a process of their own.
//! Started by `wsmon-bench overhead`; prints a JSON report as its last line.

use clap::Parser;
use wsmon_bench::load::{self, LoadArgs};

#[derive(Parser)]
#[command(about = "Client load for the middleware-overhead benchmark")]
struct Cli {
    #[command(flatten)]
    args: LoadArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wsmon_bench::init_tracing();
    let report = load::run(Cli::parse().args).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
