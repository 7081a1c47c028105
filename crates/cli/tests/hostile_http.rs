//! The HTTP edge of the real `skymeter` binary against hostile or heavy clients: what a web
//! page may not do to a server without tokens (`skymeter up`), `/health` under 100
//! concurrent probers, bounded label values in `/metrics`, and the in-flight ingest budget
//! (429 + Retry-After) with an agent that waits and loses nothing.
//!
//! Requests whose headers a normal client sets itself (`Host`, odd methods) are written by
//! hand on a TCP socket.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// An answer read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends one request exactly as given (with `Connection: close` and the body's length
/// added) and reads the answer.
fn raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A batch of one point of resource `id` (provider `custom`).
fn batch(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema": 1, "batch_id": uuid::Uuid::now_v7(), "agent_id": "hostile", "task": "t",
        "collected_at": "2026-11-22T10:30:00Z",
        "points": [{"metric": "hostile.probe", "unit": "count", "stat": "last", "period_s": 60,
            "ts": "2026-11-22T10:30:00Z", "value": 1.0,
            "resource": {"provider": "custom", "account": "", "region": "", "id": id}}]
    }))
    .unwrap()
}

/// Ids of the resources of the series stored for `metric`.
fn stored_ids(base: &str) -> Vec<String> {
    let body: serde_json::Value =
        reqwest::blocking::get(format!("{base}/api/v1/series?limit=1000"))
            .unwrap()
            .json()
            .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metric"] == "hostile.probe")
        .map(|s| s["resource"]["id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn up(dir: &std::path::Path) -> (Proc, String, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let p = spawn(&["up", "--listen", &listen, "--data-dir", "data"], dir);
    wait_healthy(&base);
    (p, listen, base)
}

#[test]
fn a_web_page_cannot_write_into_or_read_from_skymeter_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, addr, base) = up(dir.path());
    let host = ("Host", addr.as_str());
    let json = ("Content-Type", "application/json");

    // Bodies a page may send cross-origin without a CORS preflight: no type, text, forms.
    for (i, ct) in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers = vec![host];
        if let Some(ct) = ct {
            headers.push(("Content-Type", ct));
        }
        let id = format!("no-json-{i}");
        let a = raw(&addr, "POST", "/api/v1/ingest", &headers, &batch(&id));
        assert_eq!(a.status, 415, "{ct:?}: {}", a.body);
        assert_eq!(
            a.json()["error"]["code"],
            "unsupported_media_type",
            "{ct:?}"
        );
        assert!(a.body.contains("application/json"), "{}", a.body);
        let a = raw(
            &addr,
            "POST",
            "/api/v1/agents/register",
            &headers,
            br#"{"id":"evil","hostname":"x","version":"1","tasks":[],"heartbeat_interval_s":30}"#,
        );
        assert_eq!(a.status, 415, "register {ct:?}: {}", a.body);
    }

    // A foreign Host (DNS rebinding: evil.example.com resolved to 127.0.0.1) reads nothing.
    for path in [
        "/api/v1/resources",
        "/api/v1/series",
        "/",
        "/api/v1/query?query=up",
    ] {
        let a = raw(&addr, "GET", path, &[("Host", "evil.example.com:80")], b"");
        assert_eq!(a.status, 421, "{path}: {}", a.body);
        let e = a.json();
        assert_eq!(e["error"]["code"], "host_not_allowed");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("allowed_hosts"),
            "{e}"
        );
    }
    let a = raw(
        &addr,
        "POST",
        "/api/v1/ingest",
        &[("Host", "evil.example.com"), json],
        &batch("rebound"),
    );
    assert_eq!(a.status, 421, "{}", a.body);

    // State changes from another origin, or that the browser marks cross-site.
    let a = raw(
        &addr,
        "POST",
        "/api/v1/ingest",
        &[host, json, ("Origin", "http://127.0.0.1:9")],
        &batch("foreign-origin"),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "origin_not_allowed");
    let a = raw(
        &addr,
        "POST",
        "/api/v1/agents/register",
        &[host, json, ("Sec-Fetch-Site", "cross-site")],
        br#"{"id":"evil","hostname":"x","version":"1","tasks":[],"heartbeat_interval_s":30}"#,
    );
    assert_eq!(a.status, 403, "{}", a.body);

    assert!(stored_ids(&base).is_empty(), "{:?}", stored_ids(&base));
    let agents: serde_json::Value = reqwest::blocking::get(format!("{base}/api/v1/agents"))
        .unwrap()
        .json()
        .unwrap();
    assert!(!agents.to_string().contains("evil"), "{agents}");

    // The same requests done right are taken: the checks above can fail.
    let origin = format!("http://{addr}");
    for (i, headers) in [
        vec![host, json],
        vec![host, ("Content-Type", "application/json; charset=utf-8")],
        vec![
            host,
            json,
            ("Origin", &origin),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        vec![
            ("Host", "localhost"),
            ("Content-Type", "application/vnd.x+json"),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let a = raw(
            &addr,
            "POST",
            "/api/v1/ingest",
            &headers,
            &batch(&format!("ok-{i}")),
        );
        assert_eq!(a.status, 200, "{headers:?}: {}", a.body);
    }
    let mut ids = stored_ids(&base);
    ids.sort();
    assert_eq!(ids, ["ok-0", "ok-1", "ok-2", "ok-3"]);
}

#[test]
fn allowed_hosts_come_from_the_flag_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("server.toml"),
        format!(
            "[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\nno_auth = true\n\
             allowed_hosts = [\"grafana-sees-me.example\"]\n"
        ),
    )
    .unwrap();
    let _server = spawn(&["server", "-c", "server.toml"], dir.path());
    wait_healthy(&format!("http://{addr}"));
    let read = |host: &str| raw(&addr, "GET", "/api/v1/resources", &[("Host", host)], b"").status;
    assert_eq!(read("grafana-sees-me.example:3000"), 200);
    assert_eq!(read("other.example"), 421);

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = spawn(
        &[
            "server",
            "--listen",
            &addr,
            "--data-dir",
            "data2",
            "--no-auth",
            "--allowed-host",
            "*",
        ],
        dir.path(),
    );
    wait_healthy(&format!("http://{addr}"));
    let a = raw(
        &addr,
        "GET",
        "/api/v1/resources",
        &[("Host", "anything.example")],
        b"",
    );
    assert_eq!(a.status, 200, "{}", a.body);

    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nallowed_hosts = [\"https://x.example/\"]\nno_auth = true\n",
    )
    .unwrap();
    let out = skymeter_in(
        dir.path(),
        &["server", "-c", "bad.toml", "--data-dir", "d3"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("allowed_hosts") && err.contains("https://x.example/"),
        "{err}"
    );
}

