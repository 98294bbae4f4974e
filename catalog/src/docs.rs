//! The Markdown tables of `docs/metrics.md`, rendered from the catalog.

use crate::{canary, exporter, probe, resume, server, server_canary};

/// Renders the catalog as the Markdown tables between the markers of `docs/metrics.md`.
pub fn markdown_tables() -> String {
    let mut out = String::new();
    for (title, defs) in [
        ("Middleware (`wsmon`)", server::SERVER_METRICS),
        (
            server_canary::SERVER_CANARY_TITLE,
            server_canary::SERVER_CANARY_METRICS,
        ),
        (resume::RESUME_TITLE, resume::RESUME_METRICS),
        (
            "Prober canaries (`wsmon-probe daemon`)",
            canary::CANARY_METRICS,
        ),
        (canary::CONNECT_CHECK_TITLE, canary::CONNECT_CHECK_METRICS),
        (canary::RECYCLE_TITLE, canary::RECYCLE_METRICS),
        ("Prober on-demand checks (`/probe`)", probe::PROBE_METRICS),
        ("Exporters", exporter::EXPORTER_METRICS),
    ] {
        out.push_str(&format!("## {title}\n\n"));
        out.push_str("| name | type | labels | OTel name (unit) | help |\n|---|---|---|---|---|\n");
        for m in defs {
            out.push_str(&format!(
                "| `{}` | {} | {} | `{}` ({}) | {} |\n",
                m.name,
                m.kind.as_str(),
                m.labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                m.otel_name,
                m.unit,
                m.help
            ));
        }
        out.push('\n');
    }
    out
}
