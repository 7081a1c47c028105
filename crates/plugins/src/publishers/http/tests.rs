use super::*;
use crate::common::testing::{
    batch, batch_files, config_err, eventually, free_addr, ids, point, sample_entries, with_raw,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap as AxumHeaders;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::sync::Mutex;

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    api_key: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    batch: Batch,
    /// The request body as sent (gzip).
    body: Vec<u8>,
    at: std::time::Instant,
}

/// A scripted answer: status, extra headers, body. When the script runs out: 200.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// While false, requests are seen but not answered (the batch stays in flight).
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            seen: Arc::default(),
            script: Arc::default(),
            gate: Arc::new(tokio::sync::watch::channel(true).0),
        }
    }
}

async fn ingest(State(s): State<Server>, headers: AxumHeaders, body: Bytes) -> Response {
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .expect("the body is gzip");
    s.seen.lock().unwrap().push(Seen {
        authorization: header("authorization"),
        api_key: header("x-api-key"),
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
        batch: serde_json::from_slice(&json).expect("the body is a batch"),
        body: body.to_vec(),
        at: std::time::Instant::now(),
    });
    let _ = s.gate.subscribe().wait_for(|open| *open).await;
    let next = s.script.lock().unwrap().pop_front();
    let (status, extra, text) = next.unwrap_or((200, vec![], String::new()));
    let mut resp = (StatusCode::from_u16(status).unwrap(), text).into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

/// Starts the server on 127.0.0.1 with `script`; returns its base URL.
async fn serve(script: Vec<Answer>) -> (String, Server) {
    serve_on("127.0.0.1:0", script).await
}

/// [`serve`] on `addr` (a port where nothing answered before: the receiver comes up).
async fn serve_on(addr: &str, script: Vec<Answer>) -> (String, Server) {
    let server = Server::default();
    server.script.lock().unwrap().extend(script);
    let app = Router::new()
        .route("/ingest", post(ingest))
        .route("/slow", post(slow))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), server)
}

fn publisher(text: &str) -> Box<dyn Publisher> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test"))).unwrap()
}

const FAST_RETRY: &str = "retry = { attempts = 5, initial = \"1ms\", max = \"5ms\" }";

fn sample_batch() -> Batch {
    batch(vec![
        point(
            "cpu.utilization",
            12.5,
            "2026-11-22T10:00:00Z",
            &[("cpu", "0")],
        ),
        point("mem.used", 3.0, "2026-11-22T10:00:00Z", &[]),
    ])
}

#[tokio::test]
async fn retries_503_then_delivers_the_batch_with_the_token() {
    let (base, server) = serve(vec![
        (503, vec![], "busy".into()),
        (503, vec![], "busy".into()),
    ])
    .await;
    let mut p = publisher(&format!(
        "url = \"{base}/ingest\"\ntoken = \"s3cret-token\"\nheaders = {{ \"X-Api-Key\" = \"k1\" }}\n{FAST_RETRY}"
    ));
    let b = sample_batch();
    p.publish(&b).await.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.batch, b);
        assert_eq!(s.authorization.as_deref(), Some("Bearer s3cret-token"));
        assert_eq!(s.api_key.as_deref(), Some("k1"));
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
        assert_eq!(s.content_encoding.as_deref(), Some("gzip"));
    }
}

