//! Recording and rendering: each canary's live record ([`recorder`]), the series it holds
//! ([`series`]) and its 24-hour history for `/status` ([`history`]), the Prometheus families rendered from them at scrape time ([`metrics`]), and
//! each attempt's OpenTelemetry spans ([`trace`]).

pub mod history;
pub mod metrics;
pub mod recorder;
pub mod series;
pub mod trace;
