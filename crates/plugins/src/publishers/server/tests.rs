//! Tests against an in-process server (axum on 127.0.0.1) that plays the skymeter server:
//! registration, heartbeats, ingest with validation and dedupe by `batch_id`, an optional
//! token, a body limit, scripted answers and a gate that holds ingest requests.

use super::*;
use crate::common::testing::{
    batch, batch_files as files, config_err, eventually, free_addr, ids, point, sample_entries,
    with_raw,
};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use skymeter_model::api::{AgentRegistration, ApiError, ApiErrorBody, Heartbeat, IngestResponse};
use skymeter_plugin_api::ErrorKind;
use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------
// The test server

#[derive(Default)]
struct Srv {
    /// Stored batches, in arrival order, each once.
    stored: Vec<Batch>,
    /// The batch id of every ingest request that got past the gate, with when it came.
    ingests: Vec<(String, Instant)>,
    /// Ingest requests that arrived (before the gate).
    arrived: usize,
    /// `(path, Authorization header)` of every request.
    requests: Vec<(String, Option<String>)>,
    /// `(content-type, content-encoding)` of every ingest request.
    ingest_headers: Vec<(Option<String>, Option<String>)>,
    registrations: Vec<AgentRegistration>,
    heartbeats: Vec<(String, Heartbeat)>,
    agents: BTreeSet<String>,
    /// Answers to give to the next ingest requests instead of storing: status, Retry-After.
    script: VecDeque<(u16, Option<&'static str>)>,
    /// The token the server wants, if any.
    token: Option<String>,
    max_body: Option<usize>,
}

#[derive(Clone)]
struct AppState {
    srv: Arc<Mutex<Srv>>,
    gate: watch::Receiver<bool>,
}

struct TestServer {
    url: String,
    srv: Arc<Mutex<Srv>>,
    gate: watch::Sender<bool>,
}

impl TestServer {
    fn with<T>(&self, f: impl FnOnce(&mut Srv) -> T) -> T {
        f(&mut self.srv.lock().unwrap())
    }

    fn stored_ids(&self) -> Vec<String> {
        self.with(|s| s.stored.iter().map(|b| b.batch_id.to_string()).collect())
    }

    fn open_gate(&self) {
        self.gate.send_replace(true);
    }
}

fn api_error(
    status: StatusCode,
    code: &str,
    message: &str,
    fields: Vec<skymeter_model::FieldError>,
) -> Response {
    let body = ApiErrorBody {
        error: ApiError {
            code: code.into(),
            message: message.into(),
            fields,
        },
    };
    (status, Json(body)).into_response()
}

/// Records the request; answers 401 when the token is wrong.
fn check(s: &AppState, path: String, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let mut srv = s.srv.lock().unwrap();
    srv.requests.push((path, auth.clone()));
    match &srv.token {
        Some(t) if auth != Some(format!("Bearer {t}")) => Some(api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown token",
            vec![],
        )),
        _ => None,
    }
}

async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(reg): Json<AgentRegistration>,
) -> Response {
    if let Some(r) = check(&s, "register".into(), &headers) {
        return r;
    }
    let mut srv = s.srv.lock().unwrap();
    srv.agents.insert(reg.id.clone());
    srv.registrations.push(reg);
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}

async fn heartbeat(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(hb): Json<Heartbeat>,
) -> Response {
    if let Some(r) = check(&s, "heartbeat".into(), &headers) {
        return r;
    }
    let mut srv = s.srv.lock().unwrap();
    if !srv.agents.contains(&id) {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown agent: register again",
            vec![],
        );
    }
    srv.heartbeats.push((id, hb));
    StatusCode::NO_CONTENT.into_response()
}

