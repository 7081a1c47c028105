//! Hostile queries against the real `skymeter server` binary: each request that once
//! aborted, overflowed the stack of, or exhausted the memory of the server is answered
//! 4xx/503 in Prometheus' error shape, the same process then answers `/health`, and its
//! resident memory stays bounded. A second server with small `[server.query]` limits
//! shows a broad query stopped by `max_series`, `max_samples` and `timeout`.
//!
//! Each request's status and time are printed (`--nocapture` shows them); the client's
//! timeout (20 s) only guards against a hang, it is not a speed figure.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

impl Proc {
    /// Resident memory of the server process, from `/proc/<pid>/status`.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    fn assert_running(&mut self) {
        assert!(
            self.0.try_wait().unwrap().is_none(),
            "the server process has exited"
        );
    }
}

/// Starts `skymeter server -c server.toml` with `extra` appended to its `[server]` table.
fn start(dir: &std::path::Path, extra: &str) -> (Proc, String) {
    let port = free_port();
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nno_auth = true\n{extra}"
        ),
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["server", "-c", "server.toml"])
        .current_dir(dir)
        .env_remove("SKYMETER_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("skymeter starts");
    let proc = Proc(child);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while health(&base) != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, base)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn health(base: &str) -> u16 {
    client()
        .get(format!("{base}/health"))
        .send()
        .map_or(0, |r| r.status().as_u16())
}

/// POSTs form `params` to `path`; returns status, the JSON body, and the time taken.
fn post_form(
    base: &str,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, serde_json::Value, Duration) {
    let t = Instant::now();
    let r = client()
        .post(format!("{base}{path}"))
        .form(params)
        .send()
        .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
    let status = r.status().as_u16();
    let body = r.json().unwrap_or(serde_json::Value::Null);
    (status, body, t.elapsed())
}

fn get_url(base: &str, path_and_query: &str) -> (u16, serde_json::Value, Duration) {
    let t = Instant::now();
    let r = client()
        .get(format!("{base}{path_and_query}"))
        .send()
        .unwrap_or_else(|e| panic!("{path_and_query}: no answer: {e}"));
    let status = r.status().as_u16();
    let body = r.json().unwrap_or(serde_json::Value::Null);
    (status, body, t.elapsed())
}

/// Stores `resources` hosts × `points` CPU samples, one minute apart, ending at `end`
/// (Unix seconds).
fn seed(base: &str, resources: usize, points: usize, end: i64) {
    for chunk in (0..resources).collect::<Vec<_>>().chunks(100) {
        let mut pts = Vec::new();
        for &r in chunk {
            for i in 0..points {
                let ts = chrono::DateTime::from_timestamp(end - 60 * (points - 1 - i) as i64, 0)
                    .unwrap()
                    .to_rfc3339();
                pts.push(serde_json::json!({
                    "metric": "cpu.utilization", "unit": "percent", "stat": "avg",
                    "period_s": 60, "ts": ts, "value": (r * i) as f64 % 100.0,
                    "resource": {"provider": "host", "account": "", "region": "", "id": format!("h{r}")}
                }));
            }
        }
        let batch = serde_json::json!({"schema": 1, "batch_id": uuid::Uuid::now_v7(),
            "agent_id": "a", "task": "t", "collected_at": "2026-11-22T10:30:00Z", "points": pts});
        let r = client()
            .post(format!("{base}/api/v1/ingest"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&batch).unwrap())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "ingest: {}", r.status());
    }
}

/// Checks Prometheus' error shape and that the message contains `needle`.
fn assert_error(
    what: &str,
    got: &(u16, serde_json::Value, Duration),
    status: u16,
    error_type: &str,
    needle: &str,
) {
    let (s, body, took) = got;
    eprintln!("{what}: {s} {} in {took:?}", body["errorType"]);
    assert_eq!(*s, status, "{what}: {body}");
    assert_eq!(body["status"], "error", "{what}: {body}");
    assert_eq!(body["errorType"], error_type, "{what}: {body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{what}: `{needle}` not in {msg:?}");
}

const CPU: &str = "cpu_utilization_percent";

