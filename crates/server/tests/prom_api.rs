//! The Prometheus-compatible API end to end: batches posted to the real server over a real
//! embedded store, then read back through `/api/v1/query`, `query_range`, `series`,
//! `labels`, `label/{name}/values`, `metadata`, ... with exact values, Prometheus' envelope,
//! error types and HTTP codes.

mod promsupport;

use chrono::{DateTime, Utc};
use promsupport::Sky;
use serde_json::{json, Value};
use skymeter_model::{Batch, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_server::Auth;
use std::collections::BTreeMap;

/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).unwrap()
}

fn rref(provider: &str, account: &str, region: &str, id: &str) -> ResourceRef {
    ResourceRef {
        provider: provider.into(),
        account: account.into(),
        region: region.into(),
        id: id.into(),
    }
}

fn resource(r: &ResourceRef, name: &str, env: &str, observed: i64) -> Resource {
    Resource {
        provider: r.provider.to_string(),
        account: r.account.to_string(),
        region: r.region.to_string(),
        kind: "compute.instance".into(),
        native_type: "AWS::EC2::Instance".into(),
        id: r.id.to_string(),
        name: name.into(),
        tags: [("env".to_string(), env.to_string())].into_iter().collect(),
        attributes: Default::default(),
        observed_at: at(observed),
    }
}

fn point(metric: &str, unit: Unit, stat: Stat, r: &ResourceRef, secs: i64, v: f64) -> Point {
    Point {
        metric: metric.into(),
        unit,
        stat,
        period_s: 60,
        ts: at(secs),
        value: v,
        resource: r.clone().into(),
        labels: Default::default(),
    }
}

/// i-a, i-b (aws us-east-1), i-c (aws eu-west-1) with resource records, vm-d (gcp, none);
/// avg CPU every minute for 10 minutes: base + k with base 10, 20, 30, 40; max CPU of i-a
/// (avg + 5); disk read IOPS of i-a.
async fn seeded() -> Sky {
    let sky = Sky::start(Auth::Tokens).await;
    let rs = [
        rref("aws", "111", "us-east-1", "i-a"),
        rref("aws", "111", "us-east-1", "i-b"),
        rref("aws", "111", "eu-west-1", "i-c"),
        rref("gcp", "proj", "europe-west1", "vm-d"),
    ];
    let mut b = Batch::new("agent", "seed", at(0));
    b.resources = vec![
        resource(&rs[0], "web-a", "prod", 0),
        resource(&rs[1], "web-b", "dev", 0),
        resource(&rs[2], "db-c", "prod", 0),
    ];
    for (i, r) in rs.iter().enumerate() {
        for k in 1..=10 {
            let v = (10 * (i + 1) + k) as f64;
            b.points.push(point(
                "cpu.utilization",
                Unit::Percent,
                Stat::Avg,
                r,
                60 * k as i64,
                v,
            ));
            if i == 0 {
                b.points.push(point(
                    "cpu.utilization",
                    Unit::Percent,
                    Stat::Max,
                    r,
                    60 * k as i64,
                    v + 5.0,
                ));
                b.points.push(point(
                    "disk.read_iops",
                    Unit::CountPerSecond,
                    Stat::Avg,
                    r,
                    60 * k as i64,
                    100.0 * k as f64,
                ));
            }
        }
    }
    sky.ingest(&b).await;
    sky
}

fn ok_data(status: u16, body: &Value) -> &Value {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    &body["data"]
}

/// A vector result as `label value → sample value` for one grouping label.
fn vector_by(data: &Value, label: &str) -> BTreeMap<String, f64> {
    assert_eq!(data["resultType"], "vector", "{data}");
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"][label].as_str().unwrap_or("").to_string(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn t(secs: i64) -> String {
    (T0 + secs).to_string()
}

