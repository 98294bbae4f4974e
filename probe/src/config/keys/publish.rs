//! `publish`: a nonce sent through the service's own publish path, by HTTP or WebSocket.

use super::super::parse::{unset_url, DURATION, POINTER};
use super::super::schema::{field, flow, Absent, Key, Section};
use super::super::types::*;
use super::super::units::{quote, show_duration, show_headers, show_quoted};

pub(super) const PUBLISH: Section<PublishConfig> = Section {
    keys: &[
        Key {
            name: "http",
            absent: Absent::Keep,
            read: |cx, n, k, p| {
                let start = HttpPublishConfig {
                    url: unset_url(),
                    method: "POST".into(),
                    body: String::new(),
                    headers: Vec::new(),
                };
                p.via = PublishVia::Http(cx.section(n, k, &HTTP_PUBLISH, start)?);
                Ok(())
            },
            show: |p| match &p.via {
                PublishVia::Http(h) => Some(flow(&HTTP_PUBLISH, h)),
                PublishVia::WebSocket(_) => None,
            },
        },
        Key {
            name: "ws",
            absent: Absent::Keep,
            read: |cx, n, k, p| {
                let start = WsPublishConfig {
                    url: unset_url(),
                    send: String::new(),
                };
                p.via = PublishVia::WebSocket(cx.section(n, k, &WS_PUBLISH, start)?);
                Ok(())
            },
            show: |p| match &p.via {
                PublishVia::WebSocket(w) => Some(flow(&WS_PUBLISH, w)),
                PublishVia::Http(_) => None,
            },
        },
        field!(
            "every",
            Absent::Required(DURATION),
            every,
            duration(),
            show_duration
        ),
        field!(
            "match",
            Absent::Required(POINTER),
            match_pointer,
            pointer(),
            show_quoted
        ),
        field!(
            "timeout",
            Absent::Derive(|p| p.timeout = p.every),
            timeout,
            duration(),
            show_duration
        ),
    ],
    one_of: &["http", "ws"],
    check: None,
};

const HTTP_PUBLISH: Section<HttpPublishConfig> = Section {
    keys: &[
        Key {
            name: "url",
            absent: Absent::Required("an http:// or https:// URL"),
            read: |cx, n, k, h| {
                h.url = cx.url(n, k, &["http", "https"])?;
                Ok(())
            },
            show: |h| Some(quote(&h.url.redacted())),
        },
        Key {
            name: "method",
            absent: Absent::Keep,
            read: |cx, n, k, h| {
                let m = cx.string(n, k)?.to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH"].contains(&m.as_str()) {
                    return Err(cx.invalid(k, "one of GET, POST, PUT, PATCH", n));
                }
                h.method = m;
                Ok(())
            },
            show: |h| Some(h.method.clone()),
        },
        field!("body", Absent::Keep, body, string(), show_quoted),
        Key {
            name: "headers",
            absent: Absent::Keep,
            read: |cx, n, k, h| {
                h.headers = cx.headers(n, k)?;
                Ok(())
            },
            show: |h| Some(show_headers(&h.headers)),
        },
    ],
    one_of: &[],
    check: Some(|cx, f, h| {
        let in_url = h.url.expose().as_str().contains("%7B%7Bnonce%7D%7D");
        if !h.body.contains("{{nonce}}") && !in_url {
            let (n, k) = f.get("body").unwrap_or((f.node, f.path.clone()));
            return Err(cx.invalid(&k, "a template containing {{nonce}}", n));
        }
        Ok(())
    }),
};

const WS_PUBLISH: Section<WsPublishConfig> = Section {
    keys: &[
        Key {
            name: "url",
            absent: Absent::Required("a ws:// or wss:// URL"),
            read: |cx, n, k, w| {
                w.url = cx.url(n, k, &["ws", "wss"])?;
                Ok(())
            },
            show: |w| Some(quote(&w.url.redacted())),
        },
        field!(
            "send",
            Absent::Required("a message template"),
            send,
            template("{{nonce}}"),
            show_quoted
        ),
    ],
    one_of: &[],
    check: None,
};
