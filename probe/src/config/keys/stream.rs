//! What is checked on the stream: `sequence`, `timestamp`, `heartbeat`, `head_check`,
//! `resume`, the fresh connections beside it, `connect_check`, and its replacement, `recycle`.

use super::super::parse::{DURATION, POINTER};
use super::super::schema::{field, flow, optional_field, Absent, Key, Section};
use super::super::types::*;
use super::super::units::{quote, show_duration, show_plain, show_quoted};
use super::super::yaml::Node;
use std::time::Duration;

pub(super) const SEQUENCE: Section<SequenceConfig> = Section {
    keys: &[
        field!(
            "pointer",
            Absent::Required(POINTER),
            pointer,
            pointer(),
            show_quoted
        ),
        Key {
            name: "reorder_window",
            absent: Absent::Keep,
            read: |cx, n, k, s| {
                let v = u32::try_from(cx.uint(n, k)?).ok().filter(|v| *v <= 10_000);
                s.reorder_window =
                    v.ok_or_else(|| cx.invalid(k, "an integer from 0 to 10000", n))?;
                Ok(())
            },
            show: |s| Some(s.reorder_window.to_string()),
        },
    ],
    one_of: &[],
    check: None,
};

pub(super) const TIMESTAMP: Section<TimestampConfig> = Section {
    keys: &[
        field!(
            "pointer",
            Absent::Required(POINTER),
            pointer,
            pointer(),
            show_quoted
        ),
        Key {
            name: "unit",
            absent: Absent::Keep,
            read: |cx, n, k, t| {
                t.unit = match cx.string(n, k)?.as_str() {
                    "s" => TimeUnit::Seconds,
                    "ms" => TimeUnit::Millis,
                    "us" => TimeUnit::Micros,
                    "ns" => TimeUnit::Nanos,
                    _ => return Err(cx.invalid(k, "one of s, ms, us, ns", n)),
                };
                Ok(())
            },
            show: |t| Some(t.unit.as_str().to_string()),
        },
    ],
    one_of: &[],
    check: None,
};

pub(super) const HEARTBEAT: Section<HeartbeatConfig> = Section {
    keys: &[
        field!(
            "every",
            Absent::Required(DURATION),
            every,
            duration(),
            show_duration
        ),
        field!(
            "timeout",
            Absent::Derive(|h| h.timeout = h.every),
            timeout,
            duration(),
            show_duration
        ),
    ],
    one_of: &[],
    check: None,
};

/// `connect_check` and `recycle`: every `every`.
pub(super) const EVERY: Section<EveryConfig> = Section {
    keys: &[field!(
        "every",
        Absent::Required(DURATION),
        every,
        duration(),
        show_duration
    )],
    one_of: &[],
    check: None,
};

/// Where [`EVERY`] starts before its keys are read.
pub(super) const EVERY_START: EveryConfig = EveryConfig {
    every: Duration::ZERO,
};

pub(super) const HEAD_CHECK: Section<HeadCheckConfig> = Section {
    keys: &[
        field!(
            "send",
            Absent::Required("the request message"),
            send,
            string(),
            show_quoted
        ),
        field!(
            "pointer",
            Absent::Required(POINTER),
            pointer,
            pointer(),
            show_quoted
        ),
        Key {
            name: "match",
            absent: Absent::Keep,
            read: |cx, n, k, h| {
                let start = MatchRule {
                    pointer: String::new(),
                    equals: String::new(),
                };
                h.reply = Some(cx.section(n, k, &MATCH, start)?);
                Ok(())
            },
            show: |h| h.reply.as_ref().map(|r| flow(&MATCH, r)),
        },
        field!(
            "every",
            Absent::Required(DURATION),
            every,
            duration(),
            show_duration
        ),
        field!(
            "timeout",
            Absent::Derive(|h| h.timeout = h.every),
            timeout,
            duration(),
            show_duration
        ),
        optional_field!("max_lag", max_lag, uint(), show_plain),
    ],
    one_of: &[],
    check: None,
};

const MATCH: Section<MatchRule> = Section {
    keys: &[
        field!(
            "pointer",
            Absent::Required(POINTER),
            pointer,
            pointer(),
            show_quoted
        ),
        Key {
            name: "equals",
            absent: Absent::Required("a string or number"),
            read: |cx, n, k, m| {
                m.equals = match n {
                    Node::Int(i) => i.to_string(),
                    Node::Bool(b) => b.to_string(),
                    _ => cx.string(n, k)?,
                };
                Ok(())
            },
            show: |m| Some(quote(&m.equals)),
        },
    ],
    one_of: &[],
    check: None,
};

pub(super) const RESUME: Section<ResumeConfig> = Section {
    keys: &[
        Key {
            name: "send",
            absent: Absent::Keep,
            read: |cx, n, k, r| {
                *r = ResumeConfig::Send(cx.template(n, k, "{{last_seq}}")?);
                Ok(())
            },
            show: |r| match r {
                ResumeConfig::Send(s) => Some(quote(s)),
                _ => None,
            },
        },
        Key {
            name: "query",
            absent: Absent::Keep,
            read: |cx, n, k, r| {
                let name = cx.string(n, k)?;
                // Unreserved characters only, so the name needs no escaping in any URL.
                let ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
                if !ok {
                    return Err(cx.invalid(k, "a query parameter name like from", n));
                }
                *r = ResumeConfig::Query(name);
                Ok(())
            },
            show: |r| match r {
                ResumeConfig::Query(q) => Some(quote(q)),
                _ => None,
            },
        },
    ],
    one_of: &["send", "query"],
    check: None,
};
