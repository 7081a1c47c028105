//! A local stand-in for the Google APIs the gcp collector calls, answering in the shapes of
//! the official REST references: the OAuth2 token endpoint (service-account JWT-bearer
//! grant), Compute Engine `aggregatedList`s (instances, machine types, disks, addresses,
//! forwarding rules, routers) and `snapshots.list`, GKE `clusters.list`, Cloud Functions v2
//! `functions.list`, Cloud SQL Admin `instances.list`, Cloud Storage `buckets.list`, Cloud
//! Monitoring `timeSeries.list` and BigQuery `jobs.query` / `jobs.getQueryResults`, with
//! paging, scripted failures (401, 403, 429 with Retry-After) and a log of every request.
//! timeSeries.list checks its aggregation as Cloud Monitoring does (the `Aggregation`
//! reference: which aligner and reducer suit which metric kind and value type) and answers
//! 400 INVALID_ARGUMENT otherwise, e.g. to ALIGN_PERCENTILE_95 of a GAUGE DOUBLE metric or
//! ALIGN_MEAN of a DELTA DISTRIBUTION one.
//! Listens on 127.0.0.1 only. Compiled for the collector's unit tests and, with the `standin`
//! feature, for the CLI's end-to-end test and `bench/gcp_standin`.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The access token the token endpoint hands out and every API expects.
pub const TOKEN: &str = "ya29.skymeter-test-token";
/// The service account of the test key.
pub const CLIENT_EMAIL: &str = "skymeter@test-project.iam.gserviceaccount.com";
/// A test-only RSA key (PKCS#8), never registered anywhere.
pub const TEST_KEY_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/gcp/test-key.pem"
));

/// What one project holds.
#[derive(Default, Clone)]
pub struct Project {
    /// Instance resources (Compute API JSON), each with its `zone` URL.
    pub instances: Vec<Value>,
    pub machine_types: Vec<Value>,
    pub disks: Vec<Value>,
    pub clusters: Vec<Value>,
    pub functions: Vec<Value>,
    pub sql: Vec<Value>,
    pub buckets: Vec<Value>,
    /// Disk snapshots (snapshots.list, global).
    pub snapshots: Vec<Value>,
    /// Addresses (internal and external), each with its `region` URL or none (global).
    pub addresses: Vec<Value>,
    /// Forwarding rules, each with its `region` URL or none (global).
    pub forwarding_rules: Vec<Value>,
    /// Cloud Routers with their `nats[]`.
    pub routers: Vec<Value>,
    /// Series per (metric type, aligner): (resource labels, TypedValue), one point each,
    /// ending at the query's `interval.endTime`. Reduced queries (a `crossSeriesReducer`)
    /// of distributions, asked ALIGN_DELTA, are keyed by the reducer instead.
    pub series: HashMap<(String, String), Vec<(Value, Value)>>,
    /// Raw samples per metric type, answered to ALIGN_NONE: series of (resource labels,
    /// [(seconds before the query's `interval.endTime`, TypedValue)]). Only the samples in
    /// `(startTime, endTime]` are answered, newest first, as the API does. An aligned query
    /// of a metric type and aligner that `series` has no answer for is answered from these
    /// samples, aligned to its `alignmentPeriod` (and reduced) as Monitoring does (see
    /// [`align_raw`]): a point per period, for collections over long windows.
    pub raw: HashMap<String, Vec<RawSeries>>,
}

/// One raw series: resource labels and (seconds before `interval.endTime`, TypedValue).
pub type RawSeries = (Value, Vec<(i64, Value)>);

/// The metric kind and value type of a metric type, as its descriptor in Google's metric
/// list says (GAUGE DOUBLE for one the stand-in does not know).
pub fn descriptor(metric_type: &str) -> (&'static str, &'static str) {
    match metric_type {
        "compute.googleapis.com/instance/cpu/utilization"
        | "agent.googleapis.com/memory/percent_used"
        | "cloudsql.googleapis.com/database/cpu/utilization"
        | "cloudsql.googleapis.com/database/memory/utilization"
        | "storage.googleapis.com/storage/total_bytes" => ("GAUGE", "DOUBLE"),
        "cloudsql.googleapis.com/database/network/connections"
        | "storage.googleapis.com/storage/object_count" => ("GAUGE", "INT64"),
        "compute.googleapis.com/instance/disk/read_ops_count"
        | "compute.googleapis.com/instance/disk/write_ops_count"
        | "compute.googleapis.com/instance/disk/read_bytes_count"
        | "compute.googleapis.com/instance/disk/write_bytes_count"
        | "compute.googleapis.com/instance/network/received_bytes_count"
        | "compute.googleapis.com/instance/network/sent_bytes_count"
        | "compute.googleapis.com/instance/network/received_packets_count"
        | "compute.googleapis.com/instance/network/sent_packets_count"
        | "cloudfunctions.googleapis.com/function/execution_count"
        | "run.googleapis.com/request_count"
        | "loadbalancing.googleapis.com/https/request_count"
        | "loadbalancing.googleapis.com/https/request_bytes_count"
        | "loadbalancing.googleapis.com/https/response_bytes_count"
        | "router.googleapis.com/nat/sent_bytes_count"
        | "router.googleapis.com/nat/received_bytes_count" => ("DELTA", "INT64"),
        "cloudfunctions.googleapis.com/function/execution_times"
        | "run.googleapis.com/request_latencies" => ("DELTA", "DISTRIBUTION"),
        _ => ("GAUGE", "DOUBLE"),
    }
}

