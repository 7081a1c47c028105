//! A local stand-in for OSv's REST API (the `httpserver-api` module), answering the
//! endpoints the `osv` collector reads in the shapes OSv's handlers write them
//! (`modules/httpserver-api/api/{os,trace}.cc`, `json/formatter.cc`):
//!
//! - `GET /os/name`, `/os/version`, `/os/vendor`, `/os/hostname`: a JSON string;
//!   `POST /os/hostname?name=…` sets it (`name` mandatory);
//! - `GET /os/uptime` (seconds), `/os/memory/total`, `/os/memory/free` (bytes): a bare JSON
//!   number;
//! - `GET /trace/count`: `{"list": [{"name": …, "count": …}, …], "time_ms": …}` with only
//!   the trace points whose counting is on, and no `list` key when none is (OSv's JSON
//!   writer leaves an empty list out); `DELETE /trace/count` turns all counting off;
//!   `POST /trace/count/{eventid}?enabled=true|false` turns one on or off, `400 Unknown
//!   tracepoint name` for a trace point this "build" lacks, `400 Missing mandatory
//!   parameter 'enabled'` without the parameter, `400 Invalid value …` for anything but
//!   true/false/1/0 (any case).
//!
//! It refuses as OSv does: a path it does not serve, and a known path asked with another
//! method, answer `404 {"message": "Not found", "code": 404}` (OSv's router keeps one table
//! per method and has no 405); a method other than GET/POST/PUT/DELETE/OPTIONS is taken as
//! GET (OSv's `str2type`); one trailing `/` is ignored.
//!
//! Values move as on a running instance unless a test pins them: uptime and `time_ms` count
//! from a boot an hour before the stand-in started, free memory wanders below the total,
//! each counted trace point grows at its own steady rate from the moment its counting was
//! enabled. Scripted failures answer a chosen status for a path. Listens on 127.0.0.1 (or a given address);
//! compiled for the collector's tests and, with the `standin` feature, for
//! `examples/osv_standin.rs`.

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Trace points the stand-in knows beyond snap's catalog (OSv has many more than snap
/// listed), so that counters outside snap's groups can be tested.
pub const EXTRA_TRACE_POINTS: &[&str] = &["sched_switch", "sched_wait", "sched_wake", "mutex_lock"];

/// The instance pretends to have booted this long before the stand-in started.
const BOOTED_BEFORE_START_MS: u64 = 3_600_000;

/// What the stand-in serves. Every `Option` left `None` moves with time.
#[derive(Debug)]
struct Inner {
    started: Instant,
    hostname: String,
    version: String,
    memory_total: u64,
    memory_free: Option<u64>,
    uptime_s: Option<u64>,
    time_ms: Option<u64>,
    /// Trace points that exist in this "build".
    known: BTreeSet<String>,
    /// Trace points being counted: when counting started, and a pinned count.
    counting: BTreeMap<String, (Instant, Option<u64>)>,
    /// Scripted answers per path (without query): status for every request until cleared.
    failures: HashMap<String, u16>,
    /// Every request as `METHOD /path?query`.
    requests: Vec<String>,
}

/// Shared state of a running stand-in; every setter takes effect on the next request.
#[derive(Debug, Clone)]
pub struct OsvStandin {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// A stable per-name rate of events per second (1..=997), so counters differ.
fn rate_of(name: &str) -> u64 {
    let h = name
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    1 + (h % 997) as u64
}

impl Inner {
    fn new() -> Inner {
        let known = crate::collectors::osv::snap::trace_points()
            .map(|(_, n)| n.to_string())
            .chain(EXTRA_TRACE_POINTS.iter().map(|s| s.to_string()))
            .collect();
        Inner {
            started: Instant::now(),
            hostname: "osv.local".into(),
            version: "v0.57.0".into(),
            memory_total: 2_094_133_248,
            memory_free: None,
            uptime_s: None,
            time_ms: None,
            known,
            counting: BTreeMap::new(),
            failures: HashMap::new(),
            requests: Vec::new(),
        }
    }

    /// Milliseconds since the pretended boot, an hour before the stand-in started.
    fn since_boot_ms(&self) -> u64 {
        BOOTED_BEFORE_START_MS + self.started.elapsed().as_millis() as u64
    }

