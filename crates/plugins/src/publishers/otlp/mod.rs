//! `otlp`: sends each batch's points as OpenTelemetry metrics over OTLP/HTTP with protobuf
//! (`POST <url>/v1/metrics`), to an OpenTelemetry Collector or any backend that takes OTLP
//! (Grafana Mimir and Prometheus' OTLP receivers, Datadog, Honeycomb, …). The messages are
//! the official ones of the `opentelemetry-proto` crate.
//!
//! - One `ResourceMetrics` per skymeter resource, its attributes by OpenTelemetry's semantic
//!   conventions ([`resource_attributes`]) from the resource's record in the batch; one scope
//!   `skymeter`.
//! - A point of stat `sum` or `count` over a period is a delta `Sum` (start = the period's
//!   start); every other point is a `Gauge` (skymeter's records hold no cumulative counters:
//!   collectors turn them into rates). The metric keeps skymeter's dotted name
//!   (`cpu.utilization`), the unit is UCUM ([`ucum`]); the `stat` and the point's labels are
//!   data point attributes.
//! - Cost lines go as the server's cost series (`cost.billed`, `cost.effective`, delta sums
//!   over the charge period), as the `remote_write` publisher sends them.
//! - Values that are not finite are not sent, as in `remote_write`.
//!
//! Delivery goes through the publishers' shared buffer ([`crate::common::request_parts`]).
//! Statuses as the OTLP specification says: 429, 502, 503, 504 (and no answer) are retried,
//! honouring `Retry-After`; 401, 403, 404 and redirects are retried as errors for a person to
//! fix (a wrong URL or token must not throw batches away); any other status refuses the
//! request for good: reported, skipped, the batch moved to `rejected/`. A 200 answer with a
//! partial success (data points rejected) is logged as a warning.

use crate::common::delivery::{BufferConfig, Terms};
use crate::common::http_post::parse_url;
use crate::common::request_parts::{
    build_publisher, encode_error, request_headers, Endpoint, Protocol, Verdict,
};
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtelResource;
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    BuildContext, ConfigError, PluginDescription, PluginError, PluginKind, Publisher,
    PublisherFactory, RawConfig, SecretString,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

/// `otlp` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The OTLP/HTTP endpoint's base, e.g. `http://127.0.0.1:4318` (requests go to
    /// `<url>/v1/metrics`); a URL already ending in `/v1/metrics` is used as it is.
    pub url: String,
    /// Extra request headers (API keys often travel here); values are secrets.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SecretString>,
    /// Sent as `Authorization: Bearer <token>`. A secret: write `"${OTLP_TOKEN}"`.
    #[schemars(with = "Option<String>")]
    pub bearer_token: Option<SecretString>,
    /// Time allowed for one request, connection and answer included (OTLP's default: 10s).
    #[serde(default = "ten_seconds")]
    pub timeout: DurationStr,
    /// The waits between tries (`attempts` does not apply: a batch is never given up on).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The on-disk buffer (always on): `{ dir, max_size = "1GB", when_full = "block" }`;
    /// default directory `<data_dir>/buffer/<task>/otlp`.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// `gzip` (the default, as the OpenTelemetry Collector's exporter) or `none`.
    #[serde(default)]
    pub compression: Compression,
}

/// The body's compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

fn ten_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

/// The registry's name of the plugin.
pub const NAME: &str = "otlp";

