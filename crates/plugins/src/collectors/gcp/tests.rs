//! Tests of the gcp collector against a local stand-in of the Google APIs (standin.rs):
//! the service-account JWT exchange, every page of every list, exact values and call counts,
//! 429 / 401 / 403, the dry run and billed cost from a BigQuery export.

use super::standin::*;
use super::*;
use base64::Engine;
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use skymeter_model::Unit;
use skymeter_model::{ChargeCategory, CostSource, Window};
use skymeter_plugin_api::config::Source as TomlSource;
use skymeter_plugin_api::MetricSelection;
use skymeter_plugin_api::{CollectRequest, Collector, Output};
use std::collections::{BTreeSet, HashMap};

// ---------------------------------------------------------------- helpers

const P: &str = "test-project";

fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = TomlSource::new("gcp.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    f(&raw)
}

fn config_error(text: &str) -> ConfigError {
    with_raw(text, |raw| Gcp::from_raw(raw).err().expect("fails"))
}

struct Env {
    server: FakeGcp,
    _dir: tempfile::TempDir,
    key: std::path::PathBuf,
}

fn env() -> Env {
    let server = FakeGcp::start();
    let dir = tempfile::tempdir().unwrap();
    let key = server.key_file(dir.path(), P);
    Env {
        server,
        _dir: dir,
        key,
    }
}

impl Env {
    /// A collector against the stand-in. Cost is off unless `extra` sets `cost` (the
    /// stand-in's custom-4-8192 in europe-west1 has no shipped price; the cost tests bring
    /// their own table).
    fn collector(&self, extra: &str) -> Gcp {
        let extra = if extra.contains("cost =") {
            extra.to_string()
        } else {
            format!("cost = []\n{extra}")
        };
        let text = format!(
            "projects = [\"{P}\"]\ncredentials_file = {:?}\nendpoint_url = {:?}\ndelay = \"0s\"\nmax_attempts = 3\n{extra}",
            self.key.to_str().unwrap(),
            self.server.url
        );
        with_raw(&text, |raw| Gcp::from_raw(raw).expect("builds"))
    }

    fn state(&self) -> &State {
        &self.server.state
    }
}

/// A window ending at the last whole 5 minutes.
fn request(selection: &[&str]) -> (CollectRequest, i64) {
    let now = Utc::now().timestamp();
    let end = now.div_euclid(300) * 300;
    (
        CollectRequest {
            window: Window {
                start: ts(end - 300),
                end: ts(end),
            },
            metrics: MetricSelection::new(selection).unwrap(),
            task: "t".into(),
        },
        end,
    )
}

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap()
}

async fn collect(g: &mut Gcp, selection: &[&str]) -> (Output, Result<(), PluginError>, i64) {
    let (req, end) = request(selection);
    let mut out = Output::default();
    let r = g.collect(&req, &mut out).await;
    (out, r, end)
}

fn attr<'a>(r: &'a Resource, k: &str) -> &'a Value {
    r.attributes.get(k).unwrap_or(&Value::Null)
}

/// A project with one of each kind: 3 instances in 2 zones, a disk, a GKE cluster with a
/// node pool, a function, a Cloud SQL instance and a bucket.
fn small_project() -> Project {
    let mut p = Project {
        instances: vec![
            instance(P, "us-central1-a", 1001, "web-1", "e2-standard-2"),
            instance(P, "us-central1-a", 1002, "web-2", "e2-standard-2"),
            instance(P, "europe-west1-b", 1003, "batch-1", "custom-4-8192"),
        ],
        machine_types: vec![
            machine_type("us-central1-a", "e2-standard-2", 2, 8192),
            machine_type("europe-west1-b", "e2-standard-2", 2, 8192),
            machine_type("us-central1-a", "n2-standard-4", 4, 16384),
        ],
        disks: vec![json!({
            "kind": "compute#disk", "id": "2001", "name": "web-1", "sizeGb": "20",
            "zone": format!("https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-a"),
            "status": "READY",
            "type": format!("https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-a/diskTypes/pd-balanced"),
            "creationTimestamp": "2024-01-15T08:30:00.000-08:00",
            "labels": {"env": "prod"}
        })],
        clusters: vec![json!({
            "name": "gke-1", "location": "us-central1", "status": "RUNNING",
            "currentMasterVersion": "1.29.4-gke.1043002", "currentNodeCount": 3,
            "createTime": "2024-02-01T10:00:00+00:00", "resourceLabels": {"env": "prod"},
            "nodePools": [{
                "name": "default-pool", "status": "RUNNING", "version": "1.29.4-gke.1043002",
                "initialNodeCount": 1,
                "config": {"machineType": "e2-medium", "diskSizeGb": 100},
                "autoscaling": {"enabled": true, "minNodeCount": 1, "maxNodeCount": 5}
            }]
        })],
        functions: vec![
            json!({
                "name": format!("projects/{P}/locations/us-central1/functions/hello"),
                "state": "ACTIVE", "environment": "GEN_1",
                "buildConfig": {"runtime": "python312", "entryPoint": "hello"},
                "serviceConfig": {"availableMemory": "256M", "timeoutSeconds": 60},
                "labels": {"env": "prod"}, "createTime": "2024-03-01T00:00:00Z"
            }),
            // 2nd gen: its metrics are those of the Cloud Run service it runs on.
            json!({
                "name": format!("projects/{P}/locations/us-central1/functions/hello2"),
                "state": "ACTIVE", "environment": "GEN_2",
                "buildConfig": {"runtime": "nodejs20", "entryPoint": "hello"},
                "serviceConfig": {"availableMemory": "512M", "timeoutSeconds": 60,
                    "service": format!("projects/{P}/locations/us-central1/services/hello2"),
                    "revision": "hello2-00003-abc"},
                "labels": {"env": "prod"}, "createTime": "2024-03-02T00:00:00Z"
            }),
        ],
        sql: vec![json!({
            "kind": "sql#instance", "name": "db-1", "project": P, "databaseVersion": "POSTGRES_15",
            "region": "us-central1", "gceZone": "us-central1-c", "state": "RUNNABLE",
            "settings": {"tier": "db-custom-2-7680", "dataDiskSizeGb": "10", "dataDiskType": "PD_SSD",
                         "userLabels": {"env": "prod"}},
            "ipAddresses": [{"type": "PRIMARY", "ipAddress": "35.1.1.1"}, {"type": "PRIVATE", "ipAddress": "10.0.0.5"}],
            "createTime": "2024-01-01T00:00:00.000Z"
        })],
        buckets: vec![json!({
            "kind": "storage#bucket", "id": "logs-bucket", "name": "logs-bucket",
            "location": "US-CENTRAL1", "locationType": "region", "storageClass": "STANDARD",
            "timeCreated": "2024-01-01T00:00:00.000Z", "labels": {"env": "prod"}
        })],
        series: HashMap::new(),
        raw: HashMap::new(),
        ..Default::default()
    };
    let cpu = "compute.googleapis.com/instance/cpu/utilization";
    for (i, id) in [1001u64, 1002, 1003].iter().enumerate() {
        let zone = if *id == 1003 {
            "europe-west1-b"
        } else {
            "us-central1-a"
        };
        let l = gce_labels(P, zone, *id);
        let i = i as f64;
        p.series
            .entry((cpu.into(), "ALIGN_MEAN".into()))
            .or_default()
            .push((l.clone(), double(0.20 + i / 100.0)));
        p.series
            .entry((cpu.into(), "ALIGN_MAX".into()))
            .or_default()
            .push((l.clone(), double(0.50 + i / 100.0)));
    }
    let rx = "compute.googleapis.com/instance/network/received_bytes_count";
    p.series.insert(
        (rx.into(), "ALIGN_RATE".into()),
        vec![(gce_labels(P, "us-central1-a", 1001), double(1500.0))],
    );
    p.series.insert(
        (rx.into(), "ALIGN_MAX".into()),
        vec![(gce_labels(P, "us-central1-a", 1001), int64(120_000))],
    );
    // A series of an instance not in the inventory: dropped.
    p.series
        .get_mut(&(cpu.into(), "ALIGN_MEAN".into()))
        .unwrap()
        .push((gce_labels(P, "us-central1-a", 9999), double(0.99)));
    p.series.insert(
        (
            "cloudsql.googleapis.com/database/cpu/utilization".into(),
            "ALIGN_MEAN".into(),
        ),
        vec![(
            json!({"project_id": P, "database_id": format!("{P}:db-1"), "region": "us-central"}),
            double(0.42),
        )],
    );
    let run = json!({"project_id": P, "service_name": "hello2", "location": "us-central1"});
    p.series.insert(
        (
            "run.googleapis.com/request_count".into(),
            "ALIGN_SUM".into(),
        ),
        vec![(run.clone(), int64(12))],
    );
    p.series.insert(
        (
            "run.googleapis.com/request_latencies".into(),
            "REDUCE_MEAN".into(),
        ),
        vec![(run, double(85.5))],
    );
    p.series.insert(
        (
            "cloudfunctions.googleapis.com/function/execution_count".into(),
            "ALIGN_SUM".into(),
        ),
        vec![(
            json!({"project_id": P, "function_name": "hello", "region": "us-central1"}),
            int64(37),
        )],
    );
    // A DELTA distribution: its avg is the ALIGN_DELTA distribution's mean.
    p.series.insert(
        (
            "cloudfunctions.googleapis.com/function/execution_times".into(),
            "ALIGN_DELTA".into(),
        ),
        vec![(
            json!({"project_id": P, "function_name": "hello", "region": "us-central1"}),
            distribution(40, 12_500_000.0),
        )],
    );
    p.series.insert(
        (
            "storage.googleapis.com/storage/total_bytes".into(),
            "ALIGN_MEAN".into(),
        ),
        vec![(
            json!({"project_id": P, "bucket_name": "logs-bucket", "location": "us-central1"}),
            double(5.0e9),
        )],
    );
    p
}