#[tokio::test]
async fn a_400_is_not_retried_and_shows_status_and_body_head() {
    let long_body = format!("{}{}", "e".repeat(190), "0123456789ABCDEFGHIJ");
    let (base, server) = serve(vec![(400, vec![], long_body)]).await;
    let mut p = publisher(&format!(
        "url = \"{base}/ingest?key=query-secret\"\ntoken = \"s3cret-token\"\n{FAST_RETRY}"
    ));
    let err = p.publish(&sample_batch()).await.unwrap_err();
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    assert_eq!(err.kind, ErrorKind::BadResponse);
    assert_eq!(
        err.message,
        format!(
            "POST {base}/ingest answered 400 Bad Request: {}0123456789; the receiver rejected \
             the batch; check `url` and what it accepts",
            "e".repeat(190)
        )
    );
    assert_eq!(err.context["status"], "400");
    let shown = err.to_string();
    assert!(
        !shown.contains("s3cret") && !shown.contains("query-secret"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_401_is_an_auth_error() {
    let (base, server) = serve(vec![(401, vec![], String::new())]).await;
    let mut p = publisher(&format!("url = \"{base}/ingest\"\n{FAST_RETRY}"));
    let err = p.publish(&sample_batch()).await.unwrap_err();
    assert_eq!(
        (err.kind, server.seen.lock().unwrap().len()),
        (ErrorKind::Auth, 1)
    );
    assert_eq!(
        err.message,
        format!("POST {base}/ingest answered 401 Unauthorized; check `token` (or the auth header in `headers`)")
    );
    assert_eq!(server.seen.lock().unwrap()[0].authorization, None);
}

#[tokio::test]
async fn retry_after_waits_as_asked_up_to_retry_max() {
    let (base, server) = serve(vec![(503, vec![("retry-after", "1")], String::new())]).await;
    let mut p = publisher(&format!(
        "url = \"{base}/ingest\"\nretry = {{ attempts = 3, initial = \"1ms\", max = \"10s\" }}"
    ));
    p.publish(&sample_batch()).await.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(1), "waited {gap:?}, asked 1s");
}

#[tokio::test]
async fn connection_refused_is_retryable_and_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut p = publisher(&format!(
        "url = \"http://{addr}/ingest\"\nretry = {{ attempts = 2, initial = \"1ms\", max = \"1ms\" }}"
    ));
    let err = p.publish(&sample_batch()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message
            .starts_with(&format!("cannot connect to http://{addr}/ingest: ")),
        "{err}"
    );
    assert!(
        err.message
            .ends_with("check the URL and that the receiver is up"),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let (base, _server) = serve(vec![]).await;
    let mut p = publisher(&format!(
        "url = \"{base}/slow\"\ntimeout = \"200ms\"\nretry = {{ attempts = 1 }}"
    ));
    let err = p.publish(&sample_batch()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(
        err.message,
        format!("POST {base}/slow timed out after 200ms; raise `timeout` or check the receiver")
    );
}

#[test]
fn config_errors_never_show_secrets() {
    for (text, want) in [
        ("url = \"not a url\"", "not an absolute URL"),
        ("url = \"ftp://x/y\"", "scheme `ftp` is not supported"),
        ("url = \"http://x\"\ntimeout = \"0s\"", "must be more than 0"),
        (
            "url = \"http://x\"\ntoken = \"t0ken-value\"\nheaders = { Authorization = \"Basic abc\" }",
            "both set the Authorization header",
        ),
        ("url = \"http://x\"\nheaders = { \"bad name\" = \"v\" }", "`bad name` is not a valid header name"),
        ("url = \"http://x\"\nheaders = { \"Content-Encoding\" = \"br\" }", "is set by the publisher"),
        ("url = \"http://x\"\nheaders = { \"X-Key\" = \"line\\nbreak-secret\" }", "`x-key` has characters"),
        ("url = \"http://x\"\nretry = { attempts = 3, tries = 2 }", "unknown field `tries`"),
    ] {
        let e = config_err(with_raw(text, |raw| build(raw, &BuildContext::one_shot("t"))));
        assert!(e.message.contains(want), "{text}: {e}");
        assert!(!e.message.contains("t0ken") && !e.message.contains("break-secret"), "{e}");
    }
}

#[test]
fn sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "publish", "http") {
        with_raw(&entry, |raw| build(raw, &BuildContext::one_shot("t")))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------
// With `buffer = { … }`

/// A buffered publisher to `url` with its buffer in `dir` and quick retries.
fn buffered(url: &str, dir: &std::path::Path, buffer_extra: &str) -> Box<dyn Publisher> {
    publisher(&format!(
        "url = \"{url}\"\ntimeout = \"60s\"\nretry = {{ initial = \"10ms\", max = \"50ms\" }}\nbuffer = {{ dir = {:?}{buffer_extra} }}",
        dir.display().to_string()
    ))
}

fn file_of(seq: usize, b: &Batch) -> String {
    format!("{seq:020}-{}.json.gz", b.batch_id)
}

fn numbered(n: usize) -> Vec<Batch> {
    (0..n)
        .map(|i| {
            batch(vec![point(
                "cpu.utilization",
                i as f64,
                "2026-11-22T10:00:00Z",
                &[],
            )])
        })
        .collect()
}

/// Each batch id once, in the order the receiver first saw it.
fn first_seen(server: &Server) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for s in server.seen.lock().unwrap().iter() {
        let id = s.batch.batch_id.to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test]
async fn buffered_batches_wait_out_a_receiver_down_then_failing_and_arrive_in_order_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr().await;
    let mut p = buffered(&format!("http://{addr}/ingest"), dir.path(), "");
    let batches = numbered(3);
    for b in &batches {
        p.publish(b).await.unwrap();
    }
    assert_eq!(
        batch_files(dir.path()),
        [
            file_of(1, &batches[0]),
            file_of(2, &batches[1]),
            file_of(3, &batches[2])
        ],
        "published means on disk, with the receiver down"
    );
    // The receiver comes up on the same port, failing twice before it takes batches.
    let (_, server) = serve_on(
        &addr.to_string(),
        vec![(503, vec![], "busy".into()), (503, vec![], "busy".into())],
    )
    .await;
    eventually("buffer empty", || batch_files(dir.path()).is_empty()).await;
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "two 503s, then each batch once");
    assert_eq!(
        first_seen(&server),
        ids(&batches.iter().collect::<Vec<_>>())
    );
    let want = ids(&[
        &batches[0],
        &batches[0],
        &batches[0],
        &batches[1],
        &batches[2],
    ]);
    assert_eq!(
        seen.iter()
            .map(|s| s.batch.batch_id.to_string())
            .collect::<Vec<_>>(),
        want,
        "the failed batch is retried before the next one goes"
    );
    for s in &seen {
        let b = batches
            .iter()
            .find(|b| b.batch_id == s.batch.batch_id)
            .unwrap();
        assert_eq!(&s.batch, b);
        assert_eq!(
            s.body,
            gzip_json(b).unwrap(),
            "the body is what was buffered"
        );
        assert_eq!(s.content_encoding.as_deref(), Some("gzip"));
    }
    assert!(dir
        .path()
        .join("rejected")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test]
async fn a_buffered_batch_refused_with_400_moves_to_rejected_and_the_next_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (base, server) = serve(vec![(
        400,
        vec![("content-type", "application/json")],
        r#"{"error":"schema 2 is not supported"}"#.into(),
    )])
    .await;
    let mut p = buffered(&format!("{base}/ingest"), dir.path(), "");
    let (bad, good) = (sample_batch(), numbered(1).remove(0));
    p.publish(&bad).await.unwrap();
    p.publish(&good).await.unwrap();
    eventually("both tried", || server.seen.lock().unwrap().len() == 2).await;
    eventually("buffer empty", || batch_files(dir.path()).is_empty()).await;
    assert_eq!(first_seen(&server), ids(&[&bad, &good]));
    let rejected = dir.path().join("rejected");
    let name = file_of(1, &bad);
    assert_eq!(batch_files(&rejected), std::slice::from_ref(&name));
    assert_eq!(
        std::fs::read(rejected.join(&name)).unwrap(),
        gzip_json(&bad).unwrap()
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rejected.join(format!("{name}.error.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(report["status"], 400);
    assert_eq!(report["batch_id"], bad.batch_id.to_string());
    assert_eq!(report["url"], format!("{base}/ingest"));
    assert_eq!(report["response"]["error"], "schema 2 is not supported");
}

#[tokio::test]
async fn a_buffered_batch_answered_401_stays_and_goes_once_the_receiver_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (base, server) = serve(vec![
        (401, vec![], String::new()),
        (403, vec![], String::new()),
        (404, vec![], String::new()),
        (429, vec![], String::new()),
    ])
    .await;
    let mut p = buffered(&format!("{base}/ingest"), dir.path(), "");
    let b = sample_batch();
    p.publish(&b).await.unwrap();
    eventually("buffer empty", || batch_files(dir.path()).is_empty()).await;
    assert_eq!(
        server.seen.lock().unwrap().len(),
        5,
        "4 failed tries, then taken"
    );
    assert!(
        batch_files(&dir.path().join("rejected")).is_empty(),
        "config mistakes reject nothing"
    );
}

#[tokio::test]
async fn a_full_buffer_with_drop_oldest_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (base, server) = serve(vec![]).await;
    server.gate.send_replace(false);
    let b = numbered(5);
    // Room for 3 batches (sizes differ by a few bytes), not for 4.
    let size = gzip_json(&b[0]).unwrap().len();
    let max = 3 * size + size / 2;
    let mut p = buffered(
        &format!("{base}/ingest"),
        dir.path(),
        &format!(", max_size = {max}, when_full = \"drop_oldest\""),
    );
    p.publish(&b[0]).await.unwrap();
    eventually("b0 in flight", || server.seen.lock().unwrap().len() == 1).await;
    for x in &b[1..] {
        p.publish(x).await.unwrap();
    }
    assert_eq!(
        batch_files(dir.path()),
        [file_of(1, &b[0]), file_of(4, &b[3]), file_of(5, &b[4])],
        "b1 and b2 dropped; b0 is being sent"
    );
    server.gate.send_replace(true);
    eventually("buffer empty", || batch_files(dir.path()).is_empty()).await;
    assert_eq!(first_seen(&server), ids(&[&b[0], &b[3], &b[4]]));
}

#[tokio::test]
async fn a_new_publisher_on_the_same_buffer_sends_what_the_last_one_left() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr().await;
    let url = format!("http://{addr}/ingest");
    let old = numbered(2);
    let mut first = buffered(&url, dir.path(), "");
    for b in &old {
        first.publish(b).await.unwrap();
    }
    drop(first);
    assert_eq!(batch_files(dir.path()).len(), 2, "left on disk");

    let (_, server) = serve_on(&addr.to_string(), vec![]).await;
    let mut second = buffered(&url, dir.path(), "");
    second.flush().await.unwrap();
    assert_eq!(
        first_seen(&server),
        ids(&[&old[0], &old[1]]),
        "flush sent the leftovers"
    );
    assert!(batch_files(dir.path()).is_empty());
    let new = sample_batch();
    second.publish(&new).await.unwrap();
    second.flush().await.unwrap();
    assert_eq!(first_seen(&server), ids(&[&old[0], &old[1], &new]));
    assert_eq!(server.seen.lock().unwrap().len(), 3, "each sent once");
}

#[test]
fn the_buffer_defaults_and_what_it_refuses() {
    let ctx = BuildContext {
        agent_id: "a".into(),
        data_dir: "/var/lib/skymeter".into(),
        task: "aws/prod".into(),
        interval: None,
    };
    let cfg: HttpConfig = with_raw("url = \"http://x\"\nbuffer = {}", |raw| raw.decode()).unwrap();
    assert_eq!(cfg.buffer, Some(BufferConfig::default()));
    let built = with_raw("url = \"http://x\"\nbuffer = {}", |raw| {
        let cfg: HttpConfig = raw.decode()?;
        cfg.buffer.unwrap().settings(
            raw,
            Terms::of_buffer_table("http", "the receiver"),
            task_buffers(&ctx).join("http"),
            cfg.retry,
            Duration::from_secs(30),
            &ctx.task,
        )
    })
    .unwrap();
    assert_eq!(
        built.dir,
        std::path::Path::new("/var/lib/skymeter/buffer/aws_prod/http")
    );
    assert_eq!(built.max_size, 1_000_000_000);
    assert_eq!(built.when_full, crate::common::delivery::WhenFull::Block);

    for (text, key, want) in [
        (
            "url = \"http://x\"\nbuffer = {}\nretry = { attempts = 3 }",
            "retry.attempts",
            "does not apply here: a batch is retried until the receiver takes or rejects it",
        ),
        (
            "url = \"http://x\"\nbuffer = { max_size = 0 }",
            "buffer.max_size",
            "must be more than 0",
        ),
        (
            "url = \"http://x\"\nbuffer = { dir = \"\" }",
            "buffer.dir",
            "is empty",
        ),
    ] {
        let e = config_err(with_raw(text, |raw| build(raw, &ctx)));
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.message.contains(want), "{text}: {e}");
    }
    let e = config_err(with_raw(
        "url = \"http://x\"\nbuffer = { when_full = \"wait\" }",
        |raw| build(raw, &ctx),
    ));
    assert!(e.message.contains("unknown variant `wait`"), "{e}");
    // Without a buffer, `attempts` bounds the inline tries as before.
    with_raw("url = \"http://x\"\nretry = { attempts = 3 }", |raw| {
        build(raw, &ctx)
    })
    .unwrap();
}