async fn ingest(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    s.srv.lock().unwrap().arrived += 1;
    let mut gate = s.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    if let Some(r) = check(&s, "ingest".into(), &headers) {
        return r;
    }
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
    let mut srv = s.srv.lock().unwrap();
    srv.ingest_headers
        .push((header("content-type"), header("content-encoding")));
    if srv.max_body.is_some_and(|max| body.len() > max) {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is over the limit",
            vec![],
        );
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .expect("the body is gzip");
    let b: Batch = match serde_json::from_slice(&json) {
        Ok(b) => b,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                &e.to_string(),
                vec![],
            )
        }
    };
    srv.ingests.push((b.batch_id.to_string(), Instant::now()));
    if let Some((status, retry_after)) = srv.script.pop_front() {
        let mut r = api_error(
            StatusCode::from_u16(status).unwrap(),
            "internal",
            "scripted",
            vec![],
        );
        if let Some(v) = retry_after {
            r.headers_mut().insert("retry-after", v.parse().unwrap());
        }
        return r;
    }
    if let Err(fields) = b.validate() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "the batch has invalid fields",
            fields,
        );
    }
    // As the real server: the same id with the same content is a duplicate, with other
    // content a conflict.
    let same_id = srv.stored.iter().find(|x| x.batch_id == b.batch_id);
    if same_id.is_some_and(|x| x.content_hash() != b.content_hash()) {
        return api_error(
            StatusCode::CONFLICT,
            "batch_conflict",
            "batch_id was already stored with different content",
            vec![],
        );
    }
    let duplicate = same_id.is_some();
    let receipt = IngestResponse {
        batch_id: b.batch_id,
        duplicate,
        resources: b.resources.len(),
        points: b.points.len(),
        costs: b.costs.len(),
        errors: b.errors.len(),
    };
    if !duplicate {
        srv.stored.push(b);
    }
    (StatusCode::OK, Json(receipt)).into_response()
}

/// Starts the test server on `addr` (`127.0.0.1:0` for any port).
async fn serve_on(addr: &str, srv: Srv) -> TestServer {
    let srv = Arc::new(Mutex::new(srv));
    let (gate, gate_rx) = watch::channel(true);
    let app = Router::new()
        .route("/api/v1/agents/register", post(register))
        .route("/api/v1/agents/{id}/heartbeat", post(heartbeat))
        .route("/api/v1/ingest", post(ingest))
        .with_state(AppState {
            srv: srv.clone(),
            gate: gate_rx,
        });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestServer {
        url: format!("http://{addr}"),
        srv,
        gate,
    }
}

async fn serve(srv: Srv) -> TestServer {
    serve_on("127.0.0.1:0", srv).await
}

// ---------------------------------------------------------------------------------------
// Helpers

fn ctx(dir: &Path, task: &str, interval_s: u64) -> BuildContext {
    BuildContext {
        agent_id: "agent-1".into(),
        data_dir: dir.to_path_buf(),
        task: task.into(),
        interval: Some(Duration::from_secs(interval_s)),
    }
}

/// Fast retries; `extra` adds or overrides keys.
fn config(url: &str, dir: &Path, extra: &str) -> String {
    format!(
        "url = \"{url}\"\nbuffer_dir = \"{}\"\nretry = {{ initial = \"20ms\", max = \"100ms\" }}\n{extra}",
        dir.display()
    )
}

fn publisher_in(text: &str, ctx: &BuildContext) -> Box<dyn Publisher> {
    with_raw(text, |raw| build(raw, ctx)).unwrap_or_else(|e| panic!("{e}"))
}

fn publisher(url: &str, dir: &Path, extra: &str) -> Box<dyn Publisher> {
    publisher_in(&config(url, dir, extra), &ctx(dir, "host", 10))
}

fn small_batch(v: f64) -> Batch {
    batch(vec![point(
        "cpu.utilization",
        v,
        "2026-11-22T10:00:00Z",
        &[("cpu", "0")],
    )])
}

/// Logs of the test's thread (its tasks run there: `#[tokio::test]` is single-threaded).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("skymeter=debug"))
        .finish();
    (logs, tracing::subscriber::set_default(sub))
}

// ---------------------------------------------------------------------------------------
// Delivery