/// A batch with more data points than this makes several requests (cut between resources),
/// keeping each request to a few megabytes, below receivers' default size limits.
const MAX_POINTS_PER_REQUEST: usize = 10_000;

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: NAME,
            kind: PluginKind::Publisher,
            summary: "Sends points as OpenTelemetry metrics over OTLP/HTTP (protobuf), resource attributes by the semantic conventions, through a durable on-disk buffer",
            config_schema: PluginDescription::schema_of::<OtlpConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: OtlpConfig = raw.decode()?;
    let mut url = parse_url(raw, &cfg.url, "write e.g. \"http://127.0.0.1:4318\"")?;
    if !url.path().ends_with("/v1/metrics") {
        let path = format!("{}/v1/metrics", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    let mut fixed = vec![(CONTENT_TYPE, "application/x-protobuf")];
    if cfg.compression == Compression::Gzip {
        fixed.push((CONTENT_ENCODING, "gzip"));
    } else if cfg
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case(CONTENT_ENCODING.as_str()))
    {
        return Err(raw.error(
            "headers",
            "`content-encoding` is set by the publisher (see `compression`); remove it",
        ));
    }
    let headers = request_headers(raw, &fixed, &cfg.headers, cfg.bearer_token.as_ref(), None)?;
    build_publisher(
        raw,
        ctx,
        Terms::of_buffer_table(NAME, "the OTLP receiver"),
        Otlp {
            compression: cfg.compression,
        },
        Endpoint {
            url,
            headers,
            timeout: cfg.timeout.0,
            retry: cfg.retry,
            buffer: cfg.buffer,
        },
    )
}

/// The OTLP/HTTP protocol: encoding and status handling.
pub struct Otlp {
    pub compression: Compression,
}

impl Protocol for Otlp {
    fn encode(&self, batch: &Batch) -> Result<Vec<Vec<u8>>, PluginError> {
        export_requests(batch)
            .iter()
            .map(|r| {
                let bytes = r.encode_to_vec();
                match self.compression {
                    Compression::None => Ok(bytes),
                    Compression::Gzip => {
                        let mut gz = GzEncoder::new(
                            Vec::with_capacity(bytes.len() / 4),
                            flate2::Compression::default(),
                        );
                        gz.write_all(&bytes)
                            .and_then(|()| gz.finish())
                            .map_err(|e| {
                                encode_error(format!("cannot compress an OTLP request: {e}"))
                            })
                    }
                }
            })
            .collect()
    }

    fn verdict(&self, status: StatusCode) -> Verdict {
        match status.as_u16() {
            408 | 429 | 502 | 503 | 504 => Verdict::Retry,
            401 => Verdict::Fix("check `bearer_token` or the auth header in `headers`"),
            403 => Verdict::Fix("the credentials are not allowed to write there"),
            404 => Verdict::Fix("nothing takes OTLP metrics at `url`; it is the base URL (e.g. http://HOST:4318), requests go to <url>/v1/metrics"),
            300..=399 => Verdict::Fix("set `url` to the final address"),
            100..=199 => Verdict::Retry,
            _ => Verdict::Refused,
        }
    }

    fn describe(&self, request: &[u8]) -> String {
        let bytes = match self.compression {
            Compression::None => Some(request.to_vec()),
            Compression::Gzip => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(request), &mut out)
                    .ok()
                    .map(|_| out)
            }
        };
        let Some(req) = bytes.and_then(|b| ExportMetricsServiceRequest::decode(b.as_slice()).ok())
        else {
            return "an unreadable request".into();
        };
        let resources: Vec<String> = req
            .resource_metrics
            .iter()
            .take(3)
            .map(|rm| {
                let id = rm
                    .resource
                    .as_ref()
                    .and_then(|r| {
                        r.attributes
                            .iter()
                            .find(|a| a.key == "skymeter.resource_id")
                    })
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let metrics: Vec<&str> = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|s| s.metrics.iter().map(|m| m.name.as_str()))
                    .take(5)
                    .collect();
                format!("{id} ({})", metrics.join(", "))
            })
            .collect();
        format!(
            "{} resource(s), first {}",
            req.resource_metrics.len(),
            resources.join("; ")
        )
    }

    fn taken(&self, answer: &[u8]) -> Option<String> {
        let resp = ExportMetricsServiceResponse::decode(answer).ok()?;
        let partial = resp.partial_success?;
        (partial.rejected_data_points > 0 || !partial.error_message.is_empty()).then(|| {
            format!(
                "the receiver took the request but rejected {} data point(s): {}",
                partial.rejected_data_points, partial.error_message
            )
        })
    }
}

