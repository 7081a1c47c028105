//! `skymeter collect gcp` through the real binary against a local stand-in of the Google
//! APIs, as a new user would run it: a service-account key in GOOGLE_APPLICATION_CREDENTIALS
//! (its token_uri pointing at the stand-in) and the API endpoint set with `--set`.
#![cfg(feature = "gcp")]

mod common;

use common::*;
use std::process::Command;

use skymeter_plugins::collectors::gcp::standin::*;

const P: &str = "test-project";

/// Three e2-standard-2 instances with CPU mean 20 + i % and max 40 + i %.
fn seed(server: &FakeGcp) {
    let mut p = Project {
        machine_types: vec![machine_type("us-central1-a", "e2-standard-2", 2, 8192)],
        ..Default::default()
    };
    let cpu = "compute.googleapis.com/instance/cpu/utilization";
    for i in 0..3u64 {
        let id = 5001 + i;
        p.instances.push(instance(
            P,
            "us-central1-a",
            id,
            &format!("web-{i}"),
            "e2-standard-2",
        ));
        let l = gce_labels(P, "us-central1-a", id);
        p.series
            .entry((cpu.into(), "ALIGN_MEAN".into()))
            .or_default()
            .push((l.clone(), double((20.0 + i as f64) / 100.0)));
        p.series
            .entry((cpu.into(), "ALIGN_MAX".into()))
            .or_default()
            .push((l, double((40.0 + i as f64) / 100.0)));
    }
    server.set_project(P, p);
}

fn collect(server: &FakeGcp, key: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["collect", "gcp", "--period", "300s"])
        .args(["--set", "delay=0s"])
        .args(["--set", &format!("endpoint_url={}", server.url)])
        .args(["--set", &format!("projects=[\"{P}\"]")])
        .args(args)
        .env("GOOGLE_APPLICATION_CREDENTIALS", key)
        .env_remove("SKYMETER_LOG")
        .output()
        .unwrap()
}

