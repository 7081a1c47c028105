use super::testing::{moto, sdk};
use super::*;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use catalog::Shape;
use skymeter_model::Window;
use skymeter_plugin_api::config::Source as TomlSource;
use skymeter_plugin_api::MetricSelection;
use skymeter_plugin_api::{CollectRequest, Collector, Output};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

// ---------------------------------------------------------------- helpers

fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = TomlSource::new("aws.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    f(&raw)
}

fn collector(text: &str) -> Aws {
    with_raw(text, |raw| Aws::from_raw(raw).expect("builds"))
}

fn config_error(text: &str) -> ConfigError {
    with_raw(text, |raw| Aws::from_raw(raw).err().expect("fails"))
}

fn request(start: i64, end: i64, selection: &[&str]) -> CollectRequest {
    CollectRequest {
        window: Window {
            start: ts(start),
            end: ts(end),
        },
        metrics: MetricSelection::new(selection).unwrap(),
        task: "t".into(),
    }
}

/// The EC2 metrics of the catalog, CWAgent's aside.
fn ec2_catalog() -> impl Iterator<Item = &'static CwMetric> {
    catalog::of(Service::Ec2).filter(|m| m.namespace == "AWS/EC2")
}

/// Runs `n` instances (tagged Name = web-<i>, env = <env>) and returns their ids in order.
async fn run_instances(sdk: &SdkConfig, n: usize, env: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let image = ec2
        .describe_images()
        .send()
        .await
        .unwrap()
        .images()
        .first()
        .and_then(|i| i.image_id())
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(500);
        let out = ec2
            .run_instances()
            .image_id(&image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(k as i32)
            .max_count(k as i32)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("env")
                            .value(env)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        ids.extend(
            out.instances()
                .iter()
                .map(|i| i.instance_id().unwrap().to_string()),
        );
        left -= k;
    }
    ids
}

/// Puts `values` for (`metric`, instance) at `at`, `at + 60`, … (one period from `at`).
async fn put(sdk: &SdkConfig, data: Vec<(&str, &str, i64, f64)>) {
    let cw = aws_sdk_cloudwatch::Client::new(sdk);
    let datums: Vec<MetricDatum> = data
        .into_iter()
        .map(|(metric, id, at, v)| {
            MetricDatum::builder()
                .metric_name(metric)
                .dimensions(Dimension::builder().name("InstanceId").value(id).build())
                .timestamp(AwsDateTime::from_secs(at))
                .value(v)
                .build()
        })
        .collect();
    for chunk in datums.chunks(1000) {
        cw.put_metric_data()
            .namespace("AWS/EC2")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
    }
}

/// (metric, stat, instance, source label) → (value, unit, ts).
type Found = BTreeMap<(String, Stat, String, String), (f64, Unit, i64, u32)>;

fn found(out: &Output) -> Found {
    let mut f = Found::new();
    for p in &out.points {
        if p.metric.starts_with("aws.") {
            continue;
        }
        let key = (
            p.metric.to_string(),
            p.stat,
            p.resource.id.to_string(),
            p.labels.get("source").cloned().unwrap_or_default(),
        );
        assert!(
            f.insert(key.clone(), (p.value, p.unit, p.ts.timestamp(), p.period_s))
                .is_none(),
            "two points for {key:?}"
        );
    }
    f
}

fn api_calls(out: &Output, api: &str) -> f64 {
    out.points
        .iter()
        .find(|p| {
            p.metric == "aws.api_calls" && p.labels.get("api").map(String::as_str) == Some(api)
        })
        .map_or(0.0, |p| p.value)
}

// ---------------------------------------------------------------- unit tests

#[test]
fn window_is_aligned_to_the_period() {
    // A 60 s window ending at 12:03:10 with period 300: end floors to 12:00:00, the query
    // covers two periods, and only the period ending at 12:00:00 is emitted.
    let t0 = 1_767_268_800; // 2026-01-01T12:00:00Z, a multiple of 300
    let w = metric_window(t0 + 130, t0 + 190, 0, 300);
    assert_eq!(
        w,
        MetricWindow {
            start: t0 - 600,
            end: t0,
            emit_after: t0 - 300
        }
    );
    // A 15 min window with a 5 min delay: three periods emitted, three asked.
    let w = metric_window(t0 - 900 + 300, t0 + 300, 300, 300);
    assert_eq!(
        w,
        MetricWindow {
            start: t0 - 900,
            end: t0,
            emit_after: t0 - 900
        }
    );
}

