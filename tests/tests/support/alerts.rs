//! What a scenario expects of Prometheus's alerts, and a log of every alert it has seen.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::{sleep, Instant};

use super::prometheus::{ActiveAlert, Prometheus};

/// An alert the scenario expects, identified by name and one distinguishing label; pending is
/// enough unless [`Expected::firing`] asks for more.
pub struct Expected {
    pub alert: &'static str,
    pub label: &'static str,
    pub value: String,
    pub cause: &'static str,
    pub must_fire: bool,
}

impl Expected {
    pub fn new(
        alert: &'static str,
        label: &'static str,
        value: impl Into<String>,
        cause: &'static str,
    ) -> Self {
        Self {
            alert,
            label,
            value: value.into(),
            cause,
            must_fire: false,
        }
    }

    /// Only a firing alert counts: its `for:` has elapsed.
    pub fn firing(mut self) -> Self {
        self.must_fire = true;
        self
    }

    pub fn matches(&self, a: &ActiveAlert) -> bool {
        a.name() == self.alert
            && a.labels.get(self.label) == Some(&self.value)
            && (!self.must_fire || a.state == "firing")
    }
}

/// Every alert seen so far, with its most advanced state.
#[derive(Default)]
pub struct AlertLog(pub BTreeMap<String, ActiveAlert>);

impl AlertLog {
    pub fn record(&mut self, alerts: Vec<ActiveAlert>) {
        for a in alerts {
            let key = a.to_string().rsplit_once(' ').unwrap().0.to_string();
            let firing = self.0.get(&key).is_some_and(|old| old.state == "firing");
            if !firing {
                self.0.insert(key, a);
            }
        }
    }

    pub fn find(&self, e: &Expected) -> Option<&ActiveAlert> {
        self.0.values().find(|a| e.matches(a))
    }

    pub fn report(&self) -> String {
        self.0
            .values()
            .map(|a| format!("  {a}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Records alerts every second until each of `expected` has been seen, or `limit` passes.
pub async fn poll_until_seen(
    prom: &Prometheus,
    log: &mut AlertLog,
    expected: &[Expected],
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        log.record(prom.alerts().await.expect("alerts API"));
        if expected.iter().all(|e| log.find(e).is_some()) || Instant::now() >= deadline {
            return;
        }
        sleep(Duration::from_secs(1)).await;
    }
}

/// The expected alerts not in `log`, described with their cause.
pub fn missing(log: &AlertLog, expected: &[Expected]) -> Vec<String> {
    expected
        .iter()
        .filter(|e| log.find(e).is_none())
        .map(|e| {
            let state = if e.must_fire {
                "firing"
            } else {
                "pending or firing"
            };
            format!(
                "{}{{{}={:?}}} {state} ({})",
                e.alert, e.label, e.value, e.cause
            )
        })
        .collect()
}

/// Records alerts for `healthy_for` and asserts that none was pending or firing and that every
/// rule evaluated. The rule groups' first evaluations may predate the first scrape (absent()
/// is briefly true on an empty TSDB), so it first waits (10s at most) for them to settle.
pub async fn assert_quiet_while_healthy(
    prom: &Prometheus,
    log: &mut AlertLog,
    healthy_for: Duration,
    what: &str,
) {
    let _ = super::eventually(
        Duration::from_secs(10),
        Duration::from_millis(500),
        || async { prom.alerts().await.ok()?.is_empty().then_some(()) },
    )
    .await;
    let started = Instant::now();
    while started.elapsed() < healthy_for {
        log.record(prom.alerts().await.expect("alerts API"));
        sleep(Duration::from_secs(1)).await;
    }
    let errors = prom.rule_errors().await.unwrap();
    assert!(errors.is_empty(), "rules failed to evaluate: {errors:#?}");
    assert!(
        log.0.is_empty(),
        "alerts during the {what} ({healthy_for:?}):\n{}",
        log.report()
    );
}

/// [`poll_until_seen`], then fails naming every expected alert not seen, `what` was going
/// on, for how long, and every alert that was seen.
pub async fn assert_alerts_seen(
    prom: &Prometheus,
    log: &mut AlertLog,
    expected: &[Expected],
    limit: Duration,
    what: &str,
) {
    let started = Instant::now();
    poll_until_seen(prom, log, expected, limit).await;
    let not_seen = missing(log, expected);
    assert!(
        not_seen.is_empty(),
        "after {:?} of {what}, these alerts were not seen: {not_seen:#?}\nseen:\n{}",
        started.elapsed(),
        log.report()
    );
}
