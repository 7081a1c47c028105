use super::*;
use crate::config::{load_manifest_str, LoadedConfig};
use crate::schedule::Schedule;
use std::time::Duration;

fn load(file: &str, text: &str) -> Result<LoadedConfig, Vec<ConfigError>> {
    let dir = tempfile::tempdir().unwrap();
    let agent = crate::AgentSettings {
        id: Some("a1".into()),
        data_dir: Some(dir.path().to_path_buf()),
    };
    load_manifest_str(
        file,
        text,
        "fallback",
        Some(&agent),
        &skymeter_plugins::builtin(),
        &|k| (k == "OUT_DIR").then(|| "/tmp".to_string()),
        false,
    )
}

const TREE_JSON: &str = r#"{
    "version": 1,
    "schedule": {
        "type": "simple",
        "interval": "1s"
    },
    "max-failures": 3,
    "workflow": {
        "collect": {
            "metrics": {
                "/skymeter/host/cpu/utilization": {},
                "/intel/psutil/vm/total": {}
            },
            "config": {
                "/intel": {
                    "proc_path": "/proc"
                }
            },
            "tags": {
                "/skymeter/host": { "dc": "eu-1" }
            },
            "process": [
                {
                    "plugin_name": "filter",
                    "config": { "include": ["cpu.*"] },
                    "process": null,
                    "publish": [
                        { "plugin_name": "file", "config": { "file": "${OUT_DIR}/cpu.jsonl" } },
                        { "plugin_name": "stdout", "config": null }
                    ]
                }
            ],
            "publish": [
                { "plugin_name": "file", "config": { "file": "${OUT_DIR}/all.jsonl" } }
            ]
        }
    }
}"#;

#[test]
fn a_workflow_tree_becomes_a_task_with_one_branch_per_path() {
    let cfg = load("tree.json", TREE_JSON).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(cfg.tasks.len(), 1);
    let t = &cfg.tasks[0];
    assert_eq!(t.name, "fallback");
    assert!(matches!(t.schedule, Schedule::Every(d) if d == Duration::from_secs(1)));
    assert_eq!(t.max_failures, Some(3));
    assert_eq!(t.max_runs, None);
    // psutil and /skymeter/host both land on the one host collector.
    let collectors: Vec<&str> = t.collectors.iter().map(|c| c.plugin).collect();
    assert_eq!(collectors, ["host"]);
    assert!(t.metrics.matches("cpu.utilization"));
    assert!(t.metrics.matches("memory.total"));
    assert!(!t.metrics.matches("disk.read_iops"));
    // collect.publish: the task's own branch, with the tags' relabel first.
    let procs: Vec<&str> = t.processors.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(procs, ["tags /skymeter/host"]);
    let pubs: Vec<&str> = t.publishers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pubs, ["file"]);
    // filter → (file, stdout): one more branch.
    assert_eq!(t.branches.len(), 1);
    let b = &t.branches[0];
    let procs: Vec<&str> = b.processors.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(procs, ["tags /skymeter/host", "filter"]);
    let pubs: Vec<&str> = b.publishers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pubs, ["file", "stdout"]);

    // The tags of `/skymeter/host` go on its namespace's metric only, not on psutil's.
    let point = |metric: &str| skymeter_model::Point {
        metric: metric.into(),
        unit: skymeter_model::Unit::Percent,
        stat: skymeter_model::Stat::Last,
        period_s: 0,
        ts: chrono::Utc::now(),
        value: 1.0,
        resource: skymeter_model::ResourceRef {
            provider: "host".into(),
            account: Default::default(),
            region: Default::default(),
            id: "h".into(),
        }
        .into(),
        labels: Default::default(),
    };
    let mut batch = skymeter_model::Batch::new("a1", "t", chrono::Utc::now());
    batch.points = vec![point("cpu.utilization"), point("memory.total")];
    let mut cfg = cfg;
    cfg.tasks[0].processors[0].processor.process(&mut batch);
    let dc = |i: usize| batch.points[i].labels.get("dc").map(|v| v.to_string());
    assert_eq!(dc(0).as_deref(), Some("eu-1"));
    assert_eq!(dc(1), None);
}