/// Whether Cloud Monitoring accepts `aligner` (+ `reducer`, `alignmentPeriod`) for a metric
/// of `kind` and `value_type`, after the `Aggregation.Aligner` / `Aggregation.Reducer`
/// reference ("This aligner is valid for GAUGE and DELTA metrics with numeric values", …);
/// `Err` is the INVALID_ARGUMENT message.
pub fn check_aggregation(
    kind: &str,
    value_type: &str,
    aligner: &str,
    reducer: &str,
    alignment_period: Option<&str>,
) -> Result<(), String> {
    let numeric = matches!(value_type, "INT64" | "DOUBLE");
    let distribution = value_type == "DISTRIBUTION";
    let boolean = value_type == "BOOL";
    let gauge_or_delta = matches!(kind, "GAUGE" | "DELTA");
    let aligner = if aligner.is_empty() {
        "ALIGN_NONE"
    } else {
        aligner
    };
    let refuse = |field: &str, value: &str| {
        Err(format!(
            "Field aggregation.{field} had an invalid value of \"{value}\": The {} cannot be applied to metrics with kind {kind} and value type {value_type}.",
            if field == "perSeriesAligner" { "aligner" } else { "reducer" }
        ))
    };
    // (valid, value type after alignment)
    let (valid, aligned_type) = match aligner {
        "ALIGN_NONE" => (true, value_type),
        "ALIGN_DELTA" => (matches!(kind, "CUMULATIVE" | "DELTA"), value_type),
        "ALIGN_RATE" => (matches!(kind, "CUMULATIVE" | "DELTA") && numeric, "DOUBLE"),
        "ALIGN_INTERPOLATE" => (kind == "GAUGE" && numeric, value_type),
        "ALIGN_NEXT_OLDER" => (kind == "GAUGE", value_type),
        "ALIGN_MIN" | "ALIGN_MAX" => (gauge_or_delta && numeric, value_type),
        "ALIGN_MEAN" | "ALIGN_STDDEV" | "ALIGN_PERCENT_CHANGE" => {
            (gauge_or_delta && numeric, "DOUBLE")
        }
        "ALIGN_COUNT" => (gauge_or_delta && (numeric || boolean), "INT64"),
        "ALIGN_SUM" => (gauge_or_delta && (numeric || distribution), value_type),
        "ALIGN_PERCENTILE_99" | "ALIGN_PERCENTILE_95" | "ALIGN_PERCENTILE_50"
        | "ALIGN_PERCENTILE_05" => (gauge_or_delta && distribution, "DOUBLE"),
        other => {
            return Err(format!(
                "Invalid value at 'aggregation.per_series_aligner' (type.googleapis.com/google.monitoring.v3.Aggregation.Aligner), \"{other}\""
            ))
        }
    };
    if !valid {
        return refuse("perSeriesAligner", aligner);
    }
    if aligner != "ALIGN_NONE" && alignment_period.is_none() {
        return Err("The alignment period must be specified when an aligner is given.".into());
    }
    if reducer.is_empty() || reducer == "REDUCE_NONE" {
        return Ok(());
    }
    if aligner == "ALIGN_NONE" {
        return Err(
            "A cross-series reducer requires a per-series aligner other than ALIGN_NONE.".into(),
        );
    }
    let numeric = matches!(aligned_type, "INT64" | "DOUBLE");
    let distribution = aligned_type == "DISTRIBUTION";
    let ok = match reducer {
        "REDUCE_MEAN" | "REDUCE_SUM" | "REDUCE_PERCENTILE_99" | "REDUCE_PERCENTILE_95"
        | "REDUCE_PERCENTILE_50" | "REDUCE_PERCENTILE_05" => numeric || distribution,
        "REDUCE_MIN" | "REDUCE_MAX" | "REDUCE_STDDEV" => numeric,
        "REDUCE_COUNT" => true,
        "REDUCE_COUNT_TRUE" | "REDUCE_COUNT_FALSE" | "REDUCE_FRACTION_TRUE" => {
            aligned_type == "BOOL"
        }
        other => {
            return Err(format!(
                "Invalid value at 'aggregation.cross_series_reducer' (type.googleapis.com/google.monitoring.v3.Aggregation.Reducer), \"{other}\""
            ))
        }
    };
    if !ok {
        return refuse("crossSeriesReducer", reducer);
    }
    Ok(())
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: String,
}

impl Logged {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct Billing {
    /// Column names of the result (the query's SELECT list).
    pub fields: Vec<String>,
    /// Cell values (strings or null), one row each.
    pub rows: Vec<Vec<Value>>,
    /// Polls answered `jobComplete: false` before the result.
    pub pending_polls: usize,
    pub page_size: usize,
}

/// A scripted answer: HTTP status and `Retry-After` seconds.
pub type Scripted = (u16, Option<u64>);

#[derive(Default)]
pub struct State {
    pub projects: Mutex<HashMap<String, Arc<Project>>>,
    pub billing: Mutex<Billing>,
    /// Cloud Billing Catalog SKUs per service id (`6F81-5844-456A`).
    pub skus: Mutex<HashMap<String, Vec<Value>>>,
    /// Items (or series, or rows) per page of every list.
    pub page_size: Mutex<usize>,
    pub requests: Mutex<Vec<Logged>>,
    /// JWT assertions received by the token endpoint.
    pub assertions: Mutex<Vec<String>>,
    /// Scripted answers: the first entry whose needle the path contains answers with its
    /// next (status, Retry-After seconds) until its queue is empty.
    pub failures: Mutex<Vec<(String, VecDeque<Scripted>)>>,
}

impl State {
    pub fn requests(&self) -> Vec<Logged> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests whose path contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.contains(needle))
            .count()
    }

    pub fn fail(&self, needle: &str, answers: &[(u16, Option<u64>)]) {
        self.failures
            .lock()
            .unwrap()
            .push((needle.to_string(), answers.iter().copied().collect()));
    }
}

