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
