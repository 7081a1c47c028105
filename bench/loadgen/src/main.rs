//! Load generator for `bench/ingest_vs_victoriametrics.sh`.
//!
//! Generates one deterministic data set (N series × M points at a fixed step, values with a
//! fixed number of decimals, a bounded random walk per series) and sends it, gzip-compressed
//! like an agent would, with C concurrent clients:
//! - `--target skymeter`: skymeter Batches to `POST /api/v1/ingest`, one batch per timestamp
//!   slice of `--batch` points;
//! - `--target victoriametrics`: the same points as VictoriaMetrics JSON lines to
//!   `POST /api/v1/import`, with the same labels skymeter's Prometheus naming gives.
//!
//! - `--target skymeter --nats URL`: the same batches published to a NATS JetStream stream,
//!   timed until the servers consuming it have acknowledged the last one.
//!
//! Bodies are built before the clock starts; the figure is points / wall time from the first
//! request to the last answer. `query` mode times `GET` requests and prints percentiles.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use flate2::{write::GzEncoder, Compression};
use skymeter_model::{Batch, Point, ResourceRef, Stat, Unit};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod remote_write;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shipper {
    /// skymeter's `remote_write` publisher, in this process.
    Skymeter,
    /// vmagent: fed the publisher's own requests at `--url`.
    Vmagent,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Skymeter,
    Victoriametrics,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send the data set.
    Ingest {
        #[arg(long, value_enum)]
        target: Target,
        /// Base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        series: usize,
        #[arg(long, default_value_t = 1_000)]
        points: usize,
        /// Points per request.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 60)]
        step_s: i64,
        #[arg(long, default_value_t = 2)]
        decimals: i32,
        /// Also one series of this many points (a 7-day series at 60 s is 10080), for the
        /// query benchmark: metric `bench.long`, resource `i-long`.
        #[arg(long, default_value_t = 10_080)]
        long_points: usize,
        /// The time of the last point (Unix seconds) [default: the last whole step before
        /// now]; give the same value to every target so they get the same data.
        #[arg(long)]
        end: Option<i64>,
        /// With `--target skymeter`: publish the batches to this NATS JetStream
        /// (`nats://…`, stream `--stream`, as the `nats` publisher does) instead of POSTing
        /// them, and time until the servers consuming it (`skymeter server --consume`, durable
        /// consumer `skymeter`) have acknowledged the last one.
        #[arg(long)]
        nats: Option<String>,
        #[arg(long, default_value = "SKYMETER")]
        stream: String,
    },
    /// Ship the data set by remote write (see remote_write.rs).
    RemoteWrite {
        #[arg(long, value_enum)]
        shipper: Shipper,
        /// The write URL: VictoriaMetrics' for `skymeter`, vmagent's for `vmagent`.
        #[arg(long)]
        url: String,
        /// The publisher's data directory (its buffer goes under it).
        #[arg(long, default_value = "bench/out/remote_write/buffer")]
        buffer: std::path::PathBuf,
        #[arg(long, default_value_t = 10_000)]
        series: usize,
        #[arg(long, default_value_t = 100)]
        points: usize,
        /// Points per batch.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Concurrent clients feeding vmagent.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// The time of the last point (Unix seconds) [default: the last whole minute].
        #[arg(long)]
        end: Option<i64>,
    },
    /// Time GET requests to one URL.
    Query {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Requests sent (and checked) before the timed ones.
        #[arg(long, default_value_t = 0)]
        warmup: usize,
    },
    /// Write the data set as OpenMetrics text, for `promtool tsdb create-blocks-from
    /// openmetrics` (the same samples and labels as the other targets get).
    Openmetrics {
        /// Output file.
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 10_000)]
        series: usize,
        #[arg(long, default_value_t = 1_000)]
        points: usize,
        #[arg(long, default_value_t = 60)]
        step_s: i64,
        #[arg(long, default_value_t = 2)]
        decimals: i32,
        /// The time of the last point (Unix seconds) [default: the last whole step before now].
        #[arg(long)]
        end: Option<i64>,
    },
}

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

/// The end of the data set: the last whole step before now, so that every point is in the past.
fn end_ts(step_s: i64) -> i64 {
    let now = Utc::now().timestamp();
    now - now.rem_euclid(step_s)
}

struct Sample {
    series: usize,
    ts: i64,
    value: f64,
}

/// Every point, ordered by time then series (what agents reporting every step produce).
fn data_set(series: usize, points: usize, step_s: i64, decimals: i32, end: i64) -> Vec<Sample> {
    let start = end - step_s * points as i64;
    let scale = 10f64.powi(decimals);
    let mut state: Vec<f64> = (0..series).map(|i| (i % 100) as f64).collect();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(series * points);
    for p in 0..points {
        let ts = start + step_s * (p as i64 + 1);
        for (s, v) in state.iter_mut().enumerate() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let step = ((rng >> 33) % 401) as f64 / 100.0 - 2.0;
            *v = (*v + step).clamp(0.0, 100.0);
            out.push(Sample {
                series: s,
                ts,
                value: (*v * scale).round() / scale,
            });
        }
    }
    out
}

