//! The `/status` page: every canary at a glance, then each one's history (per-minute bars,
//! uptime over 1 h and 24 h, a freshness chart against the SLO, the last state changes), and
//! `/status.json` with the same data. All text that a server or config can influence goes
//! through [`escape`]; the page is drawn on the server (inline SVG, no scripts) and forbids
//! scripts via its CSP header.

use std::fmt::Write;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::record::history::{HistoryView, Minute};
use crate::record::recorder::CanaryStatus;

/// The freshness SLO line on the chart, in seconds: the end-to-end SLO latency of
/// `alerts/thresholds.rules.yml` (`wsmon:threshold:canary_e2e_slo_latency_seconds`).
pub const FRESHNESS_SLO_SECONDS: f64 = 1.0;
/// Per-minute bars shown for each canary; the day is shown as hourly bars.
pub const BAR_MINUTES: usize = 60;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An inline SVG polyline of `points` (seconds), scaled to the largest.
pub fn sparkline(points: &[f64]) -> String {
    const W: f64 = 160.0;
    const H: f64 = 28.0;
    if points.is_empty() {
        return r#"<span class="muted">no samples</span>"#.to_string();
    }
    let max = points.iter().cloned().fold(f64::MIN_POSITIVE, f64::max);
    let step = if points.len() > 1 {
        W / (points.len() - 1) as f64
    } else {
        0.0
    };
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                H - (v / max) * (H - 2.0) - 1.0
            )
        })
        .collect();
    format!(
        r#"<svg class="spark" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="freshness, max {:.1} ms"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>"#,
        max * 1e3,
        coords.join(" ")
    )
}

fn ms(secs: f64) -> String {
    format!("{:.1} ms", secs * 1e3)
}

fn ago(at: SystemTime) -> String {
    SystemTime::now()
        .duration_since(at)
        .map_or("just now".into(), |d| {
            format!("{:.0}s ago", d.as_secs_f64())
        })
}

/// A minute's colour: green (up all along, no failure), red (down half of it or more), amber
/// (in between), grey (not observed).
pub fn bar_class(m: &Minute) -> &'static str {
    if m.up < 0.5 {
        "red"
    } else if m.up < 0.999 || m.failures > 0 {
        "amber"
    } else {
        "green"
    }
}

fn hhmm(minute: u32) -> String {
    format!("{:02}:{:02}", (minute / 60) % 24, minute % 60)
}

