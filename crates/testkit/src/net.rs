//! Loopback ports for tests.

/// A TCP port on 127.0.0.1 that was free a moment ago: the OS picks it for a listener that is
/// closed at once. For a program the test starts with a `--listen`-style flag; a server the
/// test runs in-process should bind 127.0.0.1:0 itself (no window for another process to
/// take the port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}
