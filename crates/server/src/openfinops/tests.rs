//! The mappings on posts shaped as the agents send them (captured from the 0.3.0 agents).

use super::records::Records;
use super::{aws, azure, gcp, generic, Agent};
use chrono::{TimeZone, Utc};
use serde_json::json;

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 9, 4, 44).unwrap()
}

#[test]
fn aws_services_become_the_aws_collectors_kinds_and_failures_errors() {
    let body = json!({"agent_id": "aws-agent-vm", "region": "us-east-1", "services": {
        "ec2": {"instances": [
            {"instance_id": "i-1", "instance_type": "t3.micro", "state": "running",
             "cpu_usage": 42.5, "hourly_cost": 0.0104, "tags": {"Name": "web", "team": "core"},
             "private_ip": null},
            {"instance_id": "i-2", "error": "throttled", "cpu_usage": 0.0}]},
        "eks": {"service": "eks", "error": "AccessDenied"},
        "s3": {"buckets": [{"bucket_name": "b", "size_bytes": 1024, "size_gb": 2.5,
                            "object_count": 3, "monthly_cost": 0.06}]}}});
    let mut out = Records::new(at(), "openfinops/aws");
    aws::map(&body, &mut out);
    assert_eq!(
        out.resources.len(),
        2,
        "the entry with an error is not a resource"
    );
    let i = &out.resources[0];
    assert_eq!(
        (i.kind.as_str(), i.id.as_str(), i.name.as_str()),
        ("compute.instance", "i-1", "web")
    );
    assert_eq!(i.native_type, "AWS::EC2::Instance");
    assert_eq!(i.tags["team"], "core");
    assert!(
        !i.attributes.contains_key("private_ip"),
        "nulls are left out"
    );
    let cpu = out
        .points
        .iter()
        .find(|p| p.metric == "cpu.utilization")
        .unwrap();
    assert_eq!((cpu.value, cpu.period_s), (42.5, 300));
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0].message.contains("AccessDenied"),
        "{:?}",
        out.errors
    );
    // An hour's line, at the hour of the post.
    let ec2 = &out.costs[0];
    assert_eq!(ec2.billed_cost, 0.0104);
    assert_eq!(
        ec2.charge_period_start,
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()
    );
    assert_eq!(ec2.service_name, "Amazon Elastic Compute Cloud");
    assert_eq!(ec2.sku_id.as_deref(), Some("openfinops/ec2/t3.micro"));
    let s3 = &out.costs[1];
    assert!(
        (s3.billed_cost - 2.5 * 0.023 / 720.0).abs() < 1e-15,
        "{}",
        s3.billed_cost
    );
    let batch = out.into_batch("aws-agent-vm", at());
    batch.validate().unwrap();
}

#[test]
fn generic_system_metrics_become_a_host_with_catalog_metrics() {
    let body = json!({"agent_id": "generic-telemetry-vm-1", "metrics": {
        "hostname": "vm", "environment": "on-premise", "collectors": {"system_metrics": {"data": {
            "cpu": {"usage_percent": 1.5, "count": 2, "frequency": null},
            "memory": {"total_bytes": 1000, "available_bytes": 600, "used_bytes": 300,
                       "usage_percent": 40.0, "swap_total": 0, "swap_used": 0, "swap_percent": 0.0},
            "disk": {"total_bytes": 500, "used_bytes": 100, "usage_percent": 20.0},
            "processes": {"count": 97}, "load_average": [1.5, 2.0, 2.5]}},
          "docker_metrics": {"error": "no docker", "healthy": false}}}});
    let mut out = Records::new(at(), "openfinops/generic");
    generic::map(&body, &generic::Counters::default(), &mut out);
    let host = &out.resources[0];
    assert_eq!(
        (host.provider.as_str(), host.kind.as_str(), host.id.as_str()),
        ("host", "host", "vm")
    );
    assert_eq!(host.attributes["vcpus"], 2);
    let value = |m: &str| out.points.iter().find(|p| p.metric == m).map(|p| p.value);
    // Total − available, not psutil's `used`.
    assert_eq!(value("memory.used"), Some(400.0));
    assert_eq!(value("load.15m"), Some(2.5));
    assert_eq!(value("process.count"), Some(97.0));
    let fs = out
        .points
        .iter()
        .find(|p| p.metric == "filesystem.usage")
        .unwrap();
    assert_eq!(fs.labels["mountpoint"], "/");
    assert_eq!(
        out.errors.len(),
        1,
        "the failed docker collector is reported"
    );
    out.into_batch("generic-telemetry-vm-1", at())
        .validate()
        .unwrap();
}

