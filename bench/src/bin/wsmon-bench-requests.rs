//! The workload of benchmark 1d: `wsmon-bench-requests <bare|identity|wsmon> <requests>`
//! sends that many plain requests through the router in-process, for callgrind to count.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: wsmon-bench-requests <bare|identity|wsmon> <requests>";
    let layering = wsmon_bench::requests::Layering::parse(&args.next().context(usage)?)?;
    let n: u64 = args.next().context(usage)?.parse().context(usage)?;
    wsmon_bench::requests::drive(layering, n).await
}

use anyhow::Context;
