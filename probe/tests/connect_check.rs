//! `connect_check`: fresh connections beside the held stream, reported on their own. Against
//! the real feed behind a gate that, once flipped, answers every new connection with 400 while
//! the connections it already relays keep flowing (what `nginx -s reload` into a config that
//! drops the `Upgrade` headers does: the old worker keeps the held stream).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{faulty, parse_config, sample, RunningDaemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsmon_testkit::exposition::Scrape;

/// Relays to `upstream`, or once `refuse` is set answers new connections with a 400 (after
/// reading the request head, as a proxy would).
async fn gate(upstream: std::net::SocketAddr, refuse: Arc<AtomicBool>) -> faulty::Server {
    faulty::raw(move |mut client| {
        let refuse = refuse.clone();
        async move {
            if refuse.load(Ordering::SeqCst) {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = client
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    })
    .await
}

fn value(text: &str, name: &str, labels: &str) -> f64 {
    sample(text, name, labels).unwrap_or(f64::NAN)
}

#[tokio::test]
async fn refused_new_connections_fail_the_check_while_the_held_stream_stays_up() {
    let feed = support::feed(20.0).await;
    let refuse = Arc::new(AtomicBool::new(false));
    let gate = gate(feed.addr, refuse.clone()).await;
    let config = parse_config(&format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    connect_timeout: 2s\n    \
         first_payload_within: 2s\n    connect_check: {{ every: 300ms }}\n",
        gate.addr
    ));
    let d = RunningDaemon::start(config).await;
    let c = r#"canary="feed""#;
    let healthy = d
        .wait_for(
            Duration::from_secs(15),
            "a held stream and passing checks",
            |m| {
                value(m, "websocket_canary_up", c) == 1.0
                    && value(m, "websocket_canary_connect_check_up", c) == 1.0
                    && value(m, "websocket_canary_connect_checks_total", c) >= 2.0
            },
        )
        .await;
    let reason = r#"canary="feed",reason="handshake_status""#;
    assert_eq!(
        value(
            &healthy,
            "websocket_canary_connect_check_failures_total",
            reason
        ),
        0.0,
        "the failure series exists at zero from the start"
    );
    assert!(value(&healthy, "websocket_canary_connect_check_seconds_count", c) >= 2.0);
    // The server saw each check as a canary connection that upgraded, got its first payload
    // and was closed by the canary with 1000.
    let server = Scrape::parse(&wsmon::export::prometheus::render(&feed.registry));
    let route = ("route", "/ws");
    let check_closes = [route, ("initiator", "client"), ("close_code", "1000")];
    assert!(server.sum("websocket_server_canary_closes_total", &check_closes) >= 1.0);
    let reconnects_before = value(
        &healthy,
        "websocket_canary_reconnects_total",
        r#"canary="feed",reason="closed""#,
    );
    let messages_before = value(&healthy, "websocket_canary_messages_total", c);

    refuse.store(true, Ordering::SeqCst);
    let failing = d
        .wait_for(Duration::from_secs(15), "checks failing with 400", |m| {
            value(m, "websocket_canary_connect_check_up", c) == 0.0
                && value(m, "websocket_canary_connect_check_failures_total", reason) >= 2.0
        })
        .await;
    assert_eq!(
        value(&failing, "websocket_canary_up", c),
        1.0,
        "the held stream is still up:\n{failing}"
    );
    assert!(
        value(&failing, "websocket_canary_messages_total", c) > messages_before,
        "the held stream keeps receiving"
    );
    assert_eq!(
        value(
            &failing,
            "websocket_canary_reconnects_total",
            r#"canary="feed",reason="closed""#
        ),
        reconnects_before,
        "the held stream was never replaced"
    );
    // The held stream's own failure counts do not include the checks' failures.
    assert_eq!(
        value(&failing, "websocket_canary_failures_total", reason),
        0.0
    );

    refuse.store(false, Ordering::SeqCst);
    d.wait_for(Duration::from_secs(15), "checks passing again", |m| {
        value(m, "websocket_canary_connect_check_up", c) == 1.0
    })
    .await;
    d.stop().await;
}

#[test]
fn connect_check_takes_every_and_nothing_else() {
    let ok = parse_config(
        "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    connect_check: { every: 30s }\n",
    );
    assert_eq!(
        ok.canaries[0].connect_check.map(|c| c.every),
        Some(Duration::from_secs(30))
    );
    assert!(
        ok.render().contains("    connect_check: { every: 30s }\n"),
        "{}",
        ok.render()
    );
    let bad = wsmon_probe::config::Config::parse(
        "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    connect_check: { every: 30s, timeout: 1s }\n",
        std::path::Path::new("probe.yaml"),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "probe.yaml: canaries[0].connect_check.timeout: unknown key; expected one of: every"
    );
}

/// Series one canary exports from the start, counted in the text exposition.
fn series_at_start(yaml: &str) -> usize {
    use std::sync::RwLock;
    use wsmon_probe::record::metrics::{CanaryCollector, UpMeans};
    use wsmon_probe::record::recorder::CanaryRecorder;
    let cfg = parse_config(yaml).canaries.remove(0);
    let rec = Arc::new(CanaryRecorder::for_canary(
        &cfg,
        wsmon_probe::measure::Retention::Recent,
    ));
    let registry = prometheus::Registry::new();
    let set = Arc::new(RwLock::new(vec![rec]));
    registry
        .register(Box::new(CanaryCollector::new(set, UpMeans::Holding)))
        .unwrap();
    Scrape::parse(&wsmon::export::prometheus::render(&registry))
        .samples
        .len()
}

/// docs/probe.md gives this figure.
#[test]
fn connect_check_adds_forty_series_from_the_start_to_a_plain_canary() {
    let plain = "canaries:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n";
    let with_check = format!("{plain}    connect_check: {{ every: 30s }}\n");
    assert_eq!(series_at_start(&with_check) - series_at_start(plain), 40);
}