#[test]
fn generic_counters_make_rates_from_the_second_post_on() {
    let counters = generic::Counters::default();
    let post = |ts: f64, recv: f64, read: f64, err_in: f64, err_out: f64| {
        json!({"agent_id": "g", "metrics": {"hostname": "vm", "collectors": {"system_metrics": {"data": {
            "timestamp": ts,
            "disk": {"io": {"read_bytes": read, "write_bytes": 0, "read_count": 0, "write_count": 0}},
            "network": {"bytes_recv": recv, "bytes_sent": 0, "packets_recv": 0, "packets_sent": 0,
                        "errors_in": err_in, "errors_out": err_out}}}}}})
    };
    let rates = |body: serde_json::Value| {
        let mut out = Records::new(at(), "openfinops/generic");
        generic::map(&body, &counters, &mut out);
        out.points
            .iter()
            .filter(|p| p.metric.starts_with("network.") || p.metric.starts_with("disk."))
            .map(|p| (p.metric.to_string(), p.value, p.period_s))
            .collect::<Vec<_>>()
    };
    assert!(
        rates(post(100.0, 1000.0, 0.0, 1.0, 1.0)).is_empty(),
        "one post: no rate yet"
    );
    let second = rates(post(110.0, 6000.0, 2000.0, 3.0, 4.0));
    let get = |m: &str| second.iter().find(|(n, _, _)| n == m).unwrap().clone();
    assert_eq!(
        get("network.received_throughput"),
        ("network.received_throughput".into(), 500.0, 10)
    );
    assert_eq!(get("disk.read_throughput").1, 200.0);
    // Receive and transmit errors add up.
    assert_eq!(get("network.errors").1, 0.5);
    // A counter that went back (a reboot) makes no rate.
    let third = rates(post(120.0, 10.0, 3000.0, 3.0, 4.0));
    assert!(
        third
            .iter()
            .all(|(m, _, _)| m != "network.received_throughput"),
        "{third:?}"
    );
    assert!(third.iter().any(|(m, _, _)| m == "disk.read_throughput"));
}

/// A post of the testdata (see its README): as the agent builds it.
fn post(file: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../testdata/openfinops/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn find<'a>(out: &'a Records, kind: &str, name: &str) -> &'a skymeter_model::Resource {
    out.resources
        .iter()
        .find(|r| r.kind == kind && r.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}: {:#?}", out.resources))
}

#[test]
fn posts_are_told_apart_by_envelope_then_agent_id() {
    let azure = post("azure-ingest.json");
    let gcp = post("gcp-ingest.json");
    assert_eq!(Agent::of(&azure, "x"), Agent::Azure);
    assert_eq!(Agent::of(&gcp, "x"), Agent::Gcp);
    // A collection that failed as a whole: only the agent id tells.
    let failed =
        json!({"agent_id": "gcp-telemetry-p-1", "metrics": {"error": "boom", "timestamp": 1.0}});
    assert_eq!(Agent::of(&failed, "gcp-telemetry-p-1"), Agent::Gcp);
    assert_eq!(
        Agent::of(&json!({"metrics": {"metrics": {}}}), "snowflake-acct-1"),
        Agent::Other
    );
    let mut out = Records::new(at(), "openfinops/gcp");
    gcp::map(&failed, &mut out);
    assert!(out.resources.is_empty());
    assert!(out.errors[0].message.contains("could not collect: boom"));
}

