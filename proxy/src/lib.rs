//! # wsmon-proxy: wsmon's stream metrics for WebSocket servers in any language
//!
//! A sidecar reverse proxy. Plain HTTP passes through; WebSocket upgrades are forwarded to
//! the upstream and, after the 101, relayed byte for byte while a passive frame parser records
//! the middleware's `websocket_server_*` families (see `docs/proxy.md`).
//!
//! ```text
//! wsmon-proxy --listen 0.0.0.0:8080 --upstream http://127.0.0.1:3000 --route /ws
//! ```
//!
//! Layers, top to bottom: `main` (the command line), [`server`] (listener, forwarding,
//! upgrades) and [`admin`] (`/metrics`), [`relay`] (upgraded connections, on relay threads of
//! their own), [`frame`] (the I/O-free parser), with [`forward`] (header rules), [`settings`]
//! and [`config`] beside.

pub mod admin;
pub mod config;
pub mod forward;
pub mod frame;
pub mod relay;
pub mod server;
pub mod settings;

pub use server::Proxy;
pub use settings::{Settings, Upstream};
