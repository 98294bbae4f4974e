//! A connect/disconnect storm: 10,000 connections with random close behaviour, at bounded
//! concurrency. At quiescence the counters are exact: accepted upgrades = closes, no live
//! connection, and the closes by initiator and code are the codes the peers sent, one for one.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::*;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;
use wsmon::WsMon;

const CONNECTIONS: usize = 10_000;
/// Live connections at once: each holds two descriptors in this process (client and server).
const CONCURRENCY: usize = 128;
/// Application codes the server keeps as themselves; other 3xxx/4xxx codes collapse.
const ALLOWLIST: [u16; 3] = [4001, 4404, 3333];
const CLOSES: &str = "websocket_server_closes_total";

/// What one storm connection does.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// The client sends a close frame with this code and completes the handshake.
    ClientClose(u16),
    /// The client disappears without a close frame: FIN, or RST when `reset`.
    Drop { reset: bool },
    /// The server closes with this code (route `/close/{code}`).
    ServerClose(u16),
}

/// A close code an endpoint may put on the wire (RFC 6455 §7.4): what tungstenite accepts.
fn random_valid_code(rng: &mut StdRng) -> u16 {
    match rng.random_range(0..6) {
        0 => rng.random_range(1000..=1003),
        1 => rng.random_range(1007..=1013),
        2 => ALLOWLIST[rng.random_range(0..ALLOWLIST.len())],
        3 => rng.random_range(3000..=3999),
        _ => rng.random_range(4000..=4999),
    }
}

fn behaviour(seed: u64) -> (Behaviour, bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let chatty = rng.random_bool(0.5);
    let b = match rng.random_range(0..3) {
        0 => Behaviour::ClientClose(random_valid_code(&mut rng)),
        1 => Behaviour::Drop {
            reset: rng.random_bool(0.5),
        },
        _ => Behaviour::ServerClose(random_valid_code(&mut rng)),
    };
    (b, chatty)
}

/// The label the documentation promises for `code`, written out independently of the crate's
/// classifier: standard codes as themselves, allow-listed codes as themselves, else the range.
fn documented_label(code: u16) -> String {
    match code {
        1000..=1015 => code.to_string(),
        c if ALLOWLIST.contains(&c) => c.to_string(),
        3000..=3999 => "3xxx".into(),
        4000..=4999 => "4xxx".into(),
        _ => "other".into(),
    }
}

/// Reads until the stream ends (the close handshake completes or the server drops us).
async fn drain(client: &mut Client) {
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
}

async fn run_one(server: &EchoServer, b: Behaviour, chatty: bool) -> (String, String) {
    let path = match b {
        Behaviour::ServerClose(code) => format!("/close/{code}"),
        _ => "/echo".to_string(),
    };
    let mut client = connect(&server.url(&path)).await;
    if chatty && !matches!(b, Behaviour::ServerClose(_)) {
        client.send(Message::text("hello")).await.unwrap();
        let _ = client.next().await;
    }
    match b {
        Behaviour::ClientClose(code) => {
            client
                .close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: "storm".into(),
                }))
                .await
                .unwrap();
            drain(&mut client).await;
            ("client".into(), documented_label(code))
        }
        Behaviour::Drop { reset } => {
            if reset {
                if let MaybeTlsStream::Plain(tcp) = client.get_mut() {
                    #[allow(deprecated)]
                    tcp.set_linger(Some(Duration::ZERO)).unwrap();
                }
            }
            drop(client);
            ("none".into(), "1006".into())
        }
        Behaviour::ServerClose(code) => {
            drain(&mut client).await;
            ("server".into(), documented_label(code))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_with_random_closes_leave_the_counters_exact() {
    let panics = panics_so_far();
    let server = Arc::new(start_echo(WsMon::builder().close_code_allowlist(ALLOWLIST)).await);
    let expected: Arc<Mutex<BTreeMap<(String, String), u64>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONNECTIONS {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (server, expected) = (server.clone(), expected.clone());
        tasks.spawn(async move {
            let (b, chatty) = behaviour(0x5707 + i as u64);
            let key = run_one(&server, b, chatty).await;
            *expected.lock().unwrap().entry(key).or_default() += 1;
            drop(permit);
        });
        // Reap as we go so the set does not hold 10,000 finished tasks.
        while let Some(done) = tasks.try_join_next() {
            done.expect("storm connection task");
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("storm connection task");
    }

    eventually("quiescence", Duration::from_secs(30), || async {
        let s = server.metrics();
        server.wsmon.active_connections() == 0 && s.value(CLOSES, &[]) == CONNECTIONS as f64
    })
    .await;
    let s = server.metrics();
    assert_eq!(
        s.value(
            "websocket_server_upgrades_total",
            &[("outcome", "accepted")]
        ),
        CONNECTIONS as f64,
        "accepted upgrades"
    );
    assert_eq!(s.value(CLOSES, &[]), CONNECTIONS as f64, "closes");
    assert_eq!(s.value("websocket_server_active_connections", &[]), 0.0);

    let expected = expected.lock().unwrap().clone();
    let mut seen = BTreeMap::new();
    for (labels, value) in s.series(CLOSES) {
        if value == 0.0 {
            continue;
        }
        let label = |k: &str| {
            labels
                .split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_string()
        };
        *seen
            .entry((label("initiator"), label("close_code")))
            .or_insert(0u64) += value as u64;
    }
    assert_eq!(
        seen, expected,
        "closes by (initiator, close_code) must equal what the peers sent"
    );
    assert!(
        expected.keys().any(|(i, _)| i == "client")
            && expected.keys().any(|(i, _)| i == "server")
            && expected.keys().any(|(i, _)| i == "none"),
        "the storm exercised every kind of end"
    );
    assert_eq!(panics_so_far(), panics);
}
