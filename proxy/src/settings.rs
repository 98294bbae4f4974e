//! The resolved settings of one proxy: what the command line and the config file decide,
//! with defaults for everything but the listen address and the upstream.

use std::net::SocketAddr;
use std::time::Duration;

use crate::relay::RelayConfig;

/// The upstream the proxy forwards to. Only `http://` is supported: the sidecar talks to an
/// application on the same host or pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`, as dialled and as put in forwarded request URIs.
    pub authority: String,
}

impl Upstream {
    /// Parses `http://host[:port]` (port 80 by default); no path, no TLS.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("an http:// URL, found {url:?} ({e})"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "an http:// URL (TLS to the upstream is not supported), found {url:?}"
            ));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!("an http:// URL without a path, found {url:?}"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("an http://host:port URL, found {url:?}"))?;
        if authority.as_str().contains('@') {
            return Err("an http://host:port URL without credentials".to_owned());
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            authority: format!("{}:{port}", authority.host()),
        })
    }
}

/// Stamp pointers: JSON pointers read from uncompressed server messages for sequencer lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampPointers {
    /// Pointer to the message's sequence number, like `/seq`.
    pub seq: String,
    /// Pointer to its publish time in Unix milliseconds, like `/ts`.
    pub published_ms: Option<String>,
}

/// One runtime thread and one relay thread by default: a sidecar relays one application's
/// traffic, beside it on the same cores (see docs/proxy.md, "Threads").
pub const DEFAULT_THREADS: usize = 1;

/// Everything a proxy needs to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The application.
    pub upstream: Upstream,
    /// Route templates (`/ws`, `/rooms/{id}`); any other path is recorded as `unmatched`.
    pub routes: Vec<String>,
    /// Where `/metrics` and `/healthz` are served; `None` turns them off.
    pub metrics_listen: Option<SocketAddr>,
    /// Upgrades from other `Origin`s get 403 without reaching the upstream.
    pub allowed_origins: Option<Vec<String>>,
    /// Application close codes kept as their own `close_code` label value.
    pub close_code_allowlist: Vec<u16>,
    /// Pointers for sequencer lag; `None` parses nothing.
    pub stamp_pointers: Option<StampPointers>,
    /// Bound on connecting to the upstream and on waiting for its response headers; then 504.
    pub upstream_timeout: Duration,
    /// A client must send its request headers within this (slowloris).
    pub header_read_timeout: Duration,
    /// Largest request head accepted; larger ones get 431.
    pub max_header_bytes: usize,
    /// How long a graceful shutdown waits for streams to drain.
    pub shutdown_timeout: Duration,
    /// Runtime threads: 1 is a current-thread runtime, more a work-stealing pool of that many
    /// workers. Upgraded connections run on as many relay threads of their own.
    pub threads: usize,
    /// Per-connection relay limits.
    pub relay: RelayConfig,
}

impl Settings {
    /// Defaults for everything else.
    pub fn new(listen: SocketAddr, upstream: Upstream) -> Self {
        Self {
            listen,
            upstream,
            routes: Vec::new(),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9478))),
            allowed_origins: None,
            close_code_allowlist: Vec::new(),
            stamp_pointers: None,
            upstream_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            shutdown_timeout: Duration::from_secs(10),
            threads: DEFAULT_THREADS,
            relay: RelayConfig::default(),
        }
    }

    /// Builds the metrics with these routes and this close-code allowlist, in `registry`, and
    /// sets up the stamp extractor.
    pub fn wsmon(&mut self, registry: &prometheus::Registry) -> Result<wsmon::WsMon, wsmon::Error> {
        let mut builder =
            wsmon::WsMon::builder().close_code_allowlist(self.close_code_allowlist.iter().copied());
        for r in &self.routes {
            builder = builder.route(r.clone());
        }
        if let Some(p) = &self.stamp_pointers {
            self.relay.stamp_extractor = Some(wsmon::sequencer::json_stamp_extractor(
                &p.seq,
                p.published_ms.as_deref(),
            ));
        }
        builder.build(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_http_host_port_only() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:3000").unwrap().authority,
            "127.0.0.1:3000"
        );
        assert_eq!(Upstream::parse("http://app").unwrap().authority, "app:80");
        assert!(Upstream::parse("https://app").is_err());
        assert!(Upstream::parse("http://app/x").is_err());
        assert!(Upstream::parse("http://u:p@app").is_err());
    }
}
