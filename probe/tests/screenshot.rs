//! The README's picture: headless Chromium renders `/status` during the fault demo, the test
//! checks what the page shows, and saves a PNG.
//!
//! `WSMON_BLESS=1 cargo test -p wsmon-probe --test screenshot` rewrites `docs/img/status.png`
//! (otherwise the PNG goes to a temp dir and is only checked for size).

mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use wsmon_testkit::chromium::Chromium;

/// The README image stays small.
const MAX_PNG_BYTES: usize = 150 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_during_the_fault_demo_shows_history_and_renders_to_a_small_png() {
    let chromium = Chromium::require();
    let listen = wsmon_testkit::ports::free_local_addr();
    let listen_arg = listen.to_string();
    let mut demo = support::spawn_bin(
        &["demo", "--listen", &listen_arg, "--duration", "300s"],
        Stdio::piped(),
    );
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    // Through one whole round of faults, so the history has something to show.
    let last = wsmon_probe::run::demo::FAULTS.last().unwrap().name;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains(&format!("caught {last}"));
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("the demo ended early: {seen:#?}");
    })
    .await
    .expect("one round of faults within 180s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let url = format!("http://{listen}/status");
    let head = reqwest::get(&url).await.unwrap();
    let csp = head.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );

    let (dom, png) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            // The page refreshes itself every 5 s: a virtual-time budget under that takes one
            // rendering instead of reloading until the deadline.
            let dom = chromium
                .run(["--virtual-time-budget=2000", "--dump-dom", &url])
                .expect("chromium renders /status")
                .stdout;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("status.png");
            chromium
                .run([
                    format!("--screenshot={}", path.display()),
                    "--window-size=1280,900".into(),
                    "--hide-scrollbars".into(),
                    "--virtual-time-budget=2000".into(),
                    url.clone(),
                ])
                .expect("chromium saves a screenshot");
            (dom, std::fs::read(&path).unwrap())
        }
    })
    .await
    .unwrap();

    // Bars, with the reasons in their titles; uptime; the chart; the timeline.
    assert!(dom.contains(r#"class="bar "#), "no history bars:\n{dom}");
    assert!(
        dom.contains(r#"class="bar amber""#) || dom.contains(r#"class="bar red""#),
        "the faults left no amber or red minute:\n{dom}"
    );
    // Faults that changed the canary's state are in the timeline...
    for reason in ["stall", "first_payload_timeout", "closed", "frame_too_big"] {
        assert!(
            dom.contains(&format!(r#"<b class="reason">{reason}</b>"#)),
            "{reason} is not in the timeline:\n{dom}"
        );
    }
    // ...and the newest one that did not is among the recent failures.
    assert!(
        dom.contains(r#"<span class="reason">publish_timeout</span>"#),
        "{dom}"
    );
    assert!(dom.contains(r#"<b class="uptime-1h">"#), "{dom}");
    assert!(dom.contains(r#"<svg class="chart""#), "{dom}");
    assert!(dom.contains("close 1006"), "{dom}");
    // No markup from a server became live: no script or image element anywhere.
    assert!(!dom.contains("<script"), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");

    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(
        png.len() < MAX_PNG_BYTES,
        "the screenshot is {} bytes; keep it under {MAX_PNG_BYTES}",
        png.len()
    );
    if std::env::var_os("WSMON_BLESS").is_some() {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/status.png");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, &png).unwrap();
        eprintln!("wrote {} ({} bytes)", out.display(), png.len());
    }

    let pid = demo.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait())
        .await
        .expect("the demo stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");
}
