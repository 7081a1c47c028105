//! Findings end to end on Azure, as a user gets them: the stand-in of the Azure APIs
//! (crates/plugins/src/collectors/azure/standin.rs) holds a seeded subscription, `skymeter
//! run --once` collects a day of it with the azure collector into a real `skymeter server`,
//! and `skymeter findings` names exactly the wasteful resources with the kind, the
//! recommended VM size and the monthly amount to the cent from the price table the binary
//! ships.
//!
//! The subscription (eastus): three Linux Standard_D8s_v5 VMs, one idle (CPU ≤ 2 %), one
//! busy, one oversized (p95 CPU 10 %); a 128 GiB Premium SSD attached to nothing and one
//! attached to the busy VM; a Standard static public IP used by nothing and one used by the
//! busy VM's NIC; a 200-day-old snapshot and one made yesterday. Azure Monitor answers a day
//! of 5-minute data points (CPU, available memory, network).
#![cfg(feature = "azure")]

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::*;
use serde_json::Value;
use skymeter_plugins::collectors::azure::standin::{self, Fleet, FleetVm, Mock, Spec};

const REGION: &str = "eastus";
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A time as ARM writes it (seven decimals and an offset).
fn arm_time(t: chrono::DateTime<Utc>) -> String {
    format!(
        "{}0+00:00",
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
            .trim_end_matches('Z')
    )
}

/// The VMs' data points: the value of `metric` and `aggregation` in the 5-minute interval
/// starting at `t` (Unix seconds), by VM name; nothing for other metrics.
fn values(id: &str, metric: &str, aggregation: &str, t: i64) -> Option<f64> {
    let vm = id.rsplit('/').next()?;
    let k = t.div_euclid(300);
    match metric {
        // idle 1.0–1.9 %; busy 40–90 %; oversized at 10 % or less but one interval in 25
        // at 25 %, so its p95 of 5-minute averages is 10 %.
        "Percentage CPU" => {
            let avg = match vm {
                "idle" => 1.0 + (k % 10) as f64 / 10.0,
                "busy" => 40.0 + (k % 51) as f64,
                "oversized" if k % 25 == 0 => 25.0,
                "oversized" => 10.0 - (k % 3) as f64,
                _ => return None,
            };
            Some(match aggregation {
                "maximum" if vm == "busy" => avg + 5.0,
                _ => avg,
            })
        }
        // 28 of 32 GiB free: 12.5 % in use.
        "Available Memory Bytes" => Some(28.0 * GIB),
        // Bytes per minute each way: idle 1 kB/s, the others busy.
        "Network In Total" | "Network Out Total" => Some(match vm {
            "idle" => 60_000.0,
            "busy" => 600_000_000.0,
            _ => 60_000_000.0,
        }),
        _ => None,
    }
}

fn fleet() -> Fleet {
    let vm = |name: &str| FleetVm {
        name: name.into(),
        size: "Standard_D8s_v5".into(),
        running: true,
    };
    let busy = standin::vm_id_named("busy");
    let busy_nic = format!(
        "/subscriptions/{}/resourceGroups/rg-prod/providers/Microsoft.Network/networkInterfaces/busy-nic/ipConfigurations/ipconfig1",
        standin::SUB
    );
    let now = Utc::now();
    let long_ago = arm_time(now - Duration::days(400));
    Fleet {
        vms: vec![vm("idle"), vm("busy"), vm("oversized")],
        disks: vec![
            standin::disk_json(REGION, "orphan", "Premium_LRS", 128, None, &long_ago),
            standin::disk_json(
                REGION,
                "busy-data",
                "Premium_LRS",
                128,
                Some(&busy),
                &long_ago,
            ),
        ],
        snapshots: vec![
            standin::snapshot_json(
                REGION,
                "snap-old",
                "Standard_LRS",
                128,
                &arm_time(now - Duration::days(200)),
            ),
            standin::snapshot_json(
                REGION,
                "snap-new",
                "Standard_LRS",
                128,
                &arm_time(now - Duration::days(1)),
            ),
        ],
        public_ips: vec![
            standin::public_ip_json(
                REGION,
                "pip-free",
                "Standard",
                "Static",
                Some("20.1.2.4"),
                None,
            ),
            standin::public_ip_json(
                REGION,
                "pip-busy",
                "Standard",
                "Static",
                Some("20.1.2.3"),
                Some(("ipConfiguration", &busy_nic)),
            ),
        ],
        values: Some(values),
    }
}

