//! The Prometheus-compatible query API: what Grafana's Prometheus data source, `promtool`
//! and other Prometheus clients call, with Prometheus' parameter names, time formats,
//! response envelope and error codes (the HTTP API of Prometheus 2.42).
//!
//! - Parameters come from the URL and, for POST, from an `application/x-www-form-urlencoded`
//!   body (the body's value wins, as Go's `FormValue`). Unknown parameters are ignored, as
//!   Prometheus does (clients send extras).
//! - Times: RFC 3339 (`2026-01-01T00:00:00Z`, fractions allowed) or Unix seconds as a
//!   float (`1767225600.5`, rounded to the millisecond), from year 0 to 9999 (Prometheus'
//!   own "no bound" times, which clients send to the metadata reads, stand for these
//!   bounds). Every request's times are checked once as a [`TimeRange`]. Durations
//!   (`step`, `timeout`): Prometheus durations (`5m`, `1h30m`, `1d`, `100ms`) or float
//!   seconds (`300`).
//! - Limits: `[server.query]` `max_series`, `max_samples` and `timeout` (see
//!   [`crate::QueryLimits`]) and the engine's bounds on the query text (length, nesting,
//!   size, regex size); over one, the error names it.
//! - Answers: `{"status":"success","data":...}`; errors `{"status":"error",
//!   "errorType":"bad_data","error":"..."}` with 400 (`bad_data`), 422 (`execution`),
//!   503 (`timeout`), 500 (`internal`).
//!
//! Queries are evaluated by `skymeter-promql` over the store's Prometheus view
//! ([`skymeter_store::prom`]), on a blocking thread.

use crate::apidoc::{query_param, series_params, string, Op, PageOf, Schemas};
use crate::state::{AppState, RouteSpec};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};
use skymeter_promql::{
    instant_query, parse_query, range_query, ErrorKind, Limit, Options, QueryError, TimeRange,
    MAX_TIME_MS, MIN_TIME_MS,
};
use skymeter_store::prom::{Matcher, PromQuerier};
use skymeter_store::SeriesInfo;
use std::time::Duration;

/// An error answer in Prometheus' shape.
#[derive(Debug)]
pub struct PromErr {
    kind: ErrorKind,
    message: String,
}

