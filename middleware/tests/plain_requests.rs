//! Requests that are not WebSocket upgrade attempts pay nothing for wsmon's layer: the same
//! router, called in-process, makes exactly as many heap allocations per plain request with
//! `.layer(wsmon.layer())` as with a layer that does nothing at all. Counted, not timed, so it
//! holds on a loaded machine.
//!
//! Why the no-op layer is the baseline: axum's `Router::layer` wraps each route in one more
//! boxed, cloneable service, and a route clones it and boxes its future on every request. That
//! is 2 allocations per request for *any* layer (tower's `Identity` included), before the
//! layer's own code runs. The test also measures the bare router and checks that the whole
//! difference is exactly that cost, so wsmon's share is zero.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::Request;
use tower::{Service, ServiceExt};
use wsmon::{WebSocketUpgrade, WsMon};

#[path = "support/counting.rs"]
mod counting;

use counting::allocations;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

async fn ws(ws: WebSocketUpgrade) -> axum::response::Response {
    ws.on_upgrade(|_| async {})
}

/// A mixed service: a REST route, a parameterised one, the WebSocket route and `/metrics`.
fn app(wsmon: &WsMon) -> Router {
    Router::new()
        .route("/api/items", get(|| async { "items" }))
        .route("/api/items/{id}", get(|| async { "item" }))
        .route("/ws", get(ws))
        .route("/metrics", wsmon.metrics_route())
}

fn request(path: &str) -> Request<Body> {
    Request::get(path)
        .header("accept", "application/json")
        .body(Body::empty())
        .unwrap()
}

/// Allocations of `n` plain requests through `router`, on this thread (the current-thread
/// runtime polls every future here).
async fn per_request<S>(router: &mut S, path: &str, n: u64) -> f64
where
    S: Service<Request<Body>, Response = axum::response::Response>,
    S::Error: std::fmt::Debug,
{
    // Warm up first: lazily initialised statics and the first-use growth of any buffers.
    let mut before = 0;
    for i in 0..10 + n {
        if i == 10 {
            before = allocations();
        }
        let response = ServiceExt::<Request<Body>>::ready(&mut *router)
            .await
            .unwrap()
            .call(request(path))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    (allocations() - before) as f64 / n as f64
}

#[tokio::test(flavor = "current_thread")]
async fn a_plain_request_allocates_nothing_extra_with_the_layer_on() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/ws").build(&registry).unwrap();
    // `with_state` turns handlers into routes once, as `axum::serve` does; without it axum
    // would rebuild each route (and apply each layer) per request.
    let mut bare = app(&wsmon).with_state(());
    let mut layered = app(&wsmon).layer(wsmon.layer()).with_state(());
    let mut identity = app(&wsmon)
        .layer(tower::layer::util::Identity::new())
        .with_state(());
    for path in ["/api/items", "/api/items/42"] {
        let without = per_request(&mut bare, path, 200).await;
        let with_identity = per_request(&mut identity, path, 200).await;
        let with = per_request(&mut layered, path, 200).await;
        eprintln!("{path}: {without} allocations per request bare, {with_identity} with a no-op layer, {with} with wsmon's");
        assert_eq!(
            with, with_identity,
            "{path}: wsmon's layer added allocations"
        );
        assert_eq!(
            with - without,
            with_identity - without,
            "{path}: the difference from the bare router is axum's per-layer boxing only"
        );
    }
    // Nothing was counted: plain requests are not upgrade attempts.
    assert!(!wsmon.render().contains("outcome=\"rejected\""));
}

/// Around the whole router there is no per-route boxing: the layer adds nothing at all over
/// the bare router.
#[tokio::test(flavor = "current_thread")]
async fn around_the_router_a_plain_request_allocates_exactly_what_the_bare_router_does() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/ws").build(&registry).unwrap();
    let mut bare = app(&wsmon).with_state(());
    let mut around = tower::Layer::layer(&wsmon.layer(), app(&wsmon).with_state(()));
    for path in ["/api/items", "/api/items/42"] {
        let without = per_request(&mut bare, path, 200).await;
        let with = per_request(&mut around, path, 200).await;
        eprintln!("{path}: {without} allocations per request bare, {with} around the router");
        assert_eq!(
            with, without,
            "{path}: wsmon around the router added allocations"
        );
    }
    assert!(!wsmon.render().contains("outcome=\"rejected\""));
}
