//! The admin listener: `/metrics` (Prometheus text) and `/healthz` (200 while serving, 503
//! once shutting down, for readiness probes).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::server::Proxy;

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let proxy = proxy.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(respond(&proxy, &req)) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(proxy: &Proxy, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (code, body, content_type) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            proxy.wsmon().render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" if proxy.is_shutting_down() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".into(),
            "text/plain",
        ),
        "/healthz" => (StatusCode::OK, "ok\n".into(), "text/plain"),
        _ => (StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    };
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
