//! `loadgen remote-write`: the remote-write shipping benchmark (`bench/remote_write.sh`).
//!
//! The data set (N series × M points, as `ingest` makes it) is cut into batches of
//! `--batch` points, the way an agent's collections arrive. Then, for one target:
//! - `skymeter`: the `remote_write` publisher, built through the plugin registry as the
//!   agent builds it, publishes every batch (encode, buffer to disk, send) and flushes;
//!   the figures are this process's CPU time (user + system, `/proc/self/stat`) and the wall
//!   time of that phase only: the batches are built before the clock starts. `flush`
//!   returns once the receiver has acknowledged every request.
//! - `vmagent`: the very requests the publisher would send (its own encoder, so the
//!   samples and labels are the same) are POSTed to vmagent's `/api/v1/write` with
//!   `--clients` concurrent clients; vmagent decodes, queues, re-encodes and ships them. The
//!   script measures vmagent's CPU and the time until VictoriaMetrics has every row.

use anyhow::{bail, Context, Result};
use chrono::Utc;
use skymeter_model::{Batch, Point, Stat, Unit};
use skymeter_plugin_api::config::Source;
use skymeter_plugin_api::{BuildContext, RawConfig};
use skymeter_plugins::common::request_parts::Protocol as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The batches of the data set, `batch` points each, in time order.
pub fn batches(series: usize, points: usize, batch: usize, end: i64) -> Vec<Batch> {
    let samples = crate::data_set(series, points, 60, 2, end);
    let resources: Vec<Arc<skymeter_model::ResourceRef>> =
        (0..series).map(|s| Arc::new(crate::resource(s))).collect();
    samples
        .chunks(batch)
        .map(|chunk| {
            let mut b = Batch::new("loadgen", "bench", Utc::now());
            b.points = chunk
                .iter()
                .map(|s| Point {
                    metric: "cpu.utilization".into(),
                    unit: Unit::Percent,
                    stat: Stat::Avg,
                    period_s: 60,
                    ts: crate::ts(s.ts),
                    value: s.value,
                    resource: resources[s.series].clone(),
                    labels: Default::default(),
                })
                .collect();
            b
        })
        .collect()
}

/// This process's CPU time (user + system) in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = stat.rsplit_once(") ").context("/proc/self/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // USER_HZ, the unit of these fields, is 100 on every Linux this runs on.
    Ok(ticks / 100.0)
}

/// Publishes every batch through the `remote_write` publisher and flushes; prints the
/// figures as one JSON object.
pub async fn skymeter(url: &str, buffer: PathBuf, batches: Vec<Batch>) -> Result<()> {
    let samples: usize = batches.iter().map(|b| b.points.len()).sum();
    let text = format!(
        "url = {url:?}\nbuffer = {{ dir = {:?} }}\n",
        buffer.display().to_string()
    );
    let source = Source::new("loadgen", text);
    let value = source.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let raw = RawConfig::new(source.clone(), value, Default::default());
    let ctx = BuildContext {
        agent_id: "loadgen".into(),
        data_dir: buffer.clone(),
        task: "bench".into(),
        interval: None,
    };
    let registry = skymeter_plugins::builtin();
    let factory = registry
        .publisher(skymeter_plugins::publishers::remote_write::NAME)
        .context("remote_write is registered")?;
    let mut publisher = (factory.build)(&raw, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cpu0 = cpu_seconds()?;
    let started = Instant::now();
    for b in &batches {
        publisher
            .publish(b)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    publisher
        .flush()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu0;
    let left = std::fs::read_dir(buffer.join("buffer/bench/remote_write"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    if left > 0 {
        bail!("{left} batch(es) still buffered after flush");
    }
    println!(
        "{{\"target\":\"skymeter\",\"samples\":{samples},\"batches\":{},\"seconds\":{secs:.3},\"samples_per_s\":{:.0},\"cpu_s\":{cpu:.2},\"cpu_us_per_sample\":{:.3}}}",
        batches.len(),
        samples as f64 / secs,
        cpu * 1e6 / samples as f64
    );
    Ok(())
}

/// POSTs the publisher's own requests for every batch to `url` (vmagent), `clients` at a
/// time; prints the feed's figures (the script measures vmagent itself).
pub async fn vmagent(url: &str, batches: Vec<Batch>, clients: usize) -> Result<()> {
    let samples: usize = batches.iter().map(|b| b.points.len()).sum();
    let encoder = skymeter_plugins::publishers::remote_write::RemoteWrite::new(
        skymeter_plugins::publishers::remote_write::DEFAULT_MAX_SAMPLES,
    );
    let mut bodies = Vec::new();
    for b in &batches {
        bodies.extend(encoder.encode(b).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    drop(batches);
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    crate::post_all(
        &reqwest::Client::new(),
        url,
        &bodies,
        clients,
        &[
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
        ],
    )
    .await?;
    println!(
        "{{\"target\":\"vmagent-feed\",\"samples\":{samples},\"requests\":{},\"seconds\":{:.3}}}",
        bodies.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
