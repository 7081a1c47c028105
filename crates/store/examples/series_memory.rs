//! Memory per active series of the embedded store, and under churn. Not a test: prints
//! JSON for `bench/series_memory.sh`, which runs it beside VictoriaMetrics and Prometheus.
//!
//! It drives the store API in-process rather than the server's HTTP ingest: what holds
//! memory per series is the store (series index, label index, head), and generating 10 M
//! points as JSON on the benchmark machine's two cores would measure the JSON path and the
//! load generator for minutes; the HTTP layer adds a constant few MB, not bytes per series.
//! RSS is the process's `VmRSS`, so whatever the allocator keeps of the load's freed
//! batches counts against the store.
//!
//! ```text
//! series_memory load  DIR SERIES POINTS END_S   # SERIES × POINTS at 60 s ending at END_S
//! series_memory churn DIR GENERATIONS SERIES POINTS
//! series_memory text  SERIES POINTS END_S       # the same data as Prometheus text (ms)
//! ```

use chrono::{DateTime, Utc};
use skymeter_model::{Batch, Point, ResourceRef, Stat, Unit};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Store};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

const STEP_S: i64 = 60;
/// Series per batch: one timestamp across many series, as an agent sends.
const BATCH_SERIES: usize = 10_000;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// glibc's view of the heap: bytes in use and free (held, not returned), in kB. Tells a
/// leak (in use grows) from fragmentation (free grows).
fn malloc_kb() -> (u64, u64) {
    // SAFETY: mallinfo2 only reads glibc's allocator statistics.
    let m = unsafe { libc::mallinfo2() };
    (
        ((m.uordblks + m.hblkhd) / 1024) as u64,
        (m.fordblks / 1024) as u64,
    )
}

fn resource(prefix: &str, s: usize) -> Arc<ResourceRef> {
    Arc::new(ResourceRef {
        provider: "aws".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        id: format!("{prefix}i-{s:08x}").into(),
    })
}

/// 2-decimal values, different per series and point, deterministic.
fn value(s: usize, p: usize) -> f64 {
    ((s * 7919 + p * 104_729) % 10_000) as f64 / 100.0
}

/// Ingests `series` × `points` (point `p` at `first_s + p * STEP_S`), one timestamp per
/// batch of `BATCH_SERIES` series, oldest first.
fn ingest(store: &EmbeddedStore, prefix: &str, series: usize, points: usize, first_s: i64) {
    let refs: Vec<Arc<ResourceRef>> = (0..series).map(|s| resource(prefix, s)).collect();
    let started = Instant::now();
    for p in 0..points {
        if std::env::var_os("SERIES_MEMORY_PROGRESS").is_some() {
            eprintln!("pass {p}: {:.1} s", started.elapsed().as_secs_f64());
        }
        let ts = DateTime::<Utc>::from_timestamp(first_s + p as i64 * STEP_S, 0).unwrap();
        for from in (0..series).step_by(BATCH_SERIES) {
            let mut b = Batch::new("bench", "bench", Utc::now());
            b.points = (from..(from + BATCH_SERIES).min(series))
                .map(|s| Point {
                    metric: "cpu.utilization".into(),
                    unit: Unit::Percent,
                    stat: Stat::Avg,
                    period_s: 60,
                    ts,
                    value: value(s, p),
                    resource: refs[s].clone(),
                    labels: Default::default(),
                })
                .collect();
            store.ingest(&b).expect("ingest");
        }
    }
}