#[test]
fn collect_gcp_table_shows_instances_cpu_and_api_calls() {
    let server = FakeGcp::start();
    seed(&server);
    let dir = tempfile::tempdir().unwrap();
    let key = server.key_file(dir.path(), P);

    let o = collect(&server, &key, &["--format", "table"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let summary = out.split("\nsummary\n").nth(1).expect("a summary table");
    for i in 0..3u64 {
        let id = (5001 + i).to_string();
        let row = summary
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in\n{summary}"));
        let cells: Vec<&str> = row.split('┆').map(|c| c.trim_matches(['│', ' '])).collect();
        assert_eq!(cells[0], "compute.instance", "{row}");
        assert_eq!(cells[2], format!("web-{i}"), "{row}");
        assert_eq!(cells[3], "e2-standard-2", "{row}");
        assert_eq!(cells[4], "running", "{row}");
        assert_eq!(
            cells[5],
            format!("{:.1}", 20.0 + i as f64),
            "cpu avg: {row}"
        );
        assert_eq!(
            cells[6],
            format!("{:.1}", 40.0 + i as f64),
            "cpu max: {row}"
        );
    }
    let run = out
        .lines()
        .find(|l| l.starts_with("run summary: API calls"))
        .expect("a run summary");
    for call in [
        "compute.instances.aggregatedList=1",
        "compute.machineTypes.aggregatedList=1",
        "monitoring.timeSeries.list=20",
    ] {
        assert!(run.contains(call), "{run}");
    }
    // One token exchange, at the key file's token_uri.
    assert_eq!(server.state.count("/token"), 1);

    // JSON: the same values as records.
    let o = collect(&server, &key, &["--format", "json", "--metrics", "cpu.*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_lines(&stdout(&o));
    let cpu: Vec<_> = points(&records);
    assert_eq!(cpu.len(), 6, "3 instances × avg, max");
    assert!(cpu.iter().all(|p| p["unit"] == "percent"));

    // Dry run: the plan, no timeSeries.list.
    let before = server.state.count("/timeSeries");
    let o = collect(&server, &key, &["--dry-run", "--format", "table"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let run = out
        .lines()
        .find(|l| l.starts_with("run summary (dry run: planned)"))
        .expect("a planned run summary");
    // 10 Compute Engine metric types × 2 stats.
    assert!(run.contains("monitoring.timeSeries.list=20"), "{run}");
    assert_eq!(server.state.count("/timeSeries"), before);
}

#[test]
fn collect_gcp_denied_names_the_role_and_keeps_no_secret() {
    let server = FakeGcp::start();
    seed(&server);
    server.state.fail("/aggregated/instances", &[(403, None)]);
    let dir = tempfile::tempdir().unwrap();
    let key = server.key_file(dir.path(), P);
    let o = collect(&server, &key, &["--format", "json"]);
    let out = stdout(&o);
    // A partial failure: the rest is printed, the error too, and the exit code is 1.
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: gcp: compute.instances.aggregatedList was denied (403)"),
        "{}",
        stderr(&o)
    );
    assert!(out.contains("\"api\":\"storage.buckets.list\""), "{out}");
    let records = json_lines(&out);
    let err = records
        .iter()
        .find(|r| r["type"] == "error")
        .unwrap_or_else(|| panic!("an error record in {out}"));
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "grant the permission compute.instances.list (e.g. the role roles/compute.viewer)"
        ),
        "{msg}"
    );
    for text in [out, stderr(&o)] {
        assert!(!text.contains(TOKEN));
        assert!(!text.contains("PRIVATE KEY"));
    }
}

#[test]
fn metrics_plugin_gcp_lists_the_catalog_with_units() {
    let o = skymeter(&["metrics", "--plugin", "gcp"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, unit) in [
        ("cpu.utilization", "percent"),
        ("memory.usage", "percent"),
        ("disk.read_iops", "count/s"),
        ("network.sent_throughput", "bytes/s"),
        ("database.connections", "count"),
        ("function.duration", "ms"),
        ("storage.size", "bytes"),
        ("gcp.api_calls", "count"),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("{name} not in\n{out}"));
        assert!(line.contains(unit), "{name}: {line}");
    }
    assert!(
        out.contains("compute.googleapis.com/instance/cpu/utilization"),
        "{out}"
    );
}

#[test]
fn gcp_prices_update_then_show_and_collect_use_the_fetched_table() {
    let server = FakeGcp::start();
    seed(&server);
    let sku = |id: &str, description: &str, unit: &str, nanos: i64, region: &str| {
        serde_json::json!({
            "name": format!("services/x/skus/{id}"), "skuId": id, "description": description,
            "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute", "resourceGroup": "CPU", "usageType": "OnDemand"},
            "serviceRegions": [region],
            "pricingInfo": [{"effectiveTime": "2026-11-01T00:00:00Z", "summary": "",
                "pricingExpression": {"usageUnit": unit, "usageUnitDescription": "", "baseUnit": "s", "baseUnitConversionFactor": 3600, "displayQuantity": 1,
                    "tieredRates": [{"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": nanos}}]},
                "currencyConversionRate": 1}],
            "serviceProviderName": "Google"
        })
    };
    {
        let mut skus = server.state.skus.lock().unwrap();
        skus.insert(
            "6F81-5844-456A".into(),
            vec![
                sku(
                    "A",
                    "E2 Instance Core running in Americas",
                    "h",
                    500_000_000,
                    "us-central1",
                ),
                sku(
                    "B",
                    "E2 Instance Ram running in Americas",
                    "GiBy.h",
                    10_000_000,
                    "us-central1",
                ),
            ],
        );
        skus.insert(
            "CCD8-9BF1-090E".into(),
            vec![sku(
                "C",
                "Zonal Kubernetes Clusters",
                "h",
                100_000_000,
                "global",
            )],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let key = server.key_file(dir.path(), P);
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let o = skymeter(&[
        "prices",
        "gcp",
        "update",
        "--regions",
        "us-central1",
        "--data-dir",
        data,
        "--endpoint-url",
        &server.url,
        "--credentials-file",
        key.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["prices"], 3, "{summary}");
    assert_eq!(summary["regions"]["us-central1"]["gce"], 2, "{summary}");
    assert_eq!(
        summary["calls"]["cloudbilling.services.skus.list"], 2,
        "{summary}"
    );

    let o = skymeter(&["prices", "gcp", "show", "--data-dir", data]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let row = out
        .lines()
        .find(|l| l.contains("gce/e2/vcpu"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("0.5") && row.contains("hour"), "{row}");

    // collect prices the three e2-standard-2 (2 vCPU, 8 GiB) at the fetched prices.
    let o = collect(&server, &key, &["--format", "json", "--data-dir", data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_lines(&stdout(&o));
    let lines: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "cost" && r["SkuId"] == "us-central1/gce/e2/vcpu")
        .collect();
    assert_eq!(lines.len(), 3, "{records:?}");
    let hours = 300.0 / 3600.0;
    for l in lines {
        assert!(
            (l["BilledCost"].as_f64().unwrap() - 2.0 * hours * 0.5).abs() < 1e-12,
            "{l}"
        );
        assert_eq!(l["x_source"], "estimated");
        assert_eq!(l["ProviderName"], "Google Cloud");
    }

    // A failed read writes nothing and says so.
    server.state.fail(
        "/skus",
        &[
            (403, None),
            (403, None),
            (403, None),
            (403, None),
            (403, None),
        ],
    );
    let other = dir.path().join("other.json");
    let o = skymeter(&[
        "prices",
        "gcp",
        "update",
        "--regions",
        "us-central1",
        "--output",
        other.to_str().unwrap(),
        "--endpoint-url",
        &server.url,
        "--credentials-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert!(!other.exists());
}