pub struct FakeGcp {
    pub url: String,
    pub state: Arc<State>,
}

impl FakeGcp {
    /// Starts the server on a thread of its own (its own runtime), on 127.0.0.1.
    pub fn start() -> FakeGcp {
        let state = Arc::new(State::default());
        *state.page_size.lock().unwrap() = 1000;
        state.billing.lock().unwrap().page_size = 1000;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let st = st.clone();
                        async move { handle(st, method, uri, headers, body) }
                    },
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        FakeGcp { url, state }
    }

    /// Writes a service-account key file whose `token_uri` is this server's token endpoint.
    pub fn key_file(&self, dir: &Path, project: &str) -> PathBuf {
        let key = json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": TEST_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.url),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"
        });
        let path = dir.join("key.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&key).unwrap()).unwrap();
        path
    }

    pub fn set_project(&self, id: &str, p: Project) {
        self.state
            .projects
            .lock()
            .unwrap()
            .insert(id.to_string(), Arc::new(p));
    }
}

/// Percent-decoding of `application/x-www-form-urlencoded` (query strings, the token form).
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(h, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn json_response(status: u16, v: Value, retry_after: Option<u64>) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=UTF-8")],
        v.to_string(),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

/// A Google API error body (`google.rpc.Status` in the JSON mapping with the legacy `errors`).
fn google_error(code: u16, path: &str, retry_after: Option<u64>) -> Response {
    let (status, reason, message) = match code {
        401 => (
            "UNAUTHENTICATED",
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.".to_string(),
        ),
        403 => (
            "PERMISSION_DENIED",
            "forbidden",
            format!("The caller does not have permission on {path}"),
        ),
        404 => ("NOT_FOUND", "notFound", format!("{path} was not found")),
        429 => (
            "RESOURCE_EXHAUSTED",
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.".to_string(),
        ),
        _ => ("INTERNAL", "backendError", "Internal error".to_string()),
    };
    json_response(
        code,
        json!({"error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status
        }}),
        retry_after,
    )
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (what the collector sends; no chrono,
/// which the benchmark stand-in that includes this file does not depend on).
pub fn unix_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() != 20 || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch.
pub fn rfc3339_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A 400 INVALID_ARGUMENT in Google's error shape.
fn invalid_argument(message: &str) -> Response {
    json_response(
        400,
        json!({"error": {
            "code": 400,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "badRequest"}],
            "status": "INVALID_ARGUMENT"
        }}),
        None,
    )
}

/// What an aligned `timeSeries.list` asks of the raw samples.
pub struct Alignment<'a> {
    /// The metric's kind and value type (its descriptor).
    pub kind: &'a str,
    pub value_type: &'a str,
    pub aligner: &'a str,
    /// `crossSeriesReducer`, empty for none.
    pub reducer: &'a str,
    /// The resource labels of `groupByFields` (without `resource.labels.`).
    pub group_by: &'a [String],
    /// `interval.startTime` and `endTime`, Unix seconds; `alignmentPeriod` in seconds.
    pub start: i64,
    pub end: i64,
    pub period: i64,
}

/// One aligned (or reduced) series: its resource labels, kind, value type and points
/// (period end, value), newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Aligned {
    pub labels: Value,
    pub kind: &'static str,
    pub value_type: &'static str,
    pub points: Vec<(i64, f64)>,
}

fn numeric(v: &Value) -> Option<f64> {
    v.get("doubleValue")
        .and_then(Value::as_f64)
        .or_else(|| match v.get("int64Value")? {
            Value::String(s) => s.parse().ok(),
            n => n.as_f64(),
        })
}

/// A TypedValue of `value_type`.
fn typed(value_type: &str, v: f64) -> Value {
    if value_type == "INT64" {
        int64(v.round() as i64)
    } else {
        double(v)
    }
}

