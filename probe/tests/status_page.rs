//! `/status` in headless Chromium: it renders, shows each canary's state, and a hostile
//! server's text (message and close reason) cannot inject markup.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use support::faulty::{self, close_with};
use support::{parse_config, RunningDaemon};

const HOSTILE_MESSAGE: &str = r#"<script>document.title='pwned'</script><img src=x onerror="document.body.setAttribute('data-pwned','1')">"#;
const HOSTILE_CLOSE: &str = r#"</td><img src=x onerror=alert(1)><script>alert(2)</script>"#;

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser"] {
        if std::process::Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!("chromium is not installed: `bash scripts/test.sh` installs it (apt-get install -y chromium)");
}

fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_each_canary_and_escapes_hostile_text() {
    let browser = chromium();
    let feed = support::feed(20.0).await;
    let hostile = faulty::ws(|mut ws| async move {
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                HOSTILE_MESSAGE,
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        close_with(&mut ws, 4000, HOSTILE_CLOSE).await;
    })
    .await;
    // Full jitter draws the first reconnect delay from [0, initial]: an hour-wide window keeps
    // the hostile canary in backoff while the page is read (5 s reconnected within 1 s 1 time in 5).
    let config = format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    timestamp: {{ pointer: /ts }}\n  - name: hostile\n    url: {}\n    backoff: {{ initial: 1h, max: 1h }}\n",
        feed.addr,
        hostile.url()
    );
    let d = RunningDaemon::start(parse_config(&config)).await;
    d.wait_for(Duration::from_secs(10), "feed up and hostile closed", |m| {
        support::sample(m, "websocket_canary_up", r#"canary="feed""#) == Some(1.0)
            && support::sample(
                m,
                "websocket_canary_closes_total",
                r#"canary="hostile",close_code="4xxx""#,
            )
            .is_some()
    })
    .await;
    let url = format!("http://{}/status", d.addr);
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .unwrap();
    let _ = browser;

    assert!(dom.contains("<title>wsmon-probe status</title>"), "{dom}");
    assert!(
        dom.contains(r#"<tr data-canary="feed" data-state="up">"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<tr data-canary="hostile" data-state="backoff">"#),
        "{dom}"
    );
    // The hostile text is shown, as text.
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;/td&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{dom}"
    );
    // ...and nothing of it became markup.
    assert!(!dom.contains("<img"), "an <img> was injected:\n{dom}");
    assert!(!dom.contains("<script"), "a <script> was injected:\n{dom}");
    assert!(
        !dom.contains(r#"data-pwned="1""#),
        "the onerror handler ran:\n{dom}"
    );
    assert!(!dom.contains("pwned</title>"), "{dom}");
    assert!(
        dom.contains("<svg class=\"spark\""),
        "the feed has a freshness sparkline"
    );
    d.stop().await;
}

async fn get(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_bars_uptime_and_a_timeline_with_the_drop_in_html_and_json() {
    let feed = support::feed(20.0).await;
    let config = format!(
        "canaries:\n  - name: feed\n    url: ws://{}/ws\n    timestamp: {{ pointer: /ts }}\n    backoff: {{ initial: 100ms, max: 200ms }}\n",
        feed.addr
    );
    let d = RunningDaemon::start(parse_config(&config)).await;
    let json_url = format!("http://{}/status.json", d.addr);
    let json = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
    // Up first, then an abrupt drop by the feed's fault control.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Up, and past the snapshot: timestamped ticks give the minute a freshness figure.
    loop {
        let doc = json(get(&json_url).await);
        let canary = &doc["canaries"][0];
        if canary["state"] == "up" && canary["messages"].as_u64().unwrap_or(0) >= 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the canary never came up with 5 messages: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    feed.feed.faults().drop_connections();
    let doc = loop {
        let doc = json(get(&json_url).await);
        let changes = doc["canaries"][0]["history"]["changes"]
            .as_array()
            .unwrap()
            .clone();
        let dropped = changes
            .iter()
            .any(|c| c["reason"] == "closed" && c["close_code"] == 1006);
        let back_up = changes.last().is_some_and(|c| c["to"] == "up");
        if dropped && back_up {
            break doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no drop and recovery in {doc}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let history = &doc["canaries"][0]["history"];
    // The drop and the recovery may straddle a minute boundary: the minute with the failure
    // is the one checked, and freshness may sit in either minute.
    let minutes = history["minutes"].as_array().unwrap();
    let minute = minutes
        .iter()
        .find(|m| m["failures"].as_u64().unwrap_or(0) >= 1)
        .unwrap_or_else(|| panic!("no minute with the failure: {minutes:?}"));
    assert_eq!(minute["worst"], "closed", "{minute}");
    let up = minute["up"].as_f64().unwrap();
    assert!(up > 0.0 && up < 1.0, "the drop costs some up time: {up}");
    let messages: u64 = minutes.iter().filter_map(|m| m["messages"].as_u64()).sum();
    assert!(messages >= 5, "{minutes:?}");
    assert!(
        minutes
            .iter()
            .any(|m| m["freshness_p99"].as_f64().is_some()),
        "{minutes:?}"
    );
    let uptime = history["uptime_1h"].as_f64().unwrap();
    assert!(uptime > 0.0 && uptime < 1.0, "{uptime}");
    assert_eq!(doc["freshness_slo_seconds"], 1.0);

    let page = get(&format!("http://{}/status", d.addr)).await;
    let section = page
        .split(r#"<section class="history" data-canary="feed">"#)
        .nth(1)
        .expect("a history section for the canary");
    // This minute had a failure: an amber (or red) bar whose title names the reason.
    assert!(
        section.contains(r#"<span class="bar amber" title=""#)
            || section.contains(r#"<span class="bar red" title=""#),
        "{section}"
    );
    assert!(section.contains("worst closed"), "{section}");
    assert!(section.contains(r#"<b class="uptime-1h">"#), "{section}");
    assert!(section.contains(r#"<svg class="chart""#), "{section}");
    assert!(section.contains(r#"<line class="slo""#), "{section}");
    assert!(
        section.contains(r#"<b class="reason">closed</b>"#) && section.contains("close 1006"),
        "the timeline shows the drop: {section}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_close_reason_in_the_timeline_and_json_stays_text() {
    let hostile = faulty::ws(|mut ws| async move {
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text("{}"))
            .await;
        close_with(&mut ws, 4000, HOSTILE_CLOSE).await;
    })
    .await;
    let config = format!(
        "canaries:\n  - name: hostile\n    url: {}\n    backoff: {{ initial: 1h, max: 1h }}\n",
        hostile.url()
    );
    let d = RunningDaemon::start(parse_config(&config)).await;
    let json_url = format!("http://{}/status.json", d.addr);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let doc = loop {
        let doc: serde_json::Value = serde_json::from_str(&get(&json_url).await).unwrap();
        if doc["canaries"][0]["history"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["to"] == "backoff")
        {
            break doc;
        }
        assert!(std::time::Instant::now() < deadline, "{doc}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let page = get(&format!("http://{}/status", d.addr)).await;
    let section = page
        .split(r#"<section class="history""#)
        .nth(1)
        .expect("a history section");
    assert!(!section.contains("<img"), "{section}");
    assert!(!section.contains("<script"), "{section}");
    assert!(!section.contains("</td><"), "{section}");
    // The close reason is shown in the timeline, as text, and carried as a string in JSON.
    assert!(
        section.contains(&escape_like_page(HOSTILE_CLOSE)),
        "the close reason, escaped: {section}"
    );
    assert!(
        doc["canaries"][0]["history"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["close_reason"] == HOSTILE_CLOSE && c["close_code"] == 4000),
        "{doc}"
    );
    d.stop().await;
}

fn escape_like_page(s: &str) -> String {
    wsmon_probe::serve::status_page::escape(s)
}
