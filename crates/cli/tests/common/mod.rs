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

/// The findings end-to-end tests (findings*.rs): a real `skymeter server` whose findings
/// look back one day (`[findings] idle.days = rightsizing.days = 1`: one collection covers
/// one day), in a directory of its own.
pub struct FindingsServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    _server: Proc,
}

impl FindingsServer {
    pub fn start() -> FindingsServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("server.toml"),
            "[findings.idle]\ndays = 1\n[findings.rightsizing]\ndays = 1\n",
        )
        .unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let server = spawn(
            &[
                "server",
                "-c",
                "server.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-auth",
                "--data-dir",
                "server-data",
            ],
            dir.path(),
        );
        wait_healthy(&base);
        FindingsServer {
            dir,
            base,
            _server: server,
        }
    }

    /// `skymeter run --once` of one task collecting a day (`every = "1d"`, 5-minute
    /// periods, avg and max) with `collector` (the inline table's other keys, e.g.
    /// `plugin = "gcp", projects = [...]`) into this server; `env` set, `unset` removed.
    pub fn collect_a_day(&self, collector: &str, env: &[(&str, &str)], unset: &[&str]) {
        std::fs::write(
            self.dir.path().join("task.toml"),
            format!(
                r#"[agent]
data_dir = "agent-data"

[[task]]
name = "fleet"
schedule = {{ every = "1d" }}
collect = [{{ {collector}, delay = "0s", period = "300s", stats = ["avg", "max"] }}]
publish = [{{ plugin = "server", url = "{}" }}]
"#,
                self.base
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["run", "-c", "task.toml", "--once"])
            .current_dir(self.dir.path())
            .env_remove("SKYMETER_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        let run = cmd.output().unwrap();
        assert!(run.status.success(), "{}\n{}", stdout(&run), stderr(&run));
    }

    /// `skymeter findings --format json` as of today 00:00 UTC, the end of the day a
    /// `run --once` with `every = "1d"` collects (so the day looked back is the day
    /// collected, whatever the time the test runs at): the answer, and its items as
    /// (resource id, kind, monthly USD, recommended type) in the answer's order.
    pub fn findings(&self) -> (serde_json::Value, Vec<FindingRow>) {
        let findings = Command::new(bin())
            .args([
                "findings",
                "--server",
                &self.base,
                "--format",
                "json",
                "--at",
                &midnight(),
            ])
            .output()
            .unwrap();
        assert!(findings.status.success(), "{}", stderr(&findings));
        let answer: serde_json::Value = serde_json::from_slice(&findings.stdout).unwrap();
        let rows = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["resource"]["id"].as_str().unwrap().to_string(),
                    f["kind"].as_str().unwrap().to_string(),
                    f["monthly_usd"].as_f64(),
                    f["recommended_type"].as_str().map(str::to_string),
                )
            })
            .collect();
        (answer, rows)
    }
}

/// A finding as the findings tests compare it: (resource id, kind, monthly USD,
/// recommended type).
pub type FindingRow = (String, String, Option<f64>, Option<String>);

/// Today 00:00 UTC, RFC 3339.
pub fn midnight() -> String {
    chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339()
}

/// The price table the binary ships for `cloud` (crates/plugins/src/collectors/<cloud>/
/// prices.json): `price(region, key)` is its USD figure, so that a test computes the
/// amounts it expects from the same file.
pub struct ShippedPrices(serde_json::Value);

impl ShippedPrices {
    pub fn of(cloud: &str) -> ShippedPrices {
        let path = repo_root().join(format!("crates/plugins/src/collectors/{cloud}/prices.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ShippedPrices(serde_json::from_str(&text).unwrap())
    }

    pub fn price(&self, region: &str, key: &str) -> f64 {
        self.0["regions"][region][key]["usd"]
            .as_f64()
            .unwrap_or_else(|| panic!("no {region} {key} in the shipped table"))
    }
}

/// Rounded to the cent, as findings are.
pub fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
