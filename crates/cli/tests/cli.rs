//! The CLI as a user meets it: listing plugins, validating files, exit codes, one-shot
//! collection checked against the JSON Schema, `run --once` against /proc, shutdown.

mod common;
use common::*;
use std::time::{Duration, Instant};

const ALL_PLUGINS: [&str; 23] = [
    "aws",
    "gcp",
    "azure",
    "internal",
    "host",
    "prometheus",
    "http_json",
    "osv",
    "exec",
    "filter",
    "relabel",
    "aggregate",
    "scale",
    "passthru",
    "stdout",
    "file",
    "http",
    "mqtt",
    "remote_write",
    "otlp",
    "nats",
    "postgres",
    "server",
];

#[test]
fn plugins_lists_every_builtin_with_a_one_line_summary() {
    let out = skymeter(&["plugins", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&stdout(&out));
    for name in ALL_PLUGINS {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("`{name}` not listed"));
        let summary = row["summary"].as_str().unwrap();
        assert!(
            summary.len() > 10 && !summary.contains('\n'),
            "{name}: {summary}"
        );
    }
    let table = stdout(&skymeter(&["plugins"]));
    assert!(ALL_PLUGINS.iter().all(|p| table.contains(p)), "{table}");
}

#[test]
fn metrics_lists_host_metrics_with_units() {
    let out = skymeter(&["metrics", "--plugin", "host", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&stdout(&out));
    let unit_of = |m: &str| {
        rows.iter()
            .find(|r| r["metric"] == m)
            .map(|r| r["unit"].as_str().unwrap().to_string())
    };
    assert_eq!(unit_of("cpu.utilization").as_deref(), Some("percent"));
    assert_eq!(unit_of("memory.used").as_deref(), Some("bytes"));
    assert_eq!(
        unit_of("network.received_throughput").as_deref(),
        Some("bytes/s")
    );
    assert!(rows.len() >= 10, "{rows:?}");
    let table = stdout(&skymeter(&["metrics", "--plugin", "host"]));
    assert!(
        table.contains("cpu.utilization") && table.contains("percent"),
        "{table}"
    );
    assert_eq!(
        skymeter(&["metrics", "--plugin", "nope"]).status.code(),
        Some(2)
    );
}

#[test]
fn every_example_validates() {
    let dir = repo_root().join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = skymeter(&["validate", "-c", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            n += 1;
        }
    }
    assert!(n >= 6, "only {n} examples");
}

#[test]
fn every_plugin_sample_config_validates() {
    let root = repo_root().join("crates/plugins/src");
    let mut n = 0;
    for kind in ["collectors", "processors", "publishers"] {
        for entry in std::fs::read_dir(root.join(kind)).unwrap() {
            let sample = entry.unwrap().path().join("sample.toml");
            if sample.exists() {
                // Samples reference tokens from the environment, as users write them.
                let out = std::process::Command::new(bin())
                    .args(["validate", "-c", sample.to_str().unwrap()])
                    .envs([
                        ("API_TOKEN", "t"),
                        ("SKYMETER_TOKEN", "t"),
                        ("HOOK_API_KEY", "t"),
                        ("MQTT_PASSWORD", "t"),
                        ("NATS_PASSWORD", "t"),
                        ("SKYMETER_PG_URL", "postgres://u@127.0.0.1/db"),
                        ("AZURE_TENANT_ID", "t"),
                        ("AZURE_CLIENT_ID", "t"),
                        ("AZURE_CLIENT_SECRET", "t"),
                    ])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}: {}",
                    sample.display(),
                    stderr(&out)
                );
                n += 1;
            }
        }
    }
    assert_eq!(
        n,
        ALL_PLUGINS.len(),
        "every plugin folder has a sample.toml"
    );
}

