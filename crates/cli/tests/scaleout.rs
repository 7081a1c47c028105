//! Scale-out through the binary: two `skymeter server --metadata postgres://… --tsdb …`
//! on one PostgreSQL (the machine's, 127.0.0.1:5432, a database of the test's own) and one
//! TSDB started by the test — VictoriaMetrics (Debian's `victoria-metrics`) in one test,
//! Prometheus 2.42 (Debian's `prometheus`, remote-write receiver on) in the other — an agent alternating
//! between them, and an embedded server given the same batches: the PromQL API, the series,
//! points, resources and costs answer the same on all three.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

fn psql(db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A database of the test's own, dropped at the end.
struct Db(String);

impl Drop for Db {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
    }
}

/// The batches an agent sends: two hosts with thirty minutes of CPU and memory points,
/// then a change of one host's record, cost lines, a repeated batch.
fn batches(now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    use chrono::{DurationRound, TimeDelta};
    let start = (now - TimeDelta::minutes(40))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    let host = |id: &str, name: &str, env: &str, at: chrono::DateTime<chrono::Utc>| {
        json!({
            "provider": "host", "account": "lab", "region": "", "kind": "host", "id": id,
            "name": name, "tags": {"env": env}, "attributes": {"cores": 4},
            "observed_at": at.to_rfc3339()
        })
    };
    let point = |metric: &str,
                 unit: &str,
                 id: &str,
                 at: chrono::DateTime<chrono::Utc>,
                 v: f64,
                 labels: Value| {
        json!({
            "metric": metric, "unit": unit, "stat": "avg", "period_s": 60,
            "ts": at.to_rfc3339(), "value": v,
            "resource": {"provider": "host", "account": "lab", "region": "", "id": id},
            "labels": labels
        })
    };
    let mut out = Vec::new();
    for chunk in 0..6 {
        let at = start + TimeDelta::minutes(chunk * 5);
        let mut points = Vec::new();
        for m in 0..5 {
            let t = at + TimeDelta::minutes(m);
            let i = (chunk * 5 + m) as f64;
            points.push(point(
                "cpu.utilization",
                "percent",
                "web-1",
                t,
                10.0 + i * 0.5,
                json!({}),
            ));
            points.push(point(
                "cpu.utilization",
                "percent",
                "db-1",
                t,
                60.0 - i,
                json!({}),
            ));
            points.push(point(
                "memory.used",
                "bytes",
                "web-1",
                t,
                1e9 + i * 1e6,
                json!({}),
            ));
            points.push(point(
                "disk.read_bytes",
                "bytes",
                "db-1",
                t,
                i * 4096.0,
                json!({"device": "sda"}),
            ));
        }
        out.push(json!({
            "schema": 1,
            "batch_id": uuid::Uuid::now_v7().to_string(),
            "agent_id": "agent-1",
            "task": "host",
            "collected_at": (at + TimeDelta::minutes(5)).to_rfc3339(),
            "resources": [host("web-1", "web", "prod", at), host("db-1", "db", "prod", at)],
            "points": points,
        }));
    }
    let day = (now - TimeDelta::days(1))
        .duration_trunc(TimeDelta::days(1))
        .unwrap();
    let cost = |service: &str, billed: f64| {
        json!({
            "BilledCost": billed, "EffectiveCost": billed, "BillingCurrency": "USD",
            "ChargePeriodStart": day.to_rfc3339(),
            "ChargePeriodEnd": (day + TimeDelta::days(1)).to_rfc3339(),
            "ChargeCategory": "Usage", "ProviderName": "Amazon Web Services",
            "ServiceName": service, "SubAccountId": "111", "RegionId": "us-east-1",
            "x_source": "billed"
        })
    };
    out.push(json!({
        "schema": 1,
        "batch_id": uuid::Uuid::now_v7().to_string(),
        "agent_id": "agent-1",
        "task": "billing",
        "collected_at": now.to_rfc3339(),
        "costs": [cost("Amazon EC2", 12.5), cost("Amazon S3", 0.75)],
    }));
    out
}

fn post(base: &str, batch: &Value) -> Value {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/ingest"))
        .json(batch)
        .send()
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert!(status.is_success(), "{base}: {status} {body}");
    body
}

fn get(base: &str, path: &str, query: &[(&str, String)]) -> Value {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{base}{path}"))
        .query(query)
        .send()
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert!(
        status.is_success(),
        "{base}{path} {query:?}: {status} {body}"
    );
    body
}

/// The `data` of a Prometheus API answer with result series sorted (their order is not
/// part of the API for vectors from different engines' index orders).
fn prom_data(base: &str, path: &str, query: &[(&str, String)]) -> Value {
    let mut v = get(base, path, query)["data"].clone();
    if let Some(r) = v.get_mut("result").and_then(Value::as_array_mut) {
        r.sort_by_key(|s| s["metric"].to_string());
    }
    if let Some(a) = v.as_array_mut() {
        a.sort_by_key(|s| s.to_string());
    }
    v
}

/// The TSDB a scale-out test writes to and reads from, started by the test.
enum Tsdb {
    Victoria(skymeter_testkit::victoria::VictoriaMetrics),
    Prometheus(Prometheus),
}

