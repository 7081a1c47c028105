//! The server's own metrics, in the Prometheus text exposition format (version 0.0.4).
//!
//! Formatted by hand: a handful of counters, one histogram and the store's sizes do not
//! justify a metrics framework, and hand-formatting keeps label values under our control:
//! routes are the router's patterns (or `unmatched`), never raw paths, and methods are the
//! standard ones (or `other`), never the client's string, so a client cannot grow the
//! label sets.

use skymeter_store::StoreStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds, in seconds, of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// What ingest did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IngestResult {
    Stored,
    Duplicate,
    Rejected,
}

impl IngestResult {
    fn as_str(self) -> &'static str {
        match self {
            IngestResult::Stored => "stored",
            IngestResult::Duplicate => "duplicate",
            IngestResult::Rejected => "rejected",
        }
    }
}

/// What the NATS consumer (`--consume`) did.
#[derive(Default)]
pub struct ConsumerStats {
    /// Whether a consumer is configured at all (nothing is shown otherwise).
    pub enabled: AtomicBool,
    pub connected: AtomicBool,
    /// Messages the consumer had left to deliver, as of the last message.
    pub pending: AtomicU64,
    pub acked: AtomicU64,
    /// Messages received that had been delivered before (to this or another server).
    pub redelivered: AtomicU64,
    pub terminated: AtomicU64,
    /// Storage failures answered with a delayed negative acknowledgement.
    pub nacked: AtomicU64,
}

/// Every metric of the server.
#[derive(Default)]
pub struct Metrics {
    /// (method label, route pattern or `unmatched`, status) → count.
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    request_duration: Histogram,
    batches: Mutex<BTreeMap<IngestResult, u64>>,
    pub points: AtomicU64,
    pub resources: AtomicU64,
    pub costs: AtomicU64,
    pub collect_errors: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_decoded: AtomicU64,
    pub ingest_duration: Histogram,
    /// Ingest-scope requests answered 429 because the in-flight byte budget was used up.
    pub budget_refusals: AtomicU64,
    /// Requests whose handler panicked (answered 500 by the catch-panic layer).
    pub panics: AtomicU64,
    /// PromQL queries stopped because their client went away.
    pub queries_canceled: AtomicU64,
    /// The NATS consumer's state (`--consume`).
    pub consumer: std::sync::Arc<ConsumerStats>,
}

/// The method as a label value: one of the standard methods, else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

impl Metrics {
    /// Counts an answered request; `route` must be a route pattern or `unmatched`.
    pub fn request(&self, method: &axum::http::Method, route: &str, status: u16, took: Duration) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method_label(method), route.to_string(), status))
            .or_default() += 1;
        drop(m);
        self.request_duration.observe(took);
    }

    pub fn batch(&self, result: IngestResult) {
        let mut m = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(result).or_default() += 1;
    }

    /// The exposition text; `stats` is absent when the store could not say;
    /// `ingest_in_flight` is the bytes the ingest budget has reserved now.
    pub fn render(&self, stats: Option<&StoreStats>, ingest_in_flight: usize) -> String {
        let mut out = String::with_capacity(4096);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        header(
            &mut out,
            "skymeter_build_info",
            "gauge",
            "The server's version.",
        );
        let _ = writeln!(
            out,
            "skymeter_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        header(
            &mut out,
            "skymeter_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route pattern and status.",
        );
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "skymeter_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        header(
            &mut out,
            "skymeter_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request.",
        );
        self.request_duration
            .write(&mut out, "skymeter_http_request_duration_seconds", "");

        header(
            &mut out,
            "skymeter_ingest_batches_total",
            "counter",
            "Batches received on /api/v1/ingest, by result (stored, duplicate, rejected).",
        );
        let batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        for r in [
            IngestResult::Stored,
            IngestResult::Duplicate,
            IngestResult::Rejected,
        ] {
            let n = batches.get(&r).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "skymeter_ingest_batches_total{{result=\"{}\"}} {n}",
                r.as_str()
            );
        }
        drop(batches);
        let counters = [
            (
                "skymeter_ingest_points_total",
                "Points stored.",
                &self.points,
            ),
            (
                "skymeter_ingest_resources_total",
                "Resource records stored.",
                &self.resources,
            ),
            (
                "skymeter_ingest_costs_total",
                "Cost lines stored.",
                &self.costs,
            ),
            (
                "skymeter_ingest_collect_errors_total",
                "Collector errors carried by stored batches.",
                &self.collect_errors,
            ),
            (
                "skymeter_ingest_received_bytes_total",
                "Ingest request bytes as received (compressed or not).",
                &self.bytes_received,
            ),
            (
                "skymeter_ingest_decoded_bytes_total",
                "Ingest request bytes after decompression.",
                &self.bytes_decoded,
            ),
            (
                "skymeter_ingest_budget_refusals_total",
                "Ingest-scope requests answered 429 because `ingest_budget_bytes` was in use.",
                &self.budget_refusals,
            ),
            (
                "skymeter_http_panics_total",
                "Requests whose handler panicked; each was answered 500 and the server went on.",
                &self.panics,
            ),
            (
                "skymeter_queries_canceled_total",
                "PromQL queries stopped before their end because the client disconnected.",
                &self.queries_canceled,
            ),
        ];
        for (name, help, v) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        header(
            &mut out,
            "skymeter_ingest_in_flight_bytes",
            "gauge",
            "Bytes of the ingest budget reserved by requests in flight.",
        );
        let _ = writeln!(out, "skymeter_ingest_in_flight_bytes {ingest_in_flight}");
        header(
            &mut out,
            "skymeter_ingest_duration_seconds",
            "histogram",
            "Time to decode, validate and store one batch.",
        );
        self.ingest_duration
            .write(&mut out, "skymeter_ingest_duration_seconds", "");

        if let Some(s) = stats {
            let gauges = [
                (
                    "skymeter_store_resources",
                    "Resources in the store.",
                    s.resources,
                ),
                ("skymeter_store_series", "Series in the store.", s.series),
                ("skymeter_store_points", "Points in the store.", s.points),
                ("skymeter_store_costs", "Cost lines in the store.", s.costs),
                ("skymeter_store_agents", "Registered agents.", s.agents),
                (
                    "skymeter_store_batches",
                    "Batch ids remembered for dedupe.",
                    s.batches,
                ),
                (
                    "skymeter_store_disk_bytes",
                    "Bytes of the data directory.",
                    s.disk_bytes,
                ),
                (
                    "skymeter_store_point_block_bytes",
                    "Bytes of sealed, compressed point blocks.",
                    s.point_block_bytes,
                ),
                (
                    "skymeter_store_point_block_points",
                    "Points in sealed, compressed point blocks.",
                    s.point_block_points,
                ),
            ];
            for (name, help, v) in gauges {
                header(&mut out, name, "gauge", help);
                let _ = writeln!(out, "{name} {v}");
            }
        }
        self.render_consumer(&mut out);
        header(
            &mut out,
            "skymeter_store_up",
            "gauge",
            "1 when the store answered its statistics, 0 when it failed.",
        );
        let _ = writeln!(out, "skymeter_store_up {}", u8::from(stats.is_some()));
        out
    }
}

