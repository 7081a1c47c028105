use super::*;
use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use skymeter_model::Window;
use skymeter_plugin_api::config::Source as TomlSource;
use skymeter_plugin_api::MetricSelection;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------- an OSv-like server

#[derive(Clone, Default)]
struct Counters {
    polls: Arc<AtomicU64>,
}

async fn serve() -> SocketAddr {
    let state = Counters::default();
    let app = Router::new()
        // OSv: GET /os/memory/free answers a bare number.
        .route("/os/memory/free", get(|| async { "2023403520" }))
        .route(
            "/os/memory",
            get(|| async {
                Json(json!({"free": 1024, "total": "4096", "balloon": true, "name": "mem"}))
            }),
        )
        .route(
            "/os/cpus",
            get(|| async {
                Json(json!({"cpus": [
                    {"id": 0, "busy": 12.5, "host": "vm-a"},
                    {"id": 1, "busy": "50", "host": "vm-a"},
                    {"id": 2, "host": "vm-b"}
                ]}))
            }),
        )
        // OSv's /trace/count: counters that grow by 1000 and 250 per poll.
        .route(
            "/trace/count",
            get(|State(s): State<Counters>| async move {
                let n = s.polls.fetch_add(1, Ordering::SeqCst) + 1;
                Json(json!({"time_ms": 5000 * n, "list": [
                    {"name": "waitqueue_wake_one", "count": 1000 * n},
                    {"name": "callout_reset", "count": 250 * n}
                ]}))
            }),
        )
        .route(
            "/fail",
            get(|| async { (AxumStatus::INTERNAL_SERVER_ERROR, "boom: database down") }),
        )
        .route(
            "/secure",
            get(|headers: AxumHeaders| async move {
                let ok = headers
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer right-token");
                if ok {
                    Json(json!({"up": 1})).into_response()
                } else {
                    (AxumStatus::UNAUTHORIZED, "no").into_response()
                }
            }),
        )
        .route(
            "/forbidden",
            get(|| async { (AxumStatus::FORBIDDEN, "denied") }),
        )
        .route(
            "/html",
            get(|| async { format!("<html><body>{}</body></html>", "x".repeat(500)) }),
        )
        .route(
            "/query",
            post(|Json(body): Json<Value>| async move {
                Json(json!({"double": body["n"].as_f64().unwrap_or(-1.0) * 2.0}))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "1"
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

// ---------------------------------------------------------------- helpers

fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = TomlSource::new("http.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    f(&raw)
}

fn collector(text: &str) -> HttpJson {
    with_raw(text, |raw| HttpJson::from_raw(raw).expect("builds"))
}

fn config_error(text: &str) -> ConfigError {
    with_raw(text, |raw| HttpJson::from_raw(raw).err().expect("fails"))
}

/// A clock the test moves by hand, in milliseconds.
fn manual_clock(c: &mut HttpJson) -> Arc<AtomicU64> {
    let ms = Arc::new(AtomicU64::new(0));
    let m = ms.clone();
    c.clock = Arc::new(move || m.load(Ordering::SeqCst) as f64 / 1000.0);
    ms
}

fn request(selection: &[&str]) -> CollectRequest {
    let end = "2026-03-01T12:00:10Z".parse().unwrap();
    CollectRequest {
        window: Window {
            start: "2026-03-01T12:00:00Z".parse().unwrap(),
            end,
        },
        metrics: MetricSelection::new(selection).unwrap(),
        task: "t".into(),
    }
}

async fn poll(c: &mut HttpJson) -> Result<Output, PluginError> {
    let mut out = Output::default();
    c.collect(&request(&[]), &mut out).await.map(|()| out)
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- values

#[tokio::test]
async fn a_bare_number_body_is_the_whole_document() {
    let addr = serve().await;
    let mut c = collector(&format!(
        r#"url = "http://{addr}/os/memory/free"
metrics = [{{ name = "memory.free", pointer = "", unit = "bytes" }}]
resource = {{ provider = "osv" }}
"#
    ));
    let out = poll(&mut c).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.points.len(), 1);
    let p = &out.points[0];
    assert_eq!(
        (p.metric.as_str(), p.value, p.unit, p.stat, p.period_s),
        ("memory.free", 2_023_403_520.0, Unit::Bytes, Stat::Last, 0)
    );
    assert_eq!(p.ts, request(&[]).window.end);
    let r = &out.resources[0];
    let hostport = addr.to_string();
    assert_eq!(
        (
            r.provider.as_str(),
            r.kind.as_str(),
            r.id.as_str(),
            r.name.as_str()
        ),
        ("osv", "service", hostport.as_str(), hostport.as_str())
    );
    assert_eq!(p.resource, r.reference().into());
}

#[tokio::test]
async fn object_fields_strings_and_booleans_are_numbers_and_static_labels_apply() {
    let addr = serve().await;
    let mut c = collector(&format!(
        r#"url = "http://{addr}/os/memory"
labels = {{ env = "lab" }}
metrics = [
  {{ name = "memory.free", pointer = "/free", unit = "bytes" }},
  {{ name = "memory.total", pointer = "/total", unit = "bytes" }},
  {{ name = "osv.balloon", pointer = "/balloon" }},
  {{ name = "osv.name", pointer = "/name" }},
  {{ name = "osv.missing", pointer = "/nope" }},
]
"#
    ));
    let out = poll(&mut c).await.unwrap();
    let got: Vec<(&str, f64, &Labels)> = out
        .points
        .iter()
        .map(|p| (p.metric.as_str(), p.value, &*p.labels))
        .collect();
    let env = labels(&[("env", "lab")]);
    assert_eq!(
        got,
        [
            ("memory.free", 1024.0, &env),
            ("memory.total", 4096.0, &env),
            ("osv.balloon", 1.0, &env),
        ]
    );
    assert_eq!(out.points[2].unit, Unit::None);
    // Two partial errors: a string that is not a number, a pointer that is not there.
    assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::BadResponse);
    assert!(
        e.message.contains("metric `osv.name`")
            && e.message.contains("is the string \"mem\", not a number"),
        "{e}"
    );
    let e = &out.errors[1];
    assert!(
        e.message.contains("pointer `/nope` not found")
            && e.message.contains(&format!("http://{addr}/os/memory")),
        "{e}"
    );
    assert_eq!(e.context["pointer"], "/nope");
    assert_eq!(e.context["url"], format!("http://{addr}/os/memory"));
}

#[tokio::test]
async fn items_give_per_element_points_labels_and_resources() {
    let addr = serve().await;
    let mut c = collector(&format!(
        r#"url = "http://{addr}/os/cpus"
items = "/cpus"
metrics = [{{ name = "cpu.utilization", pointer = "/busy", unit = "percent", labels = {{ cpu = "/id", index = "@key" }} }}]
resource = {{ provider = "osv", kind = "compute.instance", id_pointer = "/host" }}
"#
    ));
    let out = poll(&mut c).await.unwrap();
    let got: Vec<(&str, f64, Labels)> = out
        .points
        .iter()
        .map(|p| (p.resource.id.as_str(), p.value, (*p.labels).clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("vm-a", 12.5, labels(&[("cpu", "0"), ("index", "0")])),
            ("vm-a", 50.0, labels(&[("cpu", "1"), ("index", "1")])),
        ]
    );
    let ids: Vec<(&str, &str, &str)> = out
        .resources
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str(), r.kind.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("vm-a", "vm-a", "compute.instance"),
            ("vm-b", "vm-b", "compute.instance")
        ]
    );
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(
        out.errors[0]
            .message
            .contains("pointer `/busy` not found (in item 2 of `/cpus`"),
        "{}",
        out.errors[0]
    );
}

#[tokio::test]
async fn counters_become_exact_rates_over_the_poll_interval() {
    let addr = serve().await;
    let mut c = collector(&format!(
        r#"url = "http://{addr}/trace/count"
items = "/list"
metrics = [{{ name = "osv.trace", pointer = "/count", type = "counter", labels = {{ tracepoint = "/name" }} }}]
"#
    ));
    let ms = manual_clock(&mut c);
    ms.store(10_000, Ordering::SeqCst);
    let first = poll(&mut c).await.unwrap();
    assert!(first.points.is_empty(), "one reading gives no rate");
    assert!(first.errors.is_empty());
    assert_eq!(first.resources.len(), 1);

    ms.store(12_000, Ordering::SeqCst); // 2 s later; +1000 and +250 on the server
    let out = poll(&mut c).await.unwrap();
    let got: Vec<(&str, f64, u32, Stat, Unit)> = out
        .points
        .iter()
        .map(|p| {
            (
                p.labels["tracepoint"].as_str(),
                p.value,
                p.period_s,
                p.stat,
                p.unit,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "waitqueue_wake_one",
                500.0,
                2,
                Stat::Avg,
                Unit::CountPerSecond
            ),
            ("callout_reset", 125.0, 2, Stat::Avg, Unit::CountPerSecond),
        ]
    );
}

#[tokio::test]
async fn post_sends_the_json_body() {
    let addr = serve().await;
    let mut c = collector(&format!(
        r#"url = "http://{addr}/query"
method = "POST"
body = '{{"n": 21}}'
metrics = [{{ name = "answer", pointer = "/double" }}]
"#
    ));
    let out = poll(&mut c).await.unwrap();
    assert_eq!(out.points[0].value, 42.0);
}

#[tokio::test]
async fn unselected_metrics_are_not_read_and_no_request_is_made_for_none() {
    let addr = serve().await;
    let mut c = collector(&format!(
        r#"url = "http://{addr}/trace/count"
items = "/list"
metrics = [
  {{ name = "osv.trace", pointer = "/count", labels = {{ tracepoint = "/name" }} }},
  {{ name = "osv.other", pointer = "/nope" }},
]
"#
    ));
    let mut out = Output::default();
    c.collect(&request(&["osv.trace"]), &mut out).await.unwrap();
    assert_eq!(out.points.len(), 2);
    assert!(
        out.errors.is_empty(),
        "osv.other not read: {:?}",
        out.errors
    );
    // A selection matching none of the metrics makes no request at all: the server's
    // counter stays where the first poll left it.
    let mut none = Output::default();
    c.collect(&request(&["cpu.*"]), &mut none).await.unwrap();
    c.collect(&request(&["osv.trace"]), &mut out).await.unwrap();
    assert_eq!(
        out.points.last().unwrap().value,
        500.0,
        "second poll: n = 2"
    );
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn http_failures_are_classified_and_never_show_header_values() {
    let addr = serve().await;
    let cfg = |path: &str, extra: &str| {
        format!(
            "url = \"http://{addr}{path}\"\n{extra}metrics = [{{ name = \"up\", pointer = \"/up\" }}]\n"
        )
    };

    let err = poll(&mut collector(&cfg("/fail", ""))).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message.contains("500 Internal Server Error")
            && err.message.contains("boom: database down"),
        "{err}"
    );
    assert!(err.is_retryable());

    let wrong = cfg(
        "/secure",
        "headers = { Authorization = \"Bearer wrong-token\" }\n",
    );
    let err = poll(&mut collector(&wrong)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("401") && err.message.contains("check the headers/token"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-token"), "{err}");

    let right = cfg(
        "/secure",
        "headers = { Authorization = \"Bearer right-token\" }\n",
    );
    let out = poll(&mut collector(&right)).await.unwrap();
    assert_eq!(out.points[0].value, 1.0);

    let err = poll(&mut collector(&cfg("/forbidden", "")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permission);
    assert!(
        err.message.contains("403") && err.message.contains("check the headers/token"),
        "{err}"
    );

    let err = poll(&mut collector(&cfg("/html", ""))).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadResponse);
    let shown = err.message.split("it starts with: ").nth(1).unwrap();
    assert_eq!(
        shown,
        format!("<html><body>{}…", "x".repeat(188)),
        "first 200 chars"
    );

    let err = poll(&mut collector(&cfg("/nowhere", "")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(
        err.message.contains("404") && err.message.contains("check `url`"),
        "{err}"
    );

    let err = poll(&mut collector(&cfg("/slow", "timeout = \"200ms\"\n")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.message.contains("within 200ms"), "{err}");

    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut c = collector(&format!(
        "url = \"http://{closed}/x?token=abc123\"\nmetrics = [{{ name = \"up\", pointer = \"/up\" }}]\n"
    ));
    let err = poll(&mut c).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("cannot connect"), "{err}");
    assert!(!err.to_string().contains("abc123"), "query hidden: {err}");
    assert_eq!(err.context["url"], format!("http://{closed}/x?…"));
}

#[tokio::test]
async fn nothing_readable_fails_the_collection() {
    let addr = serve().await;
    let mut c = collector(&format!(
        "url = \"http://{addr}/os/memory\"\nmetrics = [{{ name = \"a\", pointer = \"/x\" }}, {{ name = \"b\", pointer = \"/y\" }}]\n"
    ));
    let mut out = Output::default();
    let err = c.collect(&request(&[]), &mut out).await.unwrap_err();
    assert!(
        err.message.contains("metric `a`: pointer `/x` not found"),
        "{err}"
    );
    assert_eq!(out.errors.len(), 1, "the other failure is kept");
    assert!(out.points.is_empty() && out.resources.is_empty());

    let mut c = collector(&format!(
        "url = \"http://{addr}/os/memory\"\nitems = \"/free\"\nmetrics = [{{ name = \"a\", pointer = \"\" }}]\n"
    ));
    let err = poll(&mut c).await.unwrap_err();
    assert!(err.message.contains("`items` points at a number"), "{err}");
}

// ---------------------------------------------------------------- config

#[test]
fn config_mistakes_are_located_and_explained() {
    let m = "metrics = [{ name = \"up\", pointer = \"/up\" }]\n";

    let e = config_error(&format!("{m}url = \"ftp://example.com/x\"\n"));
    assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("url")));
    assert!(e.message.contains("scheme `ftp`"), "{e}");

    let e = config_error(&format!("{m}url = \"not a url\"\n"));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("not a URL"), "{e}");

    let e = config_error("url = \"http://127.0.0.1:1/\"\nmetrics = []\n");
    assert!(e.message.contains("`metrics` is empty"), "{e}");

    let e = config_error(
        "url = \"http://127.0.0.1:1/\"\nmetrics = [{ name = \"up\", pointer = \"free\" }]\n",
    );
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains("metrics[0] (`up`)") && e.message.contains("start it with `/`"),
        "{e}"
    );

    let e = config_error(
        "url = \"http://127.0.0.1:1/\"\nmetrics = [{ name = \"busy\", pointer = \"/b\", unit = \"percent\", type = \"counter\" }]\n",
    );
    assert!(e.message.contains("no per-second unit"), "{e}");

    let e = config_error(&format!(
        "url = \"http://127.0.0.1:1/\"\nbody = '{{\"a\": 1}}'\n{m}"
    ));
    assert!(e.message.contains("POST only"), "{e}");

    let e = config_error(&format!(
        "url = \"http://127.0.0.1:1/\"\nmethod = \"POST\"\nbody = '{{oops'\n{m}"
    ));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("not valid JSON"), "{e}");

    let e = config_error(&format!(
        "url = \"http://127.0.0.1:1/\"\nheaders = {{ \"X-Key\" = \"sec\\nret-value\" }}\n{m}"
    ));
    assert!(e.message.contains("header `X-Key`"), "{e}");
    assert!(!e.to_string().contains("ret-value"), "{e}");

    let e = config_error(&format!(
        "url = \"http://127.0.0.1:1/\"\nresource = {{ id = \"a\", id_pointer = \"/id\" }}\n{m}"
    ));
    assert!(
        e.message
            .contains("either `resource.id` or `resource.id_pointer`"),
        "{e}"
    );

    let e = config_error(&format!(
        "url = \"http://127.0.0.1:1/\"\nmethod = \"PUT\"\n{m}"
    ));
    assert_eq!(e.line, Some(2));

    let e = config_error(&format!(
        "url = \"http://127.0.0.1:1/\"\nitems = \"/a~2b\"\n{m}"
    ));
    assert!(e.message.contains("`~` must be written `~0`"), "{e}");
}

