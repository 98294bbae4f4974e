//! The resume rules, free of I/O: where a reconnect asks to continue, and what the first
//! telling message of a resumed connection says about it.
//!
//! A canary with `resume` reconnects with its last sequence `N`, in the URL
//! (`resume: { query: from }` dials `?from=N`, or `&from=N` when the URL has a query) or in
//! a message (`resume: { send: ... }`). The connection is then judged once, by its first data
//! message that is one of these (others, such as a subscription ack, are passed over):
//! - the sequence `N + 1`: a **hit**;
//! - `{"type":"resume_miss","from":N,"oldest":M}`: a **miss**. Messages `N+1 .. M-1` are
//!   lost (one gap of `M - N - 1`), and the stream continues from `M`;
//! - a snapshot (`{"type":"snapshot",…}`), or any other sequence: **failed**, the server did
//!   not honour the resume point (`resume_ignored`); the sequence rules then count the
//!   gap or duplicates;
//! - before any of these, a close 1013 with reason `resume unavailable`: **unavailable**, and
//!   the canary reconnects with the same `N`; any other end: **interrupted**.
//!
//! This is the wsmon-feed resume contract (`feed/src/resume.rs`). Only connections that were
//! upgraded count: a dial that fails never reached the server's resume logic.

use serde_json::Value;

use crate::measure::sequence_at;

/// How one resumed connection went; the bounded `outcome` label of
/// `websocket_canary_resumes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeOutcome {
    /// The stream continued at the next sequence.
    Hit,
    /// The server said part of what followed was no longer retained.
    Miss,
    /// The server could not read its history now (close 1013 `resume unavailable`).
    Unavailable,
    /// The server ignored the resume point: a snapshot, or another sequence.
    Failed,
    /// The connection ended before it showed where it continued.
    Interrupted,
}

impl ResumeOutcome {
    /// Every outcome, in documentation order.
    pub const ALL: &'static [ResumeOutcome] = &[
        ResumeOutcome::Hit,
        ResumeOutcome::Miss,
        ResumeOutcome::Unavailable,
        ResumeOutcome::Failed,
        ResumeOutcome::Interrupted,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResumeOutcome::Hit => "hit",
            ResumeOutcome::Miss => "miss",
            ResumeOutcome::Unavailable => "unavailable",
            ResumeOutcome::Failed => "failed",
            ResumeOutcome::Interrupted => "interrupted",
        }
    }
}

/// The close reason that, with 1013, says "retry with the same resume point".
pub const UNAVAILABLE_REASON: &str = "resume unavailable";

/// Whether a close before the first telling message means the resume was unavailable.
pub fn is_unavailable(code: u16, reason: &str) -> bool {
    code == wsmon::close_code::TRY_AGAIN_LATER && reason == UNAVAILABLE_REASON
}

/// `url` with `name=last` as its query parameter, replacing any `name` already there.
pub fn url_with(url: &url::Url, name: &str, last: u64) -> url::Url {
    let mut out = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    out.set_query(None);
    out.query_pairs_mut()
        .extend_pairs(kept)
        .append_pair(name, &last.to_string());
    out
}

/// What one message of a resumed connection says about the resume from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstMessage {
    /// Not telling (no sequence, not a miss or snapshot): keep waiting.
    Undecided,
    /// The next sequence: a hit.
    Next,
    /// A `resume_miss`: `lost` messages are gone and the stream continues at `oldest`.
    Miss { oldest: u64, lost: u64 },
    /// A snapshot instead of the replay; the message itself is no part of the sequence.
    Snapshot,
    /// A sequence other than the next one, or a `resume_miss` for another resume point.
    Elsewhere,
}

/// Judges `value`, a message of a connection resumed from `from`, whose sequence is at
/// `pointer`.
pub fn judge(value: &Value, pointer: &str, from: u64) -> FirstMessage {
    match value.get("type").and_then(Value::as_str) {
        Some("resume_miss") => {
            let field = |k: &str| value.get(k).and_then(Value::as_u64);
            return match (field("from"), field("oldest")) {
                (Some(f), Some(oldest)) if f == from => FirstMessage::Miss {
                    oldest,
                    lost: oldest.saturating_sub(from.saturating_add(1)),
                },
                _ => FirstMessage::Elsewhere,
            };
        }
        Some("snapshot") => return FirstMessage::Snapshot,
        _ => {}
    }
    match sequence_at(value, pointer) {
        Ok(Some(seq)) if from.checked_add(1) == Some(seq) => FirstMessage::Next,
        Ok(Some(_)) => FirstMessage::Elsewhere,
        _ => FirstMessage::Undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn the_resume_point_is_added_to_the_query_or_replaces_its_own_parameter() {
        let u = url_with(&url("ws://h/ws"), "from", 41);
        assert_eq!(u.as_str(), "ws://h/ws?from=41");
        let u = url_with(&url("ws://h/ws?topic=a&from=3"), "from", 41);
        assert_eq!(u.as_str(), "ws://h/ws?topic=a&from=41");
        let u = url_with(&url("wss://u:p@h:9/ws?token=x"), "after", 7);
        assert_eq!(u.as_str(), "wss://u:p@h:9/ws?token=x&after=7");
    }

    #[test]
    fn the_next_sequence_is_a_hit_and_any_other_is_elsewhere() {
        assert_eq!(judge(&json!({"seq": 11}), "/seq", 10), FirstMessage::Next);
        assert_eq!(
            judge(&json!({"seq": 10}), "/seq", 10),
            FirstMessage::Elsewhere
        );
        assert_eq!(
            judge(&json!({"seq": 15}), "/seq", 10),
            FirstMessage::Elsewhere
        );
        assert_eq!(
            judge(&json!({"seq": 0}), "/seq", u64::MAX),
            FirstMessage::Elsewhere
        );
    }

    #[test]
    fn a_resume_miss_counts_what_lies_between_the_point_and_the_oldest() {
        let miss = json!({"type": "resume_miss", "from": 10, "oldest": 42});
        assert_eq!(
            judge(&miss, "/seq", 10),
            FirstMessage::Miss {
                oldest: 42,
                lost: 31
            }
        );
        // A point past the server's head: nothing is lost, the stream goes on from its head.
        let ahead = json!({"type": "resume_miss", "from": 10, "oldest": 5});
        assert_eq!(
            judge(&ahead, "/seq", 10),
            FirstMessage::Miss { oldest: 5, lost: 0 }
        );
        let other = json!({"type": "resume_miss", "from": 9, "oldest": 42});
        assert_eq!(judge(&other, "/seq", 10), FirstMessage::Elsewhere);
    }

    #[test]
    fn a_snapshot_fails_the_resume_and_untelling_messages_wait() {
        let snapshot = json!({"type": "snapshot", "seq": 11});
        assert_eq!(judge(&snapshot, "/seq", 10), FirstMessage::Snapshot);
        assert_eq!(
            judge(&json!({"type": "ack"}), "/seq", 10),
            FirstMessage::Undecided
        );
        assert_eq!(
            judge(&json!({"seq": "x"}), "/seq", 10),
            FirstMessage::Undecided
        );
    }

    #[test]
    fn the_outcomes_are_the_catalog_label_values() {
        let ours: Vec<&str> = ResumeOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(ours, wsmon_catalog::canary::CANARY_RESUME_OUTCOMES);
    }

    #[test]
    fn only_1013_with_its_reason_means_unavailable() {
        assert!(is_unavailable(1013, "resume unavailable"));
        assert!(!is_unavailable(1013, "overloaded"));
        assert!(!is_unavailable(1011, "resume unavailable"));
    }
}