#[test]
fn azure_resources_have_the_azure_collectors_keys() {
    let body = post("azure-ingest.json");
    let sub = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let mut out = Records::new(at(), "openfinops/azure");
    azure::map(&body, &mut out);
    // web-1, the AKS cluster and its two pools, one database, one storage account; the VM
    // the agent could not read and the functions it could not list are not resources.
    assert_eq!(out.resources.len(), 6, "{:#?}", out.resources);
    assert!(out
        .resources
        .iter()
        .all(|r| r.provider == "azure" && r.account == sub));

    let vm = find(&out, "compute.instance", "web-1");
    assert_eq!(
        vm.id,
        format!("/subscriptions/{sub}/resourceGroups/RG-WEB/providers/Microsoft.Compute/virtualMachines/web-1")
    );
    assert_eq!(vm.native_type, "Microsoft.Compute/virtualMachines");
    assert_eq!(vm.region, "westeurope");
    assert_eq!(vm.tags["team"], "web");
    assert_eq!(vm.attributes["instance_type"], "Standard_D2s_v3");
    assert_eq!(vm.attributes["state"], "running");
    assert_eq!(vm.attributes["platform"], "linux");
    assert_eq!(vm.attributes["os_disk_size_gib"], 30);

    let aks = find(&out, "k8s.cluster", "aks-prod");
    let aks_id = format!(
        "/subscriptions/{sub}/resourceGroups/rg-aks/providers/Microsoft.ContainerService/managedClusters/aks-prod"
    );
    assert_eq!(aks.id, aks_id);
    assert_eq!(aks.attributes["status"], "running");
    assert_eq!(aks.attributes["version"], "1.29.2");
    let pool = find(&out, "k8s.node_group", "system");
    assert_eq!(pool.id, format!("{aks_id}/agentPools/system"));
    assert_eq!(
        pool.native_type,
        "Microsoft.ContainerService/managedClusters/agentPools"
    );
    assert_eq!(pool.attributes["instance_type"], "Standard_D4s_v3");
    assert_eq!(pool.attributes["max_nodes"], 5);
    assert_eq!(pool.attributes["platform"], "linux");
    let spot = find(&out, "k8s.node_group", "spot");
    assert_eq!(spot.attributes["autoscaling"], false);
    assert!(!spot.attributes.contains_key("min_nodes"));

    let db = find(&out, "database.instance", "orders");
    assert_eq!(
        db.id,
        format!("/subscriptions/{sub}/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-prod/databases/orders")
    );
    assert_eq!(db.region, "northeurope", "the server's location");
    assert_eq!(db.attributes["engine"], "sqlserver");
    assert_eq!(db.attributes["engine_version"], "12.0");
    assert_eq!(db.attributes["instance_class"], "GP_Gen5_2");
    assert_eq!(db.attributes["status"], "online");
    assert_eq!(db.attributes["server"], "sql-prod");

    let st = find(&out, "storage.bucket", "skymeterlogs");
    assert_eq!(st.native_type, "Microsoft.Storage/storageAccounts");
    assert_eq!(st.attributes["storage_kind"], "StorageV2");
    assert_eq!(st.attributes["sku"], "Standard_LRS");
    assert_eq!(st.attributes["status"], "succeeded");

    // All its utilisation figures are placeholders, and it prices nothing.
    assert!(out.points.is_empty(), "{:?}", out.points);
    assert!(out.costs.is_empty());
    let errors: Vec<&str> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors
        .iter()
        .any(|e| e.contains("could not read azure_functions: (AuthorizationFailed)")));
    assert!(errors
        .iter()
        .any(|e| e.contains("collection cycle") && e.contains("Connection aborted")));
    let functions = out
        .errors
        .iter()
        .find(|e| e.message.contains("azure_functions"))
        .unwrap();
    assert_eq!(functions.plugin, "openfinops/azure");
    assert_eq!(functions.context["service"], "azure_functions");
    out.into_batch("azure-telemetry-x", at())
        .validate()
        .unwrap();
}

#[test]
fn azure_without_a_subscription_takes_the_vms_or_leaves_it_empty() {
    let mut body = post("azure-ingest.json");
    body["metrics"]["subscription_id"] = serde_json::Value::Null;
    let mut out = Records::new(at(), "openfinops/azure");
    azure::map(&body, &mut out);
    let aks = find(&out, "k8s.cluster", "aks-prod");
    assert!(aks.id.starts_with("/subscriptions/6f1b2c3d-"), "{}", aks.id);

    body["metrics"]["virtual_machines"] = json!({"error": "denied"});
    let mut out = Records::new(at(), "openfinops/azure");
    azure::map(&body, &mut out);
    let aks = find(&out, "k8s.cluster", "aks-prod");
    assert_eq!(aks.account, "");
    assert!(
        aks.id.starts_with("/resourceGroups/rg-aks/providers/"),
        "{}",
        aks.id
    );
}

