//! Reading a `/metrics` endpoint directly, between Prometheus's scrapes: the recovery
//! measurements need finer time resolution than the 1s scrape interval.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// One scrape of a Prometheus text endpoint.
pub struct Scrape {
    series: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// GETs `http://addr/metrics`; `None` when the endpoint does not answer 200.
pub async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> Option<Scrape> {
    let resp = http
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    Some(Scrape::parse(&resp.text().await.ok()?))
}

impl Scrape {
    /// Parses the text format's sample lines (label values without escaped quotes or commas,
    /// which is all wsmon emits).
    pub fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value: f64 = value.parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        Some((k.to_string(), v.trim_matches('"').to_string()))
                    })
                    .collect();
                Some((name.to_string(), labels, value))
            })
            .collect();
        Self { series }
    }

    /// The sum over the series of `name` that carry every label in `labels` (0 when none do).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}
