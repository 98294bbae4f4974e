//! The canary list, one canary's keys, and how it connects (`tls`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::parse::{join, unset_url, ConfigError, Cx};
use super::super::schema::{block, field, flow, optional_field, Absent, Key, Section};
use super::super::types::*;
use super::super::units::{
    quote, show_duration, show_headers, show_plain, show_quoted, show_strings,
};
use super::super::yaml::Node;
use super::backoff::BACKOFF;
use super::publish::PUBLISH;
use super::stream::{EVERY, EVERY_START, HEAD_CHECK, HEARTBEAT, RESUME, SEQUENCE, TIMESTAMP};

pub(super) fn canaries(
    cx: &Cx<'_>,
    node: &Node,
    key: &str,
    defaults: &Defaults,
) -> Result<Vec<CanaryConfig>, ConfigError> {
    let Node::Seq(items) = node else {
        return Err(cx.invalid(key, "a list of canaries", node));
    };
    if items.is_empty() {
        return Err(cx.invalid(key, "at least one canary", node));
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{key}[{i}]");
        let start = CanaryConfig::new("", unset_url(), defaults);
        let c = cx.section(item, &path, &CANARY, start)?;
        if !names.insert(c.name.clone()) {
            let (n, k) = cx.fields(item, &path, &CANARY)?.get("name").expect("read");
            return Err(cx.invalid(&k, "a name not used by another canary", n));
        }
        out.push(c);
    }
    Ok(out)
}

