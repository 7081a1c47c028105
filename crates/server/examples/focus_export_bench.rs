//! The FOCUS export's throughput and peak memory (bench/focus_export.sh runs it; release).
//!
//!   focus_export_bench seed DIR N        # N cost lines into an embedded store at DIR
//!   focus_export_bench export DIR FORMAT # the export over HTTP, read and dropped
//!
//! `export` runs the real server in this process over the store, reads
//! `GET /api/v1/costs/export?format=FORMAT` as a client would (chunk by chunk, nothing
//! kept), then prints rows/s, MB/s and the process's peak RSS (VmHWM): the server's
//! memory for the export, since seeding ran in another process.

use chrono::{Duration, Utc};
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource};
use skymeter_server::{Server, ServerConfig};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Store};
use std::sync::Arc;
use std::time::Instant;

fn line(i: u64) -> Cost {
    let start = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        - Duration::hours((i / 1000) as i64);
    let mut c = Cost {
        list_cost: Some(0.0104),
        sub_account_id: Some(format!("{}", 123456789000u64 + i % 50)),
        region_id: Some(["us-east-1", "eu-west-1", "ap-south-1"][(i % 3) as usize].into()),
        resource_id: Some(format!("i-{i:017x}")),
        resource_type: Some("compute.instance".into()),
        sku_id: Some("t3.micro".into()),
        pricing_quantity: Some(1.0),
        pricing_unit: Some("Hours".into()),
        service_category: Some("Compute".into()),
        ..Cost::billed(
            "Amazon Web Services",
            ChargeCategory::Usage,
            0.0104,
            0.0104,
            "USD".into(),
            start,
            start + Duration::hours(1),
            "Amazon Elastic Compute Cloud".into(),
        )
    };
    c.x_source = CostSource::ALL[(i % 3) as usize];
    c.tags.insert("team".into(), format!("team-{}", i % 20));
    c
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: focus_export_bench seed DIR N | export DIR csv|parquet";
    let (mode, dir) = match (args.get(1), args.get(2)) {
        (Some(m), Some(d)) => (m.as_str(), d.clone()),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    };
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::new(&dir)).unwrap());
    match mode {
        "seed" => {
            let n: u64 = args.get(3).and_then(|n| n.parse().ok()).expect(usage);
            let started = Instant::now();
            let mut i = 0;
            while i < n {
                let mut b = Batch::new("bench", "costs", Utc::now());
                b.costs = (i..(i + 20_000).min(n)).map(line).collect();
                i += b.costs.len() as u64;
                store.ingest(&b).unwrap();
            }
            store.flush().unwrap();
            eprintln!(
                "seeded {n} lines in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        "export" => {
            let format = args.get(3).map_or("csv", String::as_str).to_string();
            let rows = store.stats().unwrap().costs;
            let config = ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                auth: skymeter_server::Auth::Disabled,
                ..Default::default()
            };
            let server = Server::bind(config, store.clone()).await.unwrap();
            let url = format!(
                "http://{}/api/v1/costs/export?format={format}",
                server.local_addr()
            );
            tokio::spawn(server.run(std::future::pending::<()>()));
            let started = Instant::now();
            let client = reqwest::Client::builder().no_gzip().build().unwrap();
            let mut resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let mut bytes = 0u64;
            while let Some(chunk) = resp.chunk().await.unwrap() {
                bytes += chunk.len() as u64;
            }
            let s = started.elapsed().as_secs_f64();
            println!(
                "{format}: {rows} rows, {:.1} MiB in {s:.1}s: {:.0} rows/s, {:.1} MiB/s; peak RSS {:.0} MiB",
                bytes as f64 / 1048576.0,
                rows as f64 / s,
                bytes as f64 / 1048576.0 / s,
                peak_rss_mib()
            );
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    }
}
