//! The agent across its own restarts and at its start, through the real `skymeter run`:
//!
//! - the aws collector against moto (the AWS emulator), publishing through the `server`
//!   publisher to a real `skymeter server`: the agent runs, is killed (SIGKILL) and stays
//!   down for more than three windows, restarts, and the server's store holds every window
//!   exactly once — the missed ones filled from CloudWatch's history, oldest first; the
//!   host collector in the same task reports the gap it cannot fill in the batch's `errors`;
//! - the host collector on a 1 s schedule has its points from the first run, with no
//!   timeout (its 1 s warm-up no longer counts against the 1 s collection timeout).
//!
//! CloudWatch periods are whole minutes, so the aws test drives the agent with the
//! test-only clock `SKYMETER_TEST_CLOCK` (see crates/pipeline/src/clock.rs) at 30× speed:
//! a 60 s window passes every 2 real seconds, and the test takes about half a minute.

// The cloudwatch test needs the aws collector (and its moto stand-in); without the feature
// its helpers are unused, the host test still runs.
#![cfg_attr(not(feature = "aws"), allow(dead_code, unused_imports))]

mod common;

use chrono::{DateTime, Timelike, Utc};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[cfg(feature = "aws")]
use skymeter_plugins::collectors::aws::standin::Moto;

/// The clock's speed: virtual seconds per real second.
const SPEED: i64 = 30;

/// Seeds moto: three instances, and one CPUUtilization datapoint per minute per instance
/// from `base` for `minutes` minutes, of value `minute index + 1000 × instance index`, so
/// that every point read back says which minute it is. Prints the instance ids.
const SEED: &str = r#"
import boto3, datetime, sys
url, base, minutes = sys.argv[1], datetime.datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
img = ec2.describe_images()["Images"][0]["ImageId"]
r = ec2.run_instances(ImageId=img, InstanceType="m5.large", MinCount=3, MaxCount=3)
cw = boto3.client("cloudwatch", **kw)
for i, inst in enumerate(r["Instances"]):
    data = [{
        "MetricName": "CPUUtilization",
        "Dimensions": [{"Name": "InstanceId", "Value": inst["InstanceId"]}],
        "Timestamp": base + datetime.timedelta(minutes=k, seconds=30),
        "Value": float(k + 1000 * i)} for k in range(minutes)]
    for j in range(0, len(data), 20):
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=data[j:j + 20])
    print(inst["InstanceId"])
"#;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn start_agent(dir: &Path, cfg: &Path, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-c", cfg.to_str().unwrap()])
        .current_dir(dir)
        .env("SKYMETER_LOG", "info")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("skymeter run starts")
}

/// SIGTERM, then the agent's log.
fn stop(child: Child) -> String {
    signal(child, "-TERM", true)
}

/// SIGKILL (no chance to save anything on the way out), then the agent's log.
fn kill(child: Child) -> String {
    signal(child, "-KILL", false)
}

