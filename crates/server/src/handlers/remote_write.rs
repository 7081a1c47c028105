//! `POST /api/v1/write`: a Prometheus remote-write 1.0 receiver, so that an existing
//! Prometheus server or vmagent can feed skymeter (`docs/remote-write.md`).
//!
//! The body is a snappy block (not the framed format) holding a protobuf
//! `prometheus.WriteRequest`. Its series become standard points in one [`Batch`], stored whole
//! or not at all, through the same store call, auth scope (`ingest`), body limits and ingest
//! budget as `POST /api/v1/ingest`. The mapping keeps the Prometheus name as the metric name
//! and infers the unit from a known suffix, so that the query API shows every series under the
//! name it was written with ([`skymeter_model::prom::metric_name`] adds no suffix the name
//! already has).
//!
//! Refusals are 4xx (Prometheus does not retry them, so a bad request does not block its
//! queue); a retried request is the same bytes, which give the same `batch_id` (a hash of the
//! decompressed body) and are answered as a duplicate without being stored twice.

use crate::apidoc::{Op, Schemas};
use crate::error::{ApiErr, ApiResult};
use crate::metrics::IngestResult;
use crate::state::{blocking, AppState, RouteSpec};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use skymeter_model::prom::{sanitize, unit_suffix};
use skymeter_model::{Batch, Labels, Point, ResourceRef, Stat, Unit};
use skymeter_store::IngestOutcome;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The remote-write messages, declared once for this receiver and the `remote_write`
/// publisher.
pub use skymeter_model::prompb as proto;

/// The bit pattern Prometheus writes for a staleness marker (a NaN).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The provider of a series that carries no skymeter `provider` label.
pub const PROVIDER: &str = "prometheus";

/// The `task` of every batch made from a write request.
pub const TASK: &str = "remote_write";

/// At most this many problems are listed in a refusal.
const MAX_LISTED: usize = 3;

pub async fn write(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let started = Instant::now();
    let result = write_inner(&st, &headers, body).await;
    st.metrics.ingest_duration.observe(started.elapsed());
    match &result {
        Ok(Written {
            duplicate: true, ..
        }) => st.metrics.batch(IngestResult::Duplicate),
        Ok(w) => {
            st.metrics.batch(IngestResult::Stored);
            st.metrics
                .points
                .fetch_add(w.points as u64, Ordering::Relaxed);
        }
        Err(e) => {
            st.metrics.batch(IngestResult::Rejected);
            tracing::debug!(code = %e.body.code, message = %e.body.message, "remote write refused");
        }
    }
    result.map(|_| StatusCode::NO_CONTENT)
}

struct Written {
    points: usize,
    duplicate: bool,
}