impl Tsdb {
    fn base(&self) -> String {
        match self {
            Tsdb::Victoria(vm) => vm.url(),
            Tsdb::Prometheus(p) => p.base.clone(),
        }
    }
}

/// Debian's Prometheus 2.42 as a remote-write receiver, killed when dropped. Cost series
/// are stamped at the start of their day, older than the head block Prometheus appends to:
/// it takes them only with an out-of-order window (`storage.tsdb.out_of_order_time_window`,
/// Prometheus 2.39 and later), as docs/scaling.md says.
struct Prometheus {
    child: std::process::Child,
    base: String,
}

impl Prometheus {
    fn start(program: std::path::PathBuf, dir: &std::path::Path) -> Prometheus {
        let port = skymeter_testkit::net::free_port();
        let config = dir.join("prometheus.yml");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 30d\n",
        )
        .unwrap();
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(30), || {
            reqwest::blocking::get(format!("{base}/-/ready"))
                .ok()
                .filter(|r| r.status().is_success())
        })
        .expect("Prometheus gets ready");
        Prometheus { child, base }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_servers_on_postgresql_and_victoriametrics_answer_as_the_embedded_store() {
    let test = "two_servers_on_postgresql_and_victoriametrics_answer_as_the_embedded_store";
    let Some(vm_bin) =
        skymeter_testkit::tool::require_tool(test, skymeter_testkit::victoria::find())
    else {
        return;
    };
    scale_out_answers_as_embedded(test, |dir| {
        Tsdb::Victoria(skymeter_testkit::victoria::VictoriaMetrics::start(
            vm_bin,
            &dir.join("vm"),
        ))
    });
}

#[test]
fn two_servers_on_postgresql_and_prometheus_answer_as_the_embedded_store() {
    let test = "two_servers_on_postgresql_and_prometheus_answer_as_the_embedded_store";
    let Some(prom_bin) = skymeter_testkit::tool::require_tool(
        test,
        skymeter_testkit::tool::program("prometheus", "prometheus"),
    ) else {
        return;
    };
    scale_out_answers_as_embedded(test, |dir| {
        Tsdb::Prometheus(Prometheus::start(prom_bin, &dir.join("prometheus")))
    });
}

