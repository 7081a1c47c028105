//! `remote_write`: sends each batch's points to a Prometheus remote-write 1.0 receiver
//! (VictoriaMetrics, Mimir, Prometheus with `--web.enable-remote-write-receiver`, vmagent,
//! skymeter's own server), named and labelled exactly as skymeter's query API shows them
//! ([`skymeter_model::prom::series_labels`]), so a dashboard works on either.
//!
//! - Resource labels (`kind`, `resource_name`, `tag_*`) come from the resource's latest
//!   record the publisher has seen: in the batch (agents send records and points together)
//!   or in an earlier one since the process started, as the server's query API takes them
//!   from the latest record it holds. A resource never seen with a record gets the key
//!   labels only.
//! - Cost lines are sent as the server's cost series (`cost_billed_usd`,
//!   `cost_effective_usd`, …; [`skymeter_model::cost_series`]), so that cost charts work on
//!   the TSDB as on the server.
//! - Samples of a series go in time order; two samples of one series at one timestamp keep
//!   the later one in the batch (a receiver would refuse or keep either).
//! - A value that is not finite is not sent: the record format says values are finite, and
//!   a NaN would read as a Prometheus staleness marker to some receivers. Such points are
//!   counted in a warning.
//! - At most `max_samples_per_send` samples per request; a batch with more makes several
//!   requests, buffered together ([`crate::common::request_parts`]).
//!
//! Delivery goes through the publishers' shared on-disk buffer: `publish` encodes the batch
//! (protobuf + snappy) and writes it to disk (fsynced) and returns; the sender POSTs it.
//! Statuses as Prometheus treats them: connection errors, 5xx, 408 and 429 (honouring
//! `Retry-After`) are retried, the batch stays on disk; any other 4xx means the receiver
//! refuses that data: the request is reported (status, answer, its first series) and
//! skipped, and the batch moves to `rejected/` with the report. Unlike Prometheus, 401, 403,
//! 404 and redirects are retried (logged as errors to fix): they are a wrong URL or
//! credentials, which a person fixes, and dropping every batch meanwhile would lose them
//! (as the `http` and `server` publishers do).

use crate::common::delivery::{BufferConfig, Terms};
use crate::common::http_post::parse_url;
use crate::common::request_parts::{
    build_publisher, encode_error, request_headers, BasicAuth, Endpoint, Protocol, Verdict,
};
use chrono::{DateTime, Utc};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use reqwest::header::{HeaderName, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::prom::{series_label_refs, ResourceLabels, SeriesId};
use skymeter_model::prompb::{Sample, TimeSeries, WriteRequest};
use skymeter_model::{Batch, Point, ResourceRef};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    BuildContext, ConfigError, PluginDescription, PluginError, PluginKind, Publisher,
    PublisherFactory, RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// `remote_write` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's write endpoint: VictoriaMetrics and Prometheus
    /// `http://HOST:PORT/api/v1/write`, Mimir `http://HOST:PORT/api/v1/push`.
    pub url: String,
    /// Extra request headers (e.g. `X-Scope-OrgID` for Mimir); values are secrets.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SecretString>,
    /// Sent as `Authorization: Bearer <token>`. A secret: write `"${TSDB_TOKEN}"`.
    #[schemars(with = "Option<String>")]
    pub bearer_token: Option<SecretString>,
    /// `{ username, password }`, sent as HTTP basic auth; `password` is a secret.
    pub basic_auth: Option<BasicAuth>,
    /// Time allowed for one request, connection and answer included.
    #[serde(default = "thirty_seconds")]
    pub timeout: DurationStr,
    /// The waits between tries (`attempts` does not apply: a batch is never given up on).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The on-disk buffer (always on): `{ dir, max_size = "1GB", when_full = "block" }`;
    /// default directory `<data_dir>/buffer/<task>/remote_write`.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// At most this many samples per request.
    #[serde(default = "default_max_samples")]
    pub max_samples_per_send: usize,
}

/// As Prometheus' `remote_timeout`.
fn thirty_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(30))
}

/// vmagent's default block size (`-remoteWrite.maxRowsPerBlock`). Prometheus sends 2,000 (it
/// sends every scrape at once and parallelises over shards); an agent sends one batch at a
/// time, so fewer, larger requests keep the receiver's per-request cost low, and 10,000
/// samples (a few hundred kB compressed at most) are well within every named receiver's
/// request limits (Mimir: 100 MiB; skymeter's server: its body limit).
pub const DEFAULT_MAX_SAMPLES: usize = 10_000;

fn default_max_samples() -> usize {
    DEFAULT_MAX_SAMPLES
}

