//! `skymeter collect azure` through the real binary against a local stand-in of the Azure
//! APIs (no emulator exists): the token endpoint over TLS, ARM lists with paging, getBatch
//! and Cost Management, in the shapes of the official REST references. Credentials come
//! from the AZURE_* environment variables, as a new user would set them.
#![cfg(feature = "azure")]

mod common;

use common::*;
use std::process::Command;

use skymeter_plugins::collectors::azure::standin::{self, Mock, Spec};

fn standin(spec: Spec) -> (tokio::runtime::Runtime, Mock) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = rt.block_on(Mock::start(spec));
    (rt, m)
}

fn collect(m: &Mock, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["collect", "azure", "--period", "300s"])
        .args(["--set", &format!("subscriptions=[\"{}\"]", standin::SUB)])
        .args(["--set", &format!("authority_host={}", m.login)])
        .args(["--set", &format!("resource_manager_endpoint={}", m.arm)])
        .args([
            "--set",
            &format!("metrics_endpoint={}", m.metrics_endpoint()),
        ])
        .args(["--set", &format!("ca_file={}", m.ca_file.display())])
        .args(["--set", "delay=0s"])
        .args(args)
        .env("AZURE_TENANT_ID", standin::TENANT)
        .env("AZURE_CLIENT_ID", standin::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", standin::CLIENT_SECRET)
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_AUTHORITY_HOST")
        .env_remove("SKYMETER_LOG")
        .output()
        .unwrap()
}

