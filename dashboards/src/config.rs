//! What every panel and query of one dashboard shares, defined once: the data source and the
//! label filters (the `_config` of the monitoring mixins).

use wsmon_catalog::{canary, label, server, MetricDef};

/// The target label Prometheus gives every scraped series: the scrape job.
pub const JOB: &str = "job";
/// The target label Prometheus gives every scraped series: the scraped address.
pub const INSTANCE: &str = "instance";
/// The target label the operator gives both the prober's and the server's scrape jobs, so
/// that the two views of the same canaries can be set side by side (alerts/recording.rules.yml).
pub const SERVICE: &str = "service";

/// One label the dashboard filters on, with the multi-value template variable of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// The label, and the variable's name.
    pub label: &'static str,
    /// The variable's label in Grafana's variable bar.
    pub title: &'static str,
}

/// The data source and selectors of one dashboard.
///
/// ```
/// let cfg = wsmon_dashboards::config::Config::server();
/// assert_eq!(cfg.selector(), r#"job=~"$job", instance=~"$instance", route=~"$route""#);
/// assert_eq!(cfg.scope(), "route");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The import input (`__inputs`) that Grafana asks for: the Prometheus data source.
    pub datasource_input: &'static str,
    /// The template variable that holds the data source; every panel and query uses it.
    pub datasource_variable: &'static str,
    /// The labels the dashboard filters on, outermost first; each variable lists the values
    /// left by the ones before it. The last one is the dashboard's scope: `route` or `canary`.
    pub filters: Vec<Filter>,
    /// The series whose label values fill the filter variables: one that every scope has.
    pub filter_source: &'static MetricDef,
    /// The range of `rate()` and `increase()` in panels.
    pub rate_interval: &'static str,
}

impl Config {
    fn scoped(scope: Filter, filter_source: &'static MetricDef) -> Self {
        Self {
            datasource_input: "DS_PROMETHEUS",
            datasource_variable: "datasource",
            filters: vec![
                Filter {
                    label: JOB,
                    title: "Job",
                },
                Filter {
                    label: INSTANCE,
                    title: "Instance",
                },
                scope,
            ],
            filter_source,
            rate_interval: "$__rate_interval",
        }
    }

    /// The server dashboard: job, instance and route, listed from the active-connections gauge
    /// (present for every route from its first upgrade).
    pub fn server() -> Self {
        Self::scoped(
            Filter {
                label: label::ROUTE,
                title: "Route",
            },
            server::ACTIVE_CONNECTIONS,
        )
    }

    /// The canary dashboard: job, instance and canary, listed from `websocket_canary_up`
    /// (present for every configured canary from the start).
    pub fn canaries() -> Self {
        Self::scoped(
            Filter {
                label: label::CANARY,
                title: "Canary",
            },
            canary::CANARY_UP,
        )
    }

    /// The same data source without filters: for the series of the other side (the server's
    /// families on the canary dashboard), whose job, instance and scope labels the dashboard's
    /// variables do not list, and for the per-`service` recording rules, which keep no other
    /// label.
    ///
    /// ```
    /// let cfg = wsmon_dashboards::config::Config::canaries().unfiltered();
    /// assert_eq!(cfg.selector(), "");
    /// ```
    pub fn unfiltered(&self) -> Self {
        Self {
            filters: Vec::new(),
            ..self.clone()
        }
    }

    /// The matchers of every filter: `job=~"$job", instance=~"$instance", route=~"$route"`.
    pub fn selector(&self) -> String {
        self.selector_of(&self.filters)
    }

    /// The matchers of `filters`, each against its variable.
    pub fn selector_of(&self, filters: &[Filter]) -> String {
        filters
            .iter()
            .map(|f| format!("{}=~\"${}\"", f.label, f.label))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The label below instances that the dashboard is about: `route` or `canary`.
    pub fn scope(&self) -> &'static str {
        self.filters.last().map_or("", |f| f.label)
    }

    /// The data source reference of panels and queries: the variable, never a fixed uid.
    pub fn datasource_uid(&self) -> String {
        format!("${{{}}}", self.datasource_variable)
    }
}