#[test]
fn yaml_manifests_read_the_same() {
    let yaml = r#"---
version: 1
name: yaml-task
schedule:
  type: windowed
  interval: 1m30s
  start_timestamp: "2030-01-01T00:00:00Z"
  stop_timestamp: "2030-01-02T00:00:00Z"
  count: 5
deadline: 5s
workflow:
  collect:
    metrics:
      /skymeter/host/memory/*: {}
    publish:
      - plugin_name: stdout
"#;
    let cfg = load("t.yaml", yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let t = &cfg.tasks[0];
    assert_eq!(t.name, "yaml-task");
    assert!(matches!(t.schedule, Schedule::Every(d) if d == Duration::from_secs(90)));
    assert_eq!(t.max_runs, Some(5));
    assert_eq!(t.max_failures, Some(10), "snap's default");
    assert_eq!(t.start.unwrap().to_rfc3339(), "2030-01-01T00:00:00+00:00");
    assert_eq!(t.stop.unwrap().to_rfc3339(), "2030-01-02T00:00:00+00:00");
    assert_eq!(t.collectors[0].timeout, Duration::from_secs(5));
    assert!(t.metrics.matches("memory.usage"));
    assert!(!t.metrics.matches("cpu.utilization"));
    assert!(t.branches.is_empty());
}

#[test]
fn cron_schedules_and_every() {
    let m = |interval: &str| {
        format!(
            r#"{{"version": 1, "schedule": {{"type": "cron", "interval": "{interval}"}},
            "max-failures": -1,
            "workflow": {{"collect": {{"metrics": {{"/skymeter/host": {{}}}},
            "publish": [{{"plugin_name": "stdout"}}]}}}}}}"#
        )
    };
    let cfg = load("c.json", &m("0 */5 * * * *")).unwrap();
    assert!(
        matches!(&cfg.tasks[0].schedule, Schedule::Cron { expr, .. } if expr == "0 */5 * * * *")
    );
    assert_eq!(cfg.tasks[0].max_failures, None, "-1 never disables");
    let cfg = load("c.json", &m("@every 30s")).unwrap();
    assert!(matches!(cfg.tasks[0].schedule, Schedule::Every(d) if d == Duration::from_secs(30)));
    let errs = load("c.json", &m("not cron")).err().unwrap();
    assert_eq!(errs[0].file, "c.json");
    assert_eq!(errs[0].line, Some(1), "{errs:?}");
    assert!(errs[0].message.contains("bad cron expression"), "{errs:?}");
}

#[test]
fn errors_point_at_the_manifest_line() {
    // An unknown namespace, an unknown publisher, and a plugin config the plugin refuses.
    let text = TREE_JSON
        .replace("/intel/psutil/vm/total", "/intel/nowhere/x")
        .replace("\"stdout\"", "\"influxdb\"");
    let errs = load("bad.json", &text).err().unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        errs.iter()
            .any(|e| e.line == Some(line_of("/intel/nowhere/x"))
                && e.message
                    .contains("no collector serves namespace `/intel/nowhere/x`")),
        "{errs:?}"
    );
    // A plugin-level error comes back from the TOML loader, relocated to the manifest.
    let text = TREE_JSON.replace("\"stdout\"", "\"influxdb\"");
    let errs = load("bad.json", &text).err().unwrap();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].file, "bad.json");
    assert_eq!(errs[0].line, Some(line_of("influxdb")), "{errs:?}");
    assert!(
        errs[0]
            .message
            .contains("unknown publisher plugin `influxdb`"),
        "{errs:?}"
    );
    assert!(errs[0].snippet.as_deref().unwrap().contains("influxdb"));

    let text = TREE_JSON.replace("\"include\": [\"cpu.*\"]", "\"inclde\": [\"cpu.*\"]");
    let errs = load("bad.json", &text).err().unwrap();
    assert_eq!(errs[0].line, Some(line_of("\"filter\"")), "{errs:?}");
    assert!(errs[0].message.contains("inclde"), "{errs:?}");
}

#[test]
fn shape_and_syntax_errors_keep_their_line() {
    let errs = load(
        "s.json",
        "{\n  \"version\": 1,\n  \"schedule\": {\"type\": \"simple\",, }\n}",
    )
    .err()
    .unwrap();
    assert_eq!(errs[0].line, Some(3), "{errs:?}");
    assert!(errs[0].message.contains("JSON"), "{errs:?}");
    let errs = load(
        "s.yaml",
        "version: 1\nschedule:\n  type: simple\n  interval: 1s\n  intervall: 2s\nworkflow: {}\n",
    )
    .err()
    .unwrap();
    assert!(errs[0].message.contains("intervall"), "{errs:?}");
    assert_eq!(errs[0].line, Some(5), "{errs:?}");
    let v2 = TREE_JSON.replace("\"version\": 1", "\"version\": 2");
    let errs = load("v.json", &v2).err().unwrap();
    assert_eq!(errs[0].line, Some(2));
    assert!(errs[0].message.contains("version 2 is not supported"));
}

#[test]
fn a_processor_that_publishes_nowhere_is_refused() {
    let text = r#"{"version": 1, "schedule": {"type": "simple", "interval": "1s"},
"workflow": {"collect": {"metrics": {"/skymeter/host": {}},
"process": [{"plugin_name": "filter", "publish": null}]}}}"#;
    let errs = load("p.json", text).err().unwrap();
    assert_eq!(errs[0].line, Some(3), "{errs:?}");
    assert!(errs[0].message.contains("hands its output to nothing"));
}

#[test]
fn go_durations() {
    assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
    assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
    assert_eq!(go_duration("2"), None);
    assert_eq!(go_duration("5 minutes"), None);
    assert_eq!(go_duration("0s"), None);
}

#[test]
fn telling_manifests_from_toml() {
    assert!(is_manifest("a.json", ""));
    assert!(is_manifest("a.YML", ""));
    assert!(!is_manifest("a.toml", "{"));
    assert!(is_manifest("task", "\n  {\"version\": 1}"));
    assert!(is_manifest("task", "# c\nversion: 1\n"));
    assert!(!is_manifest("task", "[[task]]\nname = \"x\""));
}
