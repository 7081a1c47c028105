//! Differential test through HTTP: the same samples posted to skymeter (`POST
//! /api/v1/ingest`, part of them sealed into blocks, the rest in the head) and backfilled
//! into a real Prometheus 2.42 (`promtool tsdb create-blocks-from openmetrics`), with the
//! labels the test derives from the documented naming (DESIGN §3), not from skymeter's
//! code. A query set — aggregations by region and provider, rate and friends,
//! `*_over_time`, topk, all four matcher kinds, resource tags and names as labels, offset,
//! `@`, subqueries, matching — is asked of both servers' HTTP APIs, instant at several
//! times and as range queries; answers must have the same series and values (relative
//! 1e-9), or fail in both with the same error type and HTTP status.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian package `prometheus`); without them
//! the test prints `SKIPPED: ...` and passes, or fails under `CI=true`.

mod promsupport;

use chrono::DateTime;
use promsupport::Sky;
use serde_json::Value as Json;
use skymeter_model::{Batch, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_server::Auth;
use skymeter_store::Store;
use skymeter_testkit::prometheus::{self, compare, secs, Family, Outcome, Prometheus};
use skymeter_testkit::rng::SplitMix64;
use std::collections::BTreeMap;

/// 2026-01-01T00:00:00Z, in ms.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// One series of the data set: skymeter identity, and the Prometheus labels the test
/// expects for it.
struct TestSeries {
    metric: &'static str,
    unit: Unit,
    stat: Stat,
    resource: ResourceRef,
    point_labels: Vec<(&'static str, String)>,
    prom: BTreeMap<String, String>,
    samples: Vec<(i64, f64)>,
}

struct DataSet {
    resources: Vec<Resource>,
    series: Vec<TestSeries>,
}

/// 12 resources (3 providers × 2 regions × 2), 10 of them with resource records (kind,
/// name, tags env and sometimes team); per resource avg CPU (jittered ms timestamps on
/// AWS, full-precision floats, gaps), max CPU on some, memory (2 decimals), a byte
/// counter with resets, and disk IOPS per device (a point label) on some. 3 hours at 60 s.
fn dataset() -> DataSet {
    let mut rng = SplitMix64::new(6);
    let places = [
        ("aws", "111111111111", "us-east-1"),
        ("aws", "111111111111", "eu-west-1"),
        ("gcp", "proj-a", "europe-west1"),
        ("gcp", "proj-a", "us-central1"),
        ("azure", "sub-1", "westeurope"),
        ("azure", "sub-1", "eastus"),
    ];
    let mut resources = Vec::new();
    let mut refs = Vec::new();
    for (provider, account, region) in places {
        for j in 0..2 {
            let id = format!("r{:02}-{:05x}", refs.len(), rng.next_u64() as u32 >> 12);
            let r = ResourceRef {
                provider: provider.into(),
                account: account.into(),
                region: region.into(),
                id: id.clone().into(),
            };
            refs.push(r.clone());
            let k = refs.len() - 1;
            if k == 4 || k == 9 {
                continue; // no resource record
            }
            let mut tags: skymeter_model::Labels = [(
                "env".to_string(),
                if k % 3 == 0 { "dev" } else { "prod" }.to_string(),
            )]
            .into_iter()
            .collect();
            if j == 1 {
                tags.insert("team".into(), format!("t{}", k % 4));
            }
            resources.push(Resource {
                provider: provider.into(),
                account: account.into(),
                region: region.into(),
                kind: if k % 5 == 0 {
                    "database.instance"
                } else {
                    "compute.instance"
                }
                .into(),
                native_type: String::new(),
                id,
                name: format!("{}-{k}", if k % 2 == 0 { "web" } else { "db" }),
                tags,
                attributes: Default::default(),
                observed_at: DateTime::from_timestamp_millis(T0).unwrap(),
            });
        }
    }
    let steps = 180;
    let mut series = Vec::new();
    for (k, r) in refs.iter().enumerate() {
        let res = resources.iter().find(|x| x.id == r.id.as_str());
        let labels = |name: &str, stat: Stat, extra: &[(&'static str, String)]| {
            let mut m: BTreeMap<String, String> = BTreeMap::new();
            m.insert("__name__".into(), name.into());
            m.insert("provider".into(), r.provider.to_string());
            m.insert("account".into(), r.account.to_string());
            m.insert("region".into(), r.region.to_string());
            m.insert("resource_id".into(), r.id.to_string());
            m.insert("stat".into(), stat.as_str().into());
            if let Some(res) = res {
                m.insert("kind".into(), res.kind.clone());
                m.insert("resource_name".into(), res.name.clone());
                for (t, v) in &res.tags {
                    m.insert(format!("tag_{t}"), v.clone());
                }
            }
            for (n, v) in extra {
                m.insert(n.to_string(), v.clone());
            }
            m
        };
        let jitter = |rng: &mut SplitMix64| {
            if r.provider == "aws" {
                (rng.f64() * 1500.0) as i64
            } else {
                0
            }
        };
        let mut cpu = Vec::new();
        let mut cpu_max = Vec::new();
        let mut level = 10.0 + 70.0 * rng.f64();
        for i in 0..=steps {
            let t = T0 + i * MIN + jitter(&mut rng);
            level = (level + (rng.f64() - 0.5) * 12.0).clamp(0.5, 99.5);
            let gap = match k {
                3 => i < 60,                 // starts late
                7 => i > 120,                // ends early
                5 => (90..110).contains(&i), // a 20 minute gap
                _ => false,
            };
            if !gap {
                cpu.push((t, level));
                cpu_max.push((t, level + 5.0 * rng.f64()));
            }
        }
        series.push(TestSeries {
            metric: "cpu.utilization",
            unit: Unit::Percent,
            stat: Stat::Avg,
            resource: r.clone(),
            point_labels: vec![],
            prom: labels("cpu_utilization_percent", Stat::Avg, &[]),
            samples: cpu,
        });
        if k % 2 == 0 {
            series.push(TestSeries {
                metric: "cpu.utilization",
                unit: Unit::Percent,
                stat: Stat::Max,
                resource: r.clone(),
                point_labels: vec![],
                prom: labels("cpu_utilization_percent", Stat::Max, &[]),
                samples: cpu_max,
            });
        }
        let mut mem = Vec::new();
        let mut m = 20.0 + 60.0 * rng.f64();
        for i in 0..=steps {
            m = (m + (rng.f64() - 0.45) * 2.0).clamp(1.0, 99.0);
            mem.push((T0 + i * MIN, (m * 100.0f64).round() / 100.0));
        }
        series.push(TestSeries {
            metric: "memory.usage",
            unit: Unit::Percent,
            stat: Stat::Avg,
            resource: r.clone(),
            point_labels: vec![],
            prom: labels("memory_usage_percent", Stat::Avg, &[]),
            samples: mem,
        });
        let mut total = (rng.f64() * 1e6).floor();
        let mut net = Vec::new();
        for i in 0..=steps {
            if (k == 1 && i == 70) || (k == 6 && (i == 40 || i == 150)) {
                total = (rng.f64() * 5000.0).floor();
            } else {
                total += (1000.0 + rng.f64() * 99_000.0).floor();
            }
            net.push((T0 + i * MIN + jitter(&mut rng), total));
        }
        series.push(TestSeries {
            metric: "network.received",
            unit: Unit::Bytes,
            stat: Stat::Sum,
            resource: r.clone(),
            point_labels: vec![],
            prom: labels("network_received_bytes", Stat::Sum, &[]),
            samples: net,
        });
        if k % 3 == 1 {
            for dev in ["sda", "sdb"] {
                let pts = (0..=steps)
                    .map(|i| (T0 + i * MIN, (rng.f64() * 500.0).round()))
                    .collect();
                series.push(TestSeries {
                    metric: "disk.read_iops",
                    unit: Unit::CountPerSecond,
                    stat: Stat::Avg,
                    resource: r.clone(),
                    point_labels: vec![("device", dev.to_string())],
                    prom: labels(
                        "disk_read_iops_per_second",
                        Stat::Avg,
                        &[("device", dev.to_string())],
                    ),
                    samples: pts,
                });
            }
        }
    }
    DataSet { resources, series }
}

/// The data set as OpenMetrics families for Prometheus: one gauge family per `__name__`.
fn families(ds: &DataSet) -> Vec<Family> {
    let mut by_name: BTreeMap<&str, Vec<&TestSeries>> = BTreeMap::new();
    for s in &ds.series {
        by_name
            .entry(s.prom["__name__"].as_str())
            .or_default()
            .push(s);
    }
    by_name
        .into_iter()
        .map(|(name, list)| Family {
            name: name.to_string(),
            kind: "gauge",
            series: list
                .into_iter()
                .map(|s| {
                    let labels = s
                        .prom
                        .iter()
                        .filter(|(k, _)| *k != "__name__")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    (labels, s.samples.clone())
                })
                .collect(),
        })
        .collect()
}

/// The points of the samples in `[from, to)` (ms) as batches of skymeter points.
fn batches(ds: &DataSet, from: i64, to: i64) -> Vec<Batch> {
    let mut points = Vec::new();
    for s in &ds.series {
        for (t, v) in s.samples.iter().filter(|(t, _)| *t >= from && *t < to) {
            let mut labels = skymeter_model::Labels::new();
            for (n, v) in &s.point_labels {
                labels.insert(n.to_string(), v.clone());
            }
            points.push(Point {
                metric: s.metric.into(),
                unit: s.unit,
                stat: s.stat,
                period_s: 60,
                ts: DateTime::from_timestamp_millis(*t).unwrap(),
                value: *v,
                resource: s.resource.clone().into(),
                labels: labels.into(),
            });
        }
    }
    points
        .chunks(5000)
        .map(|c| {
            let mut b = Batch::new("diff", "diff", DateTime::from_timestamp_millis(T0).unwrap());
            b.points = c.to_vec();
            b
        })
        .collect()
}

/// One query API call: POSTed as a form, with the token when there is one.
async fn ask(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    params: &[(&str, String)],
) -> Outcome {
    let mut req = client.post(url).form(params);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let body: Json = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: bad JSON: {e}"));
    Outcome::from_answer(Some(status), &body)
}

const AT: &str = "1767232800"; // T0 + 2h

fn queries() -> Vec<String> {
    [
        // selectors and all four matcher kinds, over labels from keys, resources and points
        "cpu_utilization_percent",
        r#"cpu_utilization_percent{provider="aws", stat="avg"}"#,
        r#"cpu_utilization_percent{provider!="aws"}"#,
        r#"cpu_utilization_percent{region=~"eu-.*|us-east-1"}"#,
        r#"cpu_utilization_percent{region!~"eu.*", stat!="max"}"#,
        r#"memory_usage_percent{tag_env="prod"}"#,
        r#"memory_usage_percent{tag_team=""}"#,
        r#"memory_usage_percent{tag_team!=""}"#,
        r#"memory_usage_percent{kind=~"database.*"}"#,
        r#"memory_usage_percent{resource_name=~"web-.*", tag_env!="dev"}"#,
        r#"{__name__=~"memory_usage_percent|disk_read_iops_per_second", provider="gcp"}"#,
        r#"disk_read_iops_per_second{device="sdb"}"#,
        r#"{resource_id=~"r0[0-3]-.*", stat="avg"}"#,
        // aggregations by region / provider, and over tags
        "avg by (region) (cpu_utilization_percent)",
        r#"sum by (provider) (cpu_utilization_percent{stat="avg"})"#,
        "max by (provider, region) (memory_usage_percent)",
        "count by (tag_env) (memory_usage_percent)",
        "min without (resource_id, resource_name) (memory_usage_percent)",
        "stddev by (provider) (cpu_utilization_percent)",
        "quantile by (region) (0.9, memory_usage_percent)",
        "group by (kind) (memory_usage_percent)",
        r#"count_values("dev", disk_read_iops_per_second) > 1"#,
        "topk(3, cpu_utilization_percent)",
        "bottomk by (provider) (1, memory_usage_percent)",
        "topk(5, avg_over_time(cpu_utilization_percent[1h]))",
        // rates and range functions
        "rate(network_received_bytes[5m])",
        "sum by (region) (rate(network_received_bytes[10m]))",
        "irate(network_received_bytes[5m])",
        "increase(network_received_bytes[15m])",
        "resets(network_received_bytes[1h])",
        "delta(memory_usage_percent[10m])",
        "idelta(cpu_utilization_percent[5m])",
        "deriv(memory_usage_percent[15m])",
        "avg_over_time(cpu_utilization_percent[10m])",
        "max_over_time(cpu_utilization_percent[1h])",
        "min_over_time(memory_usage_percent[30m])",
        "sum_over_time(disk_read_iops_per_second[5m])",
        "count_over_time(cpu_utilization_percent[10m])",
        "quantile_over_time(0.5, cpu_utilization_percent[30m])",
        "last_over_time(cpu_utilization_percent[10m])",
        "stddev_over_time(memory_usage_percent[20m])",
        // offset, @, subqueries
        "cpu_utilization_percent offset 10m",
        "rate(network_received_bytes[10m] offset 30m)",
        "memory_usage_percent @ AT",
        "avg_over_time(cpu_utilization_percent[15m] @ AT)",
        "max_over_time(rate(network_received_bytes[5m])[30m:1m])",
        "avg_over_time(sum by (provider) (cpu_utilization_percent)[20m:5m])",
        // matching and arithmetic
        r#"cpu_utilization_percent{stat="avg"} / on(resource_id) memory_usage_percent"#,
        r#"memory_usage_percent * on(provider) group_left() sum by (provider) (cpu_utilization_percent{stat="avg"})"#,
        "memory_usage_percent > 50",
        "memory_usage_percent and on(resource_id) disk_read_iops_per_second",
        "memory_usage_percent unless on(resource_id) disk_read_iops_per_second",
        r#"label_replace(memory_usage_percent, "zone", "$1", "region", "(.*)-\\d+")"#,
        "absent(memory_usage_percent{region=\"mars\"})",
        // fail in both
        "cpu_utilization_percent + on(provider) memory_usage_percent",
        "sum(",
    ]
    .iter()
    .map(|s| s.replace("AT", AT))
    .collect()
}

#[tokio::test]
async fn same_answers_as_prometheus_through_http() {
    let Some(tools) = prometheus::tools("same_answers_as_prometheus_through_http") else {
        return;
    };
    let ds = dataset();
    let sky = Sky::start(Auth::Tokens).await;
    let mut inventory = Batch::new(
        "diff",
        "inventory",
        DateTime::from_timestamp_millis(T0).unwrap(),
    );
    inventory.resources = ds.resources.clone();
    sky.ingest(&inventory).await;
    // The first 2 hours sealed into blocks, the last hour in the head.
    for b in batches(&ds, i64::MIN, T0 + 2 * HOUR) {
        sky.ingest(&b).await;
    }
    sky.store.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    for b in batches(&ds, T0 + 2 * HOUR, i64::MAX) {
        sky.ingest(&b).await;
    }
    let prom = Prometheus::start(&tools, &families(&ds), "prom-http-diff");
    let client = reqwest::Client::new();
    let instants = [
        T0 + 30 * MIN,
        T0 + 2 * HOUR, // the seal boundary
        T0 + 2 * HOUR + 4 * MIN + 30_500,
        T0 + 3 * HOUR + 3 * MIN,
    ];
    let ranges = [
        (T0, T0 + 3 * HOUR + 10 * MIN, 5 * MIN),
        (T0 + 100 * MIN, T0 + 140 * MIN, 37_000),
    ];
    let mut failures = Vec::new();
    let mut checks = 0;
    let mut with_data = 0;
    for q in queries() {
        let ordered = q.starts_with("topk") || q.starts_with("bottomk");
        let mut asks: Vec<(&str, Vec<(&str, String)>)> = instants
            .iter()
            .map(|t| ("query", vec![("query", q.clone()), ("time", secs(*t))]))
            .collect();
        for (s, e, step) in ranges {
            asks.push((
                "query_range",
                vec![
                    ("query", q.clone()),
                    ("start", secs(s)),
                    ("end", secs(e)),
                    ("step", secs(step)),
                ],
            ));
        }
        for (api, params) in asks {
            let ours = ask(
                &client,
                &format!("{}/api/v1/{api}", sky.url),
                Some(&sky.token),
                &params,
            )
            .await;
            let theirs = ask(
                &client,
                &format!("{}/api/v1/{api}", prom.base),
                None,
                &params,
            )
            .await;
            checks += 1;
            if theirs.has_data() {
                with_data += 1;
            }
            // topk's order is defined in instant queries only.
            if let Err(e) = compare(ordered && api == "query", &ours, &theirs) {
                failures.push(format!("{api} {params:?}: {e}"));
            }
        }
    }
    // Series, label names and values: the same sets.
    for (path, params) in [
        (
            "series",
            vec![("match[]", r#"{__name__=~".+"}"#.to_string())],
        ),
        (
            "series",
            vec![
                ("match[]", r#"memory_usage_percent{tag_env="dev"}"#.into()),
                (
                    "match[]",
                    r#"disk_read_iops_per_second{device="sda"}"#.into(),
                ),
            ],
        ),
        ("labels", vec![]),
        ("labels", vec![("match[]", r#"{provider="azure"}"#.into())]),
        ("label/resource_name/values", vec![]),
        ("label/tag_team/values", vec![]),
        (
            "label/__name__/values",
            vec![("match[]", r#"{resource_id=~"r0[1-2].*"}"#.into())],
        ),
    ] {
        let get = |base: String, token: Option<String>| {
            let client = client.clone();
            let params = params.clone();
            async move {
                let mut req = client.get(format!("{base}/api/v1/{path}")).query(&params);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let v: Json = req.send().await.unwrap().json().await.unwrap();
                assert_eq!(v["status"], "success", "{path}: {v}");
                let mut items: Vec<String> = v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_string())
                    .collect();
                items.sort();
                items
            }
        };
        let ours = get(sky.url.clone(), Some(sky.token.clone())).await;
        let theirs = get(prom.base.clone(), None).await;
        checks += 1;
        assert!(!theirs.is_empty(), "{path} {params:?}: no data to compare");
        if ours != theirs {
            failures.push(format!(
                "{path} {params:?}:\n ours {ours:?}\n prometheus {theirs:?}"
            ));
        }
    }
    println!("{checks} comparisons with Prometheus through HTTP, {with_data} with data");
    assert!(
        with_data > checks / 2,
        "most comparisons must have data: {with_data} of {checks}"
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
