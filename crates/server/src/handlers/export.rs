//! `GET /api/v1/costs/export`: the stored cost lines as a FinOps FOCUS 1.2 file, CSV or
//! Parquet (the columns and the rules that fill them: `skymeter-focus`, `docs/focus.md`).
//!
//! Streamed in flat memory whatever the number of lines: a blocking task reads the lines a
//! page at a time ([`Store::cost_lines`], [`PAGE`] lines), maps and writes them, and hands
//! the written bytes in chunks of about [`CHUNK`] bytes to the response body through a
//! channel of [`CHANNEL`] chunks; when the client reads slowly the task waits, and when it
//! goes away the task stops. The first page is read before the answer starts, so that a bad
//! cursor or a failing store is a proper error status; a failure after that ends the body
//! early (the client sees an incomplete transfer, and the server logs why).

use crate::apidoc::{query_param, string, time_param, Op, Schemas};
use crate::error::{ApiErr, ApiResult};
use crate::params::Params;
use crate::state::{blocking, AppState, RouteSpec};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use hyper::body::Frame;
use serde_json::json;
use skymeter_focus::{map, Format};
use skymeter_model::{Cost, CostSource};
use skymeter_store::{CostLineQuery, Page, Store};
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

/// Cost lines read from the store at a time.
pub const PAGE: u32 = 5000;
/// Bytes of output gathered before they are sent to the body.
pub const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the writer and the connection.
pub const CHANNEL: usize = 8;

type Chunk = Result<Bytes, io::Error>;

pub async fn export(State(st): State<AppState>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let now = Utc::now();
    let mut p = Params::parse(q.as_deref())?;
    let format = p.take("format")?;
    let query = CostLineQuery {
        start: p.take_time("start", now)?,
        end: p.take_time("end", now)?,
        provider: p.take("provider")?,
        source: p.take("source")?,
        limit: Some(PAGE),
        cursor: None,
    };
    p.finish()?;
    let format = match format.as_deref() {
        None => Format::Csv,
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiErr::bad_request(format!(
                "query parameter `format`=`{f}`: use csv or parquet (default csv)"
            ))
        })?,
    };
    if let Some(s) = &query.source {
        if CostSource::parse(s).is_none() {
            return Err(ApiErr::bad_request(format!(
                "query parameter `source`=`{s}`: use billed, estimated or rated"
            )));
        }
    }
    if let (Some(s), Some(e)) = (query.start, query.end) {
        if s >= e {
            return Err(ApiErr::bad_request("`start` must be before `end`"));
        }
    }

    let store: Arc<dyn Store> = st.store.clone();
    let first = {
        let (store, query) = (store.clone(), query.clone());
        blocking(move || store.cost_lines(&query).map_err(ApiErr::store)).await?
    };
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let errors = tx.clone();
        match produce(store.as_ref(), query, first, format, tx) {
            Ok(rows) => tracing::info!(
                format = format.as_str(),
                rows,
                ms = started.elapsed().as_millis() as u64,
                "FOCUS export done"
            ),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::debug!("FOCUS export: the client went away")
            }
            Err(e) => {
                tracing::warn!(error = %e, "FOCUS export failed; the answer ends early");
                let _ = errors.blocking_send(Err(e));
            }
        }
    });

    let name = format!(
        "attachment; filename=\"skymeter-focus-{}.{}\"",
        now.format("%Y%m%dT%H%M%SZ"),
        format.as_str()
    );
    let mut resp = Body::new(ChannelBody(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Writes every line of `query` (starting with its first page, already read) to the
/// channel; returns the number of rows.
fn produce(
    store: &dyn Store,
    mut query: CostLineQuery,
    first: Page<Cost>,
    format: Format,
    tx: mpsc::Sender<Chunk>,
) -> io::Result<u64> {
    let mut out = format.writer(ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    })?;
    let mut page = first;
    let mut rows = 0u64;
    loop {
        for c in &page.items {
            out.write_row(&map(c))?;
        }
        rows += page.items.len() as u64;
        let Some(cursor) = page.next_cursor.take() else {
            break;
        };
        query.cursor = Some(cursor);
        page = store
            .cost_lines(&query)
            .map_err(|e| io::Error::other(format!("reading cost lines: {e}")))?;
    }
    out.finish()?;
    Ok(rows)
}

/// An `io::Write` that sends what it is given to the response body in chunks, waiting while
/// the channel is full (the client reads slower than the export writes).
struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The response body: the chunks of the channel, in order; an error ends it early.
struct ChannelBody(mpsc::Receiver<Chunk>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

/// The OpenAPI description of the export.
pub fn describe(spec: &RouteSpec, _s: &mut Schemas) -> Option<Op> {
    let op = match (spec.method, spec.path) {
        ("GET", "/api/v1/costs/export") => Op {
            tag: "costs",
            summary: "Cost lines as a FOCUS 1.2 file (CSV or Parquet)",
            description: "Every stored cost line whose `ChargePeriodStart` is in `[start, end)`, \
                          one row each, with every FOCUS 1.2 mandatory column filled (the \
                          rules: docs/focus.md), the conditional columns skymeter knows, and \
                          skymeter's own columns (`x_source`, `x_price_date`, \
                          `x_focus_version`). Streamed: the answer starts at once, whatever \
                          the number of lines. CSV: a header line, RFC 4180 quoting, null as \
                          an empty field. Parquet: row groups of 65,536 rows, snappy.",
            params: vec![
                query_param(
                    "format",
                    "`csv` (default) or `parquet`.",
                    json!({"type": "string", "enum": ["", "csv", "parquet"]}),
                ),
                time_param("start", "Default: no lower bound. Inclusive."),
                time_param("end", "Default: no upper bound. Exclusive."),
                query_param(
                    "source",
                    "`billed`, `estimated` or `rated`; empty: all.",
                    json!({"type": "string", "enum": ["", "billed", "estimated", "rated"]}),
                ),
                query_param(
                    "provider",
                    "Only this provider's lines (`aws` or `Amazon Web Services`).",
                    string(),
                ),
            ],
            body: None,
            ok: vec![
                (
                    "200",
                    "The FOCUS file (`Content-Disposition: attachment`).",
                    Some(("text/csv", string())),
                ),
                (
                    "200",
                    "The FOCUS file (`Content-Disposition: attachment`).",
                    Some((
                        "application/vnd.apache.parquet",
                        json!({"type": "string", "contentMediaType": "application/vnd.apache.parquet"}),
                    )),
                ),
            ],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}