/// 100 probers, 50 probes each, while batches are ingested: every probe answers 200.
#[test]
fn health_is_right_under_100_concurrent_probers() {
    const PROBERS: usize = 100;
    const PROBES: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let (_up, addr, base) = up(dir.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ingester = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = raw(
                    &addr,
                    "POST",
                    "/api/v1/ingest",
                    &[("Host", &addr), ("Content-Type", "application/json")],
                    &batch(&format!("load-{n}")),
                );
                assert_eq!(a.status, 200, "{}", a.body);
                n += 1;
            }
            n
        })
    };
    let probers: Vec<_> = (0..PROBERS)
        .map(|_| {
            let url = format!("{base}/health");
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut bad = Vec::new();
                for _ in 0..PROBES {
                    match client.get(&url).send() {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => {
                            bad.push(format!("{}: {}", r.status(), r.text().unwrap_or_default()))
                        }
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                bad
            })
        })
        .collect();
    let bad: Vec<String> = probers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ingested = ingester.join().unwrap();
    assert!(
        bad.is_empty(),
        "{} of {} probes failed, e.g. {:?}",
        bad.len(),
        PROBERS * PROBES,
        &bad[..bad.len().min(3)]
    );
    assert!(ingested > 0);
    eprintln!(
        "hostile_http: {} /health probes from {PROBERS} probers, all 200, beside {ingested} batches",
        PROBERS * PROBES
    );
}

#[test]
fn metrics_labels_stay_bounded_whatever_clients_send() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, addr, base) = up(dir.path());
    for i in 0..200 {
        let method = format!("X-EVIL-{i}");
        let path = format!("/no/such/path/{i}");
        let a = raw(&addr, &method, &path, &[("Host", &addr)], b"");
        assert!(a.status >= 400, "{method} {path}: {}", a.status);
        let a = raw(&addr, &method, "/api/v1/ingest", &[("Host", &addr)], b"");
        assert_eq!(a.status, 405, "{method}");
    }
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !text.contains("X-EVIL") && !text.contains("/no/such"),
        "{text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("skymeter_http_requests_total{"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#"method="other",route="unmatched""#)),
        "{lines:#?}"
    );
    for l in &lines {
        let method = l
            .split("method=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
                "other"
            ]
            .contains(&method),
            "{l}"
        );
    }
    assert!(lines.len() < 30, "{lines:#?}");
    assert!(text.contains("skymeter_http_panics_total 0"), "{text}");
}

