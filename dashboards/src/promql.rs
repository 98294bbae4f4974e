//! The PromQL of the panels, built from catalog definitions under the dashboard's selector.
//!
//! Only the shapes the dashboards use: a selection, `rate`/`increase` over the panel interval,
//! `sum`/`max` by labels and quantiles of summed bucket rates. Recording rules and thresholds
//! come from `alerts/` by name; the vocabulary test checks those names against the rule files.

use std::fmt;

use wsmon_catalog::{Kind, MetricDef};

use crate::config::Config;

/// Name of the Prometheus label of histogram bucket boundaries.
pub const LE: &str = "le";

/// A series selection: a name and its matchers, rendered `name{m1, m2}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    name: String,
    matchers: Vec<String>,
}

impl Selection {
    /// Adds an equality matcher `label="value"`.
    pub fn with(mut self, label: &str, value: &str) -> Self {
        self.matchers.push(format!("{label}=\"{value}\""));
        self
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.matchers.is_empty() {
            return f.write_str(&self.name);
        }
        write!(f, "{}{{{}}}", self.name, self.matchers.join(", "))
    }
}

/// Builds the queries of one dashboard from its [`Config`].
///
/// ```
/// use wsmon_dashboards::{config::Config, promql::{sum, Queries}};
///
/// let cfg = Config::server();
/// let q = Queries::new(&cfg);
/// let opened = sum(&["route"], q.rate(q.series(wsmon_catalog::UPGRADES_TOTAL).with("outcome", "accepted")));
/// assert_eq!(
///     opened,
///     r#"sum by (route) (rate(websocket_server_upgrades_total{job=~"$job", instance=~"$instance", route=~"$route", outcome="accepted"}[$__rate_interval]))"#
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Queries<'c> {
    cfg: &'c Config,
}

impl<'c> Queries<'c> {
    /// Queries under `cfg`'s selector.
    pub fn new(cfg: &'c Config) -> Self {
        Self { cfg }
    }

    /// The dashboard's scope label (`route` or `canary`).
    pub fn scope(&self) -> &'static str {
        self.cfg.scope()
    }

    /// A counter or gauge of the catalog under the dashboard's filters.
    ///
    /// # Panics
    /// On a histogram, whose series are its buckets: use [`Queries::quantile`].
    pub fn series(&self, metric: &MetricDef) -> Selection {
        assert!(
            metric.kind != Kind::Histogram,
            "{} is a histogram: select its quantiles",
            metric.name
        );
        self.named(metric.name)
    }

    /// A recording rule of `alerts/` under the dashboard's filters.
    pub fn recorded(&self, rule: &str) -> Selection {
        self.named(rule)
    }

    fn named(&self, name: &str) -> Selection {
        let selector = self.cfg.selector();
        Selection {
            name: name.to_string(),
            matchers: if selector.is_empty() {
                Vec::new()
            } else {
                vec![selector]
            },
        }
    }

    /// `rate(s[interval])` over the panel's rate interval.
    pub fn rate(&self, s: Selection) -> String {
        format!("rate({s}[{}])", self.cfg.rate_interval)
    }

    /// `increase(s[interval])` over the panel's rate interval.
    pub fn increase(&self, s: Selection) -> String {
        self.increase_over(s, self.cfg.rate_interval)
    }

    /// `increase(s[range])` over a fixed range, for panels that show what an alert counts.
    pub fn increase_over(&self, s: Selection, range: &str) -> String {
        format!("increase({s}[{range}])")
    }

    /// `histogram_quantile(phi, sum by (le, by…) (rate(metric_bucket{…}[interval])))`.
    ///
    /// # Panics
    /// When `metric` is not a histogram.
    pub fn quantile(&self, phi: f64, by: &[&str], metric: &MetricDef) -> String {
        assert!(
            metric.kind == Kind::Histogram,
            "{} has no buckets",
            metric.name
        );
        let buckets = self.named(&format!("{}_bucket", metric.name));
        let by: Vec<&str> = std::iter::once(LE).chain(by.iter().copied()).collect();
        format!(
            "histogram_quantile({phi}, {})",
            sum(&by, self.rate(buckets))
        )
    }

    /// One quantile query per `phi`, by the scope, with legends `p50 {{route}}`, ….
    pub fn quantiles(&self, metric: &MetricDef, phis: &[f64]) -> Vec<(String, String)> {
        phis.iter()
            .map(|&phi| {
                // Rounded to a tenth: 0.9 * 100.0 is 90.00000000000001.
                let percent = (phi * 1000.0).round() / 10.0;
                let legend = format!("p{percent} {}", legend_of(&[self.scope()]));
                (self.quantile(phi, &[self.scope()], metric), legend)
            })
            .collect()
    }

    /// `prefix {{scope}}`: a legend naming the series of one route or canary.
    pub fn legend(&self, prefix: &str) -> String {
        let scope = legend_of(&[self.scope()]);
        if prefix.is_empty() {
            scope
        } else {
            format!("{prefix} {scope}")
        }
    }
}

/// `{{a}} {{b}}`: the legend template that shows `labels`.
pub fn legend_of(labels: &[&str]) -> String {
    labels
        .iter()
        .map(|l| format!("{{{{{l}}}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn aggregate(op: &str, by: &[&str], inner: impl fmt::Display) -> String {
    if by.is_empty() {
        format!("{op} ({inner})")
    } else {
        format!("{op} by ({}) ({inner})", by.join(", "))
    }
}

/// `sum by (by…) (inner)`, or `sum (inner)` without labels.
pub fn sum(by: &[&str], inner: impl fmt::Display) -> String {
    aggregate("sum", by, inner)
}

/// `max by (by…) (inner)`: for gauges and recorded ratios, where summing instances is wrong.
pub fn max(by: &[&str], inner: impl fmt::Display) -> String {
    aggregate("max", by, inner)
}

/// The constant series of a threshold in `alerts/thresholds.rules.yml`.
pub fn threshold(name: &str) -> String {
    format!("wsmon:threshold:{name}")
}

/// `lhs / on () group_left () rhs`: each series of `lhs` over the single series `rhs`.
pub fn over_one(lhs: impl fmt::Display, rhs: impl fmt::Display) -> String {
    format!("{lhs} / on () group_left () {rhs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_sum_bucket_rates_by_le_and_the_scope() {
        let cfg = Config::canaries();
        let q = Queries::new(&cfg);
        let [(expr, legend)] = q
            .quantiles(wsmon_catalog::CANARY_E2E_SECONDS, &[0.99])
            .try_into()
            .unwrap();
        assert_eq!(
            expr,
            "histogram_quantile(0.99, sum by (le, canary) (rate(websocket_canary_e2e_seconds_bucket\
             {job=~\"$job\", instance=~\"$instance\", canary=~\"$canary\"}[$__rate_interval])))"
        );
        assert_eq!(legend, "p99 {{canary}}");
    }

    #[test]
    #[should_panic(expected = "is a histogram")]
    fn a_histogram_is_never_selected_raw() {
        let cfg = Config::server();
        Queries::new(&cfg).series(wsmon_catalog::PING_RTT_SECONDS);
    }
}