fn signal(child: Child, sig: &str, clean_exit: bool) -> String {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    if clean_exit {
        assert!(out.status.success(), "{:?}", out.status);
    }
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every `cpu.utilization` point of provider `aws` the server's store holds, through
/// `GET /api/v1/points` (all pages): (instance id, time, value).
fn stored_aws_points(base: &str) -> Vec<(String, DateTime<Utc>, f64)> {
    let client = reqwest::blocking::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client.get(format!("{base}/api/v1/points")).query(&[
            ("metric", "cpu.utilization"),
            ("provider", "aws"),
            ("start", "-24h"),
            ("end", "now"),
            ("limit", "1000"),
        ]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: serde_json::Value = req
            .send()
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .unwrap();
        for s in page["series"].as_array().unwrap() {
            let id = s["resource"]["id"].as_str().unwrap().to_string();
            for p in s["points"].as_array().unwrap() {
                let ts: DateTime<Utc> = p[0].as_str().unwrap().parse().unwrap();
                out.push((id.clone(), ts, p[1].as_f64().unwrap()));
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn ts_of(p: &serde_json::Value) -> DateTime<Utc> {
    p["ts"].as_str().unwrap().parse().unwrap()
}

#[cfg(feature = "aws")]
#[test]
fn a_restart_fills_the_windows_it_missed_exactly_once_from_cloudwatch() {
    let test = "a_restart_fills_the_windows_it_missed_exactly_once_from_cloudwatch";
    // The shared missing-tool rule: a skip on a laptop, a failure under CI.
    let Some(m) = tool::require_tool(test, Moto::start()) else {
        return;
    };
    // The agent's time: three hours ago, on a whole minute, running 30× faster from now.
    let real_anchor = Utc::now();
    let virtual_anchor = (real_anchor - chrono::Duration::hours(3))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let clock = format!(
        "{}@{}x{SPEED}",
        rfc3339(virtual_anchor),
        rfc3339(real_anchor)
    );
    // Data for every minute the test can touch (it lasts well under a minute of real time,
    // half an hour of the agent's).
    let base_time = virtual_anchor - chrono::Duration::minutes(10);
    let seed = Command::new(m.python())
        .args(["-c", SEED, &m.url, &base_time.to_rfc3339(), "60"])
        .output()
        .unwrap();
    assert!(
        seed.status.success(),
        "{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let ids: Vec<String> = String::from_utf8_lossy(&seed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 3);

    let dir = tempfile::tempdir().unwrap();
    // The server the agent delivers to (its own time is real time; the points carry the
    // agent's).
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let _server = spawn(
        &[
            "server",
            "--listen",
            &listen,
            "--data-dir",
            "server-data",
            "--no-auth",
        ],
        dir.path(),
    );
    eventually(Duration::from_secs(15), || {
        reqwest::blocking::get(format!("{base}/health"))
            .ok()
            .filter(|r| r.status().is_success())
    })
    .expect("the server answers /health");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[agent]
data_dir = "data"

[[task]]
name = "cloud"
schedule = {{ every = "60s" }}
collect = [
  {{ plugin = "aws", regions = ["us-east-1"], services = ["ec2"], ec2_metrics = ["CPUUtilization"], period = "60s", delay = "0s", stats = ["avg"], cost = [] }},
  {{ plugin = "host", warmup = "100ms" }},
]
metrics = ["cpu.utilization"]
publish = [
  {{ plugin = "server", url = "{base}", heartbeat_interval = "1s", timeout = "2s" }},
  {{ plugin = "file", path = "out.jsonl" }},
]
"#
        ),
    )
    .unwrap();
    let env = [
        ("SKYMETER_TEST_CLOCK", clock),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", m.url.clone()),
    ];
    let virtual_now = || real_anchor_to_virtual(real_anchor, virtual_anchor);

    // First run: a few windows, then SIGKILL: the window marks must already be on disk.
    let agent = start_agent(dir.path(), &cfg, &env);
    std::thread::sleep(Duration::from_secs(7));
    let log1 = kill(agent);
    let stopped_at = virtual_now();
    let records = json_lines(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap());
    let first_run_last = points(&records)
        .iter()
        .filter(|p| p["resource"]["provider"] == "aws")
        .map(|p| ts_of(p))
        .max()
        .unwrap_or_else(|| panic!("no aws point in the first run:\n{log1}"));
    assert!(
        WindowMarksFile::read(dir.path()).contains("\"collector\":\"aws\""),
        "the window marks are kept in the data dir"
    );

    // Down for more than three windows of the agent's time.
    while virtual_now() < stopped_at + chrono::Duration::minutes(4) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let agent = start_agent(dir.path(), &cfg, &env);
    std::thread::sleep(Duration::from_secs(7));
    let log2 = stop(agent);
    assert!(log2.contains("catching up on the windows missed"), "{log2}");

    let records = json_lines(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap());
    // The store: every (instance, minute) exactly once, every minute from the first to the
    // last, each with the value CloudWatch holds for it. (The agent's own file may hold a
    // window twice: a SIGKILL between publishing a window and saving its mark makes the
    // restarted agent collect it again; the server stores a sample per series and time.)
    let stored = eventually(Duration::from_secs(20), || {
        let stored = stored_aws_points(&base);
        let last = stored.iter().map(|(_, t, _)| *t).max()?;
        (last >= first_run_last + chrono::Duration::minutes(5)).then_some(stored)
    })
    .unwrap_or_else(|| panic!("the server never got the second run's windows:\n{log2}"));
    let mut seen: BTreeMap<(String, DateTime<Utc>), usize> = BTreeMap::new();
    for (id, ts, value) in stored {
        // The value says which minute CloudWatch answered for: the period that ends at ts.
        let i = ids
            .iter()
            .position(|x| *x == id)
            .expect("a seeded instance") as f64;
        let minute = ((ts - base_time).num_minutes() - 1) as f64;
        assert_eq!(value, minute + 1000.0 * i, "{id} at {ts}");
        *seen.entry((id, ts)).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "windows stored twice: {dupes:?}");
    for id in &ids {
        let times: Vec<DateTime<Utc>> = seen
            .keys()
            .filter(|(i, _)| i == id)
            .map(|(_, t)| *t)
            .collect();
        assert!(!times.is_empty(), "nothing stored for {id}");
        for pair in times.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                chrono::Duration::minutes(1),
                "a gap in {id}'s minutes: {times:?}"
            );
        }
        let last = *times.last().unwrap();
        assert!(
            last >= first_run_last + chrono::Duration::minutes(5),
            "the second run went on past the gap: {times:?}"
        );
    }
    // The file says the same minutes, at most one of them twice (the killed one).
    let mut in_file: BTreeMap<(String, DateTime<Utc>), usize> = BTreeMap::new();
    for p in points(&records)
        .into_iter()
        .filter(|p| p["resource"]["provider"] == "aws" && p["metric"] == "cpu.utilization")
    {
        let id = p["resource"]["id"].as_str().unwrap().to_string();
        *in_file.entry((id, ts_of(p))).or_default() += 1;
    }
    assert_eq!(
        in_file.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>()
    );
    let twice: BTreeSet<DateTime<Utc>> = in_file
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((_, t), _)| *t)
        .collect();
    assert!(twice.len() <= 1, "windows published twice: {twice:?}");
    // The host collector cannot read the past: one error names the gap it left.
    let errors: Vec<&serde_json::Value> = records.iter().filter(|r| r["type"] == "error").collect();
    let host_gaps: Vec<_> = errors.iter().filter(|e| e["plugin"] == "host").collect();
    assert_eq!(host_gaps.len(), 1, "{errors:?}");
    let gap = host_gaps[0];
    assert!(
        gap["message"]
            .as_str()
            .unwrap()
            .contains("reads only the present"),
        "{gap}"
    );
    let gap_from: DateTime<Utc> = gap["context"]["gap_from"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(gap_from, first_run_last, "{gap}");
    let host_times: BTreeSet<DateTime<Utc>> = points(&records)
        .iter()
        .filter(|p| p["resource"]["provider"] == "host")
        .map(|p| ts_of(p))
        .collect();
    let gap_to: DateTime<Utc> = gap["context"]["gap_to"].as_str().unwrap().parse().unwrap();
    assert!(host_times.iter().all(|t| *t <= gap_from || *t > gap_to));
    assert!(
        errors.iter().all(|e| e["plugin"] == "host"),
        "no other error: {errors:?}"
    );
}

/// The agent's time now, by the same rule as the test clock.
fn real_anchor_to_virtual(
    real_anchor: DateTime<Utc>,
    virtual_anchor: DateTime<Utc>,
) -> DateTime<Utc> {
    virtual_anchor + (Utc::now() - real_anchor) * SPEED as i32
}

struct WindowMarksFile;
impl WindowMarksFile {
    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("data/windows/cloud.jsonl")).unwrap_or_default()
    }
}

