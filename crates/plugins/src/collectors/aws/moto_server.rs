//! moto, the AWS emulator, on a free loopback port for one test. Plain `std`, so that the
//! CLI's end-to-end tests include this same file (`#[path]`) instead of a copy of it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// moto_server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
    bin: PathBuf,
}

impl Moto {
    /// The Python of moto's venv (it has boto3, for seeding).
    #[allow(dead_code)]
    pub fn python(&self) -> PathBuf {
        self.bin.with_file_name("python")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared rule for a missing outside tool (a skip on a laptop, a failure under CI).
#[path = "../../../../../test-support/tool.rs"]
mod tool;

/// Starts moto from `SKYMETER_MOTO_SERVER`. When moto is missing: under `CI=true` panics;
/// otherwise prints why (`SKIPPED: …`, which `scripts/test` counts) and returns None so that
/// the test skips.
#[track_caller]
pub fn moto(test: &str) -> Option<Moto> {
    let skip = |why: String| {
        tool::missing_tool(test, &why);
        None
    };
    let Some(bin) = std::env::var_os("SKYMETER_MOTO_SERVER").map(PathBuf::from) else {
        return skip(
            "SKYMETER_MOTO_SERVER is not set (scripts/test installs moto and sets it)".into(),
        );
    };
    if !bin.exists() {
        return skip(format!(
            "SKYMETER_MOTO_SERVER={} does not exist",
            bin.display()
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let m = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
        bin,
    };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(m);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not listen on 127.0.0.1:{port} within 30s");
}
