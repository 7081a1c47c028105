use super::*;
use crate::common::testing::{request, row, rows, stepping_clock, with_raw, Row};
use std::path::Path;

fn exec(toml: &str) -> Exec {
    let mut e = with_raw(toml, |raw| {
        let cfg: ExecConfig = raw.decode().unwrap();
        Exec::new(cfg, raw).unwrap()
    });
    e.clock = stepping_clock(2.0);
    e
}

fn config_error(toml: &str) -> ConfigError {
    with_raw(toml, |raw| {
        let cfg: ExecConfig = match raw.decode() {
            Ok(c) => c,
            Err(e) => return e,
        };
        match Exec::new(cfg, raw) {
            Ok(_) => panic!("{toml} should not build"),
            Err(e) => e,
        }
    })
}

/// Writes a shell script to `dir`; `$STATE` in it is a counter file that grows by one per run
/// (so `$N` is 0 on the first run, 1 on the second, …).
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    let state = dir.join(format!("{name}.state"));
    let text = format!(
        "#!/bin/sh\nN=$(cat '{s}' 2>/dev/null || echo 0)\necho $((N + 1)) > '{s}'\n{body}",
        s = state.display()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn json_lines_compact_points_records_counters_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "probe.sh",
        r#"cat <<EOF
{"metric":"gpu.utilization","value":87,"unit":"percent","labels":{"gpu":"0"}}
{"metric":"gpu.energy","value":$((1000 + N * 100)),"unit":"joules","type":"counter","labels":{"gpu":"0"}}

this is not json
{"metric":"queue.depth","value":3.5,"stat":"max","type":"gauge"}
{"metric":"bad name","value":1}
{"metric":"x","value":1,"colour":"red"}
{"type":"point","metric":"disk.free","unit":"bytes","stat":"last","period_s":0,"ts":"2026-01-02T03:04:05Z","value":1024,"resource":{"provider":"host","id":"h1"}}
{"type":"resource","provider":"host","kind":"host","id":"h1","observed_at":"2026-01-02T03:04:05Z"}
{"type":"bogus"}
EOF
"#,
    );
    let mut e = exec(&format!("command = [\"sh\", \"{s}\"]\nwarmup = \"10ms\"\n"));
    let req = request(&[]);
    let mut out = Output::default();
    e.collect(&req, &mut out).await.unwrap();
    assert_eq!(
        rows(&out.points),
        [
            row("disk.free", &[], Unit::Bytes, Stat::Last, 0, 1024.0),
            row(
                "gpu.energy",
                &[("gpu", "0")],
                Unit::Watts,
                Stat::Avg,
                2,
                50.0
            ),
            row(
                "gpu.utilization",
                &[("gpu", "0")],
                Unit::Percent,
                Stat::Last,
                0,
                87.0
            ),
            row("queue.depth", &[], Unit::None, Stat::Max, 0, 3.5),
        ]
    );
    let lines: Vec<&str> = out
        .errors
        .iter()
        .map(|e| e.context["line"].as_str())
        .collect();
    assert_eq!(lines, ["4", "6", "7", "10"], "{:?}", out.errors);
    assert!(
        out.errors[0].message.starts_with("line 4: not JSON"),
        "{}",
        out.errors[0]
    );
    assert!(out.errors[1]
        .message
        .contains("`bad name` is not a metric name"));
    assert!(
        out.errors[2].message.contains("unknown field `colour`"),
        "{}",
        out.errors[2]
    );
    assert!(out.errors[3]
        .message
        .contains("unknown \"type\": \"bogus\""));
    assert_eq!(out.errors[0].context["command"], "sh");
    // The configured resource, then the one the command printed.
    let ids: Vec<(&str, &str)> = out
        .resources
        .iter()
        .map(|r| (r.provider.as_str(), r.id.as_str()))
        .collect();
    assert_eq!(ids, [("custom", "sh"), ("host", "h1")]);
    let gpu = out
        .points
        .iter()
        .find(|p| p.metric == "gpu.utilization")
        .unwrap();
    assert_eq!(gpu.ts, req.window.end);
    assert_eq!(gpu.resource.id, "sh");

    // Second collection: one run, the same rate.
    let mut out = Output::default();
    e.collect(&request(&["gpu.*"]), &mut out).await.unwrap();
    assert_eq!(
        rows(&out.points),
        [
            row(
                "gpu.energy",
                &[("gpu", "0")],
                Unit::Watts,
                Stat::Avg,
                2,
                50.0
            ),
            row(
                "gpu.utilization",
                &[("gpu", "0")],
                Unit::Percent,
                Stat::Last,
                0,
                87.0
            ),
        ]
    );
    let runs = std::fs::read_to_string(dir.path().join("probe.sh.state")).unwrap();
    assert_eq!(runs.trim(), "3", "run, warm-up run, run");
}

