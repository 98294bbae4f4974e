//! The listener: HTTP/1.1 requests are forwarded to the upstream, WebSocket upgrades are
//! forwarded on a connection of their own and, once both sides switched protocols, handed to
//! the [`relay`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wsmon::{RouteHandle, WsMon};

use crate::forward;
use crate::relay::{self, Leg, RelayConfig, Relays};
use crate::settings::Settings;

/// The body of every response the proxy sends: the upstream's, streamed, or an empty one.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A running proxy's shared state.
pub struct Proxy {
    settings: Settings,
    wsmon: WsMon,
    routes: matchit::Router<RouteHandle>,
    unmatched: RouteHandle,
    client: Client<HttpConnector, Incoming>,
    shutdown: watch::Sender<bool>,
    /// The relay threads, started with the first upgrade (`settings.threads` of them).
    relays: OnceLock<std::io::Result<Arc<Relays>>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Builds the proxy; `wsmon` must have been built with the same routes and close-code
    /// allowlist (see [`Settings::wsmon`]).
    pub fn new(settings: Settings, wsmon: WsMon) -> Result<Arc<Self>, RouteError> {
        let mut routes = matchit::Router::new();
        for r in &settings.routes {
            let handle = wsmon
                .route(r)
                .ok_or_else(|| RouteError::Undeclared(r.clone()))?;
            routes
                .insert(r.clone(), handle)
                .map_err(|source| RouteError::Template {
                    template: r.clone(),
                    source,
                })?;
        }
        let unmatched = wsmon.unmatched_route();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.upstream_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Arc::new(Self {
            settings,
            wsmon,
            routes,
            unmatched,
            client,
            shutdown: watch::channel(false).0,
            relays: OnceLock::new(),
        }))
    }

    /// The metrics handle.
    pub fn wsmon(&self) -> &WsMon {
        &self.wsmon
    }

    /// True once a graceful shutdown started.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The route `path` is recorded under: its template's, or `unmatched`.
    pub fn route_of(&self, path: &str) -> &RouteHandle {
        self.routes.at(path).map_or(&self.unmatched, |m| m.value)
    }

    /// Serves `listener` until `stop` resolves; then stops accepting, sends 1001 to both legs
    /// of every relayed connection, and waits up to the shutdown timeout for them to drain.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        stop: impl std::future::Future<Output = ()>,
    ) {
        // One clone per HTTP connection task: the count says when they have all ended.
        let live_http = Arc::new(());
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(err) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let proxy = self.clone();
            let service = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(self.settings.header_read_timeout)
                .max_buf_size(self.settings.max_header_bytes);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut shutdown = self.shutdown.subscribe();
            let token = live_http.clone();
            tokio::spawn(async move {
                let _token = token;
                tokio::pin!(conn);
                let ended = tokio::select! {
                    ended = &mut conn => ended,
                    _ = async { shutdown.wait_for(|s| *s).await.is_ok() } => {
                        // Finishes the request in flight, then closes; upgraded streams
                        // are the relay's to close.
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(err) = ended {
                    tracing::debug!(error = %err, "client connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down: no new connections; closing streams with 1001");
        self.shutdown.send_replace(true);
        let timeout = self.settings.shutdown_timeout;
        let http_drained = async {
            while Arc::strong_count(&live_http) > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(timeout, http_drained).await;
        let live = self.wsmon.shutdown_and_wait(timeout).await;
        if live > 0 {
            tracing::warn!(live, "shutdown timeout passed with streams still open");
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        if forward::is_websocket_upgrade(req.method(), req.headers()) {
            self.upgrade(req, peer).await
        } else {
            self.forward(req, peer).await
        }
    }

    /// Plain HTTP: the request and its streamed body go to the upstream over a pooled
    /// keep-alive connection; the response streams back.
    async fn forward(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        parts.uri = match self.upstream_uri(&parts.uri) {
            Some(uri) => uri,
            None => return status(StatusCode::BAD_REQUEST),
        };
        forward::strip_hop_by_hop(&mut parts.headers, false);
        forward::add_forwarded(&mut parts.headers, peer, "http");
        let request = Request::from_parts(parts, body);
        match tokio::time::timeout(self.settings.upstream_timeout, self.client.request(request))
            .await
        {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                forward::strip_hop_by_hop(&mut parts.headers, false);
                Response::from_parts(parts, body.boxed())
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "upstream request failed");
                status(StatusCode::BAD_GATEWAY)
            }
            Err(_) => status(StatusCode::GATEWAY_TIMEOUT),
        }
    }

    /// A WebSocket upgrade: the client's request, with its headers, on a new upstream
    /// connection. A 101 starts the relay; any other answer is passed back.
    async fn upgrade(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let route = self.route_of(req.uri().path()).clone();
        let refuse = |status_code: StatusCode| {
            self.wsmon
                .observe_upgrade(&route, status_code, started.elapsed());
            status(status_code)
        };
        if let (Some(allowed), Some(origin)) = (
            &self.settings.allowed_origins,
            req.headers().get(header::ORIGIN),
        ) {
            if !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes()) {
                return refuse(StatusCode::FORBIDDEN);
            }
        }
        if *self.shutdown.borrow() {
            return refuse(StatusCode::SERVICE_UNAVAILABLE);
        }
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (mut parts, _body) = req.into_parts();
        let Some(uri) = parts.uri.path_and_query().cloned() else {
            return refuse(StatusCode::BAD_REQUEST);
        };
        parts.uri = uri.into();
        forward::strip_hop_by_hop(&mut parts.headers, true);
        forward::add_forwarded(&mut parts.headers, peer, "http");
        let request = Request::from_parts(parts, Empty::<Bytes>::new());

        let timeout = self.settings.upstream_timeout;
        let answer = tokio::time::timeout(timeout, async {
            let stream = TcpStream::connect(self.settings.upstream.authority.as_str()).await?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            Ok::<_, UpstreamError>(sender.send_request(request).await?)
        })
        .await;
        let mut response = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "upstream upgrade failed");
                return refuse(StatusCode::BAD_GATEWAY);
            }
            Err(_) => return refuse(StatusCode::GATEWAY_TIMEOUT),
        };
        let code = response.status();
        self.wsmon.observe_upgrade(&route, code, started.elapsed());
        if code != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = response.into_parts();
            forward::strip_hop_by_hop(&mut parts.headers, false);
            return Response::from_parts(parts, body.boxed());
        }
        let compression = response
            .headers()
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("permessage-deflate"));
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let observer = self.wsmon.observe_connection(&route);
        let config = RelayConfig {
            compression,
            ..self.settings.relay.clone()
        };
        let shutdown = self.shutdown.subscribe();
        let relays = match self
            .relays
            .get_or_init(|| Relays::start(self.settings.threads).map(Arc::new))
        {
            Ok(relays) => Arc::clone(relays),
            Err(err) => {
                // The observer's drop records the 101 that never carried a stream.
                tracing::error!(error = %err, "no relay thread could start");
                return status(StatusCode::SERVICE_UNAVAILABLE);
            }
        };
        tokio::spawn(async move {
            let legs = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => leg(client).zip(leg(upstream)),
                Err(err) => {
                    // The observer's drop records the 101 that never carried a stream.
                    tracing::debug!(error = %err, "upgrade did not complete");
                    return;
                }
            };
            match legs {
                Some((client, upstream)) => {
                    relay::run(&relays, client, upstream, observer, &config, shutdown).await
                }
                None => tracing::error!("an upgraded connection is not a TCP stream"),
            }
        });
        let (parts, _) = response.into_parts();
        Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed())
    }

    fn upstream_uri(&self, uri: &http::Uri) -> Option<http::Uri> {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        format!("http://{}{pq}", self.settings.upstream.authority)
            .parse()
            .ok()
    }
}

/// A route template the proxy cannot serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// matchit refused the template (bad syntax, or it conflicts with another).
    #[error("route template {template:?}: {source}")]
    Template {
        template: String,
        source: matchit::InsertError,
    },
    /// `wsmon` was built without this route (build it with [`Settings::wsmon`]).
    #[error("route template {0:?} is not declared in the metrics")]
    Undeclared(String),
}

#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

/// Takes the TCP stream back from hyper, with the bytes it read past the HTTP head. Both
/// connections are served over `TokioIo<TcpStream>`, so this only fails on a programming error.
fn leg(upgraded: Upgraded) -> Option<Leg> {
    let parts = upgraded.downcast::<TokioIo<TcpStream>>().ok()?;
    Some(Leg {
        stream: parts.io.into_inner(),
        read_ahead: parts.read_buf,
    })
}

fn status(code: StatusCode) -> Response<ProxyBody> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = code;
    r
}
