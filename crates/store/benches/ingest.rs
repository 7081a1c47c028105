//! Store-level ingest and compression figures (not a test: prints numbers).
//!
//! `cargo bench -p skymeter-store --bench ingest` — 10,000 regular 60 s series × 1,000
//! points with 2-decimal values, sent as batches of 10,000 points by 4 threads straight
//! into the store (no HTTP, no JSON), then flushed. Also compares WAL encodings of one
//! batch. `SKYMETER_BENCH_SERIES`, `SKYMETER_BENCH_POINTS` and `SKYMETER_BENCH_THREADS`
//! change the size.

use chrono::{DateTime, Utc};
use skymeter_model::{Batch, Point, ResourceRef, Stat, Unit};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, PointsQuery, SeriesQuery, Store};
use std::sync::Arc;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn gauge(series: usize, i: usize) -> f64 {
    let mut x = (series as u64 * 1_000_003 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let noise = (x % 1000) as f64 / 100.0 - 5.0;
    let v = 50.0 + 30.0 * ((i as f64) / 50.0 + series as f64).sin() + noise;
    (v * 100.0).round() / 100.0
}

const T0: i64 = 1_700_000_040;

fn at(i: usize) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + i as i64 * 60, 0).unwrap()
}

fn point(series: usize, i: usize) -> Point {
    Point {
        metric: "cpu.utilization".into(),
        unit: Unit::Percent,
        stat: Stat::Avg,
        period_s: 60,
        ts: at(i),
        value: gauge(series, i),
        resource: ResourceRef {
            provider: "aws".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            id: format!("i-{series:017x}").into(),
        }
        .into(),
        labels: Default::default(),
    }
}

fn encodings() {
    let mut b = Batch::new("agent", "bench", Utc::now());
    b.points = (0..10_000).map(|k| point(k % 2500, k / 2500)).collect();
    let time = |f: &dyn Fn() -> usize| {
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..20 {
            n = f();
        }
        (n, t.elapsed() / 20)
    };
    let (json, tj) = time(&|| serde_json::to_vec(&b.points).unwrap().len());
    let (pc, tp) = time(&|| postcard::to_allocvec(&b.points).unwrap().len());
    println!("WAL encoding of a 10,000-point batch:");
    println!(
        "  serde_json of Point       {:>9} bytes ({:.1} B/point) in {:?}",
        json,
        json as f64 / 1e4,
        tj
    );
    println!(
        "  postcard of Point         {:>9} bytes ({:.1} B/point) in {:?}",
        pc,
        pc as f64 / 1e4,
        tp
    );
}

fn main() {
    let n_series = env("SKYMETER_BENCH_SERIES", 10_000);
    let n_points = env("SKYMETER_BENCH_POINTS", 1_000);
    let threads = env("SKYMETER_BENCH_THREADS", 4);
    let per_batch_ts = 10_000 / (n_series / threads).max(1);
    encodings();

    // Values computed up front so that the timing is the store's, not the generator's.
    let values: Arc<Vec<f64>> = Arc::new(
        (0..n_series)
            .flat_map(|s| (0..n_points).map(move |i| gauge(s, i)))
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap());
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|th| {
            let store = store.clone();
            let values = values.clone();
            std::thread::spawn(move || {
                let series: Vec<usize> =
                    (th * n_series / threads..(th + 1) * n_series / threads).collect();
                let mut b = Batch::new(format!("agent-{th}"), "bench", Utc::now());
                b.points = (0..per_batch_ts.max(1))
                    .flat_map(|i| series.iter().map(move |s| point(*s, i)))
                    .collect();
                let mut batches = 0;
                let mut i0 = 0;
                while i0 < n_points {
                    b.batch_id = uuid::Uuid::now_v7();
                    let n_ts = per_batch_ts.min(n_points - i0);
                    b.points.truncate(n_ts * series.len());
                    for (k, p) in b.points.iter_mut().enumerate() {
                        let (i, s) = (i0 + k / series.len(), series[k % series.len()]);
                        p.ts = at(i);
                        p.value = values[s * n_points + i];
                    }
                    store.ingest(&b).unwrap();
                    batches += 1;
                    i0 += n_ts;
                }
                batches
            })
        })
        .collect();
    let batches: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let ingest = t.elapsed();
    let total = (n_series * n_points) as f64;
    println!(
        "ingest: {} points in {batches} batches from {threads} threads: {:.2?} = {:.2} M points/s",
        total,
        ingest,
        total / ingest.as_secs_f64() / 1e6
    );
    let t = Instant::now();
    store.flush().unwrap();
    println!("flush (seal + compaction): {:.2?}", t.elapsed());
    let st = store.stats().unwrap();
    println!(
        "point blocks: {} bytes for {} points = {:.3} bytes/point; data dir {} bytes",
        st.point_block_bytes,
        st.point_block_points,
        st.point_block_bytes as f64 / st.point_block_points as f64,
        st.disk_bytes
    );

    let q = |metric: &str, resource: Option<String>, step: Option<u64>, limit: u32| PointsQuery {
        series: SeriesQuery {
            metric: Some(metric.into()),
            resource,
            page: skymeter_store::PageQuery {
                limit: Some(limit),
                cursor: None,
            },
            ..Default::default()
        },
        start: at(0),
        end: at(n_points),
        step_s: step,
        agg: None,
    };
    let t = Instant::now();
    let one = store
        .points(&q(
            "cpu.utilization",
            Some(format!("aws/123456789012/us-east-1/i-{:017x}", 7)),
            None,
            1,
        ))
        .unwrap();
    println!(
        "query 1 series, all {} points: {:.2?}",
        one.items[0].points.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let many = store.points(&q("cpu.*", None, Some(3600), 1000)).unwrap();
    let n: usize = many.items.iter().map(|s| s.points.len()).sum();
    println!(
        "query 1,000 series, hourly avg ({n} buckets from {} points): {:.2?}",
        1000 * n_points,
        t.elapsed()
    );
    drop(store);
    let t = Instant::now();
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap();
    println!(
        "reopen: {:.2?} ({} points)",
        t.elapsed(),
        store.stats().unwrap().points
    );
}
