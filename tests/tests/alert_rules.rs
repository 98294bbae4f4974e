//! The alert rules: promtool accepts them and their unit tests pass, every alert carries the
//! labels and annotations an on-call engineer needs, and every runbook_url leads to a page.

use std::collections::{BTreeMap, BTreeSet};

use wsmon_testkit::promtool;
use wsmon_tests::promql;
use wsmon_tests::repo;
use wsmon_tests::rules::{self, RuleFile, UnitTestFile};

const RUNBOOK_URL_PREFIX: &str = "https://github.com/wsmon/wsmon/blob/main/runbook/";
const RUNBOOK_SECTIONS: [&str; 4] = ["## Meaning", "## Impact", "## Diagnosis", "## Mitigation"];

fn rule_files() -> Vec<RuleFile> {
    rules::load_all(&repo::alerts_dir()).expect("rule files load")
}

fn alert_names() -> BTreeSet<String> {
    rule_files()
        .iter()
        .flat_map(|f| f.alerts().map(|a| a.name().to_string()).collect::<Vec<_>>())
        .collect()
}

fn file_names(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn promtool_check_rules_accepts_every_rule_file() {
    let dir = repo::alerts_dir();
    let files = file_names(
        &rules::load_all(&dir)
            .unwrap()
            .iter()
            .map(|f| f.path.clone())
            .collect::<Vec<_>>(),
    );
    assert_eq!(files.len(), 4, "{files:?}");
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    let run = promtool::run(&dir, &args).unwrap_or_else(|e| panic!("{e}"));
    assert!(run.success, "promtool check rules failed:\n{}", run.output);
    assert_eq!(
        run.output.matches("SUCCESS").count(),
        files.len(),
        "{}",
        run.output
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let dir = repo::alerts_dir();
    let tests = repo::files_ending_with(&repo::alert_tests_dir(), ".test.yml").unwrap();
    assert!(tests.len() >= 2, "{tests:?}");
    let rel: Vec<String> = file_names(&tests)
        .into_iter()
        .map(|n| format!("tests/{n}"))
        .collect();
    let mut args = vec!["test", "rules"];
    args.extend(rel.iter().map(String::as_str));
    let run = promtool::run(&dir, &args).unwrap_or_else(|e| panic!("{e}"));
    assert!(run.success, "promtool test rules failed:\n{}", run.output);
    assert_eq!(
        run.output.matches("SUCCESS").count(),
        tests.len(),
        "{}",
        run.output
    );
}

/// promtool only checks the cases written down; this checks that they are written down for
/// every alert, in both directions.
#[test]
fn every_alert_is_unit_tested_firing_and_not_firing() {
    let mut firing: BTreeMap<String, usize> = BTreeMap::new();
    let mut quiet: BTreeMap<String, usize> = BTreeMap::new();
    for path in repo::files_ending_with(&repo::alert_tests_dir(), ".test.yml").unwrap() {
        let file = UnitTestFile::load(&path).unwrap();
        for t in file.tests.iter().flat_map(|g| &g.alert_rule_test) {
            let counter = if t.exp_alerts.is_empty() {
                &mut quiet
            } else {
                &mut firing
            };
            *counter.entry(t.alertname.clone()).or_default() += 1;
            for a in &t.exp_alerts {
                assert!(
                    a.exp_labels.contains_key("severity")
                        && a.exp_annotations.contains_key("runbook_url"),
                    "{}: {} at {}: expected alerts must state severity and annotations",
                    path.display(),
                    t.alertname,
                    t.eval_time
                );
            }
        }
    }
    let alerts = alert_names();
    assert!(alerts.len() >= 15, "{alerts:?}");
    let mut missing = Vec::new();
    for a in &alerts {
        if !firing.contains_key(a) {
            missing.push(format!("{a}: no firing test"));
        }
        if !quiet.contains_key(a) {
            missing.push(format!("{a}: no not-firing test"));
        }
    }
    for tested in firing.keys().chain(quiet.keys()) {
        if !alerts.contains(tested) {
            missing.push(format!("{tested}: tested but no such alert"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook_url() {
    let mut problems = Vec::new();
    for file in rule_files() {
        for a in file.alerts() {
            let name = a.name();
            let at = format!("{}: {name}", file.file_name());
            match a.labels.get("severity").map(String::as_str) {
                Some("critical" | "warning" | "info") => {}
                other => problems.push(format!(
                    "{at}: labels.severity is {other:?}, expected critical, warning or info"
                )),
            }
            for key in ["summary", "description"] {
                let present = matches!(a.annotations.get(key), Some(v) if !v.trim().is_empty());
                if !present {
                    problems.push(format!("{at}: annotations.{key} is missing or empty"));
                }
            }
            let expected_url = format!("{RUNBOOK_URL_PREFIX}{name}.md");
            if a.annotations.get("runbook_url") != Some(&expected_url) {
                problems.push(format!(
                    "{at}: annotations.runbook_url is {:?}, expected {expected_url}",
                    a.annotations.get("runbook_url")
                ));
            }
            if promql::parse(&a.expr).is_err() {
                problems.push(format!("{at}: expr does not parse"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_has_a_runbook_page_with_the_four_sections() {
    let mut problems = Vec::new();
    for name in alert_names() {
        let path = repo::runbook_dir().join(format!("{name}.md"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!("{}: missing", path.display()));
            continue;
        };
        if !text.starts_with(&format!("# {name}\n")) {
            problems.push(format!(
                "{}: does not start with `# {name}`",
                path.display()
            ));
        }
        let mut last = 0;
        for section in RUNBOOK_SECTIONS {
            match text.find(&format!("\n{section}\n")) {
                Some(at) if at >= last => last = at,
                Some(_) => problems.push(format!("{}: `{section}` out of order", path.display())),
                None => problems.push(format!("{}: no `{section}` section", path.display())),
            }
        }
        // Diagnosis must give the exact queries to run.
        let diagnosis = text.split("\n## Diagnosis\n").nth(1).unwrap_or("");
        let diagnosis = diagnosis.split("\n## Mitigation\n").next().unwrap_or("");
        if !diagnosis.contains("```promql") {
            problems.push(format!(
                "{}: Diagnosis has no ```promql block",
                path.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn runbook_index_links_every_page_and_the_cheat_sheets_exist() {
    let index = std::fs::read_to_string(repo::runbook_dir().join("README.md")).unwrap();
    let mut missing = Vec::new();
    for page in alert_names()
        .into_iter()
        .map(|a| format!("{a}.md"))
        .chain(["close-codes.md", "five-panels.md", "thresholds-and-slos.md"].map(String::from))
    {
        if !repo::runbook_dir().join(&page).is_file() {
            missing.push(format!("runbook/{page} does not exist"));
        }
        if !index.contains(&format!("]({page})")) {
            missing.push(format!("runbook/README.md does not link {page}"));
        }
    }
    let close_codes = std::fs::read_to_string(repo::runbook_dir().join("close-codes.md")).unwrap();
    for code in (1000..=1015).map(|c| c.to_string()).chain(["4xxx".into()]) {
        if !close_codes.contains(&format!("| {code} |")) {
            missing.push(format!("close-codes.md has no row for {code}"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The live test rewrites `for:`; the rewrite must keep everything else.
#[test]
fn the_live_test_copy_of_the_rules_differs_only_in_for_durations() {
    let files = rule_files();
    let dir = tempfile::tempdir().unwrap();
    let written = rules::write_with_scaled_for(&files, dir.path(), 60).unwrap();
    assert_eq!(written.len(), files.len());
    for (orig, path) in files.iter().zip(&written) {
        let copy = RuleFile::load(path).unwrap();
        let a: Vec<_> = orig.rules().collect();
        let b: Vec<_> = copy.rules().collect();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.expr, &x.labels, &x.annotations),
                (&y.expr, &y.labels, &y.annotations)
            );
            assert_eq!(x.name(), y.name());
            if let Some(f) = &x.for_ {
                let long = wsmon_tests::duration::parse(f).unwrap();
                let short = wsmon_tests::duration::parse(y.for_.as_deref().unwrap()).unwrap();
                assert!(
                    short <= long && !short.is_zero(),
                    "{}: {f} -> {short:?}",
                    x.name()
                );
            }
        }
    }
    let run = promtool::run(
        dir.path(),
        &[
            "check",
            "rules",
            "thresholds.rules.yml",
            "recording.rules.yml",
            "websocket-server.alerts.yml",
            "websocket-canary.alerts.yml",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(run.success, "{}", run.output);
}
