//! `check`'s output: the resolved configuration as YAML, secrets shown as `***`.

use super::types::{Backoff, CanaryConfig, Config, PublishVia, ResumeConfig, TlsConfig};
use super::units::fmt_duration;

impl Config {
    /// The resolved configuration as YAML, with secrets shown as `***`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let d = &self.defaults;
        out.push_str(&format!("listen: {}\n", self.listen));
        out.push_str("defaults:\n");
        out.push_str(&format!(
            "  connect_timeout: {}\n",
            fmt_duration(d.connect_timeout)
        ));
        out.push_str(&format!(
            "  first_payload_timeout: {}\n",
            fmt_duration(d.first_payload_timeout)
        ));
        out.push_str(&format!("  max_message_bytes: {}\n", d.max_message_bytes));
        out.push_str(&format!("  backoff: {}\n", fmt_backoff(&d.backoff)));
        out.push_str("canaries:\n");
        for c in &self.canaries {
            render_canary(&mut out, c);
        }
        out
    }
}

fn fmt_backoff(b: &Backoff) -> String {
    format!(
        "{{ initial: {}, max: {} }}",
        fmt_duration(b.initial),
        fmt_duration(b.max)
    )
}

pub(super) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn render_canary(out: &mut String, c: &CanaryConfig) {
    let start = out.len();
    let mut line = |s: String| {
        out.push_str("    ");
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("name: {}", quote(&c.name)));
    line(format!("url: {}", quote(&c.url.redacted())));
    if !c.headers.is_empty() {
        let h: Vec<String> = c
            .headers
            .iter()
            .map(|(k, v)| format!("{}: {}", quote(k), quote(&v.to_string())))
            .collect();
        line(format!("headers: {{ {} }}", h.join(", ")));
    }
    if let Some(o) = &c.origin {
        line(format!("origin: {}", quote(o)));
    }
    if !c.subprotocols.is_empty() {
        let s: Vec<String> = c.subprotocols.iter().map(|s| quote(s)).collect();
        line(format!("subprotocols: [{}]", s.join(", ")));
    }
    if !c.on_open.is_empty() {
        let s: Vec<String> = c.on_open.iter().map(|s| quote(s)).collect();
        line(format!("on_open: [{}]", s.join(", ")));
    }
    line(format!(
        "connect_timeout: {}",
        fmt_duration(c.connect_timeout)
    ));
    line(format!(
        "first_payload_within: {}",
        fmt_duration(c.first_payload_within)
    ));
    line(format!("max_message_bytes: {}", c.max_message_bytes));
    if let Some(r) = c.max_message_rate {
        line(format!("max_message_rate: {r}"));
    }
    line(format!("backoff: {}", fmt_backoff(&c.backoff)));
    if c.tls != TlsConfig::default() {
        let ca = c
            .tls
            .ca_file
            .as_ref()
            .map_or("null".to_string(), |p| quote(&p.display().to_string()));
        line(format!(
            "tls: {{ ca_file: {ca}, insecure_skip_verify: {} }}",
            c.tls.insecure_skip_verify
        ));
    }
    if let Some(s) = &c.sequence {
        line(format!(
            "sequence: {{ pointer: {}, reorder_window: {} }}",
            quote(&s.pointer),
            s.reorder_window
        ));
    }
    if let Some(t) = &c.timestamp {
        line(format!(
            "timestamp: {{ pointer: {}, unit: {} }}",
            quote(&t.pointer),
            t.unit.as_str()
        ));
    }
    if let Some(m) = c.max_silence {
        line(format!("max_silence: {}", fmt_duration(m)));
    }
    if let Some(h) = &c.heartbeat {
        line(format!(
            "heartbeat: {{ every: {}, timeout: {} }}",
            fmt_duration(h.every),
            fmt_duration(h.timeout)
        ));
    }
    if let Some(h) = &c.head_check {
        let reply = h.reply.as_ref().map_or(String::new(), |r| {
            format!(
                ", match: {{ pointer: {}, equals: {} }}",
                quote(&r.pointer),
                quote(&r.equals)
            )
        });
        let max_lag = h
            .max_lag
            .map_or(String::new(), |l| format!(", max_lag: {l}"));
        line(format!(
            "head_check: {{ send: {}, pointer: {}{reply}, every: {}, timeout: {}{max_lag} }}",
            quote(&h.send),
            quote(&h.pointer),
            fmt_duration(h.every),
            fmt_duration(h.timeout)
        ));
    }
    if let Some(p) = &c.publish {
        line("publish:".to_string());
        match &p.via {
            PublishVia::Http(h) => {
                let headers: Vec<String> = h
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{}: {}", quote(k), quote(&v.to_string())))
                    .collect();
                line(format!(
                    "  http: {{ url: {}, method: {}, body: {}, headers: {{ {} }} }}",
                    quote(&h.url.redacted()),
                    h.method,
                    quote(&h.body),
                    headers.join(", ")
                ));
            }
            PublishVia::WebSocket(w) => line(format!(
                "  ws: {{ url: {}, send: {} }}",
                quote(&w.url.redacted()),
                quote(&w.send)
            )),
        }
        line(format!("  every: {}", fmt_duration(p.every)));
        line(format!("  match: {}", quote(&p.match_pointer)));
        line(format!("  timeout: {}", fmt_duration(p.timeout)));
    }
    if let Some(r) = &c.resume {
        line(match r {
            ResumeConfig::Send(send) => format!("resume: {{ send: {} }}", quote(send)),
            ResumeConfig::Query(name) => format!("resume: {{ query: {} }}", quote(name)),
        });
    }
    // The first line carries the list marker.
    out.replace_range(start..start + 4, "  - ");
}
