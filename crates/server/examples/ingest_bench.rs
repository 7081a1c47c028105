//! Ingest throughput of the server itself: 4 concurrent clients post 10,000-point batches
//! (gzip, as agents send them) over HTTP on 127.0.0.1 to a server whose store dedupes and
//! counts but keeps no points, so the figure is the server's cost (read, decompress,
//! parse, validate), not a store's.
//!
//! `cargo run --release -p skymeter-server --example ingest_bench [-- identity|gzip|zstd]`
//! Env: `BENCH_CLIENTS` (4), `BENCH_BATCHES` per client (25), `BENCH_POINTS` per batch (10000).

use chrono::{Duration, Utc};
use skymeter_model::{Batch, Point, ResourceRef, Stat, Unit};
use skymeter_server::{Auth, ServerConfig};
use skymeter_testkit::memstore::MemStore;
use skymeter_testkit::server::TestServer;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic batch: 50 hosts × metrics with labels, like a host collector fleet.
fn batch(points: usize, seed: usize) -> Batch {
    let now = Utc::now();
    let mut b = Batch::new("bench-agent", "host", now);
    let metrics = [
        ("cpu.utilization", Unit::Percent),
        ("memory.usage", Unit::Percent),
        ("disk.read_throughput", Unit::BytesPerSecond),
        ("network.received_throughput", Unit::BytesPerSecond),
    ];
    b.points = (0..points)
        .map(|i| {
            let (metric, unit) = metrics[i % metrics.len()];
            let mut labels = std::collections::BTreeMap::new();
            if i % 3 == 0 {
                labels.insert(
                    "device".to_string(),
                    format!("sd{}", (b'a' + (i % 4) as u8) as char),
                );
            }
            Point {
                metric: metric.into(),
                unit,
                stat: Stat::Avg,
                period_s: 60,
                ts: now - Duration::seconds((i / 200) as i64 * 60),
                value: (i * 7919 + seed) as f64 / 13.0,
                resource: ResourceRef {
                    provider: "aws".into(),
                    account: "123456789012".into(),
                    region: "us-east-1".into(),
                    id: format!("i-0abc{:08x}", (i / 4) % 50).into(),
                }
                .into(),
                labels: labels.into(),
            }
        })
        .collect();
    b
}

fn main() {
    let encoding = std::env::args().nth(1).unwrap_or_else(|| "gzip".into());
    let clients = env("BENCH_CLIENTS", 4);
    let per_client = env("BENCH_BATCHES", 25);
    let points = env("BENCH_POINTS", 10_000);
    if std::env::var("BENCH_PARSE_ONLY").is_ok() {
        parse_only(points);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Bodies are encoded up front so that the clients cost little.
        let mut raw_bytes = 0usize;
        let bodies: Vec<Vec<Vec<u8>>> = (0..clients)
            .map(|c| {
                (0..per_client)
                    .map(|i| {
                        let json = serde_json::to_vec(&batch(points, c * 1000 + i)).unwrap();
                        raw_bytes += json.len();
                        match encoding.as_str() {
                            "identity" => json,
                            "zstd" => zstd::encode_all(&json[..], 3).unwrap(),
                            _ => {
                                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                                e.write_all(&json).unwrap();
                                e.finish().unwrap()
                            }
                        }
                    })
                    .collect()
            })
            .collect();
        let wire: usize = bodies.iter().flatten().map(Vec::len).sum();
        let store = MemStore::new();
        store.discard_points.store(true, Ordering::Relaxed);
        let mut config = ServerConfig {
            auth: Auth::Disabled,
            ..Default::default()
        };
        let s = TestServer::start_with(&mut config, store.clone()).await;
        let url = format!("{}/api/v1/ingest", s.url);
        let started = Instant::now();
        let cpu_start = cpu_seconds();
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|list| {
                let client = reqwest::Client::new();
                let url = url.clone();
                let encoding = encoding.clone();
                tokio::spawn(async move {
                    for body in list {
                        let mut req = client.post(&url).header("content-type", "application/json").body(body);
                        if encoding != "identity" {
                            req = req.header("content-encoding", encoding.as_str());
                        }
                        let resp = req.send().await.unwrap();
                        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_start;
        let total = store.points_seen.load(Ordering::Relaxed);
        assert_eq!(total as usize, clients * per_client * points);
        println!(
            "{encoding}: {clients} clients × {per_client} batches × {points} points = {total} points in {secs:.2} s \
             → {:.2} M points/s; {:.0} MB JSON ({:.0} B/point), {:.0} MB on the wire; \
             {cpu:.2} CPU s (clients included) → {:.2} M points/s per core",
            total as f64 / secs / 1e6,
            raw_bytes as f64 / 1e6,
            raw_bytes as f64 / total as f64,
            wire as f64 / 1e6,
            total as f64 / cpu / 1e6,
        );
        s.stop().await;
    });
}

/// Single-core cost of the steps of one batch, without HTTP.
fn parse_only(points: usize) {
    let json = serde_json::to_vec(&batch(points, 1)).unwrap();
    let n = 20;
    let mut parse = 0.0;
    let mut validate = 0.0;
    let mut drop_t = 0.0;
    for _ in 0..n {
        let t = Instant::now();
        let b: Batch = serde_json::from_slice(&json).unwrap();
        parse += t.elapsed().as_secs_f64();
        let t = Instant::now();
        b.validate().unwrap();
        validate += t.elapsed().as_secs_f64();
        let t = Instant::now();
        drop(b);
        drop_t += t.elapsed().as_secs_f64();
    }
    let per = |x: f64| x / n as f64 * 1e3;
    println!(
        "one core, {points} points ({} bytes): parse {:.2} ms ({:.2} M points/s), validate {:.2} ms, drop {:.2} ms",
        json.len(),
        per(parse),
        points as f64 / (parse / n as f64) / 1e6,
        per(validate),
        per(drop_t)
    );
}

/// User + system CPU time of this process so far (from /proc, in clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