#[tokio::test]
async fn prometheus_output_is_converted_like_a_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "prom.sh",
        r#"printf '# TYPE jobs_total counter\njobs_total{queue="a"} %d\n# TYPE mem_bytes gauge\nmem_bytes 4096\n' $((N * 6))
"#,
    );
    let mut e = exec(&format!(
        "command = [\"sh\", \"{s}\"]\nformat = \"prometheus\"\nwarmup = \"10ms\"\nresource = {{ id = \"box\", kind = \"host\" }}\n"
    ));
    let mut out = Output::default();
    e.collect(&request(&[]), &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        rows(&out.points),
        [
            row(
                "jobs",
                &[("queue", "a")],
                Unit::CountPerSecond,
                Stat::Avg,
                2,
                3.0
            ),
            row("mem_bytes", &[], Unit::Bytes, Stat::Last, 0, 4096.0),
        ]
    );
    assert_eq!(
        (out.resources[0].id.as_str(), out.resources[0].kind.as_str()),
        ("box", "host")
    );

    let bad = script(dir.path(), "bad.sh", "printf 'ok 1\\nbad{ 2\\n'\n");
    let mut e = exec(&format!(
        "command = [\"sh\", \"{bad}\"]\nformat = \"prometheus\"\n"
    ));
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadResponse);
    assert!(
        err.message.contains("line 2: expected a label name"),
        "{err}"
    );
    assert_eq!(
        (
            err.context["line"].as_str(),
            err.context["command"].as_str()
        ),
        ("2", "sh")
    );
}

