//! Differential tests: the same samples in a real Prometheus 2.42 (backfilled with
//! `promtool tsdb create-blocks-from openmetrics`) and in this engine's in-memory
//! querier; every query of the set must give the same series and values (relative
//! tolerance 1e-9, NaN equal to NaN) at several instants and over two ranges, or fail in
//! both with the same error type.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian package `prometheus`); without them
//! the test prints `SKIPPED: ...` and passes, or fails under `CI=true`.

use serde_json::Value as Json;
use skymeter_promql::{
    instant_query, range_query, Labels, MemoryQuerier, Options, QueryError, Series,
};
use skymeter_testkit::prometheus::{self, compare, secs, Family, Outcome, Prometheus};
use skymeter_testkit::rng::SplitMix64;

/// 2026-01-01T00:00:00Z: well in the past, so Prometheus keeps it with a long retention.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

// ---------------------------------------------------------------- data set

struct Resource {
    provider: &'static str,
    region: &'static str,
    id: String,
}

/// ~44 series over 6 hours at 60 s: gauges and a counter with resets, series that start
/// late or end early, gaps longer than the 5 m lookback, jittered scrape times, a NaN.
fn dataset() -> Vec<Family> {
    let mut rng = SplitMix64::new(42);
    let regions = [
        ("aws", "us-east-1"),
        ("aws", "eu-west-1"),
        ("gcp", "europe-west1"),
        ("gcp", "us-central1"),
        ("azure", "westeurope"),
        ("azure", "eastus"),
    ];
    let mut resources = Vec::new();
    for (provider, region) in regions {
        for _ in 0..2 {
            // The index leads the id so queries can pick a resource: r-05-.*
            resources.push(Resource {
                provider,
                region,
                id: format!(
                    "r-{:02}-{:06x}",
                    resources.len(),
                    rng.next_u64() as u32 >> 8
                ),
            });
        }
    }
    let steps = 6 * 60; // samples 0..=360, one a minute
    let base_labels = |r: &Resource| {
        vec![
            ("provider".to_string(), r.provider.to_string()),
            ("region".to_string(), r.region.to_string()),
            ("resource_id".to_string(), r.id.clone()),
            ("kind".to_string(), "compute.instance".to_string()),
        ]
    };
    // Sample time of step i for resource k: AWS scrapes jitter by up to 1.5 s.
    let time_of = |k: usize, i: i64, rng: &mut SplitMix64| -> i64 {
        let jitter = if resources[k].provider == "aws" {
            (rng.f64() * 1500.0) as i64
        } else {
            0
        };
        T0 + i * MIN + jitter
    };
    let in_gap = |k: usize, i: i64, metric: &str| -> bool {
        let m = i * MIN;
        match (metric, k) {
            ("cpu", 3) => m < HOUR,                                     // starts late
            ("cpu", 7) => m > 4 * HOUR,                                 // ends early
            ("cpu", 5) => (2 * HOUR..2 * HOUR + 20 * MIN).contains(&m), // 20 m gap
            ("cpu", 10) => (2 * HOUR + 50 * MIN..3 * HOUR + 10 * MIN).contains(&m),
            ("mem", 2) => (HOUR..HOUR + 30 * MIN).contains(&m),
            ("mem", 9) => m < 2 * HOUR + 30 * MIN,
            _ => false,
        }
    };

    let mut cpu = Family {
        name: "cpu_utilization_percent".into(),
        kind: "gauge",
        series: Vec::new(),
    };
    for (k, r) in resources.iter().enumerate() {
        let mut pts = Vec::new();
        let mut level = 10.0 + 70.0 * rng.f64();
        for i in 0..=steps {
            let t = time_of(k, i, &mut rng);
            level = (level + (rng.f64() - 0.5) * 12.0).clamp(0.5, 99.5);
            if in_gap(k, i, "cpu") {
                continue;
            }
            let v = if k == 8 && i == 200 { f64::NAN } else { level };
            pts.push((t, v));
        }
        cpu.series.push((base_labels(r), pts));
    }

    let mut mem = Family {
        name: "memory_usage_percent".into(),
        kind: "gauge",
        series: Vec::new(),
    };
    // Resource 11 has no memory metric: `and`/`unless` see a difference.
    for (k, r) in resources.iter().enumerate().take(resources.len() - 1) {
        let mut pts = Vec::new();
        let mut level = 20.0 + 60.0 * rng.f64();
        for i in 0..=steps {
            let t = time_of(k, i, &mut rng);
            level = (level + (rng.f64() - 0.45) * 2.0).clamp(1.0, 99.0);
            if !in_gap(k, i, "mem") {
                pts.push((t, level));
            }
        }
        mem.series.push((base_labels(r), pts));
    }

    let mut net = Family {
        name: "network_received_bytes".into(),
        kind: "counter",
        series: Vec::new(),
    };
    for (k, r) in resources.iter().enumerate().take(6) {
        let mut pts = Vec::new();
        let mut total = (rng.f64() * 1e6).floor();
        for i in 0..=steps {
            let t = time_of(k, i, &mut rng);
            let reset = (k == 1 && i == 150) || (k == 4 && (i == 90 || i == 290));
            if reset {
                total = (rng.f64() * 5000.0).floor();
            } else {
                total += (1000.0 + rng.f64() * 99_000.0).floor();
            }
            pts.push((t, total));
        }
        net.series.push((base_labels(r), pts));
    }

    let mut up = Family {
        name: "resource_up".into(),
        kind: "gauge",
        series: Vec::new(),
    };
    for (k, r) in resources.iter().enumerate() {
        let mut pts = Vec::new();
        let mut state = 1.0;
        for i in 0..=steps {
            let t = time_of(k, i, &mut rng);
            if rng.f64() < 0.04 {
                state = 1.0 - state;
            }
            pts.push((t, state));
        }
        up.series.push((base_labels(r), pts));
    }

    let mut info = Family {
        name: "provider_info".into(),
        kind: "gauge",
        series: Vec::new(),
    };
    for (provider, tier) in [("aws", "gold"), ("gcp", "silver"), ("azure", "bronze")] {
        let pts = (0..=steps / 5).map(|i| (T0 + i * 5 * MIN, 1.0)).collect();
        info.series.push((
            vec![
                ("provider".to_string(), provider.to_string()),
                ("tier".to_string(), tier.to_string()),
            ],
            pts,
        ));
    }
    // A classic histogram: cumulative bucket counters of two services.
    let mut hist = Family {
        name: "request_duration_seconds_bucket".into(),
        kind: "gauge",
        series: Vec::new(),
    };
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    for service in ["api", "web"] {
        let mut counts = [0.0f64; 6];
        let mut pts: Vec<Vec<(i64, f64)>> = vec![Vec::new(); bounds.len()];
        for i in 0..=steps {
            // This minute's observations, spread over the buckets (cumulative above).
            for _ in 0..(5 + (rng.f64() * 20.0) as usize) {
                let x = rng.f64() * rng.f64() * 1.5;
                let b = [0.05, 0.1, 0.25, 0.5, 1.0]
                    .iter()
                    .position(|&le| x <= le)
                    .unwrap_or(5);
                for c in counts.iter_mut().skip(b) {
                    *c += 1.0;
                }
            }
            for (k, c) in counts.iter().enumerate() {
                pts[k].push((T0 + i * MIN, *c));
            }
        }
        for (k, le) in bounds.iter().enumerate() {
            hist.series.push((
                vec![
                    ("service".to_string(), service.to_string()),
                    ("le".to_string(), le.to_string()),
                ],
                std::mem::take(&mut pts[k]),
            ));
        }
    }
    vec![cpu, mem, net, up, info, hist]
}