fn resource(s: usize) -> ResourceRef {
    ResourceRef {
        provider: "aws".into(),
        account: "123456789012".into(),
        region: REGIONS[s % REGIONS.len()].into(),
        id: format!("i-{s:08x}").into(),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory")
}

fn ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().expect("valid")
}

fn skymeter_bodies(samples: &[Sample], batch: usize, long: &[(i64, f64)]) -> Vec<Vec<u8>> {
    let point = |metric: &str, r: ResourceRef, t: i64, value: f64| Point {
        metric: metric.into(),
        unit: Unit::Percent,
        stat: Stat::Avg,
        period_s: 60,
        ts: ts(t),
        value,
        resource: r.into(),
        labels: Default::default(),
    };
    let mut bodies = Vec::new();
    for chunk in samples.chunks(batch) {
        let mut b = Batch::new("loadgen", "bench", Utc::now());
        b.points = chunk
            .iter()
            .map(|s| point("cpu.utilization", resource(s.series), s.ts, s.value))
            .collect();
        bodies.push(gzip(&serde_json::to_vec(&b).expect("serializes")));
    }
    for chunk in long.chunks(batch) {
        let mut b = Batch::new("loadgen", "bench-long", Utc::now());
        let r = ResourceRef {
            id: "i-long".into(),
            ..resource(0)
        };
        b.points = chunk
            .iter()
            .map(|(t, v)| point("bench.long", r.clone(), *t, *v))
            .collect();
        bodies.push(gzip(&serde_json::to_vec(&b).expect("serializes")));
    }
    bodies
}

fn vm_line(out: &mut Vec<u8>, name: &str, r: &ResourceRef, t: i64, v: f64) {
    let line = serde_json::json!({
        "metric": {"__name__": name, "provider": r.provider, "account": r.account, "region": r.region,
                   "resource_id": r.id, "stat": "avg"},
        "values": [v],
        "timestamps": [t * 1000],
    });
    serde_json::to_writer(&mut *out, &line).expect("in memory");
    out.push(b'\n');
}

fn vm_bodies(samples: &[Sample], batch: usize, long: &[(i64, f64)]) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for chunk in samples.chunks(batch) {
        let mut out = Vec::new();
        for s in chunk {
            vm_line(
                &mut out,
                "cpu_utilization_percent",
                &resource(s.series),
                s.ts,
                s.value,
            );
        }
        bodies.push(gzip(&out));
    }
    for chunk in long.chunks(batch) {
        let mut out = Vec::new();
        let r = ResourceRef {
            id: "i-long".into(),
            ..resource(0)
        };
        for (t, v) in chunk {
            vm_line(&mut out, "bench_long_percent", &r, *t, *v);
        }
        bodies.push(gzip(&out));
    }
    bodies
}