fn point<'a>(out: &'a Output, metric: &str, id: &str, stat: Stat) -> &'a Point {
    out.points
        .iter()
        .find(|p| p.metric == metric && p.resource.id == id && p.stat == stat)
        .unwrap_or_else(|| panic!("no {metric} {stat:?} of {id}"))
}

// ---------------------------------------------------------------- config

#[test]
fn config_errors_name_the_key_and_what_to_do() {
    let e = config_error("stats = [\"median\"]");
    assert!(e.to_string().contains("stats"), "{e}");
    assert!(e.to_string().contains("unknown stat \"median\""), "{e}");
    let e = config_error("period = \"90s\"");
    assert!(e.to_string().contains("period"), "{e}");
    let e = config_error("projects = [\"My Project\"]");
    assert!(e.to_string().contains("is not a project id"), "{e}");
    let e = config_error("billing_export_table = \"just-a-table\"");
    assert!(e.to_string().contains("billing_export_table"), "{e}");
    let e = config_error("endpoint_url = \"localhost:1\"");
    assert!(e.to_string().contains("http://"), "{e}");
    let e = config_error("regions = [\"x\"]");
    assert!(e.to_string().contains("regions"), "{e}");
}

#[test]
fn metrics_catalog_lists_units_and_sources() {
    let m = crate::cloud::collector::metrics::<GcpCloud>();
    let cpu = m.iter().find(|i| i.name == "cpu.utilization").unwrap();
    assert_eq!(cpu.unit, Unit::Percent);
    assert!(cpu
        .source
        .contains("compute.googleapis.com/instance/cpu/utilization"));
    assert!(cpu
        .source
        .contains("cloudsql.googleapis.com/database/cpu/utilization"));
    let rx = m
        .iter()
        .find(|i| i.name == "network.received_throughput")
        .unwrap();
    assert_eq!(rx.unit, Unit::BytesPerSecond);
    assert!(m.iter().any(|i| i.name == "gcp.api_calls"));
    assert!(m.iter().any(|i| i.name == "gcp.planned_calls"));
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn service_account_jwt_bearer_exchange_at_the_key_files_token_uri() {
    let e = env();
    e.server.set_project(P, small_project());
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["cpu.*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // One exchange for the whole collection (the token is cached).
    let assertions = e.state().assertions.lock().unwrap().clone();
    assert_eq!(assertions.len(), 1);
    assert_eq!(e.state().count("/token"), 1);
    let jwt = &assertions[0];
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .unwrap()
    };
    let header: Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let claims: Value = serde_json::from_slice(&b64(parts[1])).unwrap();
    assert_eq!(claims["iss"], CLIENT_EMAIL);
    assert_eq!(claims["aud"], format!("{}/token", e.server.url));
    assert_eq!(claims["scope"], client::SCOPE);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3595);
    assert!((Utc::now().timestamp() - iat).abs() < 120);
    // RS256 = RSASSA-PKCS1-v1_5 with SHA-256, by the test key.
    let public = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/gcp/test-key.pub.der"
    ));
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public[..],
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    key.verify(signed.as_bytes(), &b64(parts[2]))
        .expect("the assertion is signed with the key file's private key");
}

#[tokio::test]
async fn missing_key_file_is_a_clear_auth_error() {
    let e = env();
    let text = format!(
        "projects = [\"{P}\"]\ncredentials_file = \"/nonexistent/key.json\"\nendpoint_url = {:?}",
        e.server.url
    );
    let mut g = with_raw(&text, |raw| Gcp::from_raw(raw).unwrap());
    let (_, r, _) = collect(&mut g, &["*"]).await;
    let err = r.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("credentials_file"), "{err}");
    assert_eq!(e.state().requests().len(), 0);
}

// ---------------------------------------------------------------- inventory

#[tokio::test]
async fn inventory_reads_every_page_and_maps_to_the_contract() {
    let e = env();
    e.server.set_project(P, small_project());
    *e.state().page_size.lock().unwrap() = 2;
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let kinds: Vec<(&str, &str)> = out
        .resources
        .iter()
        .map(|r| (r.kind.as_str(), r.id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("compute.instance", "1003"),
            ("compute.instance", "1001"),
            ("compute.instance", "1002"),
            ("database.instance", "db-1"),
            (
                "function",
                "projects/test-project/locations/us-central1/functions/hello"
            ),
            (
                "function",
                "projects/test-project/locations/us-central1/functions/hello2"
            ),
            ("k8s.cluster", "us-central1/gke-1"),
            ("k8s.node_group", "us-central1/gke-1/default-pool"),
            ("storage.bucket", "logs-bucket"),
            ("storage.volume", "2001"),
        ]
    );
    let by_id = |id: &str| out.resources.iter().find(|r| r.id == id).unwrap();
    let web1 = by_id("1001");
    assert_eq!(web1.provider, "gcp");
    assert_eq!(web1.account, P);
    assert_eq!(web1.region, "us-central1");
    assert_eq!(web1.name, "web-1");
    assert_eq!(web1.native_type, "compute.googleapis.com/Instance");
    assert_eq!(web1.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(attr(web1, "instance_type"), "e2-standard-2");
    assert_eq!(attr(web1, "state"), "running");
    assert_eq!(attr(web1, "availability_zone"), "us-central1-a");
    assert_eq!(attr(web1, "vcpus"), 2);
    assert_eq!(attr(web1, "memory_mib"), 8192);
    assert_eq!(attr(web1, "private_ip"), "10.128.4.3");
    assert_eq!(attr(web1, "public_ip"), "34.1.2.3");
    assert_eq!(attr(web1, "launch_time"), "2024-01-15T08:30:00.000-08:00");
    // A custom machine type: its shape is in its name.
    let batch = by_id("1003");
    assert_eq!(attr(batch, "vcpus"), 4);
    assert_eq!(attr(batch, "memory_mib"), 8192);
    assert_eq!(batch.region, "europe-west1");
    let disk = by_id("2001");
    assert_eq!(attr(disk, "size_gib"), 20);
    assert_eq!(attr(disk, "volume_type"), "pd-balanced");
    assert_eq!(attr(disk, "state"), "ready");
    let db = by_id("db-1");
    assert_eq!(attr(db, "engine"), "postgres");
    assert_eq!(attr(db, "engine_version"), "15");
    assert_eq!(attr(db, "instance_class"), "db-custom-2-7680");
    assert_eq!(attr(db, "state"), "running");
    assert_eq!(attr(db, "private_ip"), "10.0.0.5");
    assert_eq!(attr(db, "public_ip"), "35.1.1.1");
    let f = out.resources.iter().find(|r| r.kind == "function").unwrap();
    assert_eq!(f.name, "hello");
    assert_eq!(f.region, "us-central1");
    assert_eq!(attr(f, "runtime"), "python312");
    assert_eq!(attr(f, "memory_mb"), 256);
    let pool = by_id("us-central1/gke-1/default-pool");
    assert_eq!(attr(pool, "instance_type"), "e2-medium");
    assert_eq!(attr(pool, "max_nodes"), 5);
    let cluster = by_id("us-central1/gke-1");
    assert_eq!(attr(cluster, "version"), "1.29.4-gke.1043002");
    assert_eq!(attr(cluster, "status"), "running");
    let b = by_id("logs-bucket");
    assert_eq!(b.region, "us-central1");

    // Every page: 3 instances at 2 a page = 2 calls; 3 machine types = 2 calls.
    assert_eq!(g.calls().get("compute.instances.aggregatedList"), 2);
    assert_eq!(g.calls().get("compute.machineTypes.aggregatedList"), 2);
    assert_eq!(g.calls().get("compute.disks.aggregatedList"), 1);
    assert_eq!(
        g.calls().get("container.projects.locations.clusters.list"),
        1
    );
    assert_eq!(
        g.calls()
            .get("cloudfunctions.projects.locations.functions.list"),
        1
    );
    assert_eq!(g.calls().get("sql.instances.list"), 1);
    assert_eq!(g.calls().get("storage.buckets.list"), 1);
    let pages: Vec<Option<String>> = e
        .state()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/aggregated/instances"))
        .map(|r| r.param("pageToken").map(str::to_string))
        .collect();
    assert_eq!(pages, [None, Some("page-2".to_string())]);
    assert_eq!(
        e.state()
            .requests()
            .iter()
            .find(|r| r.path == "/storage/v1/b")
            .unwrap()
            .param("project"),
        Some(P)
    );
}

#[tokio::test]
async fn labels_filter_keeps_only_matching_resources() {
    let e = env();
    let mut p = waste_project();
    p.instances[1]["labels"] = json!({"env": "dev"});
    p.addresses[0]["labels"] = json!({"env": "dev"});
    e.server.set_project(P, p);
    let mut g = e.collector("labels = { env = \"prod\" }");
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.resources.iter().all(|r| r.id != "1002"));
    // Waste kinds are filtered the same way; NAT gateways (routers have no labels) never
    // match a label filter, and their list is not even asked.
    assert!(out.resources.iter().all(|r| r.id != "4001"));
    assert!(out.resources.iter().any(|r| r.id == "4002"));
    assert!(out.resources.iter().any(|r| r.kind == "storage.snapshot"));
    assert!(!out
        .resources
        .iter()
        .any(|r| r.kind == "network.nat_gateway"));
    assert_eq!(g.calls().get("compute.routers.aggregatedList"), 0);
    assert_eq!(
        out.resources
            .iter()
            .filter(|r| r.kind == "compute.instance")
            .count(),
        2
    );
}

