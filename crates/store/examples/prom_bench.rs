//! Where the time of a PromQL query over the embedded store goes: the store's select
//! (index + sample reads, from a cold and a warm chunk cache) and the whole query (select +
//! engine), for issue 6's benchmark queries. Not a test: prints numbers.
//!
//! `cargo run --release -p skymeter-store --example prom_bench [DIR]` — loads 10,000 series
//! × 1,000 points at 60 s (8 regions, 2-decimal random walks, as `bench/loadgen`) into a
//! store in DIR (kept and reused when it exists), then times each step `RUNS` times
//! (`SKYMETER_BENCH_RUNS`, default 30) and prints p50 and min.

use chrono::{DateTime, Utc};
use skymeter_model::{Batch, Point, ResourceRef, Stat, Unit};
use skymeter_promql::{instant_query, range_query, MatchOp, Matcher, Options};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, PromQuerier, Store};
use std::time::Instant;

const SERIES: usize = 10_000;
const POINTS: usize = 1_000;
const STEP_S: i64 = 60;
/// 2026-01-01T00:00:00Z
const END_S: i64 = 1_767_225_600;
const REGIONS: [&str; 8] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-south-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
];

fn resource(s: usize) -> ResourceRef {
    ResourceRef {
        provider: "aws".into(),
        account: "123456789012".into(),
        region: REGIONS[s % REGIONS.len()].into(),
        id: format!("i-{s:08x}").into(),
    }
}

fn load(store: &EmbeddedStore) {
    let start = END_S - STEP_S * POINTS as i64;
    let mut state: Vec<f64> = (0..SERIES).map(|i| (i % 100) as f64).collect();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let refs: Vec<ResourceRef> = (0..SERIES).map(resource).collect();
    let t = Instant::now();
    for p in 0..POINTS {
        let ts = DateTime::<Utc>::from_timestamp(start + STEP_S * (p as i64 + 1), 0).unwrap();
        let mut b = Batch::new("bench", "bench", Utc::now());
        for (s, v) in state.iter_mut().enumerate() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *v = (*v + ((rng >> 33) % 401) as f64 / 100.0 - 2.0).clamp(0.0, 100.0);
            b.points.push(Point {
                metric: "cpu.utilization".into(),
                unit: Unit::Percent,
                stat: Stat::Avg,
                period_s: 60,
                ts,
                value: (*v * 100.0).round() / 100.0,
                resource: refs[s].clone().into(),
                labels: Default::default(),
            });
        }
        store.ingest(&b).unwrap();
    }
    store.flush().unwrap();
    eprintln!(
        "loaded {} points in {:.1} s",
        SERIES * POINTS,
        t.elapsed().as_secs_f64()
    );
}

fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/skymeter-prom-bench".into());
    let runs = std::env::var("SKYMETER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let fresh = !std::path::Path::new(&dir).join("meta.sqlite").exists();
    let store = EmbeddedStore::open(EmbeddedOptions::new(&dir)).unwrap();
    if fresh {
        load(&store);
    }
    let end_ms = END_S * 1000;
    let q = PromQuerier(&store);
    let opts = Options::default();
    let name = Matcher::new(MatchOp::Equal, "__name__", "cpu_utilization_percent").unwrap();
    let one = Matcher::new(MatchOp::Equal, "resource_id", "i-00000042").unwrap();
    let region = Matcher::new(MatchOp::Equal, "region", "eu-west-1").unwrap();
    let row = |what: &str, (p50, min): (f64, f64)| println!("| {what} | {p50:.4} | {min:.4} |");
    println!("| step | p50 ms | min ms |\n|---|---|---|");

    let (s16, e16) = (end_ms - 16 * 3_600_000, end_ms);
    let sel_all = |start: i64| {
        let v = store
            .prom_select(
                std::slice::from_ref(&name),
                start,
                end_ms,
                &skymeter_store::prom::SelectBudget::unlimited(),
            )
            .unwrap();
        assert_eq!(v.len(), SERIES);
    };
    row(
        "select all 10,000 series, 16 h (cold cache)",
        time(runs.min(10), || {
            store.clear_query_cache();
            sel_all(s16 - 300_000)
        }),
    );
    row(
        "select all 10,000 series, 16 h (warm)",
        time(runs, || sel_all(s16 - 300_000)),
    );
    row(
        "query_range avg by (region) (cpu_utilization_percent) 16 h / 5 m",
        time(runs, || {
            range_query(
                &q,
                "avg by (region) (cpu_utilization_percent)",
                s16,
                e16,
                300_000,
                &opts,
            )
            .unwrap();
        }),
    );
    let full = end_ms - POINTS as i64 * STEP_S * 1000;
    row(
        "select one series (resource_id=…)",
        time(runs, || {
            let v = store
                .prom_select(
                    &[name.clone(), one.clone()],
                    full,
                    end_ms,
                    &skymeter_store::prom::SelectBudget::unlimited(),
                )
                .unwrap();
            assert_eq!(v.len(), 1);
        }),
    );
    row(
        "query_range max_over_time(cpu…{resource_id=…}[1h]) full range / 60 s",
        time(runs, || {
            range_query(
                &q,
                r#"max_over_time(cpu_utilization_percent{resource_id="i-00000042"}[1h])"#,
                full,
                end_ms,
                60_000,
                &opts,
            )
            .unwrap();
        }),
    );
    row(
        "select all 10,000 series, 1 h (warm)",
        time(runs, || sel_all(end_ms - 3_600_000)),
    );
    row(
        "query topk(10, avg_over_time(cpu_utilization_percent[1h]))",
        time(runs, || {
            instant_query(
                &q,
                "topk(10, avg_over_time(cpu_utilization_percent[1h]))",
                end_ms,
                &opts,
            )
            .unwrap();
        }),
    );
    row(
        "series {region=\"eu-west-1\"} (labels of 1,250 series)",
        time(runs, || {
            let v = store
                .prom_series(&[vec![region.clone()]], i64::MIN, i64::MAX)
                .unwrap();
            assert_eq!(v.len(), SERIES / 8);
        }),
    );
    eprintln!("query cache: {} MiB", store.query_cache_bytes() >> 20);
}