#[test]
fn pointers_and_values() {
    assert!(check_pointer("").is_ok());
    assert!(check_pointer("/a~1b/~0/0").is_ok());
    assert!(check_pointer("a").is_err());
    assert_eq!(source_of("@key"), Ok(Source::Key));
    assert_eq!(number(&json!(" 3.5 ")), Ok(3.5));
    assert_eq!(number(&json!(false)), Ok(0.0));
    assert_eq!(number(&json!(null)), Err("is null, not a number".into()));
    assert_eq!(number(&json!([1])), Err("is an array, not a number".into()));
    assert_eq!(prefix("héllo", 2), "hé…");
}

/// Every collect entry of `sample.toml`, as the pipeline would hand it over.
fn sample_entries() -> Vec<String> {
    let doc: toml::Table = toml::from_str(include_str!("sample.toml")).unwrap();
    let mut entries = Vec::new();
    for task in doc["task"].as_array().unwrap() {
        for e in task["collect"].as_array().unwrap() {
            let mut entry = e.as_table().unwrap().clone();
            assert_eq!(entry["plugin"].as_str(), Some("http_json"));
            for k in ["plugin", "name", "timeout"] {
                entry.remove(k);
            }
            entries.push(toml::to_string(&entry).unwrap());
        }
    }
    entries
}

#[test]
fn builds_from_its_sample() {
    let entries = sample_entries();
    assert!(entries.len() >= 3);
    for text in entries {
        let src = TomlSource::new("sample.toml", text.as_str());
        let mut v = src.parse().unwrap();
        // The sample reads its token from the environment.
        let env = |k: &str| (k == "API_TOKEN").then(|| "t0ken".to_string());
        let secrets = skymeter_plugin_api::config::interpolate(&src, &mut v, &env).unwrap();
        let raw = RawConfig::new(src.clone(), v, Arc::new(secrets));
        (factory().build)(&raw, &BuildContext::one_shot("test"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
