//! A fourth cloud needs no change in the CLI, the server or the store: the testkit's
//! `testcloud` (one folder on the cloud driver, one registry line) shows up in `plugins`,
//! `metrics`, `collect` (dry run and real), `validate` and `prices`, through the real command
//! line.
//!
//! This test binary is its own `main` (`harness = false`): run with SKYMETER_AS_CLI=1 it *is*
//! the command line over `skymeter_testkit::registry()`; run plainly it spawns itself that
//! way for each case, as a user runs `skymeter`.

use serde_json::Value;
use std::process::{Command, ExitCode, Output};

fn main() -> ExitCode {
    if std::env::var_os("SKYMETER_AS_CLI").is_some() {
        return skymeter::main_with(skymeter_testkit::registry());
    }
    let cases: [(&str, fn()); 6] = [
        (
            "plugins_lists_and_describes_it",
            plugins_lists_and_describes_it,
        ),
        ("metrics_lists_its_catalog", metrics_lists_its_catalog),
        (
            "collect_dry_run_plans_its_calls",
            collect_dry_run_plans_its_calls,
        ),
        (
            "collect_gives_records_and_estimated_cost",
            collect_gives_records_and_estimated_cost,
        ),
        ("prices_show_and_update", prices_show_and_update),
        ("config_errors_name_its_keys", config_errors_name_its_keys),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        match std::panic::catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        cases.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cli(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .env("SKYMETER_AS_CLI", "1")
        .env_remove("SKYMETER_LOG")
        .current_dir(cwd)
        .output()
        .expect("runs")
}

fn run(args: &[&str]) -> (String, String, i32) {
    let dir = std::env::temp_dir();
    let o = cli(args, &dir);
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn plugins_lists_and_describes_it() {
    let (out, err, code) = run(&["plugins"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("testcloud"), "{out}");
    assert!(out.contains("Test Cloud: machines held in memory"), "{out}");
    let (out, err, code) = run(&["plugins", "testcloud", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).expect("JSON");
    let props = &d["config_schema"]["properties"];
    // Its own keys and the shared ones, with the driver's defaults.
    for key in [
        "accounts", "machines", "region", "period", "stats", "cost", "dry_run",
    ] {
        assert!(props.get(key).is_some(), "no `{key}` in {props}");
    }
    assert_eq!(props["period"]["default"], "5m", "{props}");
}

fn metrics_lists_its_catalog() {
    let (out, err, code) = run(&["metrics", "--plugin", "testcloud"]);
    assert_eq!(code, 0, "{err}");
    for m in [
        "cpu.utilization",
        "testcloud.api_calls",
        "testcloud.planned_calls",
    ] {
        assert!(out.contains(m), "no {m} in {out}");
    }
}

fn collect_dry_run_plans_its_calls() {
    let (out, err, code) = run(&[
        "collect",
        "testcloud",
        "--dry-run",
        "--set",
        "accounts=[\"a\",\"b\",\"c\"]",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let records = json_lines(&out);
    let planned: Vec<&Value> = records
        .iter()
        .filter(|r| r["metric"] == "testcloud.planned_calls")
        .collect();
    let plan = |api: &str| {
        planned
            .iter()
            .find(|p| p["labels"]["api"] == api)
            .map(|p| p["value"].as_f64().unwrap())
    };
    // Three accounts listed; two stats (avg, max) planned per account, none made.
    assert_eq!(plan("testcloud.machines.list"), Some(3.0), "{out}");
    assert_eq!(plan("testcloud.metrics.get"), Some(6.0), "{out}");
    assert!(
        !records.iter().any(|r| r["metric"] == "cpu.utilization"),
        "a dry run fetched metrics: {out}"
    );
}

fn collect_gives_records_and_estimated_cost() {
    let (out, err, code) = run(&[
        "collect",
        "testcloud",
        "--set",
        "machines=3",
        "--set",
        "period=\"60s\"",
        "--set",
        "delay=\"0s\"",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let records = json_lines(&out);
    let resources: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "compute.instance")
        .collect();
    assert_eq!(resources.len(), 3, "{out}");
    let cpu: Vec<&Value> = records
        .iter()
        .filter(|r| r["metric"] == "cpu.utilization" && r["stat"] == "avg")
        .collect();
    assert!(!cpu.is_empty(), "{out}");
    for p in &cpu {
        let ts = chrono::DateTime::parse_from_rfc3339(p["ts"].as_str().unwrap())
            .unwrap()
            .timestamp();
        let index: u32 = p["resource"]["id"].as_str().unwrap()[2..].parse().unwrap();
        assert_eq!(
            p["value"].as_f64().unwrap(),
            skymeter_testkit::testcloud::cpu(index, ts)
        );
    }
    let costs: Vec<&Value> = records
        .iter()
        .filter(|r| r["x_source"] == "estimated")
        .collect();
    assert_eq!(costs.len(), 3, "one estimated line per machine: {out}");
    assert_eq!(costs[0]["ProviderName"], "Test Cloud", "{}", costs[0]);
    let calls: f64 = records
        .iter()
        .filter(|r| {
            r["metric"] == "testcloud.api_calls" && r["labels"]["api"] == "testcloud.metrics.get"
        })
        .map(|r| r["value"].as_f64().unwrap())
        .sum();
    assert_eq!(calls, 2.0, "avg and max: {out}");
}

fn prices_show_and_update() {
    let dir = tempdir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let o = cli(&["prices", "testcloud", "show", "--data-dir", data], &dir);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("Test Cloud list prices of 2026-12-01"),
        "{out}"
    );
    assert!(out.contains("machine/small"), "{out}");
    let o = cli(
        &[
            "prices",
            "testcloud",
            "update",
            "--regions",
            "r1,r2",
            "--data-dir",
            data,
            "--format",
            "json",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    assert_eq!(summary["prices"], 2, "{summary}");
    assert_eq!(summary["calls"]["testcloud.prices.list"], 2, "{summary}");
    let written = std::fs::read_to_string(dir.join("data/prices/testcloud.json")).unwrap();
    assert!(written.contains("\"r2\""), "{written}");
    // The collector's estimate now reads the fetched table: r1 is priced, test-1 is not.
    let o = cli(
        &[
            "collect",
            "testcloud",
            "--data-dir",
            data,
            "--set",
            "region=\"r1\"",
            "--format",
            "json",
        ],
        &dir,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("\"x_price_date\""), "{out}");
    // An option the test cloud's update does not take is a usage error (exit 2).
    let o = cli(&["prices", "testcloud", "update", "--profile", "x"], &dir);
    assert_eq!(o.status.code(), Some(2));
    // `skymeter` itself (without the testkit) has no such cloud.
    let o = Command::new(env!("CARGO_BIN_EXE_skymeter"))
        .args(["prices", "testcloud", "show"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

fn config_errors_name_its_keys() {
    let dir = tempdir();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        "[[task]]\nname = \"t\"\nschedule = { every = \"1m\" }\ncollect = [{ plugin = \"testcloud\", acounts = [\"a\"] }]\npublish = [{ plugin = \"stdout\" }]\n",
    )
    .unwrap();
    let o = cli(&["validate", "-c", task.to_str().unwrap()], &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("task.toml:4"), "{err}");
    assert!(err.contains("unknown key `acounts`"), "{err}");
    assert!(err.contains("accounts"), "the known keys are listed: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "skymeter-fourth-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