    fn free(&self) -> u64 {
        self.memory_free.unwrap_or_else(|| {
            // Between 40% and 70% of the total, drifting with time.
            let span = self.memory_total / 100 * 30;
            let t = self.since_boot_ms();
            self.memory_total / 100 * 40 + (t.wrapping_mul(7919) % span.max(1))
        })
    }

    fn count(&self, name: &str) -> u64 {
        match self.counting.get(name) {
            Some((_, Some(c))) => *c,
            Some((since, None)) => rate_of(name) * since.elapsed().as_millis() as u64 / 1000,
            None => 0,
        }
    }
}

impl OsvStandin {
    /// Starts on 127.0.0.1, on a free port, on a thread of its own (its own runtime), so
    /// that it answers even while the caller's runtime is blocked.
    pub async fn start() -> OsvStandin {
        Self::bind("127.0.0.1:0").expect("bind 127.0.0.1")
    }

    /// Starts on `addr` (e.g. `127.0.0.1:8000`), on a thread of its own.
    pub fn bind(addr: &str) -> std::io::Result<OsvStandin> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::new()));
        let st = inner.clone();
        std::thread::Builder::new()
            .name("osv-standin".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the OSv stand-in");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("the bound listener");
                    let app = Router::new().fallback(move |method: Method, uri: Uri| {
                        let st = st.clone();
                        async move { handle(&st, &method, &uri) }
                    });
                    let _ = axum::serve(listener, app).await;
                });
            })?;
        Ok(OsvStandin {
            url: format!("http://{addr}"),
            addr,
            inner,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Pins free and total memory (bytes).
    pub fn set_memory(&self, free: u64, total: u64) {
        self.with(|i| {
            i.memory_free = Some(free);
            i.memory_total = total;
        });
    }

    /// Pins the uptime (seconds).
    pub fn set_uptime(&self, seconds: u64) {
        self.with(|i| i.uptime_s = Some(seconds));
    }

    /// Pins `time_ms` of `/trace/count`.
    pub fn set_time_ms(&self, ms: u64) {
        self.with(|i| i.time_ms = Some(ms));
    }

    pub fn set_hostname(&self, name: &str) {
        self.with(|i| i.hostname = name.to_string());
    }

    /// Turns counting of `name` on (as `POST /trace/count/<name>?enabled=true` does) and
    /// pins its count. The trace point becomes known if it was not.
    pub fn set_count(&self, name: &str, count: u64) {
        self.with(|i| {
            i.known.insert(name.to_string());
            i.counting
                .insert(name.to_string(), (Instant::now(), Some(count)));
        });
    }

    /// Turns counting of `name` on, counting from now (as `POST
    /// /trace/count/<name>?enabled=true` does). The trace point becomes known if it was not.
    pub fn enable(&self, name: &str) {
        self.with(|i| {
            i.known.insert(name.to_string());
            i.counting.insert(name.to_string(), (Instant::now(), None));
        });
    }

    /// Removes a trace point from this "build": enabling it then answers 400.
    pub fn forget_trace_point(&self, name: &str) {
        self.with(|i| {
            i.known.remove(name);
            i.counting.remove(name);
        });
    }

    /// The trace points being counted.
    pub fn counted(&self) -> Vec<String> {
        self.with(|i| i.counting.keys().cloned().collect())
    }

    /// Answers `status` (with OSv's JSON error body) to every request for `path`.
    pub fn fail(&self, path: &str, status: u16) {
        self.with(|i| i.failures.insert(path.to_string(), status));
    }

    pub fn clear_failures(&self) {
        self.with(|i| i.failures.clear());
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.with(|i| i.requests.clone())
    }

    /// Requests whose `METHOD /path` starts with `prefix`.
    pub fn count_requests(&self, prefix: &str) -> usize {
        self.with(|i| i.requests.iter().filter(|r| r.starts_with(prefix)).count())
    }
}

/// A JSON string as OSv's formatter writes it.
fn jstr(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// OSv's JSON error body, written as its `json_builder` does: members in declaration
/// order, `", "` between them, `": "` after each name (exception.hh `json_exception`).
fn error(status: StatusCode, message: &str) -> Response {
    json_answer(
        status,
        format!(
            "{{\"message\": {}, \"code\": {}}}",
            jstr(message),
            status.as_u16()
        ),
    )
}

fn json_answer(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok(v: Value) -> Response {
    json_answer(StatusCode::OK, v.to_string())
}

/// OSv's `str2bool`: true/false/1/0 in any case, empty is false, anything else 400.
fn str2bool(v: &str) -> Result<bool, Response> {
    match v.to_ascii_lowercase().as_str() {
        "" | "false" | "0" => Ok(false),
        "true" | "1" => Ok(true),
        other => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid value {other} use true/false or 0/1"),
        )),
    }
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.replace('+', " "))
    })
}

