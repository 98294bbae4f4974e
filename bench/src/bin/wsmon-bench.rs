//! Runs wsmon's benchmarks, prints their tables and, with `--write`, rewrites the generated
//! part of `BENCHMARKS.md`. `scripts/bench.sh` is the usual entry point.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use std::time::Duration;

use wsmon_bench::{
    accuracy, backpressure, cold_start, counted, footprint, instructions, machine, markdown,
    overhead, relay_cost, relay_counted, replay, requests, scrape, syscalls,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Overhead,
    Instructions,
    /// 1d: instructions per plain HTTP request, layer against no layer.
    Requests,
    Syscalls,
    Scrape,
    Footprint,
    Accuracy,
    ColdStart,
    Backpressure,
    Replay,
    /// Relay cost: direct versus nginx versus wsmon-proxy.
    Proxy,
    /// 9b: instructions and system calls per relayed message, nginx against wsmon-proxy.
    ProxyCounted,
}

#[derive(Parser)]
#[command(
    about = "wsmon benchmarks: middleware overhead, scrape cost, prober footprint/accuracy/cold start vs k6",
    after_help = "Examples:\n  wsmon-bench --quick\n  wsmon-bench --only overhead --runs 3\n  \
                  wsmon-bench --write BENCHMARKS.md --command 'bash scripts/bench.sh'"
)]
struct Cli {
    /// Shorter phases, fewer runs and sizes: about 3 minutes in all.
    #[arg(long)]
    quick: bool,
    /// Run only these benchmarks (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Bench>,
    /// Runs per mode and N for the overhead benchmark (default 7, 2 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Rewrite the generated block of this Markdown file.
    #[arg(long)]
    write: Option<PathBuf>,
    /// The command that reproduces this run, recorded in the file.
    #[arg(long, default_value = "bash scripts/bench.sh")]
    command: String,
}

