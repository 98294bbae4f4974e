//! # wsmon-tests: the monitoring bundle is code too
//!
//! Checks that keep `dashboards/`, `alerts/` and `runbook/` honest against the metric
//! vocabulary in [`wsmon_catalog`], and the helpers of the live scenario that runs them
//! against a real Prometheus.
//!
//! ```no_run
//! let rules = wsmon_tests::rules::load_all(&wsmon_tests::repo::alerts_dir()).unwrap();
//! let vocabulary = wsmon_tests::vocabulary::Vocabulary::from_catalog(&rules).unwrap();
//! for rule in rules.iter().flat_map(|f| f.rules()) {
//!     let expr = wsmon_tests::promql::parse(&rule.expr).unwrap();
//!     assert!(vocabulary.check(&expr).is_empty());
//! }
//! ```

pub mod dashboard;
pub mod duration;
pub mod promql;
pub mod repo;
pub mod rules;
pub mod vocabulary;
pub mod yaml;
