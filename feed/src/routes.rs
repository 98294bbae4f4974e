//! The feed's HTTP and WebSocket handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::hub::Outbound;
use crate::resume::{self, ReplayError, WsQuery};
use crate::{Feed, WS_ROUTE};
use wsmon::queue::{outbound_queue, Next, QueueReceiver};
use wsmon::{WebSocket, WebSocketUpgrade};

pub(crate) fn router(feed: Arc<Feed>) -> Router {
    let wsmon = feed.wsmon.clone();
    Router::new()
        .route(WS_ROUTE, get(ws_handler))
        .route("/publish", post(publish))
        .route("/metrics", wsmon.metrics_route())
        .with_state(feed)
        .layer(wsmon.layer())
}

/// `GET /ws`, or `GET /ws?from=N` to resume after sequence `N` (see `resume.rs`). A `from`
/// that is not an unsigned integer is answered with 400 before the upgrade.
async fn ws_handler(
    ws: WebSocketUpgrade,
    State(feed): State<Arc<Feed>>,
    Query(query): Query<WsQuery>,
) -> Response {
    // Watched from before the 101 is sent: a client that has its 101 is a current connection,
    // so a drop requested before the socket task starts must still reach it.
    let mut dropped = feed.faults.drop_watch();
    dropped.mark_unchanged();
    ws.on_upgrade(move |socket| serve_socket(feed, socket, query.from, dropped))
}

/// The largest body `POST /publish` reads (axum's default limit for `Bytes`).
const PUBLISH_BODY_LIMIT: usize = 2 << 20;

async fn publish(State(feed): State<Arc<Feed>>, body: axum::body::Body) -> Response {
    // The header-read timeout stops at the headers; a body trickled in byte by byte would
    // otherwise hold the request (and its task) for as long as the client likes.
    let limit = feed.config.header_read_timeout;
    let body = match tokio::time::timeout(limit, axum::body::to_bytes(body, PUBLISH_BODY_LIMIT))
        .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(err)) => {
            let msg = format!("cannot read the body (at most {PUBLISH_BODY_LIMIT} bytes): {err}\n");
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
        Err(_) => {
            let msg = format!("the request body did not arrive within {limit:?}\n");
            return (StatusCode::REQUEST_TIMEOUT, msg).into_response();
        }
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(object)) => match feed.publish_object(object).await {
            Ok(seq) => Json(json!({ "seq": seq })).into_response(),
            Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response(),
        },
        Ok(_) => (StatusCode::BAD_REQUEST, "expected a JSON object\n").into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, format!("invalid JSON: {err}\n")).into_response(),
    }
}

fn is_head_request(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("op").and_then(|op| op.as_str().map(|s| s == "head")))
        .unwrap_or(false)
}

async fn serve_socket(
    feed: Arc<Feed>,
    socket: WebSocket,
    from: Option<u64>,
    mut dropped: tokio::sync::watch::Receiver<u64>,
) {
    let handle = socket.handle();
    let (queue, mut outbound) = outbound_queue::<Outbound>(&handle, feed.config.queue);
    let (mut sink, mut stream) = socket.split();
    // Set once the connection is subscribed, so it can be unsubscribed however it ends.
    let subscriber = std::sync::Mutex::new(None);

    let stall = feed.faults.stall_watch();
    let writer = async {
        let delay = feed.config.first_payload_delay + feed.faults.first_payload_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let last_sent = match from {
            None => {
                let (id, head) = feed.hub.subscribe(queue.clone());
                *subscriber.lock().unwrap() = Some(id);
                let snapshot = format!(r#"{{"type":"snapshot","seq":{head}}}"#);
                if sink.send(Message::Text(snapshot.into())).await.is_err() {
                    return;
                }
                head
            }
            Some(from) => match resume::replay(&feed, from, &queue, &mut sink).await {
                Ok(resumed) => {
                    *subscriber.lock().unwrap() = Some(resumed.id);
                    resumed.last_sent
                }
                Err(ReplayError::Closed) => return,
                Err(ReplayError::Unavailable(err)) => {
                    tracing::warn!(error = %err, from, "feed: cannot resume; closing with 1013");
                    let close = Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: wsmon::close_code::TRY_AGAIN_LATER,
                        reason: Utf8Bytes::from_static("resume unavailable"),
                    }));
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                    return;
                }
            },
        };
        write_queued(&mut sink, &mut outbound, &handle, last_sent, stall).await;
    };
    // The reader runs as its own task: polled only when the socket is readable, instead of on
    // every write (tungstenite zero-fills its read buffer on each read attempt).
    let reader_feed = feed.clone();
    let replies = queue.clone();
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(text) = &msg {
                if is_head_request(text.as_str()) {
                    let reply = format!(r#"{{"type":"head","seq":{}}}"#, reader_feed.hub.head());
                    replies.push(Outbound {
                        msg: Message::Text(Utf8Bytes::from(reply)),
                        stamp: None,
                    });
                }
            }
        }
    });
    tokio::select! {
        _ = writer => reader.abort(),
        _ = &mut reader => {}
        // The fault control: both halves are dropped with no close frame (the client sees 1006).
        _ = dropped.changed() => reader.abort(),
    }
    if let Some(id) = subscriber.into_inner().unwrap_or_else(|e| e.into_inner()) {
        feed.hub.unsubscribe(id);
    }
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Drains the queue onto the socket; a message at or below `last_sent` was sent already (by
/// a replay that overlapped the live stream) and is skipped.
async fn write_queued(
    sink: &mut Sink,
    outbound: &mut QueueReceiver<Outbound>,
    handle: &wsmon::ConnectionHandle,
    mut last_sent: u64,
    mut stall: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match outbound.recv().await {
            Next::Message(item) => {
                let stalled = *stall.borrow_and_update();
                if stalled {
                    // Stalled by the fault control: hold this message until resumed.
                    tokio::select! {
                        _ = async { let _ = stall.wait_for(|on| !*on).await; } => {}
                        _ = outbound.evicted() => {
                            let close = QueueReceiver::<Message>::eviction_close();
                            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                            return;
                        }
                    }
                }
                if let Some(seq) = item.seq() {
                    if seq <= last_sent {
                        continue;
                    }
                    last_sent = seq;
                }
                if let Some(stamp) = item.stamp {
                    handle.stamp_next(stamp);
                }
                tokio::select! {
                    sent = sink.send(item.msg) => if sent.is_err() { return },
                    // A consumer too slow to drain its socket is evicted even mid-write.
                    _ = outbound.evicted() => {
                        let close = QueueReceiver::<Message>::eviction_close();
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                        return;
                    }
                }
            }
            Next::Evicted => {
                let close = QueueReceiver::<Message>::eviction_close();
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                return;
            }
        }
    }
}