/// Two scale-out servers on one PostgreSQL and the TSDB `start` starts, and an embedded
/// server, given the same batches: every answer is the same.
fn scale_out_answers_as_embedded(test: &str, start: impl FnOnce(&std::path::Path) -> Tsdb) {
    if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        skip(
            test,
            "no PostgreSQL on 127.0.0.1:5432 (these machines run one)",
        );
        return;
    }
    let tool = skymeter_testkit::tool::require_tool;
    let program = skymeter_testkit::tool::program;
    if tool(test, program("psql", "postgresql-client")).is_none() {
        return;
    }
    let kind = if test.contains("prometheus") {
        "prom"
    } else {
        "vm"
    };
    let db = Db(format!("skymeter_scaleout_{kind}_{}", std::process::id()));
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.0),
    )
    .unwrap();
    psql("postgres", &format!("CREATE DATABASE {}", db.0)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tsdb_engine = start(dir.path());
    let vm_base = tsdb_engine.base();

    let pg_url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let tsdb = format!("remote-write={vm_base}/api/v1/write,query={vm_base}");
    let scale_out_server = |name: &str| {
        let port = skymeter_testkit::net::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let data = dir.path().join(name);
        let p = spawn(
            &[
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-auth",
                "--data-dir",
                data.to_str().unwrap(),
                "--metadata",
                &pg_url,
                "--tsdb",
                &tsdb,
            ],
            dir.path(),
        );
        wait_healthy(&base);
        (p, base)
    };
    let (_a, a) = scale_out_server("a");
    let (_b, b) = scale_out_server("b");
    let embedded_port = skymeter_testkit::net::free_port();
    let c = format!("http://127.0.0.1:{embedded_port}");
    let _c = spawn(
        &[
            "server",
            "--listen",
            &format!("127.0.0.1:{embedded_port}"),
            "--no-auth",
            "--data-dir",
            dir.path().join("embedded").to_str().unwrap(),
        ],
        dir.path(),
    );
    wait_healthy(&c);

    let now = chrono::Utc::now();
    let sent = batches(now);
    for (i, batch) in sent.iter().enumerate() {
        let to = if i % 2 == 0 { &a } else { &b };
        assert_eq!(post(to, batch)["duplicate"], false);
        assert_eq!(post(&c, batch)["duplicate"], false);
    }
    // A batch resent to the other server is a duplicate there: dedupe is shared.
    assert_eq!(post(&b, &sent[0])["duplicate"], true);
    let mut reused = sent[0].clone();
    reused["points"][0]["value"] = json!(99.0);
    let resp = reqwest::blocking::Client::new()
        .post(format!("{b}/api/v1/ingest"))
        .json(&reused)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 409, "a reused batch id with other content");

    // Remote-write delivery is asynchronous: wait until the TSDB has every sample
    // the embedded store has.
    let count = |base: &str| {
        get(
            base,
            "/api/v1/query",
            &[
                (
                    "query",
                    // Metric by metric: without their names, a host's CPU and memory
                    // series have the same labels, which one vector cannot hold.
                    "sum(count_over_time(cpu_utilization_percent[1h])) \
                     + sum(count_over_time(memory_used_bytes[1h])) \
                     + sum(count_over_time(disk_read_bytes[1h]))"
                        .into(),
                ),
                ("time", now.timestamp().to_string()),
            ],
        )["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
                    .sum::<f64>()
            })
            .unwrap_or(0.0)
    };
    let expected = count(&c);
    assert_eq!(expected, 120.0);
    // The cost lines come in the last batch: their series must have arrived too.
    let cost_series = |base: &str| {
        get(
            base,
            "/api/v1/query",
            &[
                ("query", "count(last_over_time(cost_billed_usd[2d]))".into()),
                ("time", now.timestamp().to_string()),
            ],
        )["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .to_string()
    };
    assert_eq!(cost_series(&c), "2");
    eventually(Duration::from_secs(30), || {
        (count(&a) == expected && cost_series(&a) == "2").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the TSDB has {} of {expected} samples and {} of 2 cost series",
            count(&a),
            cost_series(&a)
        )
    });

    // A minute after the last point (the batches hold 30 minutes from 40 minutes ago).
    let t = {
        use chrono::{DurationRound, TimeDelta};
        let start = (now - TimeDelta::minutes(40))
            .duration_trunc(TimeDelta::minutes(1))
            .unwrap();
        (start + TimeDelta::minutes(30)).timestamp()
    };
    let instant = |q: &str| vec![("query", q.to_string()), ("time", t.to_string())];
    let range = |q: &str| {
        vec![
            ("query", q.to_string()),
            ("start", (t - 45 * 60).to_string()),
            ("end", t.to_string()),
            ("step", "60".to_string()),
        ]
    };
    let queries: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/api/v1/query", instant("cpu_utilization_percent")),
        (
            "/api/v1/query",
            instant("avg_over_time(cpu_utilization_percent[15m])"),
        ),
        (
            "/api/v1/query",
            instant("sum by (resource_id) (rate(disk_read_bytes[10m]))"),
        ),
        (
            "/api/v1/query",
            instant("max_over_time(memory_used_bytes{tag_env=\"prod\"}[1h])"),
        ),
        (
            "/api/v1/query",
            instant("count(cpu_utilization_percent) by (kind)"),
        ),
        ("/api/v1/query_range", range("cpu_utilization_percent")),
        (
            "/api/v1/query_range",
            range("avg(cpu_utilization_percent) by (resource_name)"),
        ),
        (
            "/api/v1/query_range",
            range("deriv(memory_used_bytes[10m])"),
        ),
        (
            "/api/v1/series",
            vec![("match[]", "{provider=\"host\"}".into())],
        ),
        ("/api/v1/labels", vec![]),
        ("/api/v1/label/resource_id/values", vec![]),
    ];
    for (path, q) in &queries {
        let want = prom_data(&c, path, q);
        assert!(
            want != json!([]) && want.get("result") != Some(&json!([])),
            "{path} {q:?} has an answer"
        );
        for base in [&a, &b] {
            assert_eq!(prom_data(base, path, q), want, "{base}{path} {q:?}");
        }
    }

    // skymeter's own API: series, points, resources, costs.
    let native: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/api/v1/resources", vec![]),
        ("/api/v1/resources/host%2Flab%2F%2Fweb-1", vec![]),
        ("/api/v1/costs", vec![("group_by", "service".into())]),
        (
            "/api/v1/points",
            vec![
                ("metric", "cpu.utilization".into()),
                ("start", (now - chrono::TimeDelta::hours(1)).to_rfc3339()),
                ("end", now.to_rfc3339()),
            ],
        ),
        (
            "/api/v1/points",
            vec![
                ("metric", "disk.*".into()),
                ("start", (now - chrono::TimeDelta::hours(1)).to_rfc3339()),
                ("end", now.to_rfc3339()),
                ("step", "10m".into()),
                ("agg", "max".into()),
            ],
        ),
    ];
    for (path, q) in &native {
        let want = prom_data(&c, path, q);
        for base in [&a, &b] {
            assert_eq!(prom_data(base, path, q), want, "{base}{path} {q:?}");
        }
    }
    let sorted_series = |base: &str| {
        let mut items = get(base, "/api/v1/series", &[])["items"]
            .as_array()
            .unwrap()
            .clone();
        items.sort_by_key(|s| s.to_string());
        items
    };
    let want = sorted_series(&c);
    // Four host series and the cost series of two services (billed and effective).
    assert_eq!(want.len(), 8, "{want:?}");
    assert_eq!(sorted_series(&a), want);
    assert_eq!(sorted_series(&b), want);

    // Both servers report the shared state as healthy.
    for base in [&a, &b] {
        let health = get(base, "/health", &[]);
        assert_eq!(health["status"], "ok", "{health}");
    }
    drop(tsdb_engine);
}