// ---------------------------------------------------------------- metrics

#[tokio::test]
async fn metrics_are_mapped_back_with_exact_values_units_and_stats() {
    let e = env();
    e.server.set_project(P, small_project());
    let mut g = e.collector("");
    let (out, r, end) = collect(&mut g, &["*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let cpu = point(&out, "cpu.utilization", "1002", Stat::Avg);
    assert!((cpu.value - 21.0).abs() < 1e-9, "{}", cpu.value);
    assert_eq!(cpu.unit, Unit::Percent);
    assert_eq!(cpu.period_s, 300);
    assert_eq!(cpu.ts, ts(end));
    assert_eq!(cpu.resource.provider, "gcp");
    assert_eq!(cpu.resource.account, P);
    assert_eq!(cpu.resource.region, "us-central1");
    let max = point(&out, "cpu.utilization", "1003", Stat::Max);
    assert!((max.value - 52.0).abs() < 1e-9, "{}", max.value);
    assert!(!out.points.iter().any(|p| p.resource.id == "9999"));
    // ALIGN_RATE is per second; ALIGN_MAX of 60 s deltas ÷ 60.
    let rx = point(&out, "network.received_throughput", "1001", Stat::Avg);
    assert_eq!((rx.value, rx.unit), (1500.0, Unit::BytesPerSecond));
    let rx = point(&out, "network.received_throughput", "1001", Stat::Max);
    assert_eq!((rx.value, rx.unit), (2000.0, Unit::BytesPerSecond));
    let db = point(&out, "cpu.utilization", "db-1", Stat::Avg);
    assert!((db.value - 42.0).abs() < 1e-9);
    let fid = "projects/test-project/locations/us-central1/functions/hello";
    let inv = point(&out, "function.invocations", fid, Stat::Sum);
    assert_eq!((inv.value, inv.unit), (37.0, Unit::Count));
    let dur = point(&out, "function.duration", fid, Stat::Avg);
    assert_eq!((dur.value, dur.unit), (12.5, Unit::Milliseconds));
    // ALIGN_DELTA (the period's distribution, read as its mean), not ALIGN_MEAN (numeric
    // values only), and no reducer.
    let q = e
        .state()
        .requests()
        .into_iter()
        .find(|r| {
            r.param("filter")
                .is_some_and(|f| f.contains("function/execution_times"))
        })
        .unwrap();
    assert_eq!(q.param("aggregation.perSeriesAligner"), Some("ALIGN_DELTA"));
    assert_eq!(q.param("aggregation.crossSeriesReducer"), None);
    // The 2nd-gen function's: request_count summed over its revisions and response codes,
    // request_latencies merged (ALIGN_DELTA + REDUCE_MEAN), both per location and service.
    let f2 = "projects/test-project/locations/us-central1/functions/hello2";
    let inv = point(&out, "function.invocations", f2, Stat::Sum);
    assert_eq!((inv.value, inv.unit), (12.0, Unit::Count));
    let dur = point(&out, "function.duration", f2, Stat::Avg);
    assert_eq!((dur.value, dur.unit), (85.5, Unit::Milliseconds));
    let q = e
        .state()
        .requests()
        .into_iter()
        .find(|r| {
            r.param("filter")
                .is_some_and(|f| f.contains("run.googleapis.com/request_latencies"))
        })
        .unwrap();
    assert!(q
        .param("filter")
        .unwrap()
        .contains("resource.type = \"cloud_run_revision\""));
    assert_eq!(q.param("aggregation.perSeriesAligner"), Some("ALIGN_DELTA"));
    assert_eq!(
        q.param("aggregation.crossSeriesReducer"),
        Some("REDUCE_MEAN")
    );
    let size = point(&out, "storage.size", "logs-bucket", Stat::Avg);
    assert_eq!((size.value, size.unit), (5.0e9, Unit::Bytes));
    // Bucket metrics show up late: asked 900 s behind the end instead of `delay` (0 s here),
    // i.e. three periods earlier than the instance metrics.
    let end_of = |needle: &str| {
        let reqs = e.state().requests();
        let r = reqs
            .iter()
            .find(|r| r.param("filter").is_some_and(|f| f.contains(needle)))
            .unwrap_or_else(|| panic!("no query for {needle}"));
        chrono::DateTime::parse_from_rfc3339(r.param("interval.endTime").unwrap())
            .unwrap()
            .timestamp()
    };
    assert_eq!(
        end_of("storage/total_bytes"),
        end_of("instance/cpu/utilization") - 900
    );

    // One call per (metric type, aligner): GCE 10 types × 2, SQL 3 × 2, 1st-gen functions
    // 1 + 1 (execution_times: avg only of avg/max), 2nd-gen 1 + 1, storage 2.
    let calls: Vec<(String, String)> = e
        .state()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/timeSeries"))
        .map(|r| {
            (
                r.param("filter").unwrap().to_string(),
                r.param("aggregation.perSeriesAligner").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(calls.len(), 20 + 6 + 2 + 2 + 2, "{calls:#?}");
    let unique: BTreeSet<_> = calls.iter().collect();
    assert_eq!(unique.len(), calls.len());
    assert_eq!(g.calls().get("monitoring.timeSeries.list"), 32);
    let req = e
        .state()
        .requests()
        .into_iter()
        .find(|r| {
            r.path == format!("/v3/projects/{P}/timeSeries")
                && r.param("filter").unwrap().contains("disk/read_ops_count")
                && r.param("aggregation.perSeriesAligner") == Some("ALIGN_RATE")
        })
        .unwrap();
    assert_eq!(req.param("aggregation.alignmentPeriod"), Some("300s"));
    assert_eq!(
        req.param("aggregation.crossSeriesReducer"),
        Some("REDUCE_SUM")
    );
    assert_eq!(
        req.param("aggregation.groupByFields"),
        Some("resource.labels.instance_id")
    );
    assert_eq!(
        req.param("interval.endTime"),
        Some(
            ts(end)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str()
        )
    );
    assert_eq!(
        req.param("interval.startTime"),
        Some(
            ts(end - 600)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str()
        )
    );
    // Self-accounting.
    let api_calls = out
        .points
        .iter()
        .find(|p| {
            p.metric == "gcp.api_calls"
                && p.labels.get("api").map(String::as_str) == Some("monitoring.timeSeries.list")
        })
        .unwrap();
    assert_eq!(api_calls.value, 32.0);
}

/// One timeSeries.list request, as the collector builds it, sent straight to the stand-in:
/// (HTTP status, answer).
async fn send_query(e: &Env, q: &metrics::Query) -> (u16, Value) {
    let end = Utc::now().timestamp().div_euclid(300) * 300;
    let w = metrics::MetricWindow {
        start: end - 600,
        end,
        emit_after: end - 300,
    };
    let params = metrics::query_params(q, w, 300);
    let rsp = reqwest::Client::new()
        .get(format!("{}/v3/projects/{P}/timeSeries", e.server.url))
        .query(&params)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = rsp.status().as_u16();
    let body = serde_json::from_str(&rsp.text().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

fn metric(metric_type: &str) -> &'static catalog::GcpMetric {
    CATALOG
        .iter()
        .find(|m| m.metric_type == metric_type)
        .unwrap()
}

/// The requests the collector used to make, which Cloud Monitoring answers 400: the
/// stand-in refuses them the same way (so a test would have caught them), and accepts every
/// request the collector makes now, for every metric and every stat.
#[tokio::test]
async fn stand_in_refuses_the_aligners_cloud_monitoring_refuses() {
    let e = env();
    e.server.set_project(P, small_project());
    let old = [
        // p95 of numeric metrics: ALIGN_PERCENTILE_95 is for distributions only.
        (
            "compute.googleapis.com/instance/cpu/utilization",
            "ALIGN_PERCENTILE_95",
            Stat::P95,
            "kind GAUGE and value type DOUBLE",
        ),
        (
            "agent.googleapis.com/memory/percent_used",
            "ALIGN_PERCENTILE_95",
            Stat::P95,
            "kind GAUGE and value type DOUBLE",
        ),
        // (with REDUCE_SUM per instance, as the collector asked it)
        (
            "compute.googleapis.com/instance/disk/read_ops_count",
            "ALIGN_PERCENTILE_95",
            Stat::P95,
            "kind DELTA and value type INT64",
        ),
        (
            "compute.googleapis.com/instance/network/sent_bytes_count",
            "ALIGN_PERCENTILE_95",
            Stat::P95,
            "kind DELTA and value type INT64",
        ),
        (
            "cloudsql.googleapis.com/database/cpu/utilization",
            "ALIGN_PERCENTILE_95",
            Stat::P95,
            "kind GAUGE and value type DOUBLE",
        ),
        (
            "cloudsql.googleapis.com/database/network/connections",
            "ALIGN_PERCENTILE_95",
            Stat::P95,
            "kind GAUGE and value type INT64",
        ),
        // avg of a distribution: ALIGN_MEAN is for numeric values only.
        (
            "cloudfunctions.googleapis.com/function/execution_times",
            "ALIGN_MEAN",
            Stat::Avg,
            "kind DELTA and value type DISTRIBUTION",
        ),
    ];
    for (metric_type, aligner, stat, why) in old {
        let q = metrics::Query {
            metric: metric(metric_type),
            aligner,
            stat,
        };
        let (status, body) = send_query(&e, &q).await;
        assert_eq!(status, 400, "{metric_type} {aligner}: {body}");
        assert_eq!(body["error"]["code"], 400);
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("invalid value of \"{aligner}\"")) && message.contains(why),
            "{message}"
        );
    }
    // ALIGN_NONE with a reducer is refused too (the raw query must not ask one).
    let rsp = reqwest::Client::new()
        .get(format!("{}/v3/projects/{P}/timeSeries", e.server.url))
        .query(&[
            (
                "filter",
                "metric.type = \"compute.googleapis.com/instance/disk/read_ops_count\" AND resource.type = \"gce_instance\"",
            ),
            ("interval.startTime", "2024-05-01T00:00:00Z"),
            ("interval.endTime", "2024-05-01T00:10:00Z"),
            ("aggregation.alignmentPeriod", "300s"),
            ("aggregation.perSeriesAligner", "ALIGN_NONE"),
            ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
        ])
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status().as_u16(), 400);

    // (the stand-in's own time stamps, which its raw samples are placed by)
    assert_eq!(unix_seconds("2023-11-14T22:13:20Z"), Some(1_700_000_000));
    assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(unix_seconds("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    assert_eq!(rfc3339_utc(1_709_164_800), "2024-02-29T00:00:00Z");

    // Every request the collector makes now, for every metric and stat, is accepted.
    let all = [
        Stat::Avg,
        Stat::Max,
        Stat::Min,
        Stat::Sum,
        Stat::Count,
        Stat::P95,
    ];
    let mut asked = 0;
    for m in &CATALOG {
        for (aligner, stat) in catalog::aligners(m.shape, &all) {
            let q = metrics::Query {
                metric: m,
                aligner,
                stat,
            };
            let (status, body) = send_query(&e, &q).await;
            assert_eq!(status, 200, "{} {aligner}: {body}", m.metric_type);
            asked += 1;
        }
    }
    // 13 numeric metrics × 6 stats, 2 distributions × 2, 7 totals (2 function, 3 load
    // balancer, 2 NAT) and 2 levels × 1.
    assert_eq!(asked, 13 * 6 + 2 * 2 + 7 + 2);
}

/// p95 of numeric metrics: one ALIGN_NONE call per metric type (no alignment period, no
/// reducer), the nearest-rank 95th percentile of each resource's samples in the period; a
/// counter's series (one per disk) added up per sample time, then ÷ sample_interval.
#[tokio::test]
async fn p95_of_numeric_metrics_is_the_nearest_rank_of_the_raw_samples() {
    let e = env();
    let mut p = small_project();
    let cpu = "compute.googleapis.com/instance/cpu/utilization";
    // 1001: 20 samples in the newest 1200 s period, 1 % … 20 % in a shuffled order; the
    // older period's samples (at and before its end, 1200 s ago) are 99 %.
    let mut s1001: Vec<(i64, Value)> = (0..20)
        .map(|k| (60 * k, double(((k * 7) % 20 + 1) as f64 / 100.0)))
        .collect();
    s1001.extend((20..40).map(|k| (60 * k, double(0.99))));
    // 1002: 5 samples only: the 95th percentile of 5 is their largest.
    let s1002: Vec<(i64, Value)> = [0.3, 0.1, 0.5, 0.2, 0.4]
        .iter()
        .enumerate()
        .map(|(k, v)| (60 * k as i64, double(*v)))
        .collect();
    p.raw.insert(
        cpu.into(),
        vec![
            (gce_labels(P, "us-central1-a", 1001), s1001),
            (gce_labels(P, "us-central1-a", 1002), s1002),
            // Not in the inventory: dropped.
            (gce_labels(P, "us-central1-a", 9999), vec![(0, double(0.5))]),
        ],
    );
    // Two disks of 1001: ops per 60 s sample.
    let disk_a = |k: i64| 60 * (k + 1);
    let disk_b = |k: i64| 60 * ((3 * k) % 20);
    let read_ops = "compute.googleapis.com/instance/disk/read_ops_count";
    p.raw.insert(
        read_ops.into(),
        vec![
            (
                gce_labels(P, "us-central1-a", 1001),
                (0..20).map(|k| (60 * k, int64(disk_a(k)))).collect(),
            ),
            (
                gce_labels(P, "us-central1-a", 1001),
                (0..20).map(|k| (60 * k, int64(disk_b(k)))).collect(),
            ),
        ],
    );
    p.raw.insert(
        "cloudsql.googleapis.com/database/cpu/utilization".into(),
        vec![(
            json!({"project_id": P, "database_id": format!("{P}:db-1"), "region": "us-central"}),
            vec![(0, double(0.42)), (60, double(0.40))],
        )],
    );
    // The 1st-gen function's p95 is Monitoring's own (a distribution).
    p.series.insert(
        (
            "cloudfunctions.googleapis.com/function/execution_times".into(),
            "ALIGN_PERCENTILE_95".into(),
        ),
        vec![(
            json!({"project_id": P, "function_name": "hello", "region": "us-central1"}),
            double(30_000_000.0),
        )],
    );
    e.server.set_project(P, p);
    let mut g = e.collector("period = \"1200s\"\nstats = [\"p95\"]");
    let (out, r, end) = collect(&mut g, &["*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let end = end.div_euclid(1200) * 1200;

    let v = point(&out, "cpu.utilization", "1001", Stat::P95);
    // ⌈0.95 × 20⌉ = the 19th smallest: 19 % (the 99 % of the older period left out).
    assert!((v.value - 19.0).abs() < 1e-9, "{}", v.value);
    assert_eq!((v.unit, v.period_s), (Unit::Percent, 1200));
    assert_eq!(v.ts, ts(end));
    let v = point(&out, "cpu.utilization", "1002", Stat::P95);
    assert!((v.value - 50.0).abs() < 1e-9, "{}", v.value);
    assert_eq!(
        out.points
            .iter()
            .filter(|p| p.metric == "cpu.utilization" && p.stat == Stat::P95)
            .count(),
        2 + 1,
        "one point per instance and period (and db-1's)"
    );
    // The disks added up per sample time, then the 19th smallest of the 20 sums, ÷ 60 s.
    let mut sums: Vec<i64> = (0..20).map(|k| disk_a(k) + disk_b(k)).collect();
    sums.sort();
    let v = point(&out, "disk.read_iops", "1001", Stat::P95);
    assert_eq!(
        (v.value, v.unit),
        (sums[18] as f64 / 60.0, Unit::CountPerSecond)
    );
    // (not the sum of each disk's p95, which REDUCE_SUM after a per-series p95 would give)
    assert_ne!(v.value, (disk_a(18) + 60 * 18) as f64 / 60.0);
    let v = point(&out, "cpu.utilization", "db-1", Stat::P95);
    assert!((v.value - 42.0).abs() < 1e-9, "{}", v.value);
    let fid = "projects/test-project/locations/us-central1/functions/hello";
    let v = point(&out, "function.duration", fid, Stat::P95);
    assert_eq!((v.value, v.unit), (30.0, Unit::Milliseconds));

    // One call per metric type (the stat is p95 only); the raw ones without alignment
    // period or reducer.
    let reqs: Vec<Logged> = e
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/timeSeries"))
        .collect();
    let raw: Vec<&Logged> = reqs
        .iter()
        .filter(|r| r.param("aggregation.perSeriesAligner") == Some("ALIGN_NONE"))
        .collect();
    // 10 GCE + 3 SQL metric types.
    assert_eq!(raw.len(), 13);
    for r in &raw {
        assert_eq!(r.param("aggregation.alignmentPeriod"), None);
        assert_eq!(r.param("aggregation.crossSeriesReducer"), None);
        assert_eq!(r.param("aggregation.groupByFields"), None);
    }
    assert!(!reqs.iter().any(|r| r
        .param("aggregation.perSeriesAligner")
        .is_some_and(|a| a == "ALIGN_PERCENTILE_95")
        && !r
            .param("filter")
            .unwrap()
            .contains("function/execution_times")));
    // 13 raw + execution_times p95 + run latencies p95 + 2 totals + 2 levels.
    assert_eq!(reqs.len(), 13 + 1 + 1 + 2 + 2);
}

#[tokio::test]
async fn five_hundred_instances_one_time_series_call_per_metric_type_and_stat() {
    let e = env();
    let mut p = Project {
        machine_types: vec![machine_type("us-central1-a", "n2-standard-4", 4, 16384)],
        ..Default::default()
    };
    let cpu = "compute.googleapis.com/instance/cpu/utilization";
    for i in 0..500u64 {
        let id = 10_000 + i;
        p.instances.push(instance(
            P,
            "us-central1-a",
            id,
            &format!("vm-{i}"),
            "n2-standard-4",
        ));
        let l = gce_labels(P, "us-central1-a", id);
        p.series
            .entry((cpu.into(), "ALIGN_MEAN".into()))
            .or_default()
            .push((l.clone(), double(i as f64 / 1000.0)));
        p.series
            .entry((cpu.into(), "ALIGN_MAX".into()))
            .or_default()
            .push((l, double(i as f64 / 500.0)));
    }
    e.server.set_project(P, p);
    // 200 items (series) a page: 3 pages of instances, 3 of each cpu answer.
    *e.state().page_size.lock().unwrap() = 200;
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.resources.len(), 500);
    let cpu_points: Vec<&Point> = out
        .points
        .iter()
        .filter(|p| p.metric == "cpu.utilization")
        .collect();
    assert_eq!(cpu_points.len(), 1000);
    let v = point(&out, "cpu.utilization", "10250", Stat::Max);
    assert!((v.value - 50.0).abs() < 1e-9);

    let ts_calls: Vec<_> = e
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/timeSeries"))
        .collect();
    let first_pages: Vec<_> = ts_calls
        .iter()
        .filter(|r| r.param("pageToken").is_none())
        .collect();
    // 10 GCE metric types × 2 stats, whatever the number of instances.
    assert_eq!(first_pages.len(), 20);
    let unique: BTreeSet<(String, String)> = first_pages
        .iter()
        .map(|r| {
            (
                r.param("filter").unwrap().to_string(),
                r.param("aggregation.perSeriesAligner").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(unique.len(), 20);
    // Plus pages: cpu avg and max have 500 series = 3 pages each.
    assert_eq!(ts_calls.len(), 20 + 2 * 2);
    assert_eq!(g.calls().get("monitoring.timeSeries.list"), 24);
    assert_eq!(g.calls().get("compute.instances.aggregatedList"), 3);
    assert_eq!(g.calls().get("compute.machineTypes.aggregatedList"), 1);
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn throttled_429_waits_retry_after_then_succeeds() {
    let e = env();
    e.server.set_project(P, small_project());
    e.state().fail("/aggregated/instances", &[(429, Some(1))]);
    let mut g = e.collector("");
    let t0 = std::time::Instant::now();
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(e.state().count("/aggregated/instances"), 2);
    // Both requests count: the API saw two.
    assert_eq!(g.calls().get("compute.instances.aggregatedList"), 2);
    assert_eq!(
        out.resources
            .iter()
            .filter(|r| r.kind == "compute.instance")
            .count(),
        3
    );
}

#[tokio::test]
async fn throttled_past_max_attempts_is_an_error_and_the_rest_goes_on() {
    let e = env();
    e.server.set_project(P, small_project());
    e.state().fail(
        "/aggregated/disks",
        &[(429, Some(0)), (429, Some(0)), (429, Some(0))],
    );
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert_eq!(e.state().count("/aggregated/disks"), 3);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let err = &out.errors[0];
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message.starts_with(
            "compute.disks.aggregatedList stayed throttled (429) after 3 attempts: lower max_concurrency"
        ),
        "{}",
        err.message
    );
    assert_eq!(err.context.get("project").map(String::as_str), Some(P));
    assert!(out.resources.iter().any(|r| r.kind == "compute.instance"));
}

#[tokio::test]
async fn forbidden_403_names_the_permission_and_role_and_the_rest_goes_on() {
    let e = env();
    e.server.set_project(P, small_project());
    e.state().fail("/timeSeries", &[(403, None); 30]);
    e.state()
        .fail("/v1/projects/test-project/instances", &[(403, None)]);
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["cpu.*"]).await;
    r.unwrap();
    let sql = out
        .errors
        .iter()
        .find(|e| e.context.get("api").map(String::as_str) == Some("sql.instances.list"))
        .unwrap();
    assert_eq!(sql.kind, ErrorKind::Permission);
    assert!(
        sql.message.starts_with("sql.instances.list was denied (403): grant the permission cloudsql.instances.list (e.g. the role roles/cloudsql.viewer)"),
        "{}",
        sql.message
    );
    let ts = out
        .errors
        .iter()
        .find(|e| e.context.get("api").map(String::as_str) == Some("monitoring.timeSeries.list"))
        .unwrap();
    assert!(
        ts.message
            .contains("monitoring.timeSeries.list (e.g. the role roles/monitoring.viewer)"),
        "{}",
        ts.message
    );
    assert_eq!(
        ts.context.get("metric").map(String::as_str),
        Some("compute.googleapis.com/instance/cpu/utilization")
    );
    // 403 is not retried; the instances are still there.
    assert_eq!(e.state().count("/v1/projects/test-project/instances"), 1);
    assert!(out.resources.iter().any(|r| r.kind == "compute.instance"));
    assert!(!out.resources.iter().any(|r| r.kind == "database.instance"));
}

#[tokio::test]
async fn unauthorized_401_is_a_clear_auth_error_without_the_token() {
    let e = env();
    e.server.set_project(P, small_project());
    for needle in [
        "/compute/",
        "/clusters",
        "/functions",
        "/v1/projects/test-project/instances",
        "/storage/",
    ] {
        e.state().fail(needle, &[(401, None); 8]);
    }
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["*"]).await;
    // Nothing listed: the collection fails with the first error.
    let err = r.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("GCP rejected the access token (401)"),
        "{}",
        err.message
    );
    for e in out.errors.iter().chain([&err]) {
        assert!(!e.message.contains(TOKEN), "{}", e.message);
        assert!(!e.message.contains("PRIVATE KEY"), "{}", e.message);
    }
    // 401 is not retried.
    assert_eq!(e.state().count("/aggregated/instances"), 1);
}

// ---------------------------------------------------------------- dry run

#[tokio::test]
async fn dry_run_discovers_and_plans_without_time_series_calls() {
    let e = env();
    e.server.set_project(P, small_project());
    let mut g =
        e.collector("dry_run = true\nbilling_export_table = \"b.d.gcp_billing_export_v1_X\"");
    let (out, r, _) = collect(&mut g, &["*"]).await;
    r.unwrap();
    assert_eq!(e.state().count("/timeSeries"), 0);
    assert_eq!(e.state().count("/bigquery/"), 0);
    let planned = |api: &str| {
        out.points
            .iter()
            .find(|p| {
                p.metric == "gcp.planned_calls"
                    && p.labels.get("api").map(String::as_str) == Some(api)
            })
            .map(|p| p.value)
    };
    assert_eq!(planned("monitoring.timeSeries.list"), Some(32.0));
    assert_eq!(planned("compute.instances.aggregatedList"), Some(1.0));
    assert!(out.points.iter().all(|p| p.metric.starts_with("gcp.")));
    assert_eq!(out.resources.len(), 10);
}

// ---------------------------------------------------------------- billed cost

#[tokio::test]
async fn billed_cost_from_the_bigquery_export_every_page() {
    let e = env();
    e.server.set_project(P, Project::default());
    {
        let mut b = e.state().billing.lock().unwrap();
        b.fields = [
            "day", "service", "project", "region", "currency", "resource", "cost", "credits",
        ]
        .map(String::from)
        .to_vec();
        let row = |day: &str, svc: &str, region: Value, res: Value, cost: &str, credits: &str| {
            vec![
                json!(day),
                json!(svc),
                json!(P),
                region,
                json!("USD"),
                res,
                json!(cost),
                json!(credits),
            ]
        };
        b.rows = vec![
            row(
                "2024-03-08",
                "Compute Engine",
                json!("us-central1"),
                json!("//compute.googleapis.com/projects/test-project/zones/us-central1-a/instances/1001"),
                "12.5",
                "-2.5",
            ),
            row("2024-03-08", "Cloud Storage", json!("us"), Value::Null, "0.75", "0"),
            row("2024-03-09", "Tax", Value::Null, Value::Null, "1.1", "0"),
        ];
        b.page_size = 2;
        b.pending_polls = 1;
    }
    let mut g = e.collector(
        "billing_export_table = \"billing-proj.billing_ds.gcp_billing_export_resource_v1_0123AB_4567CD_89EF01\"\ncost = [\"billed\"]",
    );
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.costs.len(), 3);
    let c = &out.costs[0];
    assert_eq!(c.billed_cost, 12.5);
    assert_eq!(c.effective_cost, 10.0);
    assert_eq!(c.billing_currency, "USD");
    assert_eq!(c.charge_period_start, ts(1_709_856_000)); // 2024-03-08
    assert_eq!(c.charge_period_end, ts(1_709_942_400));
    assert_eq!(c.charge_category, ChargeCategory::Usage);
    assert_eq!(c.provider_name, "Google Cloud");
    assert_eq!(c.service_name, "Compute Engine");
    assert_eq!(c.service_category.as_deref(), Some("Compute"));
    assert_eq!(c.sub_account_id.as_deref(), Some(P));
    assert_eq!(c.region_id.as_deref(), Some("us-central1"));
    assert_eq!(
        c.resource_id.as_deref(),
        Some("//compute.googleapis.com/projects/test-project/zones/us-central1-a/instances/1001")
    );
    assert_eq!(c.x_source, CostSource::Billed);
    assert_eq!(out.costs[1].service_category.as_deref(), Some("Storage"));
    assert_eq!(out.costs[1].resource_id, None);
    assert_eq!(out.costs[2].charge_category, ChargeCategory::Tax);
    assert_eq!(out.costs[2].region_id, None);
    // One query; getQueryResults: one poll while running, then page 1 and page 2.
    assert_eq!(g.calls().get("bigquery.jobs.query"), 1);
    assert_eq!(g.calls().get("bigquery.jobs.getQueryResults"), 3);
    let reqs = e.state().requests();
    let q = reqs
        .iter()
        .find(|r| r.method == "POST" && r.path.starts_with("/bigquery/"))
        .unwrap();
    assert_eq!(q.path, "/bigquery/v2/projects/billing-proj/queries");
    let body: Value = serde_json::from_str(&q.body).unwrap();
    assert!(body["query"].as_str().unwrap().contains(
        "FROM `billing-proj.billing_ds.gcp_billing_export_resource_v1_0123AB_4567CD_89EF01`"
    ));
    let gets: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/bigquery/"))
        .collect();
    assert!(gets.iter().all(|r| r.path
        == "/bigquery/v2/projects/billing-proj/queries/job_skymeter_1"
        && r.param("location") == Some("US")));
    assert_eq!(gets[2].param("pageToken"), Some("page-2"));

    // Within billed_every: not read again.
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.costs.is_empty());
    assert_eq!(e.state().count("/bigquery/"), 4);
}

// ------------------------------------------------------------- waste inventory

const GIB: u64 = 1 << 30;

/// small_project plus what waste findings look for: an unattached disk, snapshots, external
/// addresses (unused, used by a VM, used by a forwarding rule, internal, global), forwarding
/// rules and a Cloud NAT gateway.
fn waste_project() -> Project {
    let mut p = small_project();
    p.disks[0]["users"] = json!([format!(
        "https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-a/instances/web-1"
    )]);
    p.disks.push(json!({
        "kind": "compute#disk", "id": "2002", "name": "orphan", "sizeGb": "100",
        "zone": format!("https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-a"),
        "status": "READY",
        "type": format!("https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-a/diskTypes/pd-standard"),
        "creationTimestamp": "2023-06-01T00:00:00.000-07:00"
    }));
    let mut archive = snapshot(P, 3002, "snap-archive", 2002, 100, 2 * GIB);
    archive["snapshotType"] = json!("ARCHIVE");
    archive["storageLocations"] = json!(["us-central1"]);
    p.snapshots = vec![
        snapshot(P, 3001, "snap-old", 2001, 20, 5 * GIB + GIB / 2),
        archive,
    ];
    let vm = format!(
        "https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-a/instances/web-1"
    );
    let rule = format!("https://www.googleapis.com/compute/v1/projects/{P}/regions/us-central1/forwardingRules/web-https");
    let mut internal = address(P, "us-central1", 4004, "internal", "10.0.0.9", None);
    internal["addressType"] = json!("INTERNAL");
    let mut global = address(P, "us-central1", 4005, "global-unused", "34.2.2.2", None);
    global.as_object_mut().unwrap().remove("region");
    p.addresses = vec![
        address(P, "us-central1", 4001, "unused", "34.1.1.9", None),
        address(P, "us-central1", 4002, "web-ip", "34.1.2.3", Some(&vm)),
        address(P, "us-central1", 4003, "lb-ip", "34.120.1.1", Some(&rule)),
        internal,
        global,
    ];
    let mut psc = forwarding_rule(P, "us-central1", 5003, "psc", "", "serviceAttachments/x");
    psc.as_object_mut().unwrap().remove("loadBalancingScheme");
    let mut ilb = forwarding_rule(P, "us-central1", 5002, "ilb", "INTERNAL", "x");
    ilb.as_object_mut().unwrap().remove("target");
    ilb["backendService"] = json!(format!(
        "https://www.googleapis.com/compute/v1/projects/{P}/regions/us-central1/backendServices/be"
    ));
    p.forwarding_rules = vec![
        forwarding_rule(
            P,
            "us-central1",
            5001,
            "web-https",
            "EXTERNAL_MANAGED",
            "targetHttpsProxies/web",
        ),
        ilb,
        psc,
    ];
    p.routers = vec![router(P, "us-central1", 6001, "rt-1", "nat-1")];
    p
}

#[tokio::test]
async fn waste_kinds_are_inventoried_with_the_shared_attributes() {
    let e = env();
    e.server.set_project(P, waste_project());
    *e.state().page_size.lock().unwrap() = 2;
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let by = |kind: &str, id: &str| {
        out.resources
            .iter()
            .find(|r| r.kind == kind && r.id == id)
            .unwrap_or_else(|| panic!("no {kind} {id}"))
    };
    let ids = |kind: &str| -> Vec<&str> {
        let mut v: Vec<&str> = out
            .resources
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.id.as_str())
            .collect();
        v.sort();
        v
    };
    // Disks: attached_to is the first user; absent when detached.
    let web = by("storage.volume", "2001");
    assert!(attr(web, "attached_to")
        .as_str()
        .unwrap()
        .ends_with("/instances/web-1"));
    assert_eq!(attr(web, "created"), "2024-01-15T16:30:00Z");
    let orphan = by("storage.volume", "2002");
    assert_eq!(attr(orphan, "attached_to"), &Value::Null);
    assert_eq!(attr(orphan, "size_gib"), 100);
    assert_eq!(attr(orphan, "volume_type"), "pd-standard");

    // Snapshots: billed size from storageBytes, the disk's size beside it.
    let snap = by("storage.snapshot", "3001");
    assert_eq!(snap.native_type, "compute.googleapis.com/Snapshot");
    assert_eq!(snap.region, "us-central1");
    assert_eq!(snap.name, "snap-old");
    assert_eq!(attr(snap, "size_gib"), 5.5);
    assert_eq!(attr(snap, "source_size_gib"), 20);
    assert_eq!(attr(snap, "created"), "2025-01-10T09:00:00Z");
    assert_eq!(attr(snap, "volume_id"), "2001");
    assert_eq!(attr(snap, "state"), "ready");
    assert_eq!(attr(snap, "storage_tier"), "standard");
    assert_eq!(attr(snap, "storage_location"), "us");
    assert_eq!(snap.tags.get("env").map(String::as_str), Some("prod"));
    let arch = by("storage.snapshot", "3002");
    assert_eq!(attr(arch, "storage_tier"), "archive");
    assert_eq!(attr(arch, "size_gib"), 2);

    // External addresses only; global ones in region `global`.
    assert_eq!(ids("network.public_ip"), ["4001", "4002", "4003", "4005"]);
    let unused = by("network.public_ip", "4001");
    assert_eq!(unused.native_type, "compute.googleapis.com/Address");
    assert_eq!(attr(unused, "associated"), false);
    assert_eq!(attr(unused, "attached_to"), &Value::Null);
    assert_eq!(attr(unused, "public_ip"), "34.1.1.9");
    assert_eq!(attr(unused, "state"), "reserved");
    let used = by("network.public_ip", "4002");
    assert_eq!(attr(used, "associated"), true);
    assert!(attr(used, "attached_to")
        .as_str()
        .unwrap()
        .ends_with("/instances/web-1"));
    assert_eq!(by("network.public_ip", "4005").region, "global");

    // Forwarding rules with a load-balancing scheme; the PSC rule is left out.
    assert_eq!(ids("network.load_balancer"), ["5001", "5002"]);
    let https = by("network.load_balancer", "5001");
    assert_eq!(https.native_type, "compute.googleapis.com/ForwardingRule");
    assert_eq!(attr(https, "lb_type"), "application");
    assert_eq!(attr(https, "scheme"), "external");
    assert_eq!(attr(https, "public_ip"), "34.120.1.1");
    assert_eq!(attr(https, "frontends"), 1);
    let ilb = by("network.load_balancer", "5002");
    assert_eq!(attr(ilb, "lb_type"), "network");
    assert_eq!(attr(ilb, "scheme"), "internal");
    assert_eq!(attr(ilb, "public_ip"), &Value::Null);
    assert!(attr(ilb, "target")
        .as_str()
        .unwrap()
        .ends_with("/backendServices/be"));

    // Cloud NAT: one per router NAT.
    let nat = by("network.nat_gateway", "us-central1/rt-1/nat-1");
    assert_eq!(nat.name, "nat-1");
    assert_eq!(attr(nat, "router"), "rt-1");
    assert_eq!(attr(nat, "allocation"), "auto_only");

    // Every page: 5 addresses at 2 a page = 3 calls; 3 rules = 2; 2 snapshots = 1.
    assert_eq!(g.calls().get("compute.snapshots.list"), 1);
    assert_eq!(g.calls().get("compute.addresses.aggregatedList"), 3);
    assert_eq!(g.calls().get("compute.forwardingRules.aggregatedList"), 2);
    assert_eq!(g.calls().get("compute.routers.aggregatedList"), 1);
    let reqs = e.state().requests();
    let snaps = reqs
        .iter()
        .find(|r| r.path.ends_with("/global/snapshots"))
        .unwrap();
    assert_eq!(
        snaps.path,
        format!("/compute/v1/projects/{P}/global/snapshots")
    );
    assert_eq!(snaps.param("maxResults"), Some("500"));
}

#[tokio::test]
async fn waste_kinds_are_priced_and_a_denied_list_names_its_permission() {
    let e = env();
    e.server.set_project(P, waste_project());
    let table = json!({
        "date": "2026-11-01", "currency": "USD", "source": "test",
        "regions": {
            "us-central1": {
                "pd/pd-balanced": {"usd": 0.1, "per": "GiB-month"},
                "pd/pd-standard": {"usd": 0.04, "per": "GiB-month"},
                "snapshot/standard/multiregional": {"usd": 0.065, "per": "GiB-month"},
                "snapshot/archive": {"usd": 0.019, "per": "GiB-month"},
                "address/unused": {"usd": 0.01, "per": "hour"},
                "address/in-use": {"usd": 0.005, "per": "hour"},
                "lb/forwarding-rule": {"usd": 0.025, "per": "hour"}
            }
        }
    });
    let file = e._dir.path().join("gcp-prices.json");
    std::fs::write(&file, table.to_string()).unwrap();
    let mut g = e.collector(&format!(
        "cost = [\"estimated\"]\nprices_file = {:?}",
        file.to_str().unwrap()
    ));
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    let hours = 300.0 / 3600.0;
    let cost = |id: &str, sku: &str| -> f64 {
        out.costs
            .iter()
            .find(|c| c.resource_id.as_deref() == Some(id) && c.sku_id.as_deref() == Some(sku))
            .unwrap_or_else(|| panic!("no {sku} line for {id}: {:#?}", out.costs))
            .billed_cost
    };
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
    close(
        cost("3001", "us-central1/snapshot/standard/multiregional"),
        5.5 * hours / 730.0 * 0.065,
    );
    close(
        cost("3002", "us-central1/snapshot/archive"),
        2.0 * hours / 730.0 * 0.019,
    );
    close(cost("4001", "us-central1/address/unused"), hours * 0.01);
    close(cost("4002", "us-central1/address/in-use"), hours * 0.005);
    close(
        cost("5001", "us-central1/lb/forwarding-rule"),
        hours * 0.025,
    );
    close(
        cost("5002", "us-central1/lb/forwarding-rule"),
        hours * 0.025,
    );
    close(
        cost("2002", "us-central1/pd/pd-standard"),
        100.0 * hours / 730.0 * 0.04,
    );
    // The address of a forwarding rule is free; NAT gateways are not estimated.
    assert!(!out
        .costs
        .iter()
        .any(|c| c.resource_id.as_deref() == Some("4003")));
    assert!(!out
        .costs
        .iter()
        .any(|c| c.resource_id.as_deref() == Some("us-central1/rt-1/nat-1")));
    // The global address: the table has no `global` row.
    let errors: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no prices for region global at all")),
        "{errors:#?}"
    );

    // A denied snapshots list names its permission and role; the rest goes on.
    e.state().fail("/global/snapshots", &[(403, None)]);
    let mut g = e.collector("");
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    let msgs: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("compute.snapshots.list") && m.contains("roles/compute.viewer")),
        "{msgs:#?}"
    );
    assert!(out.resources.iter().any(|r| r.kind == "network.public_ip"));
    assert!(!out.resources.iter().any(|r| r.kind == "storage.snapshot"));
}

