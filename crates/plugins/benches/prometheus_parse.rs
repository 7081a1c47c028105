//! Throughput of the Prometheus text parser (`common::prom_text`) on a ~10 MB
//! node_exporter-like body: many families with HELP and TYPE, counters with several labels,
//! gauges with exponent floats, histograms and summaries, a few escaped label values.
//!
//! `cargo bench -p skymeter-plugins --bench prometheus_parse` prints MB/s and samples/s;
//! with `--features bench-compare` it also measures the crates.io parsers it was compared
//! with, and std's float parser against `fast-float2`. Environment:
//! - `PROM_BENCH_MB` (default 10): body size;
//! - `PROM_BENCH_ROUNDS` (default 10): parses per parser;
//! - `PROM_BENCH_BODY=/path`: also write the body there (bench/prometheus_parse.sh times
//!   `promtool check metrics` on it).

use skymeter_plugin_api::MetricSelection;
use skymeter_plugins::common::prom_points::PromConvert;
use skymeter_plugins::common::prom_text;
use std::fmt::Write;
use std::hint::black_box;
use std::time::Instant;

/// A small deterministic generator, so every run parses the same body.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn float(&mut self) -> f64 {
        self.next() as f64 / 1024.0
    }
}

const MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// One "exporter block": the families of a node_exporter-like target, named with `b` so
/// that blocks can repeat without repeating a family.
fn block(out: &mut String, b: usize, rng: &mut Lcg) {
    let w = |out: &mut String, help: &str, name: &str, t: &str| {
        writeln!(out, "# HELP {name} {help}").unwrap();
        writeln!(out, "# TYPE {name} {t}").unwrap();
    };
    let name = format!("node{b}_cpu_seconds_total");
    w(
        out,
        "Seconds the CPUs spent in each mode.",
        &name,
        "counter",
    );
    for cpu in 0..16 {
        for mode in MODES {
            writeln!(
                out,
                "{name}{{cpu=\"{cpu}\",mode=\"{mode}\"}} {:.2}",
                rng.float()
            )
            .unwrap();
        }
    }
    for (metric, t) in [
        ("receive_bytes_total", "counter"),
        ("transmit_bytes_total", "counter"),
        ("receive_packets_total", "counter"),
        ("mtu_bytes", "gauge"),
    ] {
        let name = format!("node{b}_network_{metric}");
        w(out, "Network device statistic.", &name, t);
        for dev in ["eth0", "eth1", "lo", "docker0", "veth1a2b3c4", "wlan0"] {
            writeln!(out, "{name}{{device=\"{dev}\"}} {}", rng.next()).unwrap();
        }
    }
    let name = format!("node{b}_filesystem_avail_bytes");
    w(
        out,
        "Filesystem space available to non-root users in bytes.",
        &name,
        "gauge",
    );
    for i in 0..8 {
        writeln!(
            out,
            "{name}{{device=\"/dev/nvme0n1p{i}\",fstype=\"ext4\",mountpoint=\"/srv/data {i}\"}} {:e}",
            rng.float() * 1e6
        )
        .unwrap();
    }
    let name = format!("app{b}_http_request_duration_seconds");
    w(
        out,
        "A histogram of the request duration, by handler.",
        &name,
        "histogram",
    );
    for handler in ["/api/v1/query", "/api/v1/series", "/metrics"] {
        for code in ["200", "500"] {
            let mut acc = 0;
            for le in BUCKETS {
                acc += rng.next() % 1000;
                writeln!(
                    out,
                    "{name}_bucket{{handler=\"{handler}\",method=\"GET\",code=\"{code}\",le=\"{le}\"}} {acc}"
                )
                .unwrap();
            }
            let labels = format!("handler=\"{handler}\",method=\"GET\",code=\"{code}\"");
            writeln!(out, "{name}_sum{{{labels}}} {}", rng.float()).unwrap();
            writeln!(out, "{name}_count{{{labels}}} {acc}").unwrap();
        }
    }
    let name = format!("go{b}_gc_duration_seconds");
    w(
        out,
        "A summary of the pause duration of garbage collection cycles.",
        &name,
        "summary",
    );
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        writeln!(out, "{name}{{quantile=\"{q}\"}} {:e}", rng.float() / 1e9).unwrap();
    }
    writeln!(out, "{name}_sum {}", rng.float()).unwrap();
    writeln!(out, "{name}_count {}", rng.next()).unwrap();
    let name = format!("node{b}_uname_info");
    w(out, "Labeled system information.", &name, "gauge");
    writeln!(
        out,
        "{name}{{machine=\"x86_64\",nodename=\"host-{b}\",release=\"6.1.0-18-amd64\",sysname=\"Linux\",version=\"#1 SMP \\\"Debian\\\" 6.1.76-1\"}} 1"
    )
    .unwrap();
    let name = format!("process{b}_resident_memory_bytes");
    w(out, "Resident memory size in bytes.", &name, "gauge");
    writeln!(out, "{name} {:e}", rng.float() * 1e3).unwrap();
}

