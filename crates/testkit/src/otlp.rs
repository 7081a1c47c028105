//! An OTLP/HTTP metrics receiver of a test's own: `testdata/otlp/receiver.py`, which decodes
//! with the official OpenTelemetry protobuf bindings (PyPI `opentelemetry-proto`, in the
//! venv scripts/test makes: `$SKYMETER_OTLP_PYTHON`, else `<cache>/venv-otlp/bin/python3`)
//! and writes each request as a JSON line. Stopped by [`Receiver::down`] (an outage) and
//! started again on the same port and file by [`Receiver::up`]. Plain `std`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Receiver {
    python: PathBuf,
    out: PathBuf,
    pub port: u16,
    refuse_first: u32,
    child: Option<Child>,
}

/// The venv's python with `opentelemetry-proto`, or why not (for
/// [`crate::tool::require_tool`]).
pub fn find() -> Result<PathBuf, String> {
    let python = std::env::var_os("SKYMETER_OTLP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tool::cache().join("venv-otlp/bin/python3"));
    let ok = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import opentelemetry.proto (PyPI `opentelemetry-proto`; scripts/test installs it into <cache>/venv-otlp, or set SKYMETER_OTLP_PYTHON)",
            python.display()
        ))
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/otlp/receiver.py")
}

impl Receiver {
    /// Starts it on a free port, appending what it receives to `out`; the first
    /// `refuse_first` requests are answered 503.
    pub fn start(python: PathBuf, out: &Path, refuse_first: u32) -> Receiver {
        let mut r = Receiver {
            python,
            out: out.to_path_buf(),
            port: crate::net::free_port(),
            refuse_first,
            child: None,
        };
        r.up();
        r
    }

    /// The base URL (`http://127.0.0.1:<port>`); requests go to `<url>/v1/metrics`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) and waits until it listens.
    pub fn up(&mut self) {
        let mut child = Command::new(&self.python)
            .arg(script())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--out")
            .arg(&self.out)
            .arg("--refuse-first")
            .arg(self.refuse_first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the OTLP receiver starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the receiver's output");
        assert_eq!(line.trim(), "ready", "the OTLP receiver did not start");
        self.refuse_first = 0;
        self.child = Some(child);
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What it received so far: one JSON document per request,
    /// `{"headers": {...}, "request": {...}}`.
    pub fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}
