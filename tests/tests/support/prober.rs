//! The scenarios' prober daemon: the shared harness (`wsmon_testkit::daemon`) with the
//! settings every scenario runs with.

use std::path::Path;

pub use wsmon_testkit::daemon::ProberDaemon;

/// Quick timeouts, and reconnect backoff from 200ms up to 2s.
const SCENARIO_DEFAULTS: &str = "defaults:\n  connect_timeout: 2s\n  first_payload_timeout: 2s\n  backoff: { initial: 200ms, max: 2s }\n";

/// Starts `wsmon-probe daemon` (`bin`) with [`SCENARIO_DEFAULTS`] and `canaries_yaml` (the
/// `canaries:` list, already indented), and waits for `/healthz`.
pub async fn start(bin: &Path, canaries_yaml: &str) -> ProberDaemon {
    ProberDaemon::start(
        bin,
        &format!("{SCENARIO_DEFAULTS}canaries:\n{canaries_yaml}"),
    )
    .await
}