#[test]
fn validate_names_the_misspelled_key_and_its_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[task]]\nname = \"host\"\nschedule = { every = \"10s\" }\ncollect = [{ plugin = \"host\", per_cpu = true }]\npublish = [{ plugin = \"stdout\", formt = \"json\" }]\n",
    )
    .unwrap();
    let out = skymeter(&["validate", "-c", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml:5:") && err.contains("unknown field `formt`"),
        "{err}"
    );

    let out = skymeter(&["validate", "-c", file.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 5);

    // Running an invalid file runs nothing.
    let out = skymeter(&["run", "--once", "-c", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
}

#[test]
fn usage_and_config_mistakes_exit_2() {
    assert_eq!(skymeter(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        skymeter(&["validate", "-c", "/nonexistent/x.toml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(skymeter(&["collect", "nope"]).status.code(), Some(2));
    assert_eq!(
        skymeter(&["collect", "host", "--set", "novalue"])
            .status
            .code(),
        Some(2)
    );
    let out = skymeter(&["collect", "host", "--set", "warmpu=1s"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--set:1:1: unknown field `warmpu`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        skymeter(&["run", "-c", "examples/host.toml", "--task", "nope"])
            .status
            .code(),
        Some(2)
    );
    for cmd in ["run", "validate", "collect", "plugins", "metrics", "schema"] {
        assert!(skymeter(&[cmd, "--help"]).status.success(), "{cmd} --help");
    }
}

#[test]
fn collect_host_json_records_validate_against_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("docs/schema/record.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let out = skymeter(&["collect", "host", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert!(records.len() > 20, "{records:?}");
    for r in &records {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{r}: {errors:?}");
    }
    assert_eq!(
        records.iter().filter(|r| r["type"] == "resource").count(),
        1
    );
    // The schema is what `skymeter schema record` prints.
    let printed: serde_json::Value =
        serde_json::from_str(&stdout(&skymeter(&["schema", "record"]))).unwrap();
    assert_eq!(printed, schema);
}

fn meminfo_kb(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn run_once_host_example_matches_what_proc_says() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/host.toml");
    let out = skymeter_in(
        dir.path(),
        &["run", "--once", "-c", example.to_str().unwrap()],
    );
    // Read /proc right after, at "the same moment" for gauges that move slowly.
    let mem_total = meminfo_kb("MemTotal") * 1024.0;
    let swap_total = meminfo_kb("SwapTotal") * 1024.0;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    let load1: f64 = loadavg.split_whitespace().next().unwrap().parse().unwrap();
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .count() as f64;
    let ncpu = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();

    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    let pts = points(&records);
    let mut distinct: Vec<(&str, &str)> = pts
        .iter()
        .map(|p| (p["metric"].as_str().unwrap(), p["unit"].as_str().unwrap()))
        .collect();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 10, "{distinct:?}");
    assert!(distinct.iter().all(|(_, u)| !u.is_empty()));

    assert_eq!(value_of(&records, "memory.total", &[]), mem_total);
    if swap_total > 0.0 {
        assert_eq!(value_of(&records, "swap.total", &[]), swap_total);
    }
    assert!((value_of(&records, "load.1m", &[]) - load1).abs() <= 0.5);
    assert!((value_of(&records, "process.count", &[]) - procs).abs() <= 50.0);
    let cpu = value_of(&records, "cpu.utilization", &[]);
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    let per_core = pts
        .iter()
        .filter(|p| p["metric"] == "cpu.utilization" && p["labels"]["cpu"].is_string())
        .count();
    assert_eq!(per_core, ncpu);
    // The root filesystem's size is what statfs says, as df reports it.
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=size", "/"])
        .output()
        .unwrap();
    let df_size: f64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        value_of(&records, "filesystem.total", &[("mountpoint", "/")]),
        df_size
    );
    // The example also writes a file.
    let written = std::fs::read_to_string(dir.path().join("host.jsonl")).unwrap();
    assert_eq!(json_lines(&written).len(), records.len());
}

#[test]
fn sigterm_finishes_the_run_in_flight_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        r#"
[[task]]
name = "hold"
schedule = { every = "1s" }
collect = [{ plugin = "host", warmup = "100ms" }]
process = [{ plugin = "filter", include = ["load.1m"] }, { plugin = "aggregate", window = "3650d", stats = ["count"] }]
publish = [{ plugin = "file", path = "out.jsonl" }]
"#,
    )
    .unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["run", "-c", cfg.to_str().unwrap()])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "exits promptly");
    assert!(status.success(), "{status:?}");
    // The 10-year aggregation window cannot close during the test: it must come out at shutdown, counting
    // every load.1m reading of every run.
    let records = json_lines(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap());
    let counts: Vec<f64> = points(&records)
        .iter()
        .filter(|p| p["stat"] == "count")
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(counts.len(), 1, "{records:?}");
    assert!(counts[0] >= 3.0, "{counts:?}");
}