/// The raw samples of numeric series aligned as Cloud Monitoring aligns stored points (the
/// `Aggregation.Aligner` reference: "each alignment operation replaces the set of data values
/// in each alignment period with a single value … An aligned time series has a single data
/// value at the end of each alignment_period"): periods of `period` seconds ending at
/// `end`, `end − period`, … after `start`, each taking the samples in (its end − period,
/// its end]; a period without samples has no point. ALIGN_MEAN, MAX, MIN, SUM, DELTA, COUNT
/// and RATE (a DELTA metric's sum ÷ the period) are computed; other aligners give nothing.
/// Then, with a reducer (REDUCE_SUM, MEAN, MAX, MIN, COUNT), the aligned series that share
/// the `group_by` labels are merged per period and keep only those labels, as the
/// `Aggregation.Reducer` reference describes.
pub fn align_raw(raw: &[RawSeries], a: &Alignment<'_>) -> Vec<Aligned> {
    let out_kind = match a.aligner {
        "ALIGN_SUM" | "ALIGN_DELTA" if a.kind == "DELTA" => "DELTA",
        _ => "GAUGE",
    };
    let (aligned_type, align): (&'static str, AlignFn) = match a.aligner {
        "ALIGN_MEAN" => ("DOUBLE", |v, _| v.iter().sum::<f64>() / v.len() as f64),
        "ALIGN_MAX" => (static_type(a.value_type), |v, _| {
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }),
        "ALIGN_MIN" => (static_type(a.value_type), |v, _| {
            v.iter().copied().fold(f64::INFINITY, f64::min)
        }),
        "ALIGN_SUM" | "ALIGN_DELTA" => (static_type(a.value_type), |v, _| v.iter().sum()),
        "ALIGN_COUNT" => ("INT64", |v, _| v.len() as f64),
        "ALIGN_RATE" => ("DOUBLE", |v, period| v.iter().sum::<f64>() / period),
        _ => return Vec::new(),
    };
    let mut series: Vec<Aligned> = raw
        .iter()
        .map(|(labels, samples)| {
            let mut by_period: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
            for (ago, value) in samples {
                let t = a.end - ago;
                if *ago < 0 || t <= a.start {
                    continue;
                }
                let Some(v) = numeric(value) else { continue };
                // The period (e − period, e] that holds t, e on the grid ending at `end`.
                let e = a.end - (a.end - t).div_euclid(a.period) * a.period;
                by_period.entry(e).or_default().push(v);
            }
            Aligned {
                labels: labels.clone(),
                kind: out_kind,
                value_type: aligned_type,
                points: by_period
                    .iter()
                    .rev()
                    .map(|(e, v)| (*e, align(v, a.period as f64)))
                    .collect(),
            }
        })
        .collect();
    if a.reducer.is_empty() || a.reducer == "REDUCE_NONE" {
        return series;
    }
    let (reduced_type, reduce): (&'static str, fn(&[f64]) -> f64) = match a.reducer {
        "REDUCE_SUM" => (aligned_type, |v| v.iter().sum()),
        "REDUCE_MEAN" => ("DOUBLE", |v| v.iter().sum::<f64>() / v.len() as f64),
        "REDUCE_MAX" => (aligned_type, |v| {
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }),
        "REDUCE_MIN" => (aligned_type, |v| {
            v.iter().copied().fold(f64::INFINITY, f64::min)
        }),
        "REDUCE_COUNT" => ("INT64", |v| v.len() as f64),
        _ => return Vec::new(),
    };
    let mut groups: Vec<(Value, std::collections::BTreeMap<i64, Vec<f64>>)> = Vec::new();
    for s in series.drain(..) {
        let kept: serde_json::Map<String, Value> = a
            .group_by
            .iter()
            .filter_map(|l| Some((l.clone(), s.labels.get(l)?.clone())))
            .collect();
        let kept = Value::Object(kept);
        let at = match groups.iter().position(|(l, _)| *l == kept) {
            Some(i) => i,
            None => {
                groups.push((kept, Default::default()));
                groups.len() - 1
            }
        };
        for (e, v) in s.points {
            groups[at].1.entry(e).or_default().push(v);
        }
    }
    groups
        .into_iter()
        .map(|(labels, by_period)| Aligned {
            labels,
            kind: out_kind,
            value_type: reduced_type,
            points: by_period
                .iter()
                .rev()
                .map(|(e, v)| (*e, reduce(v)))
                .collect(),
        })
        .collect()
}

/// An aligner over a period's samples and the period's length in seconds.
type AlignFn = fn(&[f64], f64) -> f64;

/// A descriptor's numeric value type with a static lifetime.
fn static_type(value_type: &str) -> &'static str {
    if value_type == "INT64" {
        "INT64"
    } else {
        "DOUBLE"
    }
}

/// The `valueType` a point's TypedValue has.
/// Compute Engine lists take `maxResults` from 0 to 500; more is 400 INVALID_ARGUMENT.
fn max_results_refused(asked: &Option<String>) -> Option<Response> {
    let n = asked.as_deref()?;
    match n.parse::<u32>() {
        Ok(v) if v <= 500 => None,
        _ => Some(invalid_argument(&format!(
            "Invalid value for field 'maxResults': '{n}'. Must be less than or equal to 500"
        ))),
    }
}

fn value_type_of(value: &Value) -> &'static str {
    if value.get("doubleValue").is_some() {
        "DOUBLE"
    } else if value.get("distributionValue").is_some() {
        "DISTRIBUTION"
    } else if value.get("boolValue").is_some() {
        "BOOL"
    } else {
        "INT64"
    }
}

