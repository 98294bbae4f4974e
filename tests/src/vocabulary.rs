//! The metric vocabulary a query may use: `wsmon_catalog`, plus the recording rules defined
//! in `alerts/`, with the labels each series carries and the values the bounded labels take.
//!
//! [`Vocabulary::check`] walks a parsed expression and reports every metric name, label
//! matcher, `by`/`without` clause and `on`/`ignoring`/`group_*` label that the vocabulary does
//! not have, inferring the labels of each sub-expression the way Prometheus computes them.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::MatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use wsmon_catalog::{self as catalog, Kind};

use crate::rules::RuleFile;

/// Labels every scraped series gets from its target. `service` is the one the operator adds
/// to the server's and the prober's scrape jobs alike, which the which-hop rules join on
/// (runbook/which-hop-broke.md); where it is not set it is empty on both sides.
pub const TARGET_LABELS: [&str; 3] = ["job", "instance", "service"];

type Labels = BTreeSet<String>;

/// Where a series name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Catalog,
    /// A recording rule in this file.
    RecordingRule(String),
}

#[derive(Debug, Clone)]
pub struct SeriesDef {
    pub labels: Labels,
    pub origin: Origin,
}

/// Every series name a query may select, with its labels.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    series: BTreeMap<String, SeriesDef>,
}

fn labels<'a>(names: impl IntoIterator<Item = &'a str>) -> Labels {
    names.into_iter().map(str::to_string).collect()
}

/// Values of the bounded label sets, from the middleware's own types where it exposes them.
fn known_values(label: &str) -> Option<Vec<String>> {
    use wsmon::close_code::{CloseCodeClassifier, Initiator};
    use wsmon::frame::FrameType;
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    match label {
        catalog::label::CLOSE_CODE => Some(owned(&CloseCodeClassifier::default().label_values())),
        catalog::label::INITIATOR => Some(
            [Initiator::Client, Initiator::Server, Initiator::None]
                .iter()
                .map(|i| i.as_str().to_string())
                .collect(),
        ),
        catalog::label::FRAME_TYPE => Some(
            [
                FrameType::Text,
                FrameType::Binary,
                FrameType::Ping,
                FrameType::Pong,
                FrameType::Close,
            ]
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        ),
        // The middleware writes these as literals; the catalog's help texts document them.
        // Upgrades (accepted/rejected) and resumes (catalog::RESUME_OUTCOMES) share the name.
        catalog::label::OUTCOME => Some(owned(
            &[&["accepted", "rejected"][..], catalog::RESUME_OUTCOMES].concat(),
        )),
        catalog::label::DIRECTION => Some(owned(&["receive", "transmit"])),
        catalog::label::ACTION => Some(owned(&["drop", "disconnect"])),
        catalog::label::PHASE => Some(owned(&["dns", "tcp", "tls", "upgrade"])),
        _ => None,
    }
}

/// The literal alternatives of a matcher value (`a`, or `a|b|c`), or None when it is a real
/// regular expression or a template variable that cannot be checked statically.
fn literal_alternatives(value: &str, regex: bool) -> Option<Vec<&str>> {
    if value.contains('$') {
        return None;
    }
    if !regex {
        return Some(vec![value]);
    }
    let parts: Vec<&str> = value.split('|').collect();
    parts
        .iter()
        .all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .then_some(parts)
}

