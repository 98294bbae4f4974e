//! A connect/disconnect storm: 10,000 connections with random close behaviour, at bounded
//! concurrency (client closes with random valid codes, drops with FIN or RST, server closes,
//! and clients vanishing mid-handshake). At quiescence the counters are exact: accepted
//! upgrades = closes, no live connection, and the closes by initiator and code are the codes
//! the peers sent, one for one.

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
    /// The client sends its upgrade request and vanishes (FIN, or RST when `reset`) before
    /// the answer: counted only if the server got as far as answering 101, then as none/1006.
    VanishMidHandshake { reset: bool },
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
    let b = match rng.random_range(0..10) {
        0..=2 => Behaviour::ClientClose(random_valid_code(&mut rng)),
        3..=5 => Behaviour::Drop {
            reset: rng.random_bool(0.5),
        },
        6..=8 => Behaviour::ServerClose(random_valid_code(&mut rng)),
        _ => Behaviour::VanishMidHandshake {
            reset: rng.random_bool(0.5),
        },
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

/// Runs one connection; returns the (initiator, close_code) it must be counted under, or
/// `None` when it vanished mid-handshake.
async fn run_one(server: &EchoServer, b: Behaviour, chatty: bool) -> Option<(String, String)> {
    if let Behaviour::VanishMidHandshake { reset } = b {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = support::raw_ws::upgrade_request(server.addr, "/echo");
        tcp.write_all(request.as_bytes()).await.unwrap();
        if reset {
            #[allow(deprecated)]
            tcp.set_linger(Some(Duration::ZERO)).unwrap();
        }
        return None;
    }
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
            Some(("client".into(), documented_label(code)))
        }
        Behaviour::Drop { reset } => {
            if reset {
                if let MaybeTlsStream::Plain(tcp) = client.get_mut() {
                    #[allow(deprecated)]
                    tcp.set_linger(Some(Duration::ZERO)).unwrap();
                }
            }
            drop(client);
            Some(("none".into(), "1006".into()))
        }
        Behaviour::ServerClose(code) => {
            drain(&mut client).await;
            Some(("server".into(), documented_label(code)))
        }
        Behaviour::VanishMidHandshake { .. } => unreachable!("handled above"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_with_random_closes_leave_the_counters_exact() {
    let panics = panics_so_far();
    let server = Arc::new(start_echo(WsMon::builder().close_code_allowlist(ALLOWLIST)).await);
    let expected: Arc<Mutex<BTreeMap<(String, String), u64>>> = Arc::default();
    let vanished = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONNECTIONS {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (server, expected, vanished) = (server.clone(), expected.clone(), vanished.clone());
        tasks.spawn(async move {
            let (b, chatty) = behaviour(0x5707 + i as u64);
            match run_one(&server, b, chatty).await {
                Some(key) => *expected.lock().unwrap().entry(key).or_default() += 1,
                None => {
                    vanished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
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

    let vanished = vanished.load(std::sync::atomic::Ordering::Relaxed);
    let completed = CONNECTIONS as u64 - vanished;
    let accepted = || {
        server.metrics().sum(
            "websocket_server_upgrades_total",
            &[("outcome", "accepted")],
        )
    };
    wait_until("quiescence", Duration::from_secs(30), || async {
        server.wsmon.active_connections() == 0
            && accepted() >= completed as f64
            && server.metrics().sum(CLOSES, &[]) == accepted()
    })
    .await;
    let s = server.metrics();
    let accepted = accepted();
    assert_eq!(s.sum(CLOSES, &[]), accepted, "accepted upgrades = closes");
    assert!(
        accepted <= CONNECTIONS as f64,
        "{accepted} accepted of {CONNECTIONS} attempts"
    );
    assert_eq!(s.sum("websocket_server_active_connections", &[]), 0.0);

    // The mid-handshake vanishers the server answered count as ends without a close frame.
    let answered_vanishers = accepted as u64 - completed;
    *expected
        .lock()
        .unwrap()
        .entry(("none".into(), "1006".into()))
        .or_default() += answered_vanishers;
    let expected = expected.lock().unwrap().clone();
    let mut seen = BTreeMap::new();
    for sample in s.matching(CLOSES, &[]) {
        let value = sample.value;
        if value == 0.0 {
            continue;
        }
        let label = |k: &str| sample.labels[k].clone();
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
