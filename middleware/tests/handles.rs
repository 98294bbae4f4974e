//! Every handle a user keeps is `Debug`, the cheap ones `Clone`, and printing never shows a
//! secret. The first test is the issue's own line: an app state holding wsmon's handles
//! derives both.

use std::fmt::Debug;

use axum::Router;
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wsmon::layer::ResponseFuture;
use wsmon::queue::{QueueReceiver, QueueSender};
use wsmon::{
    ConnectionHandle, Instrumented, QueueConfig, RouteHandle, Secret, WebSocketUpgrade, WsMon,
    WsMonBuilder, WsMonLayer, WsMonService,
};

#[derive(Debug, Clone)]
#[allow(dead_code)] // Fields are read through Debug only: the point is that this compiles.
struct AppState {
    wsmon: WsMon,
    layer: WsMonLayer,
    route: RouteHandle,
    builder: WsMonBuilder,
    token: Secret,
}

fn debug<T: Debug>(_: &T) {}
fn debug_clone<T: Debug + Clone>(_: &T) {}

#[tokio::test]
async fn an_app_state_of_wsmon_handles_derives_debug_and_clone() {
    let registry = prometheus::Registry::new();
    let builder = WsMon::builder()
        .route("/ws")
        .allow_origin("https://app.example");
    let wsmon = builder.clone().build(&registry).unwrap();
    let state = AppState {
        layer: wsmon.layer(),
        route: wsmon.route("/ws").expect("declared"),
        builder,
        token: Secret::new("s3cret-token"),
        wsmon,
    };
    let printed = format!("{:?}", state.clone());
    assert!(printed.contains("\"/ws\""), "{printed}");
    assert!(printed.contains("https://app.example"), "{printed}");
    assert!(!printed.contains("s3cret-token"), "{printed}");
    assert!(printed.contains("***"), "{printed}");

    let service: WsMonService<Router> = tower::Layer::layer(&state.layer, Router::new());
    debug_clone(&service);
    debug::<Option<ResponseFuture<std::future::Ready<()>>>>(&None);
    debug::<Option<WebSocketUpgrade>>(&None);

    let (a, _b) = tokio::io::duplex(1024);
    let socket: Instrumented<WebSocketStream<DuplexStream>> = state.wsmon.instrument(
        "/ws",
        WebSocketStream::from_raw_socket(a, Role::Server, None).await,
    );
    debug(&socket);
    let handle: ConnectionHandle = socket.handle();
    debug_clone(&handle);
    let (tx, rx): (QueueSender<Message>, QueueReceiver<Message>) =
        wsmon::outbound_queue(&handle, QueueConfig::default());
    debug_clone(&tx);
    debug(&rx);
    assert!(format!("{tx:?}").contains("queued_messages"));
}

#[test]
fn undeclared_routes_have_no_handle_and_create_no_series() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/ws").build(&registry).unwrap();
    assert!(wsmon.route("/users/12345").is_none());
    assert!(!wsmon.render().contains("/users/12345"));
    assert_eq!(wsmon.route("/ws").unwrap().name(), "/ws");
}

#[cfg(feature = "otlp")]
#[tokio::test]
async fn otlp_config_and_exporter_print_without_their_headers() {
    use wsmon::export::otlp::{self, OtlpConfig};
    let config = OtlpConfig::new("http://127.0.0.1:9", "svc")
        .header("authorization", Secret::new("Bearer t0ken"));
    let printed = format!("{config:?}");
    assert!(!printed.contains("t0ken"), "{printed}");
    assert!(printed.contains("***"), "{printed}");
    let exporter = otlp::spawn(prometheus::Registry::new(), config, "1").unwrap();
    let printed = format!("{exporter:?}");
    assert!(
        printed.contains("http://127.0.0.1:9/v1/metrics"),
        "{printed}"
    );
    assert!(!printed.contains("t0ken"), "{printed}");
}
