use super::standin::{self, Mock, Spec};
use super::*;
use chrono::{TimeZone, Utc};
use skymeter_model::{Resource, Window};
use skymeter_plugin_api::config::Source as TomlSource;
use skymeter_plugin_api::{CollectRequest, Collector, ErrorKind, MetricSelection, Output};

fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = TomlSource::new("azure.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    f(&raw)
}

fn collector(text: &str) -> Azure {
    with_raw(text, |raw| Azure::from_raw(raw).expect("builds"))
}

fn config_error(text: &str) -> String {
    with_raw(text, |raw| {
        Azure::from_raw(raw).err().expect("fails").to_string()
    })
}

/// A request whose window ends at a whole 5 minutes: with delay 0 the collector asks for
/// [end − 600 s, end) and emits the one period that ends at `end`.
fn request() -> CollectRequest {
    let end = Utc::now().timestamp().div_euclid(300) * 300;
    CollectRequest {
        window: Window {
            start: Utc.timestamp_opt(end - 300, 0).unwrap(),
            end: Utc.timestamp_opt(end, 0).unwrap(),
        },
        metrics: MetricSelection::new(&[] as &[&str]).unwrap(),
        task: "t".into(),
    }
}

async fn run(m: &Mock, extra: &str) -> (Result<(), PluginError>, Output, Azure) {
    let mut c = collector(&m.config(extra));
    let mut out = Output::default();
    let r = c.collect(&request(), &mut out).await;
    (r, out, c)
}

fn find<'a>(out: &'a Output, kind: &str, name: &str) -> &'a Resource {
    out.resources
        .iter()
        .find(|r| r.kind == kind && r.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", out.resources))
}

fn point(out: &Output, id: &str, metric: &str, stat: Stat) -> Vec<f64> {
    out.points
        .iter()
        .filter(|p| p.resource.id == id && p.metric == metric && p.stat == stat)
        .map(|p| p.value)
        .collect()
}

fn self_metric(out: &Output, name: &str, api: &str) -> Option<f64> {
    out.points
        .iter()
        .find(|p| p.metric == name && p.labels.get("api").map(String::as_str) == Some(api))
        .map(|p| p.value)
}

#[tokio::test]
async fn token_exchange_and_inventory_of_every_type_and_page() {
    let m = Mock::start(Spec::default()).await;
    let (r, out, _) = run(&m, "cost = []").await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);

    // The OAuth2 client-credentials exchange, one per audience (tokens are cached).
    let forms = m.seen.lock().unwrap().token_forms.clone();
    assert_eq!(forms.len(), 2, "{forms:?}");
    let mut scopes: Vec<&str> = forms.iter().map(|f| f["scope"].as_str()).collect();
    scopes.sort();
    assert_eq!(
        scopes,
        [
            "https://management.azure.com/.default",
            "https://metrics.monitor.azure.com/.default"
        ]
    );
    for f in &forms {
        assert_eq!(f["grant_type"], "client_credentials");
        assert_eq!(f["client_id"], standin::CLIENT_ID);
        assert_eq!(f["client_secret"], standin::CLIENT_SECRET);
    }

    // 3 VMs on pages of 2: two list calls for the model, two for the power states; sizes
    // once for the one location.
    assert_eq!(m.calls("vms"), 2);
    assert_eq!(m.calls("vmStatus"), 2);
    assert_eq!(m.calls("vmSizes"), 1);
    let vms: Vec<&Resource> = out
        .resources
        .iter()
        .filter(|r| r.kind == "compute.instance")
        .collect();
    assert_eq!(vms.len(), 3);
    let vm = find(&out, "compute.instance", "vm-0001");
    assert_eq!(vm.provider, "azure");
    assert_eq!(vm.account, standin::SUB);
    assert_eq!(vm.region, "eastus");
    assert_eq!(vm.native_type, "Microsoft.Compute/virtualMachines");
    assert_eq!(vm.id, standin::vm_id(1));
    assert_eq!(vm.tags["env"], "dev");
    let a = &vm.attributes;
    assert_eq!(a["instance_type"], "Standard_D2s_v3");
    assert_eq!(a["vcpus"], 2);
    assert_eq!(a["memory_mib"], 8192);
    assert_eq!(a["state"], "running");
    assert_eq!(a["availability_zone"], "1");
    assert_eq!(a["platform"], "linux");
    assert_eq!(a["launch_time"], "2024-05-01T10:00:00.0000000+00:00");

    let disk = find(&out, "storage.volume", "vm-0000-data");
    // Managed-disk metrics come from the disks' own getBatch call (namespace
    // Microsoft.Compute/disks); the stand-in answers 42 for them.
    let batch = m
        .seen
        .lock()
        .unwrap()
        .batches
        .iter()
        .find(|(_, q)| q["metricnamespace"] == "Microsoft.Compute/disks")
        .cloned()
        .expect("a getBatch call for disks");
    assert_eq!(batch.0, vec![disk.id.clone()]);
    assert_eq!(
        batch.1["metricnames"],
        "Composite Disk Read Bytes/sec,Composite Disk Write Bytes/sec,Composite Disk Read Operations/sec,Composite Disk Write Operations/sec"
    );
    assert_eq!(point(&out, &disk.id, "disk.read_iops", Stat::Avg), [42.0]);
    assert_eq!(
        point(&out, &disk.id, "disk.write_throughput", Stat::Max),
        [42.0]
    );
    assert_eq!(disk.attributes["size_gib"], 128);
    assert_eq!(disk.attributes["volume_type"], "Premium_LRS");
    assert_eq!(disk.attributes["state"], "attached");

    let aks = find(&out, "k8s.cluster", "aks-prod");
    assert_eq!(aks.attributes["version"], "1.29.4");
    assert_eq!(aks.attributes["status"], "running");
    let pool = find(&out, "k8s.node_group", "system");
    assert_eq!(pool.id, format!("{}/agentPools/system", aks.id));
    assert_eq!(pool.attributes["instance_type"], "Standard_D2s_v3");
    assert_eq!(pool.attributes["node_count"], 3);

    // Only the site whose kind contains functionapp.
    let functions: Vec<&str> = out
        .resources
        .iter()
        .filter(|r| r.kind == "function")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(functions, ["fn-orders"]);
    let f = find(&out, "function", "fn-orders");
    assert_eq!(f.attributes["runtime"], "Python|3.11");
    assert_eq!(f.attributes["state"], "running");

    // SQL: servers, then databases; master left out.
    assert_eq!(m.calls("sqlServers"), 1);
    assert_eq!(m.calls("sqlDatabases"), 1);
    let dbs: Vec<&str> = out
        .resources
        .iter()
        .filter(|r| r.kind == "database.instance")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(dbs, ["orders"]);
    let db = find(&out, "database.instance", "orders");
    assert_eq!(db.attributes["instance_class"], "S0");
    assert_eq!(db.attributes["engine"], "sqlserver");
    assert_eq!(db.attributes["engine_version"], "12.0");
    assert_eq!(db.attributes["status"], "online");

    let st = find(&out, "storage.bucket", "stprodlogs");
    assert_eq!(st.attributes["sku"], "Standard_LRS");
    assert_eq!(out.resources.len(), 3 + 1 + 2 + 1 + 1 + 1);
}