fn querier(families: &[Family]) -> MemoryQuerier {
    let mut series = Vec::new();
    for f in families {
        let name = f.sample_name();
        for (labels, pts) in &f.series {
            let mut ls: Vec<(String, String)> = labels.clone();
            ls.push(("__name__".to_string(), name.clone()));
            series.push(Series::new(
                Labels::from_pairs(ls),
                pts.iter().map(|p| p.0).collect(),
                pts.iter().map(|p| p.1).collect(),
            ));
        }
    }
    MemoryQuerier::new(series)
}

// ---------------------------------------------------------------- comparison

fn ours(result: Result<skymeter_promql::Value, QueryError>) -> Outcome {
    match result {
        Ok(v) => Outcome::from_data(&serde_json::to_value(&v).unwrap()),
        Err(e) => Outcome::Err {
            status: None,
            error_type: e.error_type().to_string(),
            message: e.message,
        },
    }
}

fn theirs(client: &reqwest::blocking::Client, url: &str, params: &[(&str, String)]) -> Outcome {
    let resp = client
        .get(url)
        .query(params)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body: Json = resp
        .json()
        .unwrap_or_else(|e| panic!("GET {url}: bad JSON: {e}"));
    Outcome::from_answer(Some(status), &body)
}

// ---------------------------------------------------------------- queries