/// OSv's `routes::handle` for the endpoints served: one table per method.
fn handle(st: &Mutex<Inner>, method: &Method, uri: &Uri) -> Response {
    let mut i = st.lock().unwrap();
    // OSv's str2type: unknown methods are GET.
    let method = match *method {
        Method::POST | Method::PUT | Method::DELETE | Method::OPTIONS => method.clone(),
        _ => Method::GET,
    };
    let raw_path = uri.path();
    let path = if raw_path.len() >= 2 {
        raw_path.strip_suffix('/').unwrap_or(raw_path)
    } else {
        raw_path
    };
    let logged = match uri.query() {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    };
    i.requests.push(logged);
    if let Some(&code) = i.failures.get(path) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "scripted failure");
    }
    let not_found = || error(StatusCode::NOT_FOUND, "Not found");
    match (method, path) {
        (Method::GET, "/os/name") => ok(json!("OSv")),
        (Method::GET, "/os/version") => ok(json!(i.version)),
        (Method::GET, "/os/vendor") => ok(json!("Cloudius Systems")),
        (Method::GET, "/os/hostname") => ok(json!(i.hostname)),
        (Method::POST, "/os/hostname") => {
            match query_param(uri, "name").filter(|n| !n.is_empty()) {
                Some(n) => {
                    i.hostname = n;
                    ok(json!(""))
                }
                None => error(
                    StatusCode::BAD_REQUEST,
                    "Missing mandatory parameter 'name'",
                ),
            }
        }
        (Method::GET, "/os/uptime") => {
            let up = i.uptime_s.unwrap_or_else(|| i.since_boot_ms() / 1000);
            ok(json!(up))
        }
        (Method::GET, "/os/memory/total") => ok(json!(i.memory_total)),
        (Method::GET, "/os/memory/free") => ok(json!(i.free())),
        (Method::GET, "/trace/count") => {
            let time_ms = i.time_ms.unwrap_or_else(|| i.since_boot_ms());
            // As OSv's writer does: objects `{"a": 1, "b": 2}`, arrays `[x,y]`, and a list
            // that was never pushed to left out.
            let list: Vec<String> = i
                .counting
                .keys()
                .map(|n| format!("{{\"name\": {}, \"count\": {}}}", jstr(n), i.count(n)))
                .collect();
            let body = if list.is_empty() {
                format!("{{\"time_ms\": {time_ms}}}")
            } else {
                format!("{{\"list\": [{}], \"time_ms\": {time_ms}}}", list.join(","))
            };
            json_answer(StatusCode::OK, body)
        }
        (Method::DELETE, "/trace/count") => {
            i.counting.clear();
            ok(json!(""))
        }
        (Method::POST, p) if p.starts_with("/trace/count/") => {
            // `{eventid}` allows multiple segments (trace.json `allowMultiple`): OSv's
            // matcher takes the rest of the path, slashes included.
            let name = &p["/trace/count/".len()..];
            let Some(enabled) = query_param(uri, "enabled").filter(|v| !v.is_empty()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Missing mandatory parameter 'enabled'",
                );
            };
            let enabled = match str2bool(&enabled) {
                Ok(b) => b,
                Err(r) => return r,
            };
            if !i.known.contains(name) {
                return error(StatusCode::BAD_REQUEST, "Unknown tracepoint name");
            }
            if enabled {
                // OSv replaces the counter: counting starts again from zero.
                i.counting.insert(name.to_string(), (Instant::now(), None));
            } else {
                i.counting.remove(name);
            }
            ok(json!(""))
        }
        _ => not_found(),
    }
}