#[tokio::test]
async fn vm_metrics_have_exact_values_and_units() {
    let m = Mock::start(Spec::default()).await;
    let (r, out, _) = run(&m, "cost = []\nservices = [\"vm\"]").await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // One getBatch call: 3 VMs, every VM metric name, average and maximum (and minimum for
    // memory usage max).
    assert_eq!(m.calls("getBatch"), 1);
    let (ids, q) = m.seen.lock().unwrap().batches[0].clone();
    assert_eq!(ids.len(), 3);
    assert_eq!(q["metricnamespace"], "Microsoft.Compute/virtualMachines");
    assert_eq!(
        q["metricnames"],
        "Percentage CPU,Available Memory Bytes,Disk Read Operations/Sec,Disk Write Operations/Sec,Disk Read Bytes,Disk Write Bytes,Network In Total,Network Out Total"
    );
    assert_eq!(q["aggregation"], "average,maximum,minimum");
    assert_eq!(q["interval"], "PT5M");
    assert_eq!(q["api-version"], "2023-10-01");

    let end = request().window.end;
    for i in 0..3 {
        let id = standin::vm_id(i);
        assert_eq!(
            point(&out, &id, "cpu.utilization", Stat::Avg),
            [10.0 + i as f64]
        );
        assert_eq!(
            point(&out, &id, "cpu.utilization", Stat::Max),
            [30.0 + i as f64]
        );
        // 4 GiB available of 8 GiB: 50 %; minimum available 2 GiB: max usage 75 %.
        assert_eq!(point(&out, &id, "memory.usage", Stat::Avg), [50.0]);
        assert_eq!(point(&out, &id, "memory.usage", Stat::Max), [75.0]);
        // 6,000 bytes per minute on average = 100 bytes/s; max 12,000 per minute = 200 B/s.
        assert_eq!(
            point(&out, &id, "network.received_throughput", Stat::Avg),
            [100.0]
        );
        assert_eq!(
            point(&out, &id, "disk.write_throughput", Stat::Max),
            [200.0]
        );
    }
    let p = out
        .points
        .iter()
        .find(|p| p.metric == "network.sent_throughput")
        .unwrap();
    assert_eq!(p.unit, Unit::BytesPerSecond);
    assert_eq!(p.period_s, 300);
    assert_eq!(p.ts, end);
    let cpu = out
        .points
        .iter()
        .find(|p| p.metric == "cpu.utilization")
        .unwrap();
    assert_eq!(cpu.unit, Unit::Percent);
    assert_eq!(&*cpu.resource.provider, "azure");
    assert_eq!(&*cpu.resource.account, standin::SUB);
    // 3 VMs × (cpu 2 + memory.available 2 + memory.usage 2 + iops 4 + bytes 8).
    let metric_points = out
        .points
        .iter()
        .filter(|p| !p.metric.starts_with("azure."))
        .count();
    assert_eq!(metric_points, 3 * 18);
}

#[tokio::test]
async fn two_hundred_vms_in_one_region_take_four_get_batch_calls() {
    let m = Mock::start(Spec {
        vms: 200,
        page_size: 100,
        others: false,
        ..Spec::default()
    })
    .await;
    let (r, out, c) = run(&m, "cost = []\nservices = [\"vm\"]").await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(m.calls("vms"), 2);
    assert_eq!(m.calls("vmStatus"), 2);
    assert_eq!(m.calls("getBatch"), 4); // ceil(200 / 50)
    let sizes: Vec<usize> = m
        .seen
        .lock()
        .unwrap()
        .batches
        .iter()
        .map(|b| b.0.len())
        .collect();
    assert_eq!(sizes, [50, 50, 50, 50]);
    assert_eq!(c.calls().get(calls::GET_BATCH), 4);
    assert_eq!(
        self_metric(&out, "azure.api_calls", calls::GET_BATCH),
        Some(4.0)
    );
    assert_eq!(self_metric(&out, "azure.api_calls", calls::VMS), Some(2.0));
    let cpu_avg = out
        .points
        .iter()
        .filter(|p| p.metric == "cpu.utilization" && p.stat == Stat::Avg)
        .count();
    assert_eq!(cpu_avg, 200);
    assert_eq!(
        point(&out, &standin::vm_id(199), "cpu.utilization", Stat::Max),
        [229.0]
    );
}

