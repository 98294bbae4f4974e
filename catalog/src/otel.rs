//! How the catalog's OpenTelemetry names map back to its Prometheus names.

use crate::{Kind, MetricDef};

/// The Prometheus name the OpenTelemetry Collector's Prometheus exporter derives from an OTel
/// instrument (dots to underscores, a unit suffix, `_total` on monotonic sums). The catalog
/// chooses `otel_name` and `unit` so that this yields `name` exactly.
pub fn prometheus_name_from_otel(def: &MetricDef) -> String {
    let mut name = def.otel_name.replace('.', "_");
    let suffix = match def.unit {
        "s" => "seconds",
        "By" => "bytes",
        "1" => "ratio",
        _ => "", // `{annotations}` and empty units add nothing
    };
    if !suffix.is_empty() && !name.ends_with(suffix) {
        name.push('_');
        name.push_str(suffix);
    }
    if def.kind == Kind::Counter {
        name.push_str("_total");
    }
    name
}

#[cfg(test)]
mod tests {
    #[test]
    fn otel_names_translate_to_the_catalog_names() {
        for m in crate::all() {
            assert_eq!(
                super::prometheus_name_from_otel(m),
                m.name,
                "{}",
                m.otel_name
            );
        }
    }
}