#[tokio::test]
async fn load_balancer_requests_and_processed_bytes_of_lbs_and_nat() {
    let e = env();
    let mut p = waste_project();
    let rule = json!({"project_id": P, "region": "us-central1", "forwarding_rule_name": "web-https",
        "url_map_name": "web", "target_proxy_name": "web-proxy", "backend_target_name": "be",
        "backend_target_type": "BACKEND_SERVICE", "matched_url_path_rule": "UNMATCHED",
        "backend_name": "ig-1", "backend_type": "INSTANCE_GROUP", "backend_scope": "us-central1-a",
        "backend_scope_type": "ZONE"});
    let nat = json!({"project_id": P, "region": "us-central1", "router_id": "6001", "gateway_name": "nat-1"});
    // A rule of another project's load balancer: not in the inventory, dropped.
    let mut other = rule.clone();
    other["forwarding_rule_name"] = json!("elsewhere");
    for (metric, labels, v) in [
        (
            "loadbalancing.googleapis.com/https/request_count",
            &rule,
            1200,
        ),
        (
            "loadbalancing.googleapis.com/https/request_count",
            &other,
            5,
        ),
        (
            "loadbalancing.googleapis.com/https/request_bytes_count",
            &rule,
            50_000,
        ),
        (
            "loadbalancing.googleapis.com/https/response_bytes_count",
            &rule,
            2_000_000,
        ),
        ("router.googleapis.com/nat/sent_bytes_count", &nat, 7_000),
        (
            "router.googleapis.com/nat/received_bytes_count",
            &nat,
            9_000,
        ),
    ] {
        p.series
            .entry((metric.into(), "ALIGN_SUM".into()))
            .or_default()
            .push((labels.clone(), int64(v)));
    }
    e.server.set_project(P, p);
    let mut g = e.collector("");
    let (out, r, end) = collect(
        &mut g,
        &[
            "lb.*",
            "network.processed_bytes",
            "network.sent_bytes",
            "network.received_bytes",
        ],
    )
    .await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let value = |id: &str, metric: &str, direction: Option<&str>| -> Vec<f64> {
        out.points
            .iter()
            .filter(|p| {
                p.resource.id == id
                    && p.metric == metric
                    && p.labels.get("direction").map(String::as_str) == direction
            })
            .map(|p| {
                assert_eq!(p.stat, Stat::Sum);
                assert_eq!(p.ts, ts(end));
                p.value
            })
            .collect()
    };
    assert_eq!(value("5001", "lb.requests", None), [1200.0]);
    assert_eq!(
        value("5001", "network.processed_bytes", Some("in")),
        [50_000.0]
    );
    assert_eq!(
        value("5001", "network.processed_bytes", Some("out")),
        [2_000_000.0]
    );
    let nat_id = "us-central1/rt-1/nat-1";
    assert_eq!(value(nat_id, "network.sent_bytes", None), [7_000.0]);
    assert_eq!(value(nat_id, "network.received_bytes", None), [9_000.0]);
    // The internal rule is not an Application load balancer: no https_lb_rule series.
    assert!(!out.points.iter().any(|p| p.resource.id == "5002"));
    let unit = out
        .points
        .iter()
        .find(|p| p.metric == "network.processed_bytes")
        .unwrap()
        .unit;
    assert_eq!(unit, Unit::Bytes);
    // One paged call per metric type, summed per rule / gateway by their key labels.
    let reqs = e.state().requests();
    let calls: Vec<&Logged> = reqs
        .iter()
        .filter(|r| r.path.ends_with("/timeSeries"))
        .collect();
    assert_eq!(calls.len(), 5);
    let lb = calls
        .iter()
        .find(|r| r.param("filter").unwrap().contains("https/request_count"))
        .unwrap();
    assert!(lb
        .param("filter")
        .unwrap()
        .contains("resource.type = \"https_lb_rule\""));
    assert_eq!(lb.param("aggregation.perSeriesAligner"), Some("ALIGN_SUM"));
    assert_eq!(
        lb.param("aggregation.crossSeriesReducer"),
        Some("REDUCE_SUM")
    );
    let groups: Vec<&str> = lb
        .query
        .iter()
        .filter(|(k, _)| k == "aggregation.groupByFields")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        groups,
        [
            "resource.labels.region",
            "resource.labels.forwarding_rule_name"
        ]
    );
}

