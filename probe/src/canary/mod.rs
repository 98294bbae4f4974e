//! One canary's life, bottom to top: the socket and its bounded writes ([`io`]), dialling
//! ([`dial`], with [`tls`] and the [`handshake`]), the held [`session`], and the second path
//! its nonces take ([`publish`]), the fresh connections of [`connect_check`], and the held
//! stream's replacement ([`recycle`]).

pub mod connect_check;
pub mod dial;
pub mod handshake;
pub mod io;
pub mod publish;
pub mod recycle;
pub mod session;
pub mod tls;