pub(super) const CANARY: Section<CanaryConfig> = Section {
    keys: &[
        Key {
            name: "name",
            absent: Absent::Required("a canary name"),
            read: |cx, n, k, c| {
                let s = cx.string(n, k)?;
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(cx.invalid(k, "1-64 characters of [A-Za-z0-9_.-]", n));
                }
                c.name = s;
                Ok(())
            },
            show: |c| Some(quote(&c.name)),
        },
        Key {
            name: "url",
            absent: Absent::Required("a ws:// or wss:// URL"),
            read: |cx, n, k, c| {
                c.url = cx.url(n, k, &["ws", "wss"])?;
                Ok(())
            },
            show: |c| Some(quote(&c.url.redacted())),
        },
        Key {
            name: "headers",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                // Added to `defaults.headers`, replacing those of the same name.
                let own = cx.headers(n, k)?;
                c.headers
                    .retain(|(d, _)| !own.iter().any(|(o, _)| o.eq_ignore_ascii_case(d)));
                c.headers.extend(own);
                Ok(())
            },
            show: |c| (!c.headers.is_empty()).then(|| show_headers(&c.headers)),
        },
        optional_field!("origin", origin, string(), show_quoted),
        field!(
            "subprotocols",
            Absent::Keep,
            subprotocols,
            strings(),
            show_strings
        ),
        field!("on_open", Absent::Keep, on_open, strings(), show_strings),
        field!(
            "connect_timeout",
            Absent::Keep,
            connect_timeout,
            duration(),
            show_duration
        ),
        field!(
            "first_payload_within",
            Absent::Keep,
            first_payload_within,
            duration(),
            show_duration
        ),
        field!(
            "max_message_bytes",
            Absent::Keep,
            max_message_bytes,
            size(),
            show_plain
        ),
        Key {
            name: "max_message_rate",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let rate = u32::try_from(cx.uint(n, k)?).ok().filter(|v| *v > 0);
                let rate = rate
                    .ok_or_else(|| cx.invalid(k, "messages per second, from 1 to 4294967295", n))?;
                c.max_message_rate = Some(rate);
                Ok(())
            },
            show: |c| c.max_message_rate.map(|r| r.to_string()),
        },
        Key {
            name: "backoff",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                c.backoff = cx.section(n, k, &BACKOFF, c.backoff)?;
                Ok(())
            },
            show: |c| Some(flow(&BACKOFF, &c.backoff)),
        },
        Key {
            name: "tls",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                c.tls = cx.section(n, k, &TLS, TlsConfig::default())?;
                Ok(())
            },
            show: |c| (c.tls != TlsConfig::default()).then(|| flow(&TLS, &c.tls)),
        },
        Key {
            name: "sequence",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let start = SequenceConfig {
                    pointer: String::new(),
                    reorder_window: 4,
                };
                c.sequence = Some(cx.section(n, k, &SEQUENCE, start)?);
                Ok(())
            },
            show: |c| c.sequence.as_ref().map(|s| flow(&SEQUENCE, s)),
        },
        Key {
            name: "timestamp",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let start = TimestampConfig {
                    pointer: String::new(),
                    unit: TimeUnit::Millis,
                };
                c.timestamp = Some(cx.section(n, k, &TIMESTAMP, start)?);
                Ok(())
            },
            show: |c| c.timestamp.as_ref().map(|t| flow(&TIMESTAMP, t)),
        },
        optional_field!("max_silence", max_silence, duration(), show_duration),
        Key {
            name: "heartbeat",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let start = HeartbeatConfig {
                    every: Duration::ZERO,
                    timeout: Duration::ZERO,
                };
                c.heartbeat = Some(cx.section(n, k, &HEARTBEAT, start)?);
                Ok(())
            },
            show: |c| c.heartbeat.as_ref().map(|h| flow(&HEARTBEAT, h)),
        },
        Key {
            name: "head_check",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let start = HeadCheckConfig {
                    send: String::new(),
                    pointer: String::new(),
                    reply: None,
                    every: Duration::ZERO,
                    timeout: Duration::ZERO,
                    max_lag: None,
                };
                c.head_check = Some(Box::new(cx.section(n, k, &HEAD_CHECK, start)?));
                Ok(())
            },
            show: |c| c.head_check.as_deref().map(|h| flow(&HEAD_CHECK, h)),
        },
        Key {
            name: "publish",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let start = PublishConfig {
                    via: PublishVia::WebSocket(WsPublishConfig {
                        url: unset_url(),
                        send: String::new(),
                    }),
                    every: Duration::ZERO,
                    match_pointer: String::new(),
                    timeout: Duration::ZERO,
                };
                c.publish = Some(Box::new(cx.section(n, k, &PUBLISH, start)?));
                Ok(())
            },
            show: |c| {
                let p = c.publish.as_deref()?;
                Some(format!("\n{}", block(&PUBLISH, p, 6)))
            },
        },
        Key {
            name: "resume",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                let start = ResumeConfig::Send(String::new());
                c.resume = Some(cx.section(n, k, &RESUME, start)?);
                Ok(())
            },
            show: |c| c.resume.as_ref().map(|r| flow(&RESUME, r)),
        },
        Key {
            name: "connect_check",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                c.connect_check = Some(cx.section(n, k, &EVERY, EVERY_START)?);
                Ok(())
            },
            show: |c| c.connect_check.as_ref().map(|e| flow(&EVERY, e)),
        },
        Key {
            name: "recycle",
            absent: Absent::Keep,
            read: |cx, n, k, c| {
                c.recycle = Some(cx.section(n, k, &EVERY, EVERY_START)?);
                Ok(())
            },
            show: |c| c.recycle.as_ref().map(|e| flow(&EVERY, e)),
        },
    ],
    one_of: &[],
    check: Some(|cx, f, c| {
        for (key, needs_sequence) in [
            ("resume", c.resume.is_some()),
            ("head_check", c.head_check.is_some()),
        ] {
            if needs_sequence && c.sequence.is_none() {
                return Err(cx.missing(
                    &join(&f.path, "sequence"),
                    &format!("a sequence pointer, which {key} needs"),
                ));
            }
        }
        Ok(())
    }),
};

const TLS: Section<TlsConfig> = Section {
    keys: &[
        Key {
            name: "ca_file",
            absent: Absent::Keep,
            read: |cx, n, k, t| {
                let p = PathBuf::from(cx.string(n, k)?);
                // Relative paths are relative to the config file, as a reader of the file expects.
                let p = if p.is_relative() {
                    cx.file.parent().unwrap_or(Path::new(".")).join(p)
                } else {
                    p
                };
                if !p.is_file() {
                    return Err(cx.invalid(k, "a readable PEM file", n));
                }
                t.ca_file = Some(p);
                Ok(())
            },
            show: |t| {
                let ca = t.ca_file.as_ref();
                Some(ca.map_or("null".to_string(), |p| quote(&p.display().to_string())))
            },
        },
        field!(
            "insecure_skip_verify",
            Absent::Keep,
            insecure_skip_verify,
            boolean(),
            show_plain
        ),
    ],
    one_of: &[],
    check: None,
};