#[tokio::test]
async fn stand_in_refuses_more_than_500_results_a_page() {
    let e = env();
    e.server.set_project(P, waste_project());
    let http = reqwest::Client::new();
    for (n, want) in [("500", 200), ("501", 400)] {
        let resp = http
            .get(format!(
                "{}/compute/v1/projects/{P}/aggregated/addresses?maxResults={n}",
                e.server.url
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "maxResults={n}");
    }
}

// ------------------------------------------------------------- estimated cost

#[tokio::test]
async fn estimated_costs_price_the_inventory_and_name_missing_prices() {
    let e = env();
    e.server.set_project(P, small_project());
    let table = json!({
        "date": "2026-11-01", "currency": "USD", "source": "test",
        "regions": {
            "us-central1": {
                "gce/e2/vcpu": {"usd": 0.02, "per": "hour"},
                "gce/e2/memory": {"usd": 0.003, "per": "GiB-hour"},
                "pd/pd-balanced": {"usd": 0.1, "per": "GiB-month"},
                "gke/regional": {"usd": 0.1, "per": "hour"}
            },
            "europe-west1": {
                "gce/e2/vcpu": {"usd": 0.022, "per": "hour"}
            }
        }
    });
    let file = e._dir.path().join("gcp-prices.json");
    std::fs::write(&file, table.to_string()).unwrap();
    let mut g = e.collector(&format!(
        "cost = [\"estimated\"]\nprices_file = {:?}",
        file.to_str().unwrap()
    ));
    let (out, r, end) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    let hours = 300.0 / 3600.0;
    let line = |id: &str, sku: &str| {
        out.costs
            .iter()
            .find(|c| c.resource_id.as_deref() == Some(id) && c.sku_id.as_deref() == Some(sku))
            .unwrap_or_else(|| panic!("no {sku} line for {id}: {:#?}", out.costs))
    };
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
    for id in ["1001", "1002"] {
        let vcpu = line(id, "us-central1/gce/e2/vcpu");
        close(vcpu.billed_cost, 2.0 * hours * 0.02);
        close(vcpu.pricing_quantity.unwrap(), 2.0 * hours);
        assert_eq!(vcpu.pricing_unit.as_deref(), Some("vCPU-Hours"));
        assert_eq!(vcpu.x_source, CostSource::Estimated);
        assert_eq!(vcpu.x_price_date.as_deref(), Some("2026-11-01"));
        assert_eq!(vcpu.provider_name, "Google Cloud");
        assert_eq!(vcpu.service_name, "Compute Engine");
        assert_eq!(vcpu.sub_account_id.as_deref(), Some(P));
        assert_eq!(vcpu.charge_period_end, ts(end));
        assert_eq!(vcpu.tags.get("env").map(String::as_str), Some("prod"));
        close(
            line(id, "us-central1/gce/e2/memory").billed_cost,
            8.0 * hours * 0.003,
        );
    }
    let disk = line("2001", "us-central1/pd/pd-balanced");
    close(disk.billed_cost, 20.0 * hours / 730.0 * 0.1);
    assert_eq!(disk.service_category.as_deref(), Some("Storage"));
    close(
        line("us-central1/gke-1", "us-central1/gke/regional").billed_cost,
        hours * 0.1,
    );
    assert_eq!(out.costs.len(), 6, "{:#?}", out.costs);
    // batch-1 is custom-4-8192 (N1 custom) in europe-west1, which the table lacks: one
    // error per missing price, naming the command that fetches it.
    let errors: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(
        |e| e.contains("skymeter prices gcp update --regions europe-west1")
            && e.contains("N1-CUSTOM")
    ));

    // cost = [] turns it off.
    let mut g = e.collector("cost = []");
    let (out, r, _) = collect(&mut g, &["none.*"]).await;
    r.unwrap();
    assert!(out.costs.is_empty());
}

