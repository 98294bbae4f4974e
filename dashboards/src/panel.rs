//! One Grafana panel: what a panel list declares (title, unit, queries) and the JSON Grafana
//! imports. Position, id and data source are filled in by the dashboard's layout.

use std::collections::BTreeMap;

use serde::Serialize;

/// Grafana's unit of a panel's values; every panel states one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Unit {
    /// A plain count (`short`).
    #[serde(rename = "short")]
    Count,
    /// Events per second (`ops`).
    #[serde(rename = "ops")]
    PerSecond,
    /// Requests per second (`reqps`).
    #[serde(rename = "reqps")]
    RequestsPerSecond,
    /// Seconds (`s`).
    #[serde(rename = "s")]
    Seconds,
    /// A ratio in 0..1, shown as a percentage (`percentunit`).
    #[serde(rename = "percentunit")]
    Ratio,
    /// Bytes per second (`Bps`).
    #[serde(rename = "Bps")]
    BytesPerSecond,
    /// 0 or 1, shown as off or on (`bool_on_off`).
    #[serde(rename = "bool_on_off")]
    OnOff,
}

/// A data source reference: the dashboard's data source variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasourceRef {
    #[serde(rename = "type")]
    kind: &'static str,
    uid: String,
}

impl DatasourceRef {
    /// The Prometheus data source `uid` (a variable such as `${datasource}`).
    pub fn prometheus(uid: String) -> Self {
        Self {
            kind: "prometheus",
            uid,
        }
    }
}

/// Where a panel sits on Grafana's 24-column grid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GridPos {
    /// Height in grid rows.
    pub h: u32,
    /// Width in columns, of 24.
    pub w: u32,
    /// Column of the left edge.
    pub x: u32,
    /// Row of the top edge.
    pub y: u32,
}

