//! PromQL as the checks and the live test see it: parsed by a real parser, with Grafana's
//! macros replaced first.

use promql_parser::parser::{self, Expr};

#[derive(Debug, thiserror::Error)]
#[error("cannot parse PromQL `{expr}`: {message}")]
pub struct PromqlError {
    pub expr: String,
    pub message: String,
}

/// Parses one expression.
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    parser::parse(expr).map_err(|message| PromqlError {
        expr: expr.to_string(),
        message,
    })
}

/// Grafana's range macros, which are not PromQL.
const GRAFANA_RANGE_MACROS: [&str; 3] = ["$__rate_interval", "$__interval", "$__range"];

/// Replaces Grafana's range macros with `range` (for example `5m`). Template variables such
/// as `$job` only appear inside label-matcher strings, where they are already valid PromQL.
pub fn expand_grafana_macros(expr: &str, range: &str) -> String {
    let mut out = expr.to_string();
    for m in GRAFANA_RANGE_MACROS {
        out = out.replace(m, range);
    }
    out
}

/// Replaces every `$name` / `${name}` template variable in `expr` with `value` (the live test
/// selects "All" as `.+`).
pub fn expand_template_variables(expr: &str, names: &[&str], value: &str) -> String {
    let mut out = expr.to_string();
    for name in names {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// Calls every node of `expr`, parents before children.
pub fn walk<'a>(expr: &'a Expr, visit: &mut dyn FnMut(&'a Expr)) {
    visit(expr);
    match expr {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, visit);
            }
            walk(&a.expr, visit);
        }
        Expr::Unary(u) => walk(&u.expr, visit),
        Expr::Binary(b) => {
            walk(&b.lhs, visit);
            walk(&b.rhs, visit);
        }
        Expr::Paren(p) => walk(&p.expr, visit),
        Expr::Subquery(s) => walk(&s.expr, visit),
        Expr::Call(c) => {
            for arg in &c.args.args {
                walk(arg, visit);
            }
        }
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// Strips parentheses.
pub fn unparen(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    expr
}

/// Every `histogram_quantile` call that does not have the shape
/// `histogram_quantile(φ, sum by (le, …) (rate(…_bucket[…])))`, described.
pub fn badly_shaped_histogram_quantiles(expr: &Expr) -> Vec<String> {
    let mut bad = Vec::new();
    walk(expr, &mut |e| {
        let Expr::Call(call) = e else { return };
        if call.func.name != "histogram_quantile" {
            return;
        }
        let Some(arg) = call.args.args.get(1) else {
            bad.push(format!("{e}: no second argument"));
            return;
        };
        let Expr::Aggregate(agg) = unparen(arg) else {
            bad.push(format!(
                "{e}: the buckets are not aggregated with sum by (le, …)"
            ));
            return;
        };
        let by_le = matches!(&agg.modifier,
            Some(promql_parser::parser::LabelModifier::Include(l)) if l.labels.iter().any(|l| l == "le"));
        if agg.op.to_string() != "sum" || !by_le {
            bad.push(format!(
                "{e}: the buckets are not aggregated with sum by (le, …)"
            ));
            return;
        }
        let rate_of_buckets = match unparen(&agg.expr) {
            Expr::Call(inner) if inner.func.name == "rate" => {
                inner.args.args.first().is_some_and(|m| {
                    matches!(&**m, Expr::MatrixSelector(ms)
                    if ms.vs.name.as_deref().is_some_and(|n| n.ends_with("_bucket")))
                })
            }
            _ => false,
        };
        if !rate_of_buckets {
            bad.push(format!("{e}: the sum is not over rate(…_bucket[…])"));
        }
    });
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_macros_become_a_range() {
        assert_eq!(
            expand_grafana_macros("rate(x[$__rate_interval])", "1m"),
            "rate(x[1m])"
        );
    }

    #[test]
    fn well_shaped_histogram_quantile_passes() {
        let e = parse("histogram_quantile(0.99, sum by (le, route) (rate(a_bucket[5m])))").unwrap();
        assert!(badly_shaped_histogram_quantiles(&e).is_empty());
    }

    #[test]
    fn histogram_quantile_without_le_or_rate_is_reported() {
        for bad in [
            "histogram_quantile(0.99, sum by (route) (rate(a_bucket[5m])))",
            "histogram_quantile(0.99, rate(a_bucket[5m]))",
            "histogram_quantile(0.99, sum by (le) (a_bucket))",
            "histogram_quantile(0.99, max by (le) (rate(a_bucket[5m])))",
        ] {
            let e = parse(bad).unwrap();
            assert_eq!(badly_shaped_histogram_quantiles(&e).len(), 1, "{bad}");
        }
    }
}
