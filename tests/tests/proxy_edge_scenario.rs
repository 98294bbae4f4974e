//! Where WebSockets really break (issue 13): real nginx and HAProxy between `wsmon-probe
//! daemon` and the example feed (`wsmon-feed`, as processes), network namespaces for a
//! silent blackhole and a throttled client network, and a real Prometheus evaluating the
//! bundle's rules (alerts/, `for:` divided by 60 as in `live_prometheus.rs`).
//!
//! Each fault has its own feed and proxy, so they run side by side:
//!
//! | fault | shown by |
//! |---|---|
//! | nginx drops the Upgrade headers | canary `handshake_status`; server rejected upgrades with 400; `WebSocketUpgradeRejectionRatioHigh` |
//! | HAProxy `timeout tunnel` shorter than a quiet stream | canary 1006 at a fixed lifetime; server lifetimes in one bucket; `WebSocketAbnormalClosesHigh` |
//! | the same HAProxy, server heartbeats on | the stream is kept, no close, no alert |
//! | proxy-to-server link down, then an iptables DROP of server-to-proxy (netns) | server `heartbeat_timeouts_total` and the canary's heartbeat/stall within bound; reconnects fail fast; `WebSocketCanaryDown` |
//! | throttled client link (netns, tbf) | server queue and slow consumers rise, then 1013 evictions; RSS bounded; users dropped without a close frame while a canary on the proxy's own path holds |
//! | nginx killed and restarted | canary 1006, jittered backoff, recovery time |
//! | `nginx -s reload` | held stream stays on the old worker; after a reload into a config that drops Upgrade, the canary's `connect_check` fails with 400 within its interval while the held stream flows; `WebSocketUpgradeRejectionRatioHigh` |
//! | feed drained (SIGTERM) | 1001 at the canary, server-initiated 1001 on the server, no alert storm |
//! | TLS at nginx | `wss://` passes with `ca_file`, fails `tls_untrusted` without |
//! | nginx answers upgrades itself | canary `handshake_status`; the feed behind sees no canary upgrade |
//! | feed closes the canary (its `on_open` message over `--max-message-bytes`) | server-initiated 1009, at both ends |
//!
//! Each fault is its own `service` (feed targets carry it; the prober's target copies
//! `canary` into it), so the which-hop alerts are checked per fault ([`hop_verdicts`]): the
//! one naming the fault's hop fires for its service, no other does over the whole run.
//!
//! Every wait is for an event with a generous deadline. `WSMON_RECOVERY_REPORT=1` prints the
//! recovery times recorded in BENCHMARKS.md.
//!
//! Needs root for the namespaces: under `CI=true` their absence fails the test; elsewhere the
//! two namespace faults are skipped with a note on stderr.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use support::alerts::{AlertLog, Expected};
use support::exposition::{scrape, Scrape};
use support::feed_process::FeedProcess;
use support::prober::ProberDaemon;
use support::prometheus::{Prometheus, ScrapeJob};
use tokio::time::{sleep, Instant};
use wsmon_testkit::free_port;
use wsmon_testkit::haproxy::HaProxy;
use wsmon_testkit::netns::{self, Topology};
use wsmon_testkit::nginx::Nginx;
use wsmon_tests::repo;

const FEED_JOB: &str = "wsmon-feed";
const PROBE_JOB: &str = "wsmon-probe";
/// The HAProxy idle timeout on upgraded streams.
const TUNNEL_TIMEOUT: Duration = Duration::from_secs(3);
/// Feed and canary heartbeats where they are on.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The canary's heartbeat timeout and `max_silence` on the blackhole path.
const CANARY_DETECT: Duration = Duration::from_secs(3);
/// The reload canary's fresh-connection check interval (±10% jitter).
const CONNECT_CHECK_EVERY: Duration = Duration::from_secs(2);
/// The port the namespaced proxies and feeds listen on.
const NS_PROXY_PORT: u16 = 8080;
const NS_FEED_PORT: u16 = 8081;
/// Users on the throttled network whose connections drop without a close frame: enough
/// that the users' closes pass `wsmon:threshold:ratio_min_events_per_second` over 10 minutes.
const USERS_DROPPED: usize = 60;

fn fixture(name: &str, values: &[(&str, &str)]) -> String {
    let path = repo::root().join("tests/fixtures/proxy_edge").join(name);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (k, v) in values {
        text = text.replace(&format!("{{{k}}}"), v);
    }
    text
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn nginx_in_front(
    ns: Option<&netns::Netns>,
    template: &str,
    listen: SocketAddr,
    upstream: SocketAddr,
    extra: &[(&str, &str)],
) -> Nginx {
    let (l, u) = (listen.to_string(), upstream.to_string());
    let mut values = vec![("listen", l.as_str()), ("upstream", u.as_str())];
    values.extend_from_slice(extra);
    Nginx::start(ns, &fixture(template, &values), &[listen.port()])
        .await
        .unwrap_or_else(|e| panic!("nginx ({template}): {e}"))
}

/// A feed on the server host and nginx on the proxy host in front of it.
async fn feed_behind_nginx_in(
    net: &Topology,
    feed_bin: &Path,
    dir: &Path,
    name: &str,
    feed_args: &[String],
) -> (FeedProcess, Nginx) {
    let upstream = net.server_socket(NS_FEED_PORT);
    let feed = FeedProcess::start_in(&net.server, upstream, feed_bin, dir, name, feed_args).await;
    let nginx = nginx_in_front(
        Some(&net.proxy),
        "nginx-websocket.conf",
        net.proxy_socket(NS_PROXY_PORT),
        upstream,
        &[],
    )
    .await;
    (feed, nginx)
}

/// Polls `check` (every 50 ms, `limit` at most); panics with `what` and the prober log.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, daemon: &ProberDaemon, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match support::eventually(limit, Duration::from_millis(50), check).await {
        Some(v) => v,
        None => panic!(
            "{what}: not seen within {limit:?}\nprober log (tail):\n{}",
            tail(&daemon.log_text(), 40)
        ),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn scrape_sum(
    http: &reqwest::Client,
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape(http, addr)
        .await
        .map(|s: Scrape| s.sum(name, labels))
}

/// Waits until the prober's `metric` summed over `labels` is above `above`; its value.
async fn wait_canary_above(
    http: &reqwest::Client,
    daemon: &ProberDaemon,
    metric: &str,
    labels: &[(&str, &str)],
    above: f64,
    what: &str,
) -> f64 {
    wait_above(http, daemon, daemon.addr, metric, labels, above, what).await
}

/// Waits until `metric` summed over `labels` at `addr` is above `above`; its value.
async fn wait_above(
    http: &reqwest::Client,
    daemon: &ProberDaemon,
    addr: SocketAddr,
    metric: &str,
    labels: &[(&str, &str)],
    above: f64,
    what: &str,
) -> f64 {
    wait_for(Duration::from_secs(30), what, daemon, || async {
        let n = scrape_sum(http, addr, metric, labels).await?;
        (n > above).then_some(n)
    })
    .await
}

/// Waits for 30 more messages (3 s at 10/s) on `canary`'s stream, and checks that it is
/// still the stream it held: no reconnect since `reconnects` was read.
async fn held_stream_flows(
    http: &reqwest::Client,
    daemon: &ProberDaemon,
    canary: &str,
    reconnects: Option<f64>,
    after: &str,
) {
    let metric = |name: &'static str| async move {
        scrape_sum(http, daemon.addr, name, &[("canary", canary)]).await
    };
    let m0 = metric("websocket_canary_messages_total")
        .await
        .unwrap_or(0.0);
    wait_for(
        Duration::from_secs(30),
        &format!("messages after {after}"),
        daemon,
        || async { (metric("websocket_canary_messages_total").await? >= m0 + 30.0).then_some(()) },
    )
    .await;
    assert_eq!(
        metric("websocket_canary_reconnects_total").await,
        reconnects,
        "the held stream should survive {after}"
    );
}

