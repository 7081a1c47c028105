//! Loopback ports for tests.

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

/// Where [`free_port`] looks first: below Linux's default ephemeral range (32768–60999),
/// which `bind(127.0.0.1:0)` and outgoing connections draw from.
const PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A TCP port on 127.0.0.1 that was free a moment ago, for a program the test starts with
/// a `--listen`-style flag; a server the test runs in-process should bind 127.0.0.1:0
/// itself (no window for another process to take the port).
///
/// Picked at random below the ephemeral range rather than with `bind(:0)`: the kernel tends
/// to hand a port that was just released to the next `bind(:0)`, so a test that stops its
/// server and starts it again on the same port (an outage test) found that port taken by
/// another test's server started in between (the mqtt and remote_write outage tests did,
/// when run together).
pub fn free_port() -> u16 {
    let state = std::collections::hash_map::RandomState::new();
    for attempt in 0u64..200 {
        let mut h = state.build_hasher();
        h.write_u64(attempt);
        let span = u64::from(PORTS.end - PORTS.start);
        let port = PORTS.start + (h.finish() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}
