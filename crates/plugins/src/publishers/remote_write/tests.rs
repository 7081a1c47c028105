use super::*;
use crate::common::testing::{
    batch, buffered_files, buffered_publisher, build_error, host_record, point, resource,
    sample_entries, wait_for, with_raw,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap as AxumHeaders;
use axum::routing::post;
use axum::Router;
use skymeter_model::prom::series_labels;
use skymeter_model::{ChargeCategory, Cost, Resource, Stat, Unit};
use skymeter_testkit::tool::require_tool;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A batch's write requests as the receiver reads them: snappy block, then protobuf, with
/// the messages the server's receiver decodes.
fn decoded(batch: &Batch, max: usize) -> Vec<WriteRequest> {
    RemoteWrite::new(max)
        .encode(batch)
        .unwrap()
        .iter()
        .map(|body| {
            let bytes = snap::raw::Decoder::new().decompress_vec(body).unwrap();
            WriteRequest::decode(bytes.as_slice()).unwrap()
        })
        .collect()
}

fn labels_of(s: &TimeSeries) -> Vec<(String, String)> {
    s.labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn record(id: &str) -> Resource {
    host_record(id, "a b")
}

#[test]
fn series_carry_the_query_apis_labels_and_time_ordered_samples() {
    let mut b = batch(vec![
        point(
            "cpu.utilization",
            3.0,
            "2026-11-22T10:02:00Z",
            &[("cpu", "0")],
        ),
        point(
            "cpu.utilization",
            1.0,
            "2026-11-22T10:00:00Z",
            &[("cpu", "0")],
        ),
        point(
            "cpu.utilization",
            2.0,
            "2026-11-22T10:01:00Z",
            &[("cpu", "0")],
        ),
        // The same timestamp again: the later point in the batch wins.
        point(
            "cpu.utilization",
            9.0,
            "2026-11-22T10:01:00Z",
            &[("cpu", "0")],
        ),
        point(
            "cpu.utilization",
            5.0,
            "2026-11-22T10:00:00Z",
            &[("region", "x")],
        ),
        point("memory.usage", f64::NAN, "2026-11-22T10:00:00Z", &[]),
    ]);
    b.resources.push(record("h1"));
    let reqs = decoded(&b, 100);
    assert_eq!(reqs.len(), 1);
    let ts = &reqs[0].timeseries;
    assert_eq!(ts.len(), 2, "two series; the NaN point is not sent");
    let first = &ts[0];
    let want = series_labels(
        SeriesId::of(&b.points[0]),
        Some(&ResourceLabels::of(&b.resources[0])),
    );
    assert_eq!(labels_of(first), want);
    assert_eq!(
        labels_of(first),
        [
            ("__name__", "cpu_utilization_percent"),
            ("account", "acct"),
            ("cpu", "0"),
            ("kind", "host"),
            ("provider", "host"),
            ("region", "eu-west-1"),
            ("resource_id", "h1"),
            ("resource_name", "web-1"),
            ("stat", "last"),
            ("tag_team", "a b"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let samples: Vec<(i64, f64)> = first
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    let ms = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(
        samples,
        [
            (ms("2026-11-22T10:00:00Z"), 1.0),
            (ms("2026-11-22T10:01:00Z"), 9.0),
            (ms("2026-11-22T10:02:00Z"), 3.0)
        ]
    );
    // A point label named like a fixed label is exported, as the query API shows it.
    assert!(labels_of(&ts[1]).contains(&("exported_region".into(), "x".into())));
}

#[test]
fn a_resource_keeps_its_record_labels_in_later_batches_without_the_record() {
    let rw = RemoteWrite::new(100);
    let decode = |b: &Batch| -> Vec<Vec<(String, String)>> {
        rw.encode(b)
            .unwrap()
            .iter()
            .flat_map(|body| {
                let bytes = snap::raw::Decoder::new().decompress_vec(body).unwrap();
                WriteRequest::decode(bytes.as_slice()).unwrap().timeseries
            })
            .map(|s| labels_of(&s))
            .collect()
    };
    let p = || point("cpu.utilization", 1.0, "2026-11-22T10:00:00Z", &[]);
    let mut first = batch(vec![p()]);
    first.resources.push(record("h1"));
    let with_record = decode(&first);
    let later = batch(vec![p()]);
    assert_eq!(
        decode(&later),
        with_record,
        "the same series, kind, name and tags included"
    );
    // An older record does not replace a newer one.
    let mut stale = batch(vec![p()]);
    stale.resources.push(Resource {
        name: "old-name".into(),
        observed_at: "2026-11-01T00:00:00Z".parse().unwrap(),
        ..record("h1")
    });
    assert!(decode(&stale)[0].contains(&("resource_name".into(), "web-1".into())));
}

#[test]
fn requests_split_at_max_samples_per_send() {
    let points: Vec<Point> = (0..7)
        .flat_map(|i| {
            let at = format!("2026-11-22T10:0{i}:00Z");
            [
                point("a", i as f64, &at, &[]),
                point("b", i as f64, &at, &[]),
            ]
        })
        .collect();
    let reqs = decoded(&batch(points), 5);
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| r.timeseries.iter().map(|s| s.samples.len()).sum())
        .collect();
    assert_eq!(sizes, [5, 5, 4]);
    // Series `a` (7 samples) spans the first two requests, in time order.
    let a: Vec<f64> = reqs
        .iter()
        .flat_map(|r| &r.timeseries)
        .filter(|s| s.labels.iter().any(|l| l.value == "a_percent"))
        .flat_map(|s| s.samples.iter().map(|x| x.value))
        .collect();
    assert_eq!(a, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn cost_lines_go_as_the_servers_cost_series() {
    let start: chrono::DateTime<chrono::Utc> = "2026-11-21T00:00:00Z".parse().unwrap();
    let mut b = batch(Vec::new());
    b.costs.push(Cost {
        billed_cost: 12.5,
        effective_cost: 10.0,
        billing_currency: "USD".into(),
        charge_period_start: start,
        charge_period_end: start + chrono::Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: "Amazon EC2".into(),
        sub_account_id: Some("123".into()),
        x_source: skymeter_model::CostSource::Billed,
        ..Default::default()
    });
    let reqs = decoded(&b, 100);
    let mut got: Vec<(String, f64)> = reqs[0]
        .timeseries
        .iter()
        .map(|s| {
            let name = s.labels.iter().find(|l| l.name == "__name__").unwrap();
            (name.value.clone(), s.samples[0].value)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("cost_billed_usd".to_string(), 12.5),
            ("cost_effective_usd".to_string(), 10.0)
        ]
    );
    assert_eq!(
        reqs[0].timeseries[0].samples[0].timestamp,
        start.timestamp_millis()
    );
}

#[test]
fn a_batch_without_points_or_costs_makes_no_request() {
    let mut b = batch(Vec::new());
    b.resources.push(record("h1"));
    assert!(RemoteWrite::new(10).encode(&b).unwrap().is_empty());
}

#[test]
fn config_mistakes_are_named() {
    let err = |text: &str| build_error(text, build);
    assert!(err("url = \"ftp://x\"").contains("url"));
    assert!(
        err("url = \"http://x/api/v1/write\"\nmax_samples_per_send = 0")
            .contains("max_samples_per_send")
    );
    let both = err("url = \"http://x\"\nbearer_token = \"t\"\nbasic_auth = { username = \"u\", password = \"p\" }");
    assert!(both.contains("keep one"), "{both}");
    assert!(
        err("url = \"http://x\"\nheaders = { content-type = \"text/plain\" }").contains("headers")
    );
    assert!(err("url = \"http://x\"\nretry = { attempts = 3 }").contains("attempts"));
    assert!(err("url = \"http://x\"\nheaders = { x = \"a\\nb\" }").contains("cannot carry"));
}

#[test]
fn the_sample_config_builds() {
    let sample = include_str!("sample.toml");
    for entry in sample_entries(sample, "publish", NAME) {
        with_raw(&entry, |raw| build(raw, &BuildContext::one_shot("t")))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}

/// A receiver that records each request's headers and body and answers with the next
/// status of `answers` (204 when none are left).
struct Recorder {
    got: Mutex<Vec<(AxumHeaders, Bytes)>>,
    answers: Mutex<VecDeque<(u16, &'static str)>>,
}

async fn recorder(answers: &[(u16, &'static str)]) -> (String, Arc<Recorder>) {
    let rec = Arc::new(Recorder {
        got: Mutex::new(Vec::new()),
        answers: Mutex::new(answers.iter().copied().collect()),
    });
    let app = Router::new()
        .route(
            "/api/v1/write",
            post(
                |State(rec): State<Arc<Recorder>>, headers: AxumHeaders, body: Bytes| async move {
                    rec.got.lock().unwrap().push((headers, body));
                    let (status, text) =
                        rec.answers.lock().unwrap().pop_front().unwrap_or((204, ""));
                    (axum::http::StatusCode::from_u16(status).unwrap(), text)
                },
            ),
        )
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rec)
}

fn publisher(url: &str, buffer: &Path, extra: &str) -> Box<dyn Publisher> {
    buffered_publisher(build, url, buffer, extra)
}

fn files_in(dir: &Path) -> Vec<String> {
    buffered_files(dir)
}

#[tokio::test]
async fn requests_carry_the_protocol_headers_and_retries_keep_the_batch() {
    let (url, rec) = recorder(&[(503, "overloaded"), (429, "slow down")]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(
        &url,
        &dir.path().join("buf"),
        "bearer_token = \"tok-123\"\nheaders = { X-Scope-OrgID = \"tenant-1\" }",
    );
    let b = batch(vec![point(
        "cpu.utilization",
        1.0,
        "2026-11-22T10:00:00Z",
        &[],
    )]);
    p.publish(&b).await.unwrap();
    p.flush().await.unwrap();
    let got = rec.got.lock().unwrap();
    assert_eq!(got.len(), 3, "503 and 429 retried, then delivered");
    let (h, body) = &got[2];
    assert_eq!(h["content-encoding"], "snappy");
    assert_eq!(h["content-type"], "application/x-protobuf");
    assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
    assert!(h["user-agent"].to_str().unwrap().starts_with("skymeter/"));
    assert_eq!(h["authorization"], "Bearer tok-123");
    assert_eq!(h["x-scope-orgid"], "tenant-1");
    let req = WriteRequest::decode(
        snap::raw::Decoder::new()
            .decompress_vec(body)
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(req.timeseries[0].samples[0].value, 1.0);
    assert_eq!(got[0].1, got[2].1, "a retry sends the same bytes");
    assert!(files_in(&dir.path().join("buf")).is_empty());
}

#[tokio::test]
async fn a_refused_request_is_reported_and_dropped_and_the_others_still_go() {
    // Three requests (max 1 sample each); the receiver refuses the second.
    let (url, rec) = recorder(&[(204, ""), (400, "out of bounds: sample too old")]).await;
    let dir = tempfile::tempdir().unwrap();
    let buf = dir.path().join("buf");
    let mut p = publisher(
        &url,
        &buf,
        "basic_auth = { username = \"u\", password = \"pw\" }\nmax_samples_per_send = 1",
    );
    let b = batch(vec![
        point("a", 1.0, "2026-11-22T10:00:00Z", &[]),
        point("b", 2.0, "2026-11-22T10:00:00Z", &[]),
        point("c", 3.0, "2026-11-22T10:00:00Z", &[]),
    ]);
    p.publish(&b).await.unwrap();
    p.flush().await.unwrap();
    let later = batch(vec![point("d", 4.0, "2026-11-22T10:00:00Z", &[])]);
    p.publish(&later).await.unwrap();
    p.flush().await.unwrap();
    let got = rec.got.lock().unwrap();
    assert_eq!(
        got.len(),
        4,
        "the batch's three requests, then the next batch"
    );
    assert_eq!(got[0].0["authorization"], "Basic dTpwdw==");
    assert!(files_in(&buf).is_empty());
    let rejected = files_in(&buf.join("rejected"));
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(buf.join("rejected").join(&rejected[1])).unwrap())
            .unwrap();
    assert_eq!(report["refused"][0]["request"], 2);
    assert_eq!(report["refused"][0]["status"], 400);
    assert!(report["refused"][0]["response"]
        .as_str()
        .unwrap()
        .contains("too old"));
    assert!(report["refused"][0]["held"]
        .as_str()
        .unwrap()
        .contains("b_percent{"));
    assert!(!report.to_string().contains("pw"));
}

/// `/api/v1/export` of VictoriaMetrics for `{__name__=~"<re>"}`: per series (its labels),
/// the (ms, value) samples.
async fn vm_export(base: &str, re: &str) -> BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>> {
    let body = reqwest::Client::new()
        .get(format!("{base}/api/v1/export"))
        .query(&[("match[]", format!("{{__name__=~\"{re}\"}}"))])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let labels: Vec<(String, String)> = v["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let samples: Vec<(i64, f64)> = v["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(v["values"].as_array().unwrap())
            .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap()))
            .collect();
        out.insert(labels, samples);
    }
    out
}

/// Points of one series `rw.test` at `now - 10 min + i s`, values `i`.
fn numbered(from: i64, to: i64) -> Batch {
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let base = base - chrono::Duration::milliseconds(base.timestamp_subsec_millis() as i64);
    let mut b = batch(Vec::new());
    for i in from..to {
        let mut p = point("rw.test", i as f64, "2026-11-22T10:00:00Z", &[("n", "1")]);
        p.ts = base + chrono::Duration::seconds(i);
        p.unit = Unit::Count;
        p.stat = Stat::Avg;
        b.points.push(p);
    }
    b
}

#[tokio::test]
async fn victoriametrics_down_then_back_loses_nothing_and_stores_nothing_twice() {
    let test = "victoriametrics_down_then_back_loses_nothing_and_stores_nothing_twice";
    let Some(program) = require_tool(test, skymeter_testkit::victoria::find()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut vm =
        skymeter_testkit::victoria::VictoriaMetrics::start(program, &dir.path().join("vm"));
    let url = format!("{}/api/v1/write", vm.url());
    let buf = dir.path().join("buf");
    // Small requests, so that one batch makes several.
    let mut p = publisher(&url, &buf, "max_samples_per_send = 7");
    let (a, b, c) = (numbered(0, 20), numbered(20, 45), numbered(45, 60));
    p.publish(&a).await.unwrap();
    p.flush().await.unwrap();
    assert!(files_in(&buf).is_empty(), "batch a delivered");

    vm.down();
    p.publish(&b).await.unwrap();
    p.publish(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(files_in(&buf).len(), 2, "b and c wait on disk");

    vm.up();
    p.flush().await.unwrap();
    wait_for("the buffer to drain", || files_in(&buf).is_empty()).await;
    // VictoriaMetrics makes new samples searchable within a second or so.
    let mut got = BTreeMap::new();
    for _ in 0..100 {
        vm_flush(&vm.url()).await;
        got = vm_export(&vm.url(), "rw_test").await;
        if got.values().map(Vec::len).sum::<usize>() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 1, "one series: {got:?}");
    let (labels, samples) = got.into_iter().next().unwrap();
    let want: Vec<(String, String)> = series_labels(SeriesId::of(&a.points[0]), None)
        .into_iter()
        .collect();
    let mut labels = labels;
    labels.sort();
    assert_eq!(labels, want);
    let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
    assert_eq!(
        values,
        (0..60).map(|i| i as f64).collect::<Vec<_>>(),
        "all 60, once each, in order"
    );
    let a_ts: Vec<i64> = a
        .points
        .iter()
        .chain(&b.points)
        .chain(&c.points)
        .map(|p| p.ts.timestamp_millis())
        .collect();
    assert_eq!(samples.iter().map(|s| s.0).collect::<Vec<_>>(), a_ts);
}

/// Makes what VictoriaMetrics holds in memory searchable now.
async fn vm_flush(base: &str) {
    let _ = reqwest::get(format!("{base}/internal/force_flush")).await;
}

#[tokio::test]
async fn prometheus_takes_the_samples_with_their_values() {
    let test = "prometheus_takes_the_samples_with_their_values";
    let Some(program) = require_tool(
        test,
        skymeter_testkit::tool::program("prometheus", "prometheus"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = skymeter_testkit::net::free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let child = std::process::Command::new(program)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = Kill(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("prometheus to get ready", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    for _ in 0..200 {
        if reqwest::get(format!("{base}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let buf = dir.path().join("buf");
    let mut p = publisher(&format!("{base}/api/v1/write"), &buf, "");
    let mut b = numbered(0, 30);
    b.resources.push(Resource {
        id: resource("h1").id.to_string(),
        ..record("h1")
    });
    p.publish(&b).await.unwrap();
    p.flush().await.unwrap();
    assert!(files_in(&buf).is_empty(), "delivered once");
    let end = b.points.last().unwrap().ts.timestamp();
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query_range"))
        .query(&[
            ("query", "rw_test".to_string()),
            ("start", (end - 29).to_string()),
            ("end", end.to_string()),
            ("step", "1".to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = &answer["data"]["result"];
    assert_eq!(result.as_array().unwrap().len(), 1, "{answer}");
    let metric = &result[0]["metric"];
    assert_eq!(metric["resource_name"], "web-1");
    assert_eq!(metric["tag_team"], "a b");
    assert_eq!(metric["stat"], "avg");
    let values: Vec<f64> = result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[1].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(values, (0..30).map(|i| i as f64).collect::<Vec<_>>());
}