/// An upload that stalls holds most of the ingest budget: other ingests get 429 with
/// Retry-After; an agent meanwhile keeps its batches, and once the budget is free again the
/// server holds exactly what the agent produced.
#[test]
fn the_ingest_budget_answers_429_and_the_agent_waits_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    // 40 MiB: exactly one compressed request's worst case (32 MiB decoded + 8 MiB sent).
    let budget = (40u64 << 20).to_string();
    let _server = spawn(
        &[
            "server",
            "--listen",
            &addr,
            "--data-dir",
            "server-data",
            "--no-auth",
            "--ingest-budget",
            &budget,
        ],
        dir.path(),
    );
    wait_healthy(&base);

    // Announce a 32 MiB body and send a little of it: 32 MiB of the budget stay reserved.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    write!(
        stalled,
        "POST /api/v1/ingest HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{{\"schema\": 1,",
        32 << 20
    )
    .unwrap();
    stalled.flush().unwrap();
    let held = eventually(Duration::from_secs(10), || {
        let text = reqwest::blocking::get(format!("{base}/metrics"))
            .ok()?
            .text()
            .ok()?;
        text.contains(&format!("skymeter_ingest_in_flight_bytes {}", 32 << 20))
            .then_some(())
    });
    assert!(
        held.is_some(),
        "the stalled upload holds 32 MiB of the budget"
    );

    // A gzip request may decode to 32 MiB: it does not fit in the 8 MiB left.
    let a = raw(
        &addr,
        "POST",
        "/api/v1/ingest",
        &[
            ("Host", &addr),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        b"not even gzip",
    );
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("1"), "{}", a.head);
    let e = a.json();
    assert_eq!(e["error"]["code"], "overloaded");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ingest_budget_bytes"),
        "{e}"
    );

    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            r#"
[agent]
id = "budget-test"
data_dir = "agent-data"

[[task]]
name = "load"
schedule = {{ every = "200ms" }}
collect = [{{ plugin = "host", warmup = "50ms" }}]
process = [{{ plugin = "filter", include = ["load.*", "memory.*"] }}]
publish = [{{ plugin = "server", url = "{base}", heartbeat_interval = "1s", timeout = "5s" }}, {{ plugin = "file", path = "produced.jsonl" }}]
"#
        ),
    )
    .unwrap();
    let agent = spawn(&["run", "-c", "agent.toml"], dir.path());
    // The agent's batches are refused while the upload stalls.
    let refused = eventually(Duration::from_secs(20), || {
        let text = reqwest::blocking::get(format!("{base}/metrics"))
            .ok()?
            .text()
            .ok()?;
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("skymeter_ingest_budget_refusals_total "))?
            .parse()
            .ok()?;
        (n >= 4).then_some(n)
    });
    assert!(refused.is_some(), "the agent's batches met the full budget");
    assert!(
        stored_points(&base).unwrap_or(0) == 0,
        "nothing got in meanwhile"
    );
    drop(stalled);
    std::thread::sleep(Duration::from_secs(3));
    let mut agent = agent;
    Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap();
    let exited = eventually(Duration::from_secs(30), || agent.0.try_wait().unwrap());
    assert!(
        exited.is_some_and(|s| s.success()),
        "the agent flushes its buffer and exits 0"
    );
    let produced = json_lines(&std::fs::read_to_string(dir.path().join("produced.jsonl")).unwrap());
    let produced_points = points(&produced).len();
    assert!(produced_points > 20, "{produced_points}");
    let stored = eventually(Duration::from_secs(20), || {
        stored_points(&base).filter(|n| *n == produced_points as u64)
    });
    assert_eq!(
        stored,
        Some(produced_points as u64),
        "every point the agent produced is stored, once"
    );
}

/// Points stored of the agent's own series (not the server's `skymeter` agent series).
fn stored_points(base: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut cursor = String::new();
    loop {
        let r = reqwest::blocking::get(format!("{base}/api/v1/series?limit=1000{cursor}")).ok()?;
        if r.status() != 200 {
            return None;
        }
        let body: serde_json::Value = r.json().ok()?;
        total += body["items"]
            .as_array()?
            .iter()
            .filter(|s| s["resource"]["provider"] != "skymeter")
            .map(|s| s["points"].as_u64().unwrap_or(0))
            .sum::<u64>();
        match body["next_cursor"].as_str() {
            Some(c) => {
                let enc: String = c
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                cursor = format!("&cursor={enc}");
            }
            None => break,
        }
    }
    Some(total)
}
