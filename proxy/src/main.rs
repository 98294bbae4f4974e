//! `wsmon-proxy`: the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use wsmon_proxy::config::FileConfig;
use wsmon_proxy::{Proxy, Settings, Upstream};

/// A sidecar reverse proxy recording wsmon's WebSocket stream metrics for any upstream.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to accept clients on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The application, as http://host:port.
    #[arg(long, value_parser = parse_upstream)]
    upstream: Option<Upstream>,
    /// A route template for the `route` label (repeatable), like /ws or '/rooms/{id}'.
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Address for /metrics and /healthz [default: 127.0.0.1:9478].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Threads of each kind: the runtime (HTTP, upgrades) and the relay of upgraded
    /// connections. 1 (the default) is one of each.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// A YAML config file; command-line flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    Upstream::parse(s).map_err(|e| format!("expected {e}"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "wsmon_proxy=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => Some(FileConfig::load(path)?),
        None => None,
    };
    let defaults = Settings::new(
        SocketAddr::from(([0, 0, 0, 0], 8080)),
        Upstream::parse("http://127.0.0.1:3000").expect("default upstream is valid"),
    );
    let mut settings = defaults;
    let file_has_upstream = file.as_ref().is_some_and(|f| f.upstream.is_some());
    if let Some(file) = file {
        file.apply(&mut settings);
    }
    if let Some(v) = args.listen {
        settings.listen = v;
    }
    match args.upstream {
        Some(v) => settings.upstream = v,
        None if !file_has_upstream => {
            anyhow::bail!("--upstream is required (or `upstream` in --config)")
        }
        None => {}
    }
    if !args.routes.is_empty() {
        settings.routes = args.routes;
    }
    if let Some(v) = args.metrics_listen {
        settings.metrics_listen = Some(v);
    }
    if let Some(v) = args.threads {
        settings.threads = v.into();
    }
    let runtime = match settings.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(settings))
}

async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let wsmon = settings.wsmon(&registry)?;
    let _otlp =
        wsmon::export::otlp::spawn_from_env(&registry, "wsmon-proxy", env!("CARGO_PKG_VERSION"))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding --listen {}", settings.listen))?;
    let admin = match settings.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --metrics-listen {addr}"))?,
        ),
        None => None,
    };
    tracing::info!(
        listen = %settings.listen,
        upstream = %settings.upstream.authority,
        routes = ?settings.routes,
        metrics = ?settings.metrics_listen,
        threads = settings.threads,
        "wsmon-proxy serving"
    );
    let proxy = Proxy::new(settings, wsmon).context("invalid --route")?;
    let _admin = admin.map(|l| tokio::spawn(wsmon_proxy::admin::serve(l, proxy.clone())));
    proxy.serve(listener, terminated()).await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
