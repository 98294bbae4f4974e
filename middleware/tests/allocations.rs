//! The message path allocates nothing of its own: with the same traffic, an instrumented
//! socket and the bounded outbound queue make exactly as many heap allocations per message as
//! the bare socket. Counted, not timed, so it is steady on a noisy machine.

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use wsmon::queue::{outbound_queue, Next};
use wsmon::{QueueConfig, Stamp, WsMon};

#[path = "support/counting.rs"]
mod counting;

use counting::allocations;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

async fn pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    (server, client)
}

/// Allocations for `n` round trips: the client sends, the server receives and replies.
async fn round_trips<S>(server: &mut S, client: &mut WebSocketStream<DuplexStream>, n: usize) -> u64
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let payload = Bytes::from_static(&[42u8; 256]);
    let before = allocations();
    for _ in 0..n {
        client.send(Message::Binary(payload.clone())).await.unwrap();
        let got = server.next().await.unwrap().unwrap();
        server.send(got).await.unwrap();
        client.next().await.unwrap().unwrap();
    }
    allocations() - before
}

#[tokio::test(flavor = "current_thread")]
async fn instrumented_socket_adds_no_allocation_per_message() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/ws").build(&registry).unwrap();

    let (mut bare, mut bare_client) = pair().await;
    let (server, mut client) = pair().await;
    let mut instrumented = wsmon.instrument("/ws", server);
    // Warm up: first payload, buffers growing to size, lazily created state.
    round_trips(&mut bare, &mut bare_client, 100).await;
    round_trips(&mut instrumented, &mut client, 100).await;

    let n = 2_000;
    let bare_allocs = round_trips(&mut bare, &mut bare_client, n).await;
    let instrumented_allocs = round_trips(&mut instrumented, &mut client, n).await;
    eprintln!(
        "allocations for {n} round trips: bare {bare_allocs}, instrumented {instrumented_allocs}"
    );
    assert_eq!(
        instrumented_allocs, bare_allocs,
        "the wrapper allocated on the message path"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn outbound_queue_and_stamps_add_no_allocation_per_message() {
    let registry = prometheus::Registry::new();
    let wsmon = WsMon::builder().route("/ws").build(&registry).unwrap();
    wsmon.route("/ws").expect("declared").set_head(0);
    let (server, mut client) = pair().await;
    let mut socket = wsmon.instrument("/ws", server);
    let handle = socket.handle();
    let (tx, mut rx) = outbound_queue::<Message>(&handle, QueueConfig::default().capacity(64));
    let payload = Bytes::from_static(&[7u8; 128]);

    let mut send_batch = async |n: u64, queued: bool| {
        let before = allocations();
        for i in 0..n {
            let msg = if queued {
                tx.push(Message::Binary(payload.clone()));
                let Some(Next::Message(msg)) = rx.try_recv() else {
                    panic!("queued")
                };
                handle.stamp_next(Stamp::new(i, std::time::SystemTime::now()));
                msg
            } else {
                Message::Binary(payload.clone())
            };
            socket.send(msg).await.unwrap();
            client.next().await.unwrap().unwrap();
        }
        allocations() - before
    };
    send_batch(100, true).await;
    send_batch(100, false).await;
    let direct = send_batch(2_000, false).await;
    let queued = send_batch(2_000, true).await;
    eprintln!("allocations for 2000 messages: direct {direct}, queued and stamped {queued}");
    assert_eq!(
        queued, direct,
        "the queue or the stamps allocated on the message path"
    );
    let text = wsmon::export::prometheus::render(&registry);
    assert!(text.contains(r#"websocket_server_sequencer_lag_seconds_count{route="/ws"} 2100"#));
}