fn body(mb: usize) -> String {
    let mut rng = Lcg(42);
    let mut out = String::with_capacity(mb * 1_000_000 + 100_000);
    let mut b = 0;
    while out.len() < mb * 1_000_000 {
        block(&mut out, b, &mut rng);
        b += 1;
    }
    out
}

/// Runs `f` `rounds` times (after one warm-up) and prints throughput; `f` returns the
/// number of samples it read.
fn measure(what: &str, body: &str, rounds: usize, mut f: impl FnMut(&str) -> usize) {
    let samples = f(body);
    let start = Instant::now();
    for _ in 0..rounds {
        assert_eq!(black_box(f(black_box(body))), samples, "{what}");
    }
    let secs = start.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "{what:<44} {:>8.1} MB/s {:>8.2} M samples/s  ({samples} samples, {:.1} ms per parse)",
        body.len() as f64 / 1e6 / secs,
        samples as f64 / 1e6 / secs,
        secs * 1e3
    );
}

fn main() {
    let mb = std::env::var("PROM_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rounds = std::env::var("PROM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let body = body(mb);
    if let Ok(path) = std::env::var("PROM_BENCH_BODY") {
        std::fs::write(&path, &body).expect("write PROM_BENCH_BODY");
    }
    println!(
        "body: {:.1} MB, {} lines; {rounds} rounds each",
        body.len() as f64 / 1e6,
        body.lines().count()
    );

    measure("skymeter prom_text::parse_each", &body, rounds, |b| {
        let mut n = 0;
        let mut sum = 0.0;
        prom_text::parse_each(b, |s| {
            n += 1;
            sum += s.value;
        })
        .expect("the generated body parses");
        black_box(sum);
        n
    });
    measure(
        "skymeter prom_text::parse (owned samples)",
        &body,
        rounds,
        |b| prom_text::parse(b).expect("parses").len(),
    );

    measure(
        "skymeter PromConvert::convert (readings)",
        &body,
        rounds,
        |b| {
            PromConvert::default()
                .convert(b, &MetricSelection::all())
                .expect("converts")
                .readings
                .len()
        },
    );

    #[cfg(feature = "bench-compare")]
    compare(&body, rounds);
    #[cfg(not(feature = "bench-compare"))]
    println!("(run with --features bench-compare to measure the crates.io parsers too)");
}

#[cfg(feature = "bench-compare")]
fn compare(body: &str, rounds: usize) {
    measure("prometheus-parse 0.2 Scrape::parse", body, rounds, |b| {
        let lines = b.lines().map(|l| Ok(l.to_string()));
        let s = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse parses");
        // It folds histogram and summary lines into one sample per label set: count those.
        s.samples.len()
    });
    measure(
        "prom_text_format_parser 0.1 Scrape::parse",
        body,
        rounds,
        |b| {
            let s = prom_text_format_parser::Scrape::parse(b).expect("prom_text_format_parser");
            // It keeps values as strings: read them as floats for equal work.
            let mut sum = 0.0;
            let mut n = 0;
            for m in &s.metrics {
                for smp in &m.samples {
                    sum += smp.value.value.as_f64();
                    n += 1;
                }
            }
            black_box(sum);
            n
        },
    );

    // Float parsing alone: every value token of the body, std vs fast-float2.
    let tokens: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    let bytes: usize = tokens.iter().map(|t| t.len()).sum();
    for (what, f) in [
        (
            "floats: std str::parse::<f64>",
            (|t: &str| t.parse::<f64>().unwrap()) as fn(&str) -> f64,
        ),
        ("floats: fast_float2::parse", |t: &str| {
            fast_float2::parse::<f64, _>(t).unwrap()
        }),
        ("floats: integer fast path, then std", |t: &str| {
            int_fast_path(t).unwrap_or_else(|| t.parse::<f64>().unwrap())
        }),
        ("floats: prom_text::parse_value", |t: &str| {
            prom_text::parse_value(t).unwrap()
        }),
    ] {
        let start = Instant::now();
        let mut sum = 0.0;
        for _ in 0..rounds {
            for t in &tokens {
                sum += f(black_box(t));
            }
        }
        black_box(sum);
        let secs = start.elapsed().as_secs_f64() / rounds as f64;
        println!(
            "{what:<44} {:>8.1} M values/s ({} tokens, {:.1} MB)",
            tokens.len() as f64 / 1e6 / secs,
            tokens.len(),
            bytes as f64 / 1e6
        );
    }
}

/// Plain integers of up to 15 digits without a float parser: the alternative measured.
#[cfg(feature = "bench-compare")]
fn int_fast_path(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(if neg { -(n as f64) } else { n as f64 })
}
