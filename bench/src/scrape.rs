//! Benchmark 3, scrape cost: `/metrics` render time and series count against the number of
//! live instrumented connections (in-process sockets over `tokio::io::duplex`).

use std::time::Instant;

use serde::Serialize;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::markdown::Table;
use crate::summary::Spread;

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub connections: usize,
    pub render_ms: Spread,
    pub series: usize,
    pub bytes: usize,
}

/// Series lines in a Prometheus text exposition (everything but comments and blanks).
pub fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// Grows the live connections to each of `steps` and times `renders` renders at each.
pub async fn run(steps: &[usize], renders: usize) -> anyhow::Result<Vec<Point>> {
    crate::sys::raise_nofile(4096)?;
    let registry = prometheus::Registry::new();
    let wsmon = wsmon::WsMon::builder().route("/ws").build(&registry)?;
    let mut held = Vec::new();
    let mut points = Vec::new();
    let mut want: Vec<usize> = steps.to_vec();
    want.insert(0, 0);
    for target in want {
        while held.len() < target {
            let (a, b) = tokio::io::duplex(1024);
            let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
            let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
            let mut socket = wsmon.instrument("/ws", server);
            // A payload each, so per-connection state is past its first message.
            socket.send(Message::text("hello")).await?;
            held.push((socket, client));
        }
        assert_eq!(wsmon.active_connections(), target);
        let text = wsmon.render();
        let mut times = Vec::with_capacity(renders);
        for _ in 0..renders {
            let t = Instant::now();
            let text = std::hint::black_box(wsmon.render());
            times.push(t.elapsed().as_secs_f64() * 1e3);
            drop(text);
        }
        let point = Point {
            connections: target,
            render_ms: Spread::of(&times).expect("at least one render"),
            series: series_count(&text),
            bytes: text.len(),
        };
        eprintln!(
            "  scrape {:>6} connections: render {} ms, {} series, {} bytes",
            point.connections,
            point.render_ms.show(3),
            point.series,
            point.bytes
        );
        points.push(point);
    }
    Ok(points)
}

pub fn report(points: &[Point], renders: usize) -> String {
    let mut out = String::from("## 3. Scrape cost\n\n");
    out.push_str(&format!(
        "Live instrumented connections (tokio-tungstenite over in-process duplex streams, one \
         route, each past its first message), `WsMon::render()` timed {renders} times at each \
         size. Target: under 10 ms at 10,000 connections, and a series count that does not \
         depend on connections.\n\n"
    ));
    let mut t = Table::new([
        "connections",
        "render ms median (min–max)",
        "series",
        "bytes",
    ]);
    for p in points {
        t.row([
            p.connections.to_string(),
            p.render_ms.show(3),
            p.series.to_string(),
            p.bytes.to_string(),
        ]);
    }
    out.push_str(&t.render());
    let constant = points.windows(2).all(|w| w[0].series == w[1].series);
    let worst = points
        .iter()
        .map(|p| p.render_ms.median)
        .fold(0.0, f64::max);
    out.push_str(&format!(
        "\nSeries count constant across sizes: **{}**. Largest median render: {:.3} ms (target < 10 ms: **{}**).\n",
        if constant { "yes" } else { "no" },
        worst,
        if worst < 10.0 { "met" } else { "missed" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_count_skips_comments_and_blank_lines() {
        let text = "# HELP a x\n# TYPE a counter\na_total 1\nb{x=\"1\"} 2\n\n";
        assert_eq!(series_count(text), 2);
    }
}