async fn write_inner(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Written, ApiErr> {
    check_headers(headers)?;
    let raw = crate::body::read_raw(
        headers,
        body,
        crate::body::Encoding::Gzip, // compressed: the compressed-body cap applies
        st.limits,
    )
    .await?;
    st.metrics
        .bytes_received
        .fetch_add(raw.len() as u64, Ordering::Relaxed);
    let st = st.clone();
    blocking(move || {
        let bytes = decompress(&raw, st.limits.max_bytes)?;
        st.metrics
            .bytes_decoded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let req = decode(&bytes)?;
        let batch = to_batch(&req, batch_id(&bytes))?;
        drop(req);
        let points = batch.points.len();
        if points == 0 {
            return Ok(Written {
                points,
                duplicate: false,
            });
        }
        let duplicate = match st.store.ingest(&batch).map_err(ApiErr::store)? {
            IngestOutcome::Stored => false,
            IngestOutcome::Duplicate => true,
            // The id is a hash of the body and the batch a function of the body: other
            // content under the same id is a hash collision, not a client's mistake.
            IngestOutcome::Conflict => {
                return Err(ApiErr::internal(
                    "the write request's batch id collides with another batch's; see the log",
                ))
            }
        };
        Ok(Written { points, duplicate })
    })
    .await
}

/// Content-Type `application/x-protobuf` (a type a web page cannot send without a CORS
/// preflight), Content-Encoding `snappy` (or none: the protocol has no other), and not the
/// remote-write 2.0 message.
pub fn check_headers(headers: &HeaderMap) -> Result<(), ApiErr> {
    let unsupported = |code: &str, message: String| {
        ApiErr::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, code, message)
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase())
        .unwrap_or_default();
    let mut parts = ct.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("");
    if essence != "application/x-protobuf" {
        return Err(unsupported(
            "unsupported_media_type",
            format!(
                "Content-Type `{essence}` is not accepted; remote write sends \
                 `Content-Type: application/x-protobuf`"
            ),
        ));
    }
    if let Some(proto) = parts.find_map(|p| p.strip_prefix("proto=")) {
        if proto.trim_matches('"') != "prometheus.writerequest" {
            return Err(unsupported(
                "unsupported_media_type",
                format!(
                    "proto `{proto}` is not supported: this receiver speaks remote-write 1.0 \
                     (`prometheus.WriteRequest`); configure the sender for protobuf_message \
                     prometheus.WriteRequest"
                ),
            ));
        }
    }
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if enc != "snappy" {
            return Err(unsupported(
                "unsupported_encoding",
                format!(
                    "Content-Encoding `{enc}` is not supported; remote write sends a snappy \
                     block (`Content-Encoding: snappy`)"
                ),
            ));
        }
    }
    Ok(())
}

