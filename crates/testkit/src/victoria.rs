//! A VictoriaMetrics single node of a test's own (Debian `victoria-metrics`), on a free
//! loopback port and a data directory the test owns; stopped by [`down`] (an outage) and
//! started again on the same directory by [`up`]. Plain `std`.
//!
//! [`down`]: VictoriaMetrics::down
//! [`up`]: VictoriaMetrics::up

use crate::tool::program;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct VictoriaMetrics {
    program: PathBuf,
    data: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// `/usr/bin/victoria-metrics`, or why not (for [`crate::tool::require_tool`]).
pub fn find() -> Result<PathBuf, String> {
    program("victoria-metrics", "victoria-metrics")
}

impl VictoriaMetrics {
    /// Starts it on `data` (created when missing) and waits until it answers `/health`.
    pub fn start(program: PathBuf, data: &Path) -> VictoriaMetrics {
        let mut vm = VictoriaMetrics {
            program,
            data: data.to_path_buf(),
            port: crate::net::free_port(),
            child: None,
        };
        vm.up();
        vm
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and data) and waits until it is healthy.
    pub fn up(&mut self) {
        let child = Command::new(&self.program)
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            // Answer queries with the latest samples at once (default: 30s behind now).
            .arg("-search.latencyOffset=0s")
            // No result cache: tests write samples into the past and query them at once.
            .arg("-search.disableCache")
            // Samples of one series at one time kept once, as docs/scaling.md recommends:
            // a batch two servers took at once is written twice, the same samples.
            .arg("-dedup.minScrapeInterval=1ms")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.healthy() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("victoria-metrics did not get healthy on port {}", self.port);
    }

    /// SIGTERM, and waits for it to exit. Not SIGKILL: VictoriaMetrics keeps the last
    /// second or so of acknowledged samples in memory and loses them in a crash, by design;
    /// an outage test checks the sender, not that.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
