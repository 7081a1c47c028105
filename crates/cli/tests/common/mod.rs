//! Helpers for tests that drive the real `skymeter` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_skymeter"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs skymeter with `args` in `cwd`; logs quiet unless the test asks otherwise.
pub fn skymeter_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("SKYMETER_LOG")
        .output()
        .expect("skymeter runs")
}

pub fn skymeter(args: &[&str]) -> Output {
    skymeter_in(&repo_root(), args)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses JSON lines.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The points among records, as (metric, labels, value).
pub fn points(records: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    records.iter().filter(|r| r["type"] == "point").collect()
}

/// The value of the one point of `metric` whose labels include `labels`; when several do,
/// the one with exactly `labels` (so `&[]` picks the total among per-core points).
pub fn value_of(records: &[serde_json::Value], metric: &str, labels: &[(&str, &str)]) -> f64 {
    let mut found: Vec<_> = points(records)
        .into_iter()
        .filter(|p| p["metric"] == metric && labels.iter().all(|(k, v)| p["labels"][*k] == *v))
        .collect();
    if found.len() > 1 {
        found.retain(|p| p["labels"].as_object().map_or(0, |m| m.len()) == labels.len());
    }
    assert_eq!(
        found.len(),
        1,
        "expected one `{metric}` {labels:?}, got {found:?}"
    );
    found[0]["value"].as_f64().unwrap()
}

/// Serves `router` on 127.0.0.1 on a runtime of its own; returns the base URL.
pub fn serve(router: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    format!("http://{addr}")
}

#[allow(unused_imports)] // not every test binary that includes `common` needs a port
pub use skymeter_testkit::net::free_port;
/// The shared rule for a missing outside tool: `SKIPPED: <test>: <why>` on a developer's
/// machine (counted by `scripts/test`), a failure under `CI=true`.
pub use skymeter_testkit::tool;

/// `test` cannot run here because of `why`: fails under CI, otherwise reports the skip (the
/// caller then returns).
#[track_caller]
pub fn skip(test: &str, why: &str) {
    tool::missing_tool(test, why);
}

/// A running `skymeter` (or other child), killed and reaped when dropped, so that a failing
/// test leaves no server behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args` in `cwd`, output discarded.
pub fn spawn(args: &[&str], cwd: &Path) -> Proc {
    Proc(
        Command::new(bin())
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("skymeter starts"),
    )
}

/// Polls `f` until it returns Some, up to `within`.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits up to 15 s for the server at `base` to answer `/health` with 200.
pub fn wait_healthy(base: &str) {
    eventually(Duration::from_secs(15), || {
        reqwest::blocking::get(format!("{base}/health"))
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .expect("the server answers /health");
}

/// Creates a token with `scopes` in the store at `data_dir` (`skymeter token create`).
pub fn create_token(data_dir: &Path, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", "--name", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let data = data_dir.to_str().unwrap();
    args.extend(["--data-dir", data]);
    let out = skymeter(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// `skymeter server` on a free loopback port over `<dir>/data`, with tokens; answers
/// `/health`. Returns the process, the base URL and a token with the ingest and read scopes.
pub fn server_with_token(dir: &Path) -> (Proc, String, String) {
    let token = create_token(&dir.join("data"), "test", &["ingest", "read"]);
    let (server, base) = server_on(dir);
    (server, base, token)
}

/// `skymeter server` on a free loopback port over `<dir>/data` (make its tokens first with
/// [`create_token`]); answers `/health`. Returns the process and the base URL.
pub fn server_on(dir: &Path) -> (Proc, String) {
    let data = dir.join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = spawn(
        &[
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir,
    );
    wait_healthy(&base);
    (server, base)
}

/// A shell script in `dir` that prints `lines`: for the `exec` collector, fixed points.
pub fn script_printing(dir: &Path, lines: &str) -> PathBuf {
    let script = dir.join("points.sh");
    std::fs::write(&script, format!("cat <<'EOF'\n{lines}\nEOF\n")).unwrap();
    script
}