#[tokio::test]
async fn dry_run_plans_get_batch_calls_without_making_them() {
    let m = Mock::start(Spec {
        vms: 200,
        page_size: 100,
        others: false,
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "services = [\"vm\"]\ndry_run = true").await;
    r.unwrap();
    assert_eq!(m.calls("getBatch"), 0);
    assert_eq!(m.calls("cost"), 0);
    assert_eq!(
        self_metric(&out, "azure.planned_calls", calls::GET_BATCH),
        Some(4.0)
    );
    assert_eq!(
        self_metric(&out, "azure.planned_calls", calls::VMS),
        Some(2.0)
    );
    assert_eq!(out.resources.len(), 200);
    assert!(out.points.iter().all(|p| p.metric.starts_with("azure.")));
}

#[tokio::test]
async fn throttled_get_batch_waits_retry_after_then_succeeds() {
    let m = Mock::start(Spec {
        throttle_first_batch: true,
        others: false,
        ..Spec::default()
    })
    .await;
    let started = std::time::Instant::now();
    let (r, out, _) = run(&m, "cost = []\nservices = [\"vm\"]").await;
    r.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(m.calls("getBatch"), 2);
    assert_eq!(
        self_metric(&out, "azure.api_calls", calls::GET_BATCH),
        Some(2.0)
    );
    assert_eq!(
        point(&out, &standin::vm_id(2), "cpu.utilization", Stat::Avg),
        [12.0]
    );
}

#[tokio::test]
async fn throttling_past_max_attempts_is_one_error_and_inventory_stays() {
    let m = Mock::start(Spec {
        throttle_first_batch: true,
        others: false,
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "cost = []\nservices = [\"vm\"]\nmax_attempts = 1").await;
    r.unwrap();
    assert_eq!(m.calls("getBatch"), 1);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("429"), "{e}");
    assert!(e.message.contains("max_concurrency"), "{e}");
    assert_eq!(e.context["region"], "eastus");
    assert_eq!(out.resources.len(), 3);
}

#[tokio::test]
async fn denied_list_names_the_role_and_action_and_the_rest_goes_on() {
    let m = Mock::start(Spec {
        deny: vec!["Microsoft.Compute/disks".into()],
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "cost = []").await;
    r.unwrap();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(e.message.contains("\"Reader\""), "{e}");
    assert!(e.message.contains("Microsoft.Compute/disks/read"), "{e}");
    assert!(e.message.contains("AuthorizationFailed"), "{e}");
    assert_eq!(e.context["api"], calls::DISKS);
    assert_eq!(e.context["subscription"], standin::SUB);
    assert!(!out.resources.iter().any(|r| r.kind == "storage.volume"));
    assert_eq!(out.resources.len(), 8);
    assert!(out.points.iter().any(|p| p.metric == "cpu.utilization"));
}

#[tokio::test]
async fn vms_without_their_power_states_when_the_status_list_fails() {
    let m = Mock::start(Spec {
        deny: vec!["statusOnly=true".into()],
        others: false,
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "cost = []").await;
    r.unwrap();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert_eq!(out.errors[0].context["api"], calls::VM_STATUS);
    let vm = find(&out, "compute.instance", "vm-0000");
    assert_eq!(vm.attributes["instance_type"], "Standard_D2s_v3");
    assert!(!vm.attributes.contains_key("state"));
    assert_eq!(out.resources.len(), 3);
}

#[tokio::test]
async fn denied_get_batch_names_monitoring_reader() {
    let m = Mock::start(Spec {
        deny: vec!["metrics:getBatch".into()],
        others: false,
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "cost = []").await;
    r.unwrap();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(e.message.contains("\"Monitoring Reader\""), "{e}");
    assert!(e.message.contains("Microsoft.Insights/metrics/read"), "{e}");
    assert_eq!(out.resources.len(), 3);
}

#[tokio::test]
async fn denied_cost_query_names_cost_management_reader() {
    let m = Mock::start(Spec {
        deny: vec!["Microsoft.CostManagement".into()],
        others: false,
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "services = [\"vm\"]").await;
    r.unwrap();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(out.errors[0].message.contains("\"Cost Management Reader\""));
    assert!(out.errors[0]
        .message
        .contains("Microsoft.CostManagement/query/action"));
}

#[tokio::test]
async fn rejected_token_is_an_auth_error() {
    let m = Mock::start(Spec {
        reject_tokens: true,
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(&m, "cost = []").await;
    let e = r.expect_err("nothing could be listed");
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(e.message.contains("401"), "{e}");
    assert!(e.message.contains("InvalidAuthenticationToken"), "{e}");
    assert!(out.resources.is_empty());
}

#[tokio::test]
async fn wrong_client_secret_is_an_auth_error_that_never_shows_the_secret() {
    let m = Mock::start(Spec::default()).await;
    let text = m
        .config("cost = []")
        .replace(standin::CLIENT_SECRET, "wrong-secret-value-xyz");
    let mut c = collector(&text);
    let mut out = Output::default();
    let e = c.collect(&request(), &mut out).await.expect_err("no token");
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(e.message.contains("AADSTS7000215"), "{e}");
    let all = format!("{e} {:?}", out.errors);
    assert!(!all.contains("wrong-secret-value-xyz"), "{all}");
    assert_eq!(m.calls("vms"), 0);
    // verify() says the same.
    let e = c.verify().await.expect_err("no token");
    assert_eq!(e.kind, ErrorKind::Auth);
}

#[tokio::test]
async fn billed_cost_records_from_every_page() {
    let m = Mock::start(Spec::default()).await;
    let (r, out, mut c) = run(&m, "services = [\"vm\"]\ncost = [\"billed\"]").await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(m.calls("cost"), 2);
    let body = m.seen.lock().unwrap().cost_bodies[0].clone();
    assert_eq!(body["type"], "ActualCost");
    assert_eq!(body["timeframe"], "Custom");
    assert_eq!(body["dataset"]["granularity"], "Daily");
    assert_eq!(body["dataset"]["grouping"][0]["name"], "ResourceId");
    assert_eq!(body["dataset"]["grouping"][1]["name"], "ServiceName");
    assert_eq!(
        body["dataset"]["aggregation"]["totalCost"]["function"],
        "Sum"
    );
    // The next page is posted the same body.
    assert_eq!(m.seen.lock().unwrap().cost_bodies[1], body);

    assert_eq!(out.costs.len(), 3);
    let c0 = &out.costs[0];
    let day = |d: u32| Utc.with_ymd_and_hms(2024, 5, d, 0, 0, 0).unwrap();
    assert_eq!(c0.billed_cost, 2.304);
    assert_eq!(c0.effective_cost, 2.304);
    assert_eq!(c0.billing_currency, "USD");
    assert_eq!(c0.charge_period_start, day(1));
    assert_eq!(c0.charge_period_end, day(2));
    assert_eq!(c0.provider_name, "Microsoft");
    assert_eq!(c0.service_name, "Virtual Machines");
    assert_eq!(c0.service_category.as_deref(), Some("Compute"));
    assert_eq!(c0.sub_account_id.as_deref(), Some(standin::SUB));
    // Cost Management's lower-case id, mapped to the inventory's casing.
    assert_eq!(c0.resource_id.as_deref(), Some(standin::vm_id(0).as_str()));
    assert_eq!(
        c0.resource_type.as_deref(),
        Some("Microsoft.Compute/virtualMachines")
    );
    assert_eq!(c0.x_source, skymeter_model::CostSource::Billed);
    assert_eq!(out.costs[1].billed_cost, 1.5);
    assert_eq!(out.costs[1].charge_period_start, day(2));
    let bw = &out.costs[2];
    assert_eq!(bw.service_name, "Bandwidth");
    assert_eq!(bw.service_category.as_deref(), Some("Networking"));
    assert_eq!(bw.resource_id, None);

    // Read again only after billed_every.
    let mut out = Output::default();
    c.collect(&request(), &mut out).await.unwrap();
    assert_eq!(m.calls("cost"), 2);
    assert!(out.costs.is_empty());
}

/// Cost Management answers `204 No Content` (no body) when a query has no rows: zero cost
/// records and no error, and the read counts as done (the next one waits `billed_every`).
#[tokio::test]
async fn cost_query_204_no_content_is_zero_rows_and_no_error() {
    let m = Mock::start(Spec {
        cost_no_content: true,
        ..Spec::default()
    })
    .await;
    // The stand-in really answers 204 without a body.
    let (start, end) = billing::billed_days(Utc::now(), 3);
    let rsp = reqwest::Client::new()
        .post(format!(
            "{}/subscriptions/{}/providers/Microsoft.CostManagement/query?api-version={}",
            m.arm,
            standin::SUB,
            billing::API_VERSION
        ))
        .bearer_auth(standin::ARM_TOKEN)
        .header("content-type", "application/json")
        .body(billing::body(start, end).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status().as_u16(), 204);
    assert!(rsp.bytes().await.unwrap().is_empty());

    let (r, out, mut c) = run(&m, "services = [\"vm\"]\ncost = [\"billed\"]").await;
    r.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.costs.is_empty(), "{:?}", out.costs);
    assert_eq!(out.resources.len(), 3);
    // One query (plus the direct one above), no page after the 204.
    assert_eq!(m.calls("cost"), 2);
    assert_eq!(
        self_metric(&out, "azure.api_calls", calls::COST_QUERY),
        Some(1.0)
    );
    let mut out = Output::default();
    c.collect(&request(), &mut out).await.unwrap();
    assert_eq!(m.calls("cost"), 2);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

#[test]
fn config_is_checked() {
    let base = "subscriptions = [\"8f1c2d3e-4a5b-4c6d-9e7f-0a1b2c3d4e5f\"]\n";
    assert!(config_error("").contains("subscriptions"));
    assert!(config_error("subscriptions = [\"prod\"]").contains("not a subscription id"));
    assert!(config_error(&format!("{base}stats = [\"p99\"]")).contains("unknown stat \"p99\""));
    assert!(config_error(&format!("{base}period = \"7m\"")).contains("Azure Monitor interval"));
    assert!(config_error(&format!("{base}credential = \"magic\"")).contains("managed_identity"));
    assert!(config_error(&format!("{base}services = [\"vmss\"]")).contains("allowed: vm, disk"));
    assert!(config_error(&format!("{base}billed_days = 40")).contains("at most 31"));
    assert!(
        config_error(&format!("{base}authority_host = \"http://127.0.0.1:1\"")).contains("TLS")
    );
    assert!(config_error(&format!("{base}ca_file = \"/nonexistent.pem\"")).contains("cannot read"));
    let c = collector(base);
    assert_eq!(c.config().stats, [Stat::Avg, Stat::Max]);
    assert_eq!(c.provider().services().len(), 10);
}

#[test]
fn window_and_intervals() {
    let w = metrics::metric_window(1000, 1300, 0, 300);
    assert_eq!((w.start, w.end, w.emit_after), (600, 1200, 900));
    assert_eq!(metrics::interval(300), Some("PT5M"));
    assert_eq!(metrics::interval(86400), Some("P1D"));
    assert_eq!(metrics::interval(120), None);
}

#[test]
fn catalog_lists_every_metric_with_its_unit() {
    let infos = crate::cloud::collector::metrics::<AzureCloud>();
    let get = |n: &str| infos.iter().find(|m| m.name == n).unwrap();
    assert_eq!(get("cpu.utilization").unit, Unit::Percent);
    assert_eq!(get("memory.usage").unit, Unit::Percent);
    assert!(get("memory.usage")
        .source
        .contains("Available Memory Bytes"));
    assert_eq!(
        get("network.received_throughput").unit,
        Unit::BytesPerSecond
    );
    assert_eq!(get("function.invocations").stats, [Stat::Sum]);
    assert_eq!(get("azure.api_calls").labels, ["api"]);
}

#[tokio::test]
async fn estimated_costs_price_vms_disks_and_aks_and_name_missing_prices() {
    let m = Mock::start(Spec::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-prices.json");
    // No Windows price: a Windows VM would be reported; the stand-in's are Linux.
    let table = serde_json::json!({
        "date": "2026-11-01", "currency": "USD", "source": "test",
        "regions": {"eastus": {
            "vm/Standard_D2s_v3/linux": {"usd": 0.096, "per": "hour"},
            "disk/P10 LRS": {"usd": 19.71, "per": "month"}
        }}
    });
    std::fs::write(&file, table.to_string()).unwrap();
    let (r, out, _) = run(
        &m,
        &format!(
            "cost = [\"estimated\"]\nprices_file = {:?}",
            file.to_str().unwrap()
        ),
    )
    .await;
    r.unwrap();
    let hours = 300.0 / 3600.0;
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
    let running: Vec<&Resource> = out
        .resources
        .iter()
        .filter(|r| {
            r.kind == "compute.instance"
                && r.attributes.get("state") == Some(&serde_json::json!("running"))
        })
        .collect();
    assert!(!running.is_empty());
    let vm_lines: Vec<_> = out
        .costs
        .iter()
        .filter(|c| c.service_name == "Virtual Machines")
        .collect();
    // One line per running VM, none for the deallocated one.
    assert_eq!(vm_lines.len(), running.len(), "{:#?}", out.costs);
    for c in &vm_lines {
        close(c.billed_cost, hours * 0.096);
        assert_eq!(c.sku_id.as_deref(), Some("eastus/vm/Standard_D2s_v3/linux"));
        assert_eq!(c.provider_name, "Microsoft");
        assert_eq!(c.x_source, skymeter_model::CostSource::Estimated);
        assert_eq!(c.x_price_date.as_deref(), Some("2026-11-01"));
        assert!(running
            .iter()
            .any(|r| Some(&r.id) == c.resource_id.as_ref()));
    }
    // The 128 GiB Premium_LRS disk is a P10.
    let disk = out
        .costs
        .iter()
        .find(|c| c.sku_id.as_deref() == Some("eastus/disk/P10 LRS"))
        .expect("a disk line");
    close(disk.billed_cost, hours / 730.0 * 19.71);
    assert_eq!(disk.pricing_unit.as_deref(), Some("Disk-Months"));
    // The Standard-tier AKS cluster's fee is not in this table: one error saying what to run.
    let errors: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("no AKS Standard tier fee in eastus")
            && errors[0].contains("skymeter prices azure update --regions eastus"),
        "{errors:#?}"
    );
    assert_eq!(m.calls("cost"), 0, "billed is off");
}

#[tokio::test]
async fn prices_update_reads_every_retail_page() {
    let m = Mock::start(Spec::default()).await;
    let calls = Arc::new(crate::common::api_calls::ApiCallCounts::default());
    let table = prices::fetch(
        &m.arm,
        None,
        &["eastus".to_string()],
        "2026-12-03",
        calls.clone(),
        &|_, _| {},
    )
    .await
    .unwrap();
    let got: Vec<(String, f64, String)> = table.regions["eastus"]
        .iter()
        .map(|(k, p)| (k.clone(), p.usd, p.per.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("aks/Premium".into(), 0.6, "hour".into()),
            ("aks/Standard".into(), 0.1, "hour".into()),
            ("disk/E10 LRS".into(), 9.6, "month".into()),
            ("disk/P10 LRS".into(), 19.71, "month".into()),
            ("disk/P20 LRS".into(), 73.22, "month".into()),
            ("disk/S10 LRS".into(), 5.89, "month".into()),
            ("vm/Standard_B1s/linux".into(), 0.0104, "hour".into()),
            ("vm/Standard_D2s_v3/linux".into(), 0.096, "hour".into()),
            ("vm/Standard_D2s_v3/windows".into(), 0.188, "hour".into()),
            ("vm/Standard_D4s_v3/linux".into(), 0.192, "hour".into()),
        ]
    );
    // Pages of 2: VMs 6 items (the reservation is filtered out by priceType) → 3 pages,
    // Premium 2 → 1, Standard SSD 1 → 1, Standard HDD 2 → 1, AKS 2 → 1, and one (empty) page
    // each for public IPs, Load Balancer and NAT Gateway.
    assert_eq!(m.calls("retailPrices"), 10);
    assert_eq!(calls.get(prices::RETAIL_PRICES), 10);
    assert!(table.source.contains("Retail Prices"));
}

#[tokio::test]
async fn prices_update_keeps_snapshot_ip_load_balancer_and_nat_meters() {
    let m = Mock::start(Spec {
        waste: true,
        ..Spec::default()
    })
    .await;
    let calls = Arc::new(crate::common::api_calls::ApiCallCounts::default());
    let table = prices::fetch(
        &m.arm,
        None,
        &["eastus".to_string()],
        "2026-12-03",
        calls.clone(),
        &|_, _| {},
    )
    .await
    .unwrap();
    let got: Vec<(String, f64, String)> = table.regions["eastus"]
        .iter()
        .filter(|(k, _)| !k.starts_with("vm/") && !k.starts_with("disk/") && !k.starts_with("aks/"))
        .map(|(k, p)| (k.clone(), p.usd, p.per.clone()))
        .collect();
    // The IPv6 meter, the free data meter and the Standard SSD snapshot meter are left out.
    assert_eq!(
        got,
        vec![
            ("ip/Basic/Dynamic".into(), 0.004, "hour".into()),
            ("ip/Standard/Static".into(), 0.005, "hour".into()),
            ("lb/Standard".into(), 0.025, "hour".into()),
            ("lb/Standard/data".into(), 0.005, "GB".into()),
            ("lb/Standard/rule".into(), 0.01, "hour".into()),
            ("nat/Standard".into(), 0.045, "hour".into()),
            ("nat/Standard/data".into(), 0.045, "GB".into()),
            ("snapshot/Standard_LRS".into(), 0.05, "GiB-month".into()),
        ]
    );
    // The disk products' pages now hold the snapshot meters too: Standard SSD 2 → 1,
    // Standard HDD 3 → 2; IPs 3 → 2, Load Balancer 4 → 2, NAT 2 → 1.
    assert_eq!(m.calls("retailPrices"), 3 + 1 + 1 + 2 + 1 + 2 + 2 + 1);
    let filters = prices::filters("eastus");
    assert!(filters.iter().any(|(_, f)| f
        == "productName eq 'IP Addresses' and armRegionName eq 'eastus' and priceType eq 'Consumption'"));
    assert!(filters
        .iter()
        .any(|(_, f)| f.starts_with("serviceName eq 'Load Balancer' and ")));
    assert!(filters
        .iter()
        .any(|(_, f)| f.starts_with("productName eq 'NAT Gateway' and ")));
}

/// What the waste findings read, priced from a table of the test's own.
fn waste_table(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("azure-prices.json");
    let table = serde_json::json!({
        "date": "2026-11-01", "currency": "USD", "source": "test",
        "regions": {"eastus": {
            "vm/Standard_D2s_v3/linux": {"usd": 0.096, "per": "hour"},
            "disk/P10 LRS": {"usd": 19.71, "per": "month"},
            "disk/S4 LRS": {"usd": 1.54, "per": "month"},
            "aks/Standard": {"usd": 0.1, "per": "hour"},
            "snapshot/Standard_LRS": {"usd": 0.05, "per": "GiB-month"},
            "ip/Standard/Static": {"usd": 0.005, "per": "hour"},
            "lb/Standard": {"usd": 0.025, "per": "hour"},
            "lb/Standard/rule": {"usd": 0.01, "per": "hour"},
            "nat/Standard": {"usd": 0.045, "per": "hour"}
        }}
    });
    std::fs::write(&file, table.to_string()).unwrap();
    file
}

#[tokio::test]
async fn waste_kinds_are_inventoried_with_the_shared_attributes_and_priced() {
    let m = Mock::start(Spec {
        waste: true,
        ..Spec::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = waste_table(dir.path());
    let (r, out, _) = run(
        &m,
        &format!(
            "cost = [\"estimated\"]\nprices_file = {:?}",
            file.to_str().unwrap()
        ),
    )
    .await;
    r.unwrap();

    // Disks: attached_to from managedBy, absent when unattached; created in UTC.
    let used = find(&out, "storage.volume", "vm-0000-data");
    assert_eq!(used.attributes["attached_to"], standin::vm_id(0));
    assert_eq!(used.attributes["created"], "2024-05-01T10:00:00Z");
    let orphan = find(&out, "storage.volume", "orphan-disk");
    assert!(!orphan.attributes.contains_key("attached_to"));
    assert_eq!(orphan.attributes["state"], "unattached");
    assert_eq!(orphan.attributes["size_gib"], 32);
    assert_eq!(orphan.attributes["volume_type"], "Standard_LRS");
    assert_eq!(orphan.attributes["created"], "2023-02-01T08:00:00Z");

    let snap = find(&out, "storage.snapshot", "snap-old");
    assert_eq!(snap.native_type, "Microsoft.Compute/snapshots");
    assert_eq!(snap.id, standin::snapshot_id("snap-old"));
    assert_eq!(snap.region, "eastus");
    let a = &snap.attributes;
    assert_eq!(a["size_gib"], 128);
    assert_eq!(a["created"], "2024-01-01T00:00:00Z");
    assert_eq!(a["volume_id"], used.id);
    assert_eq!(a["state"], "succeeded");
    assert_eq!(a["storage_tier"], "standard");
    assert_eq!(a["sku"], "Standard_LRS");
    assert_eq!(a["incremental"], true);
    let zrs = find(&out, "storage.snapshot", "snap-zrs");
    assert_eq!(zrs.attributes["created"], "2025-06-01T10:30:00Z");
    assert_eq!(zrs.attributes["storage_tier"], "standard");

    let ip = |name: &str| find(&out, "network.public_ip", name);
    assert_eq!(
        ip("pip-vm").native_type,
        "Microsoft.Network/publicIPAddresses"
    );
    assert_eq!(ip("pip-vm").attributes["associated"], true);
    assert!(ip("pip-vm").attributes["attached_to"]
        .as_str()
        .unwrap()
        .ends_with("/networkInterfaces/vm-0000-nic/ipConfigurations/ipconfig1"));
    assert_eq!(ip("pip-vm").attributes["public_ip"], "20.1.2.3");
    assert_eq!(ip("pip-unused").attributes["associated"], false);
    assert!(!ip("pip-unused").attributes.contains_key("attached_to"));
    assert_eq!(ip("pip-unused").attributes["sku"], "Standard");
    assert_eq!(ip("pip-unused").attributes["allocation"], "Static");
    assert_eq!(ip("pip-basic").attributes["allocation"], "Dynamic");
    assert!(!ip("pip-basic").attributes.contains_key("public_ip"));
    assert!(ip("pip-nat").attributes["attached_to"]
        .as_str()
        .unwrap()
        .ends_with("/natGateways/nat-1"));

    let lb = find(&out, "network.load_balancer", "lb-web");
    assert_eq!(lb.native_type, "Microsoft.Network/loadBalancers");
    assert_eq!(lb.attributes["sku"], "Standard");
    assert_eq!(lb.attributes["lb_type"], "network");
    assert_eq!(lb.attributes["scheme"], "external");
    assert_eq!(lb.attributes["frontends"], 1);
    assert_eq!(lb.attributes["rules"], 7);
    let int = find(&out, "network.load_balancer", "lb-int");
    assert_eq!(int.attributes["scheme"], "internal");
    assert_eq!(int.attributes["rules"], 0);

    let nat = find(&out, "network.nat_gateway", "nat-1");
    assert_eq!(nat.native_type, "Microsoft.Network/natGateways");
    assert_eq!(nat.attributes["public_ips"], 1);
    assert_eq!(nat.attributes["subnets"], 1);
    assert_eq!(nat.attributes["associated"], true);

    // Bytes and packets processed (aggregation total, stat sum), one getBatch per type; the
    // Basic load balancer has no Azure Monitor metrics and is not asked for. NAT gateway
    // bytes are split by direction: Out → network.sent_bytes, In → network.received_bytes.
    let batch = |ns: &str| {
        let batches: Vec<_> = m
            .seen
            .lock()
            .unwrap()
            .batches
            .iter()
            .filter(|(_, q)| q["metricnamespace"] == ns)
            .cloned()
            .collect();
        assert_eq!(batches.len(), 1, "{ns}");
        batches[0].clone()
    };
    let (ids, q) = batch("Microsoft.Network/loadBalancers");
    assert_eq!(ids, vec![lb.id.clone()]);
    assert_eq!(q["metricnames"], "ByteCount,PacketCount");
    assert_eq!(q["aggregation"], "total");
    assert!(!q.contains_key("filter"));
    assert_eq!(
        point(&out, &lb.id, "network.processed_bytes", Stat::Sum),
        [300.0]
    );
    assert_eq!(
        point(&out, &lb.id, "network.processed_packets", Stat::Sum),
        [300.0]
    );
    let (ids, q) = batch("Microsoft.Network/natGateways");
    assert_eq!(ids, vec![nat.id.clone()]);
    assert_eq!(q["metricnames"], "ByteCount");
    assert_eq!(q["filter"], "Direction eq '*'");
    assert_eq!(
        point(&out, &nat.id, "network.sent_bytes", Stat::Sum),
        [200.0]
    );
    assert_eq!(
        point(&out, &nat.id, "network.received_bytes", Stat::Sum),
        [100.0]
    );
    assert!(point(&out, &nat.id, "network.processed_bytes", Stat::Sum).is_empty());
    let p = out
        .points
        .iter()
        .find(|p| p.resource.id == nat.id && p.metric == "network.sent_bytes")
        .unwrap();
    assert_eq!(p.unit, Unit::Bytes);

    // One list call each; 4 public IPs on pages of 2.
    assert_eq!(m.calls("snapshots"), 1);
    assert_eq!(m.calls("publicIps"), 2);
    assert_eq!(m.calls("loadBalancers"), 1);
    assert_eq!(m.calls("natGateways"), 1);

    // Cost lines over the 300 s window.
    let hours = 300.0 / 3600.0;
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
    let line = |name: &str, sku: &str| -> f64 {
        let id = out
            .resources
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.id.clone())
            .unwrap();
        out.costs
            .iter()
            .find(|c| {
                c.resource_id.as_deref() == Some(id.as_str()) && c.sku_id.as_deref() == Some(sku)
            })
            .unwrap_or_else(|| panic!("no {sku} line for {name}: {:#?}", out.costs))
            .billed_cost
    };
    close(
        line("snap-old", "eastus/snapshot/Standard_LRS"),
        128.0 * hours / 730.0 * 0.05,
    );
    close(
        line("orphan-disk", "eastus/disk/S4 LRS"),
        hours / 730.0 * 1.54,
    );
    for name in ["pip-vm", "pip-unused", "pip-nat"] {
        close(line(name, "eastus/ip/Standard/Static"), hours * 0.005);
    }
    close(line("lb-web", "eastus/lb/Standard"), hours * 0.025);
    close(
        line("lb-web", "eastus/lb/Standard/rule"),
        2.0 * hours * 0.01,
    );
    close(line("nat-1", "eastus/nat/Standard"), hours * 0.045);
    // Nothing for the Basic dynamic address without an address, nor the Basic balancer.
    for name in ["pip-basic", "lb-int"] {
        let id = &out.resources.iter().find(|r| r.name == name).unwrap().id;
        assert!(!out.costs.iter().any(|c| c.resource_id.as_ref() == Some(id)));
    }
    // The ZRS snapshot's price is not in the table: one error naming the update command.
    let errors: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("no Standard_ZRS snapshot price per GiB-month in eastus")
            && errors[0].contains("skymeter prices azure update --regions eastus"),
        "{errors:#?}"
    );
}

#[tokio::test]
async fn waste_services_can_be_picked_and_a_denied_list_names_its_action() {
    let m = Mock::start(Spec {
        waste: true,
        deny: vec!["Microsoft.Network/publicIPAddresses".into()],
        ..Spec::default()
    })
    .await;
    let (r, out, _) = run(
        &m,
        "cost = []\nservices = [\"snapshot\", \"public_ip\", \"nat_gateway\"]",
    )
    .await;
    r.unwrap();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(
        e.message
            .contains("Microsoft.Network/publicIPAddresses/read"),
        "{e}"
    );
    assert!(e.message.contains("\"Reader\""), "{e}");
    assert_eq!(e.context["api"], calls::PUBLIC_IPS);
    let mut kinds: Vec<&str> = out.resources.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "network.nat_gateway",
            "storage.snapshot",
            "storage.snapshot"
        ]
    );
    assert_eq!(m.calls("vms"), 0, "{:?}", m.seen.lock().unwrap().calls);
    assert_eq!(m.calls("loadBalancers"), 0);

    let err = config_error(&m.config("services = [\"elastic_ip\"]"));
    assert!(err.contains("nat_gateway"), "{err}");
}

#[tokio::test]
async fn stand_in_refuses_metric_names_a_network_namespace_does_not_define() {
    let m = Mock::start(Spec::default()).await;
    let lb = format!(
        "/subscriptions/{}/resourceGroups/rg-prod/providers/Microsoft.Network/loadBalancers/lb-web",
        standin::SUB
    );
    let end = Utc::now().timestamp().div_euclid(300) * 300;
    let iso = |t: i64| {
        Utc.timestamp_opt(t, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let http = reqwest::Client::new();
    for (ns, names, filter, want) in [
        (
            "Microsoft.Network/loadBalancers",
            "ByteCount,PacketCount",
            None,
            200,
        ),
        (
            "Microsoft.Network/loadBalancers",
            "Network In Total",
            None,
            400,
        ),
        (
            "Microsoft.Network/natGateways",
            "ByteCount",
            Some("Direction eq '*'"),
            200,
        ),
        // A dimension filter on a namespace the stand-in has no dimensions for.
        (
            "Microsoft.Compute/virtualMachines",
            "Percentage CPU",
            Some("Direction eq '*'"),
            400,
        ),
    ] {
        let mut query = vec![
            ("metricnamespace", ns),
            ("metricnames", names),
            ("interval", "PT5M"),
            ("aggregation", "total"),
            ("api-version", "2023-10-01"),
        ];
        if let Some(f) = filter {
            query.push(("filter", f));
        }
        let resp = http
            .post(format!(
                "{}/metrics/eastus/subscriptions/{}/metrics:getBatch",
                m.arm,
                standin::SUB
            ))
            .query(&query)
            .query(&[("starttime", iso(end - 600)), ("endtime", iso(end))])
            .bearer_auth(standin::METRICS_TOKEN)
            .json(&serde_json::json!({ "resourceids": [lb] }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{ns} {names} {filter:?}");
    }
}

#[tokio::test]
async fn stand_in_refuses_arm_calls_without_api_version() {
    let m = Mock::start(Spec::default()).await;
    let url = format!(
        "{}/subscriptions/{}/providers/Microsoft.Network/natGateways",
        m.arm,
        standin::SUB
    );
    let http = reqwest::Client::new();
    let resp = http
        .get(&url)
        .bearer_auth(standin::ARM_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let resp = http
        .get(format!("{url}?api-version={}", inventory::API_NETWORK))
        .bearer_auth(standin::ARM_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn cost_management_throttling_headers_give_the_wait() {
    use reqwest::header::{HeaderMap, HeaderValue};
    let mut h = HeaderMap::new();
    h.insert(
        "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
        HeaderValue::from_static("7"),
    );
    h.insert(
        "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
        HeaderValue::from_static("21"),
    );
    h.insert(
        "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining",
        HeaderValue::from_static("0"),
    );
    assert_eq!(
        client::retry_after(&h),
        Some(std::time::Duration::from_secs(21))
    );
    h.insert("retry-after", HeaderValue::from_static("3"));
    assert_eq!(
        client::retry_after(&h),
        Some(std::time::Duration::from_secs(3))
    );
    assert_eq!(client::retry_after(&HeaderMap::new()), None);
}
