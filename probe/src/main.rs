//! The `wsmon-probe` command line. Errors become exit codes here and nowhere else:
//! 0 all canaries passed, 1 a canary failed (or a report could not be delivered),
//! 2 a usage or configuration error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use wsmon_probe::config::{self, Config};
use wsmon_probe::record::trace;
use wsmon_probe::run::{daemon::Daemon, demo, once, report};
use wsmon_probe::serve;

const EXAMPLES: &str = "\
Examples:
  wsmon-probe demo
  wsmon-probe check -c probe.yaml
  wsmon-probe once -c probe.yaml --duration 10s --format json
  wsmon-probe once -c probe.yaml --textfile /var/lib/node_exporter/textfile
  wsmon-probe once -c probe.yaml --push http://pushgateway:9091
  wsmon-probe daemon -c probe.yaml
";

#[derive(Parser)]
#[command(name = "wsmon-probe", version, about = "Synthetic WebSocket canaries: is this stream alive, up to date, and fast, as a client sees it?", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn duration(s: &str) -> Result<Duration, String> {
    config::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a duration like 500ms, 5s or 2m, found {s:?}"))
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Prom,
}

#[derive(Subcommand)]
enum Command {
    /// Run each canary once for a bounded time and exit 0 (all pass), 1 (any fails) or 2 (bad config).
    #[command(after_help = "Examples:
  wsmon-probe once -c probe.yaml
  wsmon-probe once -c probe.yaml --canary feed --duration 10s --format json
  wsmon-probe once -c probe.yaml --until-first-payload --duration 10s --format json
  wsmon-probe once -c probe.yaml --format prom --textfile /var/lib/node_exporter/textfile
  wsmon-probe once -c probe.yaml --push http://pushgateway:9091")]
    Once {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Run only this canary (repeatable).
        #[arg(long = "canary", value_name = "NAME")]
        canaries: Vec<String>,
        /// Upper bound on each canary's run; a stream-ending fault stops it earlier.
        #[arg(long, default_value = "30s", value_parser = duration)]
        duration: Duration,
        /// Pass each canary as soon as its first data message arrives and passes its checks
        ///
        /// The canary then closes with 1000 "probe finished", as the daemon's /probe does,
        /// instead of holding the stream for --duration. --duration still bounds the wait:
        /// no data message within it fails with first_payload_timeout.
        ///
        /// Use it for a frequent "does it connect and deliver?" cron check that should take
        /// about one round trip. Leave it off when the check must hold the stream: sequence
        /// gaps, stalls, heartbeats, head checks and publish round trips need time and are
        /// not exercised with it. Any first message counts, such as the acknowledgement of
        /// an on_open subscribe.
        #[arg(long, verbatim_doc_comment)]
        until_first_payload: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also write DIR/wsmon-probe.prom atomically, for node_exporter's textfile collector.
        #[arg(long, value_name = "DIR")]
        textfile: Option<PathBuf>,
        /// Also PUT the metrics to this Pushgateway (job wsmon_probe unless the URL names one).
        #[arg(long, value_name = "URL")]
        push: Option<String>,
    },
    /// Hold every canary, reconnect with backoff, and serve /metrics, /probe, /status and /healthz.
    #[command(after_help = "Examples:
  wsmon-probe daemon -c probe.yaml
  wsmon-probe daemon -c probe.yaml --listen 0.0.0.0:9477

Signals: SIGTERM/SIGINT close every canary with 1001 and exit; SIGHUP reloads the config
(an invalid new config is logged and the running one kept).")]
    Daemon {
        #[arg(short, long)]
        config: PathBuf,
        /// Overrides `listen` from the config.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config and print it resolved, with secrets redacted.
    #[command(after_help = "Example:\n  FEED_TOKEN=... wsmon-probe check -c probe.yaml")]
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Start the example feed in-process and a daemon with a canary against it, then inject
    /// one fault at a time and show wsmon catching each; no config needed.
    #[command(after_help = "Examples:
  wsmon-probe demo
  wsmon-probe demo --rounds 1
  wsmon-probe demo --healthy --duration 30s --listen 127.0.0.1:9477

Faults, in order: stall, sequence gap, duplicates, first-payload delay, tcp drop (1006),
slow consumer (1013), oversized message (1009), publish blackhole (e2e freshness).")]
    Demo {
        /// No faults: a healthy feed and a live summary line per canary.
        #[arg(long)]
        healthy: bool,
        /// Stop after this many rounds of faults (default: until --duration or Ctrl-C).
        #[arg(long, value_name = "N", conflicts_with = "healthy")]
        rounds: Option<usize>,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long, value_parser = duration)]
        duration: Option<Duration>,
        /// Address of the prober's /metrics and /status (default: a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Address of the example feed (default: a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        feed_listen: SocketAddr,
        /// How often to print the summary lines.
        #[arg(long, default_value = "3s", value_parser = duration)]
        every: Duration,
    },
}

