//! snap drop-in, through the binary: the OSv collector's example task manifest (the seed),
//! with only the OSv address changed, runs against the OSv stand-in and writes its file;
//! the same manifest goes to a running agent with `skymeter task create -t`, `watch` shows
//! its values, `stop` stops it, and after an agent restart the task is still there.

mod common;

use common::*;
use skymeter_plugins::collectors::osv::standin::OsvStandin;
use skymeter_testkit::net::free_port;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the seed's manifest publishes; kept as it is (only the OSv address changes).
const PUBLISHED: &str = "/tmp/published_psutil";
/// Both tests write that one file: one at a time.
static PUBLISHED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn seed_manifest(osv: &OsvStandin, dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(repo_root().join("testdata/snap/osv-file-example.json")).unwrap();
    let text = text
        .replace("\"192.168.122.89\"", &format!("\"{}\"", osv.addr.ip()))
        .replace(
            "\"swag_port\": 8000",
            &format!("\"swag_port\": {}", osv.addr.port()),
        );
    assert!(text.contains(&osv.addr.port().to_string()));
    let path = dir.join("osv-file-example.json");
    std::fs::write(&path, text).unwrap();
    path
}

fn standin() -> OsvStandin {
    let osv = OsvStandin::bind("127.0.0.1:0").unwrap();
    osv.set_memory(2_023_403_520, 4_294_967_296);
    osv.set_time_ms(176_521_305);
    osv.set_count("waitqueue_wake_one", 1_319_942);
    osv.set_count("callout_reset", 206_217);
    osv
}