fn open(dir: &str) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedOptions {
        // The benchmark decides when to seal; no query cache is filled (no queries).
        background: false,
        head_max_points: usize::MAX,
        ..EmbeddedOptions::new(dir)
    })
    .expect("opening the store")
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: {what} expected; see the file's doc comment"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("load") => {
            let dir: String = arg(&args, 2, "DIR");
            let (series, points, end_s): (usize, usize, i64) = (
                arg(&args, 3, "SERIES"),
                arg(&args, 4, "POINTS"),
                arg(&args, 5, "END_S"),
            );
            let store = open(&dir);
            let rss_open = rss_kb();
            let t = Instant::now();
            ingest(
                &store,
                "",
                series,
                points,
                end_s - (points as i64 - 1) * STEP_S,
            );
            let load_s = t.elapsed().as_secs_f64();
            let rss_loaded = rss_kb();
            store.flush().expect("flush");
            let rss_sealed = rss_kb();
            let st = store.stats().unwrap();
            assert_eq!(st.series, series as u64);
            assert_eq!(st.points, (series * points) as u64);
            let per = |kb: u64| (kb.saturating_sub(rss_open) * 1024) as f64 / series as f64;
            println!(
                "{{\"series\":{series},\"points\":{},\"load_s\":{load_s:.1},\"rss_open_kb\":{rss_open},\
                 \"rss_loaded_kb\":{rss_loaded},\"rss_sealed_kb\":{rss_sealed},\
                 \"bytes_per_series_loaded\":{:.0},\"bytes_per_series_sealed\":{:.0}}}",
                series * points,
                per(rss_loaded),
                per(rss_sealed)
            );
        }
        Some("churn") => {
            let dir: String = arg(&args, 2, "DIR");
            let (gens, series, points): (usize, usize, usize) = (
                arg(&args, 3, "GENERATIONS"),
                arg(&args, 4, "SERIES"),
                arg(&args, 5, "POINTS"),
            );
            let store = open(&dir);
            let rss_open = rss_kb();
            // Generation g's points start at T0 + g hours; each retention keeps only the
            // current generation ("a short retention").
            let t0 = 1_767_225_600i64;
            let mut rows = Vec::new();
            for g in 0..gens {
                let first = t0 + g as i64 * 3600;
                ingest(&store, &format!("g{g}-"), series, points, first);
                store.flush().expect("flush");
                let r = store
                    .enforce_retention(DateTime::<Utc>::from_timestamp(first, 0).unwrap())
                    .expect("retention");
                let st = store.stats().unwrap();
                let rss = rss_kb();
                let (in_use, free) = malloc_kb();
                eprintln!(
                    "generation {g}: retention removed {} series, {} points; live series {}; RSS {} kB \
                     (malloc: {in_use} kB in use, {free} kB free; SQLite {} kB)",
                    r.series,
                    r.points,
                    st.series,
                    rss,
                    // SAFETY: a read of SQLite's global allocation counter.
                    unsafe { rusqlite::ffi::sqlite3_memory_used() } / 1024
                );
                rows.push(format!(
                    "{{\"generation\":{g},\"removed_series\":{},\"live_series\":{},\"rss_kb\":{rss}}}",
                    r.series, st.series
                ));
            }
            println!(
                "{{\"rss_open_kb\":{rss_open},\"generations\":[{}]}}",
                rows.join(",")
            );
        }
        Some("text") => {
            let (series, points, end_s): (usize, usize, i64) = (
                arg(&args, 2, "SERIES"),
                arg(&args, 3, "POINTS"),
                arg(&args, 4, "END_S"),
            );
            // The labels skymeter's Prometheus view gives these series (no resource record:
            // no kind or resource_name), so every system holds the same label sets.
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, out.lock());
            let first = end_s - (points as i64 - 1) * STEP_S;
            for p in 0..points {
                let ms = (first + p as i64 * STEP_S) * 1000;
                for s in 0..series {
                    writeln!(
                        out,
                        "cpu_utilization_percent{{account=\"123456789012\",provider=\"aws\",region=\"us-east-1\",resource_id=\"i-{s:08x}\",stat=\"avg\"}} {} {ms}",
                        value(s, p)
                    )
                    .expect("writing to stdout");
                }
            }
            out.flush().expect("writing to stdout");
        }
        _ => {
            eprintln!("usage: series_memory load DIR SERIES POINTS END_S | churn DIR GENERATIONS SERIES POINTS | text SERIES POINTS END_S");
            std::process::exit(2);
        }
    }
}