/// An error that should exit with 2: a bad config file or a bad OTEL_* environment.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Trace(#[from] trace::TraceInitError),
    #[error(transparent)]
    Otlp(#[from] wsmon::export::otlp::OtlpStartError),
}

/// `RUST_LOG` (or `default`) decides what is logged, except that dependencies never log at
/// trace: at that level tungstenite prints every frame and hyper every buffer, on_open
/// messages and publish requests included, and secrets must not reach a log at any level.
fn init_logging(default: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_dependency_trace = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() <= tracing::Level::DEBUG || meta.target().starts_with("wsmon")
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(no_dependency_trace)
                .with_filter(filter),
        )
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Daemon { .. } => "info",
        // `once` and `demo` report faults in their own output; logs would repeat them.
        _ => "error",
    };
    init_logging(default_log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn load(path: &Path) -> Result<Config, UsageError> {
    Ok(Config::load(path)?)
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    // Traces of probe runs, when the OTEL_* environment asks for them.
    let tracing = match &command {
        Command::Check { .. } => None,
        _ => trace::init_from_env().map_err(UsageError::from)?,
    };
    let result = run_command(command).await;
    if let Some(t) = tracing {
        t.shutdown();
    }
    result
}

async fn run_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config } => {
            let c = load(&config)?;
            print!("{}", c.render());
            eprintln!("{}: ok, {} canaries", config.display(), c.canaries.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Once {
            config,
            canaries,
            duration,
            until_first_payload,
            format,
            textfile,
            push,
        } => {
            let c = load(&config)?;
            let mut selected = Vec::new();
            for name in &canaries {
                match c.canary(name) {
                    Some(cfg) => selected.push(cfg.clone()),
                    None => {
                        let known: Vec<&str> = c.canaries.iter().map(|c| c.name.as_str()).collect();
                        eprintln!(
                            "error: {}: no canary named {name:?}; the file has: {}",
                            config.display(),
                            known.join(", ")
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            if selected.is_empty() {
                selected = c.canaries.clone();
            }
            let registry = prometheus::Registry::new();
            let runs = once::run_with(&selected, duration, until_first_payload, &registry).await?;
            match format {
                Format::Text => print!("{}", report::text(&runs)),
                Format::Json => print!("{}", report::json_lines(&runs)),
                Format::Prom => print!("{}", report::prom(&registry)),
            }
            if let Some(dir) = textfile {
                report::write_textfile(&dir, &report::prom(&registry))?;
            }
            if let Some(url) = push {
                report::push(&url, report::prom(&registry)).await?;
            }
            let all_passed = runs.iter().all(|r| r.success());
            Ok(if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Daemon { config, listen } => {
            let c = load(&config)?;
            let addr = listen.unwrap_or(c.listen);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = listener.local_addr()?;
            let daemon = Daemon::start(c)?;
            let _otlp = otlp_metrics(daemon.registry(), "wsmon-probe")?;
            println!(
                "wsmon-probe daemon listening on http://{local} (/metrics /probe /status /healthz)"
            );
            let server = tokio::spawn(serve(listener, daemon.clone()));
            wait_for_signals(&daemon, &config).await?;
            daemon.shutdown().await;
            server.abort();
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            healthy,
            rounds,
            duration,
            listen,
            feed_listen,
            every,
        } => run_demo(duration, listen, feed_listen, every, healthy, rounds).await,
    }
}

/// OTLP metric export of `registry`, on when OTEL_EXPORTER_OTLP_ENDPOINT is set.
fn otlp_metrics(
    registry: &prometheus::Registry,
    service: &str,
) -> Result<Option<wsmon::export::otlp::OtlpExporter>, UsageError> {
    Ok(wsmon::export::otlp::spawn_from_env(
        registry,
        service,
        env!("CARGO_PKG_VERSION"),
    )?)
}

async fn serve(listener: tokio::net::TcpListener, daemon: Daemon) {
    if let Err(e) = axum::serve(listener, serve::router(daemon)).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn wait_for_signals(daemon: &Daemon, path: &Path) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => match Config::load(path) {
                Ok(new) => {
                    if new.listen != daemon.listen() {
                        tracing::warn!("listen changed; it takes effect on restart");
                    }
                    daemon.reload(new).await;
                }
                Err(e) => tracing::error!(error = %e, "reload failed; keeping the running config"),
            },
        }
    }
}

async fn run_demo(
    duration: Option<Duration>,
    listen: SocketAddr,
    feed_listen: SocketAddr,
    every: Duration,
    healthy: bool,
    rounds: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let feed_registry = prometheus::Registry::new();
    let stop_feed = tokio_util::sync::CancellationToken::new();
    let stop = stop_feed.clone();
    let (feed_addr, feed, feed_task) = wsmon_feed::spawn(
        feed_listen,
        wsmon_feed::FeedConfig::default(),
        &feed_registry,
        async move { stop.cancelled().await },
    )
    .await
    .with_context(|| format!("starting the example feed on {feed_listen}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let daemon = Daemon::start(demo::config(feed_addr, local))?;
    let _otlp = (
        otlp_metrics(daemon.registry(), "wsmon-probe")?,
        otlp_metrics(&feed_registry, "wsmon-feed")?,
    );
    let server = tokio::spawn(serve(listener, daemon.clone()));

    if healthy {
        println!("wsmon-probe demo: the example feed and a canary holding it\n");
    } else {
        println!("wsmon-probe demo: the example feed, a canary holding it, and faults to catch\n");
    }
    println!("  feed stream     ws://{feed_addr}/ws");
    println!("  feed metrics    http://{feed_addr}/metrics");
    println!("  probe metrics   http://{local}/metrics");
    println!("  probe status    http://{local}/status");
    println!("\nThe canary publishes a nonce every second, asks for the head every 2s and pings every 2s.");
    if !healthy {
        println!(
            "The feed misbehaves in {} ways, one at a time; each is caught by wsmon's own signals.",
            demo::FAULTS.len()
        );
    }
    match duration {
        Some(d) => println!("Running for {:.0}s.\n", d.as_secs_f64()),
        None => println!("Ctrl-C to stop.\n"),
    }

    let started = Instant::now();
    let end = duration.map(|d| started + d);
    if !healthy {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_stop = stop.clone();
        let stopper = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match end { Some(e) => tokio::time::sleep_until(e.into()).await, None => std::future::pending().await } } => {}
            }
            on_stop.cancel();
        });
        let recorder = daemon.recorders().remove(0);
        let outcomes = demo::run_faults(
            &recorder,
            &feed.faults(),
            &feed_registry,
            started,
            end,
            rounds,
            &stop,
        )
        .await;
        stopper.abort();
        feed.faults().clear();
        println!("\n{}", demo::summary_table(&outcomes));
        println!("status page with history: http://{local}/status");
        daemon.shutdown().await;
        server.abort();
        stop_feed.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(6), feed_task).await;
        let all = outcomes
            .iter()
            .all(|o| !matches!(o.result, demo::Result::Missed));
        return Ok(if all {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let mut ticker = tokio::time::interval_at((started + every).into(), every);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = Instant::now();
                for r in daemon.recorders() {
                    println!("[{:>4.0}s] {}", started.elapsed().as_secs_f64(), demo::summary_line(&r.snapshot(), now));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = async { match end { Some(e) => tokio::time::sleep_until(e.into()).await, None => std::future::pending().await } } => break,
        }
    }
    let now = Instant::now();
    let mut failed = false;
    println!();
    for r in daemon.recorders() {
        let s = r.snapshot();
        failed |= !s.verdict.success();
        println!("final    {}", demo::summary_line(&s, now));
    }
    daemon.shutdown().await;
    server.abort();
    stop_feed.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(6), feed_task).await;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