#[tokio::test]
async fn csv_like_nvidia_smi() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "gpus.sh",
        "printf '0, 00000000:01:00.0, 87, 1024, [N/A], %d\\n1, 00000000:02:00.0, 12, 2048, 250.5, 7\\n\\n2, x, abc, 1, , 9\\n3, y, 1\\n' $((N * 500))\n",
    );
    let mut e = exec(&format!(
        r#"command = ["sh", "{s}"]
format = "csv"
warmup = "10ms"
columns = [
  {{ label = "gpu" }},
  {{ label = "pci_bus" }},
  {{ metric = "gpu.utilization", unit = "percent" }},
  {{ metric = "gpu.memory.used", unit = "bytes", factor = 1048576 }},
  {{ metric = "gpu.power", unit = "watts" }},
  {{ skip = true }},
]
"#
    ));
    let mut out = Output::default();
    e.collect(&request(&[]), &mut out).await.unwrap();
    let g0 = [("gpu", "0"), ("pci_bus", "00000000:01:00.0")];
    let g1 = [("gpu", "1"), ("pci_bus", "00000000:02:00.0")];
    let g2 = [("gpu", "2"), ("pci_bus", "x")];
    assert_eq!(
        rows(&out.points),
        [
            row(
                "gpu.memory.used",
                &g0,
                Unit::Bytes,
                Stat::Last,
                0,
                1024.0 * 1048576.0
            ),
            row(
                "gpu.memory.used",
                &g1,
                Unit::Bytes,
                Stat::Last,
                0,
                2048.0 * 1048576.0
            ),
            row(
                "gpu.memory.used",
                &g2,
                Unit::Bytes,
                Stat::Last,
                0,
                1048576.0
            ),
            row("gpu.power", &g1, Unit::Watts, Stat::Last, 0, 250.5),
            row("gpu.utilization", &g0, Unit::Percent, Stat::Last, 0, 87.0),
            row("gpu.utilization", &g1, Unit::Percent, Stat::Last, 0, 12.0),
        ]
    );
    let msgs: Vec<&str> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "line 4: column 3 (gpu.utilization): `abc` is not a number (print values without units, e.g. nvidia-smi --format=csv,noheader,nounits)",
            "line 5: has 3 fields but `columns` lists 6; make them agree",
        ]
    );
    assert_eq!(out.resources[0].id, "sh");

    // A counter column gives a rate, and the program name is the resource id. (A symlink
    // to sh stands in for nvidia-smi: writing an executable while other tests fork could
    // make running it fail with "text file busy".)
    let smi = dir.path().join("nvidia-smi");
    std::os::unix::fs::symlink("/bin/sh", &smi).unwrap();
    let mut e = exec(&format!(
        "command = [\"{}\", \"{s}\"]\nformat = \"csv\"\nwarmup = \"10ms\"\ncolumns = [{{ label = \"gpu\" }}, {{ skip = true }}, {{ skip = true }}, {{ skip = true }}, {{ skip = true }}, {{ metric = \"gpu.energy\", unit = \"joules\", type = \"counter\" }}]\n",
        smi.display()
    ));
    let mut out = Output::default();
    e.collect(&request(&[]), &mut out).await.unwrap();
    assert_eq!(out.resources[0].id, "nvidia-smi");
    let energy: Vec<Row> = rows(&out.points);
    assert_eq!(
        energy[0],
        row(
            "gpu.energy",
            &[("gpu", "0")],
            Unit::Watts,
            Stat::Avg,
            2,
            250.0
        )
    );
}

#[tokio::test]
async fn shell_env_and_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = exec(&format!(
        "command = \"printf '{{\\\"metric\\\":\\\"m\\\",\\\"value\\\":%s,\\\"labels\\\":{{\\\"dir\\\":\\\"%s\\\"}}}}\\\\n' \\\"$V\\\" \\\"$(pwd)\\\"\"\nshell = true\nenv = {{ V = \"42\" }}\nworking_dir = \"{}\"\n",
        dir.path().display()
    ));
    let mut out = Output::default();
    e.collect(&request(&[]), &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let dir_label = dir.path().canonicalize().unwrap().display().to_string();
    assert_eq!(
        rows(&out.points),
        [row(
            "m",
            &[("dir", &dir_label)],
            Unit::None,
            Stat::Last,
            0,
            42.0
        )]
    );
    assert_eq!(out.resources[0].id, "printf");
}

#[tokio::test]
async fn non_zero_exit_reports_the_status_and_stderr() {
    let mut e = exec(
        "command = [\"sh\", \"-c\", \"echo partial; printf 'disk on fire\\\\n' >&2; exit 3\"]\n",
    );
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "`sh` exited with status 3; stderr: disk on fire"
    );
    assert_eq!(err.context["exit_code"], "3");

    let mut e =
        exec("command = [\"sh\", \"-c\", \"head -c 2000 /dev/zero | tr '\\\\0' x >&2; exit 1\"]\n");
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        format!("`sh` exited with status 1; stderr: {}", "x".repeat(500)),
        "stderr is cut to its first 500 bytes"
    );
}

#[tokio::test]
async fn timeout_kills_the_command_and_its_process_group_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let mut e = exec(&format!(
        "command = \"sleep 10 & echo $! > '{}'; sleep 10\"\nshell = true\ntimeout = \"200ms\"\n",
        pidfile.display()
    ));
    let started = Instant::now();
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.message.contains("did not finish within 200ms"), "{err}");
    assert!(
        took < Duration::from_secs(3),
        "killed promptly, took {took:?}"
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        gone(&pid).await,
        "the grandchild {pid} survived the timeout"
    );
}