/// Decompresses a snappy block, refusing (413) before any work one whose header announces
/// more than `max_bytes`.
pub fn decompress(raw: &[u8], max_bytes: usize) -> Result<Vec<u8>, ApiErr> {
    let len = snap::raw::decompress_len(raw).map_err(|e| {
        ApiErr::bad_request(format!(
            "the body is not a snappy block (remote write sends the block format, not the \
             framed one): {e}"
        ))
    })?;
    if len > max_bytes {
        return Err(ApiErr::too_large(format!(
            "the write request decompresses to {len} bytes, more than the server's limit of \
             {max_bytes} bytes; lower the sender's max_samples_per_send"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(raw)
        .map_err(|e| ApiErr::bad_request(format!("the body is not a valid snappy block: {e}")))
}

/// Parses the protobuf `WriteRequest`.
pub fn decode(bytes: &[u8]) -> Result<proto::WriteRequest, ApiErr> {
    <proto::WriteRequest as prost::Message>::decode(bytes).map_err(|e| {
        ApiErr::bad_request(format!(
            "the body is not a protobuf prometheus.WriteRequest: {e}"
        ))
    })
}

/// The id of the batch made from a decompressed body: the same bytes (a retry) make the same
/// id, which the store answers as a duplicate.
pub fn batch_id(bytes: &[u8]) -> uuid::Uuid {
    let digest = Sha256::new()
        .chain_update(b"skymeter remote write v1\0")
        .chain_update(bytes)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(id).into_uuid()
}

/// The unit a Prometheus metric name tells by its suffix: `_bytes`, `_seconds`,
/// `_percent`, ... (every unit suffix of [`unit_suffix`], the longest first), `_total` a
/// count; anything else `none`. [`skymeter_model::prom::metric_name`] of the name and this
/// unit is the name itself, so the series queries back under the name it was written with.
pub fn unit_of(name: &str) -> Unit {
    let mut best: Option<(usize, Unit)> = None;
    for unit in Unit::ALL {
        let suffix = unit_suffix(unit);
        if suffix.is_empty() {
            continue;
        }
        let hit = name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'_';
        if hit && best.is_none_or(|(n, _)| suffix.len() > n) {
            best = Some((suffix.len(), unit));
        }
    }
    match best {
        Some((_, unit)) => unit,
        None if name.ends_with("_total") => Unit::Count,
        None => Unit::None,
    }
}

/// A series named for an error message: `node_load1{instance="a:9100",job="node"}`.
fn describe_series(i: usize, labels: &[proto::Label]) -> String {
    let name = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map(|l| l.value.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|l| l.name != "__name__")
        .take(8)
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("timeseries[{i}] {name}{{{}}}", rest.join(","))
}

/// The batch of a write request (the mapping of `docs/remote-write.md`). Stale markers and
/// other NaNs are dropped (the store keeps finite values only); so are infinities. Any
/// series the record format cannot hold refuses the whole request (400), naming the series.
pub fn to_batch(req: &proto::WriteRequest, batch_id: uuid::Uuid) -> Result<Batch, ApiErr> {
    let mut problems: Vec<String> = Vec::new();
    let mut total_problems = 0usize;
    let mut points = Vec::new();
    let mut latest: Option<DateTime<Utc>> = None;
    for (i, ts) in req.timeseries.iter().enumerate() {
        let mut problem = |p: String| {
            total_problems += 1;
            if problems.len() < MAX_LISTED {
                problems.push(format!("{}: {p}", describe_series(i, &ts.labels)));
            }
        };
        let series = match Series::of(&ts.labels) {
            Ok(s) => s,
            Err(p) => {
                problem(p);
                continue;
            }
        };
        for s in &ts.samples {
            if !s.value.is_finite() {
                continue; // stale markers (STALE_NAN), other NaNs, infinities
            }
            let Some(t) = DateTime::from_timestamp_millis(s.timestamp)
                .filter(|t| t.timestamp_nanos_opt().is_some())
            else {
                problem(format!(
                    "sample time {} ms is outside the years 1677-2262 the store keeps",
                    s.timestamp
                ));
                break;
            };
            latest = latest.max(Some(t));
            points.push(Point {
                metric: series.metric.as_str().into(),
                unit: series.unit,
                stat: series.stat,
                period_s: 0,
                ts: t,
                value: s.value,
                resource: series.resource.clone(),
                labels: series.labels.clone(),
            });
        }
    }
    // Deterministic (the latest sample's time), so that a retry hashes the same.
    let mut batch = Batch::new("", TASK, latest.unwrap_or(DateTime::<Utc>::UNIX_EPOCH));
    batch.batch_id = batch_id;
    batch.points = points;
    if problems.is_empty() {
        if let Err(fields) = batch.validate() {
            total_problems = fields.len();
            problems = fields
                .iter()
                .take(MAX_LISTED)
                .map(|f| f.to_string())
                .collect();
        }
    }
    if total_problems > 0 {
        let mut message = format!(
            "the write request has {total_problems} problem{}; nothing was stored: {}",
            if total_problems == 1 { "" } else { "s" },
            problems.join("; ")
        );
        if total_problems > problems.len() {
            message.push_str("; …");
        }
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "invalid_write",
            message,
        ));
    }
    Ok(batch)
}

/// What every point of one series shares.
struct Series {
    metric: String,
    unit: Unit,
    stat: Stat,
    resource: Arc<ResourceRef>,
    labels: skymeter_model::PointLabels,
}

impl Series {
    fn of(labels: &[proto::Label]) -> Result<Series, String> {
        let mut map: BTreeMap<&str, &str> = BTreeMap::new();
        for l in labels {
            if l.name.is_empty() {
                return Err("a label has an empty name".into());
            }
            if map.insert(&l.name, &l.value).is_some() {
                return Err(format!("label `{}` is given twice", l.name));
            }
        }
        // Prometheus drops labels with empty values; so does skymeter.
        map.retain(|_, v| !v.is_empty());
        let metric = match map.remove("__name__") {
            Some(n) => n.to_string(),
            None => return Err("the series has no `__name__` label".into()),
        };
        // A series that came from skymeter (through its query API or a `remote_write`
        // publisher) names its resource: take it back, and drop what the query API derives
        // from the resource's record (`kind`, `resource_name`, `tag_<key>`).
        let from_skymeter = map.contains_key("resource_id");
        let provider = map.remove("provider").unwrap_or(PROVIDER);
        let job = map.get("job").copied().unwrap_or("");
        let account = map.remove("account").unwrap_or(job);
        let region = map.remove("region").unwrap_or("");
        let id = match map.remove("resource_id") {
            Some(id) => id,
            None => map
                .get("instance")
                .or_else(|| map.get("job"))
                .copied()
                .unwrap_or(PROVIDER),
        };
        let stat = match map.get("stat").and_then(|s| s.parse::<Stat>().ok()) {
            Some(stat) => {
                map.remove("stat");
                stat
            }
            None => Stat::Last,
        };
        if from_skymeter {
            map.retain(|k, _| *k != "kind" && *k != "resource_name" && !k.starts_with("tag_"));
        }
        let resource = Arc::new(ResourceRef {
            provider: provider.into(),
            account: account.into(),
            region: region.into(),
            id: id.into(),
        });
        let labels: Labels = map
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Series {
            unit: unit_of(&sanitize(&metric, true)),
            metric,
            stat,
            resource,
            labels: labels.into(),
        })
    }
}

/// The content type of a route's request body when it is not JSON (the document's
/// `requestBody`).
pub fn body_content_type(spec: &RouteSpec) -> Option<&'static str> {
    (spec.method == "POST" && spec.path == "/api/v1/write").then_some("application/x-protobuf")
}

