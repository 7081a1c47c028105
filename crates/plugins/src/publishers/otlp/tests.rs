use super::*;
use crate::common::testing::{
    batch, buffered_files, buffered_publisher, build_error, host_record, point, sample_entries,
    with_raw,
};
use serde_json::Value;
use skymeter_model::{ChargeCategory, Cost};
use skymeter_testkit::tool::require_tool;
use std::path::Path;

fn record() -> Resource {
    host_record("h1", "pay")
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => panic!("not a string: {other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn decoded(b: &Batch, compression: Compression) -> Vec<ExportMetricsServiceRequest> {
    Otlp { compression }
        .encode(b)
        .unwrap()
        .iter()
        .map(|body| {
            let bytes = match compression {
                Compression::None => body.clone(),
                Compression::Gzip => {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(body.as_slice()),
                        &mut out,
                    )
                    .unwrap();
                    out
                }
            };
            ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap()
        })
        .collect()
}

fn sample_batch() -> Batch {
    let mut sum = point(
        "disk.read_ops",
        120.0,
        "2026-11-22T10:05:00Z",
        &[("device", "sda")],
    );
    sum.stat = Stat::Sum;
    sum.period_s = 300;
    sum.unit = Unit::Count;
    let mut b = batch(vec![
        point(
            "cpu.utilization",
            12.5,
            "2026-11-22T10:00:00Z",
            &[("cpu", "0")],
        ),
        point(
            "cpu.utilization",
            13.5,
            "2026-11-22T10:01:00Z",
            &[("cpu", "0")],
        ),
        sum,
        point("memory.usage", f64::INFINITY, "2026-11-22T10:00:00Z", &[]),
    ]);
    b.resources.push(record());
    b
}

#[test]
fn a_resource_metrics_per_resource_with_semantic_convention_attributes() {
    for compression in [Compression::Gzip, Compression::None] {
        let reqs = decoded(&sample_batch(), compression);
        assert_eq!(reqs.len(), 1);
        let rm = &reqs[0].resource_metrics;
        assert_eq!(rm.len(), 1);
        let a = attrs(&rm[0].resource.as_ref().unwrap().attributes);
        let want: BTreeMap<String, String> = [
            ("host.id", "h1"),
            ("host.name", "web-1"),
            ("skymeter.provider", "host"),
            ("skymeter.account", "acct"),
            ("skymeter.region", "eu-west-1"),
            ("skymeter.resource_id", "h1"),
            ("skymeter.kind", "host"),
            ("skymeter.native_type", "linux"),
            ("skymeter.name", "web-1"),
            ("skymeter.tag.team", "pay"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(a, want);
        let sm = &rm[0].scope_metrics[0];
        assert_eq!(sm.scope.as_ref().unwrap().name, "skymeter");
        let names: Vec<(&str, &str)> = sm
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.unit.as_str()))
            .collect();
        assert_eq!(
            names,
            [("cpu.utilization", "%"), ("disk.read_ops", "{count}")],
            "the infinite point is not sent"
        );
        let Some(metric::Data::Gauge(g)) = &sm.metrics[0].data else {
            panic!("cpu.utilization is a gauge")
        };
        assert_eq!(g.data_points.len(), 2);
        let dp = &g.data_points[0];
        assert_eq!(dp.value, Some(number_data_point::Value::AsDouble(12.5)));
        assert_eq!(
            attrs(&dp.attributes),
            [
                ("cpu".to_string(), "0".to_string()),
                ("stat".into(), "last".into())
            ]
            .into()
        );
        assert_eq!(
            dp.time_unix_nano,
            nanos("2026-11-22T10:00:00Z".parse().unwrap())
        );
        let Some(metric::Data::Sum(s)) = &sm.metrics[1].data else {
            panic!("a sum over a period is a Sum")
        };
        assert_eq!(
            s.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert_eq!(
            s.data_points[0].start_time_unix_nano,
            nanos("2026-11-22T10:00:00Z".parse().unwrap())
        );
    }
}

#[test]
fn cloud_resources_and_cost_lines() {
    let mut b = batch(Vec::new());
    let start: chrono::DateTime<chrono::Utc> = "2026-11-21T00:00:00Z".parse().unwrap();
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
        region_id: Some("us-east-1".into()),
        x_source: skymeter_model::CostSource::Billed,
        ..Default::default()
    });
    let reqs = decoded(&b, Compression::Gzip);
    let rm = &reqs[0].resource_metrics[0];
    let a = attrs(&rm.resource.as_ref().unwrap().attributes);
    assert_eq!(a["cloud.provider"], "aws");
    assert_eq!(a["cloud.account.id"], "123");
    assert_eq!(a["cloud.region"], "us-east-1");
    assert!(
        !a.contains_key("cloud.resource_id"),
        "no resource id: {a:?}"
    );
    let m = &rm.scope_metrics[0].metrics;
    assert_eq!(m[0].name, "cost.billed");
    assert_eq!(m[0].unit, "{USD}");
    let Some(metric::Data::Sum(s)) = &m[0].data else {
        panic!("a cost is a sum over its charge period")
    };
    assert_eq!(
        s.data_points[0].value,
        Some(number_data_point::Value::AsDouble(12.5))
    );
    assert_eq!(s.data_points[0].start_time_unix_nano, nanos(start));
    assert_eq!(
        s.data_points[0].time_unix_nano,
        nanos(start + chrono::Duration::days(1))
    );
}