#[tokio::test]
async fn billed_needs_the_export_table() {
    let e = env();
    let text = format!(
        "projects = [\"{P}\"]\ncredentials_file = {:?}\ncost = [\"billed\"]",
        e.key.to_str().unwrap()
    );
    let err = with_raw(&text, |raw| Gcp::from_raw(raw).err().expect("fails"));
    assert!(
        err.to_string().contains("set `billing_export_table`"),
        "{err}"
    );
    let err = config_error("cost = [\"guessed\"]");
    assert!(
        err.to_string().contains("allowed: estimated, billed"),
        "{err}"
    );
}

fn catalog_sku(
    id: &str,
    description: &str,
    family: &str,
    unit: &str,
    nanos: i64,
    regions: &[&str],
) -> Value {
    json!({
        "name": format!("services/6F81-5844-456A/skus/{id}"),
        "skuId": id,
        "description": description,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family, "resourceGroup": "G", "usageType": "OnDemand"},
        "serviceRegions": regions,
        "pricingInfo": [{
            "effectiveTime": "2026-11-01T00:00:00Z", "summary": "",
            "pricingExpression": {
                "usageUnit": unit, "usageUnitDescription": "", "baseUnit": "s",
                "baseUnitConversionFactor": 3600, "displayQuantity": 1,
                "tieredRates": [{"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": nanos}}]
            },
            "currencyConversionRate": 1
        }],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "REGIONAL", "regions": regions}
    })
}