impl PromErr {
    fn bad_data(message: impl Into<String>) -> PromErr {
        PromErr {
            kind: ErrorKind::BadData,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> PromErr {
        PromErr {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
}

impl From<QueryError> for PromErr {
    fn from(e: QueryError) -> PromErr {
        if e.kind == ErrorKind::Internal {
            // The text names files on the server: log it, tell the client less.
            tracing::error!(error = %e.message, "query failed in storage");
            return PromErr::internal(
                "storage failed while reading series; the server's log has the details",
            );
        }
        // The engine names its option; the operator needs the config key behind it.
        let setting = match e.limit {
            None => None,
            Some(Limit::MaxSeries) => Some("`max_series` in `[server.query]`"),
            Some(Limit::MaxSamples) => Some("`max_samples` in `[server.query]`"),
            Some(Limit::Timeout) => Some(
                "the request's `timeout` parameter or `timeout` in `[server.query]`, \
                 whichever is shorter",
            ),
        };
        PromErr {
            kind: e.kind,
            message: match setting {
                Some(key) => format!("{} (the server's limit is {key})", e.message),
                None => e.message,
            },
        }
    }
}

impl From<skymeter_store::StoreError> for PromErr {
    fn from(e: skymeter_store::StoreError) -> PromErr {
        match e {
            skymeter_store::StoreError::BadRequest(m) => PromErr::bad_data(m),
            other => {
                tracing::error!(error = %other, "storage failed");
                PromErr::internal("storage failed; the server's log has the details")
            }
        }
    }
}

impl IntoResponse for PromErr {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body =
            json!({"status": "error", "errorType": self.kind.as_str(), "error": self.message});
        json_response(status, serde_json::to_vec(&body).expect("serializes"))
    }
}

/// The body of a Prometheus endpoint's request. One that cannot be read, above all one over
/// the router's body limit (axum's default, 2 MiB), is refused in Prometheus' error shape
/// with axum's status (413 for too large), not as axum's plain-text rejection.
pub struct FormBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormBody {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        Bytes::from_request(req, state)
            .await
            .map(FormBody)
            .map_err(|rejection| {
                let body = json!({
                    "status": "error",
                    "errorType": "bad_data",
                    "error": format!(
                        "the request body cannot be read ({}); a query's form body may be at \
                         most 2 MiB",
                        rejection.body_text()
                    ),
                });
                json_response(
                    rejection.status(),
                    serde_json::to_vec(&body).expect("serializes"),
                )
            })
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[derive(Serialize)]
struct Success<'a, T: Serialize> {
    status: &'static str,
    data: &'a T,
}

fn success<T: Serialize>(data: &T) -> Result<Vec<u8>, PromErr> {
    serde_json::to_vec(&Success {
        status: "success",
        data,
    })
    .map_err(|e| PromErr::internal(format!("encoding the answer failed: {e}")))
}

type PromResult = Result<Vec<u8>, PromErr>;

fn answer(r: PromResult) -> Response {
    match r {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// Runs `f` (store reads, evaluation, encoding) off the async threads.
async fn blocking(f: impl FnOnce() -> PromResult + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => answer(r),
        Err(e) => {
            tracing::error!(error = %e, "query task failed");
            PromErr::internal("the server failed while handling the query; see its log")
                .into_response()
        }
    }
}

// ---- parameters ----

/// The parameters of a request: the form body's pairs first, then the URL's.
pub struct Form(Vec<(String, String)>);

/// Prometheus' bounds for "no bound" (`minTime`/`maxTime` of its API), as RFC 3339.
const MIN_TIME: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME: &str = "292277025-08-18T07:12:54.999999999Z";

impl Form {
    pub fn parse(url: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Form, PromErr> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let form_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
            .unwrap_or(true);
        if form_body && !body.is_empty() {
            pairs.extend(
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
                    .map_err(|e| PromErr::bad_data(format!("error parsing form values: {e}")))?,
            );
        }
        if let Some(q) = url.filter(|q| !q.is_empty()) {
            pairs.extend(
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .map_err(|e| PromErr::bad_data(format!("error parsing form values: {e}")))?,
            );
        }
        Ok(Form(pairs))
    }

    /// The first value of `name` (empty counts as absent, as Go's `FormValue`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// A time parameter in ms, `default` when absent.
    fn time(&self, name: &str, default: i64) -> Result<i64, PromErr> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_time(v).map_err(|e| invalid(name, e)),
        }
    }

    /// A duration parameter in ms.
    fn duration(&self, name: &str) -> Result<Option<i64>, PromErr> {
        self.get(name)
            .map(|v| {
                parse_duration(v)
                    .map_err(|e| PromErr::bad_data(format!("invalid parameter {name:?}: {e}")))
            })
            .transpose()
    }

    /// The `match[]` selectors.
    fn selectors(&self) -> Result<Vec<Vec<Matcher>>, PromErr> {
        self.all("match[]")
            .into_iter()
            .map(|s| skymeter_promql::parse_selector(s).map_err(PromErr::from))
            .collect()
    }
}

fn invalid(name: &str, e: impl std::fmt::Display) -> PromErr {
    PromErr::bad_data(format!("invalid parameter {name:?}: {e}"))
}

/// A Prometheus API time in ms: Unix seconds as a float, or RFC 3339; within
/// [`MIN_TIME_MS`]..=[`MAX_TIME_MS`] (Prometheus' "no bound" times stand for these).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let ms = if let Ok(f) = s.parse::<f64>() {
        // The float's range is checked before any conversion, so nothing saturates.
        let bound = MIN_TIME_MS as f64 / 1000.0..=MAX_TIME_MS as f64 / 1000.0;
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        if !bound.contains(&f) {
            return Err(format!(
                "{s:?} is outside the supported times, Unix seconds {} to {} (years 0 to 9999)",
                bound.start(),
                bound.end()
            ));
        }
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        secs as i64 * 1000 + frac as i64
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        t.timestamp_millis()
    } else {
        return match s {
            MIN_TIME => Ok(MIN_TIME_MS),
            MAX_TIME => Ok(MAX_TIME_MS),
            _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
        };
    };
    skymeter_promql::check_time("time", ms).map_err(|e| e.message)
}

