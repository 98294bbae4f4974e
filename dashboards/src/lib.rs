//! # wsmon-dashboards: the Grafana dashboards, generated
//!
//! `dashboards/*.json` are this crate's output, checked in so that users import them without
//! building anything. Each dashboard is a declarative list of rows and panels whose queries
//! name the metrics through [`wsmon_catalog`] and select them through one [`config::Config`]:
//! the data source and the `job`, `instance` and `route`/`canary` filters are written once, as
//! in the monitoring mixins' `_config`.
//!
//! ```
//! for (file, dashboard) in wsmon_dashboards::all() {
//!     assert!(file.ends_with(".json"));
//!     assert!(dashboard.to_json().contains("${datasource}"));
//! }
//! ```
//!
//! Regenerate the files after a change (the test fails until they match):
//!
//! ```text
//! WSMON_BLESS=1 cargo test -p wsmon-dashboards --test generated
//! ```
//!
//! Adding a row is one block in `src/server.rs` or `src/canaries.rs`: `.row(Row::new(title)
//! .line([panels…]))`, appended after the last row so that existing panel ids stay stable.

#![warn(missing_docs)]

mod canaries;
pub mod config;
pub mod dashboard;
pub mod panel;
pub mod promql;
mod server;
mod templating;

use dashboard::Dashboard;

/// Every dashboard with its file name in `dashboards/`, in file name order.
pub fn all() -> Vec<(&'static str, Dashboard)> {
    vec![
        ("websocket-canaries.json", canaries::dashboard()),
        ("websocket-server.json", server::dashboard()),
    ]
}
