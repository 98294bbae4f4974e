//! Recycling (`recycle: { every }`): the held stream replaced make-before-break.
//!
//! A stream held for days proves little about the path a new client takes today: it stays on
//! the instance, the proxy worker and the route it first got. Every `every` (±10%) the daemon
//! opens a new connection beside the held one and waits for its first data message; only then
//! does the new one take over and the old one close with 1000. A recycle that fails keeps the
//! old stream, so it never costs the canary its stream. This module opens the replacement;
//! [`crate::canary::session`] hands over to it.
//!
//! The handover keeps the sequence exact: the old stream is read until it has delivered the
//! new one's first sequence, and the new one's messages up to the last sequence seen are
//! skipped as the overlap, not counted as duplicates. With `resume`, the new connection asks
//! to resume from the last sequence, so the server replays what lies between.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::canary::dial::connect_to;
use crate::canary::io::{send, Socket};
use crate::config::{CanaryConfig, ResumeConfig};
use crate::failure::FailureReason;
use crate::measure::{self, Fault, Retention};
use crate::record::recorder::CanaryRecorder;
use crate::resume;

/// A new connection that delivered its first data message, ready to take over. Boxed where
/// it is returned: inline, the socket would be part of every held canary's task.
pub(crate) struct Replacement {
    pub ws: Socket,
    /// Its first data message, not yet measured.
    pub first: Message,
    /// The sequence that message carries, with `sequence`.
    pub first_seq: Option<u64>,
}

/// The delay before the next recycle: `every` ±10%, so canaries do not recycle together.
pub(crate) fn next_delay(every: Duration) -> Duration {
    every.mul_f64(rand::rng().random_range(0.9..1.1))
}

/// Opens the replacement for canary `cfg`, resuming from `resume_from` with `resume`.
///
/// With `sequence`, the first data message that carries one counts as the first payload (a
/// `resume_miss` notice or a message without a sequence cannot anchor the handover).
pub(crate) async fn open_replacement(
    cfg: &CanaryConfig,
    resume_from: Option<u64>,
) -> Result<Box<Replacement>, Fault> {
    // A scratch record: the new connection's phases and faults are not the held stream's.
    let scratch = CanaryRecorder::new(&cfg.name, cfg.url.redacted(), Retention::WholeRun);
    let resume_from = cfg.resume.as_ref().and(resume_from);
    let url = match (&cfg.resume, resume_from) {
        (Some(ResumeConfig::Query(name)), Some(last)) => {
            resume::url_with(cfg.url.expose(), name, last)
        }
        _ => cfg.url.expose().clone(),
    };
    let mut ws = Box::pin(connect_to(cfg, &url, &scratch)).await?;
    let upgraded = Instant::now();
    let write_limit = cfg.connect_timeout;
    for text in &cfg.on_open {
        send(&mut ws, Message::text(text.clone()), write_limit).await?;
    }
    if let (Some(ResumeConfig::Send(template)), Some(last)) = (&cfg.resume, resume_from) {
        let text = template.replace("{{last_seq}}", &last.to_string());
        send(&mut ws, Message::text(text), write_limit).await?;
    }
    let deadline = upgraded + cfg.first_payload_within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match timeout(left, ws.next()).await {
            Ok(frame) => frame,
            Err(_) => {
                return Err(Fault::new(
                    FailureReason::FirstPayloadTimeout,
                    format!(
                        "the new connection sent no data message within {:?} of the upgrade",
                        cfg.first_payload_within
                    ),
                ))
            }
        };
        let msg = match frame {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                return Err(Fault::new(
                    FailureReason::Closed,
                    format!("the new connection failed: {e}"),
                ))
            }
            None => {
                return Err(Fault::new(
                    FailureReason::Closed,
                    "the new connection ended without a close frame (1006)",
                ))
            }
        };
        let text = match &msg {
            Message::Text(t) => t.as_str(),
            Message::Binary(b) => std::str::from_utf8(b).unwrap_or(""),
            Message::Close(frame) => {
                let code = frame
                    .as_ref()
                    .map_or(wsmon::close_code::NO_STATUS, |f| u16::from(f.code));
                return Err(Fault::new(
                    FailureReason::for_close_code(code),
                    format!("the new connection was closed with {code} before its first payload"),
                ));
            }
            _ => continue,
        };
        let Some(seq_cfg) = &cfg.sequence else {
            return Ok(Box::new(Replacement {
                ws,
                first: msg,
                first_seq: None,
            }));
        };
        let seq = measure::parse_json(text)
            .ok()
            .and_then(|v| measure::sequence_at(&v, &seq_cfg.pointer).ok().flatten());
        if let Some(seq) = seq {
            return Ok(Box::new(Replacement {
                ws,
                first: msg,
                first_seq: Some(seq),
            }));
        }
    }
}
