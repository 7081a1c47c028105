//! Findings end to end on GCP, as a user gets them: the stand-in of the Google APIs
//! (crates/plugins/src/collectors/gcp/standin.rs) holds a seeded project, `skymeter run
//! --once` collects a day of it with the gcp collector into a real `skymeter server`, and
//! `skymeter findings` names exactly the wasteful resources with the kind, the recommended
//! machine type and the monthly amount to the cent from the price table the binary ships.
//!
//! The project: three n2-standard-8 instances, one idle (CPU ≤ 2 %), one busy, one oversized
//! (p95 CPU 10 %); a 100 GiB pd-balanced disk attached to nothing and one attached to the
//! busy instance; a reserved external address used by nothing and one used by the busy
//! instance; a 200-day-old snapshot and one made yesterday. Cloud Monitoring holds a day of
//! one-minute samples (CPU, memory from the Ops Agent, network), which the stand-in aligns to
//! the collector's 5-minute periods as Monitoring does.
#![cfg(feature = "gcp")]

mod common;

use chrono::{Duration, FixedOffset, Utc};
use common::*;
use serde_json::{json, Value};
use skymeter_plugins::collectors::gcp::standin::*;

const P: &str = "test-project";
const ZONE: &str = "us-central1-a";
const REGION: &str = "us-central1";
const GIB: u64 = 1 << 30;
/// A day of one-minute samples.
const SAMPLES: i64 = 24 * 60;

