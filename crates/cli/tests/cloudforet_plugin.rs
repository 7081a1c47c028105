//! `skymeter cloudforet-plugin` as Cloudforet sees it: a Python client on the `spaceone-api`
//! package's generated stubs and grpcio (scripts/test installs them in a venv and sets
//! `SKYMETER_CLOUDFORET_PYTHON`; the script is `tests/cloudforet/client.py`) calls `init`,
//! `verify` and `collect` on the plugin, which reads a running skymeter server seeded over
//! HTTP ingest with known values. The monitoring `avg` and `max` it receives are those
//! values' mean and maximum over the period, and agree with the server's own query API;
//! gRPC reflection (v1alpha, as Cloudforet's client uses it) and health answer.

mod common;

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ACCOUNT: &str = "111122223333";

fn python() -> Result<PathBuf, String> {
    let why = "the Cloudforet client's Python packages are not installed (PyPI spaceone-api, \
               grpcio, grpcio-reflection, grpcio-health-checking; scripts/test installs them \
               in <cache>/venv-cloudforet and sets SKYMETER_CLOUDFORET_PYTHON)";
    let python = tool::venv_program("SKYMETER_CLOUDFORET_PYTHON", "venv-cloudforet", "python3")
        .ok_or_else(|| why.to_string())?;
    let probe = Command::new(&python)
        .args([
            "-c",
            "import spaceone.api.inventory.plugin.collector_pb2_grpc, grpc_reflection, grpc_health",
        ])
        .output()
        .map_err(|e| format!("{}: {e}; {why}", python.display()))?;
    if !probe.status.success() {
        return Err(format!("{} cannot import them; {why}", python.display()));
    }
    Ok(python)
}

/// Runs `calls` through the client against the plugin at `addr`; one result per call.
fn client(python: &Path, addr: &str, calls: &Value) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cloudforet/client.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(calls.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client.py: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client.py: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v.as_array().unwrap().clone()
}

