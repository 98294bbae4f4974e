//! What the daemon serves: `/metrics`, `/probe` ([`probe`]), `/status` ([`status_page`]) and
//! `/healthz`.

pub mod probe;
pub mod status_page;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::run::daemon::Daemon;

/// The router for `daemon`.
pub fn router(daemon: Daemon) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/status.json", get(status_json))
        .route("/healthz", get(healthz))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/status") }),
        )
        .merge(crate::serve::probe::router())
        .with_state(daemon)
}

async fn metrics(State(daemon): State<Daemon>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            wsmon::export::prometheus::CONTENT_TYPE,
        )],
        wsmon::export::prometheus::render(daemon.registry()),
    )
        .into_response()
}

fn snapshots(
    daemon: &Daemon,
) -> Vec<(
    crate::record::recorder::CanaryStatus,
    crate::record::history::HistoryView,
)> {
    daemon
        .recorders()
        .iter()
        .map(|r| (r.snapshot(), r.history()))
        .collect()
}

async fn status_json(State(daemon): State<Daemon>) -> Response {
    let body = status_page::render_json(&snapshots(&daemon), daemon.uptime().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn status(State(daemon): State<Daemon>) -> Response {
    let snapshots = snapshots(&daemon);
    let page = status_page::render(&snapshots, daemon.uptime().as_secs_f64());
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        )],
        Html(page),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}