impl Metrics {
    /// The NATS consumer's gauges and counters, when one is configured.
    fn render_consumer(&self, out: &mut String) {
        let c = &self.consumer;
        if !c.enabled.load(Ordering::Relaxed) {
            return;
        }
        let values = [
            (
                "skymeter_nats_consumer_connected",
                "gauge",
                "1 while the NATS consumer is connected and bound to its durable consumer.",
                u64::from(c.connected.load(Ordering::Relaxed)),
            ),
            (
                "skymeter_nats_consumer_pending",
                "gauge",
                "Messages the durable consumer had left to deliver, as of the last one received.",
                c.pending.load(Ordering::Relaxed),
            ),
            (
                "skymeter_nats_consumer_acked_total",
                "counter",
                "Batches from NATS stored (or found stored) and acknowledged.",
                c.acked.load(Ordering::Relaxed),
            ),
            (
                "skymeter_nats_consumer_redelivered_total",
                "counter",
                "Messages received that had been delivered before (to this or another server).",
                c.redelivered.load(Ordering::Relaxed),
            ),
            (
                "skymeter_nats_consumer_terminated_total",
                "counter",
                "Batches from NATS that can never be stored, terminated (the log names each).",
                c.terminated.load(Ordering::Relaxed),
            ),
            (
                "skymeter_nats_consumer_nacked_total",
                "counter",
                "Batches from NATS whose storing failed, handed back for redelivery.",
                c.nacked.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, v) in values {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

/// Label value escaping of the text format: backslash, quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_labels_are_bounded_whatever_the_client_sends() {
        use axum::http::Method;
        let m = Metrics::default();
        for i in 0..1000 {
            let method = Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            m.request(&method, "unmatched", 405, Duration::from_millis(1));
        }
        m.request(&Method::GET, "/health", 200, Duration::from_millis(1));
        let text = m.render(None, 0);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("skymeter_http_requests_total{"))
            .collect();
        assert_eq!(
            lines,
            [
                "skymeter_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
                "skymeter_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"} 1000",
            ],
            "{text}"
        );
    }

    #[test]
    fn the_nats_consumer_shows_only_when_one_is_configured() {
        let m = Metrics::default();
        assert!(!m.render(None, 0).contains("skymeter_nats_consumer"));
        m.consumer.enabled.store(true, Ordering::Relaxed);
        m.consumer.connected.store(true, Ordering::Relaxed);
        m.consumer.acked.store(3, Ordering::Relaxed);
        m.consumer.terminated.store(1, Ordering::Relaxed);
        let text = m.render(None, 0);
        for line in [
            "# TYPE skymeter_nats_consumer_connected gauge\nskymeter_nats_consumer_connected 1\n",
            "# TYPE skymeter_nats_consumer_acked_total counter\nskymeter_nats_consumer_acked_total 3\n",
            "skymeter_nats_consumer_terminated_total 1\n",
            "skymeter_nats_consumer_redelivered_total 0\n",
            "skymeter_nats_consumer_pending 0\n",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }
}
