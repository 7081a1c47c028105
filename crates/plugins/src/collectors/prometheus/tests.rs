use super::*;
use crate::common::testing::{self, request, row, stepping_clock, with_raw, Row};
use axum::extract::State;
use axum::http::{HeaderMap as AxHeaders, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the test server saw and how many scrapes it served.
#[derive(Default)]
struct Seen {
    scrapes: AtomicU64,
    headers: Mutex<Vec<AxHeaders>>,
}

/// The exposition after `n` earlier scrapes: every counter grows by a known step per scrape.
fn body(n: u64) -> String {
    let n = n as f64;
    format!(
        "# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{{method=\"get\",path=\"C:\\\\dir \\\"q\\\"\\nx\"}} {}
http_requests_total{{method=\"post\",path=\"/\"}} {}
# HELP node_memory_MemFree_bytes Free memory.
# TYPE node_memory_MemFree_bytes gauge
node_memory_MemFree_bytes 1.5e+09
# TYPE temp_celsius gauge
temp_celsius{{sensor=\"cpu\"}} 42.5
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {}
# TYPE req_duration_seconds histogram
req_duration_seconds_bucket{{le=\"0.1\"}} {}
req_duration_seconds_bucket{{le=\"+Inf\"}} {}
req_duration_seconds_sum {}
req_duration_seconds_count {}
go_goroutines 7
",
        100.0 + 10.0 * n,
        50.0 + 4.0 * n,
        n,
        2.0 * n,
        4.0 * n,
        0.5 * n,
        4.0 * n,
    )
}

async fn metrics(State(seen): State<Arc<Seen>>, headers: AxHeaders) -> String {
    seen.headers.lock().unwrap().push(headers);
    body(seen.scrapes.fetch_add(1, Ordering::SeqCst))
}

async fn gzipped(State(seen): State<Arc<Seen>>) -> Response {
    let text = body(seen.scrapes.fetch_add(1, Ordering::SeqCst));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    ([("content-encoding", "gzip")], gz).into_response()
}

async fn authed(headers: AxHeaders) -> Response {
    match headers.get("authorization").map(|v| v.to_str().unwrap()) {
        None => AxStatus::UNAUTHORIZED.into_response(),
        Some("Bearer s3cret-token") if headers.get("x-tenant").is_some_and(|v| v == "blue") => {
            "up_here 1\n".into_response()
        }
        Some(_) => AxStatus::FORBIDDEN.into_response(),
    }
}

/// Serves the test routes on 127.0.0.1; returns the base URL.
async fn serve() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/gz", get(gzipped))
        .route("/auth", get(authed))
        .route(
            "/fail",
            get(|| async { (AxStatus::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/bad",
            get(|| async { "# TYPE a gauge\na 1\n\nb{x=\"1\" 2\nc 3\n" }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn collector(toml: &str) -> Prometheus {
    let mut p = with_raw(toml, |raw| {
        let cfg: PrometheusConfig = raw.decode().unwrap();
        Prometheus::new(cfg, raw).unwrap()
    });
    p.clock = stepping_clock(2.0);
    p
}

fn config_error(toml: &str) -> ConfigError {
    with_raw(toml, |raw| {
        let cfg: PrometheusConfig = match raw.decode() {
            Ok(c) => c,
            Err(e) => return e,
        };
        match Prometheus::new(cfg, raw) {
            Ok(_) => panic!("{toml} should not build"),
            Err(e) => e,
        }
    })
}

/// The points without the scrape's own health metrics, as rows.
fn rows(out: &Output) -> Vec<Row> {
    let points: Vec<_> = out
        .points
        .iter()
        .filter(|p| !p.metric.starts_with("scrape."))
        .cloned()
        .collect();
    testing::rows(&points)
}

/// The points of one scrape pair, two seconds apart on the test clock.
fn expected() -> Vec<Row> {
    let (avg, last) = (Stat::Avg, Stat::Last);
    vec![
        row("go_goroutines", &[], Unit::None, last, 0, 7.0),
        row(
            "http_requests",
            &[("method", "get"), ("path", "C:\\dir \"q\"\nx")],
            Unit::CountPerSecond,
            avg,
            2,
            5.0,
        ),
        row(
            "http_requests",
            &[("method", "post"), ("path", "/")],
            Unit::CountPerSecond,
            avg,
            2,
            2.0,
        ),
        row(
            "node_memory_MemFree_bytes",
            &[],
            Unit::Bytes,
            last,
            0,
            1.5e9,
        ),
        row("process_cpu_seconds", &[], Unit::Ratio, avg, 2, 0.5),
        row(
            "req_duration_seconds_bucket",
            &[("le", "+Inf")],
            Unit::CountPerSecond,
            avg,
            2,
            2.0,
        ),
        row(
            "req_duration_seconds_bucket",
            &[("le", "0.1")],
            Unit::CountPerSecond,
            avg,
            2,
            1.0,
        ),
        row(
            "req_duration_seconds_count",
            &[],
            Unit::CountPerSecond,
            avg,
            2,
            2.0,
        ),
        row("req_duration_seconds_sum", &[], Unit::Ratio, avg, 2, 0.25),
        row(
            "temp_celsius",
            &[("sensor", "cpu")],
            Unit::Celsius,
            last,
            0,
            42.5,
        ),
        row("up", &[], Unit::None, last, 0, 1.0),
    ]
}

#[tokio::test]
async fn first_collection_warms_up_and_gives_exact_rates_gauges_and_units() {
    let (base, seen) = serve().await;
    let mut p = collector(&format!("url = \"{base}/metrics\"\nwarmup = \"10ms\"\n"));
    let req = request(&[]);
    let mut out = Output::default();
    p.collect(&req, &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        seen.scrapes.load(Ordering::SeqCst),
        2,
        "scrape, warm-up, scrape"
    );
    assert_eq!(rows(&out), expected());
    assert!(out.points.iter().all(|p| p.ts == req.window.end));

    let port = base.rsplit(':').next().unwrap();
    let r = &out.resources[0];
    assert_eq!(
        (r.provider.as_str(), r.kind.as_str(), r.id.clone()),
        ("custom", "service", format!("127.0.0.1:{port}"))
    );
    assert_eq!(out.points[0].resource, r.reference().into());
    let samples = out
        .points
        .iter()
        .find(|p| p.metric == "scrape.samples")
        .unwrap();
    assert_eq!((samples.value, samples.unit), (10.0, Unit::Count));
    let duration = out
        .points
        .iter()
        .find(|p| p.metric == "scrape.duration")
        .unwrap();
    assert!(duration.value > 0.0 && duration.unit == Unit::Seconds);

    // The next collection needs no warm-up: one scrape, the same rates.
    let mut out = Output::default();
    p.collect(&req, &mut out).await.unwrap();
    assert_eq!(seen.scrapes.load(Ordering::SeqCst), 3);
    assert_eq!(rows(&out), expected());

    let headers = seen.headers.lock().unwrap();
    assert_eq!(headers[0]["accept"], "text/plain;version=0.0.4");
    assert_eq!(headers[0]["accept-encoding"], "gzip");
}

#[tokio::test]
async fn gzip_bodies_are_decompressed() {
    let (base, _) = serve().await;
    let mut p = collector(&format!("url = \"{base}/gz\"\nwarmup = \"10ms\"\n"));
    let mut out = Output::default();
    p.collect(&request(&[]), &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(rows(&out), expected());
}

#[tokio::test]
async fn without_warmup_the_first_collection_has_gauges_only() {
    let (base, seen) = serve().await;
    let mut p = collector(&format!("url = \"{base}/metrics\"\nwarmup = \"0s\"\n"));
    let mut out = Output::default();
    p.collect(&request(&[]), &mut out).await.unwrap();
    assert_eq!(seen.scrapes.load(Ordering::SeqCst), 1);
    let names: Vec<String> = rows(&out).into_iter().map(|r| r.0).collect();
    assert_eq!(
        names,
        [
            "go_goroutines",
            "node_memory_MemFree_bytes",
            "temp_celsius",
            "up"
        ]
    );
}

#[tokio::test]
async fn prefix_filters_and_the_task_selection() {
    let (base, _) = serve().await;
    let mut p = collector(&format!(
        "url = \"{base}/metrics\"\nwarmup = \"10ms\"\nmetric_prefix = \"app.\"\n\
         metrics_include = [\"http_*\", \"req_*\", \"temp_*\"]\nmetrics_exclude = [\"*_bucket\"]\n"
    ));
    let mut out = Output::default();
    p.collect(&request(&["app.*", "up"]), &mut out)
        .await
        .unwrap();
    let mut names: Vec<String> = rows(&out).into_iter().map(|r| r.0).collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "app.http_requests",
            "app.req_duration_seconds_count",
            "app.req_duration_seconds_sum",
            "app.temp_celsius",
            "up"
        ]
    );
    assert!(
        !out.points.iter().any(|p| p.metric.starts_with("scrape.")),
        "the task did not select scrape.*"
    );
}

#[tokio::test]
async fn a_500_is_unavailable_with_up_0() {
    let (base, _) = serve().await;
    let mut p = collector(&format!("url = \"{base}/fail\"\n"));
    let mut out = Output::default();
    p.collect(&request(&[]), &mut out).await.unwrap();
    assert_eq!(out.errors.len(), 1);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains(&format!("{base}/fail answered 500")),
        "{e}"
    );
    assert_eq!(e.context["url"], format!("{base}/fail"));
    assert_eq!(rows(&out), [row("up", &[], Unit::None, Stat::Last, 0, 0.0)]);
}

#[tokio::test]
async fn a_syntax_error_names_the_line() {
    let (base, _) = serve().await;
    let mut p = collector(&format!("url = \"{base}/bad\"\n"));
    let mut out = Output::default();
    p.collect(&request(&[]), &mut out).await.unwrap();
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::BadResponse);
    assert!(e.message.contains("line 4: expected `,` or `}`"), "{e}");
    assert_eq!(e.context["line"], "4");
    assert_eq!(
        rows(&out),
        [row("up", &[], Unit::None, Stat::Last, 0, 0.0)],
        "a bad line rejects the whole body"
    );
    assert!(p.verify().await.is_err());
}

#[tokio::test]
async fn credentials_are_sent_and_refusals_classified() {
    let (base, _) = serve().await;
    let url = format!("url = \"{base}/auth\"\n");
    let mut out = Output::default();
    collector(&url)
        .collect(&request(&[]), &mut out)
        .await
        .unwrap();
    assert_eq!(out.errors[0].kind, ErrorKind::Auth, "{}", out.errors[0]);

    let mut out = Output::default();
    collector(&format!("{url}bearer_token = \"wrong\"\n"))
        .collect(&request(&[]), &mut out)
        .await
        .unwrap();
    assert_eq!(out.errors[0].kind, ErrorKind::Permission);
    assert!(
        !out.errors[0].to_string().contains("wrong"),
        "no secret in errors"
    );

    let mut p = collector(&format!(
        "{url}bearer_token = \"s3cret-token\"\nheaders = {{ X-Tenant = \"blue\" }}\n"
    ));
    p.verify().await.unwrap();
    let mut out = Output::default();
    p.collect(&request(&[]), &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        rows(&out),
        [
            row("up", &[], Unit::None, Stat::Last, 0, 1.0),
            row("up_here", &[], Unit::None, Stat::Last, 0, 1.0)
        ]
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut p = collector(&format!(
        "url = \"http://{addr}/metrics\"\ntimeout = \"2s\"\n"
    ));
    let err = p.verify().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        err.message
            .contains(&format!("cannot connect to http://{addr}/metrics")),
        "{err}"
    );
}

#[test]
fn config_mistakes_are_located() {
    let e = config_error("url = \"localhost:9100\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("url")), "{e}");
    let e = config_error("url = \"http://h/m\"\nmetrics_include = [\"[x\"]\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("metrics_include")),
        "{e}"
    );
    let e = config_error(
        "url = \"http://h/m\"\nbearer_token = \"t\"\nheaders = { authorization = \"Basic x\" }\n",
    );
    assert!(e.message.contains("keep one"), "{e}");
    let e = config_error("url = \"http://h/m\"\nheaders = { \"bad header\" = \"v\" }\n");
    assert_eq!(e.key.as_deref(), Some("headers"), "{e}");
    let e = config_error("url = \"http://h/m\"\nmetric_prefix = \"a b\"\n");
    assert_eq!(e.key.as_deref(), Some("metric_prefix"), "{e}");
    let e = config_error("url = \"http://h/m\"\nscrape_interval = \"1s\"\n");
    assert!(e.message.contains("unknown field `scrape_interval`"), "{e}");
    let e = config_error("url = \"http://user:pw@h/m\"\nresource = { kind = 3 }\n");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn passwords_in_the_url_are_not_shown_and_the_resource_defaults_apply() {
    let p = collector("url = \"https://user:hunter2@example.test/metrics\"\nresource = { name = \"api\", tags = { team = \"a\" } }\n");
    assert_eq!(p.shown_url, "https://user:***@example.test/metrics");
    assert_eq!(p.default_id, "example.test:443");
    let r = p.resource.build("service", &p.default_id, Utc::now());
    assert_eq!(
        (r.id.as_str(), r.name.as_str()),
        ("example.test:443", "api")
    );
    assert_eq!(r.tags["team"], "a");
}

#[test]
fn the_sample_config_builds() {
    let n = crate::common::testing::build_sample_entries(include_str!("sample.toml"), factory());
    assert_eq!(n, 2);
}