/// Whether `pid` is gone (or a zombie awaiting its reaper), waiting up to a second.
async fn gone(pid: &str) -> bool {
    let stat = format!("/proc/{}/stat", pid.trim());
    for _ in 0..50 {
        match std::fs::read_to_string(&stat) {
            Err(_) => return true,
            Ok(s) if s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')) => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

#[tokio::test]
async fn a_cancelled_collection_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let mut e = exec(&format!(
        "command = \"sleep 10 & echo $! > '{}'; sleep 10\"\nshell = true\n",
        pidfile.display()
    ));
    let mut out = Output::default();
    let req = request(&[]);
    // What the runner does when an entry's own `timeout` expires: drop the collection.
    let cancelled =
        tokio::time::timeout(Duration::from_millis(300), e.collect(&req, &mut out)).await;
    assert!(cancelled.is_err());
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        gone(&pid).await,
        "the grandchild {pid} survived the cancellation"
    );
}

#[tokio::test]
async fn a_missing_command_is_named_with_a_path_hint() {
    let mut e = exec("command = [\"skymeter-no-such-command\", \"--x\"]\n");
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(
        err.message
            .starts_with("command `skymeter-no-such-command` not found: it is not on PATH ("),
        "{err}"
    );
    assert!(err.message.contains("give its absolute path"), "{err}");

    let mut e = exec("command = [\"true\"]\nworking_dir = \"/nonexistent/skymeter\"\n");
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("working_dir `/nonexistent/skymeter` is not a directory"),
        "{err}"
    );
}

#[tokio::test]
async fn output_with_nothing_readable_is_an_error() {
    let mut e = exec("command = [\"sh\", \"-c\", \"echo nope; echo '[1]'\"]\n");
    let err = e
        .collect(&request(&[]), &mut Output::default())
        .await
        .unwrap_err();
    assert!(
        err.message
            .starts_with("nothing in the output of `sh` could be read: line 1: not JSON"),
        "{err}"
    );
    assert!(err.message.ends_with("(and 1 more bad lines)"), "{err}");
}

#[test]
fn config_mistakes_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        ("command = \"ls -l\"\n", "command", "set `shell = true`"),
        ("command = [\"ls\"]\nshell = true\n", "command", "as one string"),
        ("command = []\n", "command", "is empty"),
        ("command = 3\n", "command", "an array of strings"),
        ("command = [\"x\"]\nformat = \"csv\"\n", "columns", "needs `columns`"),
        ("command = [\"x\"]\ncolumns = [{ label = \"a\" }]\n", "columns", "only read with format = \"csv\""),
        (
            "command = [\"x\"]\nformat = \"csv\"\ncolumns = [{ label = \"a\", metric = \"b\" }]\n",
            "columns",
            "column 1: give exactly one of",
        ),
        (
            "command = [\"x\"]\nformat = \"csv\"\ncolumns = [{ metric = \"a\", factor = 0 }]\n",
            "columns",
            "`factor` must be",
        ),
        (
            "command = [\"x\"]\nformat = \"csv\"\ncolumns = [{ label = \"g\" }, { metric = \"a b\" }]\n",
            "columns",
            "column 2: `a b` is not a metric name",
        ),
        (
            "command = [\"x\"]\nformat = \"csv\"\ncolumns = [{ metric = \"a\", unit = \"furlongs\" }]\n",
            "columns",
            "furlongs",
        ),
        ("command = [\"x\"]\ndelimiter = \";;\"\n", "delimiter", "one ASCII character"),
        ("command = [\"x\"]\nformat = \"yaml\"\n", "format", "yaml"),
    ];
    for (toml, key, what) in cases {
        let e = config_error(toml);
        assert!(e.message.contains(what), "{toml}: {e}");
        assert!(e.line.is_some(), "{toml}: {e}");
        if !e.message.contains("unknown variant")
            && !e.message.contains("furlongs")
            && !e.message.contains("an array")
        {
            assert_eq!(e.key.as_deref(), Some(*key), "{toml}: {e}");
        }
    }
}

#[test]
fn the_sample_config_builds() {
    let n = crate::common::testing::build_sample_entries(include_str!("sample.toml"), factory());
    assert_eq!(n, 3);
}
