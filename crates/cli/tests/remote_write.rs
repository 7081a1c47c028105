//! The `remote_write` publisher through the binary: `skymeter run --once` with the `exec`
//! collector (fixed values) publishing to a skymeter server and, by remote write, to a
//! VictoriaMetrics of the test's own and to a second skymeter server; the series read back
//! from VictoriaMetrics carry the same names, labels and values as the first server's query
//! API shows, and the second server (remote write only, so no resource records) the same
//! but for the labels taken from records.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

type Series = BTreeMap<String, String>;

fn series_of(base: &str, selector: &str) -> Vec<Series> {
    let answer: Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/series"))
        .query(&[("match[]", selector)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut out: Vec<Series> = answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{base}: {answer}"))
        .iter()
        .map(|s| serde_json::from_value(s.clone()).unwrap())
        .collect();
    out.sort();
    out
}

fn values_of(base: &str, query: &str) -> BTreeMap<String, f64> {
    let answer: Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{base}: {answer}"))
        .iter()
        .map(|r| {
            (
                r["metric"]["route"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn run_once_writes_the_query_apis_series_to_victoriametrics() {
    let test = "run_once_writes_the_query_apis_series_to_victoriametrics";
    let Some(program) =
        skymeter_testkit::tool::require_tool(test, skymeter_testkit::victoria::find())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vm = skymeter_testkit::victoria::VictoriaMetrics::start(program, &dir.path().join("vm"));

    // Two skymeter servers: one fed by the `server` publisher (records and points), one by
    // remote write only (a skymeter server is a remote-write receiver too).
    let start_server = |name: &str| {
        let port = skymeter_testkit::net::free_port();
        let base = format!("http://127.0.0.1:{port}");
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{name}\"\nno_auth = true\n"
            ),
        )
        .unwrap();
        let proc = spawn(&["server", "-c", &format!("{name}.toml")], dir.path());
        wait_healthy(&base);
        (proc, base)
    };
    let (_server, server) = start_server("server");
    let (_mirror, mirror) = start_server("mirror");

    let lines = r#"{"metric": "e2e.requests", "value": 42, "unit": "count/s", "labels": {"route": "/a"}}
{"metric": "e2e.requests", "value": 7.5, "unit": "count/s", "labels": {"route": "/b", "region": "x"}}"#;
    let script = script_printing(dir.path(), lines);
    std::fs::write(
        dir.path().join("task.toml"),
        format!(
            "[agent]\nid = \"edge-1\"\ndata_dir = \"agent\"\n\n[[task]]\nname = \"svc\"\nschedule = {{ every = \"1m\" }}\n\
             collect = [{{ plugin = \"exec\", command = [\"sh\", {script:?}], resource = {{ id = \"svc-1\", name = \"checkout\", tags = {{ team = \"pay\" }} }} }}]\n\
             publish = [\n  {{ plugin = \"server\", url = \"{server}\" }},\n  {{ plugin = \"remote_write\", url = \"{}/api/v1/write\" }},\n  \
             {{ plugin = \"remote_write\", url = \"{mirror}/api/v1/write\", buffer = {{ dir = \"agent/buffer/mirror\" }} }},\n]\n",
            vm.url()
        ),
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["run", "--once", "-c", "task.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let selector = "{__name__=\"e2e_requests_per_second\"}";
    let ours = eventually(Duration::from_secs(15), || {
        Some(series_of(&server, selector)).filter(|s| s.len() == 2)
    })
    .expect("the server has both series");
    let theirs = eventually(Duration::from_secs(15), || {
        let _ = reqwest::blocking::get(format!("{}/internal/force_flush", vm.url()));
        Some(series_of(&vm.url(), selector)).filter(|s| s.len() == 2)
    })
    .unwrap_or_else(|| {
        panic!(
            "VictoriaMetrics has both series: {:?}",
            series_of(&vm.url(), selector)
        )
    });
    assert_eq!(theirs, ours, "the same series under the same labels");
    let route = |r: &str| theirs.iter().find(|s| s["route"] == r).unwrap();
    let a = route("/a");
    assert_eq!(a["resource_name"], "checkout");
    assert_eq!(a["tag_team"], "pay");
    assert_eq!(a["resource_id"], "svc-1");
    assert_eq!(a["kind"], "service");
    assert_eq!(route("/b")["exported_region"], "x");

    let want: BTreeMap<String, f64> = [("/a".to_string(), 42.0), ("/b".to_string(), 7.5)].into();
    assert_eq!(values_of(&vm.url(), "e2e_requests_per_second"), want);
    assert_eq!(values_of(&server, "e2e_requests_per_second"), want);

    // The server fed by remote write only has no resource records: the same series but for
    // the labels the query API takes from them (docs/remote-write.md).
    let without_record_labels: Vec<Series> = ours
        .iter()
        .map(|s| {
            s.iter()
                .filter(|(k, _)| !(*k == "kind" || *k == "resource_name" || k.starts_with("tag_")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect();
    let mirrored = eventually(Duration::from_secs(15), || {
        Some(series_of(&mirror, selector)).filter(|s| s.len() == 2)
    })
    .expect("the remote-write-fed server has both series");
    assert_eq!(mirrored, without_record_labels);
    assert_eq!(values_of(&mirror, "e2e_requests_per_second"), want);
    // Delivered: nothing left in the buffer.
    let left = std::fs::read_dir(dir.path().join("agent/buffer/svc/remote_write"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(left, 0);
}
