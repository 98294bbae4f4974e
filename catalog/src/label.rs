//! Label names, shared by every recorder so that a typo cannot create a second spelling.

/// Route template of the upgrade (server families).
pub const ROUTE: &str = "route";
/// `accepted` or `rejected` (upgrades); a resume's outcome (`hit`, `miss`, …).
pub const OUTCOME: &str = "outcome";
/// HTTP status of the upgrade response.
pub const STATUS_CODE: &str = "status_code";
/// `receive` or `transmit`.
pub const DIRECTION: &str = "direction";
/// `text`, `binary`, `ping`, `pong` or `close`.
pub const FRAME_TYPE: &str = "frame_type";
/// Who closed: `client`, `server` or `none`.
pub const INITIATOR: &str = "initiator";
/// Close code, classified to a bounded set.
pub const CLOSE_CODE: &str = "close_code";
/// What an outbound overflow did: `drop` or `disconnect`.
pub const ACTION: &str = "action";
/// The canary's configured name (prober families).
pub const CANARY: &str = "canary";
/// Connect phase: `dns`, `tcp`, `tls` or `upgrade`.
pub const PHASE: &str = "phase";
/// The prober's `failure_reason`.
pub const REASON: &str = "reason";