#[test]
fn collect_azure_table_shows_vms_cpu_and_api_calls() {
    let (_rt, m) = standin(Spec::default());
    let o = collect(&m, &["--format", "table"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(!out.contains(standin::CLIENT_SECRET) && !stderr(&o).contains(standin::CLIENT_SECRET));
    let summary = out.split("\nsummary\n").nth(1).expect("a summary table");
    for i in 0..3 {
        let id = standin::vm_id(i);
        let row = summary
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in\n{summary}"));
        let cells: Vec<&str> = row.split('┆').map(|c| c.trim_matches(['│', ' '])).collect();
        assert_eq!(cells[0], "compute.instance", "{row}");
        assert_eq!(cells[2], format!("vm-{i:04}"), "{row}");
        assert_eq!(cells[3], "Standard_D2s_v3", "{row}");
        assert_eq!(cells[4], "running", "{row}");
        assert_eq!(
            cells[5],
            format!("{:.1}", 10.0 + i as f64),
            "cpu avg: {row}"
        );
        assert_eq!(
            cells[6],
            format!("{:.1}", 30.0 + i as f64),
            "cpu max: {row}"
        );
    }
    for kind in [
        "storage.volume",
        "k8s.cluster",
        "k8s.node_group",
        "function",
        "database.instance",
        "storage.bucket",
    ] {
        assert!(summary.contains(kind), "{kind} in\n{summary}");
    }
    let run = out
        .lines()
        .find(|l| l.starts_with("run summary: API calls"))
        .expect("a run summary");
    for call in [
        "monitor.metrics.getBatch=",
        "compute.virtualMachines.listAll=2",
        "compute.virtualMachines.listAll.statusOnly=2",
        "costManagement.query.usage=2",
    ] {
        assert!(run.contains(call), "{run}");
    }

    // JSON: the records, with the billed cost lines.
    let o = collect(&m, &["--format", "json", "--metrics", "cpu.*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_lines(&stdout(&o));
    let vm_cpu = points(&records)
        .into_iter()
        .filter(|p| {
            p["resource"]["id"]
                .as_str()
                .is_some_and(|id| id.contains("virtualMachines"))
        })
        .count();
    assert_eq!(vm_cpu, 6, "3 VMs × avg, max");
    let costs: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "cost" && r["x_source"] == "billed")
        .collect();
    assert_eq!(costs.len(), 3, "{costs:?}");
    assert_eq!(costs[0]["BilledCost"], 2.304);
    assert_eq!(costs[0]["ResourceId"], standin::vm_id(0));
    assert_eq!(costs[0]["ServiceName"], "Virtual Machines");
    assert_eq!(costs[0]["ChargePeriodStart"], "2024-05-01T00:00:00Z");
    assert_eq!(costs[0]["x_source"], "billed");
    // And the estimated lines of the shipped price table: the running VMs, the P10 disk and
    // the Standard-tier AKS cluster.
    let estimated: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "cost" && r["x_source"] == "estimated")
        .collect();
    assert!(estimated
        .iter()
        .any(|c| c["SkuId"] == "eastus/vm/Standard_D2s_v3/linux"));
    assert!(estimated
        .iter()
        .any(|c| c["SkuId"] == "eastus/disk/P10 LRS"));
    assert!(estimated
        .iter()
        .any(|c| c["SkuId"] == "eastus/aks/Standard"));

    // Dry run: the plan, no getBatch.
    let before = m.calls("getBatch");
    let o = collect(&m, &["--dry-run", "--format", "table"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let run = out
        .lines()
        .find(|l| l.starts_with("run summary (dry run: planned)"))
        .expect("a planned run summary");
    // 3 VMs, 1 disk, 1 SQL database, 1 storage account, 1 function app, 1 AKS cluster: 6
    // calls.
    assert!(run.contains("monitor.metrics.getBatch=6"), "{run}");
    assert_eq!(m.calls("getBatch"), before);
}

#[test]
fn metrics_command_lists_the_azure_catalog_with_units() {
    let o = skymeter(&["metrics", "--plugin", "azure"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, unit) in [
        ("cpu.utilization", "percent"),
        ("memory.usage", "percent"),
        ("network.received_throughput", "bytes/s"),
        ("disk.read_iops", "count/s"),
        ("function.invocations", "count"),
        ("azure.api_calls", "count"),
    ] {
        let row = out
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("{name} not in\n{out}"));
        assert!(row.contains(unit), "{row}");
    }
    assert!(out.contains("Percentage CPU"), "{out}");
}

#[test]
fn collect_azure_with_a_wrong_secret_fails_clearly() {
    let (_rt, m) = standin(Spec::default());
    let o = Command::new(bin())
        .args(["collect", "azure"])
        .args(["--set", &format!("subscriptions=[\"{}\"]", standin::SUB)])
        .args(["--set", &format!("authority_host={}", m.login)])
        .args(["--set", &format!("resource_manager_endpoint={}", m.arm)])
        .args(["--set", &format!("ca_file={}", m.ca_file.display())])
        .env("AZURE_TENANT_ID", standin::TENANT)
        .env("AZURE_CLIENT_ID", standin::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", "not-the-secret-123")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("azure"), "{err}");
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(!err.contains("not-the-secret-123"), "{err}");
}

#[test]
fn azure_prices_update_then_show_and_collect_use_the_fetched_table() {
    let (_rt, m) = standin(Spec::default());
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let o = skymeter(&[
        "prices",
        "azure",
        "update",
        "--regions",
        "eastus",
        "--data-dir",
        data,
        "--endpoint-url",
        &m.arm,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["prices"], 10, "{summary}");
    assert_eq!(summary["regions"]["eastus"]["vm"], 4, "{summary}");
    // One call per service filter (VMs, disks, snapshots, public IPs, load balancers, NAT
    // gateways, AKS, …): the stand-in answers each with one page.
    assert_eq!(summary["calls"]["retail.prices.list"], 10, "{summary}");
    let written = data_dir.join("prices/azure.json");
    assert!(written.exists());

    // `show` reads the fetched table (not the shipped one) by default.
    let o = skymeter(&[
        "prices",
        "azure",
        "show",
        "--data-dir",
        data,
        "--region",
        "eastus",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("Retail Prices API"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("vm/Standard_D2s_v3/windows"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("0.188") && row.contains("hour"), "{row}");
    let o = skymeter(&[
        "prices",
        "azure",
        "show",
        "--data-dir",
        data,
        "--region",
        "westus9",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("skymeter prices azure update --regions westus9"));

    // collect reads <data-dir>/prices/azure.json: its date is today's.
    let o = collect(
        &m,
        &[
            "--format",
            "json",
            "--data-dir",
            data,
            "--set",
            "cost=[\"estimated\"]",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_lines(&stdout(&o));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let vm = records
        .iter()
        .find(|r| r["type"] == "cost" && r["SkuId"] == "eastus/vm/Standard_D2s_v3/linux")
        .expect("an estimated VM line");
    assert_eq!(vm["x_price_date"], today.as_str());
    let hours = 300.0 / 3600.0;
    assert!((vm["BilledCost"].as_f64().unwrap() - 0.096 * hours).abs() < 1e-12);

    // A bad region name is a usage error.
    let o = skymeter(&["prices", "azure", "update", "--regions", "East US"]);
    assert_eq!(o.status.code(), Some(2));
}