#[tokio::test]
async fn instant_and_range_queries_give_exact_values() {
    let sky = seeded().await;
    let (s, body) = sky
        .get_params(
            "/api/v1/query",
            &[
                (
                    "query",
                    r#"avg by (region) (cpu_utilization_percent{stat="avg"})"#,
                ),
                ("time", &t(600)),
            ],
        )
        .await;
    let data = ok_data(s, &body);
    assert_eq!(
        vector_by(data, "region"),
        [
            ("eu-west-1".to_string(), 40.0),
            ("europe-west1".to_string(), 50.0),
            ("us-east-1".to_string(), 25.0)
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(data["result"][0]["value"][0], json!(T0 + 600));

    // RFC 3339 time; POST with a form body.
    let (s, body) = sky
        .post_form(
            "/api/v1/query",
            &[
                (
                    "query",
                    r#"max_over_time(cpu_utilization_percent{resource_id="i-a",stat="avg"}[3m])"#,
                ),
                ("time", "2026-01-01T00:10:00Z"),
            ],
        )
        .await;
    assert_eq!(
        vector_by(ok_data(s, &body), "resource_id"),
        [("i-a".to_string(), 20.0)].into_iter().collect()
    );

    // offset, != and !~ and =~ matchers, tags and names as labels.
    for (q, want) in [
        (
            r#"cpu_utilization_percent{resource_id="i-b"} offset 2m"#,
            28.0,
        ),
        (
            r#"count(cpu_utilization_percent{region!~"us-.*", stat="avg"})"#,
            2.0,
        ),
        (r#"count(cpu_utilization_percent{stat!="avg"})"#, 1.0),
        (
            r#"sum(cpu_utilization_percent{tag_env="prod", stat="avg"})"#,
            20.0 + 40.0,
        ),
        (
            r#"sum(cpu_utilization_percent{resource_name=~"web-.*", stat="avg"})"#,
            20.0 + 30.0,
        ),
        (r#"disk_read_iops_per_second"#, 1000.0),
        (
            r#"scalar(sum(cpu_utilization_percent{provider="gcp"}))"#,
            50.0,
        ),
    ] {
        let (s, body) = sky
            .get_params("/api/v1/query", &[("query", q), ("time", &t(600))])
            .await;
        let data = ok_data(s, &body);
        let v: f64 = match data["resultType"].as_str().unwrap() {
            "scalar" => data["result"][1].as_str().unwrap().parse().unwrap(),
            _ => {
                assert_eq!(data["result"].as_array().unwrap().len(), 1, "{q}: {data}");
                data["result"][0]["value"][1]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            }
        };
        assert_eq!(v, want, "{q}");
    }

    // Range, POST form body, step as a duration.
    let (s, body) = sky
        .post_form(
            "/api/v1/query_range",
            &[
                (
                    "query",
                    r#"sum by (provider) (cpu_utilization_percent{stat="avg"})"#,
                ),
                ("start", &t(300)),
                ("end", &t(600)),
                ("step", "1m"),
            ],
        )
        .await;
    let data = ok_data(s, &body);
    assert_eq!(data["resultType"], "matrix");
    let series = data["result"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(
        series[0]["metric"],
        json!({"provider": "aws"}),
        "sorted by labels"
    );
    let values = |i: usize| -> Vec<(i64, f64)> {
        series[i]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_i64().unwrap() - T0,
                    p[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        values(0),
        (5..=10)
            .map(|k| (60 * k, 60.0 + 3.0 * k as f64))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        values(1),
        (5..=10)
            .map(|k| (60 * k, 40.0 + k as f64))
            .collect::<Vec<_>>()
    );

    // The lookback: 5 minutes after the last sample the series is still there, not after.
    let (s, body) = sky
        .get_params(
            "/api/v1/query_range",
            &[
                ("query", r#"count(cpu_utilization_percent)"#),
                ("start", &t(600)),
                ("end", &t(960)),
                ("step", "120"),
            ],
        )
        .await;
    let data = ok_data(s, &body);
    let pts: Vec<i64> = data["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_i64().unwrap() - T0)
        .collect();
    assert_eq!(pts, [600, 720, 840]);
}

#[tokio::test]
async fn series_labels_values_and_metadata() {
    let sky = seeded().await;
    let (s, body) = sky
        .get_params(
            "/api/v1/series",
            &[
                ("match[]", r#"cpu_utilization_percent{region="us-east-1"}"#),
                ("start", &t(0)),
                ("end", &t(3600)),
            ],
        )
        .await;
    let data = ok_data(s, &body).as_array().unwrap().clone();
    assert_eq!(data.len(), 3);
    assert_eq!(
        data[0],
        json!({"__name__": "cpu_utilization_percent", "account": "111", "kind": "compute.instance",
               "provider": "aws", "region": "us-east-1", "resource_id": "i-a", "resource_name": "web-a",
               "stat": "avg", "tag_env": "prod"})
    );
    // POST, two selectors: their union; a time range without data: nothing.
    let (s, body) = sky
        .post_form(
            "/api/v1/series",
            &[
                ("match[]", r#"{resource_id="vm-d"}"#),
                ("match[]", "disk_read_iops_per_second"),
            ],
        )
        .await;
    assert_eq!(ok_data(s, &body).as_array().unwrap().len(), 2);
    let (s, body) = sky
        .get_params(
            "/api/v1/series",
            &[
                ("match[]", "cpu_utilization_percent"),
                ("start", &t(7200)),
                ("end", &t(9000)),
            ],
        )
        .await;
    assert_eq!(ok_data(s, &body), &json!([]));
    // Without match[], GET /api/v1/series is skymeter's own paged list.
    let (s, body) = sky.get("/api/v1/series?metric=disk.read_iops").await;
    assert_eq!(s, 200);
    assert_eq!(body["items"][0]["metric"], "disk.read_iops", "{body}");
    let (s, body) = sky.get("/api/v1/series").await;
    assert_eq!((s, body["items"].as_array().unwrap().len()), (200, 6));

    let (s, body) = sky.get("/api/v1/labels").await;
    assert_eq!(
        ok_data(s, &body),
        &json!([
            "__name__",
            "account",
            "kind",
            "provider",
            "region",
            "resource_id",
            "resource_name",
            "stat",
            "tag_env"
        ])
    );
    let (s, body) = sky
        .get_params("/api/v1/labels", &[("match[]", r#"{provider="gcp"}"#)])
        .await;
    assert_eq!(
        ok_data(s, &body),
        &json!([
            "__name__",
            "account",
            "provider",
            "region",
            "resource_id",
            "stat"
        ])
    );
    let (s, body) = sky
        .post_form("/api/v1/labels", &[("match[]", r#"{provider="gcp"}"#)])
        .await;
    assert_eq!(
        ok_data(s, &body),
        &json!([
            "__name__",
            "account",
            "provider",
            "region",
            "resource_id",
            "stat"
        ])
    );
    let (s, body) = sky.get("/api/v1/label/region/values").await;
    assert_eq!(
        ok_data(s, &body),
        &json!(["eu-west-1", "europe-west1", "us-east-1"])
    );
    let (s, body) = sky
        .get_params(
            "/api/v1/label/__name__/values",
            &[("start", &t(0)), ("end", &t(60))],
        )
        .await;
    assert_eq!(
        ok_data(s, &body),
        &json!(["cpu_utilization_percent", "disk_read_iops_per_second"])
    );
    let (s, body) = sky
        .get_params(
            "/api/v1/label/resource_name/values",
            &[("match[]", r#"{tag_env="prod"}"#)],
        )
        .await;
    assert_eq!(ok_data(s, &body), &json!(["db-c", "web-a"]));

    let (s, body) = sky.get("/api/v1/metadata").await;
    let data = ok_data(s, &body);
    assert_eq!(data["cpu_utilization_percent"][0]["type"], "gauge");
    assert_eq!(data["cpu_utilization_percent"][0]["unit"], "percent");
    assert!(
        data["cpu_utilization_percent"][0]["help"]
            .as_str()
            .unwrap()
            .contains("CPU"),
        "{data}"
    );
    assert_eq!(data["disk_read_iops_per_second"][0]["unit"], "per_second");
    let (s, body) = sky.get("/api/v1/metadata?limit=1").await;
    assert_eq!(ok_data(s, &body).as_object().unwrap().len(), 1);
    let (s, body) = sky
        .get("/api/v1/metadata?metric=disk_read_iops_per_second")
        .await;
    assert_eq!(
        ok_data(s, &body)
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["disk_read_iops_per_second"]
    );

    let (s, body) = sky.get("/api/v1/status/buildinfo").await;
    assert_eq!(ok_data(s, &body)["version"], "2.42.0");
    let (s, body) = sky.get("/api/v1/status/config").await;
    assert!(ok_data(s, &body)["yaml"]
        .as_str()
        .unwrap()
        .contains("evaluation_interval"));
    let (s, body) = sky
        .get_params(
            "/api/v1/query_exemplars",
            &[("query", "cpu_utilization_percent")],
        )
        .await;
    assert_eq!(ok_data(s, &body), &json!([]));
    let (s, body) = sky
        .post_form(
            "/api/v1/format_query",
            &[("query", "sum(rate(x[5m]))by(a)")],
        )
        .await;
    assert_eq!(ok_data(s, &body), "sum by (a) (rate(x[5m]))");
}

#[tokio::test]
async fn a_resource_change_relabels_its_series() {
    let sky = seeded().await;
    let q = [
        (
            "query",
            r#"count(cpu_utilization_percent{tag_env="prod", stat="avg"})"#,
        ),
        ("time", "2026-01-01T00:10:00Z"),
    ];
    let (s, body) = sky.get_params("/api/v1/query", &q).await;
    assert_eq!(ok_data(s, &body)["result"][0]["value"][1], "2");
    let mut b = Batch::new("agent", "inventory", at(700));
    b.resources = vec![resource(
        &rref("aws", "111", "us-east-1", "i-b"),
        "web-b",
        "prod",
        700,
    )];
    sky.ingest(&b).await;
    let (s, body) = sky.get_params("/api/v1/query", &q).await;
    assert_eq!(ok_data(s, &body)["result"][0]["value"][1], "3");
}

#[tokio::test]
async fn errors_have_prometheus_types_and_codes() {
    let sky = seeded().await;
    // path, parameters, status, errorType, part of the message
    type Case = (
        &'static str,
        Vec<(&'static str, String)>,
        u16,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("/api/v1/query", vec![("query", "sum(".into())], 400, "bad_data", "unclosed"),
        ("/api/v1/query", vec![], 400, "bad_data", "\"query\""),
        ("/api/v1/query", vec![("query", "1".into()), ("time", "yesterday".into())], 400, "bad_data", "invalid parameter \"time\""),
        ("/api/v1/query_range", vec![("query", "1".into()), ("start", t(0)), ("end", t(60))], 400, "bad_data", "\"step\""),
        ("/api/v1/query_range", vec![("query", "1".into()), ("start", t(60)), ("end", t(0)), ("step", "1".into())], 400, "bad_data", "end timestamp must not be before start time"),
        ("/api/v1/query_range", vec![("query", "1".into()), ("start", t(0)), ("end", t(100_000)), ("step", "1".into())], 400, "bad_data", "11,000"),
        ("/api/v1/query_range", vec![("query", "1".into()), ("start", t(0)), ("end", t(60)), ("step", "5x".into())], 400, "bad_data", "cannot parse \"5x\" to a valid duration"),
        ("/api/v1/query", vec![("query", r#"cpu_utilization_percent{stat="avg"} + on(provider) cpu_utilization_percent{stat="avg"}"#.into()), ("time", t(600))], 422, "execution", "many-to-many"),
        ("/api/v1/series", vec![("start", t(0)), ("match[]", "".into())], 400, "bad_data", ""),
        ("/api/v1/series", vec![("match[]", "rate(x[5m])".into())], 400, "bad_data", "selector"),
        ("/api/v1/label/bad-name/values", vec![], 400, "bad_data", "invalid label name"),
    ];
    for (path, params, code, kind, says) in cases {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, body) = sky.get_params(path, &p).await;
        assert_eq!(s, code, "{path} {params:?}: {body}");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["errorType"], kind, "{path} {params:?}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path} {params:?}: {body}"
        );
    }
    // The read scope is needed, as for the other reads.
    let resp = sky
        .client
        .get(format!("{}/api/v1/query?query=1", sky.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_query_past_its_timeout_is_a_503_timeout() {
    let sky = seeded().await;
    // A subquery of 2.6 M steps, each evaluating its inner expression: far more than 1 ms.
    let (s, body) = sky
        .get_params(
            "/api/v1/query",
            &[
                ("query", "count_over_time((vector(1) * 2)[30d:1s])"),
                ("time", &t(600)),
                ("timeout", "0.001"),
            ],
        )
        .await;
    assert_eq!((s, &body["errorType"]), (503, &json!("timeout")), "{body}");
    assert_eq!(body["status"], "error");
}
