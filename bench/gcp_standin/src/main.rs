//! `skymeter-gcp-standin KEY_FILE [INSTANCES]`: serves the gcp collector's test stand-in
//! (crates/plugins/src/collectors/gcp/standin.rs) on 127.0.0.1 with one project,
//! `bench-project`, holding INSTANCES (default 5000) Compute Engine instances over 4 zones
//! and a value for every Compute Engine metric of the catalog and every aligner the default
//! stats use. Writes a service-account key whose token_uri is the stand-in to KEY_FILE,
//! prints the base URL on stdout, then serves until killed. `GET /_stats` answers the
//! number of requests per API path kind.

use skymeter_plugins::collectors::gcp::standin::*;
use std::io::Write;

const PROJECT: &str = "bench-project";
const ZONES: [&str; 4] = [
    "us-central1-a",
    "us-central1-b",
    "europe-west1-b",
    "asia-east1-a",
];
const METRICS: [&str; 10] = [
    "compute.googleapis.com/instance/cpu/utilization",
    "agent.googleapis.com/memory/percent_used",
    "compute.googleapis.com/instance/disk/read_ops_count",
    "compute.googleapis.com/instance/disk/write_ops_count",
    "compute.googleapis.com/instance/disk/read_bytes_count",
    "compute.googleapis.com/instance/disk/write_bytes_count",
    "compute.googleapis.com/instance/network/received_bytes_count",
    "compute.googleapis.com/instance/network/sent_bytes_count",
    "compute.googleapis.com/instance/network/received_packets_count",
    "compute.googleapis.com/instance/network/sent_packets_count",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let key_file = args
        .next()
        .expect("usage: skymeter-gcp-standin KEY_FILE [INSTANCES]");
    let n: u64 = args.next().map_or(5000, |s| s.parse().expect("INSTANCES"));
    let mut p = Project::default();
    for z in ZONES {
        p.machine_types
            .push(machine_type(z, "n2-standard-4", 4, 16384));
        p.machine_types.push(machine_type(z, "e2-medium", 2, 4096));
    }
    for i in 0..n {
        let id = 1_000_000 + i;
        let zone = ZONES[(i % 4) as usize];
        let mt = if i % 2 == 0 {
            "n2-standard-4"
        } else {
            "e2-medium"
        };
        p.instances
            .push(instance(PROJECT, zone, id, &format!("vm-{i}"), mt));
        let labels = gce_labels(PROJECT, zone, id);
        for (k, m) in METRICS.iter().enumerate() {
            let gauge = k < 2;
            let v = (i % 100) as f64;
            let (avg, avg_aligner) = if gauge {
                (double(if k == 0 { v / 100.0 } else { v }), "ALIGN_MEAN")
            } else {
                (double(v * 10.0), "ALIGN_RATE")
            };
            p.series
                .entry((m.to_string(), avg_aligner.to_string()))
                .or_default()
                .push((labels.clone(), avg));
            let max = if gauge {
                double(if k == 0 { (v + 1.0) / 100.0 } else { v + 1.0 })
            } else {
                int64((i % 100) as i64 * 1200)
            };
            p.series
                .entry((m.to_string(), "ALIGN_MAX".to_string()))
                .or_default()
                .push((labels.clone(), max));
        }
    }
    let server = FakeGcp::start();
    server.set_project(PROJECT, p);
    let dir = std::path::Path::new(&key_file)
        .parent()
        .expect("KEY_FILE has a folder");
    let written = server.key_file(dir, PROJECT);
    std::fs::rename(&written, &key_file).expect("write KEY_FILE");
    println!("{}", server.url);
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}