#[test]
fn units_are_ucum() {
    assert_eq!(ucum(Unit::BytesPerSecond), "By/s");
    assert_eq!(ucum(Unit::Celsius), "Cel");
    for u in Unit::ALL {
        assert!(!ucum(u).is_empty());
    }
}

#[test]
fn config_mistakes_are_named() {
    let err = |text: &str| build_error(text, build);
    assert!(err("url = \"udp://x\"").contains("url"));
    assert!(err("url = \"http://x\"\ncompression = \"zstd\"").contains("compression"));
    assert!(err("url = \"http://x\"\nheaders = { content-type = \"a\" }").contains("headers"));
    assert!(err(
        "url = \"http://x\"\ncompression = \"none\"\nheaders = { Content-Encoding = \"br\" }"
    )
    .contains("compression"));
    assert!(err("url = \"http://x\"\nbasic_auth = {}").contains("basic_auth"));
}

#[test]
fn the_sample_config_builds() {
    let sample = include_str!("sample.toml");
    for entry in sample_entries(sample, "publish", NAME) {
        with_raw(&entry, |raw| build(raw, &BuildContext::one_shot("t")))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}

fn publisher(url: &str, buffer: &Path, extra: &str) -> Box<dyn Publisher> {
    buffered_publisher(build, url, buffer, extra)
}

fn files_in(dir: &Path) -> usize {
    buffered_files(dir).len()
}

/// The values of the data points the receiver decoded, in arrival order.
fn values(received: &[String]) -> Vec<f64> {
    received
        .iter()
        .flat_map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let mut out = Vec::new();
            for rm in v["request"]["resource_metrics"].as_array().unwrap() {
                for sm in rm["scope_metrics"].as_array().unwrap() {
                    for m in sm["metrics"].as_array().unwrap() {
                        let data = m.get("gauge").or_else(|| m.get("sum")).unwrap();
                        for dp in data["data_points"].as_array().unwrap() {
                            out.push(dp["as_double"].as_f64().unwrap());
                        }
                    }
                }
            }
            out
        })
        .collect()
}

#[tokio::test]
async fn the_official_decoder_reads_what_is_sent_and_an_outage_loses_nothing() {
    let test = "the_official_decoder_reads_what_is_sent_and_an_outage_loses_nothing";
    let Some(python) = require_tool(test, skymeter_testkit::otlp::find()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The first request is answered 503 (retryable): the batch goes again.
    let mut rx = skymeter_testkit::otlp::Receiver::start(python, &dir.path().join("got.jsonl"), 1);
    let buf = dir.path().join("buf");
    let mut p = publisher(&rx.url(), &buf, "bearer_token = \"tok\"");
    let b = sample_batch();
    p.publish(&b).await.unwrap();
    p.flush().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let first: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(first["headers"]["content-type"], "application/x-protobuf");
    assert_eq!(first["headers"]["content-encoding"], "gzip");
    assert_eq!(first["headers"]["authorization"], "Bearer tok");
    let rm = &first["request"]["resource_metrics"][0];
    let attributes: BTreeMap<String, String> = rm["resource"]["attributes"]
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
    assert_eq!(attributes["host.name"], "web-1");
    assert_eq!(attributes["skymeter.tag.team"], "pay");
    let sm = &rm["scope_metrics"][0];
    assert_eq!(sm["scope"]["name"], "skymeter");
    assert_eq!(sm["metrics"][0]["name"], "cpu.utilization");
    assert_eq!(sm["metrics"][0]["unit"], "%");
    assert_eq!(
        sm["metrics"][1]["sum"]["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_DELTA"
    );
    assert_eq!(values(&got), [12.5, 13.5, 120.0]);

    // The receiver goes away: two batches wait on disk, then arrive, once each, in order.
    rx.down();
    let one = |v: f64| batch(vec![point("q.depth", v, "2026-11-22T11:00:00Z", &[])]);
    p.publish(&one(1.0)).await.unwrap();
    p.publish(&one(2.0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(files_in(&buf), 2);
    rx.up();
    p.flush().await.unwrap();
    assert_eq!(files_in(&buf), 0);
    assert_eq!(values(&rx.received()), [12.5, 13.5, 120.0, 1.0, 2.0]);
}