#[tokio::test]
async fn prices_update_reads_every_sku_page() {
    let e = env();
    {
        let mut skus = e.state().skus.lock().unwrap();
        skus.insert(
            "6F81-5844-456A".into(),
            vec![
                catalog_sku(
                    "A",
                    "E2 Instance Core running in Americas",
                    "Compute",
                    "h",
                    21_811_000,
                    &["us-central1", "us-east1"],
                ),
                catalog_sku(
                    "B",
                    "E2 Instance Ram running in Americas",
                    "Compute",
                    "GiBy.h",
                    2_923_000,
                    &["us-central1"],
                ),
                catalog_sku(
                    "C",
                    "Spot Preemptible E2 Instance Core running in Americas",
                    "Compute",
                    "h",
                    6_543_000,
                    &["us-central1"],
                ),
                catalog_sku(
                    "D",
                    "Balanced PD Capacity in Iowa",
                    "Storage",
                    "GiBy.mo",
                    100_000_000,
                    &["us-central1"],
                ),
                catalog_sku(
                    "E",
                    "N2 Instance Core running in Belgium",
                    "Compute",
                    "h",
                    34_773_000,
                    &["europe-west1"],
                ),
            ],
        );
        skus.insert(
            "CCD8-9BF1-090E".into(),
            vec![catalog_sku(
                "F",
                "Regional Kubernetes Clusters",
                "Compute",
                "h",
                100_000_000,
                &["global"],
            )],
        );
    }
    *e.state().page_size.lock().unwrap() = 2;
    let calls = Arc::new(ApiCallCounts::default());
    let table = prices::fetch_with(
        Some(e.key.to_str().unwrap()),
        Some(&e.server.url),
        &["us-central1".to_string()],
        "2026-12-03",
        calls.clone(),
        &|_, _| {},
    )
    .await
    .unwrap();
    // 5 Compute Engine SKUs in pages of 2, 1 GKE SKU.
    assert_eq!(calls.get("cloudbilling.services.skus.list"), 4);
    assert_eq!(table.date, "2026-12-03");
    let got: Vec<(String, f64, String)> = table.regions["us-central1"]
        .iter()
        .map(|(k, p)| (k.clone(), p.usd, p.per.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("gce/e2/memory".into(), 0.002923, "GiB-hour".into()),
            ("gce/e2/vcpu".into(), 0.021811, "hour".into()),
            ("gke/regional".into(), 0.1, "hour".into()),
            ("pd/pd-balanced".into(), 0.1, "GiB-month".into()),
        ]
    );
    assert_eq!(table.regions.len(), 1);
    let reqs = e.state().requests();
    let first = reqs.iter().find(|r| r.path.ends_with("/skus")).unwrap();
    assert_eq!(first.path, "/v1/services/6F81-5844-456A/skus");
    assert_eq!(first.param("currencyCode"), Some("USD"));
}