#[test]
fn hostile_queries_are_refused_and_the_server_stays_up_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(dir.path(), "");
    let end = 1_795_341_600; // 2026-11-22T10:00:00Z
    seed(&base, 200, 60, end);
    let rss_before = server.rss_kib();

    // The times that aborted the server (`capacity overflow`).
    let r = get_url(
        &base,
        "/api/v1/query_range?query=1&start=-9100000000000000&end=9100000000000000&step=1",
    );
    assert_error(
        "overflowing times",
        &r,
        400,
        "bad_data",
        "outside the supported times",
    );
    let r = get_url(
        &base,
        "/api/v1/query_range?query=1&start=0&end=253402300799&step=1",
    );
    assert_error(
        "too many steps",
        &r,
        400,
        "bad_data",
        "11,000 points per timeseries",
    );
    let r = get_url(&base, "/api/v1/query?query=1&time=1e300");
    assert_error(
        "time 1e300",
        &r,
        400,
        "bad_data",
        "outside the supported times",
    );
    let r = get_url(&base, &format!("/api/v1/series?match[]={CPU}&start=-1e17"));
    assert_error(
        "series start -1e17",
        &r,
        400,
        "bad_data",
        "outside the supported times",
    );
    let r = get_url(&base, "/api/v1/points?start=-9100000000000000");
    eprintln!("REST points start -9.1e15: {} in {:?}", r.0, r.2);
    assert_eq!(r.0, 400, "{}", r.1);
    let r = get_url(&base, "/api/v1/resources/host%2F%2F%2Fh1?period=1000000y");
    eprintln!("REST resource period 1000000y: {} in {:?}", r.0, r.2);
    assert!(r.0 == 400 || r.0 == 404, "{}", r.1);

    // Stack: a 4,000-term sum and `abs(` nested 2,000 deep, refused before parsing.
    let sum = vec!["1"; 4000].join("+");
    let r = post_form(&base, "/api/v1/query", &[("query", &sum)]);
    assert_error("1+1+...+1 (4,000 terms)", &r, 400, "bad_data", "max_nodes");
    let nested = format!("{}1{}", "abs(".repeat(2000), ")".repeat(2000));
    let r = post_form(&base, "/api/v1/query", &[("query", &nested)]);
    assert_error("abs( nested 2,000 deep", &r, 400, "bad_data", "max_depth");
    let r = post_form(
        &base,
        "/api/v1/query_range",
        &[
            ("query", &nested),
            ("start", "0"),
            ("end", "60"),
            ("step", "1"),
        ],
    );
    assert_error("abs( nested, range", &r, 400, "bad_data", "max_depth");
    // Deep but admitted: answered.
    let deep = format!("{}{CPU}{}", "abs(".repeat(100), ")".repeat(100));
    let r = post_form(
        &base,
        "/api/v1/query",
        &[("query", &deep), ("time", &end.to_string())],
    );
    eprintln!("abs( nested 100 deep: {} in {:?}", r.0, r.2);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["data"]["result"].as_array().unwrap().len(), 200);

    // Memory: a subquery of 30 days at 1 ms, refused before any allocation.
    let r = post_form(
        &base,
        "/api/v1/query",
        &[("query", &format!("count_over_time({CPU}[30d:1ms])"))],
    );
    assert_error(
        "count_over_time(m[30d:1ms])",
        &r,
        422,
        "execution",
        "max_samples",
    );
    let r = post_form(
        &base,
        "/api/v1/query",
        &[("query", "count_over_time(vector(1)[10000y:1ms])")],
    );
    assert_error("vector(1)[10000y:1ms]", &r, 422, "execution", "max_samples");

    // format_query on the 4,000-term query (once quadratic: 31.6 MB after 28 s).
    let r = post_form(&base, "/api/v1/format_query", &[("query", &sum)]);
    assert_error(
        "format_query, 4,000 terms",
        &r,
        400,
        "bad_data",
        "max_nodes",
    );
    let r = post_form(&base, "/api/v1/query_exemplars", &[("query", &nested)]);
    assert_error("query_exemplars, nested", &r, 400, "bad_data", "max_depth");

    // Regexes: a 1.2 MB matcher (once 14 s of CPU), a 40 KB one, and a short one that
    // compiles huge.
    // (Letters, which the form encoding keeps as they are: the body stays 1.2 MB.)
    let huge = format!("{CPU}{{resource_id=~\"{}\"}}", "h".repeat(1_200_000));
    let r = post_form(&base, "/api/v1/query", &[("query", &huge)]);
    assert_error("1.2 MB regex", &r, 400, "bad_data", "max_query_bytes");
    // A form body over the 2 MiB limit: Prometheus' error shape with 413, not plain text.
    let too_big = format!("{CPU}{{resource_id=~\"{}\"}}", "h".repeat(3_000_000));
    let r = post_form(&base, "/api/v1/query", &[("query", &too_big)]);
    assert_error("3 MB form body", &r, 413, "bad_data", "at most 2 MiB");
    let long = format!("{CPU}{{resource_id=~\"{}\"}}", "h|".repeat(20_000));
    let r = post_form(&base, "/api/v1/query", &[("query", &long)]);
    assert_error("40 KB regex", &r, 400, "bad_data", "max_regex_bytes");
    let r = post_form(&base, "/api/v1/series", &[("match[]", &long)]);
    assert_error(
        "40 KB regex in match[]",
        &r,
        400,
        "bad_data",
        "max_regex_bytes",
    );
    let big = format!(r#"{CPU}{{resource_id=~"(\\pL{{100}}){{100}}"}}"#);
    let r = post_form(&base, "/api/v1/query", &[("query", &big)]);
    assert_error(
        "regex compiling huge",
        &r,
        400,
        "bad_data",
        "compiles to more than",
    );
    let r = post_form(
        &base,
        "/api/v1/query",
        &[(
            "query",
            &format!(r#"label_replace({CPU}, "a", "$1", "resource_id", "(\\pL{{100}}){{100}}")"#),
        )],
    );
    assert_error("label_replace regex", &r, 422, "execution", "label_replace");

    // A real query still works, and the timeout applies inside evaluation.
    let r = get_url(
        &base,
        &format!("/api/v1/query?query=count({CPU})&time={end}"),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["data"]["result"][0]["value"][1], "200");
    let heavy = format!("sum(count_over_time({CPU}[1h:1s]))");
    let r = post_form(
        &base,
        "/api/v1/query_range",
        &[
            ("query", &heavy),
            ("start", &(end - 11_000 * 60).to_string()),
            ("end", &end.to_string()),
            ("step", "60"),
            ("timeout", "1ms"),
        ],
    );
    assert_error("heavy query, timeout=1ms", &r, 503, "timeout", "timed out");

    server.assert_running();
    assert_eq!(health(&base), 200, "/health after the hostile queries");
    let rss_after = server.rss_kib();
    eprintln!(
        "server VmRSS: {rss_before} KiB after seeding, {rss_after} KiB after the hostile queries"
    );
    assert!(
        rss_after < 512 * 1024,
        "VmRSS {rss_after} KiB is over the 512 MiB bound"
    );
}

#[test]
fn broad_queries_stop_at_the_configured_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(
        dir.path(),
        "[server.query]\nmax_series = 50\nmax_samples = 2000\ntimeout = \"10s\"\n",
    );
    let end = 1_795_341_600;
    seed(&base, 200, 60, end);

    let r = get_url(&base, &format!("/api/v1/query?query={CPU}&time={end}"));
    assert_error(
        "200 series, max_series 50",
        &r,
        422,
        "execution",
        "more than 50 series",
    );
    assert!(
        r.1["error"]
            .as_str()
            .unwrap()
            .contains("`max_series` in `[server.query]`"),
        "{}",
        r.1
    );
    let r = get_url(
        &base,
        &format!("/api/v1/query?query={{__name__=~\".%2B\"}}&time={end}"),
    );
    assert_error("every series", &r, 422, "execution", "max_series");
    // 50 series (h0-h49) × 60 samples = 3,000 raw samples > 2,000.
    let few = format!("{CPU}{{resource_id=~\"h[1-4]?[0-9]|h0\"}}");
    let q = format!("count_over_time({few}[2h])");
    let r = post_form(
        &base,
        "/api/v1/query",
        &[("query", &q), ("time", &end.to_string())],
    );
    assert_error(
        "3,000 samples, max_samples 2000",
        &r,
        422,
        "execution",
        "more than 2000",
    );
    assert!(
        r.1["error"]
            .as_str()
            .unwrap()
            .contains("`max_samples` in `[server.query]`"),
        "{}",
        r.1
    );
    // Within the limits: answered.
    let q = format!("count_over_time({CPU}{{resource_id=~\"h[0-9]\"}}[2h])");
    let r = post_form(
        &base,
        "/api/v1/query",
        &[("query", &q), ("time", &end.to_string())],
    );
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["data"]["result"].as_array().unwrap().len(), 10);
    // Points produced count too: 10 series × 1,001 steps.
    let r = post_form(
        &base,
        "/api/v1/query_range",
        &[
            ("query", &format!("{CPU}{{resource_id=~\"h[0-9]\"}}")),
            ("start", &(end - 1000).to_string()),
            ("end", &end.to_string()),
            ("step", "1"),
        ],
    );
    assert_error(
        "10,010 points, max_samples 2000",
        &r,
        422,
        "execution",
        "max_samples",
    );

    // REST points: a page reads at most 2,000 raw points, so 200 series × 60 points come
    // in pages of at most 33 series, each point once over the pages.
    let mut cursor = String::new();
    let (mut pages, mut series, mut points) = (0, 0, 0);
    loop {
        let r = get_url(
            &base,
            &format!(
                "/api/v1/points?metric=cpu.utilization&start={}&end={}&limit=1000{cursor}",
                end - 7200,
                end + 1
            ),
        );
        assert_eq!(r.0, 200, "{}", r.1);
        let page: usize = r.1["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["points"].as_array().unwrap().len())
            .sum();
        assert!(page <= 2000, "a page of {page} points");
        pages += 1;
        series += r.1["series"].as_array().unwrap().len();
        points += page;
        match r.1["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((series, points), (200, 200 * 60));
    assert!(pages >= 6, "{pages} pages");

    server.assert_running();
    assert_eq!(health(&base), 200);
}

#[test]
fn bad_query_limits_in_the_config_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("server.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\nno_auth = true\n[server.query]\nmax_samples = 0\n",
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["server", "-c", "server.toml"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("`query.max_samples` must be greater than zero"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("server.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\n[server.query]\nmax_sample = 5\n",
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["server", "-c", "server.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("server.toml:4:1: unknown field `max_sample`"),
        "{}",
        stderr(&out)
    );
}

/// The `skymeter_queries_canceled_total` counter of the server's `/metrics`.
fn canceled_queries(base: &str) -> u64 {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("skymeter_queries_canceled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no skymeter_queries_canceled_total in /metrics:\n{text}"))
}

/// A client that gives up on a long query stops it: the query ends `canceled` at its next
/// deadline check instead of running to its timeout for nobody.
#[test]
fn a_query_whose_client_disconnects_is_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(dir.path(), "[server.query]\ntimeout = \"2m\"\n");
    let end = 1_795_341_600;
    seed(&base, 100, 60, end);
    assert_eq!(canceled_queries(&base), 0);
    // 600 outer steps × 100 series, each a 0.9-quantile over a 600-sample window of the
    // inner subquery: 60,000 sorts of 600 values, seconds of work in a debug build.
    let q = format!("max_over_time(quantile_over_time(0.9, {CPU}[10m:1s])[10m:1s])");
    let started = Instant::now();
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", q.as_str()), ("time", &end.to_string())])
        .send();
    if let Ok(r) = r {
        panic!(
            "the query answered within 300 ms ({}: {}): make it heavier",
            r.status(),
            r.text().unwrap_or_default()
        );
    }
    let canceled = eventually(Duration::from_secs(20), || {
        (canceled_queries(&base) == 1).then_some(())
    });
    assert!(
        canceled.is_some(),
        "the query was not canceled within 20 s of its client leaving"
    );
    eprintln!("canceled {:?} after the request", started.elapsed());
    server.assert_running();
    assert_eq!(health(&base), 200);
}