fn handle(st: Arc<State>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path == "/_stats" {
        // Requests per kind, for the benchmark's checks (not logged itself).
        let reqs = st.requests.lock().unwrap();
        let mut counts = serde_json::Map::new();
        for r in reqs.iter() {
            // The last path segment, and `aggregated/<what>` for Compute's aggregated lists
            // (Cloud SQL's `…/instances` list ends the same way).
            let mut segs = r.path.rsplit('/');
            let last = segs.next().unwrap_or_default();
            let kind = match segs.next() {
                Some("aggregated") => format!("aggregated/{last}"),
                _ => last.to_string(),
            };
            let n = counts.entry(kind).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
        counts.insert("total".into(), json!(reqs.len()));
        return json_response(200, Value::Object(counts), None);
    }
    let query = parse_form(uri.query().unwrap_or(""));
    let body = String::from_utf8_lossy(&body).into_owned();
    st.requests.lock().unwrap().push(Logged {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    if path == "/token" {
        let form = parse_form(&body);
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return json_response(
                400,
                json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}),
                None,
            );
        }
        let Some(assertion) = get("assertion") else {
            return json_response(400, json!({"error": "invalid_request"}), None);
        };
        st.assertions.lock().unwrap().push(assertion);
        return json_response(
            200,
            json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}),
            None,
        );
    }
    {
        let mut failures = st.failures.lock().unwrap();
        if let Some((_, q)) = failures
            .iter_mut()
            .find(|(needle, q)| path.contains(needle.as_str()) && !q.is_empty())
        {
            let (code, ra) = q.pop_front().unwrap();
            return google_error(code, &path, ra);
        }
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        return google_error(401, &path, None);
    }
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    // The server's page size, or the request's maxResults / pageSize when smaller.
    let asked = param("maxResults")
        .or_else(|| param("pageSize"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let page_size = (*st.page_size.lock().unwrap()).min(asked).max(1);
    let offset: usize = param("pageToken")
        .and_then(|t| t.strip_prefix("page-").map(str::to_string))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page = |items: &[Value]| -> (Vec<Value>, Option<String>) {
        let end = (offset + page_size).min(items.len());
        let slice = items.get(offset..end).unwrap_or_default().to_vec();
        let next = (end < items.len()).then(|| format!("page-{end}"));
        (slice, next)
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    // BigQuery.
    if path.starts_with("/bigquery/v2/projects/") {
        return bigquery(&st, &method, &segs, &param("pageToken"), &body);
    }
    // Cloud Billing Catalog: /v1/services/<id>/skus, in USD only.
    if let ["v1", "services", service, "skus"] = segs.as_slice() {
        if param("currencyCode").as_deref().is_some_and(|c| c != "USD") {
            return google_error(400, &path, None);
        }
        let skus = st.skus.lock().unwrap();
        let Some(list) = skus.get(*service) else {
            return google_error(404, &path, None);
        };
        let (items, next) = page(list);
        let mut v = json!({"skus": items});
        if let Some(n) = next {
            v["nextPageToken"] = json!(n);
        }
        return json_response(200, v, None);
    }
    // Storage: project from the query.
    if path == "/storage/v1/b" {
        let projects = st.projects.lock().unwrap();
        let Some(p) = param("project").and_then(|p| projects.get(&p).cloned()) else {
            return google_error(404, &path, None);
        };
        let (items, next) = page(&p.buckets);
        let mut v = json!({"kind": "storage#buckets", "items": items});
        if let Some(n) = next {
            v["nextPageToken"] = json!(n);
        }
        return json_response(200, v, None);
    }
    // Everything else names the project: /<prefix…>/projects/<p>/…
    let Some(pi) = segs.iter().position(|s| *s == "projects") else {
        return google_error(404, &path, None);
    };
    let project_id = segs.get(pi + 1).copied().unwrap_or_default().to_string();
    let project = st.projects.lock().unwrap().get(&project_id).cloned();
    let Some(p) = project else {
        return google_error(404, &path, None);
    };
    let rest: Vec<&str> = segs[pi + 2..].to_vec();
    match (segs[0], rest.as_slice()) {
        ("compute", ["aggregated", what]) => {
            let (field, items, kind) = match *what {
                "instances" => ("instances", &p.instances, "compute#instanceAggregatedList"),
                "machineTypes" => (
                    "machineTypes",
                    &p.machine_types,
                    "compute#machineTypeAggregatedList",
                ),
                "disks" => ("disks", &p.disks, "compute#diskAggregatedList"),
                "addresses" => ("addresses", &p.addresses, "compute#addressAggregatedList"),
                "forwardingRules" => (
                    "forwardingRules",
                    &p.forwarding_rules,
                    "compute#forwardingRuleAggregatedList",
                ),
                "routers" => ("routers", &p.routers, "compute#routerAggregatedList"),
                _ => return google_error(404, &path, None),
            };
            if let Some(e) = max_results_refused(&param("maxResults")) {
                return e;
            }
            let (slice, next) = page(items);
            let mut scopes = serde_json::Map::new();
            for it in slice {
                let scope = it["zone"]
                    .as_str()
                    .map(|z| format!("zones/{}", z.rsplit('/').next().unwrap()))
                    .or_else(|| {
                        it["region"]
                            .as_str()
                            .map(|r| format!("regions/{}", r.rsplit('/').next().unwrap()))
                    })
                    .unwrap_or_else(|| "global".into());
                scopes.entry(scope).or_insert_with(|| json!({ field: [] }))[field]
                    .as_array_mut()
                    .unwrap()
                    .push(it);
            }
            // A zone without items answers with a warning, as the real API does.
            scopes.entry("zones/asia-east1-a").or_insert_with(|| {
                json!({"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope 'zones/asia-east1-a' on this page.", "data": [{"key": "scope", "value": "zones/asia-east1-a"}]}})
            });
            let mut v = json!({
                "kind": kind,
                "id": format!("projects/{project_id}/aggregated/{what}"),
                "items": scopes,
                "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project_id}/aggregated/{what}")
            });
            if let Some(n) = next {
                v["nextPageToken"] = json!(n);
            }
            json_response(200, v, None)
        }
        ("compute", ["global", "snapshots"]) => {
            if let Some(e) = max_results_refused(&param("maxResults")) {
                return e;
            }
            let (items, next) = page(&p.snapshots);
            // An empty list has no `items`, as the API answers.
            let mut v = json!({
                "kind": "compute#snapshotList",
                "id": format!("projects/{project_id}/global/snapshots"),
                "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project_id}/global/snapshots")
            });
            if !items.is_empty() {
                v["items"] = json!(items);
            }
            if let Some(n) = next {
                v["nextPageToken"] = json!(n);
            }
            json_response(200, v, None)
        }
        ("v1", ["locations", "-", "clusters"]) => json_response(
            200,
            json!({"clusters": p.clusters, "missingZones": []}),
            None,
        ),
        ("v2", ["locations", "-", "functions"]) => {
            let (items, next) = page(&p.functions);
            let mut v = json!({"functions": items, "unreachable": []});
            if let Some(n) = next {
                v["nextPageToken"] = json!(n);
            }
            json_response(200, v, None)
        }
        ("v1", ["instances"]) => {
            let (items, next) = page(&p.sql);
            let mut v = json!({"kind": "sql#instancesList", "items": items});
            if let Some(n) = next {
                v["nextPageToken"] = json!(n);
            }
            json_response(200, v, None)
        }
        ("v3", ["timeSeries"]) => {
            let filter = param("filter").unwrap_or_default();
            let metric_type = filter
                .split("metric.type = \"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_default()
                .to_string();
            let resource_type = filter
                .split("resource.type = \"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_default()
                .to_string();
            let end = param("interval.endTime").unwrap_or_default();
            let start = param("interval.startTime").unwrap_or_default();
            if metric_type.is_empty() || end.is_empty() || start.is_empty() {
                return invalid_argument("Field filter had an invalid value");
            }
            let aligner = param("aggregation.perSeriesAligner").unwrap_or_default();
            let reducer = param("aggregation.crossSeriesReducer").unwrap_or_default();
            let (kind, value_type) = descriptor(&metric_type);
            if let Err(m) = check_aggregation(
                kind,
                value_type,
                &aligner,
                &reducer,
                param("aggregation.alignmentPeriod").as_deref(),
            ) {
                return invalid_argument(&m);
            }
            let series: Vec<Value> = if aligner.is_empty() || aligner == "ALIGN_NONE" {
                // Raw samples, newest first, those in (startTime, endTime].
                let (Some(start_s), Some(end_s)) = (unix_seconds(&start), unix_seconds(&end))
                else {
                    return invalid_argument("Field interval had an invalid value");
                };
                let stamp = rfc3339_utc;
                p.raw
                    .get(&metric_type)
                    .map(|v| {
                        v.iter()
                            .map(|(labels, samples)| {
                                let mut samples: Vec<&(i64, Value)> = samples
                                    .iter()
                                    .filter(|(ago, _)| *ago >= 0 && end_s - ago > start_s)
                                    .collect();
                                samples.sort_by_key(|(ago, _)| *ago);
                                let points: Vec<Value> = samples
                                    .iter()
                                    .map(|(ago, value)| {
                                        let t = end_s - ago;
                                        // A DELTA sample covers the minute before it.
                                        let from = if kind == "DELTA" { t - 60 } else { t };
                                        json!({"interval": {"startTime": stamp(from), "endTime": stamp(t)}, "value": value})
                                    })
                                    .collect();
                                json!({
                                    "metric": {"type": metric_type, "labels": {}},
                                    "resource": {"type": resource_type, "labels": labels},
                                    "metricKind": kind,
                                    "valueType": value_type,
                                    "points": points
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                // Reduced distributions are asked ALIGN_DELTA + a reducer: keyed by the
                // reducer.
                let key = if aligner == "ALIGN_DELTA" && !reducer.is_empty() {
                    reducer.clone()
                } else {
                    aligner.clone()
                };
                match p.series.get(&(metric_type.clone(), key)) {
                    Some(v) => v
                        .iter()
                        .map(|(labels, value)| {
                            json!({
                                "metric": {"type": metric_type, "labels": {}},
                                "resource": {"type": resource_type, "labels": labels},
                                "metricKind": "GAUGE",
                                "valueType": value_type_of(value),
                                "points": [{"interval": {"startTime": end, "endTime": end}, "value": value}]
                            })
                        })
                        .collect(),
                    // No canned answer: the raw samples aligned (and reduced) as Monitoring
                    // does with the points it stores.
                    None => {
                        let (Some(start_s), Some(end_s)) = (unix_seconds(&start), unix_seconds(&end))
                        else {
                            return invalid_argument("Field interval had an invalid value");
                        };
                        let Some(period) = param("aggregation.alignmentPeriod")
                            .and_then(|a| a.strip_suffix('s')?.parse::<i64>().ok())
                            .filter(|p| *p > 0)
                        else {
                            return invalid_argument(
                                "Field aggregation.alignmentPeriod had an invalid value",
                            );
                        };
                        let group_by: Vec<String> = query
                            .iter()
                            .filter(|(n, _)| n == "aggregation.groupByFields")
                            .filter_map(|(_, v)| v.strip_prefix("resource.labels.").map(str::to_string))
                            .collect();
                        let raw = p.raw.get(&metric_type).map(Vec::as_slice).unwrap_or_default();
                        let asked = Alignment {
                            kind,
                            value_type,
                            aligner: &aligner,
                            reducer: &reducer,
                            group_by: &group_by,
                            start: start_s,
                            end: end_s,
                            period,
                        };
                        align_raw(raw, &asked)
                            .into_iter()
                            .map(|s| {
                                let points: Vec<Value> = s
                                    .points
                                    .iter()
                                    .map(|(t, v)| {
                                        let from = if s.kind == "DELTA" { t - period } else { *t };
                                        json!({
                                            "interval": {"startTime": rfc3339_utc(from), "endTime": rfc3339_utc(*t)},
                                            "value": typed(s.value_type, *v)
                                        })
                                    })
                                    .collect();
                                json!({
                                    "metric": {"type": metric_type, "labels": {}},
                                    "resource": {"type": resource_type, "labels": s.labels},
                                    "metricKind": s.kind,
                                    "valueType": s.value_type,
                                    "points": points
                                })
                            })
                            .collect()
                    }
                }
            };
            let (items, next) = page(&series);
            let mut v = if items.is_empty() {
                json!({})
            } else {
                json!({"timeSeries": items})
            };
            if let Some(n) = next {
                v["nextPageToken"] = json!(n);
            }
            json_response(200, v, None)
        }
        _ => google_error(404, &path, None),
    }
}

fn bigquery(
    st: &State,
    method: &Method,
    segs: &[&str],
    page_token: &Option<String>,
    body: &str,
) -> Response {
    // bigquery/v2/projects/<p>/queries[/<job>]
    let project = segs.get(3).copied().unwrap_or_default();
    let mut b = st.billing.lock().unwrap();
    let job = json!({"projectId": project, "jobId": "job_skymeter_1", "location": "US"});
    let schema = json!({"fields": b.fields.iter().map(|f| json!({"name": f, "type": "STRING", "mode": "NULLABLE"})).collect::<Vec<_>>()});
    let rows_page = |b: &Billing, offset: usize| {
        let end = (offset + b.page_size).min(b.rows.len());
        let rows: Vec<Value> = b.rows[offset.min(end)..end]
            .iter()
            .map(|r| json!({"f": r.iter().map(|v| json!({"v": v})).collect::<Vec<_>>()}))
            .collect();
        (rows, (end < b.rows.len()).then(|| format!("page-{end}")))
    };
    if *method == Method::POST && segs.len() == 5 {
        let req: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if req["query"].as_str().is_none() || req["useLegacySql"] != json!(false) {
            return json_response(
                400,
                json!({"error": {"code": 400, "message": "Query text is missing", "status": "INVALID_ARGUMENT"}}),
                None,
            );
        }
        if b.pending_polls > 0 {
            return json_response(
                200,
                json!({"kind": "bigquery#queryResponse", "jobReference": job, "jobComplete": false}),
                None,
            );
        }
        let (rows, next) = rows_page(&b, 0);
        let mut v = json!({"kind": "bigquery#queryResponse", "schema": schema, "jobReference": job,
            "totalRows": b.rows.len().to_string(), "rows": rows, "totalBytesProcessed": "1024",
            "jobComplete": true, "cacheHit": false});
        if let Some(n) = next {
            v["pageToken"] = json!(n);
        }
        return json_response(200, v, None);
    }
    if *method == Method::GET && segs.len() == 6 {
        if b.pending_polls > 0 {
            b.pending_polls -= 1;
            return json_response(
                200,
                json!({"kind": "bigquery#getQueryResultsResponse", "jobReference": job, "jobComplete": false}),
                None,
            );
        }
        let offset = page_token
            .as_deref()
            .and_then(|t| t.strip_prefix("page-"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let (rows, next) = rows_page(&b, offset);
        let mut v = json!({"kind": "bigquery#getQueryResultsResponse", "etag": "e", "schema": schema,
            "jobReference": job, "totalRows": b.rows.len().to_string(), "rows": rows, "jobComplete": true});
        if let Some(n) = next {
            v["pageToken"] = json!(n);
        }
        return json_response(200, v, None);
    }
    google_error(404, "bigquery", None)
}

// ------------------------------------------------------------- fixture builders

/// A Compute Engine instance as instances.aggregatedList returns it.
pub fn instance(project: &str, zone: &str, id: u64, name: &str, machine_type: &str) -> Value {
    json!({
        "kind": "compute#instance",
        "id": id.to_string(),
        "creationTimestamp": "2024-01-15T08:30:00.000-08:00",
        "name": name,
        "machineType": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/machineTypes/{machine_type}"),
        "status": "RUNNING",
        "zone": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}"),
        "networkInterfaces": [{
            "kind": "compute#networkInterface",
            "network": format!("https://www.googleapis.com/compute/v1/projects/{project}/global/networks/default"),
            "networkIP": format!("10.128.{}.{}", (id / 250) % 250, id % 250 + 2),
            "name": "nic0",
            "accessConfigs": [{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": "34.1.2.3", "networkTier": "PREMIUM"}]
        }],
        "labels": {"env": "prod"},
        "cpuPlatform": "Intel Broadwell",
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/instances/{name}")
    })
}

pub fn machine_type(zone: &str, name: &str, cpus: u32, memory_mb: u32) -> Value {
    json!({
        "kind": "compute#machineType", "id": "801016", "name": name,
        "description": format!("{cpus} vCPUs, {memory_mb} MB RAM"),
        "guestCpus": cpus, "memoryMb": memory_mb, "maximumPersistentDisks": 128,
        "zone": zone, "isSharedCpu": false
    })
}

/// A zonal persistent disk as disks.aggregatedList returns it: `users` the instances it is
/// attached to (their URLs; none: unattached), `disk_type` `pd-balanced`, `pd-ssd`, ….
pub fn disk(
    project: &str,
    zone: &str,
    id: u64,
    name: &str,
    disk_type: &str,
    size_gb: u64,
    users: &[&str],
) -> Value {
    let mut v = json!({
        "kind": "compute#disk",
        "id": id.to_string(),
        "creationTimestamp": "2024-01-15T08:30:00.000-08:00",
        "name": name,
        "sizeGb": size_gb.to_string(),
        "zone": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}"),
        "status": "READY",
        "type": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/diskTypes/{disk_type}"),
        "labels": {"env": "prod"},
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/disks/{name}")
    });
    if !users.is_empty() {
        v["users"] = json!(users);
    }
    v
}

/// The Cloud Monitoring resource labels of a GCE instance series.
pub fn gce_labels(project: &str, zone: &str, id: u64) -> Value {
    json!({"project_id": project, "instance_id": id.to_string(), "zone": zone})
}

pub fn double(v: f64) -> Value {
    json!({ "doubleValue": v })
}

pub fn int64(v: i64) -> Value {
    json!({ "int64Value": v.to_string() })
}

/// A `distributionValue` of `count` samples with their `mean` (one exponential bucket
/// layout; the counts all in one bucket, as the stand-in does not compute percentiles).
pub fn distribution(count: i64, mean: f64) -> Value {
    json!({ "distributionValue": {
        "count": count.to_string(),
        "mean": mean,
        "sumOfSquaredDeviation": 0.0,
        "bucketOptions": {"exponentialBuckets": {"numFiniteBuckets": 64, "growthFactor": 1.4, "scale": 1.0}},
        "bucketCounts": ["0", count.to_string()]
    }})
}

/// A standard snapshot of a zonal disk as snapshots.list returns it: `storage_bytes` billed,
/// `disk_gb` the source disk's size, stored in the `us` multi-region.
pub fn snapshot(
    project: &str,
    id: u64,
    name: &str,
    disk_id: u64,
    disk_gb: u64,
    storage_bytes: u64,
) -> Value {
    json!({
        "kind": "compute#snapshot",
        "id": id.to_string(),
        "creationTimestamp": "2025-01-10T01:00:00.000-08:00",
        "name": name,
        "status": "READY",
        "sourceDisk": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/us-central1-a/disks/disk-{disk_id}"),
        "sourceDiskId": disk_id.to_string(),
        "diskSizeGb": disk_gb.to_string(),
        "storageBytes": storage_bytes.to_string(),
        "storageBytesStatus": "UP_TO_DATE",
        "storageLocations": ["us"],
        "snapshotType": "STANDARD",
        "labels": {"env": "prod"},
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/global/snapshots/{name}")
    })
}

/// A regional external address as addresses.aggregatedList returns it; `user` is the
/// resource using it (status IN_USE), none: RESERVED.
pub fn address(
    project: &str,
    region: &str,
    id: u64,
    name: &str,
    ip: &str,
    user: Option<&str>,
) -> Value {
    let mut v = json!({
        "kind": "compute#address",
        "id": id.to_string(),
        "creationTimestamp": "2024-03-01T00:00:00.000-08:00",
        "name": name,
        "address": ip,
        "addressType": "EXTERNAL",
        "networkTier": "PREMIUM",
        "ipVersion": "IPV4",
        "status": if user.is_some() { "IN_USE" } else { "RESERVED" },
        "region": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}"),
        "labels": {"env": "prod"},
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}/addresses/{name}")
    });
    if let Some(u) = user {
        v["users"] = json!([u]);
    }
    v
}

/// A regional forwarding rule as forwardingRules.aggregatedList returns it.
pub fn forwarding_rule(
    project: &str,
    region: &str,
    id: u64,
    name: &str,
    scheme: &str,
    target: &str,
) -> Value {
    json!({
        "kind": "compute#forwardingRule",
        "id": id.to_string(),
        "creationTimestamp": "2024-04-01T00:00:00.000-07:00",
        "name": name,
        "region": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}"),
        "IPAddress": "34.120.1.1",
        "IPProtocol": "TCP",
        "portRange": "443-443",
        "target": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}/{target}"),
        "loadBalancingScheme": scheme,
        "networkTier": "PREMIUM",
        "labels": {"env": "prod"},
        "labelFingerprint": "42WmSpB8rSM=",
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}/forwardingRules/{name}")
    })
}

/// A Cloud Router with one NAT gateway, as routers.aggregatedList returns it.
pub fn router(project: &str, region: &str, id: u64, name: &str, nat: &str) -> Value {
    json!({
        "kind": "compute#router",
        "id": id.to_string(),
        "creationTimestamp": "2024-02-01T00:00:00.000-08:00",
        "name": name,
        "region": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}"),
        "network": format!("https://www.googleapis.com/compute/v1/projects/{project}/global/networks/default"),
        "nats": [{
            "name": nat,
            "type": "PUBLIC",
            "natIpAllocateOption": "AUTO_ONLY",
            "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
            "enableEndpointIndependentMapping": false,
            "endpointTypes": ["ENDPOINT_TYPE_VM"]
        }],
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}/routers/{name}")
    })
}
