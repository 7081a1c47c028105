//! moto, the AWS emulator, on a free loopback port for one test. Compiled for the collector's
//! unit tests and, with the `standin` feature, for the CLI's end-to-end tests.
//!
//! Where moto is comes from `SKYMETER_MOTO_SERVER` (scripts/test installs moto in a venv and
//! sets it). What a test does when moto is missing (skip on a laptop, fail under CI) is the
//! testkit's rule: `skymeter_testkit::tool::require_tool(test, Moto::start())`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// moto_server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`: the endpoint URL for every AWS service.
    pub url: String,
    bin: PathBuf,
}

impl Moto {
    /// Starts moto from `SKYMETER_MOTO_SERVER` and waits (up to 30 s) until it listens. `Err`
    /// says why moto is not available here; a moto that starts but never listens panics.
    pub fn start() -> Result<Moto, String> {
        let bin = std::env::var_os("SKYMETER_MOTO_SERVER")
            .map(PathBuf::from)
            .ok_or("SKYMETER_MOTO_SERVER is not set (scripts/test installs moto and sets it)")?;
        if !bin.exists() {
            return Err(format!(
                "SKYMETER_MOTO_SERVER={} does not exist",
                bin.display()
            ));
        }
        // A port the OS picked a moment ago; moto takes it by number.
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
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            bin,
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not listen on 127.0.0.1:{port} within 30s");
    }

    /// The Python of moto's venv (it has boto3, for seeding).
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