/// POSTs every body to `endpoint` with `headers`, `clients` requests at a time; fails at the
/// first answer that is not a success.
async fn post_all(
    http: &reqwest::Client,
    endpoint: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    clients: usize,
    headers: &[(&'static str, &'static str)],
) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (bodies, next, http, endpoint) = (
            bodies.clone(),
            next.clone(),
            http.clone(),
            endpoint.to_string(),
        );
        let headers = headers.to_vec();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let mut req = http.post(&endpoint).body(body.clone());
                for (k, v) in &headers {
                    req = req.header(*k, *v);
                }
                let resp = req
                    .send()
                    .await
                    .with_context(|| format!("POST {endpoint}"))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    bail!(
                        "POST {endpoint}: {status}: {}",
                        resp.text().await.unwrap_or_default()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn client(token: Option<&str>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse()?,
        );
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// Publishes the gzip batch bodies to `stream` (created when missing, as the `nats`
/// publisher makes it) and waits until the durable consumer `skymeter` has acknowledged the
/// last one: the seconds from the first publish to then.
async fn through_nats(url: &str, stream: &str, bodies: Vec<Vec<u8>>) -> Result<f64> {
    use async_nats::jetstream::{
        self, message::PublishMessage, stream::Config, stream::StorageType,
    };
    let js = jetstream::new(
        async_nats::connect(url)
            .await
            .context("connecting to NATS")?,
    );
    let s = js
        .get_or_create_stream(Config {
            name: stream.into(),
            subjects: vec!["skymeter.batches.>".into()],
            storage: StorageType::File,
            ..Default::default()
        })
        .await?;
    // The servers retry every 2 s until the stream is there: the clock starts once they
    // have all bound the durable consumer.
    let waiting = Instant::now();
    while s
        .get_consumer::<jetstream::consumer::pull::Config>("skymeter")
        .await
        .is_err()
    {
        if waiting.elapsed() > Duration::from_secs(60) {
            bail!("no server bound the durable consumer `skymeter` of stream {stream}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let mut acks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let m = PublishMessage::build()
            .payload(body.into())
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip");
        acks.push(js.send_publish("skymeter.batches.bench", m).await?);
    }
    let mut last = 0;
    for a in acks {
        last = a.await?.sequence;
    }
    loop {
        let mut c: jetstream::consumer::PullConsumer = s
            .get_consumer("skymeter")
            .await
            .map_err(|e| anyhow::anyhow!("consumer `skymeter`: {e}"))?;
        if c.info().await?.ack_floor.stream_sequence >= last {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the consumers did not acknowledge the last batch within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Ingest {
            target,
            url,
            token,
            series,
            points,
            batch,
            clients,
            step_s,
            decimals,
            long_points,
            end,
            nats,
            stream,
        } => {
            let end = end.unwrap_or_else(|| end_ts(step_s));
            let samples = data_set(series, points, step_s, decimals, end);
            let long: Vec<(i64, f64)> = (0..long_points)
                .map(|i| {
                    (
                        end - step_s * (long_points - 1 - i) as i64,
                        (i % 1000) as f64 / 10.0,
                    )
                })
                .collect();
            let total = samples.len() + long.len();
            let (bodies, path) = match target {
                Target::Skymeter => (skymeter_bodies(&samples, batch, &long), "/api/v1/ingest"),
                Target::Victoriametrics => (vm_bodies(&samples, batch, &long), "/api/v1/import"),
            };
            drop(samples);
            let wire: usize = bodies.iter().map(Vec::len).sum();
            if let Some(nats) = nats {
                let secs = through_nats(&nats, &stream, bodies).await?;
                println!(
                    "{{\"target\":\"skymeter via nats\",\"points\":{total},\"wire_bytes\":{wire},\"seconds\":{secs:.3},\"points_per_s\":{:.0}}}",
                    total as f64 / secs
                );
                return Ok(());
            }
            let bodies = Arc::new(bodies);
            let http = client(token.as_deref())?;
            let endpoint = format!("{}{}", url.trim_end_matches('/'), path);
            let started = Instant::now();
            post_all(
                &http,
                &endpoint,
                &bodies,
                clients,
                &[
                    ("content-encoding", "gzip"),
                    ("content-type", "application/json"),
                ],
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{{\"target\":\"{}\",\"points\":{total},\"requests\":{},\"wire_bytes\":{wire},\"seconds\":{secs:.3},\"points_per_s\":{:.0}}}",
                match target {
                    Target::Skymeter => "skymeter",
                    Target::Victoriametrics => "victoriametrics",
                },
                bodies.len(),
                total as f64 / secs
            );
        }
        Cmd::RemoteWrite {
            shipper,
            url,
            buffer,
            series,
            points,
            batch,
            clients,
            end,
        } => {
            let end = end.unwrap_or_else(|| end_ts(60));
            let batches = remote_write::batches(series, points, batch, end);
            match shipper {
                Shipper::Skymeter => remote_write::skymeter(&url, buffer, batches).await?,
                Shipper::Vmagent => remote_write::vmagent(&url, batches, clients).await?,
            }
        }
        Cmd::Openmetrics {
            out,
            series,
            points,
            step_s,
            decimals,
            end,
        } => {
            let end = end.unwrap_or_else(|| end_ts(step_s));
            let samples = data_set(series, points, step_s, decimals, end);
            let file = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            writeln!(w, "# TYPE cpu_utilization_percent gauge")?;
            let labels: Vec<String> = (0..series)
                .map(|s| {
                    let r = resource(s);
                    format!(
                        "cpu_utilization_percent{{account=\"{}\",provider=\"{}\",region=\"{}\",resource_id=\"{}\",stat=\"avg\"}}",
                        r.account, r.provider, r.region, r.id
                    )
                })
                .collect();
            for s in &samples {
                writeln!(w, "{} {} {}", labels[s.series], s.value, s.ts)?;
            }
            writeln!(w, "# EOF")?;
            w.flush()?;
            println!(
                "{{\"file\":{},\"samples\":{}}}",
                serde_json::Value::String(out.display().to_string()),
                samples.len()
            );
        }
        Cmd::Query {
            url,
            token,
            requests,
            warmup,
        } => {
            let http = client(token.as_deref())?;
            let mut times = Vec::with_capacity(requests);
            let mut bytes = 0;
            for _ in 0..warmup {
                let resp = http
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                let status = resp.status();
                let body = resp.bytes().await?;
                if !status.is_success() {
                    bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
                }
            }
            for _ in 0..requests {
                let t = Instant::now();
                let resp = http
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                let status = resp.status();
                let body = resp.bytes().await?;
                if !status.is_success() {
                    bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                bytes = body.len();
            }
            times.sort_by(f64::total_cmp);
            let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
            println!(
                "{{\"url\":{},\"requests\":{requests},\"bytes\":{bytes},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3}}}",
                serde_json::Value::String(url),
                pct(0.5),
                pct(0.9),
                pct(0.99)
            );
        }
    }
    Ok(())
}