/// A Prometheus API duration in ms: float seconds, or `1y2w3d4h5m6s7ms` (each part
/// optional, in that order; `0` alone is allowed).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        if !ns.is_finite() || ns.abs() > i64::MAX as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((ns as i64) / 1_000_000);
    }
    let bad = || format!("cannot parse {s:?} to a valid duration");
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // `ms` before `m`: the longer unit name first.
        let unit = if rest.starts_with("ms") {
            6
        } else {
            match UNITS.iter().position(|(u, _)| rest.starts_with(u)) {
                Some(i) => i,
                None => return Err(bad()),
            }
        };
        if unit < next_unit {
            return Err(bad());
        }
        next_unit = unit + 1;
        rest = &rest[UNITS[unit].0.len()..];
        total = n
            .checked_mul(UNITS[unit].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn options(st: &AppState, form: &Form) -> Result<Options, PromErr> {
    // The engine stops a little before the server's own request limit, so that a slow
    // query is answered in Prometheus' shape (503 `timeout`) rather than by the server.
    let server = st
        .timeout
        .saturating_sub(Duration::from_millis(500))
        .min(st.query.timeout);
    let asked = form
        .duration("timeout")?
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms as u64));
    Ok(Options {
        timeout: Some(asked.map_or(server, |a| a.min(server))),
        max_series: st.query.max_series,
        max_samples: st.query.max_samples,
        ..Options::default()
    })
}