/// A unit in UCUM, as OpenTelemetry's semantic conventions write units: `%`, `By`, `By/s`,
/// `1` for dimensionless, curly-brace annotations for counts and currency (`{count}`,
/// `{USD}`: UCUM has no currency units).
pub fn ucum(unit: Unit) -> &'static str {
    match unit {
        Unit::Percent => "%",
        Unit::Ratio => "1",
        Unit::Bytes => "By",
        Unit::BytesPerSecond => "By/s",
        Unit::BitsPerSecond => "bit/s",
        Unit::Count => "{count}",
        Unit::CountPerSecond => "{count}/s",
        Unit::Milliseconds => "ms",
        Unit::Seconds => "s",
        Unit::Hertz => "Hz",
        Unit::Celsius => "Cel",
        Unit::Watts => "W",
        Unit::Joules => "J",
        Unit::Usd => "{USD}",
        Unit::None => "1",
    }
}

/// The prefix of the attributes skymeter adds beside the semantic conventions' own.
pub const PREFIX: &str = "skymeter.";

fn kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The `cloud.provider` value of a skymeter provider (OpenTelemetry's enumeration), if it is
/// a cloud.
fn cloud_provider(provider: &str) -> Option<&'static str> {
    match provider {
        "aws" => Some("aws"),
        "gcp" => Some("gcp"),
        "azure" => Some("azure"),
        _ => None,
    }
}

/// A resource's attributes: `cloud.provider`, `cloud.account.id`, `cloud.region` and
/// `cloud.resource_id` for the clouds; `host.id` and `host.name` for hosts; and always
/// `skymeter.provider`, `skymeter.account`, `skymeter.region`, `skymeter.resource_id` and,
/// from the record when the batch has it, `skymeter.kind`, `skymeter.native_type`,
/// `skymeter.name` and `skymeter.tag.<key>`. Empty values are left out.
pub fn resource_attributes(r: &ResourceRef, record: Option<&Resource>) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut push = |k: &str, v: &str| {
        if !v.is_empty() {
            out.push(kv(k, v));
        }
    };
    if let Some(cloud) = cloud_provider(&r.provider) {
        push("cloud.provider", cloud);
        push("cloud.account.id", &r.account);
        push("cloud.region", &r.region);
        push("cloud.resource_id", &r.id);
    }
    let is_host = r.provider == "host" || record.is_some_and(|x| x.kind == "host");
    if is_host {
        push("host.id", &r.id);
        if let Some(rec) = record {
            push("host.name", &rec.name);
        }
    }
    push("skymeter.provider", &r.provider);
    push("skymeter.account", &r.account);
    push("skymeter.region", &r.region);
    push("skymeter.resource_id", &r.id);
    if let Some(rec) = record {
        push("skymeter.kind", &rec.kind);
        push("skymeter.native_type", &rec.native_type);
        push("skymeter.name", &rec.name);
        for (k, v) in &rec.tags {
            push(&format!("{PREFIX}tag.{k}"), v);
        }
    }
    out
}

/// Whether a point is a delta sum (a `sum` or `count` over a period) rather than a gauge.
fn is_delta_sum(p: &Point) -> bool {
    matches!(p.stat, Stat::Sum | Stat::Count) && p.period_s > 0
}

fn nanos(t: chrono::DateTime<chrono::Utc>) -> u64 {
    t.timestamp_nanos_opt().unwrap_or_default().max(0) as u64
}