#[test]
fn azure_findings_name_exactly_the_wasteful_resources_with_their_money() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let azure = rt.block_on(Mock::start(Spec {
        others: false,
        fleet: Some(fleet()),
        ..Spec::default()
    }));
    let server = FindingsServer::start();
    server.collect_a_day(
        &format!(
            r#"plugin = "azure", subscriptions = ["{}"], authority_host = "{}", resource_manager_endpoint = "{}", metrics_endpoint = "{}", ca_file = "{}""#,
            standin::SUB,
            azure.login,
            azure.arm,
            azure.metrics_endpoint(),
            azure.ca_file.display()
        ),
        &[
            ("AZURE_TENANT_ID", standin::TENANT),
            ("AZURE_CLIENT_ID", standin::CLIENT_ID),
            ("AZURE_CLIENT_SECRET", standin::CLIENT_SECRET),
        ],
        &["AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"],
    );

    // The amounts, from the table the binary ships (eastus), a month of 730 hours.
    let prices = ShippedPrices::of("azure");
    let price = |key: &str| prices.price(REGION, key);
    // Standard_D8s_v5, Linux: 0.384 × 730.
    let idle = cents(730.0 * price("vm/Standard_D8s_v5/linux"));
    assert_eq!(idle, 280.32);
    // p95 10 % of 8 vCPUs × 1.25 = 1 vCPU, memory 12.5 % of 32 GiB × 1.25 = 5 GiB: the
    // smallest Dsv5, Standard_D2s_v5 (2 vCPUs, 8 GiB) at 0.096 × 730 = 70.08.
    let resize = cents(idle - cents(730.0 * price("vm/Standard_D2s_v5/linux")));
    assert_eq!(resize, 210.24);
    // A 128 GiB Premium SSD is a P10, 19.71 a month.
    let orphan_disk = price("disk/P10 LRS");
    assert_eq!(orphan_disk, 19.71);
    // A Standard static IPv4 address, 0.005 an hour.
    let free_ip = cents(730.0 * price("ip/Standard/Static"));
    assert_eq!(free_ip, 3.65);
    // 128 GiB Standard_LRS snapshot at 0.05 per GiB-month.
    let old_snapshot = cents(128.0 * price("snapshot/Standard_LRS"));
    assert_eq!(old_snapshot, 6.4);

    let (answer, got) = server.findings();
    let id = |kind: &str, name: &str| {
        format!(
            "/subscriptions/{}/resourceGroups/rg-prod/providers/{kind}/{name}",
            standin::SUB
        )
    };
    let want = |kind: &str, name: &str, finding: &str, usd: f64, ty: Option<&str>| -> FindingRow {
        (
            id(kind, name),
            finding.to_string(),
            Some(usd),
            ty.map(str::to_string),
        )
    };
    let vms = "Microsoft.Compute/virtualMachines";
    assert_eq!(
        got,
        vec![
            want(vms, "idle", "idle", idle, None),
            want(
                vms,
                "oversized",
                "rightsizing",
                resize,
                Some("Standard_D2s_v5")
            ),
            want(
                "Microsoft.Compute/disks",
                "orphan",
                "orphaned",
                orphan_disk,
                None
            ),
            want(
                "Microsoft.Compute/snapshots",
                "snap-old",
                "orphaned",
                old_snapshot,
                None
            ),
            want(
                "Microsoft.Network/publicIPAddresses",
                "pip-free",
                "orphaned",
                free_ip,
                None
            ),
        ],
        "{}",
        serde_json::to_string_pretty(&answer).unwrap()
    );
    assert_eq!(
        answer["totals"]["monthly_usd"],
        cents(idle + resize + orphan_disk + free_ip + old_snapshot)
    );
    assert_eq!(answer["totals"]["monthly_usd"], 520.32);

    // What each rests on: the measured day, and the inventory's facts.
    let item = |name: &str| -> &Value {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["resource"]["name"] == name)
            .unwrap()
    };
    let idle_cpu = &item("idle")["evidence"]["series"][0];
    assert_eq!(idle_cpu["metric"], "cpu.utilization");
    assert!(idle_cpu["value"].as_f64().unwrap() <= 2.0, "{idle_cpu}");
    let resized = &item("oversized")["evidence"];
    assert_eq!(resized["facts"]["vcpus"], 8.0);
    assert_eq!(resized["series"][0]["summary"], "p95");
    assert_eq!(resized["series"][0]["value"], 10.0);
    assert_eq!(resized["series"][1]["metric"], "memory.usage");
    assert_eq!(resized["series"][1]["value"], 12.5);
    assert_eq!(item("orphan")["evidence"]["facts"]["state"], "unattached");
    drop(rt);
}
