//! The accuracy benchmark's raw TCP baseline: pings an echo from a process of its own, as
//! the prober does the server. Prints `{"p50_us": ...}` as its last line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Raw TCP ping-pong client for the accuracy benchmark's baseline")]
struct Cli {
    /// The echo's address.
    #[arg(long)]
    addr: SocketAddr,
    /// How many round trips to time.
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// Pause before each ping, in microseconds.
    #[arg(long, default_value_t = 0)]
    spacing_us: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let p50 = wsmon_bench::accuracy::tcp_ping_p50_us(
        cli.addr,
        cli.count,
        Duration::from_micros(cli.spacing_us),
    )?;
    println!("{}", serde_json::json!({ "p50_us": p50 }));
    Ok(())
}
