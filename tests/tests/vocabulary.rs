//! Every dashboard query and every rule expression uses only metrics and labels that exist:
//! `wsmon_catalog`, plus the recording rules defined in alerts/.

use wsmon_tests::dashboard::Dashboard;
use wsmon_tests::promql;
use wsmon_tests::repo;
use wsmon_tests::rules::{self, RuleFile};
use wsmon_tests::vocabulary::{Origin, Vocabulary};

fn rule_files() -> Vec<RuleFile> {
    rules::load_all(&repo::alerts_dir()).expect("rule files load")
}

fn vocabulary() -> Vocabulary {
    Vocabulary::from_catalog(&rule_files())
        .unwrap_or_else(|problems| panic!("recording rules:\n{}", problems.join("\n")))
}

#[test]
fn every_rule_expression_uses_only_catalog_metrics_and_labels() {
    let vocabulary = vocabulary();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in rule_files() {
        for rule in file.rules() {
            match promql::parse(&rule.expr) {
                Ok(expr) => problems.extend(
                    vocabulary
                        .check(&expr)
                        .into_iter()
                        .map(|p| format!("{}: {}: {p}", file.file_name(), rule.name())),
                ),
                Err(e) => problems.push(format!("{}: {}: {e}", file.file_name(), rule.name())),
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} rules found in alerts/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dashboard_query_uses_only_catalog_metrics_and_labels() {
    let vocabulary = vocabulary();
    let dashboards = Dashboard::load_all(&repo::dashboards_dir()).unwrap();
    assert_eq!(
        dashboards.len(),
        2,
        "expected the server and canary dashboards"
    );
    let mut problems = Vec::new();
    for d in &dashboards {
        let queries = d.queries();
        assert!(
            queries.len() > 10,
            "{}: only {} queries",
            d.file_name(),
            queries.len()
        );
        for q in queries {
            let expr = promql::expand_grafana_macros(&q.expr, "5m");
            match promql::parse(&expr) {
                Ok(e) => problems.extend(vocabulary.check(&e).into_iter().map(|p| {
                    format!(
                        "{}: panel {:?} query {}: {p}",
                        d.file_name(),
                        q.panel,
                        q.ref_id
                    )
                })),
                Err(e) => problems.push(format!(
                    "{}: panel {:?} query {}: {e}",
                    d.file_name(),
                    q.panel,
                    q.ref_id
                )),
            }
        }
        for v in d.label_values_variables().unwrap() {
            match promql::parse(&v.selector) {
                Ok(e) => {
                    problems.extend(
                        vocabulary
                            .check(&e)
                            .into_iter()
                            .map(|p| format!("{}: variable {}: {p}", d.file_name(), v.name)),
                    );
                    let name = e.to_string();
                    let metric = name.split('{').next().unwrap_or("");
                    let has_label = vocabulary
                        .get(metric)
                        .is_some_and(|s| s.labels.contains(&v.label));
                    if !has_label {
                        problems.push(format!(
                            "{}: variable {}: `{metric}` has no label `{}`",
                            d.file_name(),
                            v.name,
                            v.label
                        ));
                    }
                }
                Err(e) => problems.push(format!("{}: variable {}: {e}", d.file_name(), v.name)),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check above is only worth something if it can fail: feed it the mistakes it exists for.
#[test]
fn the_vocabulary_check_rejects_unknown_metrics_labels_and_values() {
    let vocabulary = vocabulary();
    let cases = [
        ("websocket_server_connections_total", "neither in wsmon_catalog"),
        ("rate(websocket_server_upgrade_duration_seconds[5m])", "neither in wsmon_catalog"),
        ("websocket_server_upgrades_total{status=\"403\"}", "no label `status`"),
        ("websocket_server_upgrades_total{outcome=\"refused\"}", "`refused` is not a value"),
        ("websocket_server_closes_total{close_code=~\"1006|4001\"}", "`4001` is not a value"),
        ("sum by (canary) (websocket_server_active_connections)", "uses label `canary`"),
        (
            "histogram_quantile(0.99, sum by (le, reason) (rate(websocket_canary_e2e_seconds_bucket[5m])))",
            "uses label `reason`",
        ),
        (
            "instance_route:websocket_server_closes:rate5m{canary=\"x\"}",
            "no label `canary`",
        ),
        (
            "websocket_canary_up / on (route) websocket_server_active_connections",
            "on (left side) uses label `route`",
        ),
        (
            "websocket_canary_up * on () group_left (route) wsmon:threshold:loaded",
            "group_left uses label `route`",
        ),
    ];
    for (expr, expected) in cases {
        let problems = vocabulary.check(&promql::parse(expr).unwrap());
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expr}: expected a problem containing {expected:?}, got {problems:?}"
        );
    }
    // And the legitimate forms pass.
    for ok in [
        "sum by (le, route) (rate(websocket_server_first_payload_latency_seconds_bucket{route=\"/ws\"}[5m]))",
        "websocket_server_closes_total{close_code=~\"1006|1013|4xxx\", initiator=\"none\"}",
        "websocket_canary_connect_phase_seconds_count{phase=\"tls\"}",
        "websocket_canary_failures_total{job=~\"$job\"}",
    ] {
        let problems = vocabulary.check(&promql::parse(ok).unwrap());
        assert!(problems.is_empty(), "{ok}: {problems:?}");
    }
}

#[test]
fn recording_rules_carry_the_labels_their_users_select_on() {
    let vocabulary = vocabulary();
    let ratio = vocabulary
        .get("instance_route:websocket_server_abnormal_closes:ratio_rate5m")
        .expect("recorded");
    assert!(matches!(ratio.origin, Origin::RecordingRule(_)));
    let names: Vec<&str> = ratio.labels.iter().map(String::as_str).collect();
    assert_eq!(names, ["instance", "job", "route"]);
    let slo = vocabulary
        .get("canary:websocket_canary_e2e_slo_errors:ratio_rate1h")
        .expect("recorded");
    let names: Vec<&str> = slo.labels.iter().map(String::as_str).collect();
    assert_eq!(names, ["canary", "instance", "job"]);
    let threshold = vocabulary
        .get("wsmon:threshold:abnormal_close_ratio")
        .expect("recorded");
    assert!(threshold.labels.is_empty());
}

/// The SLI reads one histogram bucket; the threshold series the dashboard draws as the SLO line
/// must be that bucket's boundary, and the boundary must exist in the catalog's buckets.
#[test]
fn slo_latency_threshold_matches_the_sli_bucket() {
    let files = rule_files();
    let rules: Vec<_> = files.iter().flat_map(|f| f.rules().cloned()).collect();
    let threshold = rules
        .iter()
        .find(|r| r.record.as_deref() == Some("wsmon:threshold:canary_e2e_slo_latency_seconds"))
        .expect("threshold defined");
    let value: f64 = threshold
        .expr
        .trim()
        .strip_prefix("vector(")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("threshold is not vector(N): {}", threshold.expr));
    assert!(
        wsmon_catalog::CANARY_E2E_SECONDS.buckets.contains(&value),
        "{value} is not a bucket of websocket_canary_e2e_seconds"
    );
    let sli: Vec<_> = rules
        .iter()
        .filter(|r| {
            r.record
                .as_deref()
                .is_some_and(|n| n.starts_with("canary:websocket_canary_e2e_slo_errors:"))
        })
        .collect();
    assert_eq!(sli.len(), 7, "one SLI rule per SRE-workbook window");
    for r in sli {
        let expr = promql::parse(&r.expr).unwrap();
        let mut les = Vec::new();
        promql::walk(&expr, &mut |e| {
            if let promql_parser::parser::Expr::MatrixSelector(ms) = e {
                for m in &ms.vs.matchers.matchers {
                    if m.name == "le" {
                        les.push(m.value.parse::<f64>().unwrap());
                    }
                }
            }
        });
        assert_eq!(les, [value], "{}: le matcher", r.name());
    }
}

/// The lifetime-share rule names each bucket of the duration histogram by hand (PromQL cannot
/// subtract a bucket from the one below it): its pairs must be the catalog's buckets, each
/// against the one below, from 1 s up to `+Inf`.
#[test]
fn lifetime_share_rule_pairs_the_catalog_buckets() {
    let files = rule_files();
    let rule = files
        .iter()
        .flat_map(|f| f.rules().cloned())
        .find(|r| {
            r.record.as_deref()
                == Some("instance_route_le:websocket_server_connection_lifetimes:share_rate5m")
        })
        .expect("lifetime share rule defined");
    let expr = promql::parse(&rule.expr).unwrap();
    let mut les = Vec::new();
    promql::walk(&expr, &mut |e| {
        if let promql_parser::parser::Expr::VectorSelector(vs) = e {
            for m in &vs.matchers.matchers {
                if m.name == "le" {
                    les.push(m.value.clone());
                }
            }
        }
    });
    let bounds: Vec<String> = wsmon_catalog::CONNECTION_DURATION_SECONDS
        .buckets
        .iter()
        .map(|b| b.to_string())
        .chain(["+Inf".to_string()])
        .collect();
    // Each term selects its bucket, then the one below it.
    let expected: Vec<String> = bounds
        .windows(2)
        .flat_map(|w| [w[1].clone(), w[0].clone()])
        .collect();
    assert_eq!(les, expected, "{}: le matchers", rule.name());
}

/// The runbooks' Diagnosis blocks are what on-call engineers paste into Prometheus: they must
/// parse and use the vocabulary too. Prometheus's own `up` and `{__name__=~…}` lookups, which
/// diagnose missing targets and metrics, are the only exceptions.
#[test]
fn every_runbook_query_parses_and_uses_only_catalog_metrics_and_labels() {
    let vocabulary = vocabulary();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in repo::files_ending_with(&repo::runbook_dir(), ".md").unwrap() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        let blocks = text.split("```promql\n").skip(1);
        for block in blocks {
            let block = block.split("```").next().unwrap_or("");
            for line in block.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                checked += 1;
                let expr = match promql::parse(line) {
                    Ok(e) => e,
                    Err(e) => {
                        problems.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                if line.starts_with("up{") || line.contains("__name__") {
                    continue;
                }
                problems.extend(
                    vocabulary
                        .check(&expr)
                        .into_iter()
                        .map(|p| format!("{name}: `{line}`: {p}")),
                );
            }
        }
    }
    assert!(checked > 60, "only {checked} runbook queries");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