#[test]
fn host_every_second_has_points_from_its_first_run_and_no_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("host.toml");
    // The default warm-up (1s) equals the default timeout of a 1s schedule.
    std::fs::write(
        &cfg,
        r#"
[agent]
data_dir = "data"

[[task]]
name = "host"
schedule = { every = "1s" }
collect = [{ plugin = "host" }]
publish = [{ plugin = "file", path = "out.jsonl" }]
"#,
    )
    .unwrap();
    let agent = start_agent(dir.path(), &cfg, &[]);
    std::thread::sleep(Duration::from_millis(4500));
    let log = stop(agent);
    let records = json_lines(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap());
    let errors: Vec<_> = records.iter().filter(|r| r["type"] == "error").collect();
    assert!(errors.is_empty(), "{errors:?}\n{log}");
    assert!(!log.contains("timed out"), "{log}");
    let pts = points(&records);
    let runs: BTreeSet<DateTime<Utc>> = pts.iter().map(|p| ts_of(p)).collect();
    assert!(runs.len() >= 2, "{runs:?}\n{log}");
    // The first run already has rates (computed against the warm-up's reading).
    let first = *runs.iter().next().unwrap();
    assert!(
        pts.iter()
            .any(|p| ts_of(p) == first && p["metric"] == "cpu.utilization"),
        "no cpu.utilization in the first run\n{log}"
    );
}