/// One series to seed: resource, metric, unit, stat, point labels, values (one per hour,
/// ending an hour ago).
struct Series {
    resource: (&'static str, &'static str, &'static str),
    metric: &'static str,
    unit: &'static str,
    stat: &'static str,
    labels: Value,
    values: Vec<f64>,
}

fn s(
    resource: (&'static str, &'static str, &'static str),
    metric: &'static str,
    unit: &'static str,
    stat: &'static str,
    values: &[f64],
) -> Series {
    Series {
        resource,
        metric,
        unit,
        stat,
        labels: json!({}),
        values: values.to_vec(),
    }
}

const WEB: (&str, &str, &str) = ("aws", "us-east-1", "i-0a1b2c3d4e5f60001");
const API: (&str, &str, &str) = ("aws", "eu-west-1", "i-0a1b2c3d4e5f60002");
const HOST: (&str, &str, &str) = ("host", "", "build-box");
const RDS: (&str, &str, &str) = ("aws", "us-east-1", "orders");

fn seed_series() -> Vec<Series> {
    let mut v = vec![
        // web: avg and max series of CPU (as CloudWatch gives them), and every other metric.
        s(
            WEB,
            "cpu.utilization",
            "percent",
            "avg",
            &[10.0, 20.5, 30.25],
        ),
        s(
            WEB,
            "cpu.utilization",
            "percent",
            "max",
            &[50.0, 80.75, 60.0],
        ),
        s(WEB, "memory.usage", "percent", "avg", &[40.0, 50.0]),
        s(
            WEB,
            "disk.read_iops",
            "count/s",
            "avg",
            &[100.0, 200.0, 150.0],
        ),
        s(WEB, "disk.write_iops", "count/s", "avg", &[7.0, 9.0]),
        s(
            WEB,
            "disk.read_throughput",
            "bytes/s",
            "avg",
            &[1024.0, 4096.0],
        ),
        s(
            WEB,
            "disk.write_throughput",
            "bytes/s",
            "avg",
            &[2048.0, 512.0],
        ),
        s(
            WEB,
            "network.received_throughput",
            "bytes/s",
            "avg",
            &[1e6, 3e6],
        ),
        s(
            WEB,
            "network.sent_throughput",
            "bytes/s",
            "avg",
            &[5e5, 2.5e5],
        ),
        s(
            WEB,
            "network.received_pps",
            "count/s",
            "avg",
            &[900.0, 1100.0],
        ),
        s(WEB, "network.sent_pps", "count/s", "avg", &[800.0, 1000.0]),
        // api: only an avg series: its max is the largest of those values.
        s(API, "cpu.utilization", "percent", "avg", &[5.0, 7.0, 6.0]),
        // host: a total CPU series and a per-core one (not the total: left out); memory as
        // a gauge (`last`).
        s(HOST, "cpu.utilization", "percent", "avg", &[12.0, 18.0]),
        s(HOST, "memory.usage", "percent", "last", &[61.5, 62.5]),
        // a database: a cloud service, only with include_cloud_services.
        s(RDS, "cpu.utilization", "percent", "avg", &[3.0, 4.0]),
    ];
    v.push(Series {
        labels: json!({"cpu": "0"}),
        ..s(HOST, "cpu.utilization", "percent", "avg", &[90.0, 95.0])
    });
    v
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn maxf(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn resource_json(
    r: (&str, &str, &str),
    kind: &str,
    name: &str,
    attrs: Value,
    at: DateTime<Utc>,
) -> Value {
    let (provider, region, id) = r;
    let account = if provider == "host" { "" } else { ACCOUNT };
    let native = match kind {
        "compute.instance" => "AWS::EC2::Instance",
        "database.instance" => "AWS::RDS::DBInstance",
        _ => "",
    };
    json!({"provider": provider, "account": account, "region": region, "kind": kind,
           "native_type": native, "id": id, "name": name, "tags": {"team": "core"},
           "attributes": attrs, "observed_at": at.to_rfc3339()})
}

fn seed(base: &str, ingest: &str, now: DateTime<Utc>) {
    let at = now - Span::minutes(5);
    let resources = json!([
        resource_json(
            WEB,
            "compute.instance",
            "web-1",
            json!({"instance_type": "t3.micro", "private_ip": "10.0.0.5", "state": "running"}),
            at
        ),
        resource_json(
            API,
            "compute.instance",
            "api-1",
            json!({"instance_type": "m5.large"}),
            at
        ),
        resource_json(HOST, "host", "build-box", json!({}), at),
        resource_json(
            RDS,
            "database.instance",
            "orders",
            json!({"engine": "postgres"}),
            at
        ),
    ]);
    let mut points = Vec::new();
    for series in seed_series() {
        let (provider, region, id) = series.resource;
        let account = if provider == "host" { "" } else { ACCOUNT };
        let n = series.values.len() as i64;
        for (i, v) in series.values.iter().enumerate() {
            let ts = now - Span::hours(n - i as i64);
            let mut p = json!({"metric": series.metric, "unit": series.unit, "stat": series.stat,
                "period_s": 300, "ts": ts.to_rfc3339(), "value": v,
                "resource": {"provider": provider, "account": account, "region": region, "id": id}});
            if series.labels.as_object().is_some_and(|l| !l.is_empty()) {
                p["labels"] = series.labels.clone();
            }
            points.push(p);
        }
    }
    // Older than the default 24 hours: only in a 48-hour period.
    points.push(
        json!({"metric": "cpu.utilization", "unit": "percent", "stat": "avg",
        "period_s": 300, "ts": (now - Span::hours(30)).to_rfc3339(), "value": 99.0,
        "resource": {"provider": "aws", "account": ACCOUNT, "region": WEB.1, "id": WEB.2}}),
    );
    let batch = json!({"schema": 1, "batch_id": uuid::Uuid::now_v7().to_string(),
        "agent_id": "seed", "task": "seed", "collected_at": now.to_rfc3339(),
        "resources": resources, "points": points});
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/ingest"))
        .bearer_auth(ingest)
        .json(&batch)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
}

/// The value of the one series `query` selects, from the server's own query API.
fn promql(base: &str, token: &str, query: &str) -> f64 {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(result.len(), 1, "{query}: {v}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64()
        .is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

/// The items of a collect, by `reference.resource_id`.
fn by_id(items: &Value) -> std::collections::BTreeMap<String, Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["resource"]["reference"]["resource_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no reference.resource_id: {i}"))
                    .to_string(),
                i.clone(),
            )
        })
        .collect()
}

#[test]
fn cloudforets_client_collects_servers_with_skymeters_utilization() {
    let test = "cloudforets_client_collects_servers_with_skymeters_utilization";
    let Some(python) = tool::require_tool(test, python()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ingest = create_token(&data, "ingest", &["ingest"]);
    let read = create_token(&data, "read", &["read"]);
    let (_server, base) = server_on(dir.path());
    let now = Utc::now().duration_trunc(Span::minutes(1)).unwrap();
    seed(&base, &ingest, now);

    // The plugin, with the server and read token as its fallbacks; its log in a file.
    let plugin_port = free_port();
    let addr = format!("127.0.0.1:{plugin_port}");
    let log_path = dir.path().join("plugin.log");
    let _plugin = Proc(
        Command::new(bin())
            .args([
                "cloudforet-plugin",
                "--listen",
                &addr,
                "--server",
                &base,
                "--token",
                &read,
            ])
            .env_remove("SKYMETER_LOG")
            .env_remove("SKYMETER_SERVER")
            .env_remove("SKYMETER_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(15), || {
        std::net::TcpStream::connect(&addr).ok()
    })
    .expect("the plugin listens");

    let dead = format!("http://127.0.0.1:{}", free_port());
    let secret = json!({"skymeter_url": base, "token": read});
    let calls = json!([
        {"method": "services"},
        {"method": "health"},
        {"method": "init", "options": {}},
        // verify: the fallbacks, the secret's own, then each way it can be wrong.
        {"method": "verify", "options": {}, "secret_data": {}},
        {"method": "verify", "options": {"period_hours": 6}, "secret_data": secret},
        {"method": "verify", "options": {}, "secret_data": {"skymeter_url": base, "token": "sky_not_a_token"}},
        {"method": "verify", "options": {}, "secret_data": {"skymeter_url": base, "token": ingest}},
        {"method": "verify", "options": {}, "secret_data": {"skymeter_url": dead, "token": read}},
        {"method": "verify", "options": {"period_hour": 6}, "secret_data": secret},
        // collect: servers over the last 24 hours; filtered; 48 hours; cloud services.
        {"method": "collect", "options": {}, "secret_data": secret, "filter": {}},
        {"method": "collect", "options": {"providers": "aws", "regions": ["us-east-1"]},
         "secret_data": secret, "filter": {}},
        {"method": "collect", "options": {"period_hours": 48}, "secret_data": secret,
         "filter": {"resource_ids": [WEB.2]}},
        {"method": "collect", "options": {"include_cloud_services": true}, "secret_data": secret,
         "filter": {"kinds": "database.instance"}},
        {"method": "collect", "options": {}, "secret_data": {"skymeter_url": base, "token": "sky_not_a_token"},
         "filter": {}},
        // Options and filter both apply: aws servers that are hosts: none.
        {"method": "collect", "options": {"providers": "aws"}, "secret_data": secret,
         "filter": {"providers": ["host"]}},
    ]);
    let r = client(&python, &addr, &calls);
    let ok = |i: usize| -> &Value {
        assert_eq!(r[i]["ok"], true, "call {i} {}: {}", calls[i], r[i]);
        &r[i]["result"]
    };
    let err = |i: usize, code: &str| -> String {
        assert_eq!(r[i]["ok"], false, "call {i} {}: {}", calls[i], r[i]);
        assert_eq!(r[i]["code"], code, "call {i}: {}", r[i]);
        r[i]["details"].as_str().unwrap().to_string()
    };

    // Reflection (v1alpha, and v1) lists the Collector and serves its descriptor; health
    // says SERVING.
    let services = ok(0);
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"spaceone.api.inventory.plugin.Collector"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    assert!(
        names.contains(&"grpc.reflection.v1alpha.ServerReflection")
            && names.contains(&"grpc.reflection.v1.ServerReflection"),
        "{names:?}"
    );
    assert_eq!(
        services["collector_methods"],
        json!(["init", "verify", "collect"])
    );
    assert_eq!(
        services["services_v1"], services["services"],
        "reflection v1 lists what v1alpha lists"
    );
    assert_eq!(
        ok(1),
        &json!({"(server)": "SERVING", "spaceone.api.inventory.plugin.Collector": "SERVING"})
    );

    // init: what the plugin collects and the options it takes.
    let meta = &ok(2)["metadata"];
    assert_eq!(
        meta["supported_resource_type"],
        json!(["inventory.Server", "inventory.CloudService"])
    );
    assert_eq!(meta["supported_schedules"], json!(["hours"]));
    assert!(
        meta["options_schema"]["properties"]["period_hours"].is_object(),
        "{meta}"
    );

    // verify.
    ok(3);
    ok(4);
    let bad = err(5, "UNAUTHENTICATED");
    assert!(bad.contains(&base) && bad.contains("token"), "{bad}");
    assert!(!bad.contains("sky_not_a_token"), "{bad}");
    let scope = err(6, "PERMISSION_DENIED");
    assert!(
        scope.contains("read scope") && !scope.contains(&ingest),
        "{scope}"
    );
    let down = err(7, "UNAVAILABLE");
    assert!(down.contains(&dead) && !down.contains(&read), "{down}");
    let typo = err(8, "INVALID_ARGUMENT");
    assert!(typo.contains("options.period_hour"), "{typo}");

    // collect, last 24 hours: the three servers, each value the mean and maximum of what
    // was seeded, and equal to what the server's query API says.
    let all = by_id(ok(9));
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        [&HOST.2.to_string(), &WEB.2.to_string(), &API.2.to_string()]
    );
    for item in all.values() {
        assert_eq!(item["state"], "SUCCESS", "{item}");
        assert_eq!(item["resource_type"], "inventory.Server", "{item}");
        assert_eq!(
            item["match_rules"],
            json!({"1": ["reference.resource_id"]}),
            "{item}"
        );
    }
    let series = seed_series();
    let web = &all[WEB.2]["resource"];
    assert_eq!(web["provider"], "aws");
    assert_eq!(web["account"], ACCOUNT);
    assert_eq!(web["region_code"], "us-east-1");
    assert_eq!(web["name"], "web-1");
    assert_eq!(web["instance_type"], "t3.micro");
    assert_eq!(web["cloud_service_group"], "EC2");
    assert_eq!(web["tags"], json!({"team": "core"}));
    let monitoring = &web["data"]["monitoring"];
    let mut checked = 0;
    for metric in skymeter_cloudforet::mapping::METRICS {
        let of = |stat: &str| -> Vec<f64> {
            series
                .iter()
                .filter(|s| s.resource == WEB && s.metric == metric && s.stat == stat)
                .flat_map(|s| s.values.clone())
                .collect()
        };
        let avg = of("avg");
        let maxes = if of("max").is_empty() {
            avg.clone()
        } else {
            of("max")
        };
        let (group, name) = metric.split_once('.').unwrap();
        let got = &monitoring[group][name];
        assert!(
            close(&got["avg"], mean(&avg)),
            "{metric}: {got} vs mean {avg:?}"
        );
        assert!(
            close(&got["max"], maxf(&maxes)),
            "{metric}: {got} vs max {maxes:?}"
        );
        // The server's own answer.
        let prom = skymeter_cloudforet::mapping::prometheus_name(metric);
        let sel = format!("{prom}{{resource_id=\"{}\",stat=\"avg\"}}", WEB.2);
        assert!(
            close(
                &got["avg"],
                promql(&base, &read, &format!("avg_over_time({sel}[24h])"))
            ),
            "{metric}"
        );
        let max_stat = if of("max").is_empty() { "avg" } else { "max" };
        let sel = format!("{prom}{{resource_id=\"{}\",stat=\"{max_stat}\"}}", WEB.2);
        assert!(
            close(
                &got["max"],
                promql(&base, &read, &format!("max_over_time({sel}[24h])"))
            ),
            "{metric}"
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
    // And the server's own summary of each server (`GET /api/v1/resources/{key}`), whose
    // rule the plugin follows: the same avg and max for every metric it has.
    for item in all.values() {
        let key = item["resource"]["data"]["skymeter"]["key"]
            .as_str()
            .unwrap();
        let detail: Value = reqwest::blocking::Client::new()
            .get(format!("{base}/api/v1/resources/{key}?period=24h"))
            .bearer_auth(&read)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let ours = &item["resource"]["data"]["monitoring"];
        let mut compared = 0;
        for metric in skymeter_cloudforet::mapping::METRICS {
            let (group, name) = metric.split_once('.').unwrap();
            let theirs = &detail["monitoring"][group][name];
            assert_eq!(
                ours[group][name].is_null(),
                theirs.is_null(),
                "{key} {metric}: {detail}"
            );
            if theirs.is_object() {
                assert!(
                    close(&ours[group][name]["avg"], theirs["avg"].as_f64().unwrap()),
                    "{key} {metric}"
                );
                assert!(
                    close(&ours[group][name]["max"], theirs["max"].as_f64().unwrap()),
                    "{key} {metric}"
                );
                compared += 1;
            }
        }
        assert!(compared > 0, "{key}: {detail}");
    }
    let api = &all[API.2]["resource"]["data"]["monitoring"];
    assert!(close(&api["cpu"]["utilization"]["avg"], 6.0), "{api}");
    assert!(close(&api["cpu"]["utilization"]["max"], 7.0), "{api}");
    assert_eq!(api.as_object().unwrap().len(), 1, "only CPU: {api}");
    let host = &all[HOST.2]["resource"]["data"]["monitoring"];
    assert!(
        close(&host["cpu"]["utilization"]["avg"], 15.0),
        "per-core left out: {host}"
    );
    assert!(close(&host["cpu"]["utilization"]["max"], 18.0), "{host}");
    assert!(close(&host["memory"]["usage"]["avg"], 62.0), "{host}");
    assert!(close(&host["memory"]["usage"]["max"], 62.5), "{host}");

    // Filtered: aws in us-east-1 only.
    let east = by_id(ok(10));
    assert_eq!(east.keys().collect::<Vec<_>>(), [&WEB.2.to_string()]);
    // 48 hours: the older point counts.
    let long = by_id(ok(11));
    let cpu = &long[WEB.2]["resource"]["data"]["monitoring"]["cpu"]["utilization"];
    assert!(
        close(&cpu["avg"], mean(&[99.0, 10.0, 20.5, 30.25])),
        "{cpu}"
    );
    assert!(close(&cpu["max"], 80.75), "{cpu}");
    // A database as a cloud service, merged on id, provider, group and type.
    let db = by_id(ok(12));
    let orders = &db[RDS.2];
    assert_eq!(
        orders["resource_type"], "inventory.CloudService",
        "{orders}"
    );
    assert_eq!(
        orders["match_rules"]["1"],
        json!([
            "reference.resource_id",
            "provider",
            "cloud_service_type",
            "cloud_service_group"
        ])
    );
    assert_eq!(orders["resource"]["cloud_service_group"], "RDS");
    assert!(close(
        &orders["resource"]["data"]["monitoring"]["cpu"]["utilization"]["avg"],
        3.5
    ));
    // A bad token in collect.
    let refused = err(13, "UNAUTHENTICATED");
    assert!(!refused.contains("sky_not_a_token"), "{refused}");

    assert_eq!(ok(14), &json!([]));

    // The plugin logged its work, never a token.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("collect done"), "{log}");
    for secret in [&read, &ingest, &"sky_not_a_token".to_string()] {
        assert!(!log.contains(secret.as_str()), "a token in the log: {log}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = skymeter(&["cloudforet-plugin", "--listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = skymeter(&[
        "cloudforet-plugin",
        "--server",
        "ftp://x",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--server"), "{}", stderr(&out));
    let help = skymeter(&["cloudforet-plugin", "--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).contains("--listen"), "{}", stdout(&help));
}
