//! `demo`: the example feed in-process, a daemon holding one fully-equipped canary against it,
//! and a live line per canary. Needs no config file.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{
    CanaryConfig, Config, Defaults, HeadCheckConfig, HeartbeatConfig, HttpPublishConfig, MatchRule,
    PublishConfig, PublishVia, SequenceConfig, TargetUrl, TimeUnit, TimestampConfig,
};
use crate::record::recorder::CanaryStatus;

/// The canary the demo holds against a feed at `feed`.
pub fn feed_canary(feed: SocketAddr) -> CanaryConfig {
    let url = TargetUrl::parse(&format!("ws://{feed}/ws")).expect("valid URL");
    let mut c = CanaryConfig::new("feed", url, &Defaults::default());
    c.first_payload_within = Duration::from_secs(2);
    c.sequence = Some(SequenceConfig {
        pointer: "/seq".into(),
        reorder_window: 4,
    });
    c.timestamp = Some(TimestampConfig {
        pointer: "/ts".into(),
        unit: TimeUnit::Millis,
    });
    c.max_silence = Some(Duration::from_secs(2));
    c.heartbeat = Some(HeartbeatConfig {
        every: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
    });
    c.head_check = Some(Box::new(HeadCheckConfig {
        send: r#"{"op":"head"}"#.into(),
        pointer: "/seq".into(),
        reply: Some(MatchRule {
            pointer: "/type".into(),
            equals: "head".into(),
        }),
        every: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        max_lag: None,
    }));
    c.publish = Some(Box::new(PublishConfig {
        via: PublishVia::Http(HttpPublishConfig {
            url: TargetUrl::parse(&format!("http://{feed}/publish")).expect("valid URL"),
            method: "POST".into(),
            body: r#"{"type":"canary","nonce":"{{nonce}}"}"#.into(),
            headers: Vec::new(),
        }),
        every: Duration::from_secs(1),
        match_pointer: "/nonce".into(),
        timeout: Duration::from_secs(2),
    }));
    c
}

/// The demo's whole config: one canary, served at `listen`.
pub fn config(feed: SocketAddr, listen: SocketAddr) -> Config {
    Config {
        listen,
        defaults: Defaults::default(),
        canaries: vec![feed_canary(feed)],
    }
}

fn ms(count: u64, secs: f64) -> String {
    if count == 0 {
        "    -   ".into()
    } else {
        format!("{:>6.1}ms", secs * 1e3)
    }
}

/// One line per canary for the live view.
pub fn summary_line(s: &CanaryStatus, now: Instant) -> String {
    let e2e = s.e2e.summary();
    let fresh = s.freshness.summary();
    let rtt = s.heartbeat_rtt.summary();
    let age = s
        .last_message_age(now)
        .map_or("never".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    let last_failure = s.recent_failures.back().map_or(String::new(), |f| {
        format!("  last failure: {}", f.fault.reason)
    });
    format!(
        "{name:<8} {state:<10} msgs {msgs:>6}  e2e p50 {e2e50} p99 {e2e99}  fresh p50 {f50}  rtt {rtt}  lag {lag:>3}  gaps {gaps}  reconnects {rc}  last msg {age}{last_failure}",
        name = s.name,
        state = s.state.as_str(),
        msgs = s.messages,
        e2e50 = ms(e2e.count, e2e.p50),
        e2e99 = ms(e2e.count, e2e.p99),
        f50 = ms(fresh.count, fresh.p50),
        rtt = ms(rtt.count, rtt.p50),
        lag = s.head_lag.map_or("-".into(), |l| l.to_string()),
        gaps = s.sequence.gaps,
        rc = s.reconnects,
    )
}