const AT: &str = "1767236400"; // T0 + 3h

/// Queries valid in both instant and range form.
fn queries() -> Vec<String> {
    let q = [
        // selectors, the four matcher kinds, lookback over gaps
        "cpu_utilization_percent",
        r#"cpu_utilization_percent{provider="aws"}"#,
        r#"cpu_utilization_percent{provider!="aws"}"#,
        r#"cpu_utilization_percent{region=~"eu-.*|us-east-1"}"#,
        r#"cpu_utilization_percent{region!~"eu-.*"}"#,
        r#"cpu_utilization_percent{missing=""}"#,
        r#"{__name__=~"cpu_utilization_percent|memory_usage_percent", provider="gcp"}"#,
        "memory_usage_percent",
        "network_received_bytes_total",
        // offset and @
        "cpu_utilization_percent offset 10m",
        "memory_usage_percent offset -7m",
        "cpu_utilization_percent @ AT",
        "cpu_utilization_percent @ start()",
        "memory_usage_percent @ end()",
        "cpu_utilization_percent @ AT offset 30m",
        // range functions
        "rate(network_received_bytes_total[5m])",
        "rate(network_received_bytes_total[10m])",
        "rate(network_received_bytes_total[1h])",
        "increase(network_received_bytes_total[15m])",
        "delta(cpu_utilization_percent[10m])",
        "irate(network_received_bytes_total[5m])",
        "idelta(cpu_utilization_percent[5m])",
        "deriv(memory_usage_percent[15m])",
        "predict_linear(memory_usage_percent[30m], 3600)",
        "avg_over_time(cpu_utilization_percent[10m])",
        "min_over_time(cpu_utilization_percent[10m])",
        "max_over_time(cpu_utilization_percent[10m])",
        "sum_over_time(memory_usage_percent[10m])",
        "count_over_time(cpu_utilization_percent[10m])",
        "quantile_over_time(0.9, cpu_utilization_percent[30m])",
        "stddev_over_time(cpu_utilization_percent[30m])",
        "stdvar_over_time(memory_usage_percent[30m])",
        "last_over_time(memory_usage_percent[10m])",
        "present_over_time(cpu_utilization_percent[2m])",
        "changes(resource_up[30m])",
        "resets(network_received_bytes_total[2h])",
        "holt_winters(memory_usage_percent[30m], 0.5, 0.3)",
        "rate(network_received_bytes_total[10m] offset 20m)",
        "rate(network_received_bytes_total[10m] @ AT)",
        "predict_linear(memory_usage_percent[30m] @ AT, 600)",
        "absent_over_time(cpu_utilization_percent{region=\"eastus\"}[5m])",
        "absent_over_time(nonexistent_metric{job=\"x\"}[5m])",
        // one resource at a time: late start, early end, gaps
        r#"cpu_utilization_percent{resource_id=~"r-0[0-3]-.*"}"#,
        r#"absent_over_time(cpu_utilization_percent{resource_id=~"r-05-.*"}[10m])"#,
        r#"max_over_time(cpu_utilization_percent{resource_id=~"r-07-.*"}[1h])"#,
        r#"last_over_time(cpu_utilization_percent{resource_id=~"r-05-.*"}[30m])"#,
        r#"count_over_time(cpu_utilization_percent{resource_id=~"r-1.-.*"}[5m])"#,
        "increase(network_received_bytes_total[90s])",
        "rate(network_received_bytes_total[1m])",
        "changes(cpu_utilization_percent[5m])",
        "deriv(network_received_bytes_total[5m])",
        "irate(network_received_bytes_total[5m] offset 1h)",
        "avg_over_time(cpu_utilization_percent[10m] @ end())",
        "cpu_utilization_percent offset 1h @ AT",
        "sum_over_time(resource_up[1h]) / count_over_time(resource_up[1h])",
        "max_over_time((cpu_utilization_percent > 50)[30m:1m])",
        // instant-vector functions
        "abs(delta(cpu_utilization_percent[10m]))",
        "ceil(cpu_utilization_percent)",
        "floor(cpu_utilization_percent)",
        "round(cpu_utilization_percent)",
        "round(cpu_utilization_percent, 5)",
        "clamp(cpu_utilization_percent, 20, 80)",
        "clamp(cpu_utilization_percent, 80, 20)",
        "clamp_min(cpu_utilization_percent, 50)",
        "clamp_max(cpu_utilization_percent, 50)",
        "exp(cpu_utilization_percent / 100)",
        "ln(cpu_utilization_percent)",
        "log2(memory_usage_percent)",
        "log10(memory_usage_percent)",
        "sqrt(cpu_utilization_percent)",
        "sgn(delta(cpu_utilization_percent[5m]))",
        r#"label_replace(cpu_utilization_percent, "zone", "$1-z$2", "region", "(.*)-(\\d+)")"#,
        r#"label_replace(cpu_utilization_percent, "provider", "", "provider", "aws")"#,
        r#"label_replace(cpu_utilization_percent, "x", "$9", "region", ".*")"#,
        r#"label_join(cpu_utilization_percent, "key", "/", "provider", "region", "resource_id")"#,
        r#"label_join(memory_usage_percent, "provider", "", "missing")"#,
        "absent(nonexistent_metric{job=\"x\", env=~\"p.*\"})",
        "absent(cpu_utilization_percent)",
        "absent(cpu_utilization_percent{region=\"eastus\", resource_id=~\".*\"})",
        "timestamp(cpu_utilization_percent)",
        "timestamp(memory_usage_percent offset 3m)",
        "timestamp(cpu_utilization_percent @ AT)",
        "timestamp(sum(cpu_utilization_percent))",
        "time()",
        "time() - 1767225600",
        "vector(3)",
        "vector(time())",
        "scalar(sum(cpu_utilization_percent))",
        "scalar(cpu_utilization_percent)",
        "hour()",
        "minute(timestamp(cpu_utilization_percent))",
        "day_of_week()",
        "day_of_month()",
        "day_of_year()",
        "days_in_month()",
        "month()",
        "year(vector(1709214300))",
        // aggregations
        "sum(cpu_utilization_percent)",
        "sum by (provider) (cpu_utilization_percent)",
        "sum without (resource_id) (cpu_utilization_percent)",
        "avg by (region) (cpu_utilization_percent)",
        "avg(memory_usage_percent)",
        "min by (provider) (cpu_utilization_percent)",
        "max by (provider) (memory_usage_percent)",
        "count by (provider) (cpu_utilization_percent)",
        "group by (region) (memory_usage_percent)",
        "stddev by (provider) (cpu_utilization_percent)",
        "stdvar(memory_usage_percent)",
        "quantile by (provider) (0.75, cpu_utilization_percent)",
        "quantile(0.5, memory_usage_percent)",
        "topk(3, cpu_utilization_percent)",
        "topk by (provider) (1, memory_usage_percent)",
        "bottomk(2, cpu_utilization_percent)",
        "topk(scalar(count(resource_up == 1)) - 5, cpu_utilization_percent)",
        r#"count_values("state", resource_up)"#,
        r#"count_values by (provider) ("state", resource_up)"#,
        r#"count_values without (resource_id) ("v", resource_up)"#,
        r#"sum by (__name__) ({__name__=~"cpu_utilization_percent|memory_usage_percent"})"#,
        "sum(rate(network_received_bytes_total[5m])) by (region)",
        "sum by (__name__) (rate(network_received_bytes_total[5m]))",
        "count without (region) (rate(network_received_bytes_total[5m]))",
        "topk by (__name__) (2, rate(network_received_bytes_total[5m]))",
        "max by (__name__) (last_over_time(memory_usage_percent[5m]))",
        "count(cpu_utilization_percent > 60) by (provider)",
        "avg by (provider) (avg_over_time(cpu_utilization_percent[1h]))",
        "topk(5, avg_over_time(cpu_utilization_percent[1h]))",
        "topk(0, cpu_utilization_percent)",
        "topk(2.9, cpu_utilization_percent)",
        "bottomk by (region) (1, cpu_utilization_percent)",
        "quantile(1.5, cpu_utilization_percent)",
        "quantile(-1, cpu_utilization_percent)",
        "sum by (nonexistent) (cpu_utilization_percent)",
        "count without () (cpu_utilization_percent)",
        "count(count by (region) (cpu_utilization_percent))",
        "histogram_quantile(0.9, request_duration_seconds_bucket)",
        "histogram_quantile(0.5, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[10m])))",
        "histogram_quantile(0.25, sum by (le, service) (increase(request_duration_seconds_bucket[15m])))",
        r#"histogram_quantile(0.5, request_duration_seconds_bucket{le!="+Inf"})"#,
        "histogram_quantile(2, request_duration_seconds_bucket)",
        // arithmetic, comparison, bool, matching
        "cpu_utilization_percent * 2",
        "2 * cpu_utilization_percent",
        "-cpu_utilization_percent",
        "-sum(cpu_utilization_percent)",
        "1 + 2 * 3 - 4 / 8",
        "2 ^ 3 ^ 2",
        "cpu_utilization_percent % 7",
        "cpu_utilization_percent ^ 0.5",
        "cpu_utilization_percent / memory_usage_percent",
        "cpu_utilization_percent - on(resource_id) memory_usage_percent",
        "cpu_utilization_percent + ignoring(kind) memory_usage_percent",
        "cpu_utilization_percent atan2 memory_usage_percent",
        "cpu_utilization_percent > 50",
        "cpu_utilization_percent > bool 50",
        "50 < cpu_utilization_percent",
        "50 > bool cpu_utilization_percent",
        "cpu_utilization_percent > memory_usage_percent",
        "cpu_utilization_percent <= bool memory_usage_percent",
        "resource_up == 0",
        "resource_up != bool 1",
        "scalar(sum(resource_up)) >= bool 6",
        "cpu_utilization_percent * on(provider) group_left(tier) provider_info",
        "provider_info * on(provider) group_right(tier) cpu_utilization_percent",
        "cpu_utilization_percent / on(provider) group_left sum by (provider) (cpu_utilization_percent)",
        "sum by (provider) (cpu_utilization_percent) / on(provider) sum by (provider) (memory_usage_percent)",
        "cpu_utilization_percent and memory_usage_percent",
        "cpu_utilization_percent and on(resource_id) (resource_up == 0)",
        "cpu_utilization_percent or memory_usage_percent",
        "memory_usage_percent or on(resource_id) cpu_utilization_percent",
        "cpu_utilization_percent unless memory_usage_percent",
        "cpu_utilization_percent unless on(region) (resource_up == 0)",
        "vector(1) + on() group_left vector(2)",
        "cpu_utilization_percent > on(provider) group_left provider_info",
        "provider_info < on(provider) group_right cpu_utilization_percent",
        "sum(cpu_utilization_percent) + sum(memory_usage_percent)",
        "vector(1) and on() (sum(resource_up) > 100)",
        "scalar(vector(5)) + 1",
        r#"label_replace(rate(network_received_bytes_total[5m]), "__name__", "x", "", "")"#,
        // subqueries
        "max_over_time(rate(network_received_bytes_total[5m])[30m:1m])",
        "avg_over_time(sum(cpu_utilization_percent)[1h:5m])",
        "min_over_time(cpu_utilization_percent[20m:])",
        "max_over_time(cpu_utilization_percent[10m:2m] offset 3m)",
        "sum_over_time(cpu_utilization_percent[15m:1m] @ AT)",
        "max_over_time(avg_over_time(cpu_utilization_percent[10m:1m])[30m:5m])",
        "rate(sum(network_received_bytes_total)[20m:1m])",
        "predict_linear(memory_usage_percent[30m:1m] @ AT, 60)",
    ];
    q.iter()
        .copied()
        .chain(failing_queries())
        .map(|s| s.replace("AT", AT))
        .collect()
}