/// Benchmark 1's fixed-phase rate, which 1b also uses to scale the OTLP export's cost.
const OVERHEAD_DELIVERIES: f64 = 20_000.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wsmon_bench::init_tracing();
    let cli = Cli::parse();
    let wants = |b: Bench| cli.only.is_empty() || cli.only.contains(&b);
    let started = Instant::now();
    let load_before = machine::load_average();
    let mut sections = Vec::new();

    if wants(Bench::Overhead) {
        let opts = overhead::Options {
            connections: vec![100, 2000],
            runs: cli.runs.unwrap_or(if cli.quick { 2 } else { 7 }),
            warmup_secs: 1.0,
            fixed_secs: if cli.quick { 1.5 } else { 4.0 },
            saturate_secs: if cli.quick { 1.5 } else { 4.0 },
            fixed_deliveries: OVERHEAD_DELIVERIES,
        };
        eprintln!("== benchmark 1: middleware overhead");
        let trials = overhead::run(&opts).await?;
        sections.push(overhead::report(&trials, &opts));
    }
    if wants(Bench::Instructions) {
        if !instructions::valgrind_available() {
            anyhow::bail!("valgrind is not installed (apt-get install valgrind); use --only to skip instructions");
        }
        let opts = counted::Options {
            connections: 100,
            deliveries: 500.0,
            short_secs: 2.0,
            long_secs: if cli.quick { 4.0 } else { 10.0 },
        };
        eprintln!("== benchmark 1b: instructions per message under callgrind");
        let counts = instructions::run(&opts).await?;
        sections.push(instructions::report(&counts, &opts, OVERHEAD_DELIVERIES));
    }
    if wants(Bench::Requests) {
        if !instructions::valgrind_available() {
            anyhow::bail!(
                "valgrind is not installed (apt-get install valgrind); use --only to skip requests"
            );
        }
        let (short, long) = if cli.quick {
            (2_000, 6_000)
        } else {
            (5_000, 25_000)
        };
        eprintln!("== benchmark 1d: instructions per plain HTTP request under callgrind");
        let counts = requests::run(short, long).await?;
        sections.push(requests::report(&counts, short, long));
    }
    if wants(Bench::Syscalls) {
        if !syscalls::strace_available() {
            anyhow::bail!(
                "strace is not installed (apt-get install strace); use --only to skip syscalls"
            );
        }
        let opts = counted::Options {
            connections: 100,
            deliveries: 1000.0,
            short_secs: 2.0,
            long_secs: if cli.quick { 5.0 } else { 10.0 },
        };
        eprintln!("== benchmark 1c: system calls per message under strace");
        let counts = syscalls::run(&opts).await?;
        sections.push(syscalls::report(&counts, &opts));
    }
    if wants(Bench::Scrape) {
        let steps = [1_000, 5_000, 10_000];
        let renders = if cli.quick { 20 } else { 100 };
        eprintln!("== benchmark 3: scrape cost");
        let points = scrape::run(&steps, renders).await?;
        sections.push(scrape::report(&points, renders));
    }
    if wants(Bench::Footprint) {
        let opts = footprint::Options {
            streams: if cli.quick {
                vec![1_000]
            } else {
                vec![1_000, 10_000]
            },
            settle_secs: if cli.quick { 2.0 } else { 5.0 },
            window_secs: if cli.quick { 3.0 } else { 20.0 },
        };
        eprintln!("== benchmark 4: prober footprint versus k6");
        let samples = footprint::run(&opts).await?;
        sections.push(footprint::report(&samples, &opts));
    }
    if wants(Bench::Accuracy) {
        let opts = accuracy::Options {
            first_payload_delays: [10, 100, 1000].map(Duration::from_millis).to_vec(),
            publish_delay: Duration::from_millis(5),
            runs: if cli.quick { 2 } else { 5 },
            stream_secs: if cli.quick { 1.5 } else { 3.0 },
        };
        eprintln!("== benchmark 5: measurement accuracy");
        let results = accuracy::run(&opts).await?;
        sections.push(accuracy::report(&results, &opts));
    }
    if wants(Bench::ColdStart) {
        eprintln!("== benchmark 6: cold start of a cron check");
        let results = cold_start::run(if cli.quick { 5 } else { 15 }).await?;
        sections.push(cold_start::report(&results));
    }

    if wants(Bench::Backpressure) {
        let opts = backpressure::Options {
            clients: 500,
            slow: 20,
            rate: 100.0,
            size: 4096,
            duration: Duration::from_secs(if cli.quick { 15 } else { 40 }),
            rss_limit: 1 << 30,
        };
        eprintln!("== benchmark 7: backpressure before and after");
        let results = backpressure::run(&opts).await?;
        sections.push(backpressure::report(&results, &opts));
    }
    if wants(Bench::Replay) {
        let opts = replay::Options {
            backlog: if cli.quick { 20_000 } else { 100_000 },
            outage: Duration::from_secs(10),
            rate: 200.0,
        };
        eprintln!("== benchmark 8: replay cost");
        let figures = replay::run(&opts).await?;
        sections.push(replay::report(&figures, &opts));
    }
    if wants(Bench::Proxy) {
        let opts = relay_cost::Options {
            connections: 20,
            round_trips: if cli.quick { 500 } else { 2000 },
            payload_bytes: 128,
            runs: cli.runs.unwrap_or(if cli.quick { 2 } else { 5 }),
        };
        eprintln!("== benchmark 9: relay cost (direct, nginx, wsmon-proxy)");
        let trials = relay_cost::run(&opts).await?;
        sections.push(relay_cost::report(&trials, &opts));
    }
    if wants(Bench::ProxyCounted) {
        if !instructions::valgrind_available() || !syscalls::strace_available() {
            anyhow::bail!(
                "valgrind and strace are needed (apt-get install valgrind strace); use --only to skip proxy-counted"
            );
        }
        let opts = relay_counted::Options {
            connections: 4,
            short_round_trips: if cli.quick { 200 } else { 500 },
            long_round_trips: if cli.quick { 1000 } else { 2500 },
            payload_bytes: 128,
        };
        eprintln!("== benchmark 9b: relay cost counted (nginx, wsmon-proxy)");
        let counts = relay_counted::run(&opts).await?;
        sections.push(relay_counted::report(&counts, &opts));
    }

    let load_after = machine::load_average();
    sections.push(
        "## Not measured here\n\nBenchmark 2 (zero heap allocations per message with the \
         instrumented socket and the outbound queue) is counted, not timed, so it is an ordinary \
         test: `cargo test -p wsmon --test allocations` (`middleware/tests/allocations.rs`).\n"
            .to_string(),
    );
    let header = format!(
        "Generated by `{}`{} in {:.0} s. Machine: {} cores ({}), {:.0} GiB RAM, Linux {}; shared \
         with other engineers' builds, so absolute figures are noisy (1-minute load average {:.1} \
         at the start, {:.1} at the end, on {} cores). Compare the ratios from interleaved runs, \
         not absolute figures across sections.\n",
        cli.command,
        if cli.quick { " (quick mode)" } else { "" },
        started.elapsed().as_secs_f64(),
        machine::cores(),
        machine::cpu_model(),
        machine::memory_gib(),
        machine::kernel(),
        load_before,
        load_after,
        machine::cores(),
    );
    let body = format!("{header}\n{}", sections.join("\n"));
    println!("{body}");
    if let Some(path) = cli.write {
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, markdown::replace_generated(&doc, &body))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