/// Asserts that `metric` summed over `labels` at `addr` is `want` now.
async fn assert_metric(
    http: &reqwest::Client,
    addr: SocketAddr,
    metric: &str,
    labels: &[(&str, &str)],
    want: f64,
    why: &str,
) {
    let have = scrape_sum(http, addr, metric, labels).await;
    assert_eq!(have, Some(want), "{why}: {metric}{labels:?}");
}

/// The sum over the series of instant query `q`, once it has any.
async fn prom_sum(prom: &Prometheus, q: &str) -> Option<f64> {
    let samples = prom.query(q).await.ok()?;
    (!samples.is_empty()).then(|| samples.iter().map(|s| s.value).sum())
}

/// Seconds since midnight of a tracing log line's RFC 3339 timestamp (`…T01:02:03.456789Z`).
fn log_time(line: &str) -> Option<f64> {
    let t = line
        .split_whitespace()
        .next()?
        .split_once('T')?
        .1
        .trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// From the daemon's log, the canary's view of each stream's lifetime: the time between
/// two reconnects, less the backoff delay the first one chose.
fn canary_lifetimes(daemon: &ProberDaemon, canary: &str) -> Vec<Duration> {
    let log = daemon.log_text();
    let field = format!("canary={canary} ");
    let events: Vec<(f64, f64)> = log
        .lines()
        .filter(|l| l.contains("reconnecting after backoff") && l.contains(&field))
        .filter_map(|l| {
            let ms: String = l
                .split("delay_ms=")
                .nth(1)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some((log_time(l)?, ms.parse::<f64>().ok()? / 1000.0))
        })
        .collect();
    events
        .windows(2)
        .map(|w| Duration::from_secs_f64((w[1].0 - w[0].0 - w[0].1).max(0.0)))
        .collect()
}

/// Resident memory of `pid`, from /proc.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Records every alert Prometheus shows, each second, until dropped.
fn alert_recorder(prom: Arc<Prometheus>, log: Arc<Mutex<AlertLog>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(alerts) = prom.alerts().await {
                log.lock().unwrap().record(alerts);
            }
            sleep(Duration::from_secs(1)).await;
        }
    })
}

/// What each fault measured, for the report and BENCHMARKS.md.
#[derive(Default)]
struct Report(Mutex<BTreeMap<&'static str, String>>);

impl Report {
    fn put(&self, fault: &'static str, what: String) {
        eprintln!("[proxy-edge] {fault}: {what}");
        self.0.lock().unwrap().insert(fault, what);
    }
}

/// Polls the prober every 20 ms from `since` until `canary` is up; the time it took.
async fn recovery(
    http: &reqwest::Client,
    daemon: &ProberDaemon,
    canary: &str,
    since: Instant,
) -> Duration {
    wait_for(
        Duration::from_secs(60),
        &format!("{canary} back up"),
        daemon,
        || async {
            let up = scrape_sum(
                http,
                daemon.addr,
                "websocket_canary_up",
                &[("canary", canary)],
            )
            .await?;
            (up == 1.0).then(|| since.elapsed())
        },
    )
    .await
}

fn canaries_yaml(p: &Paths) -> String {
    let mut y = format!(
        r#"  - name: reject
    url: ws://{reject}/ws
    first_payload_within: 2s
  - name: idle
    url: ws://{idle}/ws
    first_payload_within: 2s
  - name: heartbeat
    url: ws://{heartbeat}/ws
    first_payload_within: 2s
  - name: restart
    url: ws://{restart}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    max_silence: 3s
  - name: reload
    url: ws://{reload}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    max_silence: 3s
    connect_check: {{ every: {check}s }}
  - name: drain
    url: ws://{drain}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
  - name: tls-trusted
    url: wss://{tls}/ws
    first_payload_within: 2s
    tls: {{ ca_file: {ca} }}
  - name: tls-untrusted
    url: wss://{tls}/ws
    first_payload_within: 2s
  - name: before
    url: ws://{before}/ws
    first_payload_within: 2s
  - name: closed
    url: ws://{closed}/ws
    first_payload_within: 2s
    on_open: ['{{"type":"subscribe","topics":["over the 16-byte limit of the feed"]}}']
"#,
        reject = p.reject,
        idle = p.idle,
        heartbeat = p.heartbeat,
        restart = p.restart,
        reload = p.reload,
        drain = p.drain,
        tls = p.tls,
        ca = p.ca.display(),
        check = CONNECT_CHECK_EVERY.as_secs(),
        before = p.before,
        closed = p.closed,
    );
    if let Some(b) = p.blackhole {
        let hb = CANARY_DETECT.as_secs();
        y.push_str(&format!(
            r#"  - name: blackhole
    url: ws://{b}/ws
    first_payload_within: 2s
    sequence: {{ pointer: /seq }}
    max_silence: {hb}s
    heartbeat: {{ every: 1s, timeout: {hb}s }}
"#
        ));
    }
    if let Some(t) = p.throttle {
        y.push_str(&format!(
            r#"  - name: throttle
    url: ws://{t}/ws
    first_payload_within: 2s
"#
        ));
    }
    y
}

/// Where each canary connects.
struct Paths<'a> {
    reject: SocketAddr,
    idle: SocketAddr,
    heartbeat: SocketAddr,
    restart: SocketAddr,
    reload: SocketAddr,
    drain: SocketAddr,
    tls: SocketAddr,
    ca: &'a Path,
    blackhole: Option<SocketAddr>,
    before: SocketAddr,
    closed: SocketAddr,
    throttle: Option<SocketAddr>,
}

/// The alerts that say which hop broke (alerts/websocket-canary.alerts.yml).
const WHICH_HOP_ALERTS: [&str; 6] = [
    "WebSocketFaultBeforeServer",
    "WebSocketCanaryRejectedByServer",
    "WebSocketCanaryClosedByServer",
    "WebSocketCanaryCutOnPath",
    "WebSocketClientNetworksDegraded",
    "WebSocketNewConnectionsFailing",
];

/// The server-side alert that names an idle timeout, per instance (no `service`).
const CUT_AT_FIXED_LIFETIME: &str = "WebSocketConnectionsCutAtFixedLifetime";

