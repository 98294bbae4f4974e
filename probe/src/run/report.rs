//! Output for `once`: text, JSON and Prometheus text; the node_exporter textfile and the
//! Pushgateway.

use std::path::{Path, PathBuf};

use prometheus::Registry;
use serde_json::{json, Value};

use crate::measure::LatencySummary;
use crate::record::recorder::CanaryStatus;
use crate::resume::ResumeOutcome;
use crate::run::once::CanaryRun;

/// Errors writing a report somewhere other than stdout.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing the textfile {path}: {source}")]
    Textfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pushing to the Pushgateway at {url}: {detail}")]
    Push { url: String, detail: String },
}

fn latency(s: LatencySummary) -> Value {
    if s.count == 0 {
        return Value::Null;
    }
    json!({ "p50": s.p50, "p99": s.p99, "max": s.max, "count": s.count })
}

/// The `--format json` object for one canary.
pub fn json(run: &CanaryRun) -> Value {
    let s = &run.status;
    let fault = s.verdict.first();
    json!({
        "name": s.name,
        "target": s.target,
        "success": run.success(),
        "failure_reason": fault.map(|f| f.reason.as_str()),
        "failure_detail": fault.map(|f| f.detail.as_str()),
        "duration_seconds": run.duration.as_secs_f64(),
        "status_code": s.status_code,
        "connect_seconds": s.connect,
        "first_payload_seconds": s.first_payload,
        "messages": s.messages,
        "gaps": s.sequence.gaps,
        "missed_messages": s.sequence.missed,
        "duplicates": s.sequence.duplicates,
        "reorders": s.sequence.reorders,
        "stalls": s.stalls,
        "freshness_seconds": latency(s.freshness.summary()),
        "e2e_seconds": latency(s.e2e.summary()),
        "publishes": s.publishes,
        "publish_timeouts": s.publish_timeouts,
        "heartbeat_rtt_seconds": latency(s.heartbeat_rtt.summary()),
        "head_lag_messages": s.head_lag,
        "close_code": s.close_code,
        "reconnects": s.reconnects,
        "resumes": resumes(s),
        "replayed_messages": s.expected.replayed.then_some(s.replayed),
    })
}