fn count_canceled(metrics: &crate::metrics::Metrics, e: &QueryError) {
    if e.kind == ErrorKind::Canceled {
        metrics
            .queries_canceled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Cancels a query when dropped before its answer: the server drops a request's handler
/// when its client disconnects, and the query running on a blocking thread then stops at
/// its next deadline check instead of running to its timeout for nobody.
#[derive(Default)]
struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CancelOnDrop {
    fn flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.0.clone()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn required<'a>(form: &'a Form, name: &str) -> Result<&'a str, PromErr> {
    form.get(name).ok_or_else(|| {
        PromErr::bad_data(format!("invalid parameter {name:?}: missing; give a value"))
    })
}

// ---- handlers ----

/// `GET`/`POST /api/v1/query`: `query`, `time` (default now), `timeout`.
pub async fn query(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let prep = (|| {
        let form = Form::parse(q.as_deref(), &headers, &body)?;
        let expr = required(&form, "query")?.to_string();
        let time = TimeRange::instant(form.time("time", now_ms())?)?;
        Ok::<_, PromErr>((expr, time.start_ms(), options(&st, &form)?))
    })();
    let (expr, time, mut opts) = match prep {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Lives until the answer is sent: dropped earlier, with the request, it cancels.
    let cancel = CancelOnDrop::default();
    opts.cancel = Some(cancel.flag());
    let (store, metrics) = (st.store.clone(), st.metrics.clone());
    blocking(move || {
        let v = instant_query(&PromQuerier(&*store), &expr, time, &opts)
            .inspect_err(|e| count_canceled(&metrics, e))?;
        success(&v)
    })
    .await
}

/// `GET`/`POST /api/v1/query_range`: `query`, `start`, `end`, `step`, `timeout`.
pub async fn query_range(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let prep = (|| {
        let form = Form::parse(q.as_deref(), &headers, &body)?;
        let expr = required(&form, "query")?.to_string();
        let start = parse_time(required(&form, "start")?).map_err(|e| invalid("start", e))?;
        let end = parse_time(required(&form, "end")?).map_err(|e| invalid("end", e))?;
        let step = form.duration("step")?.ok_or_else(|| {
            PromErr::bad_data("invalid parameter \"step\": missing; give a duration (`60`, `1m`)")
        })?;
        let range = TimeRange::steps(start, end, step)?;
        Ok::<_, PromErr>((expr, range, options(&st, &form)?))
    })();
    let (expr, range, mut opts) = match prep {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Lives until the answer is sent: dropped earlier, with the request, it cancels.
    let cancel = CancelOnDrop::default();
    opts.cancel = Some(cancel.flag());
    let (store, metrics) = (st.store.clone(), st.metrics.clone());
    blocking(move || {
        let (start, end, step) = (range.start_ms(), range.end_ms(), range.step_ms());
        let v = range_query(&PromQuerier(&*store), &expr, start, end, step, &opts)
            .inspect_err(|e| count_canceled(&metrics, e))?;
        success(&v)
    })
    .await
}

/// The `match[]`, `start`, `end` of the metadata reads.
struct Scope {
    selectors: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
}

fn scope(form: &Form, need_match: bool) -> Result<Scope, PromErr> {
    if need_match && form.all("match[]").is_empty() {
        return Err(PromErr::bad_data("no match[] parameter provided"));
    }
    let range = TimeRange::span(
        form.time("start", MIN_TIME_MS)?,
        form.time("end", MAX_TIME_MS)?,
    )?;
    Ok(Scope {
        start: range.start_ms(),
        end: range.end_ms(),
        selectors: form.selectors()?,
    })
}

/// `GET`/`POST /api/v1/series` with `match[]` (required), `start`, `end`.
pub async fn series(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let sc = match Form::parse(q.as_deref(), &headers, &body).and_then(|f| scope(&f, true)) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let store = st.store.clone();
    blocking(move || {
        let sets = store.prom_series(&sc.selectors, sc.start, sc.end)?;
        success(&sets)
    })
    .await
}

/// `GET /api/v1/series`: Prometheus' series API when the request has `match[]`, else
/// skymeter's own series list (filters `metric`, `resource`, ...; paged).
pub async fn series_get(
    st: State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let is_prom = Form::parse(q.as_deref(), &headers, &[]).is_ok_and(|f| f.has("match[]"));
    if is_prom {
        series(st, RawQuery(q), headers, FormBody(Bytes::new())).await
    } else {
        super::query::series(st, RawQuery(q)).await.into_response()
    }
}

/// `GET`/`POST /api/v1/labels`: `match[]` (optional), `start`, `end`.
pub async fn labels(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let sc = match Form::parse(q.as_deref(), &headers, &body).and_then(|f| scope(&f, false)) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let store = st.store.clone();
    blocking(move || {
        let names = store.prom_label_names(&sc.selectors, sc.start, sc.end)?;
        success(&names)
    })
    .await
}

/// `GET /api/v1/label/{name}/values`: `match[]` (optional), `start`, `end`.
pub async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !skymeter_promql::is_valid_label_name(&name) {
        return PromErr::bad_data(format!("invalid label name: {name:?}")).into_response();
    }
    let sc = match Form::parse(q.as_deref(), &headers, &[]).and_then(|f| scope(&f, false)) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let store = st.store.clone();
    blocking(move || {
        let values = store.prom_label_values(&name, &sc.selectors, sc.start, sc.end)?;
        success(&values)
    })
    .await
}

/// `GET /api/v1/metadata`: `metric` (one name), `limit` (most metrics). Every skymeter
/// metric is a gauge (values per period, not running totals); help and unit come from the
/// metric catalog when the metric is in it.
pub async fn metadata(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let form = match Form::parse(q.as_deref(), &headers, &[]) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let metric = form.get("metric").map(str::to_string);
    let limit = match form.get("limit").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(Ok(_)) => None, // Prometheus: a negative limit means no limit
        Some(Err(_)) => {
            return PromErr::bad_data("limit must be a number").into_response();
        }
    };
    let store = st.store.clone();
    blocking(move || {
        let mut out = Map::new();
        for m in store.prom_metrics()? {
            if metric.as_ref().is_some_and(|want| *want != m.name) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let def = skymeter_model::catalog::lookup(&m.metric).filter(|d| d.unit == m.unit);
            let help = match def {
                Some(d) => format!("{} (skymeter metric `{}`)", d.description, m.metric),
                None => format!("skymeter metric `{}` in {}", m.metric, m.unit.as_str()),
            };
            let unit = skymeter_model::prom::unit_suffix(m.unit);
            let entry = json!({"type": "gauge", "help": help, "unit": unit});
            match out.get_mut(&m.name) {
                Some(Json::Array(list)) => list.push(entry),
                _ => {
                    out.insert(m.name.clone(), Json::Array(vec![entry]));
                }
            }
        }
        success(&out)
    })
    .await
}

/// The Prometheus version whose HTTP API and PromQL this server implements; clients such
/// as Grafana pick features by it (VictoriaMetrics and Thanos answer the same way).
pub const PROMETHEUS_API_VERSION: &str = "2.42.0";

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    answer(success(&json!({
        "version": PROMETHEUS_API_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "skymeter",
        "buildDate": "",
        "goVersion": format!("skymeter {}", env!("CARGO_PKG_VERSION")),
        "application": "skymeter",
        "skymeterVersion": env!("CARGO_PKG_VERSION"),
    })))
}