/// The most `max_samples_per_send` may be: a request of a million samples is already tens
/// of megabytes before compression, past what receivers take by default.
const MAX_SAMPLES_LIMIT: usize = 1_000_000;

/// The registry's name of the plugin.
pub const NAME: &str = "remote_write";

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: NAME,
            kind: PluginKind::Publisher,
            summary: "Sends points (and cost series) by Prometheus remote-write 1.0 to VictoriaMetrics, Mimir or Prometheus, named as skymeter's query API shows them, through a durable on-disk buffer",
            config_schema: PluginDescription::schema_of::<RemoteWriteConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: RemoteWriteConfig = raw.decode()?;
    let url = parse_url(
        raw,
        &cfg.url,
        "write e.g. \"http://127.0.0.1:8428/api/v1/write\"",
    )?;
    if cfg.max_samples_per_send == 0 || cfg.max_samples_per_send > MAX_SAMPLES_LIMIT {
        return Err(raw.error(
            "max_samples_per_send",
            format!(
                "must be between 1 and {MAX_SAMPLES_LIMIT}; the default is {DEFAULT_MAX_SAMPLES}"
            ),
        ));
    }
    let headers = request_headers(
        raw,
        &[
            (CONTENT_ENCODING, "snappy"),
            (CONTENT_TYPE, "application/x-protobuf"),
            (
                HeaderName::from_static("x-prometheus-remote-write-version"),
                skymeter_model::prompb::VERSION,
            ),
        ],
        &cfg.headers,
        cfg.bearer_token.as_ref(),
        cfg.basic_auth.as_ref(),
    )?;
    build_publisher(
        raw,
        ctx,
        Terms::of_buffer_table(NAME, "the remote-write receiver"),
        RemoteWrite::new(cfg.max_samples_per_send),
        Endpoint {
            url,
            headers,
            timeout: cfg.timeout.0,
            retry: cfg.retry,
            buffer: cfg.buffer,
        },
    )
}

/// The remote-write protocol: encoding and status handling.
pub struct RemoteWrite {
    max_samples: usize,
    /// The latest record of each resource seen so far (see the module's documentation).
    known: Mutex<KnownResources>,
}

/// Per resource, when its latest record was observed and the labels it gives.
pub type KnownResources = FxHashMap<ResourceRef, (DateTime<Utc>, ResourceLabels)>;

/// Past this many resources, the remembered records are forgotten (and learnt again from
/// the next batches): a bound on memory for an agent whose resources churn.
const MAX_KNOWN_RESOURCES: usize = 1_000_000;

impl RemoteWrite {
    pub fn new(max_samples: usize) -> Self {
        RemoteWrite {
            max_samples,
            known: Mutex::new(FxHashMap::default()),
        }
    }
}

impl Protocol for RemoteWrite {
    fn encode(&self, batch: &Batch) -> Result<Vec<Vec<u8>>, PluginError> {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let requests = write_requests(batch, self.max_samples, &mut known);
        drop(known);
        let mut snappy = snap::raw::Encoder::new();
        requests
            .iter()
            .map(|r| {
                snappy
                    .compress_vec(r)
                    .map_err(|e| encode_error(format!("cannot compress a write request: {e}")))
            })
            .collect()
    }

    fn verdict(&self, status: StatusCode) -> Verdict {
        match status.as_u16() {
            408 | 429 => Verdict::Retry,
            401 => Verdict::Fix("check `bearer_token`, `basic_auth` or the auth header in `headers`"),
            403 => Verdict::Fix("the credentials are not allowed to write there"),
            404 => Verdict::Fix(
                "nothing takes remote writes at `url`; VictoriaMetrics and Prometheus take them at /api/v1/write, Mimir at /api/v1/push",
            ),
            300..=399 => Verdict::Fix("set `url` to the final address"),
            400..=499 => Verdict::Refused,
            _ => Verdict::Retry,
        }
    }

    fn describe(&self, request: &[u8]) -> String {
        let decoded = snap::raw::Decoder::new()
            .decompress_vec(request)
            .ok()
            .and_then(|b| WriteRequest::decode(b.as_slice()).ok());
        let Some(req) = decoded else {
            return "an unreadable request".into();
        };
        let samples: usize = req.timeseries.iter().map(|s| s.samples.len()).sum();
        let first: Vec<String> = req.timeseries.iter().take(3).map(show_series).collect();
        format!(
            "{} series, {samples} samples, first {}",
            req.timeseries.len(),
            first.join(", ")
        )
    }
}