#[tokio::test]
async fn prices_update_keeps_snapshot_address_and_forwarding_rule_skus() {
    let e = env();
    {
        let mut skus = e.state().skus.lock().unwrap();
        let r = &["us-central1"];
        skus.insert(
            "6F81-5844-456A".into(),
            vec![
                catalog_sku(
                    "S1",
                    "Storage PD Snapshot",
                    "Storage",
                    "GiBy.mo",
                    50_000_000,
                    r,
                ),
                catalog_sku(
                    "S2",
                    "Storage PD Snapshot in US",
                    "Storage",
                    "GiBy.mo",
                    65_000_000,
                    r,
                ),
                catalog_sku(
                    "S3",
                    "Archive Snapshot Early Deletion",
                    "Storage",
                    "GiBy.mo",
                    19_000_000,
                    r,
                ),
                catalog_sku("N1", "Static Ip Charge", "Network", "h", 10_000_000, r),
                catalog_sku(
                    "N2",
                    "External IP Charge on a Standard VM",
                    "Network",
                    "h",
                    5_000_000,
                    r,
                ),
                catalog_sku(
                    "N3",
                    "Network Load Balancing: Forwarding Rule Minimum Service Charge in Americas",
                    "Network",
                    "h",
                    25_000_000,
                    r,
                ),
                catalog_sku(
                    "N4",
                    "Cloud Load Balancer Forwarding Rule Minimum Global",
                    "Network",
                    "h",
                    26_000_000,
                    &["global"],
                ),
            ],
        );
        skus.insert("CCD8-9BF1-090E".into(), vec![]);
    }
    let calls = Arc::new(ApiCallCounts::default());
    let table = prices::fetch_with(
        Some(e.key.to_str().unwrap()),
        Some(&e.server.url),
        &["us-central1".to_string(), "global".to_string()],
        "2026-12-07",
        calls,
        &|_, _| {},
    )
    .await
    .unwrap();
    let got: Vec<(String, f64, String)> = table.regions["us-central1"]
        .iter()
        .map(|(k, p)| (k.clone(), p.usd, p.per.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("address/in-use".into(), 0.005, "hour".into()),
            ("address/unused".into(), 0.01, "hour".into()),
            ("lb/forwarding-rule".into(), 0.025, "hour".into()),
            ("snapshot/standard".into(), 0.05, "GiB-month".into()),
            (
                "snapshot/standard/multiregional".into(),
                0.065,
                "GiB-month".into()
            ),
        ]
    );
    // The global rule's SKU (priced apart here to tell them apart) goes to the `global` row
    // only, not over the regional price.
    let global: Vec<(String, f64)> = table.regions["global"]
        .iter()
        .map(|(k, p)| (k.clone(), p.usd))
        .collect();
    assert_eq!(global, vec![("lb/forwarding-rule".to_string(), 0.026)]);
}

/// The stand-in aligns raw samples to the asked period as Monitoring does: a point at the
/// end of each period with samples, newest first; a reducer merges the series that share
/// the group-by labels and keeps only those labels.
#[test]
fn standin_aligns_and_reduces_raw_samples() {
    // Two series of instance 1 (two interfaces), one of instance 2; one-minute samples over
    // 600 s, and one at the interval's start (left out: the interval is (start, end]).
    let nic = |id: u64, nic: &str| {
        let mut l = gce_labels(P, "us-central1-a", id);
        l["interface"] = json!(nic);
        l
    };
    let samples = |f: fn(i64) -> i64| (0..=10).map(|k| (60 * k, int64(f(k)))).collect();
    let raw: Vec<RawSeries> = vec![
        (nic(1, "nic0"), samples(|k| 60 * (k + 1))),
        (nic(1, "nic1"), samples(|_| 600)),
        (nic(2, "nic0"), samples(|_| 6)),
    ];
    let group_by = vec!["instance_id".to_string()];
    let asked = |aligner, reducer| Alignment {
        kind: "DELTA",
        value_type: "INT64",
        aligner,
        reducer,
        group_by: &group_by,
        start: 10_000 - 600,
        end: 10_000,
        period: 300,
    };
    // ALIGN_RATE per series: nic0 of 1 in (9700, 10000] holds k = 0…4 (60 … 300 bytes),
    // 900 / 300 s; in (9400, 9700] k = 5…9 (360 … 600), 2400 / 300.
    let a = align_raw(&raw, &asked("ALIGN_RATE", ""));
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].points, vec![(10_000, 3.0), (9_700, 8.0)]);
    assert_eq!((a[0].kind, a[0].value_type), ("GAUGE", "DOUBLE"));
    assert_eq!(a[0].labels["interface"], "nic0");
    // Then summed per instance: 1's two interfaces, 2 alone; labels only instance_id.
    let r = align_raw(&raw, &asked("ALIGN_RATE", "REDUCE_SUM"));
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].labels, json!({"instance_id": "1"}));
    assert_eq!(r[0].points, vec![(10_000, 3.0 + 10.0), (9_700, 8.0 + 10.0)]);
    assert_eq!(r[1].points, vec![(10_000, 0.1), (9_700, 0.1)]);
    // ALIGN_MAX keeps INT64; ALIGN_SUM of a DELTA metric stays DELTA.
    let m = align_raw(&raw, &asked("ALIGN_MAX", ""));
    assert_eq!(m[0].points, vec![(10_000, 300.0), (9_700, 600.0)]);
    assert_eq!((m[0].kind, m[0].value_type), ("GAUGE", "INT64"));
    let s = align_raw(&raw, &asked("ALIGN_SUM", ""));
    assert_eq!(s[0].points, vec![(10_000, 900.0), (9_700, 2400.0)]);
    assert_eq!(s[0].kind, "DELTA");
    // A gauge's mean; an aligner the stand-in does not compute answers nothing.
    let g: Vec<RawSeries> = vec![(
        gce_labels(P, "us-central1-a", 1),
        (0..5).map(|k| (60 * k, double(k as f64))).collect(),
    )];
    let mean = Alignment {
        kind: "GAUGE",
        value_type: "DOUBLE",
        aligner: "ALIGN_MEAN",
        ..asked("", "")
    };
    assert_eq!(align_raw(&g, &mean)[0].points, vec![(10_000, 2.0)]);
    let stddev = Alignment {
        aligner: "ALIGN_STDDEV",
        ..mean
    };
    assert!(align_raw(&g, &stddev).is_empty());
}
