//! `POST /api/v1/write`, the Prometheus remote-write receiver: hand-built write requests
//! through real HTTP (stored points, refusals, stale markers, a skymeter series round-trip),
//! and a real Prometheus (Debian's `prometheus`) scraping a local exposition endpoint and
//! writing to a test server, whose PromQL answers must hold Prometheus' own samples.

mod support;

use prost::Message;
use reqwest::StatusCode;
use serde_json::Value;
use skymeter_server::remote_write_proto::{Label, Sample, TimeSeries, WriteRequest};
use skymeter_server::{ServerConfig, STALE_NAN};
use skymeter_store::Scope;
use skymeter_testkit::net::free_port;
use skymeter_testkit::tool::{program, require_tool};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A child process (Prometheus, vmagent) killed and reaped when the test ends, passing or not.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
    }
}

fn snappy(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

async fn post(s: &TestServer, token: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut r = s
        .client
        .post(format!("{}/api/v1/write", s.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// An instant query on the server: the result vector as (labels, value) by `__name__` order.
async fn query(
    s: &TestServer,
    token: &str,
    q: &str,
    time: &str,
) -> Vec<(BTreeMap<String, String>, f64)> {
    let resp = s
        .client
        .get(format!("{}/api/v1/query", s.url))
        .bearer_auth(token)
        .query(&[("query", q), ("time", time)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{q}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = serde_json::from_value(r["metric"].clone()).unwrap();
            let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            (labels, v)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

#[tokio::test]
async fn write_requests_are_stored_and_query_back_under_their_names() {
    let s = TestServer::start(ServerConfig::default()).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "node_load1"),
                    ("instance", "web-1:9100"),
                    ("job", "node"),
                ],
                &[
                    (T0, 0.25),
                    (T0 + 15_000, f64::from_bits(STALE_NAN)),
                    (T0 + 30_000, f64::NAN),
                ],
            ),
            series(
                &[
                    ("__name__", "node_memory_MemFree_bytes"),
                    ("instance", "web-1:9100"),
                    ("job", "node"),
                ],
                &[(T0, 1024.0)],
            ),
        ],
    };
    let resp = post(&s, Some(&ingest), snappy(&req)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // The stale marker and the NaN were dropped: two points.
    assert_eq!(s.stats().points, 2);
    // The same request again (a retry) is not stored twice.
    let resp = post(&s, Some(&ingest), snappy(&req)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(s.stats().points, 2);

    let got = query(&s, &read, "node_load1", "2026-01-01T00:00:10Z").await;
    assert_eq!(
        got,
        [(
            labels(&[
                ("__name__", "node_load1"),
                ("instance", "web-1:9100"),
                ("job", "node"),
                ("provider", "prometheus"),
                ("account", "node"),
                ("resource_id", "web-1:9100"),
                ("stat", "last"),
            ]),
            0.25
        )]
    );
    let got = query(
        &s,
        &read,
        "node_memory_MemFree_bytes",
        "2026-01-01T00:00:10Z",
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, 1024.0);
}

#[tokio::test]
async fn a_skymeter_series_round_trips_through_remote_write() {
    // A series stored by ingest on one server ...
    let a = TestServer::start(ServerConfig::default()).await;
    let token = a.token(&[Scope::Ingest, Scope::Read]);
    let mut b1 = skymeter_model::Batch::new("agent", "t", t("2026-01-01T00:00:00Z"));
    let r = skymeter_model::ResourceRef {
        provider: "aws".into(),
        account: "123".into(),
        region: "us-east-1".into(),
        id: "i-1".into(),
    };
    let mut p = point(
        "cpu.utilization",
        skymeter_model::Stat::Avg,
        t("2026-01-01T00:00:00Z"),
        42.5,
        &r,
    );
    p.unit = skymeter_model::Unit::Percent;
    p.labels = labels(&[("cpu", "0")]).into();
    b1.points.push(p);
    let resp = a
        .client
        .post(format!("{}/api/v1/ingest", a.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&b1).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let there = query(
        &a,
        &token,
        "cpu_utilization_percent",
        "2026-01-01T00:00:10Z",
    )
    .await;
    assert_eq!(there.len(), 1, "{there:?}");

    // ... written with the labels the query API shows to another server by remote write ...
    let b = TestServer::start(ServerConfig::default()).await;
    let token_b = b.token(&[Scope::Ingest, Scope::Read]);
    let pairs: Vec<(&str, &str)> = there[0]
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = WriteRequest {
        timeseries: vec![series(&pairs, &[(T0, 42.5)])],
    };
    let resp = post(&b, Some(&token_b), snappy(&req)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // ... queries back there under the same name and labels: same resource, stat and unit.
    let back = query(
        &b,
        &token_b,
        "cpu_utilization_percent",
        "2026-01-01T00:00:10Z",
    )
    .await;
    assert_eq!(back, there);
    assert_eq!(
        back[0].0,
        labels(&[
            ("__name__", "cpu_utilization_percent"),
            ("provider", "aws"),
            ("account", "123"),
            ("region", "us-east-1"),
            ("resource_id", "i-1"),
            ("stat", "avg"),
            ("cpu", "0"),
        ])
    );
}

#[tokio::test]
async fn bad_requests_are_refused_whole_with_a_reason() {
    let s = TestServer::start(ServerConfig::default()).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);
    let good = WriteRequest {
        timeseries: vec![series(&[("__name__", "up"), ("job", "j")], &[(T0, 1.0)])],
    };

    // No token, a token without the ingest scope.
    assert_eq!(post(&s, None, snappy(&good)).await.status(), 401);
    assert_eq!(post(&s, Some(&read), snappy(&good)).await.status(), 403);

    let error = |body: Value| body["error"]["message"].as_str().unwrap().to_string();
    // Not snappy.
    let resp = post(&s, Some(&ingest), b"\xff\xff\xff\xff\xff\xff junk".to_vec()).await;
    assert_eq!(resp.status(), 400);
    assert!(error(resp.json().await.unwrap()).contains("snappy"));
    // Snappy, but not a WriteRequest.
    let junk = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\x10\x0a\x03")
        .unwrap();
    let resp = post(&s, Some(&ingest), junk).await;
    assert_eq!(resp.status(), 400);
    assert!(error(resp.json().await.unwrap()).contains("prometheus.WriteRequest"));
    // One bad series refuses the whole request, naming it.
    let mut bad = good.clone();
    bad.timeseries
        .push(series(&[("job", "no-name")], &[(T0, 2.0)]));
    let resp = post(&s, Some(&ingest), snappy(&bad)).await;
    assert_eq!(resp.status(), 400);
    let msg = error(resp.json().await.unwrap());
    assert!(
        msg.contains("timeseries[1]") && msg.contains("__name__"),
        "{msg}"
    );
    assert_eq!(s.stats().points, 0);
    // A JSON body, or another encoding.
    let resp = s
        .client
        .post(format!("{}/api/v1/write", s.url))
        .bearer_auth(&ingest)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = s
        .client
        .post(format!("{}/api/v1/write", s.url))
        .bearer_auth(&ingest)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(snappy(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    // A body announcing more than the limit once decompressed.
    let small = TestServer::start(ServerConfig {
        max_body_bytes: 64,
        ..ServerConfig::default()
    })
    .await;
    let token = small.token(&[Scope::Ingest]);
    let big = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "up"), ("job", &"j".repeat(200))],
            &[(T0, 1.0)],
        )],
    };
    assert_eq!(post(&small, Some(&token), snappy(&big)).await.status(), 413);
    // The good one is still stored.
    assert_eq!(post(&s, Some(&ingest), snappy(&good)).await.status(), 204);
    assert_eq!(s.stats().points, 1);
}

/// A tiny exposition endpoint: the same text on every scrape.
async fn serve_exposition(listener: tokio::net::TcpListener, text: &'static str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(text.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

const EXPOSITION: &str = "\
# TYPE rw_test_gauge gauge
rw_test_gauge{color=\"blue\"} 42.5
rw_test_gauge{color=\"red\"} -3.25
# TYPE rw_test_requests_total counter
rw_test_requests_total 7
# TYPE rw_test_memory_bytes gauge
rw_test_memory_bytes 1048576
";

/// Samples of a range-vector answer (`query=x[5m]`) by series labels.
fn matrix(body: &Value) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> {
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = serde_json::from_value(r["metric"].clone()).unwrap();
            let points = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                        p[1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            (labels, points)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_feeds_the_server_by_remote_write() {
    let test = "a_real_prometheus_feeds_the_server_by_remote_write";
    let Some(prometheus) = require_tool(test, program("prometheus", "prometheus")) else {
        return;
    };
    let s = TestServer::start(ServerConfig::default()).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);

    let expo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let expo_addr = expo.local_addr().unwrap();
    tokio::spawn(serve_exposition(expo, EXPOSITION));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: rwtest\n    static_configs:\n      - targets: ['{expo_addr}']\n\
             remote_write:\n  - url: {}/api/v1/write\n    authorization:\n      credentials: {ingest}\n\
             \x20   queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            s.url
        ),
    )
    .unwrap();
    let port = free_port();
    let log_path = dir.path().join("prometheus.log");
    let mut child = Kill(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("starting prometheus"),
    );
    let prom = format!("http://127.0.0.1:{port}");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Until skymeter has a few scrapes of every served series.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("prometheus exited with {status}:\n{}", log());
        }
        let now = chrono::Utc::now().to_rfc3339();
        let gauges = query(&s, &read, "count_over_time(rw_test_gauge[1m])", &now).await;
        if gauges.len() == 2 && gauges.iter().all(|(_, n)| *n >= 3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skymeter did not receive 3 scrapes of rw_test_gauge within 90 s (has {gauges:?}); \
             prometheus log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The exact samples served, under the names and labels Prometheus gave them.
    let now = chrono::Utc::now().to_rfc3339();
    let instance = expo_addr.to_string();
    let common = |name: &str| {
        let mut l = labels(&[
            ("__name__", name),
            ("job", "rwtest"),
            ("instance", &instance),
            ("provider", "prometheus"),
            ("account", "rwtest"),
            ("resource_id", &instance),
            ("stat", "last"),
        ]);
        l.retain(|_, v| !v.is_empty());
        l
    };
    let mut blue = common("rw_test_gauge");
    blue.insert("color".into(), "blue".into());
    let mut red = common("rw_test_gauge");
    red.insert("color".into(), "red".into());
    let mut got = query(&s, &read, "rw_test_gauge", &now).await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, [(blue, 42.5), (red, -3.25)]);
    assert_eq!(
        query(&s, &read, "rw_test_requests_total", &now).await,
        [(common("rw_test_requests_total"), 7.0)]
    );
    assert_eq!(
        query(&s, &read, "rw_test_memory_bytes", &now).await,
        [(common("rw_test_memory_bytes"), 1_048_576.0)]
    );

    // Prometheus' own samples of a series that changes every scrape: each sample skymeter
    // holds is one of Prometheus' at the same millisecond, with the same value.
    let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let q = "scrape_duration_seconds{job=\"rwtest\"}[5m]".to_string();
    let theirs: Value = s
        .client
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q.as_str()), ("time", &at.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs = matrix(&theirs);
    let ours: Value = s
        .client
        .get(format!("{}/api/v1/query", s.url))
        .bearer_auth(&read)
        .query(&[("query", q.as_str()), ("time", &at.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ours = matrix(&ours);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(ours.len(), 1, "{ours:?}");
    let (their_labels, their_points) = theirs.into_iter().next().unwrap();
    let (our_labels, our_points) = ours.into_iter().next().unwrap();
    for (k, v) in &their_labels {
        assert_eq!(our_labels.get(k), Some(v), "label {k}: {our_labels:?}");
    }
    assert!(our_points.len() >= 3, "{our_points:?}");
    let theirs: BTreeMap<i64, f64> = their_points.into_iter().collect();
    for (t, v) in &our_points {
        assert_eq!(
            theirs.get(t),
            Some(v),
            "sample at {t} ms: ours {v}, Prometheus' {theirs:?}"
        );
    }
    drop(child);
}

#[tokio::test]
async fn the_document_describes_the_receiver() {
    let doc = skymeter_server::openapi();
    let op = &doc["paths"]["/api/v1/write"]["post"];
    assert_eq!(op["x-required-scope"], "ingest");
    assert!(
        op["requestBody"]["content"]["application/x-protobuf"].is_object(),
        "{op}"
    );
    assert!(op["responses"]["204"].is_object());
    assert!(op["responses"]["400"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmagent_feeds_the_server_by_remote_write() {
    let test = "vmagent_feeds_the_server_by_remote_write";
    let Some(vmagent) = require_tool(test, program("vmagent", "victoria-metrics")) else {
        return;
    };
    let s = TestServer::start(ServerConfig::default()).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = dir.path().join("vmagent.log");
    let mut child = Kill(
        Command::new(&vmagent)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-remoteWrite.url={}/api/v1/write", s.url))
            .arg(format!("-remoteWrite.bearerToken={ingest}"))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("queue").display()
            ))
            .arg("-remoteWrite.flushInterval=500ms")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("starting vmagent"),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let vm = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s
        .client
        .get(format!("{vm}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("vmagent exited with {status}:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "vmagent was not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Samples pushed into vmagent (its Prometheus text import) reach skymeter exactly.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let text = format!(
        "vm_test_temperature_celsius{{instance=\"sensor-1\",job=\"lab\"}} 21.75 {now_ms}\n\
         vm_test_temperature_celsius{{instance=\"sensor-1\",job=\"lab\"}} NaN {}\n",
        now_ms - 1000
    );
    let resp = s
        .client
        .post(format!("{vm}/api/v1/import/prometheus"))
        .body(text)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let at = format!("{}.{:03}", now_ms / 1000, now_ms % 1000);
    let want = vec![(
        labels(&[
            ("__name__", "vm_test_temperature_celsius"),
            ("instance", "sensor-1"),
            ("job", "lab"),
            ("provider", "prometheus"),
            ("account", "lab"),
            ("resource_id", "sensor-1"),
            ("stat", "last"),
        ]),
        21.75,
    )];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = query(&s, &read, "vm_test_temperature_celsius", &at).await;
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skymeter did not receive vmagent's sample within 60 s (has {got:?}); vmagent log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(child);
}