/// The points in the published file, by metric: the last value of each.
fn published() -> std::collections::BTreeMap<String, f64> {
    let text = std::fs::read_to_string(PUBLISHED).unwrap_or_default();
    points(&json_lines(&text))
        .into_iter()
        .map(|p| {
            (
                p["metric"].as_str().unwrap().to_string(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn expect_seed_values(got: &std::collections::BTreeMap<String, f64>) {
    assert_eq!(
        got.get("memory.available"),
        Some(&2_023_403_520.0),
        "{got:?}"
    );
    assert_eq!(got.get("osv.cpu.cputime"), Some(&176_521_305.0), "{got:?}");
    assert_eq!(
        got.get("osv.trace.wait.waitqueue_wake_one"),
        Some(&1_319_942.0),
        "{got:?}"
    );
    assert_eq!(
        got.get("osv.trace.callout.callout_reset"),
        Some(&206_217.0),
        "{got:?}"
    );
    // Only what the manifest asked for.
    assert!(!got.contains_key("memory.total"), "{got:?}");
}

#[test]
fn the_seed_manifest_runs_unchanged_against_the_osv_standin() {
    let _one = PUBLISHED_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let osv = standin();
    let manifest = seed_manifest(&osv, dir.path());
    let m = manifest.to_str().unwrap();

    let out = skymeter(&["validate", "-c", m]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("task `osv-file-example`: every 1s → collect [osv] → process [passthru] → publish [file]"),
        "{text}"
    );

    let _ = std::fs::remove_file(PUBLISHED);
    let agent = spawn(&["run", "-c", m], dir.path());
    let got = eventually(Duration::from_secs(20), || {
        let got = published();
        got.contains_key("osv.trace.callout.callout_reset")
            .then_some(got)
    })
    .expect("the file publisher wrote the OSv points");
    drop(agent);
    expect_seed_values(&got);

    // A mistake in the manifest is named by its line.
    let bad = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("/intel/osv/memory/free", "/intel/osv/memory/fre");
    let bad_path = dir.path().join("bad.json");
    std::fs::write(&bad_path, &bad).unwrap();
    let out = skymeter(&["validate", "-c", bad_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let line = bad.lines().position(|l| l.contains("memory/fre")).unwrap() + 1;
    let err = stderr(&out);
    assert!(
        err.contains(&format!("bad.json:{line}")) && err.contains("/intel/osv/memory/fre"),
        "{err}"
    );
}

struct Agent {
    _proc: Proc,
    url: String,
    token_file: PathBuf,
}

fn start_agent(dir: &Path, port: u16) -> Agent {
    let data = dir.join("agent-data");
    let proc = spawn(
        &[
            "run",
            "--api",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir,
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url);
    Agent {
        _proc: proc,
        url,
        token_file: data.join("agent-api-token"),
    }
}

impl Agent {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--agent",
            &self.url,
            "--token-file",
            self.token_file.to_str().unwrap(),
        ]);
        skymeter(&all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    fn task_json(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["task", "get", id, "--format", "json"])).unwrap()
    }
}

#[test]
fn tasks_on_a_running_agent_create_watch_stop_and_survive_a_restart() {
    let _one = PUBLISHED_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let osv = standin();
    let manifest = seed_manifest(&osv, dir.path());
    let port = free_port();
    let agent = start_agent(dir.path(), port);

    // The API wants the token.
    let anon = reqwest::blocking::get(format!("{}/api/v1/tasks", agent.url)).unwrap();
    assert_eq!(anon.status(), 401);
    let out = skymeter(&[
        "task",
        "list",
        "--agent",
        &agent.url,
        "--token",
        "sky_wrong",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    let _ = std::fs::remove_file(PUBLISHED);
    let created = agent.ok(&["task", "create", "-t", manifest.to_str().unwrap()]);
    assert!(created.starts_with("Task created\nID: "), "{created}");
    assert!(created.contains("State: running"), "{created}");
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("ID: "))
        .unwrap()
        .to_string();
    let name = created
        .lines()
        .find_map(|l| l.strip_prefix("Name: "))
        .unwrap()
        .to_string();
    assert_eq!(name, format!("Task-{id}"), "snap names a task after its id");

    let list = agent.ok(&["task", "list"]);
    assert!(list.contains(&id) && list.contains("running"), "{list}");
    let metrics = agent.ok(&["metric", "list"]);
    assert!(
        metrics.contains("osv.trace.wait.waitqueue_wake_one"),
        "{metrics}"
    );
    let plugins = agent.ok(&["plugin", "list"]);
    assert!(
        plugins.contains("passthru") && plugins.contains("osv"),
        "{plugins}"
    );

    // watch: the values of the next run, as they are collected.
    let mut watch = Command::new(bin())
        .args([
            "task",
            "watch",
            &id,
            "--agent",
            &agent.url,
            "--token-file",
            agent.token_file.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout_pipe = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                let done = line.starts_with("osv.trace.callout.callout_reset");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("watch ended: {e}; {seen:?}"),
        }
    }
    let row = |metric: &str| {
        seen.iter()
            .find(|l| l.split_whitespace().next() == Some(metric))
            .unwrap_or_else(|| panic!("no {metric} in the watch: {seen:#?}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert!(seen[0].starts_with("Watching task"), "{seen:?}");
    assert_eq!(row("memory.available"), "2023403520");
    assert_eq!(row("osv.trace.callout.callout_reset"), "206217");

    // stop: the task stops, the watch says so and ends, nothing more is written.
    let stopped = agent.ok(&["task", "stop", &id]);
    assert!(stopped.contains("is stopped"), "{stopped}");
    let ended = eventually(Duration::from_secs(10), || {
        watch.try_wait().unwrap().map(|s| s.success())
    });
    assert_eq!(ended, Some(true), "watch ends when the task stops");
    expect_seed_values(&published());
    let lines = std::fs::read_to_string(PUBLISHED).unwrap().lines().count();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        std::fs::read_to_string(PUBLISHED).unwrap().lines().count(),
        lines,
        "a stopped task publishes nothing"
    );
    assert_eq!(agent.task_json(&id)["state"], "stopped");

    // Restart the agent: the task is still listed, stopped as it was left; it starts again.
    drop(agent);
    let agent = start_agent(dir.path(), port);
    let list = agent.ok(&["task", "list"]);
    assert!(list.contains(&id) && list.contains("stopped"), "{list}");
    let t = agent.task_json(&name);
    assert_eq!(t["id"], id.as_str());
    assert_eq!(t["format"], "manifest");
    assert_eq!(t["process"], serde_json::json!(["passthru"]));
    osv.set_count("callout_reset", 206_300);
    agent.ok(&["task", "start", &id]);
    eventually(Duration::from_secs(20), || {
        (published().get("osv.trace.callout.callout_reset") == Some(&206_300.0)).then_some(())
    })
    .expect("the restarted task publishes again");
    assert_eq!(agent.task_json(&id)["state"], "running");

    // Remove: gone from the list and from the data dir.
    let removed = agent.ok(&["task", "remove", &id]);
    assert!(removed.contains("removed"), "{removed}");
    let out = agent.cli(&["task", "get", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    assert!(!dir
        .path()
        .join("agent-data/tasks")
        .join(format!("{id}.json"))
        .exists());

    // A bad task is refused whole, its mistake located, nothing created.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[task]]\nname = \"b\"\nschedule = { every = \"1s\" }\ncollect = [{ plugin = \"nope\" }]\npublish = [{ plugin = \"stdout\" }]\n",
    )
    .unwrap();
    let out = agent.cli(&["task", "create", "-t", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("task:4"), "{}", stderr(&out));
    let list: serde_json::Value =
        serde_json::from_str(&agent.ok(&["task", "list", "--format", "json"])).unwrap();
    assert_eq!(list["tasks"], serde_json::json!([]));
}