/// A point as a data point. `cost`: a cost series point, whose `ts` is its charge period's
/// start (the server's convention, so Prometheus shows today's line today); OTLP's delta sum
/// spans `[start, time]`, so it ends at the period's end.
fn data_point(p: &Point, cost: bool) -> NumberDataPoint {
    let mut attributes = Vec::with_capacity(1 + p.labels.len());
    attributes.push(kv("stat", p.stat.as_str()));
    for (k, v) in p.labels.iter() {
        attributes.push(kv(k.as_str(), v.as_str()));
    }
    let period = chrono::Duration::seconds(i64::from(p.period_s));
    let (start, end) = match (cost, is_delta_sum(p)) {
        (true, _) => (nanos(p.ts), nanos(p.ts + period)),
        (false, true) => (nanos(p.ts - period), nanos(p.ts)),
        (false, false) => (0, nanos(p.ts)),
    };
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: end,
        value: Some(number_data_point::Value::AsDouble(p.value)),
        ..Default::default()
    }
}

/// A batch's points and cost series as OTLP export requests: per resource one
/// `ResourceMetrics`, its metrics by name, unit and kind in the order the batch names them.
pub fn export_requests(batch: &Batch) -> Vec<ExportMetricsServiceRequest> {
    let mut records: HashMap<ResourceRef, &Resource> = HashMap::new();
    for r in &batch.resources {
        match records.get(&r.reference()) {
            Some(seen) if seen.observed_at > r.observed_at => {}
            _ => {
                records.insert(r.reference(), r);
            }
        }
    }
    let cost_points: Vec<Point> = batch
        .costs
        .iter()
        .flat_map(skymeter_model::cost_series::cost_points)
        .collect();
    // Per resource (first-seen order), per (metric, unit, delta sum) its data points.
    type MetricKey<'a> = (&'a str, Unit, bool);
    type Metrics<'a> = Vec<(MetricKey<'a>, Vec<NumberDataPoint>)>;
    let mut resources: Vec<(&ResourceRef, Metrics<'_>)> = Vec::new();
    let mut by_resource: HashMap<&ResourceRef, usize> = HashMap::new();
    let mut by_metric: HashMap<(usize, MetricKey<'_>), usize> = HashMap::new();
    let mut not_finite = 0usize;
    let points = batch.points.iter().map(|p| (p, false));
    for (p, cost) in points.chain(cost_points.iter().map(|p| (p, true))) {
        if !p.value.is_finite() {
            not_finite += 1;
            continue;
        }
        let r = *by_resource.entry(&*p.resource).or_insert_with(|| {
            resources.push((&*p.resource, Vec::new()));
            resources.len() - 1
        });
        let key = (p.metric.as_str(), p.unit, is_delta_sum(p));
        let metrics = &mut resources[r].1;
        let m = *by_metric.entry((r, key)).or_insert_with(|| {
            metrics.push((key, Vec::new()));
            metrics.len() - 1
        });
        metrics[m].1.push(data_point(p, cost));
    }
    if not_finite > 0 {
        tracing::warn!(
            target: "skymeter::publish",
            task = %batch.task,
            "otlp: {not_finite} point(s) of batch {} with a value that is not a finite number were not sent",
            batch.batch_id
        );
    }
    let scope = InstrumentationScope {
        name: "skymeter".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let mut requests = Vec::new();
    let mut current = ExportMetricsServiceRequest::default();
    let mut in_current = 0usize;
    for (r, metrics) in resources {
        let mut points = 0;
        let metrics: Vec<Metric> = metrics
            .into_iter()
            .map(|((name, unit, sum), data_points)| {
                points += data_points.len();
                let data = if sum {
                    metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Delta as i32,
                        is_monotonic: false,
                    })
                } else {
                    metric::Data::Gauge(Gauge { data_points })
                };
                Metric {
                    name: name.to_string(),
                    unit: ucum(unit).to_string(),
                    data: Some(data),
                    ..Default::default()
                }
            })
            .collect();
        if in_current > 0 && in_current + points > MAX_POINTS_PER_REQUEST {
            requests.push(std::mem::take(&mut current));
            in_current = 0;
        }
        current.resource_metrics.push(ResourceMetrics {
            resource: Some(OtelResource {
                attributes: resource_attributes(r, records.get(r).copied()),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope.clone()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        });
        in_current += points;
    }
    if in_current > 0 {
        requests.push(current);
    }
    requests
}

#[cfg(test)]
mod tests;
