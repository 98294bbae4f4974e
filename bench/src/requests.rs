//! Benchmark 1d: what the layer costs a request that is not a WebSocket upgrade, the common
//! case on a mixed REST + WebSocket service. User-space instructions per plain request,
//! counted by callgrind, with the same router bare, with a no-op layer (tower's `Identity`:
//! what axum's `Router::layer` charges any layer) and with wsmon's layer. The router is
//! called in-process, as `axum::serve` calls it per request, so the figure is routing plus
//! handler work without hyper's parsing or the socket: the ratio is the strictest one.
//! Two request counts per mode; the slope between them removes start-up.

use std::path::Path;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use tower::{Service, ServiceExt};

use crate::markdown::Table;

/// How the router is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layering {
    /// No layer.
    Bare,
    /// `Router::layer(tower::layer::util::Identity::new())`.
    Identity,
    /// `Router::layer(wsmon.layer())`, the README's integration.
    Wsmon,
    /// `wsmon.layer().layer(router)`: the whole router wrapped, before routing.
    Outer,
}

impl Layering {
    pub const ALL: [Layering; 4] = [
        Layering::Bare,
        Layering::Identity,
        Layering::Wsmon,
        Layering::Outer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layering::Bare => "bare",
            Layering::Identity => "no-op layer",
            Layering::Wsmon => "wsmon layer",
            Layering::Outer => "wsmon around the router",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Layering::Bare => "bare",
            Layering::Identity => "identity",
            Layering::Wsmon => "wsmon",
            Layering::Outer => "outer",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.arg() == s)
            .with_context(|| {
                format!("unknown layering {s:?}: expected bare, identity, wsmon or outer")
            })
    }
}

async fn ws(ws: wsmon::WebSocketUpgrade) -> axum::response::Response {
    ws.on_upgrade(|_| async {})
}

/// A mixed service: two REST routes, the WebSocket route and `/metrics`.
fn router(layering: Layering) -> anyhow::Result<(Router, wsmon::WsMon)> {
    let registry = prometheus::Registry::new();
    let wsmon = wsmon::WsMon::builder().route("/ws").build(&registry)?;
    let app = Router::new()
        .route("/api/items", get(|| async { "items" }))
        .route("/api/items/{id}", get(|| async { "item" }))
        .route("/ws", get(ws))
        .route("/metrics", wsmon.metrics_route());
    let app = match layering {
        Layering::Bare | Layering::Outer => app,
        Layering::Identity => app.layer(tower::layer::util::Identity::new()),
        Layering::Wsmon => app.layer(wsmon.layer()),
    };
    // As `axum::serve` does: handlers become routes once, not per request.
    Ok((app.with_state(()), wsmon))
}

/// The headers of a browser's `fetch` to a REST API, so that a check which scans the headers
/// pays for a realistic count (9), not for one. `accept` comes first: the first header alone
/// is the request this benchmark sent before.
pub const HEADERS: [(&str, &str); 9] = [
    ("accept", "application/json"),
    ("host", "app.example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("referer", "https://app.example.com/items"),
    ("cookie", "session=4f2a9c1e7b"),
    ("sec-fetch-mode", "cors"),
    ("connection", "keep-alive"),
];

/// Sends `n` plain `GET /api/items/{id}` requests, each with the first `headers` of
/// [`HEADERS`], through the router, in this process.
pub async fn drive(layering: Layering, n: u64, headers: usize) -> anyhow::Result<()> {
    let Some(headers) = HEADERS.get(..headers) else {
        bail!(
            "{headers} headers asked for: expected 0 to {}",
            HEADERS.len()
        );
    };
    let (app, wsmon) = router(layering)?;
    match layering {
        Layering::Outer => send(tower::Layer::layer(&wsmon.layer(), app), n, headers).await,
        _ => send(app, n, headers).await,
    }
}

async fn send<S>(mut app: S, n: u64, headers: &[(&str, &str)]) -> anyhow::Result<()>
where
    S: Service<Request<Body>, Response = axum::response::Response>,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    for i in 0..n {
        let mut request = Request::get(if i % 2 == 0 {
            "/api/items"
        } else {
            "/api/items/42"
        });
        for &(name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Body::empty())?;
        let response = ServiceExt::<Request<Body>>::ready(&mut app)
            .await?
            .call(request)
            .await?;
        if response.status() != 200 {
            bail!("plain request answered {}", response.status());
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Count {
    pub layering: Layering,
    /// `(instructions, requests)` for the short and the long run.
    pub short: (u64, u64),
    pub long: (u64, u64),
}

impl Count {
    pub fn per_request(&self) -> f64 {
        crate::counted::slope(self.short, self.long)
    }
}

async fn one(layering: Layering, n: u64, dir: &Path) -> anyhow::Result<(u64, u64)> {
    let out_file = dir.join(format!("callgrind.{}.{n}.out", layering.arg()));
    let status = tokio::process::Command::new("valgrind")
        .args(["-q", "--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(crate::procs::sibling("wsmon-bench-requests")?)
        .args([layering.arg(), &n.to_string()])
        .status()
        .await
        .context("running valgrind")?;
    if !status.success() {
        bail!(
            "wsmon-bench-requests {} {n} under callgrind: {status}",
            layering.arg()
        );
    }
    let total = crate::instructions::callgrind_total(&out_file)?;
    Ok((total, n))
}

pub async fn run(short: u64, long: u64) -> anyhow::Result<Vec<Count>> {
    let dir = std::env::temp_dir().join(format!("wsmon-bench-req-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut counts = Vec::new();
    for layering in Layering::ALL {
        let c = Count {
            layering,
            short: one(layering, short, &dir).await?,
            long: one(layering, long, &dir).await?,
        };
        eprintln!(
            "  instructions {:<12} {:.0} per plain request",
            layering.as_str(),
            c.per_request()
        );
        counts.push(c);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(counts)
}

pub fn report(counts: &[Count], short: u64, long: u64) -> String {
    let mut out = String::from("### 1d. Instructions per plain HTTP request (callgrind)\n\n");
    out.push_str(&format!(
        "A mixed router (two REST routes, `/ws`, `/metrics`) called in-process, as \
         `axum::serve` calls it, for {short} and for {long} plain `GET`s (each with a browser's 9 headers) under \
         `valgrind --tool=callgrind`; instructions per request is the difference between the \
         two runs divided by the difference in requests. No hyper parsing or socket work is \
         included, so the ratios are the strictest ones. The no-op layer is tower's \
         `Identity`: the cost axum's `Router::layer` puts on any layer.\n\n"
    ));
    let get = |l: Layering| {
        counts
            .iter()
            .find(|c| c.layering == l)
            .map(Count::per_request)
    };
    let bare = get(Layering::Bare);
    let mut t = Table::new(["router", "instructions per request", "over bare"]);
    for c in counts {
        let ratio = bare.map_or(String::new(), |b| format!("{:.3}", c.per_request() / b));
        t.row([
            c.layering.as_str().to_string(),
            format!("{:.0}", c.per_request()),
            ratio,
        ]);
    }
    out.push_str(&t.render());
    if let (Some(i), Some(w)) = (get(Layering::Identity), get(Layering::Wsmon)) {
        out.push_str(&format!(
            "\nwsmon's layer over the no-op layer: **{:.3}** ({:+.0} instructions per request).\n",
            w / i,
            w - i
        ));
    }
    if let (Some(b), Some(o)) = (bare, get(Layering::Outer)) {
        out.push_str(&format!(
            "wsmon around the router over the bare router: **{:.3}** ({:+.0} instructions per \
             request).\n",
            o / b,
            o - b
        ));
    }
    out
}
