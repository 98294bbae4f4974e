//! Recording and rendering: each canary's live record ([`recorder`]) and the series it holds
//! ([`series`]), the Prometheus families rendered from them at scrape time ([`metrics`]), and
//! each attempt's OpenTelemetry spans ([`trace`]).

pub mod metrics;
pub mod recorder;
pub mod series;
pub mod trace;
