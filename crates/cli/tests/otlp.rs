//! The `otlp` publisher through the binary: `skymeter run --once` with the `exec` collector
//! (fixed values) into an OTLP/HTTP receiver that decodes with the official OpenTelemetry
//! Python bindings (testdata/otlp/receiver.py).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

#[test]
fn run_once_sends_otlp_metrics_the_official_decoder_reads() {
    let test = "run_once_sends_otlp_metrics_the_official_decoder_reads";
    let Some(python) = skymeter_testkit::tool::require_tool(test, skymeter_testkit::otlp::find())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rx = skymeter_testkit::otlp::Receiver::start(python, &dir.path().join("got.jsonl"), 0);
    let lines = r#"{"metric": "e2e.requests", "value": 42, "unit": "count/s", "labels": {"route": "/a"}}
{"metric": "e2e.latency", "value": 7.5, "unit": "ms", "stat": "p95"}"#;
    let script = script_printing(dir.path(), lines);
    std::fs::write(
        dir.path().join("task.toml"),
        format!(
            "[agent]\nid = \"edge-1\"\ndata_dir = \"agent\"\n\n[[task]]\nname = \"svc\"\nschedule = {{ every = \"1m\" }}\n\
             collect = [{{ plugin = \"exec\", command = [\"sh\", {script:?}], resource = {{ id = \"svc-1\", name = \"checkout\", tags = {{ team = \"pay\" }} }} }}]\n\
             publish = [{{ plugin = \"otlp\", url = \"{}\" }}]\n",
            rx.url()
        ),
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["run", "--once", "-c", "task.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let v: Value = serde_json::from_str(&got[0]).unwrap();
    let rms = v["request"]["resource_metrics"].as_array().unwrap();
    assert_eq!(rms.len(), 1, "one resource: {v}");
    let attributes: BTreeMap<String, String> = rms[0]["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_string(),
                a["value"]["string_value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(attributes["skymeter.resource_id"], "svc-1");
    assert_eq!(attributes["skymeter.name"], "checkout");
    assert_eq!(attributes["skymeter.tag.team"], "pay");
    assert_eq!(attributes["skymeter.provider"], "custom");
    let metrics = rms[0]["scope_metrics"][0]["metrics"].as_array().unwrap();
    let mut seen: BTreeMap<String, (String, f64, String)> = BTreeMap::new();
    for m in metrics {
        let dp = &m["gauge"]["data_points"][0];
        let stat = dp["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "stat")
            .map(|a| a["value"]["string_value"].as_str().unwrap().to_string())
            .unwrap();
        seen.insert(
            m["name"].as_str().unwrap().to_string(),
            (
                m["unit"].as_str().unwrap().to_string(),
                dp["as_double"].as_f64().unwrap(),
                stat,
            ),
        );
    }
    assert_eq!(
        seen["e2e.requests"],
        ("{count}/s".to_string(), 42.0, "last".to_string())
    );
    assert_eq!(
        seen["e2e.latency"],
        ("ms".to_string(), 7.5, "p95".to_string())
    );
}