/// Queries that fail in both, at parse time or during evaluation.
fn failing_queries() -> Vec<&'static str> {
    vec![
        // errors at evaluation, the same in both
        "cpu_utilization_percent + on(provider) memory_usage_percent",
        "cpu_utilization_percent * on(provider) memory_usage_percent",
        r#"{__name__=~"cpu_utilization_percent|memory_usage_percent"} + 1"#,
        r#"rate({__name__=~"cpu_utilization_percent|memory_usage_percent"}[5m])"#,
        r#"label_replace(cpu_utilization_percent, "a-b", "x", "region", ".*")"#,
        r#"label_replace(cpu_utilization_percent, "x", "y", "region", "(")"#,
        "topk(NaN, cpu_utilization_percent)",
        r#"count_values("a-b", resource_up)"#,
        "holt_winters(memory_usage_percent[30m], 2, 0.5)",
        // parse errors
        "sum(",
        "rate(cpu_utilization_percent)",
        "cpu_utilization_percent{",
        "cpu_utilization_percent memory_usage_percent",
        r#""a" + 1"#,
        "1 > 2",
        "sort_by_label(cpu_utilization_percent, \"region\")",
        "limitk(1, cpu_utilization_percent)",
        r#"{region=~".*"}"#,
    ]
}

/// Valid queries without data anywhere in the set's instants and ranges: checked so the
/// comparison cannot quietly turn into comparing empty results.
const EMPTY_EVERYWHERE: &[&str] = &[
    "clamp(cpu_utilization_percent, 80, 20)",
    "topk(0, cpu_utilization_percent)",
    "vector(1) and on() (sum(resource_up) > 100)",
];

