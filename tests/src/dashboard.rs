//! Grafana dashboard JSON: panels, their queries and the template variables.

use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One dashboard file.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub path: PathBuf,
    pub json: Value,
}

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// A `label_values(selector, label)` template variable.
#[derive(Debug, Clone)]
pub struct LabelValuesVariable {
    pub name: String,
    pub selector: String,
    pub label: String,
}

impl Dashboard {
    pub fn load(path: &Path) -> Result<Self, DashboardError> {
        let text = std::fs::read_to_string(path).map_err(|source| DashboardError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let json = serde_json::from_str(&text).map_err(|source| DashboardError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            json,
        })
    }

    /// Every `*.json` in `dir`.
    pub fn load_all(dir: &Path) -> Result<Vec<Self>, DashboardError> {
        let files = crate::repo::files_ending_with(dir, ".json").map_err(|source| {
            DashboardError::Read {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        files.iter().map(|p| Self::load(p)).collect()
    }

    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Every panel that shows data (rows excluded), including panels nested in collapsed rows.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for p in self.json["panels"].as_array().into_iter().flatten() {
            if p["type"] == "row" {
                out.extend(p["panels"].as_array().into_iter().flatten());
            } else {
                out.push(p);
            }
        }
        out
    }

    pub fn queries(&self) -> Vec<PanelQuery> {
        let mut out = Vec::new();
        for p in self.panels() {
            let panel = p["title"].as_str().unwrap_or("<untitled>").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    panel: panel.clone(),
                    ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                    expr: t["expr"].as_str().unwrap_or("").to_string(),
                });
            }
        }
        out
    }

    /// Template variables by name and type.
    pub fn variables(&self) -> Vec<(String, String)> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["name"].as_str().unwrap_or("").to_string(),
                    v["type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The `label_values(…)` query variables; a query variable of any other form is an error.
    pub fn label_values_variables(&self) -> Result<Vec<LabelValuesVariable>, String> {
        let mut out = Vec::new();
        for v in self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if v["type"] != "query" {
                continue;
            }
            let name = v["name"].as_str().unwrap_or("").to_string();
            let query = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or("");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .ok_or_else(|| format!("variable {name}: `{query}` is not label_values(…)"))?;
            let (selector, label) = inner
                .rsplit_once(',')
                .ok_or_else(|| format!("variable {name}: `{query}` has no label argument"))?;
            out.push(LabelValuesVariable {
                name,
                selector: selector.trim().to_string(),
                label: label.trim().to_string(),
            });
        }
        Ok(out)
    }
}