/// A series as PromQL writes it: `name{a="b", …}`.
fn show_series(s: &TimeSeries) -> String {
    let name = s
        .labels
        .iter()
        .find(|l| l.name == "__name__")
        .map(|l| l.value.as_str())
        .unwrap_or_default();
    let rest: Vec<String> = s
        .labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

/// A batch's points and cost series as encoded `WriteRequest`s (protobuf, not yet
/// compressed) of at most `max_samples` samples each, series labelled as skymeter's query
/// API shows them, samples in time order.
///
/// The series are written straight into each request's bytes with prost's field encoders
/// rather than built as [`TimeSeries`] values first: building them took two allocations per
/// label per series, which were most of the publisher's CPU time (bench/remote_write.sh
/// under perf). The tests decode the result with the receiver's [`WriteRequest`].
pub fn write_requests(
    batch: &Batch,
    max_samples: usize,
    known: &mut KnownResources,
) -> Vec<Vec<u8>> {
    if known.len() + batch.resources.len() > MAX_KNOWN_RESOURCES {
        known.clear();
    }
    for r in &batch.resources {
        match known.get(&r.reference()) {
            Some((seen, _)) if *seen > r.observed_at => {}
            _ => {
                known.insert(r.reference(), (r.observed_at, ResourceLabels::of(r)));
            }
        }
    }
    let records = &*known;
    let cost_points: Vec<Point> = batch
        .costs
        .iter()
        .flat_map(skymeter_model::cost_series::cost_points)
        .collect();
    // Series in the order the batch first names them, with their samples.
    type Key<'a> = (
        &'a str,
        skymeter_model::Unit,
        skymeter_model::Stat,
        &'a ResourceRef,
        &'a skymeter_model::Labels,
    );
    // FxHash rather than the default SipHash: the key is hashed once per point, and SipHash
    // was a tenth of the publisher's CPU time.
    let mut index: FxHashMap<Key<'_>, usize> = FxHashMap::default();
    let mut series: Vec<(SeriesId<'_>, Vec<Sample>)> = Vec::new();
    let mut not_finite = 0usize;
    for p in batch.points.iter().chain(&cost_points) {
        if !p.value.is_finite() {
            not_finite += 1;
            continue;
        }
        let id = SeriesId::of(p);
        let key = (id.metric, id.unit, id.stat, id.resource, id.labels);
        let i = *index.entry(key).or_insert_with(|| {
            series.push((id, Vec::new()));
            series.len() - 1
        });
        series[i].1.push(Sample {
            value: p.value,
            timestamp: p.ts.timestamp_millis(),
        });
    }
    if not_finite > 0 {
        tracing::warn!(
            target: "skymeter::publish",
            task = %batch.task,
            "remote_write: {not_finite} point(s) of batch {} with a value that is not a finite number were not sent",
            batch.batch_id
        );
    }
    let mut requests = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut in_current = 0usize;
    let mut labels: Vec<u8> = Vec::new();
    for (id, mut samples) in series {
        // A stable sort keeps the batch's order among equal timestamps: the last one stays.
        samples.sort_by_key(|s| s.timestamp);
        samples.dedup_by(|later, earlier| {
            if later.timestamp == earlier.timestamp {
                *earlier = later.clone();
                true
            } else {
                false
            }
        });
        let resource = records.get(id.resource).map(|(_, l)| l);
        labels.clear();
        for (name, value) in series_label_refs(id, resource) {
            put_label(&name, &value, &mut labels);
        }
        let mut rest = samples.as_slice();
        while !rest.is_empty() {
            let room = max_samples - in_current;
            let (now, later) = rest.split_at(room.min(rest.len()));
            put_series(&labels, now, &mut current);
            in_current += now.len();
            rest = later;
            if in_current == max_samples {
                requests.push(std::mem::take(&mut current));
                in_current = 0;
            }
        }
    }
    if in_current > 0 {
        requests.push(current);
    }
    requests
}

/// A `Label` as field 1 of a `TimeSeries`.
fn put_label(name: &str, value: &str, buf: &mut Vec<u8>) {
    let field = |s: &str| 1 + encoded_len_varint(s.len() as u64) + s.len();
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint((field(name) + field(value)) as u64, buf);
    for (tag, s) in [(1, name), (2, value)] {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

/// A `TimeSeries` (its labels already encoded, and `samples`) as field 1 of a
/// `WriteRequest`.
fn put_series(labels: &[u8], samples: &[Sample], buf: &mut Vec<u8>) {
    let samples_len: usize = samples
        .iter()
        .map(|s| prost::encoding::message::encoded_len(2, s))
        .sum();
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint((labels.len() + samples_len) as u64, buf);
    buf.extend_from_slice(labels);
    for s in samples {
        prost::encoding::message::encode(2, s, buf);
    }
}

#[cfg(test)]
mod tests;