fn hhmmss(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

fn pct(f: Option<f64>) -> String {
    f.map_or("-".into(), |f| format!("{:.2}%", f * 100.0))
}

fn minute_title(m: &Minute) -> String {
    let mut t = format!(
        "{} UTC · up {:.0}% · {} msgs",
        hhmm(m.minute),
        m.up * 100.0,
        m.messages
    );
    if let (Some(p50), Some(p99)) = (m.freshness_p50, m.freshness_p99) {
        let _ = write!(
            t,
            " · freshness p50 {} p99 {}",
            ms(p50.into()),
            ms(p99.into())
        );
    }
    if let Some(r) = m.worst {
        let _ = write!(t, " · {} failure(s), worst {}", m.failures, r.as_str());
    }
    t
}

/// The minutes merged into one bar: the lowest up fraction, every failure, the worst
/// reason of the worst minute.
fn merge(minutes: &[Minute]) -> Minute {
    let worst = minutes
        .iter()
        .filter(|m| m.worst.is_some())
        .min_by(|a, b| a.up.total_cmp(&b.up).then(b.failures.cmp(&a.failures)));
    Minute {
        minute: minutes.first().map_or(0, |m| m.minute),
        up: minutes.iter().map(|m| m.up).fold(1.0, f32::min),
        worst: worst.and_then(|m| m.worst),
        failures: minutes.iter().map(|m| m.failures).sum(),
        messages: minutes.iter().map(|m| m.messages).sum(),
        freshness_p50: minutes
            .iter()
            .filter_map(|m| m.freshness_p50)
            .reduce(f32::max),
        freshness_p99: minutes
            .iter()
            .filter_map(|m| m.freshness_p99)
            .reduce(f32::max),
    }
}

/// Bars for the newest [`BAR_MINUTES`] minutes, then one per hour for the day.
pub fn history_bars(h: &HistoryView) -> String {
    let mut out = String::from(r#"<div class="bars minutes" aria-label="last 60 minutes">"#);
    let newest = &h.minutes[h.minutes.len().saturating_sub(BAR_MINUTES)..];
    for m in newest {
        let _ = write!(
            out,
            r#"<span class="bar {}" title="{}"></span>"#,
            bar_class(m),
            escape(&minute_title(m))
        );
    }
    out.push_str(r#"</div><div class="bars hours" aria-label="last 24 hours">"#);
    let mut hours: Vec<&[Minute]> = Vec::new();
    let mut rest = &h.minutes[..];
    while !rest.is_empty() {
        let hour = rest[0].minute / 60;
        let n = rest.iter().take_while(|m| m.minute / 60 == hour).count();
        hours.push(&rest[..n]);
        rest = &rest[n..];
    }
    for hour in hours {
        let m = merge(hour);
        let _ = write!(
            out,
            r#"<span class="bar {}" title="{}"></span>"#,
            bar_class(&m),
            escape(&format!("hour from {}", minute_title(&m)))
        );
    }
    out.push_str("</div>");
    out
}

/// Freshness p50 and p99 per minute against the SLO line, as inline SVG.
pub fn freshness_chart(h: &HistoryView) -> String {
    const W: f64 = 480.0;
    const H: f64 = 90.0;
    let points: Vec<(usize, f64, f64)> = h
        .minutes
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, f64::from(m.freshness_p50?), f64::from(m.freshness_p99?))))
        .collect();
    if points.is_empty() {
        return r#"<p class="muted">no freshness measured yet</p>"#.into();
    }
    let top = points
        .iter()
        .map(|p| p.2)
        .fold(FRESHNESS_SLO_SECONDS * 1.25, f64::max);
    let n = h.minutes.len().max(2) - 1;
    let x = |i: usize| i as f64 * W / n as f64;
    let y = |v: f64| H - 2.0 - (v / top) * (H - 4.0);
    let line = |pick: fn(&(usize, f64, f64)) -> f64| {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(pick(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Dots too, so a single minute (a fresh daemon) is visible.
    let dots: String = points
        .iter()
        .map(|p| {
            format!(
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#e67e22"/><circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#3b6fd6"/>"##,
                x(p.0),
                y(p.2),
                x(p.0),
                y(p.1)
            )
        })
        .collect();
    format!(
        r##"<svg class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="freshness p50 and p99 per minute against the {slo} SLO"><line class="slo" x1="0" x2="{W}" y1="{sy:.1}" y2="{sy:.1}" stroke="#c0392b" stroke-dasharray="4 3"/><text x="{tx}" y="{ty:.1}" font-size="10" fill="#c0392b" text-anchor="end">SLO {slo}</text><polyline class="p99" fill="none" stroke="#e67e22" stroke-width="1.2" points="{p99}"/><polyline class="p50" fill="none" stroke="#3b6fd6" stroke-width="1.5" points="{p50}"/>{dots}</svg>"##,
        slo = ms(FRESHNESS_SLO_SECONDS),
        sy = y(FRESHNESS_SLO_SECONDS),
        tx = W - 2.0,
        ty = y(FRESHNESS_SLO_SECONDS) - 3.0,
        p99 = line(|p| p.2),
        p50 = line(|p| p.1),
    )
}

/// The state changes, newest first.
pub fn timeline(h: &HistoryView) -> String {
    if h.changes.is_empty() {
        return r#"<ol class="timeline"><li class="muted">no state changes yet</li></ol>"#.into();
    }
    let mut out = String::from(r#"<ol class="timeline">"#);
    for c in h.changes.iter().rev() {
        let reason = c.reason.map_or(String::new(), |r| {
            format!(
                r#" <b class="reason">{}</b> <span class="detail">{}</span>"#,
                r.as_str(),
                escape(&c.detail)
            )
        });
        let close = c.close_code.map_or(String::new(), |code| {
            format!(
                r#" <span class="code">close {code}</span> <span class="close-reason">{}</span>"#,
                escape(&c.close_reason)
            )
        });
        let _ = write!(
            out,
            r#"<li data-to="{to}"><time>{at} UTC</time> {from} → <span class="state {to}">{to}</span>{reason}{close}</li>"#,
            at = hhmmss(c.at_ms),
            from = c.from,
            to = c.to,
        );
    }
    out.push_str("</ol>");
    out
}

/// One canary's history section.
fn history_section(s: &CanaryStatus, h: &HistoryView) -> String {
    format!(
        r#"<section class="history" data-canary="{name}">
<h3>{name} <span class="muted">uptime 1 h <b class="uptime-1h">{u1}</b> · 24 h <b class="uptime-24h">{u24}</b></span></h3>
{bars}
<div class="muted">freshness per minute: <span style="color:#3b6fd6">p50</span>, <span style="color:#e67e22">p99</span>, SLO dashed</div>
{chart}
<h4>State changes</h4>
{timeline}
</section>
"#,
        name = escape(&s.name),
        u1 = pct(h.uptime_1h),
        u24 = pct(h.uptime_24h),
        bars = history_bars(h),
        chart = freshness_chart(h),
        timeline = timeline(h),
    )
}

/// `/status.json`: the same data as the page.
#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    pub uptime_secs: f64,
    pub freshness_slo_seconds: f64,
    pub canaries: Vec<CanaryJson<'a>>,
}

/// One canary in `/status.json`.
#[derive(Debug, Serialize)]
pub struct CanaryJson<'a> {
    pub name: &'a str,
    pub target: &'a str,
    pub state: &'static str,
    pub messages: u64,
    pub reconnects: u64,
    pub close_code: Option<u16>,
    pub history: &'a HistoryView,
}

/// Renders `/status.json`.
pub fn render_json(canaries: &[(CanaryStatus, HistoryView)], uptime_secs: f64) -> String {
    let doc = StatusJson {
        uptime_secs,
        freshness_slo_seconds: FRESHNESS_SLO_SECONDS,
        canaries: canaries
            .iter()
            .map(|(s, h)| CanaryJson {
                name: &s.name,
                target: &s.target,
                state: s.state.as_str(),
                messages: s.messages,
                reconnects: s.reconnects,
                close_code: s.close_code,
                history: h,
            })
            .collect(),
    };
    serde_json::to_string(&doc).expect("plain data serializes")
}

/// Renders the page for `canaries`, each with its history.
pub fn render(canaries: &[(CanaryStatus, HistoryView)], uptime_secs: f64) -> String {
    let now = Instant::now();
    let mut rows = String::new();
    let mut failures = String::new();
    let mut histories = String::new();
    for (s, h) in canaries {
        histories.push_str(&history_section(s, h));
        let age = s
            .last_message_age(now)
            .map_or("never".into(), |d| format!("{:.1}s", d.as_secs_f64()));
        let e2e = s.e2e.summary();
        let fresh = s.freshness.summary();
        let rtt = s.heartbeat_rtt.summary();
        let close = s.close_code.map_or(String::new(), |c| {
            format!("{c} {}", escape(&s.close_reason))
        });
        let spark = s.sparkline();
        let _ = write!(
            rows,
            r#"<tr data-canary="{name}" data-state="{state}">
<td class="name">{name}<div class="muted">{target}</div></td>
<td><span class="state {state}">{state}</span></td>
<td>{age}</td>
<td>{spark}<div class="muted">last 60: freshness p50 {fp50} · e2e p50 {ep50} · p99 {ep99}</div></td>
<td>{messages}</td>
<td>{gaps} / {missed}</td>
<td>{dups} / {reorders}</td>
<td>{stalls}</td>
<td>{reconnects}</td>
<td>{rtt}</td>
<td>{lag}</td>
<td class="close">{close}</td>
</tr>
<tr class="preview"><td colspan="12">last message: <code>{preview}</code></td></tr>
"#,
            name = escape(&s.name),
            target = escape(&s.target),
            state = s.state.as_str(),
            spark = sparkline(&spark),
            fp50 = if fresh.count > 0 {
                ms(fresh.p50)
            } else {
                "-".into()
            },
            ep50 = if e2e.count > 0 {
                ms(e2e.p50)
            } else {
                "-".into()
            },
            ep99 = if e2e.count > 0 {
                ms(e2e.p99)
            } else {
                "-".into()
            },
            messages = s.messages,
            gaps = s.sequence.gaps,
            missed = s.sequence.missed,
            dups = s.sequence.duplicates,
            reorders = s.sequence.reorders,
            stalls = s.stalls,
            reconnects = s.reconnects,
            rtt = if rtt.count > 0 {
                ms(rtt.p50)
            } else {
                "-".into()
            },
            lag = s.head_lag.map_or("-".into(), |l| l.to_string()),
            preview = escape(&s.last_message_preview),
        );
        for f in s.recent_failures.iter().rev() {
            let _ = writeln!(
                failures,
                r#"<li data-canary="{}"><span class="when">{}</span> <b>{}</b> <span class="reason">{}</span>: {}</li>"#,
                escape(&s.name),
                ago(f.at),
                escape(&s.name),
                f.fault.reason.as_str(),
                escape(&f.fault.detail)
            );
        }
    }
    if failures.is_empty() {
        failures.push_str(r#"<li class="muted">none</li>"#);
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>wsmon-probe status</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }}
tr.preview td {{ font-size: 12px; color: #666; border-bottom: 2px solid #ddd; }}
.muted {{ color: #888; font-size: 12px; }}
.state {{ padding: .1rem .45rem; border-radius: .6rem; font-weight: 600; }}
.up {{ background: #d8f5dd; color: #146c2e; }}
.stalled, .backoff {{ background: #fde2e1; color: #9b1c1c; }}
.connecting, .stopped {{ background: #eee; color: #555; }}
.spark {{ color: #3b6fd6; display: block; }}
.bars {{ display: flex; gap: 1px; height: 22px; margin: .3rem 0; }}
.bars.hours {{ height: 12px; }}
.bar {{ flex: 1 1 0; max-width: 9px; border-radius: 2px; background: #ccc; }}
.bar.green {{ background: #2eaa4f; }} .bar.amber {{ background: #f0a81c; }} .bar.red {{ background: #d64541; }}
section.history {{ margin: 1rem 0 1.5rem; }}
.timeline {{ font-size: 13px; max-height: 16rem; overflow: auto; padding-left: 1.2rem; }}
.timeline .detail {{ color: #555; }}
.chart {{ display: block; background: #fafafa; border: 1px solid #eee; }}
code {{ word-break: break-all; }}
</style></head>
<body>
<h1>wsmon-probe</h1>
<p class="muted">{count} · up {uptime:.0}s · refreshes every 5s · <a href="/metrics">/metrics</a> · <a href="/status.json">/status.json</a></p>
<table>
<thead><tr><th>canary</th><th>state</th><th>last message</th><th>freshness</th><th>messages</th><th>gaps / missed</th><th>dups / reorders</th><th>stalls</th><th>reconnects</th><th>heartbeat rtt</th><th>head lag</th><th>last close</th></tr></thead>
<tbody>
{rows}</tbody></table>
<h2>History</h2>
{histories}
<h2>Recent failures</h2>
<ul id="failures">
{failures}</ul>
</body></html>
"#,
        count = match canaries.len() {
            1 => "1 canary".to_string(),
            n => format!("{n} canaries"),
        },
        uptime = uptime_secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_attribute_breakouts() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn sparkline_scales_to_the_box() {
        let svg = sparkline(&[0.0, 0.5, 1.0]);
        assert!(
            svg.contains("points=\"0.0,27.0 80.0,14.0 160.0,1.0\""),
            "{svg}"
        );
        assert!(sparkline(&[]).contains("no samples"));
    }
}
