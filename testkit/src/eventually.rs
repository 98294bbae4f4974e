//! Waiting for an event, not for luck: poll a condition with a generous deadline.

use std::future::Future;
use std::time::Duration;

/// Polls `check` every `every` until it returns `Some`, or `limit` has passed (then `None`,
/// so the caller can fail with what it last saw).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let mut n = 0;
/// let three = wsmon_testkit::eventually(Duration::from_secs(5), Duration::from_millis(1), || {
///     n += 1;
///     std::future::ready((n == 3).then_some(n))
/// })
/// .await;
/// assert_eq!(three, Some(3));
/// # }
/// ```
pub async fn eventually<T, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