#[test]
fn gcp_resources_have_the_gcp_collectors_keys_and_real_figures_become_points() {
    let body = post("gcp-ingest.json");
    let mut out = Records::new(at(), "openfinops/gcp");
    gcp::map(&body, &mut out);
    // web-1, the GKE cluster and its pool, the function, the Cloud SQL instance, two buckets.
    assert_eq!(out.resources.len(), 7, "{:#?}", out.resources);
    assert!(out
        .resources
        .iter()
        .all(|r| r.provider == "gcp" && r.account == "skymeter-demo"));

    let vm = find(&out, "compute.instance", "web-1");
    assert_eq!(vm.id, "4567890123456789012", "the numeric id, exactly");
    assert_eq!(vm.native_type, "compute.googleapis.com/Instance");
    assert_eq!(vm.region, "us-central1");
    assert_eq!(vm.attributes["availability_zone"], "us-central1-a");
    assert_eq!(vm.attributes["instance_type"], "e2-medium");
    assert_eq!(vm.attributes["state"], "running");
    assert_eq!(
        vm.attributes["network_tags"],
        json!(["http-server", "https-server"])
    );
    assert!(vm.tags.is_empty(), "network tags are not labels");

    let cluster = find(&out, "k8s.cluster", "gke-prod");
    assert_eq!(cluster.id, "us-central1/gke-prod");
    assert_eq!(cluster.attributes["status"], "running");
    let pool = find(&out, "k8s.node_group", "default-pool");
    assert_eq!(pool.id, "us-central1/gke-prod/default-pool");
    assert_eq!(pool.attributes["size_gib"], 100);

    let f = find(&out, "function", "thumbnail");
    assert_eq!(
        f.id,
        "projects/skymeter-demo/locations/us-central1/functions/thumbnail"
    );
    assert_eq!(f.attributes["state"], "active");
    assert_eq!(f.attributes["memory_mb"], 256);

    let db = find(&out, "database.instance", "orders-pg");
    assert_eq!(db.native_type, "sqladmin.googleapis.com/Instance");
    assert_eq!(
        (&db.attributes["engine"], &db.attributes["engine_version"]),
        (&json!("postgres"), &json!("15"))
    );
    assert_eq!(db.attributes["state"], "running");

    let logs = find(&out, "storage.bucket", "skymeter-demo-logs");
    assert_eq!(logs.region, "us-central1");
    assert_eq!(
        find(&out, "storage.bucket", "skymeter-demo-archive").region,
        "us"
    );

    let value = |metric: &str, id: &str| {
        out.points
            .iter()
            .find(|p| p.metric == metric && p.resource.id == id)
            .map(|p| (p.value, p.period_s))
    };
    assert_eq!(
        value("cpu.utilization", "4567890123456789012"),
        Some((12.5, 60))
    );
    assert_eq!(
        value(
            "function.invocations",
            "projects/skymeter-demo/locations/us-central1/functions/thumbnail"
        ),
        Some((42.0, 3600))
    );
    assert_eq!(
        value("storage.size", "skymeter-demo-logs"),
        Some((1536.0, 0))
    );
    assert_eq!(
        value("storage.objects", "skymeter-demo-logs"),
        Some((3.0, 0))
    );
    // A listing cut at 1000 objects is no measurement; placeholders are none either.
    assert_eq!(value("storage.objects", "skymeter-demo-archive"), None);
    assert_eq!(out.points.len(), 4, "{:?}", out.points);
    assert!(out.costs.is_empty());

    // The section read in part: an error, and what it did read is kept.
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(out.errors[0]
        .message
        .contains("could not read cloud_storage: Cloud Storage access denied"));
    out.into_batch("gcp-telemetry-x", at()).validate().unwrap();
}

#[test]
fn gcp_without_a_project_and_with_a_numeric_database_version() {
    let mut body = post("gcp-ingest.json");
    body["metrics"]["project_id"] = json!("unknown-project");
    // A proto-plus enum serializes as its number.
    body["metrics"]["cloud_sql"]["instances"][0]["database_version"] = json!(173);
    let mut out = Records::new(at(), "openfinops/gcp");
    gcp::map(&body, &mut out);
    assert!(out.resources.iter().all(|r| r.account.is_empty()));
    let f = find(&out, "function", "thumbnail");
    assert_eq!(f.id, "locations/us-central1/functions/thumbnail");
    let db = find(&out, "database.instance", "orders-pg");
    assert!(!db.attributes.contains_key("engine"));
    assert_eq!(db.attributes["database_version"], 173);
}
