//! Free loopback ports for servers a test starts as processes (in-process servers bind
//! `127.0.0.1:0` themselves and read the port back, which has no race).

use std::net::{SocketAddr, TcpListener};

/// A free address on 127.0.0.1: bound and released, so another process may take it first;
/// acceptable on a test machine, and callers that restart on it retry.
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
}

/// The port of [`free_local_addr`].
pub fn free_port() -> u16 {
    free_local_addr().port()
}
