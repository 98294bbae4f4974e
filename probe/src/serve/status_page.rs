//! The `/status` page: every canary at a glance. All text that a server or config can
//! influence goes through [`escape`]; the page also forbids scripts via its CSP header.

use std::fmt::Write;
use std::time::{Instant, SystemTime};

use crate::record::recorder::CanaryStatus;

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

/// Renders the page for `canaries`.
pub fn render(canaries: &[CanaryStatus], uptime_secs: f64) -> String {
    let now = Instant::now();
    let mut rows = String::new();
    let mut failures = String::new();
    for s in canaries {
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
code {{ word-break: break-all; }}
</style></head>
<body>
<h1>wsmon-probe</h1>
<p class="muted">{count} · up {uptime:.0}s · refreshes every 5s · <a href="/metrics">/metrics</a></p>
<table>
<thead><tr><th>canary</th><th>state</th><th>last message</th><th>freshness</th><th>messages</th><th>gaps / missed</th><th>dups / reorders</th><th>stalls</th><th>reconnects</th><th>heartbeat rtt</th><th>head lag</th><th>last close</th></tr></thead>
<tbody>
{rows}</tbody></table>
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
