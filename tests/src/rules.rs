//! Prometheus rule files and `promtool test rules` files, as typed values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::yaml::{self, YamlError};

/// One rule file. Unknown keys are errors, so a rewrite (the live test's copy) can never drop
/// a field silently.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(skip)]
    pub path: PathBuf,
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// The alert or record name.
    pub fn name(&self) -> &str {
        self.alert
            .as_deref()
            .or(self.record.as_deref())
            .unwrap_or("<unnamed>")
    }
}

impl RuleFile {
    pub fn load(path: &Path) -> Result<Self, YamlError> {
        let mut file: RuleFile = yaml::read(path)?;
        file.path = path.to_path_buf();
        Ok(file)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Rule> {
        self.rules().filter(|r| r.alert.is_some())
    }

    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{dir}: cannot list rule files: {source}")]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: rule {rule}: `for: {value}` is not a Prometheus duration")]
    BadFor {
        file: String,
        rule: String,
        value: String,
    },
}

/// Every `*.rules.yml` and `*.alerts.yml` in `dir` (recording rules first, so that rule
/// names are known before the alerts that use them).
pub fn load_all(dir: &Path) -> Result<Vec<RuleFile>, RulesError> {
    let list = |suffix| {
        crate::repo::files_ending_with(dir, suffix).map_err(|source| RulesError::List {
            dir: dir.to_path_buf(),
            source,
        })
    };
    let mut files = Vec::new();
    for path in list(".rules.yml")?.into_iter().chain(list(".alerts.yml")?) {
        files.push(RuleFile::load(&path)?);
    }
    Ok(files)
}

/// Writes a copy of `files` into `dir` with every `for:` divided by `divisor` (rounded up to
/// whole seconds, at least 1s), and returns the new paths. Expressions, windows, thresholds
/// and labels are untouched: the live test evaluates every second instead of every minute,
/// so `divisor = 60` keeps each alert's "number of evaluations it must hold" about the same.
pub fn write_with_scaled_for(
    files: &[RuleFile],
    dir: &Path,
    divisor: u32,
) -> Result<Vec<PathBuf>, RulesError> {
    let mut out = Vec::new();
    for file in files {
        let mut copy = file.clone();
        for rule in copy.groups.iter_mut().flat_map(|g| g.rules.iter_mut()) {
            if let Some(value) = &rule.for_ {
                let d = crate::duration::parse(value).ok_or_else(|| RulesError::BadFor {
                    file: file.file_name(),
                    rule: rule.name().to_string(),
                    value: value.clone(),
                })?;
                rule.for_ = Some(crate::duration::format(scale_down(d, divisor)));
            }
        }
        let path = dir.join(file.file_name());
        yaml::write(&path, &copy)?;
        out.push(path);
    }
    Ok(out)
}

fn scale_down(d: Duration, divisor: u32) -> Duration {
    if d.is_zero() {
        return d;
    }
    let secs = d.as_secs_f64() / f64::from(divisor.max(1));
    Duration::from_secs((secs.ceil() as u64).max(1))
}

/// A `promtool test rules` file: only the parts the coverage check reads.
#[derive(Debug, Deserialize)]
pub struct UnitTestFile {
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub tests: Vec<UnitTestGroup>,
}

#[derive(Debug, Deserialize)]
pub struct UnitTestGroup {
    #[serde(default)]
    pub alert_rule_test: Vec<AlertRuleTest>,
}

#[derive(Debug, Deserialize)]
pub struct AlertRuleTest {
    pub eval_time: String,
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

impl UnitTestFile {
    pub fn load(path: &Path) -> Result<Self, YamlError> {
        yaml::read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_maps_minutes_to_seconds_and_never_to_zero() {
        assert_eq!(
            scale_down(Duration::from_secs(600), 60),
            Duration::from_secs(10)
        );
        assert_eq!(
            scale_down(Duration::from_secs(3600), 60),
            Duration::from_secs(60)
        );
        assert_eq!(
            scale_down(Duration::from_secs(30), 60),
            Duration::from_secs(1)
        );
        assert_eq!(scale_down(Duration::ZERO, 60), Duration::ZERO);
    }
}