impl Vocabulary {
    /// The catalog's metrics (histograms as their `_bucket`, `_sum` and `_count` series), then
    /// the recording rules of `rule_files` in order, each with the labels its expression yields.
    /// Problems in the recording rules themselves are returned, one line each.
    pub fn from_catalog(rule_files: &[RuleFile]) -> Result<Self, Vec<String>> {
        let mut series = BTreeMap::new();
        for m in catalog::all() {
            let mut base: Labels = labels(m.labels.iter().copied());
            base.extend(labels(TARGET_LABELS));
            let def = |labels: Labels| SeriesDef {
                labels,
                origin: Origin::Catalog,
            };
            if m.kind == Kind::Histogram {
                let mut bucket = base.clone();
                bucket.insert("le".into());
                series.insert(format!("{}_bucket", m.name), def(bucket));
                series.insert(format!("{}_sum", m.name), def(base.clone()));
                series.insert(format!("{}_count", m.name), def(base));
            } else {
                series.insert(m.name.to_string(), def(base));
            }
        }
        let mut vocabulary = Self { series };
        let mut problems = Vec::new();
        for file in rule_files {
            for rule in file.rules() {
                let Some(record) = &rule.record else { continue };
                let expr = match crate::promql::parse(&rule.expr) {
                    Ok(e) => e,
                    Err(e) => {
                        problems.push(format!("{}: {record}: {e}", file.file_name()));
                        continue;
                    }
                };
                let mut found = Vec::new();
                let out = vocabulary.labels_of(&expr, &mut found);
                problems.extend(
                    found
                        .into_iter()
                        .map(|p| format!("{}: {record}: {p}", file.file_name())),
                );
                if vocabulary.series.contains_key(record) {
                    problems.push(format!(
                        "{}: {record}: defined twice (or shadows a catalog metric)",
                        file.file_name()
                    ));
                }
                vocabulary.series.insert(
                    record.clone(),
                    SeriesDef {
                        labels: out,
                        origin: Origin::RecordingRule(file.file_name()),
                    },
                );
            }
        }
        if problems.is_empty() {
            Ok(vocabulary)
        } else {
            Err(problems)
        }
    }

    pub fn get(&self, name: &str) -> Option<&SeriesDef> {
        self.series.get(name)
    }

    /// Every problem in `expr`, one line each; empty when it only uses the vocabulary.
    pub fn check(&self, expr: &Expr) -> Vec<String> {
        let mut problems = Vec::new();
        self.labels_of(expr, &mut problems);
        problems
    }

