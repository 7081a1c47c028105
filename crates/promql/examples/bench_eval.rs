//! Engine time of the issue-6 benchmark queries on generated data: 10,000 series of
//! 1,000 points at 60 s, in the in-memory querier (no copies on select).
//!
//! cargo run --release -p skymeter-promql --example bench_eval [-- SERIES POINTS RUNS]

use std::time::Instant;

use skymeter_promql::{instant_query, range_query, Labels, MemoryQuerier, Options, Series, Value};

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| {
            a.parse()
                .expect("arguments: SERIES POINTS RUNS as integers")
        })
        .unwrap_or(default)
}

fn main() {
    let (n_series, n_points, runs) = (arg(1, 10_000), arg(2, 1_000), arg(3, 20));
    let step = 60_000i64;
    let start = 1_767_225_600_000i64;
    let end = start + (n_points as i64 - 1) * step;
    let providers = ["aws", "gcp", "azure"];
    let regions = [
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
        "ap-south-1",
        "europe-west1",
        "us-central1",
        "asia-east1",
        "westeurope",
        "eastus",
        "northeurope",
        "japaneast",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = Instant::now();
    let series: Vec<Series> = (0..n_series)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", "cpu_utilization_percent".to_string()),
                ("provider", providers[i % 3].to_string()),
                ("account", format!("acct-{}", i % 7)),
                ("region", regions[i % regions.len()].to_string()),
                ("kind", "compute.instance".to_string()),
                ("resource_id", format!("i-{i:08x}")),
                ("resource_name", format!("vm-{i}")),
                ("stat", "avg".to_string()),
            ]);
            let ts: Vec<i64> = (0..n_points as i64).map(|k| start + k * step).collect();
            let mut level = 100.0 * rng.f64();
            let vs: Vec<f64> = (0..n_points)
                .map(|_| {
                    level = (level + (rng.f64() - 0.5) * 10.0).clamp(0.0, 100.0);
                    level
                })
                .collect();
            Series::new(labels, ts, vs)
        })
        .collect();
    let q = MemoryQuerier::new(series);
    println!(
        "data: {n_series} series x {n_points} points at 60 s, generated in {:.0} ms; {runs} runs each",
        t0.elapsed().as_secs_f64() * 1e3
    );

    // The floor for queries that read every sample: one pass over all of them.
    let mut floor = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut acc = 0.0f64;
        let mut last = 0i64;
        for s in q.series() {
            last = last.wrapping_add(s.timestamps.iter().fold(0i64, |a, t| a.wrapping_add(*t)));
            acc += s.values.iter().sum::<f64>();
        }
        std::hint::black_box((acc, last));
        floor.push(t.elapsed().as_secs_f64() * 1e3);
    }
    floor.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "reading every sample once (memory floor): p50 {:.1} ms",
        floor[2]
    );

    let opts = Options::default();
    let hour = 3_600_000;
    let one = format!("i-{:08x}", n_series / 2);
    let cases: Vec<(String, Box<dyn Fn() -> Value>)> = vec![
        (
            "range  avg by (region) (cpu_utilization_percent)  16h / 5m".into(),
            Box::new(|| {
                range_query(&q, "avg by (region) (cpu_utilization_percent)", end - 16 * hour, end, 300_000, &opts)
                    .unwrap()
            }),
        ),
        (
            format!("range  max_over_time(cpu_utilization_percent{{resource_id=\"{one}\"}}[1h])  full / 60s"),
            Box::new(|| {
                let expr = format!("max_over_time(cpu_utilization_percent{{resource_id=\"{one}\"}}[1h])");
                range_query(&q, &expr, start, end, step, &opts).unwrap()
            }),
        ),
        (
            "instant topk(10, avg_over_time(cpu_utilization_percent[1h]))".into(),
            Box::new(|| {
                instant_query(&q, "topk(10, avg_over_time(cpu_utilization_percent[1h]))", end, &opts).unwrap()
            }),
        ),
        (
            "range  sum by (provider) (rate(cpu_utilization_percent[5m]))  16h / 5m".into(),
            Box::new(|| {
                range_query(
                    &q,
                    "sum by (provider) (rate(cpu_utilization_percent[5m]))",
                    end - 16 * hour,
                    end,
                    300_000,
                    &opts,
                )
                .unwrap()
            }),
        ),
        (
            "range  cpu_utilization_percent > on(resource_id) group_left avg_over_time(cpu_utilization_percent[1h])  2h / 5m".into(),
            Box::new(|| {
                range_query(
                    &q,
                    "cpu_utilization_percent > on(resource_id) group_left avg_over_time(cpu_utilization_percent[1h])",
                    end - 2 * hour,
                    end,
                    300_000,
                    &opts,
                )
                .unwrap()
            }),
        ),
    ];
    // BENCH_ONLY=i runs only the i-th case (from 0), e.g. under a profiler.
    let only: Option<usize> = std::env::var("BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    for (i, (name, run)) in cases.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let mut ms: Vec<f64> = Vec::with_capacity(runs);
        let mut shape = String::new();
        for _ in 0..runs {
            let t = Instant::now();
            let v = run();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            shape = match &v {
                Value::Matrix(m) => format!("{} series", m.len()),
                Value::Vector(v) => format!("{} samples", v.len()),
                other => other.result_type().to_string(),
            };
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{name}\n    p50 {:.1} ms   min {:.1} ms   max {:.1} ms   ({shape})",
            ms[ms.len() / 2],
            ms[0],
            ms[ms.len() - 1]
        );
    }
}