/// `GET /api/v1/status/config`: skymeter has no scrape configuration; this is the global
/// part Prometheus clients read (evaluation interval = the default subquery step).
pub async fn config() -> Response {
    answer(success(&json!({
        "yaml": "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n",
    })))
}

/// `GET`/`POST /api/v1/query_exemplars`: skymeter stores no exemplars; the query is
/// still checked.
pub async fn query_exemplars(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let r = (|| {
        let form = Form::parse(q.as_deref(), &headers, &body)?;
        let expr = required(&form, "query")?;
        TimeRange::span(
            form.time("start", MIN_TIME_MS)?,
            form.time("end", MAX_TIME_MS)?,
        )?;
        parse_query(expr, &Options::default())?;
        success(&Vec::<Json>::new())
    })();
    answer(r)
}

/// `GET`/`POST /api/v1/format_query`: the query, pretty-printed. The query is held to the
/// engine's bounds first: promql-parser's printer takes time quadratic in the depth of the
/// expression, which those bounds keep small.
pub async fn format_query(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let r = (|| {
        let form = Form::parse(q.as_deref(), &headers, &body)?;
        let expr = required(&form, "query")?;
        let parsed = parse_query(expr, &Options::default())?;
        success(&parsed.prettify())
    })();
    answer(r)
}