#[tokio::test]
async fn delivers_batches_in_order_and_empties_the_buffer() {
    let server = serve(Srv::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    let batches: Vec<Batch> = (0..5).map(|i| small_batch(i as f64)).collect();
    for b in &batches {
        p.publish(b).await.unwrap();
    }
    eventually("5 stored", || server.with(|s| s.stored.len()) == 5).await;
    assert_eq!(
        server.stored_ids(),
        ids(&batches.iter().collect::<Vec<_>>())
    );
    assert_eq!(server.with(|s| s.stored.clone()), batches);
    assert_eq!(server.with(|s| s.ingests.len()), 5, "each sent once");
    assert_eq!(
        server.with(|s| s.ingest_headers.clone()),
        vec![
            (
                Some("application/json".to_string()),
                Some("gzip".to_string())
            );
            5
        ]
    );
    eventually("buffer empty", || files(dir.path()).is_empty()).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("rejected"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn server_down_at_first_then_up_on_the_same_port_gets_everything_once() {
    let (logs, _guard) = capture_logs();
    let addr = free_addr().await;
    let url = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&url, dir.path(), "");
    let batches: Vec<Batch> = (0..3).map(|i| small_batch(i as f64)).collect();
    for b in &batches {
        p.publish(b).await.unwrap();
    }
    assert_eq!(files(dir.path()).len(), 3, "published means on disk");
    eventually("a failed try with all three waiting", || {
        let log = logs.text();
        log.contains(&format!(
            "WARN skymeter::delivery: cannot connect to {url}: "
        )) && log.contains(
            "check `url` and that the server is up; 3 batch(es) stay buffered; next try in",
        )
    })
    .await;
    let tries = |level: &str| {
        logs.text()
            .lines()
            .filter(|l| l.contains(level) && l.contains("batch(es) stay buffered"))
            .count()
    };
    eventually("a repeated failure", || tries("DEBUG") >= 1).await;
    assert_eq!(
        tries("WARN"),
        1,
        "a repeated failure is a warning once: {}",
        logs.text()
    );

    let server = serve_on(&addr.to_string(), Srv::default()).await;
    eventually("3 stored", || server.with(|s| s.stored.len()) == 3).await;
    assert_eq!(
        server.stored_ids(),
        ids(&batches.iter().collect::<Vec<_>>())
    );
    assert_eq!(server.with(|s| s.ingests.len()), 3, "each sent once");
    eventually("buffer empty", || files(dir.path()).is_empty()).await;
    eventually("recovery logged", || {
        logs.text()
            .contains(&format!("delivering to {url} again after"))
    })
    .await;
}

#[tokio::test]
async fn retries_503_honouring_retry_after_then_delivers() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv {
        script: VecDeque::from([(503, Some("1")), (503, None)]),
        ..Srv::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    let b = small_batch(1.0);
    p.publish(&b).await.unwrap();
    eventually("stored", || server.with(|s| s.stored.len()) == 1).await;
    let tries = server.with(|s| s.ingests.clone());
    let id = b.batch_id.to_string();
    assert_eq!(
        tries.iter().map(|t| &t.0).collect::<Vec<_>>(),
        [&id, &id, &id]
    );
    let gap = tries[1].1 - tries[0].1;
    assert!(
        gap >= Duration::from_secs(1),
        "waited {gap:?}; Retry-After asked 1s"
    );
    assert!(
        logs.text().contains(&format!(
            "POST {}/api/v1/ingest answered 503 Service Unavailable: internal: scripted; the server asks",
            server.url
        )) || logs.text().contains(&format!(
            "POST {}/api/v1/ingest answered 503 Service Unavailable: internal: scripted; the server failed",
            server.url
        )),
        "{}",
        logs.text()
    );
    eventually("buffer empty", || files(dir.path()).is_empty()).await;
}

/// What the skymeter server answers when its ingest budget is in use: 429 with Retry-After.
/// The batch stays in the buffer (on disk, in order) and goes once the server takes it.
#[tokio::test]
async fn retries_429_honouring_retry_after_keeping_the_batches_in_order() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv {
        script: VecDeque::from([(429, Some("2")), (429, Some("1"))]),
        ..Srv::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    let first = small_batch(1.0);
    let second = small_batch(2.0);
    p.publish(&first).await.unwrap();
    p.publish(&second).await.unwrap();
    // While the server refuses, both batches wait on disk.
    eventually("first refusal", || server.with(|s| s.ingests.len()) >= 1).await;
    assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
    eventually("both stored", || server.with(|s| s.stored.len()) == 2).await;
    let stored = server.with(|s| s.stored.clone());
    assert_eq!(
        ids(&stored.iter().collect::<Vec<_>>()),
        ids(&[&first, &second]),
        "in order, none dropped"
    );
    let tries = server.with(|s| s.ingests.clone());
    let first_id = first.batch_id.to_string();
    assert_eq!(
        tries[..3].iter().map(|t| &t.0).collect::<Vec<_>>(),
        [&first_id, &first_id, &first_id]
    );
    assert!(
        tries[1].1 - tries[0].1 >= Duration::from_secs(2),
        "Retry-After asked 2s: {:?}",
        tries[1].1 - tries[0].1
    );
    assert!(
        tries[2].1 - tries[1].1 >= Duration::from_secs(1),
        "Retry-After asked 1s"
    );
    assert!(
        logs.text().contains("answered 429 Too Many Requests")
            && logs.text().contains("the server asks to slow down"),
        "{}",
        logs.text()
    );
    eventually("buffer empty", || files(dir.path()).is_empty()).await;
}

#[tokio::test]
async fn a_400_batch_moves_to_rejected_and_the_next_ones_still_go() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    let good1 = small_batch(1.0);
    let bad = batch(vec![point("bad name", 1.0, "2026-11-22T10:00:00Z", &[])]);
    let good2 = small_batch(2.0);
    for b in [&good1, &bad, &good2] {
        p.publish(b).await.unwrap();
    }
    eventually("2 stored", || server.with(|s| s.stored.len()) == 2).await;
    assert_eq!(server.stored_ids(), ids(&[&good1, &good2]));
    eventually("buffer empty", || files(dir.path()).is_empty()).await;

    let rejected = dir.path().join("rejected");
    let name = format!("{:020}-{}.json.gz", 2, bad.batch_id);
    let mut names: Vec<String> = std::fs::read_dir(&rejected)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [name.clone(), format!("{name}.error.json")]);
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(rejected.join(&name)).unwrap())
        .read_to_end(&mut json)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Batch>(&json).unwrap(), bad);
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rejected.join(format!("{name}.error.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(report["status"], 400);
    assert_eq!(report["batch_id"], bad.batch_id.to_string());
    assert_eq!(report["url"], format!("{}/api/v1/ingest", server.url));
    assert_eq!(report["response"]["error"]["code"], "invalid_batch");
    assert_eq!(
        report["response"]["error"]["fields"][0]["path"],
        "points[0].metric"
    );
    let log = logs.text();
    assert!(
        log.contains(&format!(
            "the server rejected batch {} (400 Bad Request): invalid_batch: the batch has invalid fields (points[0].metric: `bad name` is not a metric name",
            bad.batch_id
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("moved to {}", rejected.join(&name).display())),
        "{log}"
    );
}

#[tokio::test]
async fn a_409_batch_moves_to_rejected_and_the_next_ones_still_go() {
    // Captured like every test that logs a rejection: a callsite first hit without a
    // subscriber would stay silent for the other tests.
    let (logs, _guard) = capture_logs();
    let taken = small_batch(1.0);
    let server = serve(Srv {
        stored: vec![taken.clone()],
        ..Srv::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    let mut reused = small_batch(2.0);
    reused.batch_id = taken.batch_id;
    let next = small_batch(3.0);
    p.publish(&reused).await.unwrap();
    p.publish(&next).await.unwrap();
    eventually("next stored", || server.with(|s| s.stored.len()) == 2).await;
    assert_eq!(server.stored_ids(), ids(&[&taken, &next]));
    let name = format!("{:020}-{}.json.gz", 1, reused.batch_id);
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("rejected")
                .join(format!("{name}.error.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["status"], 409);
    assert_eq!(report["response"]["error"]["code"], "batch_conflict");
    let log = logs.text();
    assert!(log.contains("409 Conflict"), "{log}");
}

#[tokio::test]
async fn a_413_batch_is_rejected_without_splitting() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv {
        max_body: Some(2000),
        ..Srv::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    let big = batch(
        (0..2000)
            .map(|i| {
                let cpu = i.to_string();
                point(
                    "cpu.utilization",
                    i as f64 * 1.2345,
                    "2026-11-22T10:00:00Z",
                    &[("cpu", &cpu)],
                )
            })
            .collect(),
    );
    let small = small_batch(1.0);
    p.publish(&big).await.unwrap();
    p.publish(&small).await.unwrap();
    eventually("small stored", || server.with(|s| s.stored.len()) == 1).await;
    assert_eq!(server.stored_ids(), ids(&[&small]));
    let name = format!("{:020}-{}.json.gz", 1, big.batch_id);
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("rejected")
                .join(format!("{name}.error.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["status"], 413);
    assert_eq!(report["response"]["error"]["code"], "too_large");
    let log = logs.text();
    assert!(
        log.contains("raise the server's body limit or make the task's batches smaller"),
        "{log}"
    );
    assert!(log.contains("A batch is not split"), "{log}");
}

#[tokio::test]
async fn the_buffer_survives_a_restart_and_torn_writes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let down = format!("http://{}", free_addr().await);
    let mut first = publisher(&down, dir.path(), "");
    let old: Vec<Batch> = (0..3).map(|i| small_batch(i as f64)).collect();
    for b in &old {
        first.publish(b).await.unwrap();
    }
    drop(first);
    let names = files(dir.path());
    assert_eq!(
        names,
        old.iter()
            .enumerate()
            .map(|(i, b)| format!("{:020}-{}.json.gz", i + 1, b.batch_id))
            .collect::<Vec<_>>()
    );
    let torn = dir.path().join(format!("{:020}-torn.json.gz.tmp", 4));
    std::fs::write(&torn, b"half a batch").unwrap();

    // The "restarted" agent: same buffer, and the server is up now.
    let server = serve(Srv::default()).await;
    let mut second = publisher(&server.url, dir.path(), "");
    second.flush().await.unwrap();
    assert_eq!(
        server.stored_ids(),
        ids(&old.iter().collect::<Vec<_>>()),
        "flush sent the leftovers"
    );
    assert!(!torn.exists(), "the torn write is gone");
    let new = small_batch(9.0);
    second.publish(&new).await.unwrap();
    eventually("4 stored", || server.with(|s| s.stored.len()) == 4).await;
    assert_eq!(server.stored_ids(), ids(&[&old[0], &old[1], &old[2], &new]));
    assert_eq!(server.with(|s| s.ingests.len()), 4);
}

// ---------------------------------------------------------------------------------------
// The bound

#[tokio::test]
async fn drop_oldest_keeps_the_bound_and_counts_what_it_dropped() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv::default()).await;
    server.gate.send_replace(false);
    let dir = tempfile::tempdir().unwrap();
    let b: Vec<Batch> = (0..5).map(|i| small_batch(i as f64)).collect();
    // Room for 3 batches (sizes differ by a few bytes), not for 4.
    let size = encode(&b[0]).unwrap().len();
    let max = 3 * size + size / 2;
    let mut p = publisher(
        &server.url,
        dir.path(),
        &format!("max_buffer_size = {max}\nwhen_full = \"drop_oldest\"\nheartbeat_interval = \"1s\"\ntimeout = \"60s\""),
    );
    p.publish(&b[0]).await.unwrap();
    eventually("b0 in flight", || server.with(|s| s.arrived) == 1).await;
    for x in &b[1..] {
        p.publish(x).await.unwrap();
    }
    let name = |i: usize| format!("{:020}-{}.json.gz", i + 1, b[i].batch_id);
    assert_eq!(
        files(dir.path()),
        [name(0), name(3), name(4)],
        "b1 and b2 dropped; b0 is being sent"
    );
    let log = logs.text();
    assert!(
        log.contains("is full: dropped the 1 oldest undelivered batch(es) (1 dropped since start)"),
        "{log}"
    );
    assert!(
        log.contains("is full: dropped the 1 oldest undelivered batch(es) (2 dropped since start)"),
        "{log}"
    );
    eventually("a heartbeat with the counts", || {
        server.with(|s| {
            s.heartbeats.iter().any(|(_, hb)| {
                *hb == Heartbeat {
                    buffered_batches: 3,
                    dropped_batches: 2,
                }
            })
        })
    })
    .await;

    server.open_gate();
    eventually("3 stored", || server.with(|s| s.stored.len()) == 3).await;
    assert_eq!(server.stored_ids(), ids(&[&b[0], &b[3], &b[4]]));
    eventually("a heartbeat with an empty buffer", || {
        server.with(|s| {
            s.heartbeats.iter().any(|(_, hb)| {
                *hb == Heartbeat {
                    buffered_batches: 0,
                    dropped_batches: 2,
                }
            })
        })
    })
    .await;
}

#[tokio::test]
async fn block_makes_publish_wait_until_the_sender_frees_room() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv::default()).await;
    server.gate.send_replace(false);
    let dir = tempfile::tempdir().unwrap();
    // 1 byte: one batch at a time (an empty buffer takes any batch).
    let mut p = publisher(
        &server.url,
        dir.path(),
        "max_buffer_size = 1\ntimeout = \"60s\"",
    );
    let (b0, b1) = (small_batch(0.0), small_batch(1.0));
    p.publish(&b0).await.unwrap();
    eventually("b0 in flight", || server.with(|s| s.arrived) == 1).await;
    let b1c = b1.clone();
    let waiting = tokio::spawn(async move {
        p.publish(&b1c).await.unwrap();
        p
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "publish waits while the buffer is full"
    );
    assert_eq!(
        files(dir.path()),
        [format!("{:020}-{}.json.gz", 1, b0.batch_id)]
    );
    assert!(
        logs.text().contains("is full (1 batch(es)"),
        "{}",
        logs.text()
    );
    assert!(logs.text().contains(
        "waiting for the server to take some before accepting more (when_full = \"block\")"
    ));

    server.open_gate();
    let _p = waiting.await.unwrap();
    eventually("2 stored", || server.with(|s| s.stored.len()) == 2).await;
    assert_eq!(server.stored_ids(), ids(&[&b0, &b1]));
}

// ---------------------------------------------------------------------------------------
// Agent registration and heartbeats

#[tokio::test]
async fn registers_sends_heartbeats_and_registers_again_after_a_404() {
    let server = serve(Srv::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(
        &server.url,
        dir.path(),
        "heartbeat_interval = \"1s\"\nlabels = { env = \"test\", dc = \"par1\" }",
    );
    p.publish(&small_batch(1.0)).await.unwrap();
    eventually("registered", || server.with(|s| s.registrations.len()) == 1).await;
    let want = AgentRegistration {
        id: "agent-1".into(),
        hostname: agent::hostname(),
        version: env!("CARGO_PKG_VERSION").into(),
        tasks: vec![skymeter_model::api::AgentTask {
            name: "host".into(),
            interval_s: 10,
        }],
        labels: [("dc", "par1"), ("env", "test")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        heartbeat_interval_s: 1,
    };
    assert_eq!(server.with(|s| s.registrations[0].clone()), want);
    eventually("a heartbeat after delivery", || {
        server.with(|s| {
            s.heartbeats
                .iter()
                .any(|(id, hb)| id == "agent-1" && *hb == Heartbeat::default())
        })
    })
    .await;

    // The server forgets the agent: the next heartbeat gets 404 and the agent registers again.
    server.with(|s| s.agents.clear());
    eventually("registered again", || {
        server.with(|s| s.registrations.len()) == 2
    })
    .await;
    assert_eq!(server.with(|s| s.registrations[1].clone()), want);
    let beats = server.with(|s| s.heartbeats.len());
    eventually("heartbeats again", || {
        server.with(|s| s.heartbeats.len()) > beats
    })
    .await;

    // Another task's publisher to the same server joins the registration.
    let mut costs = publisher_in(
        &config(&server.url, &dir.path().join("costs"), ""),
        &ctx(dir.path(), "costs", 3600),
    );
    costs.publish(&small_batch(2.0)).await.unwrap();
    eventually("registered with both tasks", || {
        server.with(|s| s.registrations.len()) == 3
    })
    .await;
    let tasks = server.with(|s| s.registrations[2].tasks.clone());
    assert_eq!(
        tasks
            .iter()
            .map(|t| (t.name.as_str(), t.interval_s))
            .collect::<Vec<_>>(),
        [("costs", 3600), ("host", 10)]
    );
    assert_eq!(
        server.with(|s| s.registrations[2].heartbeat_interval_s),
        1,
        "the shortest interval wins"
    );
}

#[tokio::test]
async fn the_token_is_sent_and_never_shown() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv {
        token: Some("the-right-token".into()),
        ..Srv::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(
        &server.url,
        dir.path(),
        "token = \"s3cret-t0ken\"\nheartbeat_interval = \"1s\"",
    );
    let b = small_batch(1.0);
    p.publish(&b).await.unwrap();
    eventually("an auth error", || {
        logs.text().contains("ingest answered 401 Unauthorized")
    })
    .await;
    let log = logs.text();
    assert!(
        log.contains(&format!(
            "POST {}/api/v1/ingest answered 401 Unauthorized: unauthorized: missing or unknown token; the server did not accept the token set in `token` (not shown here); set `token` to an agent token of this server",
            server.url
        )),
        "{log}"
    );
    assert!(log.contains("ERROR"), "auth problems are errors: {log}");
    assert_eq!(files(dir.path()).len(), 1, "the batch stays buffered");

    // The server is given the agent's token: everything goes through.
    server.with(|s| s.token = Some("s3cret-t0ken".into()));
    eventually("stored", || server.with(|s| s.stored.len()) == 1).await;
    eventually("registered", || server.with(|s| s.registrations.len()) == 1).await;
    eventually("a heartbeat", || server.with(|s| !s.heartbeats.is_empty())).await;
    let requests = server.with(|s| s.requests.clone());
    for kind in ["register", "heartbeat", "ingest"] {
        assert!(requests.iter().any(|(k, _)| k == kind), "no {kind} request");
    }
    for (kind, auth) in &requests {
        assert_eq!(auth.as_deref(), Some("Bearer s3cret-t0ken"), "{kind}");
    }
    drop(p);
    assert!(!logs.text().contains("s3cret"), "{}", logs.text());
}

#[tokio::test]
async fn without_a_token_a_401_says_to_set_one() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv {
        token: Some("t".into()),
        ..Srv::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "");
    p.publish(&small_batch(1.0)).await.unwrap();
    eventually("an auth error", || {
        logs.text().contains("answered 401 Unauthorized")
    })
    .await;
    assert!(
        logs.text().contains(
            "no `token` is set and the server wants one; add token = \"${SKYMETER_TOKEN}\""
        ),
        "{}",
        logs.text()
    );
    assert_eq!(server.with(|s| s.requests[0].1.clone()), None);
}

// ---------------------------------------------------------------------------------------
// flush and the buffer directory

#[tokio::test]
async fn flush_gives_up_after_three_timeouts_and_leaves_the_rest_on_disk() {
    let (logs, _guard) = capture_logs();
    let server = serve(Srv::default()).await;
    server.gate.send_replace(false);
    let dir = tempfile::tempdir().unwrap();
    let mut p = publisher(&server.url, dir.path(), "timeout = \"200ms\"");
    p.publish(&small_batch(1.0)).await.unwrap();
    let started = Instant::now();
    p.flush().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "flush waits 3 × timeout"
    );
    assert_eq!(files(dir.path()).len(), 1);
    assert!(
        logs.text().contains(&format!(
            "1 undelivered batch(es) stay in {} and are sent when the agent starts again",
            dir.path().display()
        )),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn flush_without_a_buffer_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("never");
    let mut p = publisher("http://127.0.0.1:9", &buffer, "");
    p.flush().await.unwrap();
    assert!(!buffer.exists(), "no directory created");
    std::fs::create_dir(&buffer).unwrap();
    p.flush().await.unwrap();
    assert!(
        !buffer.join(".lock").exists(),
        "an empty buffer is not even opened"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn two_publishers_cannot_share_a_buffer_directory() {
    let server = serve(Srv::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = publisher(&server.url, dir.path(), "");
    let mut b = publisher(&server.url, dir.path(), "");
    a.publish(&small_batch(1.0)).await.unwrap();
    let err = b.publish(&small_batch(2.0)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert_eq!(
        err.message,
        format!(
            "the buffer directory {} is in use by another `server` publisher (of this agent or another process); give each one its own `buffer_dir`",
            dir.path().display()
        )
    );
    drop(a);
    b.publish(&small_batch(3.0)).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Config

#[test]
fn the_default_buffer_dir_is_under_the_data_dir_per_task() {
    let dir = Path::new("/var/lib/skymeter");
    for (task, want) in [
        ("host", "host"),
        ("aws/prod", "aws_prod"),
        ("..", "_.."),
        ("", "_"),
    ] {
        let s = with_raw("url = \"http://127.0.0.1:8080\"", |raw| {
            settings(raw, &ctx(dir, task, 10))
        })
        .unwrap();
        assert_eq!(s.buffer.dir, dir.join("buffer").join(want));
        assert_eq!(s.buffer.flush_wait, Duration::from_secs(30));
        assert_eq!(s.buffer.max_size, 1_000_000_000);
        assert_eq!(s.buffer.when_full, WhenFull::Block);
    }
    let cfg: ServerConfig =
        with_raw("url = \"http://127.0.0.1:8080\"", |raw| raw.decode()).unwrap();
    assert_eq!(cfg.timeout.0, Duration::from_secs(10));
    assert_eq!(cfg.heartbeat_interval.0, Duration::from_secs(30));
}

#[test]
fn config_errors_are_located_and_never_show_the_token() {
    for (text, key, want) in [
        ("url = \"not a url\"", "url", "not an absolute URL"),
        ("url = \"ftp://x\"", "url", "scheme `ftp` is not supported"),
        (
            "url = \"http://user:pw@x\"",
            "url",
            "the URL carries credentials",
        ),
        ("url = \"http://x/api/v1\"", "url", "without `/api/v1/…`"),
        (
            "url = \"http://x/api/v1/ingest\"",
            "url",
            "without `/api/v1/…`",
        ),
        ("url = \"http://x?a=1\"", "url", "without `?query`"),
        (
            "url = \"http://x\"\ntimeout = \"0s\"",
            "timeout",
            "must be more than 0",
        ),
        (
            "url = \"http://x\"\nheartbeat_interval = \"500ms\"",
            "heartbeat_interval",
            "must be at least 1s",
        ),
        (
            "url = \"http://x\"\nmax_buffer_size = 0",
            "max_buffer_size",
            "must be more than 0",
        ),
        (
            "url = \"http://x\"\nlabels = { \"\" = \"v\" }",
            "labels",
            "a label name is empty",
        ),
        (
            "url = \"http://x\"\nretry = { attempts = 3 }",
            "retry.attempts",
            "does not apply here",
        ),
        (
            "url = \"http://x\"\nretry = { initial = \"2s\", max = \"1s\" }",
            "retry",
            "`max` at least `initial`",
        ),
        (
            "url = \"http://x\"\ntoken = \"s3cret\\nline\"",
            "token",
            "the token has characters",
        ),
    ] {
        let e = config_err(with_raw(text, |raw| {
            build(raw, &BuildContext::one_shot("t"))
        }));
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.message.contains(want), "{text}: {e}");
        assert!(!e.message.contains("s3cret"), "{e}");
    }
    for (text, want) in [
        (
            "url = \"http://x\"\nwhen_full = \"wait\"",
            "unknown variant `wait`",
        ),
        (
            "url = \"http://x\"\nmax_buffer_size = \"lots\"",
            "bad size `lots`",
        ),
        ("url = \"http://x\"\nbogus = 1", "unknown field `bogus`"),
    ] {
        let e = config_err(with_raw(text, |raw| {
            build(raw, &BuildContext::one_shot("t"))
        }));
        assert!(e.message.contains(want), "{text}: {e}");
    }
}

#[test]
fn sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "publish", "server") {
        with_raw(&entry, |raw| build(raw, &BuildContext::one_shot("t")))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}

#[test]
fn retry_after_takes_seconds_or_an_http_date() {
    let now: chrono::DateTime<chrono::Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
    assert_eq!(
        crate::common::retry_after::parse("7", now),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        crate::common::retry_after::parse("Sun, 22 Nov 2026 10:00:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        crate::common::retry_after::parse("Sun, 22 Nov 2026 09:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(crate::common::retry_after::parse("soon", now), None);
}

#[test]
fn backoff_doubles_up_to_max_with_jitter_and_respects_retry_after() {
    let mut b = crate::common::delivery::Backoff::new(&RetryPolicy {
        attempts: 5,
        initial: Duration::from_millis(100).into(),
        max: Duration::from_millis(400).into(),
    });
    let bounds = [(50, 100), (100, 200), (200, 400), (200, 400), (200, 400)];
    for (lo, hi) in bounds {
        let w = b.next(None);
        assert!(
            w >= Duration::from_millis(lo) && w <= Duration::from_millis(hi),
            "{w:?} not in {lo}..={hi}ms"
        );
    }
    assert_eq!(b.failures(), 5);
    assert_eq!(b.next(Some(Duration::from_secs(5))), Duration::from_secs(5));
    assert_eq!(
        b.next(Some(Duration::from_secs(100_000))),
        Duration::from_secs(600),
        "capped"
    );
    b.reset();
    assert!(b.next(None) <= Duration::from_millis(100));
}

#[test]
fn the_buffer_table_and_the_older_keys_mean_the_same() {
    let dir = Path::new("/var/lib/skymeter");
    let url = "url = \"http://127.0.0.1:8080\"";
    let older = with_raw(
        &format!(
            "{url}\nbuffer_dir = \"/b\"\nmax_buffer_size = \"5MB\"\nwhen_full = \"drop_oldest\""
        ),
        |raw| settings(raw, &ctx(dir, "host", 10)),
    )
    .unwrap();
    let table = with_raw(
        &format!(
            "{url}\nbuffer = {{ dir = \"/b\", max_size = \"5MB\", when_full = \"drop_oldest\" }}"
        ),
        |raw| settings(raw, &ctx(dir, "host", 10)),
    )
    .unwrap();
    for s in [&older, &table] {
        assert_eq!(
            (
                s.buffer.dir.as_path(),
                s.buffer.max_size,
                s.buffer.when_full
            ),
            (Path::new("/b"), 5_000_000, WhenFull::DropOldest)
        );
    }
    let default = with_raw(&format!("{url}\nbuffer = {{}}"), |raw| {
        settings(raw, &ctx(dir, "host", 10))
    })
    .unwrap();
    assert_eq!(default.buffer.dir, dir.join("buffer").join("host"));
    // Messages name the keys as written: the table's, unless an older key is used.
    assert_eq!(
        (table.buffer.terms.dir_key, default.buffer.terms.dir_key),
        ("buffer.dir", "buffer.dir")
    );
    assert_eq!(
        (older.buffer.terms.dir_key, older.buffer.terms.max_size_key),
        ("buffer_dir", "max_buffer_size")
    );

    for (text, key, want) in [
        (
            "buffer = {}\nwhen_full = \"block\"",
            "when_full",
            "`when_full` is the older spelling of `buffer.when_full`",
        ),
        (
            "buffer = { max_size = 0 }",
            "buffer.max_size",
            "must be more than 0",
        ),
        ("buffer = { dir = \"\" }", "buffer.dir", "is empty"),
    ] {
        let e = config_err(with_raw(&format!("{url}\n{text}"), |raw| {
            build(raw, &BuildContext::one_shot("t"))
        }));
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.message.contains(want), "{text}: {e}");
    }
}
