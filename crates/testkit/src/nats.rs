//! NATS for tests: the machine's server (JetStream on 127.0.0.1:4222) and a `nats-server`
//! of a test's own, which the test can kill and start again on the same store directory.
//!
//! Plain `std`: the tests talk to the server with their own client (async-nats).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The machine's NATS (with JetStream), where these machines run it.
pub const MACHINE_URL: &str = "nats://127.0.0.1:4222";

/// Whether the machine's NATS answers on 127.0.0.1:4222; when it does not, the CI-aware
/// skip of [`crate::tool`] for `test` and `false`.
#[track_caller]
pub fn machine_nats(test: &str) -> bool {
    if TcpStream::connect(("127.0.0.1", 4222)).is_ok() {
        return true;
    }
    crate::tool::missing_tool(
        test,
        "no NATS server on 127.0.0.1:4222 (these machines run nats-server -js there)",
    );
    false
}

/// `nats-server` from PATH or `/usr/sbin` (Debian package `nats-server`).
pub fn program() -> Result<PathBuf, String> {
    crate::tool::daemon("nats-server", "nats-server")
}

/// A `nats-server -js` of the test's own on a free loopback port, its JetStream store in a
/// directory the test gives; killed when dropped.
pub struct OwnNats {
    program: PathBuf,
    store: PathBuf,
    /// A config file (`-c`), when the test gave settings.
    conf: Option<PathBuf>,
    pub port: u16,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts it and waits until it listens.
    pub fn start(program: PathBuf, store: &Path) -> OwnNats {
        Self::start_with(program, store, "")
    }

    /// Starts it with `settings` (nats-server config text, e.g. `max_payload: 2048`).
    pub fn start_with(program: PathBuf, store: &Path, settings: &str) -> OwnNats {
        let conf = (!settings.is_empty()).then(|| {
            let path = store.with_extension("conf");
            std::fs::write(&path, settings).expect("nats-server config written");
            path
        });
        let mut n = OwnNats {
            program,
            store: store.to_path_buf(),
            conf,
            port: crate::net::free_port(),
            child: None,
        };
        n.up();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store.
    pub fn up(&mut self) {
        let mut command = Command::new(&self.program);
        if let Some(conf) = &self.conf {
            command.arg("-c").arg(conf);
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen on {}", self.port);
    }

    /// Kills the server (SIGKILL: an outage, not a goodbye) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The machine's JetStream, through the test's own client (feature `nats-client`).
#[cfg(feature = "nats-client")]
pub async fn machine_jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(MACHINE_URL)
        .await
        .expect("connects to the machine's NATS");
    async_nats::jetstream::new(client)
}

/// A stream name and a subject prefix no other test run uses: `SKYTEST_<id>`,
/// `skytest.<id>`.
pub fn unique_stream() -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let id = format!("{nanos:x}{:x}", std::process::id());
    (format!("SKYTEST_{id}"), format!("skytest.{id}"))
}

/// Deletes a stream of the machine's NATS when the test ends, passed or failed (feature
/// `nats-client`).
#[cfg(feature = "nats-client")]
pub struct DeleteStream(pub String);

#[cfg(feature = "nats-client")]
impl Drop for DeleteStream {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A thread and a runtime of its own: the test may be inside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let _ = machine_jetstream().await.delete_stream(&name).await;
            })
        })
        .join();
    }
}
