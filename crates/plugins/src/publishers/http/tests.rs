use super::*;
use crate::common::testing::{batch, config_err, point, sample_entries, with_raw};
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
    at: std::time::Instant,
}

/// A scripted answer: status, extra headers, body. When the script runs out: 200.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
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
        at: std::time::Instant::now(),
    });
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
    let server = Server::default();
    server.script.lock().unwrap().extend(script);
    let app = Router::new()
        .route("/ingest", post(ingest))
        .route("/slow", post(slow))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