/// The OpenAPI description of these operations, and of `GET /api/v1/series`, which also
/// serves skymeter's own series list (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    if (spec.method, spec.path) != ("GET", "/api/v1/series") {
        return prom_op(spec);
    }
    let json_ct = "application/json";
    let mut params = series_params();
    params.extend(prom_scope_params(true));
    Some(Op {
        tag: "metrics",
        summary: "List series (skymeter's list, or Prometheus' with `match[]`)",
        description: "Two APIs on one path. **Without `match[]`**: skymeter's series \
                      list: a series is one metric, unit and stat of one resource with \
                      one set of labels; filters `metric`, `resource`, …, paged, answered \
                      as a `SeriesInfoPage`. **With `match[]`** (one or more): \
                      Prometheus' series API: the label sets of the series that match \
                      any selector and have samples in [`start`, `end`], answered \
                      `{\"status\":\"success\",\"data\":[{labels}…]}`; the skymeter \
                      filters do not apply then. `POST` with a form body is the same \
                      Prometheus call.",
        params,
        body: None,
        ok: vec![(
            "200",
            "A page of series, or (with `match[]`) Prometheus' answer.",
            Some((
                json_ct,
                json!({"anyOf": [
                    s.of::<PageOf<SeriesInfo>>(),
                    prom_ok(json!({"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}})),
                ]}),
            )),
        )],
        errors: vec![],
    })
}

/// Whether the route is the Prometheus-compatible API's, which answers its own errors in
/// Prometheus' shape.
pub fn is_prometheus_api(spec: &RouteSpec) -> bool {
    prom_op(spec).is_some()
}

fn prom_scope_params(with_match: bool) -> Vec<Json> {
    let mut p = Vec::new();
    if with_match {
        p.push(json!({"name": "match[]", "in": "query", "required": false,
            "description": "A series selector (`cpu_utilization_percent{region=\"eu-west-1\"}`); repeat for several (a series may match any).",
            "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true}));
    }
    p.push(query_param(
        "start",
        "RFC 3339 or Unix seconds (float). Default: no bound. Prometheus API.",
        string(),
    ));
    p.push(query_param(
        "end",
        "RFC 3339 or Unix seconds (float). Default: no bound. Prometheus API.",
        string(),
    ));
    p
}

/// Prometheus' answer envelope around `data`.
fn prom_ok(data: Json) -> Json {
    json!({"type": "object", "required": ["status", "data"], "properties": {
        "status": {"const": "success"},
        "data": data,
        "warnings": {"type": "array", "items": {"type": "string"}},
    }})
}

fn prom_result() -> Json {
    json!({"type": "object", "required": ["resultType", "result"], "properties": {
        "resultType": {"enum": ["matrix", "vector", "scalar", "string"]},
        "result": {"description": "matrix: [{metric, values: [[t, \"v\"]…]}]; vector: [{metric, value: [t, \"v\"]}]; scalar and string: [t, \"v\"]. `t` is Unix seconds (float); values are strings (`NaN`, `+Inf`)."},
    }})
}

/// A Prometheus API description: `text`, the form-body note for POST, and the error shape.
macro_rules! prom_desc {
    ($post:expr, $text:expr) => {
        if $post {
            concat!(
                $text,
                " Parameters may also come as an `application/x-www-form-urlencoded` body.",
                " Errors have Prometheus' shape, `{\"status\":\"error\",\"errorType\":…,\"error\":…}`: ",
                "400 `bad_data` (parameters, parse errors), 422 `execution` (evaluation failed), ",
                "503 `timeout`, 500 `internal`."
            )
        } else {
            concat!(
                $text,
                " Errors have Prometheus' shape, `{\"status\":\"error\",\"errorType\":…,\"error\":…}`: ",
                "400 `bad_data` (parameters, parse errors), 422 `execution` (evaluation failed), ",
                "503 `timeout`, 500 `internal`."
            )
        }
    };
}

/// The operations of the Prometheus-compatible query API (Prometheus 2.42's HTTP API).
fn prom_op(spec: &RouteSpec) -> Option<Op> {
    let json_ct = "application/json";
    let post = spec.method == "POST";
    let labels_list = json!({"type": "array", "items": {"type": "string"}});
    let label_set = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let q = |d: &str| query_param("query", d, string());
    let timeout = query_param(
        "timeout",
        "Evaluation time limit (`30s`, or float seconds); at most the server's request timeout.",
        string(),
    );
    let (summary, description, params, data): (&'static str, &'static str, Vec<Json>, Json) = match spec.path {
        "/api/v1/query" => (
            "PromQL instant query (Prometheus API)",
            prom_desc!(
                post,
                "Evaluates `query` at `time`. Metric names and labels as skymeter maps them \
                 (`cpu_utilization_percent{provider, account, region, resource_id, stat, kind, \
                 resource_name, tag_<key>}`)."
            ),
            vec![
                q("A PromQL expression."),
                query_param("time", "RFC 3339 or Unix seconds (float); default now.", string()),
                timeout,
            ],
            prom_result(),
        ),
        "/api/v1/query_range" => (
            "PromQL range query (Prometheus API)",
            prom_desc!(
                post,
                "Evaluates `query` at `start`, `start + step`, … ≤ `end`; at most 11,000 points \
                 per series."
            ),
            vec![
                q("A PromQL expression (giving a scalar or an instant vector)."),
                query_param("start", "RFC 3339 or Unix seconds (float). Required.", string()),
                query_param("end", "RFC 3339 or Unix seconds (float). Required.", string()),
                query_param(
                    "step",
                    "`60`, `1m`, `1h30m` (float seconds or a Prometheus duration). Required.",
                    string(),
                ),
                timeout,
            ],
            prom_result(),
        ),
        "/api/v1/series" => (
            "Series by selector (Prometheus API)",
            prom_desc!(
                post,
                "The label sets of the series that match any `match[]` (required) and have \
                 samples in [`start`, `end`]."
            ),
            prom_scope_params(true),
            json!({"type": "array", "items": label_set}),
        ),
        "/api/v1/labels" => (
            "Label names (Prometheus API)",
            prom_desc!(
                post,
                "Label names of the series matching `match[]` (all series when absent) with \
                 samples in [`start`, `end`], sorted."
            ),
            prom_scope_params(true),
            labels_list,
        ),
        "/api/v1/label/{name}/values" => (
            "Values of one label (Prometheus API)",
            prom_desc!(
                post,
                "Values of the label over the series matching `match[]` (all when absent) with \
                 samples in [`start`, `end`], sorted; `__name__` gives the metric names."
            ),
            {
                let mut p = vec![json!({"name": "name", "in": "path", "required": true,
                    "description": "A label name.", "schema": string()})];
                p.extend(prom_scope_params(true));
                p
            },
            labels_list,
        ),
        "/api/v1/metadata" => (
            "Metric metadata (Prometheus API)",
            "Per metric name: type (`gauge`: skymeter stores values per period), help and \
             unit from skymeter's metric catalog.",
            vec![
                query_param("metric", "Only this metric name.", string()),
                query_param("limit", "At most this many metrics.", json!({"type": "integer"})),
            ],
            json!({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "help": {"type": "string"}, "unit": {"type": "string"}}}}}),
        ),
        "/api/v1/status/buildinfo" => (
            "Build information (Prometheus API)",
            "`version` is the Prometheus version whose API skymeter implements (2.42.0), so that \
             clients enable the matching features; `skymeterVersion` is skymeter's.",
            vec![],
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
        ),
        "/api/v1/status/config" => (
            "Configuration (Prometheus API)",
            "The global evaluation settings as Prometheus YAML (`yaml`); skymeter scrapes \
             nothing itself.",
            vec![],
            json!({"type": "object", "properties": {"yaml": {"type": "string"}}}),
        ),
        "/api/v1/query_exemplars" => (
            "Exemplars (Prometheus API)",
            prom_desc!(
                post,
                "skymeter keeps no exemplars: always an empty list (the query is still checked)."
            ),
            vec![
                q("A PromQL expression."),
                query_param("start", "RFC 3339 or Unix seconds (float).", string()),
                query_param("end", "RFC 3339 or Unix seconds (float).", string()),
            ],
            json!({"type": "array", "maxItems": 0}),
        ),
        "/api/v1/format_query" => (
            "Format a query (Prometheus API)",
            prom_desc!(post, "The query, pretty-printed."),
            vec![q("A PromQL expression.")],
            string(),
        ),
        _ => return None,
    };
    Some(Op {
        tag: "prometheus",
        summary,
        description,
        params,
        body: None,
        ok: vec![(
            "200",
            "`{\"status\":\"success\",\"data\":…}`.",
            Some((json_ct, prom_ok(data))),
        )],
        errors: vec![("422", "The query failed in evaluation (`execution`).")],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_prometheus_reads_them() {
        assert_eq!(parse_time("1767225600"), Ok(1_767_225_600_000));
        assert_eq!(parse_time("1767225600.5"), Ok(1_767_225_600_500));
        assert_eq!(parse_time("1767225600.1234"), Ok(1_767_225_600_123));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(
            parse_time("2026-01-01T01:00:00.25+01:00"),
            Ok(1_767_225_600_250)
        );
        assert_eq!(parse_time(MIN_TIME), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME), Ok(MAX_TIME_MS));
        assert!(parse_time("yesterday")
            .unwrap_err()
            .contains("\"yesterday\""));
    }

    #[test]
    fn times_outside_years_0_to_9999_are_refused() {
        assert_eq!(
            parse_time("-9100000000000000"),
            Err(
                "\"-9100000000000000\" is outside the supported times, Unix seconds \
                 -62167219200 to 253402300799.999 (years 0 to 9999)"
                    .to_string()
            )
        );
        assert!(parse_time("9100000000000000").is_err());
        assert!(parse_time("1e300").is_err());
        assert!(parse_time("NaN").is_err());
        assert!(parse_time("inf").is_err());
        assert_eq!(parse_time("253402300799.999"), Ok(MAX_TIME_MS));
        assert_eq!(parse_time("-62167219200"), Ok(MIN_TIME_MS));
        assert_eq!(parse_time("9999-12-31T23:59:59.999Z"), Ok(MAX_TIME_MS));
    }

    #[test]
    fn durations_as_prometheus_reads_them() {
        assert_eq!(parse_duration("300"), Ok(300_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1d2h"), Ok(93_600_000));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        assert_eq!(parse_duration("1y"), Ok(31_536_000_000));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert_eq!(parse_duration("1m30s500ms"), Ok(90_500));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "5x", "m", "30s1m", "1.5m", "5 m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// Property tests of the Prometheus parameter parsers: no panic on any text, accepted
    /// times within the supported bounds, durations that agree with their parts.
    /// 256 cases each (`PROPTEST_CASES` overrides).
    mod props {
        use super::*;
        use proptest::prelude::*;

        #[test]
        fn times_and_durations_parse_without_panic_and_consistently() {
            let text = prop_oneof![
                ".{0,40}",
                "[-+0-9.eE:TZyhmsdw]{0,30}",
                any::<f64>().prop_map(|f| f.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
            ];
            let count = std::cell::Cell::new(0);
            crate::params::tests::props::runner()
                .run(&text, |v| {
                    count.set(count.get() + 1);
                    if let Ok(ms) = parse_time(&v) {
                        prop_assert!((MIN_TIME_MS..=MAX_TIME_MS).contains(&ms), "{v}: {ms}");
                    }
                    let _ = parse_duration(&v);
                    let _ = Form::parse(Some(&v), &HeaderMap::new(), v.as_bytes());
                    Ok(())
                })
                .unwrap();
            let parts = (
                any::<u32>(),
                prop::sample::select(vec![
                    ("h", 3_600_000i64),
                    ("m", 60_000),
                    ("s", 1000),
                    ("ms", 1),
                    ("y", 31_536_000_000),
                ]),
            );
            crate::params::tests::props::runner()
                .run(&parts, |(n, (unit, ms))| {
                    count.set(count.get() + 1);
                    let want = i64::from(n).checked_mul(ms);
                    prop_assert_eq!(parse_duration(&format!("{n}{unit}")).ok(), want);
                    Ok(())
                })
                .unwrap();
            let secs = -62_167_219_200i64..=253_402_300_799;
            crate::params::tests::props::runner()
                .run(&secs, |s| {
                    count.set(count.get() + 1);
                    prop_assert_eq!(parse_time(&s.to_string()), Ok(s * 1000));
                    Ok(())
                })
                .unwrap();
            eprintln!("prom parameters: {} cases run", count.get());
        }
    }
}