/// One query of a panel.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    datasource: DatasourceRef,
    expr: String,
    legend_format: String,
    ref_id: String,
    range: bool,
    instant: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct LineStyle {
    fill: &'static str,
    dash: [u32; 2],
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct FixedColor {
    mode: &'static str,
    fixed_color: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum PropertyValue {
    LineStyle(LineStyle),
    Color(FixedColor),
    Number(u32),
}

#[derive(Debug, Clone, Serialize)]
struct Property {
    id: &'static str,
    value: PropertyValue,
}

#[derive(Debug, Clone, Serialize)]
struct Matcher {
    id: &'static str,
    options: String,
}

/// Field overrides for the series of one legend.
#[derive(Debug, Clone, Serialize)]
struct Override {
    matcher: Matcher,
    properties: Vec<Property>,
}

impl Override {
    /// A dashed red line without fill: how every panel draws an alert threshold.
    fn threshold_line(legend: &str) -> Self {
        Self {
            matcher: Matcher {
                id: "byName",
                options: legend.to_string(),
            },
            properties: vec![
                Property {
                    id: "custom.lineStyle",
                    value: PropertyValue::LineStyle(LineStyle {
                        fill: "dash",
                        dash: [10, 10],
                    }),
                },
                Property {
                    id: "color",
                    value: PropertyValue::Color(FixedColor {
                        mode: "fixed",
                        fixed_color: "red",
                    }),
                },
                Property {
                    id: "custom.fillOpacity",
                    value: PropertyValue::Number(0),
                },
            ],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct LineDrawing {
    draw_style: &'static str,
    line_width: u32,
    fill_opacity: u32,
    show_points: &'static str,
    span_nulls: bool,
}

#[derive(Debug, Clone, Serialize)]
struct ValueText {
    text: &'static str,
    color: &'static str,
    index: u32,
}

#[derive(Debug, Clone, Serialize)]
struct ValueMapping {
    #[serde(rename = "type")]
    kind: &'static str,
    options: BTreeMap<&'static str, ValueText>,
}

#[derive(Debug, Clone, Serialize)]
struct Step {
    color: &'static str,
    value: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
struct Thresholds {
    mode: &'static str,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
struct FieldDefaults {
    unit: Unit,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<LineDrawing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mappings: Option<Vec<ValueMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thresholds: Option<Thresholds>,
}

#[derive(Debug, Clone, Serialize)]
struct FieldConfig {
    defaults: FieldDefaults,
    overrides: Vec<Override>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Legend {
    display_mode: &'static str,
    placement: &'static str,
    calcs: [&'static str; 2],
}

#[derive(Debug, Clone, Serialize)]
struct Tooltip {
    mode: &'static str,
    sort: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReduceOptions {
    calcs: [&'static str; 1],
    fields: &'static str,
    values: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Options {
    #[serde(rename_all = "camelCase")]
    TimeSeries { legend: Legend, tooltip: Tooltip },
    #[serde(rename_all = "camelCase")]
    Stat {
        reduce_options: ReduceOptions,
        color_mode: &'static str,
        graph_mode: &'static str,
        text_mode: &'static str,
    },
}

/// One panel of a dashboard row.
///
/// ```
/// use wsmon_dashboards::panel::{Panel, Unit};
///
/// let p = Panel::timeseries("Slow consumers", Unit::Count)
///     .describe("Connections above their queue's high-water mark right now.")
///     .query("sum by (route) (websocket_server_slow_consumers)", "{{route}}");
/// assert_eq!(p.title(), "Slow consumers");
/// ```
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Panel {
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    id: u32,
    datasource: DatasourceRef,
    grid_pos: GridPos,
    field_config: FieldConfig,
    options: Options,
    targets: Vec<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Width in columns when set; otherwise the row's line shares the width evenly.
    #[serde(skip)]
    width: Option<u32>,
}

/// Panel height in grid rows unless a panel sets its own.
const DEFAULT_HEIGHT: u32 = 8;

impl Panel {
    /// A time series panel: lines without points, a table legend with last and max.
    pub fn timeseries(title: &str, unit: Unit) -> Self {
        Self::new(
            "timeseries",
            title,
            FieldDefaults {
                unit,
                custom: Some(LineDrawing {
                    draw_style: "line",
                    line_width: 1,
                    fill_opacity: 10,
                    show_points: "never",
                    span_nulls: false,
                }),
                min: Some(0),
                mappings: None,
                thresholds: None,
            },
            Options::TimeSeries {
                legend: Legend {
                    display_mode: "table",
                    placement: "bottom",
                    calcs: ["lastNotNull", "max"],
                },
                tooltip: Tooltip {
                    mode: "multi",
                    sort: "desc",
                },
            },
        )
    }

    /// A stat panel of a 0/1 series: red DOWN or green UP, one tile per series.
    pub fn up_down(title: &str) -> Self {
        let text = |text, color, index| ValueText { text, color, index };
        Self::new(
            "stat",
            title,
            FieldDefaults {
                unit: Unit::OnOff,
                custom: None,
                min: None,
                mappings: Some(vec![ValueMapping {
                    kind: "value",
                    options: BTreeMap::from([
                        ("0", text("DOWN", "red", 0)),
                        ("1", text("UP", "green", 1)),
                    ]),
                }]),
                thresholds: Some(Thresholds {
                    mode: "absolute",
                    steps: vec![
                        Step {
                            color: "red",
                            value: None,
                        },
                        Step {
                            color: "green",
                            value: Some(1),
                        },
                    ],
                }),
            },
            Options::Stat {
                reduce_options: ReduceOptions {
                    calcs: ["lastNotNull"],
                    fields: "",
                    values: false,
                },
                color_mode: "background",
                graph_mode: "none",
                text_mode: "value_and_name",
            },
        )
    }

    fn new(kind: &'static str, title: &str, defaults: FieldDefaults, options: Options) -> Self {
        Self {
            kind,
            title: title.to_string(),
            id: 0,
            datasource: DatasourceRef::default(),
            grid_pos: GridPos {
                h: DEFAULT_HEIGHT,
                ..GridPos::default()
            },
            field_config: FieldConfig {
                defaults,
                overrides: Vec::new(),
            },
            options,
            targets: Vec::new(),
            description: None,
            width: None,
        }
    }

    /// The panel's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The hover text of the panel's info icon: what to read from it.
    pub fn describe(mut self, text: &str) -> Self {
        self.description = Some(text.to_string());
        self
    }

    /// Adds a query; its `refId` is the next letter.
    ///
    /// # Panics
    /// On a 27th query: a panel with that many is unreadable anyway.
    pub fn query(mut self, expr: impl Into<String>, legend: impl Into<String>) -> Self {
        let n = self.targets.len();
        assert!(n < 26, "panel {:?}: more than 26 queries", self.title);
        let ref_id = char::from(b'A' + n as u8).to_string();
        self.targets.push(Target {
            datasource: DatasourceRef::default(),
            expr: expr.into(),
            legend_format: legend.into(),
            ref_id,
            range: true,
            instant: false,
        });
        self
    }

    /// Adds one query per `(expr, legend)`.
    pub fn queries(self, queries: impl IntoIterator<Item = (String, String)>) -> Self {
        queries
            .into_iter()
            .fold(self, |p, (expr, legend)| p.query(expr, legend))
    }

    /// Adds a threshold query, drawn as a dashed red line.
    pub fn threshold(mut self, expr: impl Into<String>, legend: &str) -> Self {
        self.field_config
            .overrides
            .push(Override::threshold_line(legend));
        self.query(expr, legend)
    }

    /// Sets the height in grid rows (default 8).
    pub fn height(mut self, h: u32) -> Self {
        self.grid_pos.h = h;
        self
    }

    /// Sets the width in columns of 24 (default: the line's width shared evenly).
    pub fn width(mut self, w: u32) -> Self {
        self.width = Some(w);
        self
    }

    /// Places the panel: its id, position and data source (on the panel and every query).
    pub(crate) fn place(mut self, id: u32, pos: GridPos, datasource: &DatasourceRef) -> Self {
        self.id = id;
        self.grid_pos = pos;
        self.datasource = datasource.clone();
        for t in &mut self.targets {
            t.datasource = datasource.clone();
        }
        self
    }

    pub(crate) fn requested_width(&self) -> Option<u32> {
        self.width
    }

    pub(crate) fn requested_height(&self) -> u32 {
        self.grid_pos.h
    }
}
