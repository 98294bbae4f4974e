//! The dashboards import cleanly and follow the bundle's conventions.

use wsmon_tests::dashboard::Dashboard;
use wsmon_tests::{promql, repo};

fn dashboards() -> Vec<Dashboard> {
    let d = Dashboard::load_all(&repo::dashboards_dir()).unwrap();
    let names: Vec<String> = d.iter().map(|d| d.file_name()).collect();
    assert_eq!(names, ["websocket-canaries.json", "websocket-server.json"]);
    d
}

#[test]
fn dashboards_declare_the_prometheus_input_and_a_stable_uid() {
    let mut uids = Vec::new();
    for d in dashboards() {
        let f = d.file_name();
        let inputs = d.json["__inputs"]
            .as_array()
            .unwrap_or_else(|| panic!("{f}: no __inputs"));
        assert!(
            inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
                && i["pluginId"] == "prometheus"
                && i["type"] == "datasource"),
            "{f}: __inputs lacks DS_PROMETHEUS"
        );
        let uid = d.json["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{f}: no uid"));
        assert!(
            uid.starts_with("wsmon-") && uid.len() <= 40,
            "{f}: uid {uid:?}"
        );
        assert!(
            d.json["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{f}: title"
        );
        // Grafana refuses an import whose panel ids collide.
        let mut ids: Vec<i64> = d.json["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{f}: duplicate panel ids");
        uids.push(uid.to_string());
    }
    uids.dedup();
    assert_eq!(uids.len(), 2, "uids must differ");
}

#[test]
fn dashboards_have_datasource_job_instance_and_route_or_canary_variables() {
    for d in dashboards() {
        let f = d.file_name();
        let vars = d.variables();
        let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        let scope = if f.contains("canar") {
            "canary"
        } else {
            "route"
        };
        assert_eq!(names, ["datasource", "job", "instance", scope], "{f}");
        assert_eq!(
            vars[0].1, "datasource",
            "{f}: the first variable picks the data source"
        );
        assert_eq!(
            d.json["templating"]["list"][0]["query"], "prometheus",
            "{f}"
        );
        // Every panel and query uses the variable, not a fixed data source.
        for p in d.panels() {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{f}: panel {}",
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{f}: panel {}",
                    p["title"]
                );
            }
        }
        // Every selection of a wsmon metric is filtered by the dashboard's variables. The one
        // exception: the canary dashboard's "Canary view vs server view" row selects the
        // server's side of the canaries and the per-service rules, whose labels the canary
        // variables do not list (config::Config::unfiltered).
        let mut unfiltered = 0;
        for q in d.queries() {
            let expr = promql::parse(&promql::expand_grafana_macros(&q.expr, "5m"))
                .unwrap_or_else(|e| panic!("{f}: panel {:?}: {e}", q.panel));
            promql::walk(&expr, &mut |e| {
                let vs = match e {
                    promql_parser::parser::Expr::VectorSelector(vs) => vs,
                    promql_parser::parser::Expr::MatrixSelector(m) => &m.vs,
                    _ => return,
                };
                let name = vs.name.as_deref().unwrap_or("");
                if name.starts_with("wsmon:threshold:") {
                    return;
                }
                let rendered = vs.to_string();
                let vars = ["$job", "$instance", &format!("${scope}")];
                if vars.iter().all(|v| rendered.contains(v)) {
                    return;
                }
                let server_side =
                    name.starts_with("websocket_server_canary_") || name.starts_with("service:");
                assert!(
                    scope == "canary" && server_side && !rendered.contains('$'),
                    "{f}: panel {:?} query {} ignores the variables: {rendered}",
                    q.panel,
                    q.ref_id,
                );
                unfiltered += 1;
            });
        }
        if scope == "canary" {
            assert!(
                unfiltered >= 6,
                "{f}: the server's side is missing: {unfiltered}"
            );
        } else {
            assert_eq!(unfiltered, 0, "{f}");
        }
    }
}

#[test]
fn every_panel_states_a_unit() {
    for d in dashboards() {
        let panels = d.panels();
        assert!(
            panels.len() >= 15,
            "{}: {} panels",
            d.file_name(),
            panels.len()
        );
        for p in panels {
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(
                !unit.is_empty() && unit != "none",
                "{}: panel {} has no unit",
                d.file_name(),
                p["title"]
            );
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{}: panel {} has no query",
                d.file_name(),
                p["title"]
            );
        }
    }
}

#[test]
fn histograms_use_quantiles_of_summed_bucket_rates_by_le() {
    let mut quantiles = 0;
    for d in dashboards() {
        for q in d.queries() {
            let expr = promql::parse(&promql::expand_grafana_macros(&q.expr, "5m")).unwrap();
            quantiles += q.expr.matches("histogram_quantile").count();
            let bad = promql::badly_shaped_histogram_quantiles(&expr);
            assert!(
                bad.is_empty(),
                "{}: panel {:?}: {bad:?}",
                d.file_name(),
                q.panel
            );
            assert!(
                !q.expr.contains("_bucket") || q.expr.contains("histogram_quantile"),
                "{}: panel {:?} shows raw buckets",
                d.file_name(),
                q.panel
            );
        }
    }
    assert!(quantiles >= 15, "only {quantiles} histogram_quantile calls");
}

#[test]
fn the_server_dashboard_has_the_five_panels_plus_heartbeats_and_resumes() {
    let d = dashboards()
        .into_iter()
        .find(|d| d.file_name() == "websocket-server.json")
        .unwrap();
    let rows: Vec<String> = d.json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap().to_string())
        .collect();
    for (i, topic) in [
        "Connections",
        "Upgrades",
        "Closes",
        "First payload",
        "Backpressure",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("{}. {topic}", i + 1))),
            "no row {}. {topic}: {rows:?}",
            i + 1
        );
    }
    assert_shows_every_metric(&d, wsmon::catalog::SERVER_METRICS);
    assert!(
        rows.iter().any(|r| r == "Resume and replay"),
        "no resume row: {rows:?}"
    );
    assert_shows_every_metric(&d, wsmon::catalog::RESUME_METRICS);
}

#[test]
fn the_canary_dashboard_shows_every_canary_metric() {
    let d = dashboards()
        .into_iter()
        .find(|d| d.file_name() == "websocket-canaries.json")
        .unwrap();
    let exprs = assert_shows_every_metric(&d, wsmon_catalog::CANARY_METRICS);
    assert!(
        exprs.contains("wsmon:threshold:canary_e2e_slo_latency_seconds"),
        "no SLO line"
    );
}

/// Asserts that some query of `d` selects each of `metrics`; returns the queries joined.
fn assert_shows_every_metric(d: &Dashboard, metrics: &[&wsmon_catalog::MetricDef]) -> String {
    let exprs: Vec<String> = d.queries().into_iter().map(|q| q.expr).collect();
    let exprs = exprs.join("\n");
    for metric in metrics {
        assert!(
            exprs.contains(metric.name),
            "{} never shows {}",
            d.file_name(),
            metric.name
        );
    }
    exprs
}
