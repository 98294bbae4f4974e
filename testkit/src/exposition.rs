//! The Prometheus text exposition format, read back: the one parser the test trees share.
//!
//! Hand-written rather than `prometheus-parse`, which brings regex and chrono for what is
//! here one loop over lines; this reads the sample lines (label values with their escapes,
//! an optional timestamp) and keeps `# TYPE`/`# HELP` as they are in [`Scrape::text`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name, with `_bucket`/`_sum`/`_count` as written.
    pub name: String,
    /// Label pairs, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
}

/// One parsed scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The exposition as received.
    pub text: String,
    /// Every sample line, in order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the exposition; a line that is not a valid sample panics with the line, since a
    /// scrape of our own code must never contain one.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| parse_line(l).unwrap_or_else(|| panic!("not a sample line: {l:?}")))
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The samples of `name` that carry every pair in `labels` (and maybe others).
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }

    /// The sum over [`Scrape::matching`] (0 when nothing matches).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The value of the one series of `name` whose label set is exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels)
            .find(|s| s.labels.len() == labels.len())
            .map(|s| s.value)
    }

    /// Samples whose name starts with `prefix`.
    pub fn count_with_prefix(&self, prefix: &str) -> usize {
        self.samples
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .count()
    }
}

/// GETs `http://addr/metrics` and parses it; `None` when it does not answer 200 in 5 s.
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

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches([',', ' ']);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner.split_once("=\"")?;
            let (value, after) = unescape_until_quote(after)?;
            labels.insert(key.trim().to_owned(), value);
            inner = after;
        }
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The label value up to its closing quote, unescaped, and what follows the quote.
fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_escaped_labels_and_timestamps_parse() {
        let s = Scrape::parse(
            "# HELP a_total A.\n# TYPE a_total counter\n\
             a_total{route=\"/ws\",reason=\"say \\\"hi\\\", ok\"} 3 1700000000\n\
             b 1.5\nc_bucket{le=\"+Inf\"} +Inf\n",
        );
        assert_eq!(
            s.get("a_total", &[("route", "/ws"), ("reason", "say \"hi\", ok")]),
            Some(3.0)
        );
        assert_eq!(s.sum("a_total", &[("route", "/ws")]), 3.0);
        assert_eq!(s.get("b", &[]), Some(1.5));
        assert_eq!(s.get("c_bucket", &[("le", "+Inf")]), Some(f64::INFINITY));
        assert_eq!(s.count_with_prefix("c_"), 1);
    }
}