/// A creation time as Compute Engine writes it (milliseconds, the Pacific offset).
fn compute_time(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::west_opt(8 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

fn url(rest: &str) -> String {
    format!("https://www.googleapis.com/compute/v1/projects/{P}/{rest}")
}

/// A day of one-minute samples of `value(k)`, k the 5-minute period counted back from the
/// end of the day (so the five samples of a period are equal and its mean, maximum and
/// rate are the value itself, or five times it for a total).
fn day(value: impl Fn(i64) -> Value) -> Vec<(i64, Value)> {
    (0..SAMPLES)
        .map(|s| (60 * s, value(60 * s / 300)))
        .collect()
}

fn seed(server: &FakeGcp) {
    let (idle, busy, big) = (5001, 5002, 5003);
    let busy_url = url(&format!("zones/{ZONE}/instances/busy"));
    let now = Utc::now();
    let mut old = snapshot(P, 8001, "snap-old", 6001, 100, 40 * GIB);
    old["creationTimestamp"] = json!(compute_time(now - Duration::days(200)));
    let mut new = snapshot(P, 8002, "snap-new", 6001, 100, 40 * GIB);
    new["creationTimestamp"] = json!(compute_time(now - Duration::days(1)));
    let mut p = Project {
        machine_types: vec![machine_type(ZONE, "n2-standard-8", 8, 32768)],
        instances: vec![
            instance(P, ZONE, idle, "idle", "n2-standard-8"),
            instance(P, ZONE, busy, "busy", "n2-standard-8"),
            instance(P, ZONE, big, "oversized", "n2-standard-8"),
        ],
        disks: vec![
            disk(P, ZONE, 6001, "orphan", "pd-balanced", 100, &[]),
            disk(P, ZONE, 6002, "busy-data", "pd-balanced", 100, &[&busy_url]),
        ],
        addresses: vec![
            address(P, REGION, 9001, "ip-free", "34.10.0.1", None),
            address(P, REGION, 9002, "ip-busy", "34.10.0.2", Some(&busy_url)),
        ],
        snapshots: vec![old, new],
        ..Default::default()
    };
    let labels = |id: u64| gce_labels(P, ZONE, id);
    // CPU (a ratio): idle 1.0–1.9 %; busy 40–90 %; oversized at 10 % or less but one
    // period in 25 at 25 %, so its p95 of 5-minute means is 10 %.
    p.raw.insert(
        "compute.googleapis.com/instance/cpu/utilization".into(),
        vec![
            (
                labels(idle),
                day(|k| double(0.01 + (k % 10) as f64 / 1000.0)),
            ),
            (
                labels(busy),
                day(|k| double(0.40 + (k % 51) as f64 / 100.0)),
            ),
            (
                labels(big),
                day(|k| {
                    double(if k % 25 == 0 {
                        0.25
                    } else {
                        0.10 - (k % 3) as f64 / 100.0
                    })
                }),
            ),
        ],
    );
    // Memory in use, as the Ops Agent reports it (percent): 15 % of 32 GiB.
    p.raw.insert(
        "agent.googleapis.com/memory/percent_used".into(),
        [idle, busy, big]
            .iter()
            .map(|id| (labels(*id), day(|_| double(15.0))))
            .collect(),
    );
    // Bytes per one-minute sample each way: idle 1 kB/s, the others busy.
    for metric in ["received_bytes_count", "sent_bytes_count"] {
        p.raw.insert(
            format!("compute.googleapis.com/instance/network/{metric}"),
            [(idle, 60_000), (busy, 600_000_000), (big, 60_000_000)]
                .iter()
                .map(|(id, bytes)| (labels(*id), day(|_| int64(*bytes))))
                .collect(),
        );
    }
    server.set_project(P, p);
}

#[test]
fn gcp_findings_name_exactly_the_wasteful_resources_with_their_money() {
    let gcp = FakeGcp::start();
    seed(&gcp);
    let server = FindingsServer::start();
    let key = gcp.key_file(server.dir.path(), P);
    server.collect_a_day(
        &format!(
            r#"plugin = "gcp", projects = ["{P}"], endpoint_url = "{}", credentials_file = "{}""#,
            gcp.url,
            key.display()
        ),
        &[],
        &["GOOGLE_APPLICATION_CREDENTIALS"],
    );

    // The amounts, from the table the binary ships (us-central1), a month of 730 hours.
    let prices = ShippedPrices::of("gcp");
    let price = |key: &str| prices.price(REGION, key);
    let n2 = |vcpus: f64, gib: f64| {
        cents(vcpus * 730.0 * price("gce/n2/vcpu") + gib * 730.0 * price("gce/n2/memory"))
    };
    // n2-standard-8: (8 × 0.031611 + 32 × 0.004237) × 730.
    let idle = n2(8.0, 32.0);
    assert_eq!(idle, 283.58);
    // p95 10 % of 8 vCPUs × 1.25 = 1 vCPU, memory 15 % of 32 GiB × 1.25 = 6 GiB: the
    // smallest n2-standard, n2-standard-2 (2 vCPUs, 8 GiB) at 70.90; saves 283.58 − 70.90.
    let resize = cents(idle - n2(2.0, 8.0));
    assert_eq!(resize, 212.68);
    // 100 GiB pd-balanced at 0.10 per GiB-month.
    let orphan_disk = cents(100.0 * price("pd/pd-balanced"));
    assert_eq!(orphan_disk, 10.0);
    // A reserved address in use by nothing, 0.01 an hour.
    let free_ip = cents(730.0 * price("address/unused"));
    assert_eq!(free_ip, 7.3);
    // 40 GiB stored in the `us` multi-region, 0.065 per GiB-month.
    let old_snapshot = cents(40.0 * price("snapshot/standard/multiregional"));
    assert_eq!(old_snapshot, 2.6);

    let (answer, got) = server.findings();
    let want = |id: &str, kind: &str, usd: f64, ty: Option<&str>| -> FindingRow {
        (
            id.to_string(),
            kind.to_string(),
            Some(usd),
            ty.map(str::to_string),
        )
    };
    assert_eq!(
        got,
        vec![
            want("5001", "idle", idle, None),
            want("5003", "rightsizing", resize, Some("n2-standard-2")),
            want("6001", "orphaned", orphan_disk, None),
            want("9001", "orphaned", free_ip, None),
            want("8001", "orphaned", old_snapshot, None),
        ],
        "{}",
        serde_json::to_string_pretty(&answer).unwrap()
    );
    assert_eq!(
        answer["totals"]["monthly_usd"],
        cents(idle + resize + orphan_disk + free_ip + old_snapshot)
    );
    assert_eq!(answer["totals"]["monthly_usd"], 516.16);

    // What each rests on: the measured day, and the inventory's facts.
    let item = |id: &str| -> &Value {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["resource"]["id"] == id)
            .unwrap()
    };
    let idle_cpu = &item("5001")["evidence"]["series"][0];
    assert_eq!(idle_cpu["metric"], "cpu.utilization");
    assert!(idle_cpu["value"].as_f64().unwrap() <= 2.0, "{idle_cpu}");
    let resized = &item("5003")["evidence"];
    assert_eq!(resized["facts"]["vcpus"], 8.0);
    assert_eq!(resized["series"][0]["summary"], "p95");
    assert_eq!(resized["series"][0]["value"], 10.0);
    assert_eq!(resized["series"][1]["metric"], "memory.usage");
    assert_eq!(resized["facts"]["recommended_memory_mib"], 8192.0);
    assert_eq!(item("9001")["resource"]["kind"], "network.public_ip");
    assert_eq!(item("8001")["resource"]["region"], REGION);
}
