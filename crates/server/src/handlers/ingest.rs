//! `POST /api/v1/ingest`: a whole [`Batch`] is stored, or nothing is.
//!
//! A batch is told from a retry by its id and [`Batch::content_hash`]: the same id with the
//! same content is a duplicate (200, `duplicate: true`, nothing stored again), the same id
//! with other content a conflict (409 `batch_conflict`, nothing stored).
//!
//! The hot path: the raw body is read on the request task, then decompression, parsing,
//! validation and the store call run in one blocking task (CPU work off the async
//! threads, one hop), straight from the decompressed bytes: [`fastjson`] for the common
//! shape, serde_json for everything else and for explaining errors.

use crate::apidoc::{Op, Schemas};
use crate::body::{self, Encoding};
use crate::error::{ApiErr, ApiResult};
use crate::fastjson;
use crate::metrics::IngestResult;
use crate::state::{blocking, AppState, RouteSpec};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use skymeter_model::api::IngestResponse;
use skymeter_model::cost_series;
use skymeter_model::{Batch, FieldError};
use skymeter_store::IngestOutcome;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// At most this many field errors are listed in an `invalid_batch` answer.
const MAX_FIELDS: usize = 100;

pub async fn ingest(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IngestResponse>> {
    let started = Instant::now();
    let read = async {
        body::check_content_type(&headers)?;
        let enc = Encoding::from_headers(&headers)?;
        let raw = body::read_raw(&headers, body, enc, st.limits).await?;
        Ok((raw, enc))
    };
    let result = match read.await {
        Ok((raw, enc)) => return ingest_raw(&st, raw, enc, started).await.map(Json),
        Err(e) => Err(e),
    };
    count(&st, started, &result);
    result.map(Json)
}

/// Stores one batch from its body as received (`enc`: its `Content-Encoding`), and counts
/// it in the metrics: the one way in for batches, whether they came by `POST
/// /api/v1/ingest` or from a NATS stream (`crate::consume`). `started` is when the batch
/// arrived, for the ingest duration. `Ok` means the batch is durable in the store (stored
/// now, or before: `duplicate`).
pub async fn ingest_raw(
    st: &AppState,
    raw: Bytes,
    enc: Encoding,
    started: Instant,
) -> Result<IngestResponse, ApiErr> {
    let result = store_raw(st, raw, enc).await;
    count(st, started, &result);
    result
}

/// The metrics of one batch's ingest (`ingest_raw` counts its own; this is for the
/// batches refused before it, e.g. for their encoding).
pub fn count(st: &AppState, started: Instant, result: &Result<IngestResponse, ApiErr>) {
    st.metrics.ingest_duration.observe(started.elapsed());
    match result {
        Ok(r) if r.duplicate => st.metrics.batch(IngestResult::Duplicate),
        Ok(r) => {
            st.metrics.batch(IngestResult::Stored);
            let m = &st.metrics;
            m.points.fetch_add(r.points as u64, Ordering::Relaxed);
            m.resources.fetch_add(r.resources as u64, Ordering::Relaxed);
            m.costs.fetch_add(r.costs as u64, Ordering::Relaxed);
            m.collect_errors
                .fetch_add(r.errors as u64, Ordering::Relaxed);
        }
        Err(e) => {
            st.metrics.batch(IngestResult::Rejected);
            tracing::debug!(code = %e.body.code, message = %e.body.message, "batch rejected");
        }
    }
}

async fn store_raw(st: &AppState, raw: Bytes, enc: Encoding) -> Result<IngestResponse, ApiErr> {
    st.metrics
        .bytes_received
        .fetch_add(raw.len() as u64, Ordering::Relaxed);
    let st = st.clone();
    blocking(move || {
        let bytes = body::decode(raw, enc, st.limits.max_bytes)?;
        st.metrics
            .bytes_decoded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut batch: Batch = match fastjson::parse_batch(&bytes) {
            Some(b) => b,
            None => body::parse_json(&bytes, "invalid_batch")?,
        };
        drop(bytes);
        batch.validate().map_err(invalid_batch)?;
        // Counted before the cost lines' points are added: the answer describes what was sent.
        let sent = IngestResponse {
            batch_id: batch.batch_id,
            duplicate: false,
            resources: batch.resources.len(),
            points: batch.points.len(),
            costs: batch.costs.len(),
            errors: batch.errors.len(),
        };
        cost_series::add_cost_points(&mut batch);
        let duplicate = match st.store.ingest(&batch).map_err(ApiErr::store)? {
            IngestOutcome::Stored => false,
            IngestOutcome::Duplicate => true,
            IngestOutcome::Conflict => return Err(conflict(batch.batch_id)),
        };
        Ok(IngestResponse { duplicate, ..sent })
    })
    .await
}

/// The id names a stored batch whose content differs: a retry would hash the same, so this
/// is an id reused for other data, which storing would lose or dropping would hide.
fn conflict(id: uuid::Uuid) -> ApiErr {
    ApiErr::new(
        StatusCode::CONFLICT,
        "batch_conflict",
        format!(
            "batch_id {id} was already stored with different content; nothing was stored. \
             A retry must resend the same records; new records need a new batch_id"
        ),
    )
    .with_fields(vec![FieldError::new(
        "batch_id",
        format!("{id} is taken by a batch with other content"),
    )])
}

fn invalid_batch(mut fields: Vec<FieldError>) -> ApiErr {
    let total = fields.len();
    let first: Vec<String> = fields.iter().take(3).map(|f| f.to_string()).collect();
    let mut message = format!(
        "the batch has {total} invalid field{}; nothing was stored: {}",
        if total == 1 { "" } else { "s" },
        first.join("; ")
    );
    if total > first.len() {
        message.push_str("; …");
    }
    if total > MAX_FIELDS {
        fields.truncate(MAX_FIELDS);
        message.push_str(&format!(" (the first {MAX_FIELDS} are listed in `fields`)"));
    }
    ApiErr::new(StatusCode::BAD_REQUEST, "invalid_batch", message).with_fields(fields)
}

/// The OpenAPI description of `POST /api/v1/ingest` (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("POST", "/api/v1/ingest") => Op {
            tag: "ingest",
            summary: "Store a batch",
            description: "The body is a Batch as JSON, optionally compressed \
                          (`Content-Encoding: gzip` or `zstd`). The batch is stored whole or \
                          not at all: any malformed JSON (`invalid_json`, with line and \
                          column), wrong type, missing or unknown field, or invalid value \
                          (`invalid_batch`, with every bad field's path in `fields`) stores \
                          nothing. The limits of the record format (label counts, lengths, \
                          no control characters, a non-nil `batch_id`: see `docs/format.md`) \
                          are in the Batch schema and refused with `invalid_batch`. A batch \
                          whose `batch_id` was stored before with the same content is answered \
                          `duplicate: true` and not stored again, so agents can retry safely; \
                          with other content it is answered 409 `batch_conflict`. \
                          Each cost line is also stored as two points for the Prometheus API, \
                          `cost_billed_usd` and `cost_effective_usd` (other currencies: \
                          `cost_billed_eur`, ...), at its `ChargePeriodStart`, labelled \
                          `provider account region resource_id service source category sku`; \
                          a line sent again replaces its sample. The answer counts what was sent.",
            params: vec![],
            body: Some((s.of::<Batch>(), "A batch of records.")),
            ok: vec![("200", "Stored, or a duplicate of a stored batch.", Some((json_ct, s.of::<IngestResponse>())))],
            errors: vec![
                ("409", "The `batch_id` was stored before with other content (`batch_conflict`); nothing was stored."),
                ("413", "The body (compressed, or decompressed) is over the server's limit (`too_large`)."),
                ("415", "Unsupported `Content-Encoding` (`unsupported_encoding`) or a non-JSON `Content-Type`."),
            ],
        },
        _ => return None,
    };
    Some(op)
}
