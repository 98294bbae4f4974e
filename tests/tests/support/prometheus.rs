//! A real `prometheus` (Debian's package) on 127.0.0.1, and the parts of its HTTP API the
//! scenario reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use wsmon_tests::{repo, rules};

/// One `scrape_configs` entry: a job, its targets in groups that each carry target labels,
/// and label copies applied to every scraped series.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeJob {
    job_name: String,
    static_configs: Vec<TargetGroup>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metric_relabel_configs: Vec<CopyLabel>,
}

#[derive(Debug, Clone, Serialize)]
struct TargetGroup {
    targets: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

/// A `metric_relabel_configs` rule that copies a non-empty label into another.
#[derive(Debug, Clone, Serialize)]
struct CopyLabel {
    source_labels: [String; 1],
    regex: &'static str,
    target_label: String,
    replacement: &'static str,
    action: &'static str,
}

impl ScrapeJob {
    /// A job with no targets yet.
    pub fn new(job: &str) -> Self {
        Self {
            job_name: job.to_string(),
            static_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }

    /// Adds `targets`, each of whose series gets `labels` (Prometheus target labels).
    pub fn targets(mut self, targets: &[SocketAddr], labels: &[(&str, &str)]) -> Self {
        self.static_configs.push(TargetGroup {
            targets: targets.iter().map(SocketAddr::to_string).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        self
    }

    /// Copies `from` into `to` on every scraped series where `from` is not empty (how one
    /// prober target holding many canaries gives each its `service`).
    pub fn copy_label(mut self, from: &str, to: &str) -> Self {
        self.metric_relabel_configs.push(CopyLabel {
            source_labels: [from.to_string()],
            regex: "(.+)",
            target_label: to.to_string(),
            replacement: "$1",
            action: "replace",
        });
        self
    }

    /// How many targets the job scrapes.
    pub fn target_count(&self) -> usize {
        self.static_configs.iter().map(|g| g.targets.len()).sum()
    }
}

#[derive(Serialize)]
struct Config<'a> {
    global: Global,
    rule_files: &'a [PathBuf],
    scrape_configs: &'a [ScrapeJob],
}

#[derive(Serialize)]
struct Global {
    scrape_interval: &'static str,
    scrape_timeout: &'static str,
    evaluation_interval: &'static str,
}

pub struct Prometheus {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
}

/// One series of an instant-vector result.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One entry of `/api/v1/alerts`.
#[derive(Debug, Clone)]
pub struct ActiveAlert {
    pub labels: BTreeMap<String, String>,
    pub state: String,
}

impl ActiveAlert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

impl std::fmt::Display for ActiveAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        write!(f, "{}{{{}}} {}", self.name(), labels.join(","), self.state)
    }
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

impl Prometheus {
    /// Writes the config into `dir` and starts Prometheus with 1s scrape and evaluation
    /// intervals. Fails clearly when the binary is missing.
    pub async fn start(dir: &Path, rule_files: &[PathBuf], scrape_jobs: &[ScrapeJob]) -> Self {
        let addr = super::free_local_addr();
        let config = Config {
            global: Global {
                scrape_interval: "1s",
                scrape_timeout: "900ms",
                evaluation_interval: "1s",
            },
            rule_files,
            scrape_configs: scrape_jobs,
        };
        let config = serde_yaml::to_string(&config).expect("prometheus.yml serializes");
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `prometheus` ({e}): install Debian's `prometheus` package \
                     (`bash scripts/test.sh` does)"
                )
            });
        let prom = Self {
            child,
            addr,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        let ready = super::eventually(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                let r = prom
                    .http
                    .get(format!("http://{addr}/-/ready"))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
        if ready.is_none() {
            panic!("prometheus did not become ready:\n{}", prom.log_tail());
        }
        prom
    }

    /// [`Prometheus::start`] with the rules of alerts/, in a copy whose every `for:` is divided
    /// by 60 (one production minute becomes one test second, matching the 1s evaluation);
    /// expressions and thresholds stay the production ones.
    pub async fn start_with_wsmon_rules(dir: &Path, scrape_jobs: &[ScrapeJob]) -> Self {
        let rule_dir = dir.join("rules");
        std::fs::create_dir_all(&rule_dir).unwrap();
        let rules = rules::load_all(&repo::alerts_dir()).expect("alerts/ loads");
        let rule_files =
            rules::write_with_scaled_for(&rules, &rule_dir, 60).expect("scaled rules written");
        Self::start(dir, &rule_files, scrape_jobs).await
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = format!("http://{}{path}", self.addr);
        let resp = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let text = resp.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}: {text}"))?;
        if v["status"] != "success" {
            return Err(format!("GET {path} {params:?}: {text}"));
        }
        Ok(v["data"].clone())
    }

    /// Evaluates an instant query.
    pub async fn query(&self, q: &str) -> Result<Vec<Sample>, String> {
        let data = self.get("/api/v1/query", &[("query", q)]).await?;
        if data["resultType"] != "vector" {
            return Err(format!("{q}: result type {}", data["resultType"]));
        }
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Sample {
                labels: labels_of(&s["metric"]),
                value: s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
            })
            .collect())
    }

    /// Values of `label` on series matching `selector` (what Grafana's label_values() asks).
    pub async fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
        let data = self
            .get(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", selector)],
            )
            .await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    /// Pending and firing alerts.
    pub async fn alerts(&self) -> Result<Vec<ActiveAlert>, String> {
        let data = self.get("/api/v1/alerts", &[]).await?;
        Ok(data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| ActiveAlert {
                labels: labels_of(&a["labels"]),
                state: a["state"].as_str().unwrap_or("").to_string(),
            })
            .collect())
    }

    /// Scrape targets and their health.
    pub async fn target_health(&self) -> Result<Vec<(String, String)>, String> {
        let data = self.get("/api/v1/targets", &[]).await?;
        Ok(data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["scrapeUrl"].as_str().unwrap_or("").to_string(),
                    t["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// Waits (20s at most) until Prometheus has `count` targets and has scraped each of them
    /// successfully; panics with their health and its log otherwise.
    pub async fn wait_for_targets_up(&self, count: usize) {
        let up = super::eventually(
            Duration::from_secs(20),
            Duration::from_millis(500),
            || async {
                let health = self.target_health().await.ok()?;
                (health.len() == count && health.iter().all(|(_, h)| h == "up")).then_some(())
            },
        )
        .await;
        assert!(
            up.is_some(),
            "targets not up: {:?}\n{}",
            self.target_health().await,
            self.log_tail()
        );
    }

    /// Rule groups that failed to evaluate, with their errors.
    pub async fn rule_errors(&self) -> Result<Vec<String>, String> {
        let data = self.get("/api/v1/rules", &[]).await?;
        let mut errors = Vec::new();
        for g in data["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                if r["health"] != "ok" && r["health"] != "unknown" {
                    errors.push(format!("{}: {}: {}", g["name"], r["name"], r["lastError"]));
                }
            }
        }
        Ok(errors)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
