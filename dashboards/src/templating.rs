//! The template variables: the data source first, then one multi-value variable per filter of
//! the [`Config`], each listing the values left by the filters before it.

use serde::Serialize;

use crate::config::Config;
use crate::panel::DatasourceRef;

/// Always empty in the file: Grafana fills the options from the query.
type NoOptions = [(); 0];

#[derive(Debug, Clone, Serialize)]
struct DatasourceCurrent {
    selected: bool,
    text: &'static str,
    value: String,
}

#[derive(Debug, Clone, Serialize)]
struct AllSelected {
    selected: bool,
    text: [&'static str; 1],
    value: [&'static str; 1],
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct VariableQuery {
    query: String,
    ref_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Variable {
    Datasource {
        name: &'static str,
        label: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
        query: &'static str,
        current: DatasourceCurrent,
        hide: u32,
        refresh: u32,
        regex: &'static str,
        options: NoOptions,
    },
    #[serde(rename_all = "camelCase")]
    LabelValues {
        name: &'static str,
        label: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
        datasource: DatasourceRef,
        query: VariableQuery,
        definition: String,
        refresh: u32,
        include_all: bool,
        all_value: &'static str,
        multi: bool,
        sort: u32,
        current: AllSelected,
        hide: u32,
        regex: &'static str,
        options: NoOptions,
    },
}

/// The `templating` object of a dashboard.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Templating {
    list: Vec<Variable>,
}

impl Templating {
    pub(crate) fn of(cfg: &Config) -> Self {
        let mut list = vec![Variable::Datasource {
            name: cfg.datasource_variable,
            label: "Data source",
            kind: "datasource",
            query: "prometheus",
            current: DatasourceCurrent {
                selected: false,
                text: "Prometheus",
                value: format!("${{{}}}", cfg.datasource_input),
            },
            hide: 0,
            refresh: 1,
            regex: "",
            options: [],
        }];
        for (i, filter) in cfg.filters.iter().enumerate() {
            let outer = cfg.selector_of(&cfg.filters[..i]);
            let source = if outer.is_empty() {
                cfg.filter_source.name.to_string()
            } else {
                format!("{}{{{outer}}}", cfg.filter_source.name)
            };
            let query = format!("label_values({source}, {})", filter.label);
            list.push(Variable::LabelValues {
                name: filter.label,
                label: filter.title,
                kind: "query",
                datasource: DatasourceRef::prometheus(cfg.datasource_uid()),
                query: VariableQuery {
                    query: query.clone(),
                    ref_id: format!("{}-variable", filter.label),
                },
                definition: query,
                // On time range change: new routes and canaries appear without a reload.
                refresh: 2,
                include_all: true,
                all_value: ".+",
                multi: true,
                sort: 1,
                current: AllSelected {
                    selected: true,
                    text: ["All"],
                    value: ["$__all"],
                },
                hide: 0,
                regex: "",
                options: [],
            });
        }
        Self { list }
    }
}