/// Resumes by outcome, every outcome present; `null` for a canary without `resume`.
fn resumes(s: &CanaryStatus) -> Value {
    if !s.expected.resumes {
        return Value::Null;
    }
    ResumeOutcome::ALL
        .iter()
        .map(|o| {
            (
                o.as_str().to_string(),
                s.series.resumes.get(o.as_str()).into(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `--format json`: one object per canary, one per line.
pub fn json_lines(runs: &[CanaryRun]) -> String {
    runs.iter().map(|r| json(r).to_string() + "\n").collect()
}

fn ms(secs: Option<f64>) -> String {
    secs.map_or("-".into(), |s| format!("{:.1}ms", s * 1e3))
}

fn quantiles(s: LatencySummary) -> String {
    if s.count == 0 {
        return "-".into();
    }
    format!(
        "p50 {:.1}ms  p99 {:.1}ms  max {:.1}ms  (n={})",
        s.p50 * 1e3,
        s.p99 * 1e3,
        s.max * 1e3,
        s.count
    )
}

/// `--format text`: a readable block per canary.
pub fn text(runs: &[CanaryRun]) -> String {
    let mut out = String::new();
    for run in runs {
        let s = &run.status;
        let verdict = match s.verdict.first() {
            None => "PASS".to_string(),
            Some(f) => format!("FAIL {} ({})", f.reason, f.detail),
        };
        out.push_str(&format!("{}  {}  {}\n", s.name, s.target, verdict));
        out.push_str(&format!(
            "  connect        dns {}  tcp {}  tls {}  upgrade {}  (HTTP {})\n",
            ms(s.connect.dns),
            ms(s.connect.tcp),
            ms(s.connect.tls),
            ms(s.connect.upgrade),
            s.status_code.map_or("-".into(), |c| c.to_string())
        ));
        out.push_str(&format!("  first payload  {}\n", ms(s.first_payload)));
        out.push_str(&format!(
            "  messages       {}  gaps {}  missed {}  duplicates {}  reorders {}  stalls {}\n",
            s.messages,
            s.sequence.gaps,
            s.sequence.missed,
            s.sequence.duplicates,
            s.sequence.reorders,
            s.stalls
        ));
        out.push_str(&format!(
            "  freshness      {}\n",
            quantiles(s.freshness.summary())
        ));
        out.push_str(&format!(
            "  e2e            {}  (published {}, timed out {})\n",
            quantiles(s.e2e.summary()),
            s.publishes,
            s.publish_timeouts
        ));
        out.push_str(&format!(
            "  heartbeat rtt  {}\n",
            quantiles(s.heartbeat_rtt.summary())
        ));
        out.push_str(&format!(
            "  head lag       {}\n",
            s.head_lag.map_or("-".into(), |l| format!("{l} messages"))
        ));
        if s.expected.resumes {
            let counts: Vec<String> = ResumeOutcome::ALL
                .iter()
                .map(|o| format!("{} {}", o.as_str(), s.series.resumes.get(o.as_str())))
                .collect();
            let replayed = match s.expected.replayed {
                true => format!("  (replayed {})", s.replayed),
                false => String::new(),
            };
            out.push_str(&format!(
                "  resumes        {}{replayed}\n",
                counts.join("  ")
            ));
        }
        if let Some(code) = s.close_code {
            out.push_str(&format!("  closed         {code} {}\n", s.close_reason));
        }
        out.push_str(&format!(
            "  took           {:.2}s\n",
            run.duration.as_secs_f64()
        ));
    }
    out
}

/// `--format prom`: the run's `websocket_canary_*` series in the Prometheus text format.
pub fn prom(registry: &Registry) -> String {
    wsmon::export::prometheus::render(registry)
}

/// The file name written into `--textfile DIR`.
pub const TEXTFILE_NAME: &str = "wsmon-probe.prom";

/// Writes `body` to `DIR/wsmon-probe.prom` atomically (temp file in the same directory, then
/// rename), so node_exporter never reads a half-written file.
pub fn write_textfile(dir: &Path, body: &str) -> Result<PathBuf, ReportError> {
    let path = dir.join(TEXTFILE_NAME);
    let tmp = dir.join(format!(".{TEXTFILE_NAME}.{}.tmp", std::process::id()));
    let wrap = |source| ReportError::Textfile {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, body).map_err(wrap)?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(wrap(e));
    }
    Ok(path)
}

/// The Pushgateway URL for `base`: used as-is if it already names a job, else
/// `BASE/metrics/job/wsmon_probe`.
pub fn push_url(base: &str) -> String {
    if base.contains("/metrics/job/") {
        base.to_string()
    } else {
        format!("{}/metrics/job/wsmon_probe", base.trim_end_matches('/'))
    }
}

/// Replaces the job's group on a Pushgateway (HTTP PUT of the text format).
pub async fn push(base: &str, body: String) -> Result<(), ReportError> {
    let url = push_url(base);
    let redacted = crate::config::TargetUrl::parse(&url)
        .map(|u| u.redacted())
        .unwrap_or_else(|_| "(invalid URL)".into());
    let err = |detail: String| ReportError::Push {
        url: redacted.clone(),
        detail,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let resp = client
        .put(&url)
        .header(
            http::header::CONTENT_TYPE,
            wsmon::export::prometheus::CONTENT_TYPE,
        )
        .body(body)
        .send()
        .await
        .map_err(|e| {
            err(if e.is_timeout() {
                "timed out".into()
            } else {
                "request failed".into()
            })
        })?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status().as_u16())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_url_adds_the_job_unless_given() {
        assert_eq!(
            push_url("http://pg:9091/"),
            "http://pg:9091/metrics/job/wsmon_probe"
        );
        assert_eq!(
            push_url("http://pg:9091/metrics/job/x"),
            "http://pg:9091/metrics/job/x"
        );
    }

    #[test]
    fn textfile_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        write_textfile(dir.path(), "a 1\n").unwrap();
        let path = write_textfile(dir.path(), "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "a 2\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
}
