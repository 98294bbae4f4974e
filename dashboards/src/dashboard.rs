//! A dashboard: rows of panels under one [`Config`], laid out and numbered on output.
//!
//! Layout rules, applied by [`Dashboard::to_json`]:
//! - rows and panels get ids 1, 2, … in order, so appending a row keeps every existing id;
//! - a row is a one-unit-high bar across the grid, open, with its panels after it;
//! - each line of a row shares the 24 columns evenly among panels without a width of their
//!   own, and is as high as its highest panel.

use serde::Serialize;

use crate::config::Config;
use crate::panel::{DatasourceRef, GridPos, Panel};
use crate::templating::Templating;

/// Columns of Grafana's grid.
const GRID_WIDTH: u32 = 24;

/// A titled row: lines of panels, top to bottom.
#[derive(Debug, Clone)]
pub struct Row {
    title: String,
    lines: Vec<Vec<Panel>>,
}

impl Row {
    /// An empty row.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            lines: Vec::new(),
        }
    }

    /// Adds a line of panels side by side.
    pub fn line(mut self, panels: impl IntoIterator<Item = Panel>) -> Self {
        self.lines.push(panels.into_iter().collect());
        self
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    name: &'static str,
    label: &'static str,
    description: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    plugin_id: &'static str,
    plugin_name: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Requirement {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'static str,
    name: &'static str,
    version: &'static str,
}

/// What the import needs: Grafana 10, Prometheus and the two panel plugins used.
const REQUIRES: [Requirement; 4] = [
    Requirement {
        kind: "grafana",
        id: "grafana",
        name: "Grafana",
        version: "10.0.0",
    },
    Requirement {
        kind: "datasource",
        id: "prometheus",
        name: "Prometheus",
        version: "1.0.0",
    },
    Requirement {
        kind: "panel",
        id: "timeseries",
        name: "Time series",
        version: "",
    },
    Requirement {
        kind: "panel",
        id: "stat",
        name: "Stat",
        version: "",
    },
];

#[derive(Debug, Clone, Serialize)]
struct TimeRange {
    from: &'static str,
    to: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct GrafanaRef {
    #[serde(rename = "type")]
    kind: &'static str,
    uid: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Annotation {
    built_in: u32,
    datasource: GrafanaRef,
    enable: bool,
    hide: bool,
    icon_color: &'static str,
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Annotations {
    list: [Annotation; 1],
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Link {
    title: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'static str,
    target_blank: bool,
    icon: &'static str,
}

/// Where every dashboard links for on-call help.
const RUNBOOK_URL: &str = "https://github.com/wsmon/wsmon/blob/main/runbook/README.md";

#[derive(Debug, Clone, Serialize)]
struct RowJson {
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    id: u32,
    collapsed: bool,
    #[serde(rename = "gridPos")]
    grid_pos: GridPos,
    panels: [(); 0],
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Item {
    Row(RowJson),
    Panel(Box<Panel>),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct DashboardJson {
    #[serde(rename = "__inputs")]
    inputs: [Input; 1],
    #[serde(rename = "__requires")]
    requires: [Requirement; 4],
    uid: &'static str,
    title: &'static str,
    description: &'static str,
    tags: Vec<&'static str>,
    editable: bool,
    graph_tooltip: u32,
    schema_version: u32,
    version: u32,
    refresh: &'static str,
    time: TimeRange,
    timezone: &'static str,
    annotations: Annotations,
    links: [Link; 1],
    templating: Templating,
    panels: Vec<Item>,
}

/// One dashboard file.
///
/// ```
/// use wsmon_dashboards::{config::Config, dashboard::{Dashboard, Row}, panel::{Panel, Unit}};
///
/// let d = Dashboard::new(Config::server(), "wsmon-example", "Example")
///     .row(Row::new("Traffic").line([Panel::timeseries("Messages", Unit::PerSecond)
///         .query("sum(rate(websocket_server_messages_total[5m]))", "all")]));
/// assert!(d.to_json().contains(r#""uid": "wsmon-example""#));
/// ```
#[derive(Debug, Clone)]
pub struct Dashboard {
    cfg: Config,
    uid: &'static str,
    title: &'static str,
    description: &'static str,
    tags: Vec<&'static str>,
    rows: Vec<Row>,
}

impl Dashboard {
    /// An empty dashboard tagged `wsmon` and `websocket`.
    pub fn new(cfg: Config, uid: &'static str, title: &'static str) -> Self {
        Self {
            cfg,
            uid,
            title,
            description: "",
            tags: vec!["wsmon", "websocket"],
            rows: Vec::new(),
        }
    }

    /// Sets the dashboard's description.
    pub fn describe(mut self, text: &'static str) -> Self {
        self.description = text;
        self
    }

    /// Adds a tag after `wsmon` and `websocket`.
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tags.push(tag);
        self
    }

    /// Appends a row.
    pub fn row(mut self, row: Row) -> Self {
        self.rows.push(row);
        self
    }

    /// The dashboard's uid, stable across versions: links and provisioning use it.
    pub fn uid(&self) -> &str {
        self.uid
    }

    /// The Grafana JSON, pretty-printed with a final newline: what `dashboards/` holds.
    pub fn to_json(&self) -> String {
        let mut out = serde_json::to_string_pretty(&self.model())
            .expect("a dashboard always serializes: no maps with non-string keys");
        out.push('\n');
        out
    }

    fn model(&self) -> DashboardJson {
        DashboardJson {
            inputs: [Input {
                name: self.cfg.datasource_input,
                label: "Prometheus",
                description: "Prometheus that scrapes wsmon",
                kind: "datasource",
                plugin_id: "prometheus",
                plugin_name: "Prometheus",
            }],
            requires: REQUIRES,
            uid: self.uid,
            title: self.title,
            description: self.description,
            tags: self.tags.clone(),
            editable: true,
            // Shared crosshair: one moment lines up across panels.
            graph_tooltip: 1,
            schema_version: 39,
            version: 1,
            refresh: "30s",
            time: TimeRange {
                from: "now-3h",
                to: "now",
            },
            timezone: "browser",
            annotations: Annotations {
                list: [Annotation {
                    built_in: 1,
                    datasource: GrafanaRef {
                        kind: "grafana",
                        uid: "-- Grafana --",
                    },
                    enable: true,
                    hide: true,
                    icon_color: "rgba(0, 211, 255, 1)",
                    name: "Annotations & Alerts",
                    kind: "dashboard",
                }],
            },
            links: [Link {
                title: "Runbook",
                kind: "link",
                url: RUNBOOK_URL,
                target_blank: true,
                icon: "doc",
            }],
            templating: Templating::of(&self.cfg),
            panels: self.layout(),
        }
    }

    fn layout(&self) -> Vec<Item> {
        let datasource = DatasourceRef::prometheus(self.cfg.datasource_uid());
        let mut items = Vec::new();
        let (mut id, mut y) = (0, 0);
        for row in &self.rows {
            id += 1;
            items.push(Item::Row(RowJson {
                kind: "row",
                title: row.title.clone(),
                id,
                collapsed: false,
                grid_pos: GridPos {
                    h: 1,
                    w: GRID_WIDTH,
                    x: 0,
                    y,
                },
                panels: [],
            }));
            y += 1;
            for line in &row.lines {
                let fixed: u32 = line.iter().filter_map(Panel::requested_width).sum();
                let shared = line
                    .iter()
                    .filter(|p| p.requested_width().is_none())
                    .count() as u32;
                let even = GRID_WIDTH.saturating_sub(fixed) / shared.max(1);
                let (mut x, mut h) = (0, 0);
                for panel in line {
                    id += 1;
                    let w = panel.requested_width().unwrap_or(even);
                    let pos = GridPos {
                        h: panel.requested_height(),
                        w,
                        x,
                        y,
                    };
                    items.push(Item::Panel(Box::new(panel.clone().place(
                        id,
                        pos,
                        &datasource,
                    ))));
                    x += w;
                    h = h.max(pos.h);
                }
                y += h;
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::Unit;

    fn panel(title: &str) -> Panel {
        Panel::timeseries(title, Unit::Count).query("vector(1)", "one")
    }

    fn placed(d: &Dashboard) -> Vec<(u64, String, [u64; 4])> {
        let json: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
        json["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let g = &p["gridPos"];
                let n = |k: &str| g[k].as_u64().unwrap();
                let title = p["title"].as_str().unwrap().to_string();
                (
                    p["id"].as_u64().unwrap(),
                    title,
                    [n("x"), n("y"), n("w"), n("h")],
                )
            })
            .collect()
    }

    #[test]
    fn lines_share_the_width_and_stack_by_their_highest_panel() {
        let d = Dashboard::new(Config::server(), "wsmon-t", "t").row(
            Row::new("r")
                .line([panel("a"), panel("b").height(6), panel("c").width(12)])
                .line([panel("d")]),
        );
        assert_eq!(
            placed(&d),
            [
                (1, "r".into(), [0, 0, 24, 1]),
                (2, "a".into(), [0, 1, 6, 8]),
                (3, "b".into(), [6, 1, 6, 6]),
                (4, "c".into(), [12, 1, 12, 8]),
                (5, "d".into(), [0, 9, 24, 8]),
            ]
        );
    }

    #[test]
    fn appending_a_row_keeps_every_id_and_position() {
        let one = Dashboard::new(Config::canaries(), "wsmon-t", "t")
            .row(Row::new("r1").line([panel("a"), panel("b")]));
        let two = one.clone().row(Row::new("r2").line([panel("c")]));
        let (before, after) = (placed(&one), placed(&two));
        assert_eq!(after[..before.len()], before[..]);
        assert_eq!(after[before.len()].0, 4);
    }

    #[test]
    fn every_panel_and_query_reads_the_data_source_variable() {
        let d =
            Dashboard::new(Config::server(), "wsmon-t", "t").row(Row::new("r").line([panel("a")]));
        let json: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
        let p = &json["panels"][1];
        assert_eq!(p["datasource"]["uid"], "${datasource}");
        assert_eq!(p["targets"][0]["datasource"]["uid"], "${datasource}");
        assert_eq!(json["__inputs"][0]["name"], "DS_PROMETHEUS");
    }
}
