//! Custom-source collectors and the http publisher end to end through the binary, against
//! servers and commands the tests start themselves (127.0.0.1 only).

mod common;
use axum::{routing::get, routing::post, Router};
use common::*;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An exposition endpoint whose counter grows by 50 per scrape.
fn exposition_server() -> String {
    let scrapes = Arc::new(AtomicU64::new(0));
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let n = scrapes.fetch_add(1, Ordering::SeqCst);
            async move {
                format!(
                    "# HELP jobs_done_total Jobs done.\n# TYPE jobs_done_total counter\njobs_done_total{{queue=\"a\\\"b\"}} {}\n\
                     # TYPE queue_depth gauge\nqueue_depth 17\n# TYPE heap_bytes gauge\nheap_bytes 1.5e6\n",
                    1000 + 50 * n
                )
            }
        }),
    );
    serve(router)
}

#[test]
fn prometheus_scrape_turns_counters_into_rates() {
    let url = format!("{}/metrics", exposition_server());
    let out = skymeter(&[
        "collect",
        "prometheus",
        "--set",
        &format!("url={url}"),
        "--set",
        "warmup=1s",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert_eq!(value_of(&records, "queue_depth", &[]), 17.0);
    assert_eq!(value_of(&records, "heap_bytes", &[]), 1.5e6);
    let rate = value_of(&records, "jobs_done", &[("queue", "a\"b")]);
    // 50 more jobs over the ~1 s between the two scrapes.
    assert!((35.0..=50.5).contains(&rate), "{rate}");
    let p = points(&records)
        .into_iter()
        .find(|p| p["metric"] == "jobs_done")
        .unwrap()
        .clone();
    assert_eq!(p["unit"], "count/s");
    assert_eq!(p["stat"], "avg");
    let heap = points(&records)
        .into_iter()
        .find(|p| p["metric"] == "heap_bytes")
        .unwrap()
        .clone();
    assert_eq!(heap["unit"], "bytes");
}

#[test]
fn prometheus_target_down_reports_up_0_and_the_error_with_status_1() {
    let url = format!("http://127.0.0.1:{}/metrics", free_port());
    let out = skymeter(&[
        "collect",
        "prometheus",
        "--set",
        &format!("url={url}"),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert_eq!(value_of(&records, "up", &[]), 0.0);
    let err = records
        .iter()
        .find(|r| r["type"] == "error")
        .expect("an error record");
    assert!(
        err["message"].as_str().unwrap().contains("127.0.0.1"),
        "{err}"
    );
    assert!(
        stderr(&out).contains("error: prometheus:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn prometheus_scrape_of_a_real_node_exporter() {
    let exporter = std::path::Path::new("/usr/bin/prometheus-node-exporter");
    if !exporter.exists() {
        skip(
            "prometheus_scrape_of_a_real_node_exporter",
            "/usr/bin/prometheus-node-exporter is not installed (Debian package \
             `prometheus-node-exporter`; scripts/test installs it)",
        );
        return;
    }
    let port = free_port();
    let mut child = std::process::Command::new(exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut out = None;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            out = Some(skymeter(&[
                "collect",
                "prometheus",
                "--set",
                &format!("url={url}"),
                "--format",
                "json",
            ]));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = out.expect("node_exporter started");
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    let load1 = value_of(&records, "node_load1", &[]);
    assert!(load1 >= 0.0);
    // node_cpu_seconds_total → a per-cpu, per-mode ratio of time.
    let idle: Vec<f64> = points(&records)
        .into_iter()
        .filter(|p| p["metric"] == "node_cpu_seconds" && p["labels"]["mode"] == "idle")
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert!(
        !idle.is_empty() && idle.iter().all(|v| (0.0..=1.5).contains(v)),
        "{idle:?}"
    );
    let resource = records.iter().find(|r| r["type"] == "resource").unwrap();
    assert_eq!(resource["id"], format!("127.0.0.1:{port}"));
}

#[test]
fn http_json_maps_pointers_to_metrics() {
    let router = Router::new()
        .route("/os/memory/free", get(|| async { "123456789" }))
        .route(
            "/os/cpus",
            get(|| async {
                axum::Json(
                    serde_json::json!({"cpus": [{"id": 0, "busy": 12.5}, {"id": 1, "busy": 80}]}),
                )
            }),
        );
    let base = serve(router);
    let out = skymeter(&[
        "collect",
        "http_json",
        "--set",
        &format!("url={base}/os/memory/free"),
        "--set",
        r#"metrics=[{ name = "memory.free", pointer = "", unit = "bytes" }]"#,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        value_of(&json_lines(&stdout(&out)), "memory.free", &[]),
        123456789.0
    );

    let out = skymeter(&[
        "collect",
        "http_json",
        "--set",
        &format!("url={base}/os/cpus"),
        "--set",
        "items=/cpus",
        "--set",
        r#"metrics=[{ name = "cpu.utilization", pointer = "/busy", unit = "percent", labels = { cpu = "/id" } }]"#,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert_eq!(value_of(&records, "cpu.utilization", &[("cpu", "0")]), 12.5);
    assert_eq!(value_of(&records, "cpu.utilization", &[("cpu", "1")]), 80.0);
}

#[test]
fn exec_parses_json_lines_and_prometheus_text() {
    let out = skymeter(&[
        "collect",
        "exec",
        "--set",
        r#"command=["sh", "-c", "echo '{\"metric\":\"gpu.utilization\",\"value\":87,\"unit\":\"percent\",\"labels\":{\"gpu\":\"0\"}}'; echo '{\"metric\":\"gpu.temperature\",\"value\":64,\"unit\":\"celsius\",\"labels\":{\"gpu\":\"0\"}}'"]"#,
        "--set",
        "format=json_lines",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert_eq!(value_of(&records, "gpu.utilization", &[("gpu", "0")]), 87.0);
    assert_eq!(value_of(&records, "gpu.temperature", &[("gpu", "0")]), 64.0);

    let out = skymeter(&[
        "collect",
        "exec",
        "--set",
        r##"command=["printf", "# TYPE temp_celsius gauge\ntemp_celsius{zone=\"cpu\"} 41.5\n"]"##,
        "--set",
        "format=prometheus",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert_eq!(value_of(&records, "temp_celsius", &[("zone", "cpu")]), 41.5);

    // A failing command is reported, with exit status 1 and the record of the error.
    let out = skymeter(&[
        "collect",
        "exec",
        "--set",
        r#"command=["sh", "-c", "echo boom >&2; exit 3"]"#,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    let err = records
        .iter()
        .find(|r| r["type"] == "error")
        .expect("an error record");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains('3') && msg.contains("boom"), "{msg}");
}

#[test]
fn http_publisher_delivers_gzip_batches_with_retry() {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let attempts = Arc::new(AtomicU64::new(0));
    let (r, a) = (received.clone(), attempts.clone());
    let router = Router::new().route(
        "/ingest",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (r, a) = (r.clone(), a.clone());
                async move {
                    if a.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    assert_eq!(headers["content-encoding"], "gzip");
                    assert_eq!(headers["authorization"], "Bearer tok-123");
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut text)
                        .unwrap();
                    r.lock().unwrap().push(serde_json::from_str(&text).unwrap());
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let base = serve(router);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[task]]
name = "ship"
schedule = {{ every = "10s" }}
collect = [{{ plugin = "host", warmup = "100ms" }}]
publish = [{{ plugin = "http", url = "{base}/ingest", token = "${{SHIP_TOKEN}}", retry = {{ initial = "50ms" }} }}]
"#
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["run", "--once", "-c", cfg.to_str().unwrap()])
        .env("SHIP_TOKEN", "tok-123")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("tok-123"),
        "the token never appears in logs"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "one 503, then delivered"
    );
    let batches = received.lock().unwrap();
    assert_eq!(batches.len(), 1);
    let batch: skymeter_model::Batch =
        serde_json::from_value(batches[0].clone()).expect("a valid Batch");
    batch.validate().unwrap();
    assert_eq!(batch.task, "ship");
    assert!(batch.points.len() > 20);
}

/// snap's OSv collector config (`swag_ip`, `swag_port`) against the OSv stand-in: values as
/// served, only the selected metrics, and the selected trace point's counting turned on.
#[test]
fn osv_collects_with_snaps_config_keys() {
    use skymeter_plugins::collectors::osv::standin::OsvStandin;
    let osv = OsvStandin::bind("127.0.0.1:0").unwrap();
    osv.set_memory(600_000_000, 2_000_000_000);
    osv.set_count("callout_reset", 206_217);
    let out = skymeter(&[
        "collect",
        "osv",
        "--set",
        "swag_ip=127.0.0.1",
        "--set",
        &format!("swag_port={}", osv.addr.port()),
        "--metrics",
        "memory.*",
        "--metrics",
        "osv.trace.callout.callout_reset",
        "--metrics",
        "osv.trace.wait.waitqueue_wake_one",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&stdout(&out));
    assert_eq!(value_of(&records, "memory.available", &[]), 600_000_000.0);
    assert_eq!(value_of(&records, "memory.usage", &[]), 70.0);
    assert_eq!(
        value_of(&records, "osv.trace.callout.callout_reset", &[]),
        206_217.0
    );
    value_of(&records, "osv.trace.wait.waitqueue_wake_one", &[]);
    assert!(points(&records)
        .iter()
        .all(|p| p["metric"] != "system.uptime"));
    assert_eq!(osv.counted(), vec!["callout_reset", "waitqueue_wake_one"]);
    let resource = records.iter().find(|r| r["type"] == "resource").unwrap();
    assert_eq!(resource["id"], osv.addr.to_string());
    assert_eq!(resource["name"], "osv.local");
}