/// Queries only an instant query can run (range vectors, strings, sorting).
fn instant_only() -> Vec<String> {
    [
        "cpu_utilization_percent[5m]",
        "memory_usage_percent[10m] offset 5m",
        "cpu_utilization_percent[10m] @ AT",
        "cpu_utilization_percent[10m:1m]",
        "network_received_bytes_total[10m:]",
        "rate(network_received_bytes_total[5m])[20m:2m] offset 1m",
        r#""hello""#,
        "sort(cpu_utilization_percent)",
        "sort_desc(memory_usage_percent)",
        "sort(avg by (provider) (cpu_utilization_percent))",
        "sort_desc(sum by (region) (rate(network_received_bytes_total[5m])))",
        "pi()",
        "sort_desc(topk(3, cpu_utilization_percent))",
    ]
    .iter()
    .map(|s| s.replace("AT", AT))
    .collect()
}

#[test]
fn same_results_as_prometheus() {
    let Some(tools) = prometheus::tools("same_results_as_prometheus") else {
        return;
    };
    let families = dataset();
    let q = querier(&families);
    let prom = Prometheus::start(&tools, &families, "promql-diff");
    let client = reqwest::blocking::Client::new();
    let opts = Options::default();
    let query_url = format!("{}/api/v1/query", prom.base);
    let range_url = format!("{}/api/v1/query_range", prom.base);

    let instants = [
        T0 + 2 * HOUR,
        T0 + 3 * HOUR + 7 * MIN + 33_500,
        // Resource 7's last sample is at 4h: exactly at the edge of the lookback.
        T0 + 4 * HOUR + 5 * MIN,
        T0 + 5 * HOUR + 58 * MIN,
        T0 + 6 * HOUR + 3 * MIN,
    ];
    let ranges = [
        (T0 + 10 * MIN, T0 + 6 * HOUR + 10 * MIN, 5 * MIN),
        (T0 + HOUR, T0 + 2 * HOUR + 30 * MIN, 37_000),
    ];

    let mut failures = Vec::new();
    // Queries whose result had data at least once, to catch a set that compares nothing.
    let mut with_data: std::collections::HashSet<String> = Default::default();
    let mut note = |query: &str, o: &Outcome| {
        if o.has_data() {
            with_data.insert(query.to_string());
        }
    };
    let mut checks = 0;
    let mut errors_compared = 0;
    let all_instant: Vec<String> = queries().into_iter().chain(instant_only()).collect();
    for query in &all_instant {
        let ordered = query.starts_with("sort");
        for &t in &instants {
            let a = ours(instant_query(&q, query, t, &opts));
            let b = theirs(
                &client,
                &query_url,
                &[("query", query.clone()), ("time", secs(t))],
            );
            checks += 1;
            note(query, &b);
            if matches!(b, Outcome::Err { .. }) {
                errors_compared += 1;
            }
            if let Err(e) = compare(ordered, &a, &b) {
                failures.push(format!("instant {query} @ {t}: {e}"));
            }
        }
    }
    for query in queries() {
        for &(start, end, step) in &ranges {
            let a = ours(range_query(&q, &query, start, end, step, &opts));
            let b = theirs(
                &client,
                &range_url,
                &[
                    ("query", query.clone()),
                    ("start", secs(start)),
                    ("end", secs(end)),
                    ("step", secs(step)),
                ],
            );
            checks += 1;
            note(&query, &b);
            if let Err(e) = compare(false, &a, &b) {
                failures.push(format!("range {query} [{start}..{end} / {step}]: {e}"));
            }
        }
    }
    // Range queries of what only an instant query may return fail in both.
    for query in ["cpu_utilization_percent[5m]", r#""hello""#] {
        let a = ours(range_query(&q, query, T0, T0 + HOUR, MIN, &opts));
        let b = theirs(
            &client,
            &range_url,
            &[
                ("query", query.to_string()),
                ("start", secs(T0)),
                ("end", secs(T0 + HOUR)),
                ("step", "60".to_string()),
            ],
        );
        checks += 1;
        if let Err(e) = compare(false, &a, &b) {
            failures.push(format!("range {query}: {e}"));
        }
    }
    println!("{checks} comparisons with Prometheus ({errors_compared} instant error cases)");
    let never: Vec<&String> = all_instant
        .iter()
        .filter(|q| !with_data.contains(*q) && !failing_queries().contains(&q.as_str()))
        .collect();
    assert_eq!(
        never,
        EMPTY_EVERYWHERE.iter().collect::<Vec<_>>(),
        "queries that returned no data at any instant or range (update EMPTY_EVERYWHERE only if that is right)"
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} comparisons differ from Prometheus:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn dataset_has_what_the_queries_need() {
    let families = dataset();
    let total: usize = families.iter().map(|f| f.series.len()).sum();
    assert!((30..=60).contains(&total), "{total} series");
    // A gap longer than the lookback, a late start, counter resets.
    let cpu = &families[0].series;
    let gap = cpu[5].1.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    assert!(gap > 5 * MIN, "gap {gap}");
    assert!(cpu[3].1[0].0 >= T0 + HOUR);
    let net = &families[2].series;
    assert!(net[4].1.windows(2).filter(|w| w[1].1 < w[0].1).count() == 2);
}