/// What one fault's `service` shows of [`WHICH_HOP_ALERTS`]: `fires` must fire, `tolerated`
/// may (a second, also true conclusion), every other one stays quiet.
struct HopVerdict {
    service: &'static str,
    fault: &'static str,
    fires: &'static [&'static str],
    tolerated: &'static [&'static str],
}

fn hop_verdicts(blackhole: bool, throttle: bool) -> Vec<HopVerdict> {
    let v = |service, fault, fires, tolerated| HopVerdict {
        service,
        fault,
        fires,
        tolerated,
    };
    let mut all = vec![
        v(
            "before",
            "nginx answers upgrades itself",
            &["WebSocketFaultBeforeServer"][..],
            &[][..],
        ),
        v(
            "reject",
            "nginx drops Upgrade, the feed rejects with 400",
            &["WebSocketCanaryRejectedByServer"],
            &[],
        ),
        v(
            "closed",
            "the feed closes the canary with 1009",
            &["WebSocketCanaryClosedByServer"],
            &[],
        ),
        v(
            "idle",
            "HAProxy tunnel timeout",
            &["WebSocketCanaryCutOnPath"],
            &[],
        ),
        // While nginx is down the canary's reconnects are refused before the server.
        v(
            "restart",
            "nginx killed and restarted",
            &["WebSocketCanaryCutOnPath"],
            &["WebSocketFaultBeforeServer"],
        ),
        v(
            "reload",
            "nginx reloaded into a config that drops Upgrade",
            &["WebSocketNewConnectionsFailing"],
            &[],
        ),
        v("drain", "feed drained (1001)", &[], &[]),
        v(
            "heartbeat",
            "heartbeats through the tunnel timeout",
            &[],
            &[],
        ),
        v("tls-trusted", "wss:// with ca_file", &[], &[]),
        // Its service has no server scraped, so no rule can place the fault.
        v("tls-untrusted", "wss:// without ca_file", &[], &[]),
    ];
    if blackhole {
        // During the cut nginx answers the reconnects itself (502/504): before the server.
        all.push(v(
            "blackhole",
            "silent blackhole and asymmetric loss",
            &["WebSocketCanaryCutOnPath"],
            &["WebSocketFaultBeforeServer"],
        ));
    }
    if throttle {
        all.push(v(
            "throttle",
            "throttled client network, users dropped",
            &["WebSocketClientNetworksDegraded"],
            &[],
        ));
    }
    all
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_and_network_faults_show_on_both_ends_and_in_the_alerts() {
    let probe_bin = support::binaries::wsmon_probe();
    let feed_bin = support::binaries::example_feed();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let report = Report::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ticking = args(&["--rate", "10"]);

    // --- loopback feeds and their proxies ---
    let reject_feed = FeedProcess::start(&feed_bin, dir.path(), "reject", &ticking).await;
    let reject_at = loopback(free_port());
    let _reject_nginx = nginx_in_front(
        None,
        "nginx-drops-upgrade.conf",
        reject_at,
        reject_feed.addr,
        &[],
    )
    .await;

    let quiet = args(&["--rate", "0", "--heartbeat-secs", "0"]);
    let idle_feed = FeedProcess::start(&feed_bin, dir.path(), "idle", &quiet).await;
    // A tick every 10 s (a quiet period over three tunnel timeouts, but within the canary's
    // 30 s stall threshold), and pings every second.
    let beating = args(&[
        "--rate",
        "0.1",
        "--heartbeat-secs",
        &HEARTBEAT.as_secs().to_string(),
    ]);
    let heartbeat_feed = FeedProcess::start(&feed_bin, dir.path(), "heartbeat", &beating).await;
    let (idle_at, heartbeat_at) = (loopback(free_port()), loopback(free_port()));
    let (ia, iu, ha, hu) = (
        idle_at.to_string(),
        idle_feed.addr.to_string(),
        heartbeat_at.to_string(),
        heartbeat_feed.addr.to_string(),
    );
    let tunnel = format!("{}s", TUNNEL_TIMEOUT.as_secs());
    let _haproxy = HaProxy::start(
        None,
        &fixture(
            "haproxy-tunnel-timeout.cfg",
            &[
                ("tunnel", &tunnel),
                ("quiet_listen", &ia),
                ("quiet_upstream", &iu),
                ("heartbeat_listen", &ha),
                ("heartbeat_upstream", &hu),
            ],
        ),
        &[idle_at.port(), heartbeat_at.port()],
    )
    .await
    .unwrap_or_else(|e| panic!("haproxy: {e}"));

    let restart_feed = FeedProcess::start(&feed_bin, dir.path(), "restart", &ticking).await;
    let restart_at = loopback(free_port());
    let mut restart_nginx = nginx_in_front(
        None,
        "nginx-websocket.conf",
        restart_at,
        restart_feed.addr,
        &[],
    )
    .await;

    let reload_feed = FeedProcess::start(&feed_bin, dir.path(), "reload", &ticking).await;
    let reload_at = loopback(free_port());
    let mut reload_nginx = nginx_in_front(
        None,
        "nginx-websocket.conf",
        reload_at,
        reload_feed.addr,
        &[],
    )
    .await;

    // Two instances behind one nginx, as a deploy has them: one is drained, the other serves.
    let mut drain_feeds = [
        FeedProcess::start(&feed_bin, dir.path(), "drain-a", &ticking).await,
        FeedProcess::start(&feed_bin, dir.path(), "drain-b", &ticking).await,
    ];
    let drain_at = loopback(free_port());
    let (first, second) = (
        drain_feeds[0].addr.to_string(),
        drain_feeds[1].addr.to_string(),
    );
    let _drain_nginx = nginx_in_front(
        None,
        "nginx-two-instances.conf",
        drain_at,
        drain_feeds[0].addr,
        &[("first", &first), ("second", &second)],
    )
    .await;

    let tls_feed = FeedProcess::start(&feed_bin, dir.path(), "tls", &ticking).await;
    let tls_at = loopback(free_port());
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("test certificate");
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
    let (c, k) = (
        cert_pem.display().to_string(),
        key_pem.display().to_string(),
    );
    let _tls_nginx = nginx_in_front(
        None,
        "nginx-tls.conf",
        tls_at,
        tls_feed.addr,
        &[("cert", &c), ("key", &k)],
    )
    .await;

    // A proxy that answers upgrades itself: the feed behind it never sees the canary.
    let before_feed = FeedProcess::start(&feed_bin, dir.path(), "before", &ticking).await;
    let before_at = loopback(free_port());
    let _before_nginx = nginx_in_front(
        None,
        "nginx-refuses-upgrade.conf",
        before_at,
        before_feed.addr,
        &[],
    )
    .await;
    // A feed that accepts the canary, then closes it with 1009: its `on_open` message is
    // over the feed's limit.
    let closed_feed = FeedProcess::start(
        &feed_bin,
        dir.path(),
        "closed",
        &args(&["--rate", "10", "--max-message-bytes", "16"]),
    )
    .await;

    // --- the namespaced paths: prober on loopback, reaching the client host through a relay
    // whose sockets live in the client namespace; feeds scraped through relays too ---
    let blackhole_net = netns::require("the blackhole fault", Topology::create("bh"));
    let throttle_net = netns::require("the throttled-client fault", Topology::create("tb"));
    let mut blackhole = None;
    if let Some(net) = &blackhole_net {
        let hb = HEARTBEAT.as_secs().to_string();
        let feed_args = args(&["--rate", "10", "--heartbeat-secs", &hb]);
        let (feed, nginx) =
            feed_behind_nginx_in(net, &feed_bin, dir.path(), "blackhole", &feed_args).await;
        let client_relay = net
            .client
            .forward_from_loopback(net.proxy_socket(NS_PROXY_PORT))
            .unwrap();
        blackhole = Some((feed, nginx, client_relay));
    }
    let mut throttle = None;
    if let Some(net) = &throttle_net {
        // A 64-message queue that disconnects when full, no heartbeat (the eviction must be
        // the queue's), and a small resume history so that RSS shows the queues.
        // Ticks once a second so that the healthy canary never stalls.
        let feed_args = args(&[
            "--rate",
            "1",
            "--heartbeat-secs",
            "0",
            "--queue-capacity",
            "64",
            "--overflow",
            "disconnect",
            "--history",
            "16",
        ]);
        let (feed, nginx) =
            feed_behind_nginx_in(net, &feed_bin, dir.path(), "throttle", &feed_args).await;
        // The canary reaches the same nginx from inside the proxy's namespace: the path
        // without the users' throttled link.
        let canary_relay = net
            .proxy
            .forward_from_loopback(net.proxy_socket(NS_PROXY_PORT))
            .unwrap();
        throttle = Some((feed, nginx, canary_relay));
    }

    let paths = Paths {
        reject: reject_at,
        idle: idle_at,
        heartbeat: heartbeat_at,
        restart: restart_at,
        reload: reload_at,
        drain: drain_at,
        tls: tls_at,
        ca: &cert_pem,
        blackhole: blackhole.as_ref().map(|(_, _, relay)| relay.addr),
        before: before_at,
        closed: closed_feed.addr,
        throttle: throttle.as_ref().map(|(_, _, relay)| relay.addr),
    };
    let daemon = support::prober::start(&probe_bin, &canaries_yaml(&paths)).await;

    // Each fault is its own service: every feed target carries `service`, and the prober's
    // one target hands each canary's name down as its `service`.
    let mut services: Vec<(&str, Vec<SocketAddr>)> = vec![
        ("reject", vec![reject_feed.addr]),
        ("idle", vec![idle_feed.addr]),
        ("heartbeat", vec![heartbeat_feed.addr]),
        ("restart", vec![restart_feed.addr]),
        ("reload", vec![reload_feed.addr]),
        ("drain", vec![drain_feeds[0].addr, drain_feeds[1].addr]),
        ("tls-trusted", vec![tls_feed.addr]),
        ("before", vec![before_feed.addr]),
        ("closed", vec![closed_feed.addr]),
    ];
    services.extend(
        blackhole
            .as_ref()
            .map(|(f, _, _)| ("blackhole", vec![f.addr])),
    );
    services.extend(
        throttle
            .as_ref()
            .map(|(f, _, _)| ("throttle", vec![f.addr])),
    );
    let feed_job = services
        .iter()
        .fold(ScrapeJob::new(FEED_JOB), |job, (service, addrs)| {
            job.targets(addrs, &[("service", service)])
        });
    let probe_job = ScrapeJob::new(PROBE_JOB)
        .targets(&[daemon.addr], &[])
        .copy_label("canary", "service");
    let targets = feed_job.target_count() + probe_job.target_count();
    let prom =
        Arc::new(Prometheus::start_with_wsmon_rules(dir.path(), &[feed_job, probe_job]).await);
    prom.wait_for_targets_up(targets).await;
    let alerts = Arc::new(Mutex::new(AlertLog::default()));
    let recorder = alert_recorder(prom.clone(), alerts.clone());

    // Every canary that should be up is, before any fault.
    let mut healthy = vec!["heartbeat", "restart", "reload", "drain", "tls-trusted"];
    if blackhole.is_some() {
        healthy.push("blackhole");
    }
    if throttle.is_some() {
        healthy.push("throttle");
    }
    for canary in &healthy {
        recovery(&http, &daemon, canary, Instant::now()).await;
    }
    let prom = &*prom;
    let daemon = &daemon;
    let http = &http;
    let report = &report;

    // --- the faults, side by side ---
    let upgrade_dropped = async {
        let rejected = wait_for(
            Duration::from_secs(60),
            "the feed behind the Upgrade-dropping nginx counts rejected upgrades",
            daemon,
            || async {
                let s = scrape(http, reject_feed.addr).await?;
                let by_status: Vec<(String, f64)> = s
                    .matching(
                        "websocket_server_upgrades_total",
                        &[("outcome", "rejected")],
                    )
                    .filter(|s| s.value > 0.0)
                    .map(|s| {
                        (
                            s.labels.get("status_code").cloned().unwrap_or_default(),
                            s.value,
                        )
                    })
                    .collect();
                (!by_status.is_empty()).then_some(by_status)
            },
        )
        .await;
        assert!(
            rejected.iter().all(|(status, _)| status.starts_with('4')),
            "rejections should be 4xx: {rejected:?}"
        );
        assert_metric(
            http,
            reject_feed.addr,
            "websocket_server_upgrades_total",
            &[("outcome", "accepted")],
            0.0,
            "no upgrade can be accepted without the Upgrade header",
        )
        .await;
        wait_canary_above(
            http,
            daemon,
            "websocket_canary_failures_total",
            &[("canary", "reject"), ("reason", "handshake_status")],
            0.0,
            "the canary fails with handshake_status",
        )
        .await;
        report.put(
            "upgrade dropped",
            format!("server rejected upgrades by status {rejected:?}"),
        );
    };

    let idle_timeout = async {
        // Three streams cut by the tunnel timeout, seen by both ends.
        let q = format!(
            r#"sum(websocket_server_connection_duration_seconds_count{{instance="{}"}})"#,
            idle_feed.addr
        );
        let count = wait_for(
            Duration::from_secs(60),
            "three idle streams cut by HAProxy on the server",
            daemon,
            || async {
                let n = prom_sum(prom, &q).await?;
                (n >= 3.0).then_some(n)
            },
        )
        .await;
        let bucket = |le: &str| {
            format!(
                r#"sum(websocket_server_connection_duration_seconds_bucket{{instance="{}",le="{le}"}})"#,
                idle_feed.addr
            )
        };
        let (below, within) = (
            prom_sum(prom, &bucket("1")).await,
            prom_sum(prom, &bucket("5")).await,
        );
        assert_eq!(below, Some(0.0), "no idle stream should end within 1 s");
        assert!(
            within.is_some_and(|w| w >= count),
            "every idle stream should end within 5 s of the {TUNNEL_TIMEOUT:?} timeout: {within:?} of {count}"
        );
        let q = format!(
            r#"sum(websocket_server_closes_total{{instance="{}",close_code="1006"}})"#,
            idle_feed.addr
        );
        let abnormal = prom_sum(prom, &q).await.unwrap_or(0.0);
        assert!(
            abnormal >= 3.0,
            "the server should count the cuts as 1006: {abnormal}"
        );
        let canary_1006 = wait_canary_above(
            http,
            daemon,
            "websocket_canary_closes_total",
            &[("canary", "idle"), ("close_code", "1006")],
            1.0,
            "the canary sees 1006",
        )
        .await;
        let lifetimes = canary_lifetimes(daemon, "idle");
        assert!(!lifetimes.is_empty(), "no lifetimes in the prober log");
        for l in &lifetimes {
            assert!(
                *l >= TUNNEL_TIMEOUT - Duration::from_millis(300)
                    && *l <= TUNNEL_TIMEOUT + Duration::from_secs(2),
                "the canary's streams should last the {TUNNEL_TIMEOUT:?} timeout: {lifetimes:?}"
            );
        }
        report.put(
            "idle timeout",
            format!("{canary_1006} canary 1006s; lifetimes seen by the canary {lifetimes:?}; server: {count} streams, all in (1 s, 5 s]"),
        );
    };

    let heartbeats_keep_it = async {
        // Held for four timeouts with no close, on either end.
        let since = Instant::now();
        while since.elapsed() < TUNNEL_TIMEOUT * 4 {
            sleep(Duration::from_millis(500)).await;
            let closes = scrape_sum(
                http,
                daemon.addr,
                "websocket_canary_closes_total",
                &[("canary", "heartbeat")],
            )
            .await;
            let up = scrape_sum(
                http,
                daemon.addr,
                "websocket_canary_up",
                &[("canary", "heartbeat")],
            )
            .await;
            assert_eq!(
                (closes, up),
                (Some(0.0), Some(1.0)),
                "the heartbeat canary should hold its stream"
            );
        }
        assert_metric(
            http,
            heartbeat_feed.addr,
            "websocket_server_closes_total",
            &[],
            0.0,
            "the server should not see the stream end",
        )
        .await;
        let pings = scrape_sum(
            http,
            heartbeat_feed.addr,
            "websocket_server_ping_rtt_seconds_count",
            &[],
        )
        .await
        .unwrap_or(0.0);
        assert!(
            pings >= 4.0,
            "the server's pings should have been answered: {pings}"
        );
        report.put(
            "heartbeats on",
            format!(
                "stream held {:?} through a {TUNNEL_TIMEOUT:?} tunnel timeout, {pings} pongs",
                since.elapsed()
            ),
        );
    };

    let killed_and_restarted = async {
        restart_nginx.kill();
        let killed = Instant::now();
        wait_canary_above(
            http,
            daemon,
            "websocket_canary_closes_total",
            &[("canary", "restart"), ("close_code", "1006")],
            0.0,
            "the canary sees 1006 when nginx dies",
        )
        .await;
        let delays_before = daemon.reconnect_delays("restart").len();
        // Down until the canary has retried three times (refused), then back.
        wait_for(
            Duration::from_secs(30),
            "three reconnect attempts while nginx is down",
            daemon,
            || async {
                (daemon.reconnect_delays("restart").len() >= delays_before + 3).then_some(())
            },
        )
        .await;
        restart_nginx.restart().await.expect("nginx restarts");
        let back = Instant::now();
        let took = recovery(http, daemon, "restart", back).await;
        let delays = daemon.reconnect_delays("restart");
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 1,
            "jittered delays should differ: {delays:?}"
        );
        for d in &delays {
            assert!(
                *d <= Duration::from_secs(2),
                "a delay above the 2 s cap: {delays:?}"
            );
        }
        report.put(
            "proxy killed and restarted",
            format!(
                "canary up {took:?} after nginx was back (down {:?}); delays {delays:?}",
                back - killed
            ),
        );
    };

    let reloaded = async {
        let old_workers = reload_nginx.workers();
        let r0 = scrape_sum(
            http,
            daemon.addr,
            "websocket_canary_reconnects_total",
            &[("canary", "reload")],
        )
        .await;
        reload_nginx.reload().await.expect("nginx reloads");
        held_stream_flows(http, daemon, "reload", r0, "`nginx -s reload`").await;
        let draining: Vec<u32> = old_workers
            .iter()
            .copied()
            .filter(|w| wsmon_testkit::proxy_process::alive(*w))
            .collect();
        assert!(
            !draining.is_empty(),
            "the old worker {old_workers:?} should still hold the stream"
        );
        // Fresh connections pass through the good config.
        wait_canary_above(
            http,
            daemon,
            "websocket_canary_connect_checks_total",
            &[("canary", "reload")],
            0.0,
            "a fresh-connection check through the good config",
        )
        .await;
        assert_metric(
            http,
            daemon.addr,
            "websocket_canary_connect_check_up",
            &[("canary", "reload")],
            1.0,
            "the fresh-connection check passes before the bad reload",
        )
        .await;
        let check_failures = || async {
            scrape_sum(
                http,
                daemon.addr,
                "websocket_canary_connect_check_failures_total",
                &[("canary", "reload"), ("reason", "handshake_status")],
            )
            .await
        };
        let f0 = check_failures().await.unwrap_or(0.0);
        // Into a config that drops the Upgrade headers: the held stream still flows, a new
        // upgrade fails with 400.
        reload_nginx
            .reload_with(&fixture(
                "nginx-drops-upgrade.conf",
                &[
                    ("listen", &reload_at.to_string()),
                    ("upstream", &reload_feed.addr.to_string()),
                ],
            ))
            .await
            .expect("nginx reloads into the bad config");
        let bad_since = Instant::now();
        let fresh = wait_for(
            Duration::from_secs(15),
            "a fresh upgrade refused after the bad reload",
            daemon,
            || async {
                match tokio_tungstenite::connect_async(format!("ws://{reload_at}/ws")).await {
                    Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                        Some(resp.status().as_u16())
                    }
                    _ => None,
                }
            },
        )
        .await;
        assert_eq!(fresh, 400, "a new upgrade through the bad config");
        // The canary's own fresh-connection check fails within its interval (plus jitter
        // and slack), while its held stream stays up.
        let check_failed = wait_for(
            CONNECT_CHECK_EVERY * 2 + Duration::from_secs(5),
            "the fresh-connection check fails with handshake_status after the bad reload",
            daemon,
            || async { (check_failures().await? > f0).then(|| bad_since.elapsed()) },
        )
        .await;
        assert_metric(
            http,
            daemon.addr,
            "websocket_canary_connect_check_up",
            &[("canary", "reload")],
            0.0,
            "new connections fail",
        )
        .await;
        held_stream_flows(http, daemon, "reload", r0, "the reload into the bad config").await;
        assert_metric(
            http,
            daemon.addr,
            "websocket_canary_up",
            &[("canary", "reload")],
            1.0,
            "the held canary stays green while new clients fail",
        )
        .await;
        report.put(
            "nginx -s reload",
            format!("held stream kept on old worker(s) {draining:?}; after a reload that drops Upgrade, new upgrades get {fresh} while it flows; the canary's connect_check failed {check_failed:?} after the reload"),
        );
    };

    let drained = async {
        let closes_1001 = || async {
            scrape_sum(
                http,
                daemon.addr,
                "websocket_canary_closes_total",
                &[("canary", "drain"), ("close_code", "1001")],
            )
            .await
        };
        let before = closes_1001().await.unwrap_or(0.0);
        // Drain the instance that holds the canary.
        let mut holding = None;
        for (i, f) in drain_feeds.iter().enumerate() {
            let active = scrape_sum(http, f.addr, "websocket_server_active_connections", &[]).await;
            if active == Some(1.0) {
                holding = Some(i);
            }
        }
        let holding = holding.expect("one drain instance holds the canary");
        let drained_feed = &mut drain_feeds[holding];
        let exit = drained_feed.sigterm().await;
        let drained_at = Instant::now();
        assert!(
            exit.is_some_and(|s| s.success()),
            "the feed should drain and exit 0 on SIGTERM: {exit:?}\n{}",
            drained_feed.log_tail()
        );
        wait_for(
            Duration::from_secs(30),
            "the canary sees 1001 from the drained feed",
            daemon,
            || async { (closes_1001().await? > before).then_some(()) },
        )
        .await;
        let took = recovery(http, daemon, "drain", drained_at).await;
        // The deploy's new instance takes the drained one's place.
        drained_feed.restart().await;
        // The server's side of the same drain: an in-process feed on the same code path
        // (SIGTERM resolves the shutdown future `feed::spawn` was given), whose registry
        // outlives it.
        let inproc =
            wsmon_testkit::feed::FeedServer::start(wsmon_feed::FeedConfig::default()).await;
        let registry = inproc.registry.clone();
        let (mut ws, _) = tokio_tungstenite::connect_async(inproc.ws_url())
            .await
            .expect("client connects");
        let _ = ws.next().await;
        let reader = tokio::spawn(async move {
            let mut code = None;
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Close(Some(f)) = m {
                    code = Some(u16::from(f.code));
                }
            }
            code
        });
        inproc.shutdown().await;
        let seen = reader.await.unwrap();
        let server_side = Scrape::parse(&wsmon::export::prometheus::render(&registry)).sum(
            "websocket_server_closes_total",
            &[("initiator", "server"), ("close_code", "1001")],
        );
        assert_eq!(
            (seen, server_side),
            (Some(1001), 1.0),
            "a drain closes with 1001, counted server-initiated"
        );
        report.put(
            "server drained (SIGTERM)",
            format!("canary saw 1001; up again {took:?} after the drain, on the other instance"),
        );
    };

    let tls = async {
        wait_canary_above(
            http,
            daemon,
            "websocket_canary_failures_total",
            &[("canary", "tls-untrusted"), ("reason", "tls_untrusted")],
            0.0,
            "wss:// without ca_file fails tls_untrusted",
        )
        .await;
        assert_metric(
            http,
            daemon.addr,
            "websocket_canary_up",
            &[("canary", "tls-trusted")],
            1.0,
            "wss:// with the right ca_file passes",
        )
        .await;
        report.put(
            "TLS at nginx",
            "trusted canary up; untrusted fails tls_untrusted".into(),
        );
    };

    let blackholed = async {
        let (Some(net), Some((feed, _nginx, _relay))) = (&blackhole_net, &blackhole) else {
            return None;
        };
        let timeouts = || async {
            scrape_sum(
                http,
                feed.addr,
                "websocket_server_heartbeat_timeouts_total",
                &[],
            )
            .await
        };
        let canary_detect = || async {
            let s = scrape(http, daemon.addr).await?;
            Some(
                s.sum(
                    "websocket_canary_failures_total",
                    &[("canary", "blackhole"), ("reason", "heartbeat_timeout")],
                ) + s.sum(
                    "websocket_canary_failures_total",
                    &[("canary", "blackhole"), ("reason", "stall")],
                ),
            )
        };
        type Change<'a> = Box<dyn Fn() -> Result<(), netns::NetnsError> + Send + Sync + 'a>;
        // The link set down (both directions vanish), then an iptables DROP of what the
        // server sends to the proxy (one direction only): neither sends a FIN or an RST.
        let faults: [(&'static str, Change, Change); 2] = [
            (
                "silent blackhole (link down)",
                Box::new(|| net.proxy.set_link(Topology::PROXY_TO_SERVER, false)),
                Box::new(|| net.proxy.set_link(Topology::PROXY_TO_SERVER, true)),
            ),
            (
                "asymmetric loss (iptables DROP server to proxy)",
                Box::new(|| net.server.drop_output_to(net.proxy_server_side)),
                Box::new(|| net.server.undrop_output_to(net.proxy_server_side)),
            ),
        ];
        for (fault, cut_it, repair) in faults {
            let (t0, c0) = (
                timeouts().await.unwrap_or(0.0),
                canary_detect().await.unwrap_or(0.0),
            );
            cut_it().unwrap_or_else(|e| panic!("{fault}: {e}"));
            let cut = Instant::now();
            let server_took = wait_for(
                Duration::from_secs(30),
                &format!("server heartbeat timeout after the {fault}"),
                daemon,
                || async { (timeouts().await? > t0).then(|| cut.elapsed()) },
            )
            .await;
            let canary_took = wait_for(
                Duration::from_secs(30),
                &format!("canary heartbeat/stall after the {fault}"),
                daemon,
                || async { (canary_detect().await? > c0).then(|| cut.elapsed()) },
            )
            .await;
            // Bounds: the configured detection (pings every 1 s, two missed; canary 3 s)
            // plus slack for a loaded machine.
            assert!(
                server_took <= HEARTBEAT * 3 + Duration::from_secs(5),
                "{fault}: server detection took {server_took:?}"
            );
            assert!(
                canary_took <= CANARY_DETECT + Duration::from_secs(5),
                "{fault}: canary detection took {canary_took:?}"
            );
            // Nothing hangs: reconnects through the proxy fail and are retried meanwhile.
            let attempts = daemon.reconnect_delays("blackhole").len();
            wait_for(
                Duration::from_secs(30),
                &format!("reconnect attempts fail and retry during the {fault}"),
                daemon,
                || async {
                    (daemon.reconnect_delays("blackhole").len() >= attempts + 2).then_some(())
                },
            )
            .await;
            repair().unwrap_or_else(|e| panic!("{fault}, repair: {e}"));
            let back = Instant::now();
            let took = recovery(http, daemon, "blackhole", back).await;
            report.put(
                fault,
                format!("server heartbeat timeout after {server_took:?}, canary after {canary_took:?}; back {took:?} after the repair"),
            );
        }
        Some(())
    };

    let throttled = async {
        let (Some(net), Some((feed, _nginx, _relay))) = (&throttle_net, &throttle) else {
            return None;
        };
        net.proxy
            .throttle(Topology::PROXY_TO_CLIENT, "256kbit", "16kb", "100ms")
            .expect("tc tbf");
        let tcp = net
            .client
            .connect(net.proxy_socket(NS_PROXY_PORT))
            .await
            .expect("client connects in its namespace");
        let (ws, _) = tokio_tungstenite::client_async(
            format!("ws://{}/ws", net.proxy_socket(NS_PROXY_PORT)),
            tcp,
        )
        .await
        .expect("upgrade through nginx");
        // A client on the slow link that also reads slowly: one message a second.
        let reader = tokio::spawn(async move {
            let mut ws = ws;
            while let Some(Ok(_)) = ws.next().await {
                sleep(Duration::from_secs(1)).await;
            }
        });
        let pid = feed.pid().expect("feed pid");
        let body = serde_json::json!({ "type": "bulk", "pad": "x".repeat(128 * 1024) }).to_string();
        let publish = format!("http://{}/publish", feed.addr);
        let mut max_rss = 0;
        let mut max_slow = 0.0f64;
        let mut max_queue = 0.0f64;
        let throttled_at = Instant::now();
        let deadline = throttled_at + Duration::from_secs(90);
        let evicted = loop {
            let _ = http
                .post(&publish)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            max_rss = max_rss.max(rss_bytes(pid).unwrap_or(0));
            if let Some(s) = scrape(http, feed.addr).await {
                max_slow = max_slow.max(s.sum("websocket_server_slow_consumers", &[]));
                max_queue = max_queue.max(s.sum("websocket_server_outbound_queue_messages", &[]));
                let evicted = s.sum(
                    "websocket_server_closes_total",
                    &[("initiator", "server"), ("close_code", "1013")],
                );
                if evicted > 0.0 {
                    break Some(throttled_at.elapsed());
                }
            }
            if Instant::now() >= deadline {
                break None;
            }
            sleep(Duration::from_millis(50)).await;
        };
        reader.abort();
        assert!(evicted.is_some(), "no 1013 eviction of the throttled client within 90 s (max queue {max_queue}, slow consumers {max_slow})\n{}", feed.log_tail());
        assert!(
            max_slow >= 1.0,
            "the throttled client should show as a slow consumer first"
        );
        assert!(
            max_queue >= 48.0,
            "its outbound queue should have filled: {max_queue}"
        );
        assert!(max_rss < 256 << 20, "feed RSS {max_rss} over 256 MiB");
        // Users on the throttled network lose their connections without a close frame, as
        // phones that lose signal do, while the canary on the proxy's own path stays up.
        let dropped_before = scrape_sum(
            http,
            feed.addr,
            "websocket_server_closes_total",
            &[("close_code", "1006")],
        )
        .await
        .unwrap_or(0.0);
        for _ in 0..USERS_DROPPED {
            let tcp = net
                .client
                .connect(net.proxy_socket(NS_PROXY_PORT))
                .await
                .expect("a user connects in the client namespace");
            let (mut ws, _) = tokio_tungstenite::client_async(
                format!("ws://{}/ws", net.proxy_socket(NS_PROXY_PORT)),
                tcp,
            )
            .await
            .expect("a user's upgrade through nginx");
            let _ = ws.next().await;
            drop(ws);
        }
        wait_above(
            http,
            daemon,
            feed.addr,
            "websocket_server_closes_total",
            &[("close_code", "1006")],
            dropped_before + USERS_DROPPED as f64 - 0.5,
            "the server counts the users' dropped connections as 1006",
        )
        .await;
        assert_metric(
            http,
            daemon.addr,
            "websocket_canary_up",
            &[("canary", "throttle")],
            1.0,
            "the canary on the unthrottled path stays up",
        )
        .await;
        net.proxy
            .unthrottle(Topology::PROXY_TO_CLIENT)
            .expect("tc del");
        report.put(
            "throttled client",
            format!(
                "queue peaked at {max_queue} messages, {max_slow} slow consumer(s), evicted with 1013 {:?} after the bulk publishing began; feed RSS peak {} MiB; {USERS_DROPPED} users dropped (1006) while the canary held",
                evicted.unwrap(),
                max_rss >> 20
            ),
        );
        Some(())
    };

    let refused_before_server = async {
        wait_canary_above(
            http,
            daemon,
            "websocket_canary_failures_total",
            &[("canary", "before"), ("reason", "handshake_status")],
            1.0,
            "the canary fails with handshake_status at the refusing nginx",
        )
        .await;
        assert_metric(
            http,
            before_feed.addr,
            "websocket_server_canary_upgrades_total",
            &[],
            0.0,
            "the server behind the refusing nginx never sees the canary",
        )
        .await;
        report.put(
            "proxy answers upgrades itself",
            "canary handshake_status; no canary upgrade on the server".into(),
        );
    };

    let closed_by_server = async {
        let closed = wait_above(
            http,
            daemon,
            closed_feed.addr,
            "websocket_server_canary_closes_total",
            &[("initiator", "server"), ("close_code", "1009")],
            1.0,
            "the feed closes the canary with 1009 itself",
        )
        .await;
        wait_canary_above(
            http,
            daemon,
            "websocket_canary_closes_total",
            &[("canary", "closed"), ("close_code", "1009")],
            1.0,
            "the canary sees the feed's 1009",
        )
        .await;
        report.put(
            "server closes the canary",
            format!("{closed} server-initiated 1009 closes of the canary"),
        );
    };

    let (_, _, _, _, _, _, _, bh, _, _, _) = tokio::join!(
        upgrade_dropped,
        idle_timeout,
        heartbeats_keep_it,
        killed_and_restarted,
        reloaded,
        drained,
        tls,
        blackholed,
        throttled,
        refused_before_server,
        closed_by_server
    );

    // --- what Prometheus saw of each fault, as an operator would query it ---
    let mut seen_by_prometheus = vec![
        (
            format!(
                r#"websocket_server_upgrades_total{{instance="{}",outcome="rejected",status_code="400"}} > 0"#,
                reject_feed.addr
            ),
            "rejected upgrades behind the Upgrade-dropping nginx",
        ),
        (
            r#"websocket_canary_failures_total{canary="reject",reason="handshake_status"} > 0"#
                .to_string(),
            "the canary's handshake_status failures",
        ),
        (
            format!(
                r#"websocket_server_closes_total{{instance="{}",close_code="1006"}} >= 3"#,
                idle_feed.addr
            ),
            "1006s from the tunnel timeout on the server",
        ),
        (
            r#"websocket_canary_closes_total{canary="idle",close_code="1006"} >= 2"#.to_string(),
            "1006s from the tunnel timeout at the canary",
        ),
        (
            r#"websocket_canary_closes_total{canary="restart",close_code="1006"} > 0"#.to_string(),
            "1006 when nginx was killed",
        ),
        (
            r#"websocket_canary_closes_total{canary="drain",close_code="1001"} > 0"#.to_string(),
            "1001 from the drained feed",
        ),
        (
            r#"websocket_canary_failures_total{canary="tls-untrusted",reason="tls_untrusted"} > 0"#
                .to_string(),
            "tls_untrusted without ca_file",
        ),
        (
            r#"websocket_canary_up{canary="tls-trusted"} == 1"#.to_string(),
            "wss:// with ca_file up",
        ),
        (
            r#"websocket_canary_connect_check_up{canary="reload"} == 0 and on (canary) websocket_canary_up{canary="reload"} == 1"#.to_string(),
            "new connections failing while the held stream works, after the bad reload",
        ),
    ];
    // The server's own view of the canaries (they send `User-Agent: wsmon-probe/…`): the
    // canary's upgrade reached the feed without its Upgrade header, so a hop in between
    // stripped it; the feed saw the canary's streams end with 1006 and no initiator, so the
    // path cut them; the feed held the heartbeat canary throughout.
    seen_by_prometheus.extend([
        (
            format!(
                r#"websocket_server_canary_upgrades_total{{instance="{}",outcome="rejected",status_code="400"}} > 0"#,
                reject_feed.addr
            ),
            "the canary's rejected upgrades, on the server",
        ),
        (
            format!(
                r#"websocket_server_canary_upgrades_total{{instance="{}",outcome="accepted"}} == 0"#,
                reject_feed.addr
            ),
            "no canary upgrade accepted behind the Upgrade-dropping nginx",
        ),
        (
            format!(
                r#"websocket_server_canary_closes_total{{instance="{}",initiator="none",close_code="1006"}} >= 3"#,
                idle_feed.addr
            ),
            "the canary's 1006s from the tunnel timeout, on the server",
        ),
        (
            format!(
                r#"websocket_server_canary_active_connections{{instance="{}"}} == 1"#,
                heartbeat_feed.addr
            ),
            "the heartbeat canary held by the server",
        ),
    ]);
    if let Some((feed, _, _)) = &blackhole {
        seen_by_prometheus.push((
            format!(
                r#"websocket_server_heartbeat_timeouts_total{{instance="{}"}} > 0"#,
                feed.addr
            ),
            "server heartbeat timeouts from the blackhole",
        ));
    }
    if let Some((feed, _, _)) = &throttle {
        seen_by_prometheus.push((
            format!(r#"websocket_server_closes_total{{instance="{}",initiator="server",close_code="1013"}} > 0"#, feed.addr),
            "1013 evictions of the throttled client",
        ));
        seen_by_prometheus.push((
            format!(r#"websocket_server_outbound_overflows_total{{instance="{}",action="disconnect"}} > 0"#, feed.addr),
            "disconnect overflows of the throttled client",
        ));
    }
    for (q, what) in &seen_by_prometheus {
        let seen = support::eventually(Duration::from_secs(30), Duration::from_secs(1), || async {
            prom_sum(prom, q).await
        })
        .await;
        assert!(
            seen.is_some(),
            "Prometheus does not show {what}: {q} is empty"
        );
    }

    // --- the alerts: each fault's, named on the right target; the quiet paths quiet ---
    let mut expected = vec![
        Expected::new(
            "WebSocketUpgradeRejectionRatioHigh",
            "instance",
            reject_feed.addr.to_string(),
            "nginx drops Upgrade",
        ),
        Expected::new(
            "WebSocketAbnormalClosesHigh",
            "instance",
            idle_feed.addr.to_string(),
            "tunnel timeout",
        ),
    ];
    // New connections fail while the held stream works: the canary's own alert.
    expected.push(Expected::new(
        "WebSocketNewConnectionsFailing",
        "canary",
        "reload",
        "connect_check after the bad nginx reload",
    ));
    // The fresh-connection checks through the bad reload are rejected on the server too.
    expected.push(Expected::new(
        "WebSocketUpgradeRejectionRatioHigh",
        "instance",
        reload_feed.addr.to_string(),
        "connect_check after the bad nginx reload",
    ));
    if let Some((feed, _, _)) = &throttle {
        expected.push(Expected::new(
            "WebSocketSlowConsumersSustained",
            "instance",
            feed.addr.to_string(),
            "throttled client",
        ));
    }
    if bh.is_some() {
        expected.push(Expected::new(
            "WebSocketCanaryDown",
            "canary",
            "blackhole",
            "silent blackhole",
        ));
    }
    // The server's own view of the idle timeout: its lifetimes cluster in the bucket that
    // holds the 3 s timeout, (1 s, 5 s].
    expected.push(
        Expected::new(
            CUT_AT_FIXED_LIFETIME,
            "instance",
            idle_feed.addr.to_string(),
            "tunnel timeout",
        )
        .firing(),
    );
    let verdicts = hop_verdicts(blackhole.is_some(), throttle.is_some());
    for v in &verdicts {
        for alert in v.fires {
            expected.push(Expected::new(alert, "service", v.service, v.fault).firing());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (missing, seen) = {
            let log = alerts.lock().unwrap();
            (support::alerts::missing(&log, &expected), log.report())
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts not seen: {missing:#?}\nseen:\n{seen}"
        );
        sleep(Duration::from_secs(1)).await;
    }
    recorder.abort();
    let seen = alerts.lock().unwrap().report();
    let quiet_instances = [
        heartbeat_feed.addr,
        drain_feeds[0].addr,
        drain_feeds[1].addr,
        tls_feed.addr,
    ]
    .map(|a| a.to_string());
    for a in alerts.lock().unwrap().0.values() {
        let on = |k: &str| a.labels.get(k).cloned().unwrap_or_default();
        assert!(
            !quiet_instances.contains(&on("instance")),
            "no server alert on the heartbeat, drain or TLS feeds: {a}\nseen:\n{seen}"
        );
        assert!(
            !(matches!(on("canary").as_str(), "heartbeat" | "tls-trusted")
                || on("canary") == "reload" && a.name() != "WebSocketNewConnectionsFailing"),
            "those canaries stayed healthy: {a}\nseen:\n{seen}"
        );
        assert!(
            !(on("canary") == "drain"
                && (a.state == "firing" || a.name() == "WebSocketCanaryFailing")),
            "a drain is no incident: {a}\nseen:\n{seen}"
        );
    }
    // Each fault's service saw its own which-hop alert and none of the others.
    for a in alerts.lock().unwrap().0.values() {
        if a.name() == CUT_AT_FIXED_LIFETIME {
            let on = |k: &str| a.labels.get(k).cloned().unwrap_or_default();
            assert!(
                on("instance") == idle_feed.addr.to_string() && on("le") == "5",
                "a fixed-lifetime cut only behind the {TUNNEL_TIMEOUT:?} tunnel timeout, in its \
                 bucket: {a}\nseen:\n{seen}"
            );
        }
        if !WHICH_HOP_ALERTS.contains(&a.name()) {
            continue;
        }
        let service = a.labels.get("service").map_or("", String::as_str);
        let v = verdicts.iter().find(|v| v.service == service);
        assert!(
            v.is_some_and(|v| v.fires.contains(&a.name()) || v.tolerated.contains(&a.name())),
            "a which-hop alert that names the wrong hop for {}: {a}\nseen:\n{seen}",
            v.map_or("no fault", |v| v.fault)
        );
    }
    let errors = prom.rule_errors().await.unwrap();
    assert!(errors.is_empty(), "rules failed to evaluate: {errors:#?}");

    let summary: Vec<String> = report
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("  {k}: {v}"))
        .collect();
    if std::env::var("WSMON_RECOVERY_REPORT").is_ok() {
        println!("proxy-edge recovery report:\n{}", summary.join("\n"));
    }
    eprintln!(
        "proxy-edge scenario done in {:?}; alerts seen:\n{seen}\n{}",
        started.elapsed(),
        summary.join("\n")
    );
}
