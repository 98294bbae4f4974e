//! The workload of benchmark 1d: `wsmon-bench-requests <bare|identity|wsmon|outer> <requests>
//! [headers]` sends that many plain requests, each with that many of a browser's headers
//! (default all 9), through the router in-process, for callgrind to count.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: wsmon-bench-requests <bare|identity|wsmon|outer> <requests> [headers]";
    let layering = wsmon_bench::requests::Layering::parse(&args.next().context(usage)?)?;
    let n: u64 = args.next().context(usage)?.parse().context(usage)?;
    let headers = match args.next() {
        Some(h) => h.parse().context(usage)?,
        None => wsmon_bench::requests::HEADERS.len(),
    };
    wsmon_bench::requests::drive(layering, n, headers).await
}

use anyhow::Context;