    /// The labels `expr`'s result carries, recording problems found on the way.
    fn labels_of(&self, expr: &Expr, problems: &mut Vec<String>) -> Labels {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs, problems),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, problems),
            Expr::Paren(p) => self.labels_of(&p.expr, problems),
            Expr::Unary(u) => self.labels_of(&u.expr, problems),
            Expr::Subquery(s) => self.labels_of(&s.expr, problems),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Labels::new(),
            Expr::Aggregate(agg) => {
                if let Some(p) = &agg.param {
                    self.labels_of(p, problems);
                }
                let inner = self.labels_of(&agg.expr, problems);
                let op = agg.op.to_string();
                let grouping = match &agg.modifier {
                    Some(m) => {
                        let l = labels(m.labels().labels.iter().map(String::as_str));
                        require_subset(&l, &inner, &format!("{op} by/without"), problems);
                        Some(m)
                    }
                    None => None,
                };
                match (op.as_str(), grouping) {
                    // These keep their input's labels; the grouping only partitions.
                    ("topk" | "bottomk" | "limitk" | "limit_ratio", _) => inner,
                    (_, Some(LabelModifier::Include(l))) => {
                        labels(l.labels.iter().map(String::as_str))
                    }
                    (_, Some(LabelModifier::Exclude(l))) => {
                        let mut out = inner;
                        for x in &l.labels {
                            out.remove(x);
                        }
                        out
                    }
                    (_, None) => Labels::new(),
                }
            }
            Expr::Call(call) => {
                let args: Vec<Labels> = call
                    .args
                    .args
                    .iter()
                    .map(|a| self.labels_of(a, problems))
                    .collect();
                let string_arg = |i: usize| match call.args.args.get(i).map(|a| &**a) {
                    Some(Expr::StringLiteral(s)) => Some(s.val.clone()),
                    _ => None,
                };
                match call.func.name {
                    "histogram_quantile" => {
                        let mut l = args.get(1).cloned().unwrap_or_default();
                        if !l.remove("le") {
                            problems.push(format!(
                                "{expr}: histogram_quantile over series without `le`"
                            ));
                        }
                        l
                    }
                    "absent" | "absent_over_time" => match call.args.args.first().map(|a| &**a) {
                        Some(Expr::VectorSelector(vs)) => equality_labels(vs),
                        Some(Expr::MatrixSelector(ms)) => equality_labels(&ms.vs),
                        _ => Labels::new(),
                    },
                    "label_replace" | "label_join" => {
                        let mut l = args.first().cloned().unwrap_or_default();
                        l.extend(string_arg(1));
                        l
                    }
                    "vector" | "scalar" | "time" | "pi" => Labels::new(),
                    _ => call
                        .args
                        .args
                        .iter()
                        .zip(args)
                        .find(|(a, _)| {
                            matches!(a.value_type(), ValueType::Vector | ValueType::Matrix)
                        })
                        .map(|(_, l)| l)
                        .unwrap_or_default(),
                }
            }
            Expr::Binary(b) => {
                let lhs = self.labels_of(&b.lhs, problems);
                let rhs = self.labels_of(&b.rhs, problems);
                let lhs_vector = b.lhs.value_type() == ValueType::Vector;
                let rhs_vector = b.rhs.value_type() == ValueType::Vector;
                if !(lhs_vector && rhs_vector) {
                    return if lhs_vector { lhs } else { rhs };
                }
                let op = b.op.to_string();
                let modifier = b.modifier.as_ref();
                let matching = modifier.and_then(|m| m.matching.as_ref());
                match matching {
                    Some(LabelModifier::Include(on)) => {
                        let on = labels(on.labels.iter().map(String::as_str));
                        require_subset(&on, &lhs, "on (left side)", problems);
                        require_subset(&on, &rhs, "on (right side)", problems);
                    }
                    Some(LabelModifier::Exclude(ignoring)) => {
                        let ignoring = labels(ignoring.labels.iter().map(String::as_str));
                        let both: Labels = lhs.union(&rhs).cloned().collect();
                        require_subset(&ignoring, &both, "ignoring", problems);
                    }
                    None => {}
                }
                let card = modifier.map(|m| &m.card);
                match (op.as_str(), card) {
                    ("or", _) => lhs.union(&rhs).cloned().collect(),
                    ("and" | "unless", _) => lhs,
                    (_, Some(VectorMatchCardinality::ManyToOne(extra))) => {
                        let extra = labels(extra.labels.iter().map(String::as_str));
                        require_subset(&extra, &rhs, "group_left", problems);
                        lhs.union(&extra).cloned().collect()
                    }
                    (_, Some(VectorMatchCardinality::OneToMany(extra))) => {
                        let extra = labels(extra.labels.iter().map(String::as_str));
                        require_subset(&extra, &lhs, "group_right", problems);
                        rhs.union(&extra).cloned().collect()
                    }
                    _ => {
                        let filter = b.op.is_comparison_operator()
                            && !modifier.is_some_and(|m| m.return_bool);
                        match matching {
                            _ if filter => lhs,
                            Some(LabelModifier::Include(on)) => {
                                lhs.into_iter().filter(|l| on.labels.contains(l)).collect()
                            }
                            Some(LabelModifier::Exclude(ignoring)) => lhs
                                .into_iter()
                                .filter(|l| !ignoring.labels.contains(l))
                                .collect(),
                            None => lhs,
                        }
                    }
                }
            }
        }
    }

    fn selector(&self, vs: &VectorSelector, problems: &mut Vec<String>) -> Labels {
        let Some(name) = vs.name.as_deref() else {
            problems.push(format!("{vs}: selector without a metric name"));
            return Labels::new();
        };
        let Some(def) = self.series.get(name) else {
            problems.push(format!(
                "`{name}` is neither in wsmon_catalog (histograms as _bucket/_sum/_count) nor a recording rule in alerts/"
            ));
            return Labels::new();
        };
        let matchers = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten());
        for m in matchers {
            if m.name == "__name__" {
                continue;
            }
            if !def.labels.contains(&m.name) {
                problems.push(format!(
                    "`{name}` has no label `{}` (it has: {})",
                    m.name,
                    def.labels.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            }
            let regex = matches!(m.op, MatchOp::Re(_) | MatchOp::NotRe(_));
            if let (Some(allowed), Some(values)) =
                (known_values(&m.name), literal_alternatives(&m.value, regex))
            {
                for v in values {
                    if !allowed.iter().any(|a| a == v) {
                        problems.push(format!(
                            "`{name}{{{}...}}`: `{v}` is not a value of `{}` (values: {})",
                            m.name,
                            m.name,
                            allowed.join(", ")
                        ));
                    }
                }
            }
        }
        def.labels.clone()
    }
}

fn equality_labels(vs: &VectorSelector) -> Labels {
    vs.matchers
        .matchers
        .iter()
        .filter(|m| matches!(m.op, MatchOp::Equal) && m.name != "__name__")
        .map(|m| m.name.clone())
        .collect()
}

fn require_subset(used: &Labels, available: &Labels, what: &str, problems: &mut Vec<String>) {
    for l in used.difference(available) {
        problems.push(format!(
            "{what} uses label `{l}`, which the series there do not have (they have: {})",
            available.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
}