#[test]
fn config_defaults_and_errors() {
    let c = collector("");
    assert_eq!(c.config().stats, vec![Stat::Avg, Stat::Max]);
    assert_eq!(c.provider().services.len(), 10);
    assert_eq!(c.provider().ec2_metrics.len(), 14);
    assert_eq!(c.config().period, Duration::from_secs(300));
    assert_eq!(c.config().max_concurrency, 8);
    assert_eq!(c.config().delay, Duration::from_secs(300));
    let c = collector(r#"stats = ["p95", "count", "sum", "min"]"#);
    assert_eq!(
        c.config().stats,
        vec![Stat::P95, Stat::Count, Stat::Sum, Stat::Min]
    );
    let e = config_error(r#"stats = ["avg", "median"]"#);
    assert!(e.message.contains("unknown stat \"median\""), "{e}");
    assert_eq!(e.line, Some(1));
    let e = config_error(r#"period = "90s""#);
    assert!(e.message.contains("multiples of 60s"), "{e}");
    let e = config_error("max_concurrency = 0");
    assert!(e.message.contains("at least 1"), "{e}");
    let e = config_error(r#"endpoint_url = "localhost:5000""#);
    assert!(e.message.contains("http://"), "{e}");
    let e = config_error(r#"services = ["ec2", "dynamodb"]"#);
    assert!(
        e.message
            .contains("unknown service \"dynamodb\"; allowed: ec2, ebs, rds, lambda, s3, eks"),
        "{e}"
    );
    let e = config_error(r#"ec2_metrics = ["CPUUtilisation"]"#);
    assert!(
        e.message.contains("unknown EC2 metric \"CPUUtilisation\""),
        "{e}"
    );
    let e = config_error(r#"regions = ["*", "us-east-1"]"#);
    assert!(e.message.contains("stands alone"), "{e}");
    let e = config_error(r#"regions = ["US East"]"#);
    assert!(e.message.contains("not a region code"), "{e}");
    let e = config_error(r#"cost = ["guessed"]"#);
    assert!(e.message.contains("allowed: estimated, billed"), "{e}");
    let e = config_error("accounts = [{ id = \"1234\" }]");
    assert!(e.message.contains("12 digits"), "{e}");
    let e = config_error("accounts = [{ assume_role = { role_arn = \"skymeter\" } }]");
    assert!(e.message.contains("role ARN"), "{e}");
    let e = config_error("regoins = []");
    assert!(e.message.contains("regoins"), "{e}");
}

#[test]
fn catalog_lists_every_metric_with_its_cloudwatch_sources() {
    let infos = crate::cloud::collector::metrics::<AwsCloud>();
    let names: Vec<&str> = infos.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu.utilization",
            "network.received_throughput",
            "network.sent_throughput",
            "network.received_pps",
            "network.sent_pps",
            "disk.read_iops",
            "disk.write_iops",
            "disk.read_throughput",
            "disk.write_throughput",
            "memory.usage",
            "memory.freeable",
            "database.connections",
            "function.invocations",
            "function.duration",
            "function.errors",
            "function.throttles",
            "storage.size",
            "storage.objects",
            "network.sent_bytes",
            "network.received_bytes",
            "network.connections",
            "lb.requests",
            "network.processed_bytes",
            "lb.new_connections",
            "aws.cloudwatch_metrics_requested",
            "aws.collection_cost",
            "aws.api_calls",
            "aws.planned_calls",
        ]
    );
    let cpu = &infos[0];
    assert_eq!(
        cpu.source,
        "CloudWatch AWS/EC2 CPUUtilization, AWS/RDS CPUUtilization"
    );
    let read = infos.iter().find(|m| m.name == "disk.read_iops").unwrap();
    assert_eq!(
        read.source,
        "CloudWatch AWS/EC2 DiskReadOps, AWS/EC2 EBSReadOps, AWS/RDS ReadIOPS"
    );
    assert_eq!(read.labels, ["source"]);
    // Every normalized name is in the shared catalog with the same unit, or described by the
    // collector (the waste kinds' metrics, not in the shared catalog yet); every one has a
    // description.
    for m in &CATALOG {
        match skymeter_model::catalog::lookup(m.name) {
            Some(c) => assert_eq!(c.unit, m.unit, "{}", m.name),
            None => assert!(catalog::own_description(m.name).is_some(), "{}", m.name),
        }
    }
    assert!(infos.iter().all(|i| !i.description.is_empty()), "{infos:?}");
    let processed = infos
        .iter()
        .find(|m| m.name == "network.processed_bytes")
        .unwrap();
    assert_eq!(
        processed.source,
        "CloudWatch AWS/ApplicationELB ProcessedBytes, AWS/NetworkELB ProcessedBytes"
    );
    assert_eq!(processed.stats, [Stat::Sum]);
    let conns = infos
        .iter()
        .find(|m| m.name == "network.connections")
        .unwrap();
    assert_eq!(conns.stats, [Stat::Max]);
}

// ---------------------------------------------------------------- against moto

/// Every metric and stat of a few instances, exact values, tag filter, API call counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_every_metric_and_stat() {
    let Some(m) = moto("moto_every_metric_and_stat") else {
        return;
    };
    let sdk = sdk(&m.url).await;
    let prod = run_instances(&sdk, 3, "prod").await;
    let _dev = run_instances(&sdk, 2, "dev").await;
    let period = 300;
    let now = Utc::now().timestamp();
    let end = now.div_euclid(period) * period;
    let bucket = end - period;
    // Three samples per instance and metric in the bucket: base, base + 10, base + 20.
    let mut data = Vec::new();
    for (i, id) in prod.iter().enumerate() {
        for (k, m) in ec2_catalog().enumerate() {
            let base = (i * 100 + k) as f64 * 3.0;
            for s in 0..3 {
                data.push((
                    m.cloudwatch,
                    id.as_str(),
                    bucket + 60 * s,
                    base + 10.0 * s as f64,
                ));
            }
        }
    }
    // A sample in the previous period, which the run's window does not emit.
    data.push(("CPUUtilization", prod[0].as_str(), bucket - period, 99.0));
    put(&sdk, data).await;

    let mut c = collector(
        r#"
regions = ["us-east-1"]
delay = "0s"
stats = ["avg", "max", "min", "sum", "count"]
tags = { env = "prod" }
"#,
    );
    c.provider_mut().set_sdk(sdk);
    let mut out = Output::default();
    c.collect(&request(bucket, end, &[]), &mut out)
        .await
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);

    let mut ids: Vec<&str> = out.resources.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let mut want = prod.iter().map(String::as_str).collect::<Vec<_>>();
    want.sort();
    assert_eq!(ids, want);
    let r = &out.resources[0];
    assert_eq!(r.provider, "aws");
    assert_eq!(r.kind, "compute.instance");
    assert_eq!(r.native_type, "AWS::EC2::Instance");
    assert_eq!(r.region, "us-east-1");
    assert_eq!(r.account, "123456789012");
    assert_eq!(r.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(r.attributes["instance_type"], "t3.micro");
    assert_eq!(r.attributes["state"], "running");
    assert!(r.attributes.contains_key("availability_zone"));
    assert!(r.attributes.contains_key("launch_time"));
    assert!(r.attributes.contains_key("private_ip"));

    let f = found(&out);
    // 3 instances × 13 CloudWatch metrics × 5 stats = 195 queries: 1 call.
    assert_eq!(f.len(), 3 * 13 * 5);
    assert_eq!(api_calls(&out, "cloudwatch:GetMetricData"), 1.0);
    assert_eq!(api_calls(&out, "ec2:DescribeInstances"), 1.0);
    assert_eq!(c.calls().get("cloudwatch:GetMetricData"), 1);
    for (i, id) in prod.iter().enumerate() {
        for (k, m) in ec2_catalog().enumerate() {
            let base = (i * 100 + k) as f64 * 3.0;
            let source = m.source.unwrap_or_default().to_string();
            let get = |stat| {
                let v = f[&(m.name.to_string(), stat, id.clone(), source.clone())];
                assert_eq!(v.2, end, "ts is the end of the period");
                assert_eq!(v.3, 300);
                (v.0, v.1)
            };
            let sum = 3.0 * base + 30.0;
            match m.shape {
                Shape::Gauge => {
                    assert_eq!(get(Stat::Avg), (base + 10.0, m.unit), "{id} {}", m.name);
                    assert_eq!(get(Stat::Max), (base + 20.0, m.unit));
                    assert_eq!(get(Stat::Min), (base, m.unit));
                    assert_eq!(get(Stat::Sum), (sum, m.unit));
                }
                Shape::Counter => {
                    assert_eq!(get(Stat::Avg), (sum / 300.0, m.unit), "{id} {}", m.name);
                    assert_eq!(get(Stat::Max), ((base + 20.0) / 300.0, m.unit));
                    assert_eq!(get(Stat::Min), (base / 300.0, m.unit));
                    assert_eq!(get(Stat::Sum), (sum, m.sum_unit));
                }
                other => panic!("EC2 metric of shape {other:?}"),
            }
            assert_eq!(get(Stat::Count), (3.0, Unit::Count));
        }
    }
}

/// The Must-show case: N = 1,000 instances × M = 2 metrics × S = 2 stats = 4,000 queries in
/// exactly ceil(4,000 / 500) = 8 GetMetricData calls, every value correct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_thousand_instances_in_ceil_nms_over_500_calls() {
    let Some(m) = moto("moto_thousand_instances_in_ceil_nms_over_500_calls") else {
        return;
    };
    const N: usize = 1000;
    let sdk = sdk(&m.url).await;
    let ids = run_instances(&sdk, N, "prod").await;
    assert_eq!(ids.len(), N);
    let period = 300;
    let end = Utc::now().timestamp().div_euclid(period) * period;
    let bucket = end - period;
    let mut data = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        data.push(("CPUUtilization", id.as_str(), bucket, i as f64));
        data.push(("CPUUtilization", id.as_str(), bucket + 120, i as f64 + 2.0));
        data.push(("NetworkIn", id.as_str(), bucket, 300.0 * i as f64));
        data.push(("NetworkIn", id.as_str(), bucket + 120, 600.0));
    }
    put(&sdk, data).await;

    let mut c = collector(
        r#"regions = ["us-east-1"]
services = ["ec2"]
delay = "0s""#,
    );
    c.provider_mut().set_sdk(sdk);
    let mut out = Output::default();
    let req = request(
        bucket,
        end,
        &["cpu.utilization", "network.received_throughput", "aws.*"],
    );
    c.collect(&req, &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.resources.len(), N);
    let queries = N * 2 * 2;
    assert_eq!(
        c.calls().get("cloudwatch:GetMetricData") as usize,
        queries.div_ceil(MAX_QUERIES_PER_CALL)
    );
    assert_eq!(api_calls(&out, "cloudwatch:GetMetricData"), 8.0);
    let f = found(&out);
    assert_eq!(f.len(), queries);
    for (i, id) in ids.iter().enumerate() {
        let cpu = |s| f[&("cpu.utilization".to_string(), s, id.clone(), String::new())].0;
        let net = |s| {
            f[&(
                "network.received_throughput".to_string(),
                s,
                id.clone(),
                String::new(),
            )]
                .0
        };
        assert_eq!(cpu(Stat::Avg), i as f64 + 1.0, "{id}");
        assert_eq!(cpu(Stat::Max), i as f64 + 2.0, "{id}");
        assert_eq!(net(Stat::Avg), (300.0 * i as f64 + 600.0) / 300.0, "{id}");
        assert_eq!(
            net(Stat::Max),
            (300.0 * i as f64).max(600.0) / 300.0,
            "{id}"
        );
    }
}

/// An endpoint that refuses connections: the collection fails with an error naming the API
/// and region, not a panic.
#[tokio::test]
async fn unreachable_endpoint_is_reported() {
    let port = skymeter_testkit::net::free_port();
    let mut c = collector(
        r#"regions = ["eu-west-1"]
accounts = [{ id = "111122223333" }]"#,
    );
    let mut cfg = sdk(&format!("http://127.0.0.1:{port}"))
        .await
        .into_builder();
    cfg.set_retry_config(Some(RetryConfig::standard().with_max_attempts(1)));
    c.provider_mut().set_sdk(cfg.build());
    let mut out = Output::default();
    let e = c
        .collect(&request(0, 300, &[]), &mut out)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(
        e.message.starts_with("DescribeInstances failed"),
        "{}",
        e.message
    );
    assert_eq!(
        e.context.get("region").map(String::as_str),
        Some("eu-west-1")
    );
    // Every other service failed the same way, each named in its own error.
    let apis: Vec<&str> = out
        .errors
        .iter()
        .filter_map(|e| e.context.get("api").map(String::as_str))
        .collect();
    assert_eq!(
        apis,
        [
            "ListBuckets",
            "DescribeVolumes",
            "DescribeDBInstances",
            "ListFunctions",
            "ListClusters",
            "DescribeSnapshots",
            "DescribeAddresses",
            "DescribeNatGateways",
            "DescribeLoadBalancers"
        ]
    );

    // Without an account id, the first call is STS GetCallerIdentity.
    let mut c = collector(r#"regions = ["eu-west-1"]"#);
    let mut cfg = sdk(&format!("http://127.0.0.1:{port}"))
        .await
        .into_builder();
    cfg.set_retry_config(Some(RetryConfig::standard().with_max_attempts(1)));
    c.provider_mut().set_sdk(cfg.build());
    let e = c
        .collect(&request(0, 300, &[]), &mut Output::default())
        .await
        .unwrap_err();
    assert!(
        e.message.starts_with("GetCallerIdentity failed"),
        "{}",
        e.message
    );
}

// ---------------------------------------------------------------- errors, on a local stand-in

/// A stand-in EC2 endpoint: answers `errors` (status, code) in turn, then an empty
/// DescribeInstances. Returns its URL and the request counter.
async fn ec2_stand_in(
    errors: Vec<(u16, &'static str)>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        let errors = errors.clone();
        async move {
            let n = h.fetch_add(1, Ordering::SeqCst);
            match errors.get(n) {
                Some((status, code)) => (
                    StatusCode::from_u16(*status).unwrap(),
                    format!(
                        "<Response><Errors><Error><Code>{code}</Code><Message>stand-in says {code}</Message></Error></Errors><RequestID>r{n}</RequestID></Response>"
                    ),
                )
                    .into_response(),
                None => (
                    StatusCode::OK,
                    "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>ok</requestId><reservationSet/></DescribeInstancesResponse>",
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

async fn collect_against(url: &str, attempts: u32) -> (Result<(), PluginError>, Output) {
    let mut c = collector(
        r#"regions = ["us-east-1"]
accounts = [{ id = "111122223333" }]
services = ["ec2"]"#,
    );
    let mut cfg = sdk(url).await.into_builder();
    cfg.set_retry_config(Some(
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(5)),
    ));
    c.provider_mut().set_sdk(cfg.build());
    let mut out = Output::default();
    let r = c.collect(&request(0, 300, &[]), &mut out).await;
    (r, out)
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_succeeds() {
    let (url, hits) = ec2_stand_in(vec![(503, "RequestLimitExceeded"), (400, "Throttling")]).await;
    let (r, out) = collect_against(&url, 3).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(api_calls(&out, "ec2:DescribeInstances"), 1.0);
    assert_eq!(api_calls(&out, "cloudwatch:GetMetricData"), 0.0);
}

#[tokio::test]
async fn denied_permission_names_the_iam_action() {
    let (url, hits) = ec2_stand_in(vec![(403, "UnauthorizedOperation")]).await;
    let (r, _) = collect_against(&url, 3).await;
    let e = r.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a denial is not retried");
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(
        e.message.starts_with(
            "DescribeInstances was denied: grant the IAM action ec2:DescribeInstances"
        ),
        "{}",
        e.message
    );
    assert_eq!(
        e.context.get("api").map(String::as_str),
        Some("DescribeInstances")
    );
}

#[tokio::test]
async fn wrong_credentials_say_what_to_check() {
    let (url, _) = ec2_stand_in(vec![(401, "AuthFailure")]).await;
    let (r, _) = collect_against(&url, 1).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message
            .contains("AWS rejected the credentials (AuthFailure): check AWS_ACCESS_KEY_ID"),
        "{}",
        e.message
    );
}

/// GetMetricData denied: the instances are still collected, and the error names
/// cloudwatch:GetMetricData.
#[tokio::test]
async fn denied_metrics_keep_the_inventory() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(|body: String| async move {
        if body.contains("Action=DescribeInstanceTypes") {
            (
                StatusCode::OK,
                "<DescribeInstanceTypesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>t</requestId><instanceTypeSet><item><instanceType>t3.micro</instanceType><vCpuInfo><defaultVCpus>2</defaultVCpus></vCpuInfo><memoryInfo><sizeInMiB>1024</sizeInMiB></memoryInfo></item></instanceTypeSet></DescribeInstanceTypesResponse>",
            )
                .into_response()
        } else if body.contains("Action=ListMetrics") {
            (
                StatusCode::OK,
                "<ListMetricsResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><ListMetricsResult><Metrics/></ListMetricsResult><ResponseMetadata><RequestId>l</RequestId></ResponseMetadata></ListMetricsResponse>",
            )
                .into_response()
        } else if body.contains("Action=GetMetricData") {
            (
                StatusCode::FORBIDDEN,
                "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error><RequestId>x</RequestId></ErrorResponse>",
            )
                .into_response()
        } else {
            (
                StatusCode::OK,
                "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>ok</requestId><reservationSet><item><reservationId>r-1</reservationId><ownerId>111122223333</ownerId><instancesSet><item><instanceId>i-0abc</instanceId><instanceType>t3.micro</instanceType><instanceState><code>16</code><name>running</name></instanceState><tagSet><item><key>Name</key><value>web</value></item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>",
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (r, out) = collect_against(&format!("http://{addr}"), 2).await;
    r.unwrap();
    assert_eq!(out.resources.len(), 1);
    let res = &out.resources[0];
    assert_eq!((res.id.as_str(), res.name.as_str()), ("i-0abc", "web"));
    assert_eq!(res.attributes["vcpus"], 2);
    assert_eq!(res.attributes["memory_mib"], 1024);
    assert_eq!(res.account, "111122223333");
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(
        e.message
            .starts_with("GetMetricData was denied: grant the IAM action cloudwatch:GetMetricData"),
        "{}",
        e.message
    );
    assert_eq!(api_calls(&out, "cloudwatch:GetMetricData"), 1.0);
}

// ---------------------------------------------------------------- every service, against moto

/// Creates an IAM role in moto with an unsigned Query call (moto routes by the credential
/// scope of the Authorization header and does not check signatures).
async fn moto_role(url: &str, name: &str) -> String {
    let body = format!(
        "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D"
    );
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// Puts one datum of `namespace`/`metric` with `dims` at `at`.
async fn put_dims(
    sdk: &SdkConfig,
    namespace: &str,
    metric: &str,
    dims: &[(&str, &str)],
    at: i64,
    value: f64,
) {
    let mut d = MetricDatum::builder()
        .metric_name(metric)
        .timestamp(AwsDateTime::from_secs(at))
        .value(value);
    for (n, v) in dims {
        d = d.dimensions(Dimension::builder().name(*n).value(*v).build());
    }
    aws_sdk_cloudwatch::Client::new(sdk)
        .put_metric_data()
        .namespace(namespace)
        .metric_data(d.build())
        .send()
        .await
        .unwrap();
}

/// Inventory of every service (volumes, RDS, Lambda, S3 in two regions, EKS with a node
/// group), their metrics with exact values, CWAgent memory only where published, and the
/// calls per API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_every_service() {
    let Some(m) = moto("moto_every_service") else {
        return;
    };
    let sdk = sdk(&m.url).await;
    let role = moto_role(&m.url, "skymeter-test").await;
    let ids = run_instances(&sdk, 2, "prod").await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vol = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(100)
        .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("env")
                        .value("prod")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vol_id = vol.volume_id().unwrap().to_string();
    aws_sdk_rds::Client::new(&sdk)
        .create_db_instance()
        .db_instance_identifier("orders")
        .db_instance_class("db.m5.large")
        .engine("postgres")
        .allocated_storage(100)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .multi_az(true)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("env")
                .value("prod")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // An empty zip archive: the end-of-central-directory record alone.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    aws_sdk_lambda::Client::new(&sdk)
        .create_function()
        .function_name("resize")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(&role)
        .handler("app.handler")
        .memory_size(512)
        .architectures(aws_sdk_lambda::types::Architecture::Arm64)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("logs-east").send().await.unwrap();
    s3.create_bucket()
        .bucket("logs-west")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let eks = aws_sdk_eks::Client::new(&sdk);
    eks.create_cluster()
        .name("main")
        .role_arn(&role)
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name("main")
        .nodegroup_name("workers")
        .node_role(&role)
        .subnets("subnet-1")
        .instance_types("m5.large")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .desired_size(3)
                .min_size(1)
                .max_size(5)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let period = 300;
    let end = Utc::now().timestamp().div_euclid(period) * period;
    let bucket = end - period;
    put_dims(
        &sdk,
        "AWS/RDS",
        "CPUUtilization",
        &[("DBInstanceIdentifier", "orders")],
        bucket,
        40.0,
    )
    .await;
    put_dims(
        &sdk,
        "AWS/RDS",
        "CPUUtilization",
        &[("DBInstanceIdentifier", "orders")],
        bucket + 60,
        60.0,
    )
    .await;
    put_dims(
        &sdk,
        "AWS/RDS",
        "DatabaseConnections",
        &[("DBInstanceIdentifier", "orders")],
        bucket,
        12.0,
    )
    .await;
    for (k, ms) in [(0, 100.0), (60, 300.0), (120, 200.0)] {
        put_dims(
            &sdk,
            "AWS/Lambda",
            "Invocations",
            &[("FunctionName", "resize")],
            bucket + k,
            1.0,
        )
        .await;
        put_dims(
            &sdk,
            "AWS/Lambda",
            "Duration",
            &[("FunctionName", "resize")],
            bucket + k,
            ms,
        )
        .await;
    }
    let day = end.div_euclid(86_400) * 86_400 - 86_400;
    put_dims(
        &sdk,
        "AWS/S3",
        "BucketSizeBytes",
        &[
            ("BucketName", "logs-east"),
            ("StorageType", "StandardStorage"),
        ],
        day,
        5e9,
    )
    .await;
    put_dims(
        &sdk,
        "CWAgent",
        "mem_used_percent",
        &[("InstanceId", ids[0].as_str()), ("ImageId", "ami-1")],
        bucket,
        71.5,
    )
    .await;

    let mut c = collector(
        r#"regions = ["us-east-1", "eu-west-1"]
delay = "0s""#,
    );
    c.provider_mut().set_sdk(sdk);
    let mut out = Output::default();
    c.collect(&request(bucket, end, &[]), &mut out)
        .await
        .unwrap();
    // The shipped price table has no price for a Multi-AZ db.m5.large: said once per price,
    // the rest is estimated.
    let missing: Vec<&str> = out
        .errors
        .iter()
        .map(|e| {
            e.context
                .get("price")
                .map_or(e.message.as_str(), String::as_str)
        })
        .collect();
    assert_eq!(
        missing,
        [
            "rds/db.m5.large/postgres/multi_az",
            "rds/storage/gp2/multi_az"
        ],
        "{:?}",
        out.errors
    );
    assert!(out.errors.iter().all(|e| e.kind == ErrorKind::Config
        && e.message
            .contains("skymeter prices aws update --regions us-east-1")));

    // Estimated cost of the 5-minute window: t3.micro hours, EKS control plane, S3 storage.
    let table = prices::PriceTable::shipped();
    let us = &table.regions["us-east-1"];
    let hours = 300.0 / 3600.0;
    let line = |id: &str, unit: &str| {
        let l: Vec<&skymeter_model::Cost> = out
            .costs
            .iter()
            .filter(|c| {
                c.resource_id.as_deref() == Some(id) && c.pricing_unit.as_deref() == Some(unit)
            })
            .collect();
        assert_eq!(l.len(), 1, "{id} {unit}: {:?}", out.costs);
        l[0].clone()
    };
    let t3 = us.ec2["t3.micro"]["Linux"];
    assert!(t3 > 0.0);
    let hrs = line(&ids[0], "Hrs");
    assert!((hrs.billed_cost - t3 * hours).abs() < 1e-12, "{hrs:?}");
    assert_eq!(hrs.x_source, skymeter_model::CostSource::Estimated);
    assert_eq!(hrs.x_price_date.as_deref(), Some(table.date.as_str()));
    assert_eq!(hrs.service_name, "Amazon Elastic Compute Cloud");
    assert_eq!(hrs.sub_account_id.as_deref(), Some("123456789012"));
    assert_eq!(
        (
            hrs.charge_period_start.timestamp(),
            hrs.charge_period_end.timestamp()
        ),
        (bucket, end)
    );
    let eks_hour = us.eks.cluster_hour.unwrap();
    assert!((line("main", "Hrs").billed_cost - eks_hour * hours).abs() < 1e-12);
    assert!(line("logs-east", "GB-Mo").billed_cost > 0.0);

    let by_id = |id: &str| {
        out.resources
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no resource {id}"))
    };
    let i0 = by_id(&ids[0]);
    assert_eq!(i0.attributes["vcpus"], 2, "t3.micro");
    assert_eq!(i0.attributes["memory_mib"], 1024);
    assert_eq!(i0.attributes["lifecycle"], "on-demand");
    let v = by_id(&vol_id);
    assert_eq!(
        (v.kind.as_str(), v.native_type.as_str()),
        ("storage.volume", "AWS::EC2::Volume")
    );
    assert_eq!(v.attributes["volume_type"], "gp3");
    assert_eq!(v.attributes["size_gib"], 100);
    assert!(!v.attributes.contains_key("attached_to"));
    let db = by_id("orders");
    assert_eq!(db.kind, "database.instance");
    assert_eq!(db.attributes["instance_class"], "db.m5.large");
    assert_eq!(db.attributes["engine"], "postgres");
    assert_eq!(db.attributes["multi_az"], true);
    assert_eq!(db.attributes["allocated_storage_gib"], 100);
    assert_eq!(db.tags.get("env").map(String::as_str), Some("prod"));
    let f = by_id("resize");
    assert_eq!(
        (f.kind.as_str(), f.native_type.as_str()),
        ("function", "AWS::Lambda::Function")
    );
    assert_eq!(f.attributes["memory_mb"], 512);
    assert_eq!(f.attributes["architecture"], "arm64");
    assert_eq!(f.attributes["runtime"], "python3.12");
    let east = by_id("logs-east");
    assert_eq!(
        (east.kind.as_str(), east.region.as_str()),
        ("storage.bucket", "us-east-1")
    );
    assert_eq!(by_id("logs-west").region, "eu-west-1");
    let cl = by_id("main");
    assert_eq!(
        (cl.kind.as_str(), cl.native_type.as_str()),
        ("k8s.cluster", "AWS::EKS::Cluster")
    );
    let ng = by_id("main/workers");
    assert_eq!(ng.kind, "k8s.node_group");
    assert_eq!(
        ng.attributes["instance_types"],
        serde_json::json!(["m5.large"])
    );
    assert_eq!(ng.attributes["desired_size"], 3);
    assert!(out.resources.iter().all(|r| r.account == "123456789012"));

    let point = |metric: &str, id: &str, stat: Stat| {
        let p: Vec<&Point> = out
            .points
            .iter()
            .filter(|p| p.metric == metric && p.resource.id == id && p.stat == stat)
            .collect();
        assert_eq!(p.len(), 1, "{metric} {id} {stat:?}: {p:?}");
        p[0].clone()
    };
    assert_eq!(point("cpu.utilization", "orders", Stat::Avg).value, 50.0);
    assert_eq!(point("cpu.utilization", "orders", Stat::Max).value, 60.0);
    assert_eq!(
        point("database.connections", "orders", Stat::Max).value,
        12.0
    );
    let inv = point("function.invocations", "resize", Stat::Sum);
    assert_eq!(
        (inv.value, inv.unit, inv.ts.timestamp()),
        (3.0, Unit::Count, end)
    );
    assert_eq!(point("function.duration", "resize", Stat::Avg).value, 200.0);
    assert_eq!(point("function.duration", "resize", Stat::Max).value, 300.0);
    let size = point("storage.size", "logs-east", Stat::Avg);
    assert_eq!(
        (size.value, size.period_s, size.ts.timestamp()),
        (5e9, 86_400, day + 86_400)
    );
    assert_eq!(
        size.labels.get("storage_type").map(String::as_str),
        Some("StandardStorage")
    );
    let mem = point("memory.usage", &ids[0], Stat::Avg);
    assert_eq!((mem.value, mem.unit), (71.5, Unit::Percent));
    assert!(!out
        .points
        .iter()
        .any(|p| p.metric == "memory.usage" && p.resource.id == ids[1]));

    // Every list once per region (S3 once per account), Describe once per cluster/group.
    for (api, n) in [
        ("sts:GetCallerIdentity", 1),
        ("ec2:DescribeInstances", 2),
        ("ec2:DescribeInstanceTypes", 1),
        ("ec2:DescribeVolumes", 2),
        ("rds:DescribeDBInstances", 2),
        ("lambda:ListFunctions", 2),
        ("eks:ListClusters", 2),
        ("eks:DescribeCluster", 1),
        ("eks:DescribeNodegroup", 1),
        ("s3:ListBuckets", 1),
        ("cloudwatch:ListMetrics", 1),
        // us-east-1: one regular and one daily call; eu-west-1: the daily call of logs-west.
        ("cloudwatch:GetMetricData", 3),
    ] {
        assert_eq!(api_calls(&out, api), n as f64, "{api}");
    }
    // A second collection emits the daily value no more.
    let mut again = Output::default();
    c.collect(&request(bucket, end, &[]), &mut again)
        .await
        .unwrap();
    assert!(!again.points.iter().any(|p| p.metric == "storage.size"));
}

/// Two accounts (the default credentials and a role assumed in another account) × every
/// enabled region (`regions = ["*"]`), collected concurrently: each instance carries the
/// account and region it lives in. Then a dry run plans without calling GetMetricData.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_accounts_assume_role_all_regions_and_dry_run() {
    let Some(m) = moto("moto_accounts_assume_role_all_regions_and_dry_run") else {
        return;
    };
    let sdk = sdk(&m.url).await;
    let home = run_instances(&sdk, 2, "prod").await;
    // Credentials of the other account, to seed it.
    let role_arn = "arn:aws:iam::111111111111:role/skymeter-read";
    let assumed = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("seed")
        .send()
        .await
        .unwrap();
    let cr = assumed.credentials().unwrap();
    let other = sdk
        .to_builder()
        .region(Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_sdk_ec2::config::Credentials::new(
                cr.access_key_id(),
                cr.secret_access_key(),
                Some(cr.session_token().to_string()),
                None,
                "seed",
            ),
        ))
        .build();
    let away = run_instances(&other, 3, "prod").await;

    let cfg = format!(
        r#"regions = ["*"]
services = ["ec2"]
cost = []
delay = "0s"
accounts = [{{}}, {{ assume_role = {{ role_arn = "{role_arn}", external_id = "x-1" }} }}]"#
    );
    let mut c = collector(&cfg);
    c.provider_mut().set_sdk(sdk.clone());
    let period = 300;
    let end = Utc::now().timestamp().div_euclid(period) * period;
    let mut out = Output::default();
    c.collect(
        &request(end - period, end, &["cpu.utilization", "aws.*"]),
        &mut out,
    )
    .await
    .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let mut got: Vec<(String, String, String)> = out
        .resources
        .iter()
        .map(|r| (r.account.clone(), r.region.clone(), r.id.clone()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String, String)> = home
        .iter()
        .map(|i| ("123456789012".into(), "us-east-1".into(), i.clone()))
        .chain(
            away.iter()
                .map(|i| ("111111111111".into(), "eu-west-1".into(), i.clone())),
        )
        .collect();
    want.sort();
    assert_eq!(got, want);
    let regions = api_calls(&out, "ec2:DescribeRegions");
    assert_eq!(regions, 2.0, "once per account");
    // One DescribeInstances per account and enabled region.
    let describes = api_calls(&out, "ec2:DescribeInstances");
    assert!(describes > 20.0 && describes % 2.0 == 0.0, "{describes}");
    // 2 instances × 1 metric × 2 stats in one region of one account, 3 × 2 in the other.
    assert_eq!(api_calls(&out, "cloudwatch:GetMetricData"), 2.0);

    // Dry run: discovery happens, GetMetricData does not; the plan is in the self-metrics.
    let mut c = collector(&format!("{cfg}\ndry_run = true"));
    c.provider_mut().set_sdk(sdk);
    let mut out = Output::default();
    c.collect(&request(end - period, end, &[]), &mut out)
        .await
        .unwrap();
    assert_eq!(out.resources.len(), 5);
    assert!(out.points.iter().all(|p| p.metric.starts_with("aws.")));
    assert_eq!(c.calls().get("cloudwatch:GetMetricData"), 0);
    let planned = out
        .points
        .iter()
        .find(|p| {
            p.metric == "aws.planned_calls"
                && p.labels.get("api").map(String::as_str) == Some("cloudwatch:GetMetricData")
        })
        .unwrap();
    // 13 AWS/EC2 metrics × 2 stats: 26 and 39 queries, one call in each place.
    assert_eq!(planned.value, 2.0);
    let requested = out
        .points
        .iter()
        .find(|p| p.metric == "aws.cloudwatch_metrics_requested")
        .unwrap();
    assert_eq!(requested.value, 5.0 * 13.0 * 2.0);
    let cost = out
        .points
        .iter()
        .find(|p| p.metric == "aws.collection_cost")
        .unwrap();
    assert!(
        (cost.value - 130.0 / 1000.0 * 0.01).abs() < 1e-12,
        "{}",
        cost.value
    );
}

fn ts(secs: i64) -> DateTime<Utc> {
    chrono::TimeZone::timestamp_opt(&Utc, secs, 0).unwrap()
}

/// `cost = ["billed"]`: Cost Explorer is read through the collector, its lines land in the
/// output with the collection's cost counted, and a second collection within
/// `billed_every` does not call it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_billed_cost_through_the_collector() {
    let Some(m) = moto("moto_billed_cost_through_the_collector") else {
        return;
    };
    let sdk = sdk(&m.url).await;
    let result = serde_json::json!({
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}
        ],
        "ResultsByTime": [{
            "TimePeriod": {"Start": "2026-11-20", "End": "2026-11-21"},
            "Total": {},
            "Groups": [{
                "Keys": ["Amazon Relational Database Service", "123456789012"],
                "Metrics": {
                    "UnblendedCost": {"Amount": "4.25", "Unit": "USD"},
                    "AmortizedCost": {"Amount": "4.00", "Unit": "USD"}
                }
            }],
            "Estimated": false
        }],
        "DimensionValueAttributes": []
    });
    let r = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/ce/cost-and-usage-results",
            m.url
        ))
        .json(&serde_json::json!({ "results": [result] }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut c = collector(
        r#"regions = ["us-east-1"]
services = ["ec2"]
cost = ["billed"]
delay = "0s""#,
    );
    c.provider_mut().set_sdk(sdk);
    let mut out = Output::default();
    c.collect(&request(0, 300, &["aws.*"]), &mut out)
        .await
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.costs.len(), 1, "{:?}", out.costs);
    let cost = &out.costs[0];
    assert_eq!((cost.billed_cost, cost.effective_cost), (4.25, 4.0));
    assert_eq!(cost.service_name, "Amazon Relational Database Service");
    assert_eq!(cost.sub_account_id.as_deref(), Some("123456789012"));
    assert_eq!(cost.x_source, skymeter_model::CostSource::Billed);
    assert_eq!(api_calls(&out, "ce:GetCostAndUsage"), 1.0);
    let spent = out
        .points
        .iter()
        .find(|p| p.metric == "aws.collection_cost")
        .unwrap();
    assert!((spent.value - 0.01).abs() < 1e-12, "{}", spent.value);

    let mut again = Output::default();
    c.collect(&request(300, 600, &["aws.*"]), &mut again)
        .await
        .unwrap();
    assert!(again.costs.is_empty());
    assert_eq!(api_calls(&again, "ce:GetCostAndUsage"), 0.0);
}