/// The OpenAPI description of `POST /api/v1/write` (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, _s: &mut Schemas) -> Option<Op> {
    let op = match (spec.method, spec.path) {
        ("POST", "/api/v1/write") => Op {
            tag: "ingest",
            summary: "Prometheus remote write",
            description: "A Prometheus remote-write 1.0 receiver: the body is a snappy block \
                          (`Content-Encoding: snappy`) of a protobuf `prometheus.WriteRequest` \
                          (`Content-Type: application/x-protobuf`), as Prometheus' \
                          `remote_write` and vmagent send it with an `ingest` token. Each \
                          sample becomes a point: metric `__name__` (queried back under the \
                          same name), unit from a known name suffix, stat `last` (or the \
                          `stat` label), resource from the `provider`, `account`, `region`, \
                          `resource_id` labels when present, else provider `prometheus`, \
                          account `job`, id `instance`; other labels are point labels. Stale \
                          markers and other non-finite values are dropped; metadata, \
                          exemplars and histograms are ignored. The request is stored whole \
                          or not at all; the same request sent again is not stored twice. \
                          See `docs/remote-write.md`.",
            params: vec![],
            body: Some((
                json!({"type": "string", "format": "binary"}),
                "A snappy-compressed protobuf prometheus.WriteRequest.",
            )),
            ok: vec![("204", "Stored (or a repeat of a stored request).", None)],
            errors: vec![
                ("413", "The body (compressed, or as its snappy header announces it decompressed) is over the server's limit (`too_large`)."),
                ("415", "A Content-Type other than `application/x-protobuf`, or a Content-Encoding other than `snappy`."),
            ],
        },
        _ => return None,
    };
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
        proto::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| proto::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| proto::Sample { value, timestamp })
                .collect(),
        }
    }

    #[test]
    fn units_come_from_known_suffixes() {
        assert_eq!(unit_of("node_load1"), Unit::None);
        assert_eq!(unit_of("node_memory_MemFree_bytes"), Unit::Bytes);
        assert_eq!(unit_of("process_cpu_seconds_total"), Unit::Count);
        assert_eq!(unit_of("http_request_duration_seconds"), Unit::Seconds);
        assert_eq!(unit_of("cpu_utilization_percent"), Unit::Percent);
        assert_eq!(
            unit_of("network_received_throughput_bytes_per_second"),
            Unit::BytesPerSecond
        );
        assert_eq!(unit_of("disk_read_iops_per_second"), Unit::CountPerSecond);
        assert_eq!(unit_of("bytes"), Unit::None);
        assert_eq!(unit_of("megabytes"), Unit::None);
        // The query API's name of each is the name itself.
        for name in [
            "node_load1",
            "node_memory_MemFree_bytes",
            "process_cpu_seconds_total",
            "network_received_throughput_bytes_per_second",
            "job:rate5m:sum",
        ] {
            assert_eq!(skymeter_model::prom::metric_name(name, unit_of(name)), name);
        }
    }

    #[test]
    fn series_map_to_points_and_stale_markers_are_dropped() {
        let req = proto::WriteRequest {
            timeseries: vec![
                series(
                    &[
                        ("__name__", "node_load1"),
                        ("instance", "web-1:9100"),
                        ("job", "node"),
                        ("empty", ""),
                    ],
                    &[
                        (1_700_000_000_000, 0.5),
                        (1_700_000_001_000, f64::from_bits(STALE_NAN)),
                        (1_700_000_002_000, f64::NAN),
                        (1_700_000_003_000, 1.5),
                    ],
                ),
                series(
                    &[
                        ("__name__", "cpu_utilization_percent"),
                        ("provider", "aws"),
                        ("account", "123"),
                        ("region", "us-east-1"),
                        ("resource_id", "i-1"),
                        ("stat", "avg"),
                        ("kind", "compute.instance"),
                        ("tag_team", "a"),
                        ("cpu", "0"),
                    ],
                    &[(1_700_000_000_000, 42.0)],
                ),
            ],
        };
        let b = to_batch(&req, uuid::Uuid::from_u128(7)).unwrap();
        assert_eq!(b.task, TASK);
        assert_eq!(b.points.len(), 3);
        let p = &b.points[0];
        assert_eq!(
            (p.metric.as_str(), p.unit, p.stat, p.value),
            ("node_load1", Unit::None, Stat::Last, 0.5)
        );
        assert_eq!(p.ts.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(
            (
                p.resource.provider.as_str(),
                p.resource.account.as_str(),
                p.resource.id.as_str()
            ),
            ("prometheus", "node", "web-1:9100")
        );
        let labels: Vec<_> = p
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("instance", "web-1:9100"), ("job", "node")]);
        assert_eq!(b.points[1].value, 1.5);
        let q = &b.points[2];
        assert_eq!((q.unit, q.stat), (Unit::Percent, Stat::Avg));
        assert_eq!(
            q.resource.key(),
            ResourceRef {
                provider: "aws".into(),
                account: "123".into(),
                region: "us-east-1".into(),
                id: "i-1".into()
            }
            .key()
        );
        let labels: Vec<_> = q
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("cpu", "0")]);
        assert_eq!(b.collected_at.timestamp_millis(), 1_700_000_003_000);
    }

    #[test]
    fn bad_series_refuse_the_request_naming_them() {
        let req = proto::WriteRequest {
            timeseries: vec![
                series(&[("__name__", "ok")], &[(1, 1.0)]),
                series(&[("job", "x")], &[(1, 1.0)]),
            ],
        };
        let err = to_batch(&req, uuid::Uuid::from_u128(1)).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.body.message.contains("timeseries[1]") && err.body.message.contains("__name__"),
            "{}",
            err.body.message
        );
        let req = proto::WriteRequest {
            timeseries: vec![series(&[("__name__", "bad name")], &[(1, 1.0)])],
        };
        let err = to_batch(&req, uuid::Uuid::from_u128(1)).unwrap_err();
        assert!(err.body.message.contains("metric"), "{}", err.body.message);
    }

    #[test]
    fn bodies_decode_or_say_what_is_wrong() {
        let req = proto::WriteRequest {
            timeseries: vec![series(&[("__name__", "up")], &[(1000, 1.0)])],
        };
        let raw = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let bytes = decompress(&raw, 1 << 20).unwrap();
        assert_eq!(decode(&bytes).unwrap(), req);
        let err = decompress(&raw, 4).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let err = decompress(b"\xff\xff\xff\xff\xff\xff", 1 << 20).unwrap_err();
        assert!(err.body.message.contains("snappy"), "{}", err.body.message);
        let junk = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\x05\x0a\x03")
            .unwrap();
        let err = decode(&decompress(&junk, 1 << 20).unwrap()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.body.message.contains("prometheus.WriteRequest"),
            "{}",
            err.body.message
        );
        assert_eq!(batch_id(&bytes), batch_id(&bytes.clone()));
        assert_ne!(batch_id(&bytes), batch_id(b""));
    }
}
