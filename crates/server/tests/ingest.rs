//! Ingest, auth, agents and operations endpoints, through real HTTP.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skymeter_model::Stat;
use skymeter_server::{Auth, ServerConfig};
use skymeter_store::{Scope, Store};
use std::io::Write;
use support::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(ct, "application/json", "{body}");
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{body}"
    );
    (status, body["error"].clone())
}

#[tokio::test]
async fn batches_are_stored_plain_gzip_and_zstd_and_deduplicated() {
    let s = TestServer::start(ServerConfig::default()).await;
    let token = s.token(&[Scope::Ingest]);
    let url = format!("{}/api/v1/ingest", s.url);
    let post = |body: Vec<u8>, enc: Option<&'static str>| {
        let mut r = s
            .client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body);
        if let Some(e) = enc {
            r = r.header("content-encoding", e);
        }
        r.send()
    };

    let b1 = batch(10);
    let resp = post(serde_json::to_vec(&b1).unwrap(), None).await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(
        r,
        json!({"batch_id": b1.batch_id, "duplicate": false, "resources": 0, "points": 10, "costs": 0, "errors": 0})
    );

    let b2 = batch(20);
    let resp = post(gzip(&serde_json::to_vec(&b2).unwrap()), Some("gzip"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut b3 = batch(5);
    b3.points
        .iter_mut()
        .for_each(|p| p.metric = "memory.usage".into());
    let z = zstd::encode_all(&serde_json::to_vec(&b3).unwrap()[..], 3).unwrap();
    let resp = post(z.clone(), Some("zstd")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.stats().batches, 3);
    let points_before = s.stats().points;

    // A retried batch is acknowledged and not stored again.
    let resp = post(z, Some("zstd")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["duplicate"], true);
    assert_eq!(r["points"], 5);
    assert_eq!(s.stats().batches, 3);
    assert_eq!(s.stats().points, points_before);

    // Without a content type (plain `curl --data-binary`, or a web page's "simple" request)
    // it is refused: a JSON body must say so.
    let resp = s
        .client
        .post(&url)
        .bearer_auth(&token)
        .body(serde_json::to_vec(&batch(1)).unwrap())
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 415, "{err}");
    assert_eq!(err["code"], "unsupported_media_type", "{err}");
    assert_eq!(s.stats().batches, 3);

    // The server's own metrics count what happened.
    let read = s.token(&[Scope::Read]);
    let text = s.get("/metrics", Some(&read)).await.text().await.unwrap();
    assert!(
        text.contains("skymeter_ingest_batches_total{result=\"stored\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("skymeter_ingest_batches_total{result=\"duplicate\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("skymeter_ingest_batches_total{result=\"rejected\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("skymeter_ingest_points_total 35\n"), "{text}");
    assert!(
        text.contains("skymeter_http_requests_total{method=\"POST\",route=\"/api/v1/ingest\",status=\"200\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("skymeter_http_requests_total{method=\"POST\",route=\"/api/v1/ingest\",status=\"415\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("skymeter_ingest_duration_seconds_count 5\n"),
        "{text}"
    );
    assert!(text.contains("skymeter_store_points 35\n"), "{text}");
    assert!(text.contains("skymeter_store_up 1\n"), "{text}");
}

/// One rejected request: what is sent and what must come back.
struct Reject {
    name: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
    /// Substrings of the message.
    says: Vec<&'static str>,
    /// Paths listed in `fields`.
    fields: Vec<&'static str>,
}

#[tokio::test]
async fn every_rejected_request_leaves_the_store_unchanged() {
    let config = ServerConfig {
        max_body_bytes: 256 << 10,
        max_compressed_body_bytes: 64 << 10,
        ..Default::default()
    };
    let s = TestServer::start(config).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);
    let auth = |t: &str| ("authorization", format!("Bearer {t}"));
    let good = serde_json::to_value(batch(20)).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let mut bomb = Vec::new();
    {
        let mut e = flate2::write::GzEncoder::new(&mut bomb, flate2::Compression::best());
        let mut prefix = serde_json::to_vec(&good).unwrap();
        prefix.pop(); // the closing brace: the bomb is whitespace inside the object
        e.write_all(&prefix).unwrap();
        for _ in 0..64 {
            e.write_all(&[b' '; 64 << 10]).unwrap();
        }
        e.write_all(b"}").unwrap();
        e.finish().unwrap();
    }
    assert!(
        bomb.len() < 64 << 10,
        "the bomb itself is within the compressed limit"
    );

    let cases = vec![
        Reject {
            name: "malformed JSON",
            body: br#"{"schema": 1, "batch_id": }"#.to_vec(),
            headers: vec![auth(&ingest)],
            status: 400,
            code: "invalid_json",
            says: vec!["line 1, column 27"],
            fields: vec![],
        },
        Reject {
            name: "wrong type",
            body: with(&|v| v["points"][17]["ts"] = json!(12)),
            headers: vec![auth(&ingest)],
            status: 400,
            code: "invalid_batch",
            says: vec!["points[17].ts", "invalid type"],
            fields: vec!["points[17].ts"],
        },
        Reject {
            name: "missing field",
            body: with(&|v| {
                v["points"][3].as_object_mut().unwrap().remove("metric");
            }),
            headers: vec![auth(&ingest)],
            status: 400,
            code: "invalid_batch",
            says: vec!["points[3].metric", "missing field"],
            fields: vec!["points[3].metric"],
        },
        Reject {
            name: "unknown field",
            body: with(&|v| v["points"][0]["colour"] = json!("red")),
            headers: vec![auth(&ingest)],
            status: 400,
            code: "invalid_batch",
            says: vec!["points[0].colour", "unknown field"],
            fields: vec!["points[0].colour"],
        },
        Reject {
            name: "invalid values",
            body: with(&|v| {
                v["points"][19]["metric"] = json!("bad name");
                v["task"] = json!("");
            }),
            headers: vec![auth(&ingest)],
            status: 400,
            code: "invalid_batch",
            says: vec!["nothing was stored", "points[19].metric"],
            fields: vec!["task", "points[19].metric"],
        },
        Reject {
            name: "oversized body",
            body: {
                let mut b = batch(2000);
                b.task = "x".repeat(300 << 10);
                serde_json::to_vec(&b).unwrap()
            },
            headers: vec![auth(&ingest)],
            status: 413,
            code: "too_large",
            says: vec!["262144 bytes"],
            fields: vec![],
        },
        Reject {
            name: "zip bomb",
            body: bomb.clone(),
            headers: vec![auth(&ingest), ("content-encoding", "gzip".into())],
            status: 413,
            code: "too_large",
            says: vec!["decompresses to more than"],
            fields: vec![],
        },
        Reject {
            name: "corrupt gzip",
            body: b"not gzip at all".to_vec(),
            headers: vec![auth(&ingest), ("content-encoding", "gzip".into())],
            status: 400,
            code: "bad_request",
            says: vec!["not valid gzip"],
            fields: vec![],
        },
        Reject {
            name: "unsupported encoding",
            body: serde_json::to_vec(&good).unwrap(),
            headers: vec![auth(&ingest), ("content-encoding", "br".into())],
            status: 415,
            code: "unsupported_encoding",
            says: vec!["`br`", "gzip, zstd or identity"],
            fields: vec![],
        },
        Reject {
            name: "form content type",
            body: serde_json::to_vec(&good).unwrap(),
            headers: vec![
                auth(&ingest),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            status: 415,
            code: "unsupported_media_type",
            says: vec!["application/json"],
            fields: vec![],
        },
        Reject {
            name: "missing token",
            body: serde_json::to_vec(&good).unwrap(),
            headers: vec![],
            status: 401,
            code: "unauthorized",
            says: vec!["Authorization: Bearer"],
            fields: vec![],
        },
        Reject {
            name: "invalid token",
            body: serde_json::to_vec(&good).unwrap(),
            headers: vec![auth("skm_not_a_token")],
            status: 401,
            code: "unauthorized",
            says: vec!["not valid"],
            fields: vec![],
        },
        Reject {
            name: "not a bearer scheme",
            body: serde_json::to_vec(&good).unwrap(),
            headers: vec![("authorization", format!("Basic {ingest}"))],
            status: 401,
            code: "unauthorized",
            says: vec!["Bearer <token>"],
            fields: vec![],
        },
        Reject {
            name: "wrong scope",
            body: serde_json::to_vec(&good).unwrap(),
            headers: vec![auth(&read)],
            status: 403,
            code: "forbidden",
            says: vec!["`ingest`", "has: read"],
            fields: vec![],
        },
    ];
    for case in cases {
        let mut req = s
            .client
            .post(format!("{}/api/v1/ingest", s.url))
            .body(case.body);
        if !case.headers.iter().any(|(k, _)| *k == "content-type") {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in &case.headers {
            req = req.header(*k, v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let www = resp.headers().get("www-authenticate").cloned();
        let (status, err) = error_of(resp).await;
        assert_eq!(status.as_u16(), case.status, "{}: {err}", case.name);
        assert_eq!(err["code"], case.code, "{}: {err}", case.name);
        let msg = err["message"].as_str().unwrap();
        for s in &case.says {
            assert!(msg.contains(s), "{}: `{s}` not in {msg}", case.name);
        }
        let paths: Vec<&str> = err["fields"]
            .as_array()
            .map(|a| a.iter().map(|f| f["path"].as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(paths, case.fields, "{}: {err}", case.name);
        if case.status == 401 {
            assert!(
                www.unwrap().to_str().unwrap().starts_with("Bearer"),
                "{}",
                case.name
            );
        }
        let st = s.stats();
        assert_eq!(
            (st.batches, st.points, st.resources, st.costs),
            (0, 0, 0, 0),
            "{}",
            case.name
        );
        // Secrets never come back in answers.
        assert!(
            !msg.contains(&ingest) && !msg.contains(&read),
            "{}",
            case.name
        );
    }
    let text = s.get("/metrics", Some(&read)).await.text().await.unwrap();
    // Auth failures are stopped before the handler; the 10 others reached it.
    assert!(
        text.contains("skymeter_ingest_batches_total{result=\"rejected\"} 10\n"),
        "{text}"
    );
}

#[tokio::test]
async fn invalid_batch_lists_at_most_100_fields() {
    let s = TestServer::start(ServerConfig::default()).await;
    let token = s.token(&[Scope::Admin]);
    let mut b = batch(150);
    b.points
        .iter_mut()
        .for_each(|p| p.metric = "no spaces allowed".into());
    let resp = s
        .client
        .post(format!("{}/api/v1/ingest", s.url))
        .bearer_auth(&token)
        .json(&b)
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(err["fields"].as_array().unwrap().len(), 100);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("150 invalid fields"),
        "{err}"
    );
    assert_eq!(s.stats().points, 0);
}

#[tokio::test]
async fn admin_implies_every_scope_and_disabled_auth_opens_everything() {
    let s = TestServer::start(ServerConfig::default()).await;
    let admin = s.token(&[Scope::Admin]);
    let ingest = s.token(&[Scope::Ingest]);
    for (method, path) in [
        ("POST", "/api/v1/ingest"),
        ("GET", "/api/v1/resources"),
        ("GET", "/metrics"),
    ] {
        let req = if method == "POST" {
            s.client.post(format!("{}{path}", s.url)).json(&batch(1))
        } else {
            s.client.get(format!("{}{path}", s.url))
        };
        let resp = req.bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
    }
    let resp = s.get("/api/v1/resources", Some(&ingest)).await;
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 403);
    assert!(err["message"].as_str().unwrap().contains("`read`"), "{err}");
    // Revoked tokens stop working at once.
    let id = s
        .store
        .tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.scopes == [Scope::Admin])
        .unwrap()
        .id;
    assert!(s.store.revoke_token(&id).unwrap());
    let resp = s.get("/metrics", Some(&admin)).await;
    assert_eq!(resp.status(), 401);

    let open = TestServer::start(ServerConfig {
        auth: Auth::Disabled,
        ..Default::default()
    })
    .await;
    let resp = open
        .client
        .post(format!("{}/api/v1/ingest", open.url))
        .json(&batch(3))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = open.get("/api/v1/series", None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn agents_register_heartbeat_and_list() {
    let s = TestServer::start(ServerConfig::default()).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);
    for i in 0..5 {
        let reg = json!({"id": format!("agent-{i}"), "hostname": "h", "version": "0.1.0",
                         "tasks": [{"name": "host", "interval_s": 10}], "heartbeat_interval_s": 30});
        let resp = s
            .client
            .post(format!("{}/api/v1/agents/register", s.url))
            .bearer_auth(&ingest)
            .json(&reg)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"id": format!("agent-{i}")})
        );
    }
    // A bad registration names its fields.
    let resp = s
        .client
        .post(format!("{}/api/v1/agents/register", s.url))
        .bearer_auth(&ingest)
        .json(&json!({"id": "", "hostname": "h", "version": "1", "heartbeat_interval_s": 0}))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400);
    let paths: Vec<&str> = err["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["id", "heartbeat_interval_s"]);
    let resp = s
        .client
        .post(format!("{}/api/v1/agents/register", s.url))
        .bearer_auth(&ingest)
        .json(&json!({"id": "x", "hostname": "h", "version": "1"}))
        .send()
        .await
        .unwrap();
    let (_, err) = error_of(resp).await;
    assert_eq!(err["fields"][0]["path"], "heartbeat_interval_s", "{err}");

    let hb = |id: &str, body: Option<Value>| {
        let mut r = s
            .client
            .post(format!("{}/api/v1/agents/{id}/heartbeat", s.url))
            .bearer_auth(&ingest);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let resp = hb("agent-2", Some(json!({"buffered_batches": 4})))
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, err) = error_of(hb("agent-3", None).await.unwrap()).await;
    assert_eq!(
        status, 415,
        "a heartbeat without a JSON content type: {err}"
    );
    let resp = s
        .client
        .post(format!("{}/api/v1/agents/agent-3/heartbeat", s.url))
        .bearer_auth(&ingest)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400, "an empty heartbeat body is refused: {err}");
    assert!(
        err["message"].as_str().unwrap().contains("body is empty"),
        "{err}"
    );
    // A JSON array is not the object the document describes (serde alone would read
    // `[0]` as the struct's first field; schemathesis found it).
    let (status, err) = error_of(hb("agent-2", Some(json!([0]))).await.unwrap()).await;
    assert_eq!(status, 400, "an array heartbeat body is refused: {err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("must be a JSON object"),
        "{err}"
    );
    let (status, err) = error_of(hb("ghost", Some(json!({}))).await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(err["code"], "not_found");
    assert!(
        err["message"].as_str().unwrap().contains("register again"),
        "{err}"
    );

    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = s
            .client
            .get(format!("{}/api/v1/agents?limit=2", s.url))
            .bearer_auth(&read);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for a in page["items"].as_array().unwrap() {
            ids.push(a["id"].as_str().unwrap().to_string());
            assert_eq!(a["status"], "healthy");
            if a["id"] == "agent-2" {
                assert_eq!(a["last_heartbeat_stats"]["buffered_batches"], 4);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(ids, ["agent-0", "agent-1", "agent-2", "agent-3", "agent-4"]);
}

#[tokio::test]
async fn health_reports_storage_failures_with_503() {
    let s = TestServer::start(ServerConfig::default()).await;
    let resp = s.get("/health", None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["storage"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    s.store
        .broken
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let resp = s.get("/health", None).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    // /health needs no token: it says the storage failed, the details stay in the log.
    let storage = body["storage"].as_str().unwrap();
    assert!(
        storage.contains("storage failed") && storage.contains("log"),
        "{body}"
    );
    assert!(!storage.contains("disk full"), "{body}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = TestServer::start(ServerConfig::default()).await;
    let (status, err) = error_of(
        s.client
            .get(format!("{}/api/v1/nope", s.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("/api/openapi.json"),
        "{err}"
    );
    let (status, err) = error_of(
        s.client
            .get(format!("{}/api/v1/ingest", s.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert!(
        err["message"].as_str().unwrap().contains("use POST"),
        "{err}"
    );
}

#[tokio::test]
async fn store_points_round_trip_through_the_points_endpoint() {
    // Sanity of the test store itself, through the API.
    let s = TestServer::start(ServerConfig {
        auth: Auth::Disabled,
        ..Default::default()
    })
    .await;
    let mut b = batch(0);
    let r = host("h9");
    let now = chrono::Utc::now();
    b.points
        .push(point("cpu.utilization", Stat::Max, now, 5.0, &r));
    s.store.ingest(&b).unwrap();
    let v: Value = s
        .get("/api/v1/points?metric=cpu.*&stat=max", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["series"][0]["points"][0][1], 5.0, "{v}");
}

/// What an outside tester sent (issue 12) and what each must now answer: 400 naming the
/// field and the limit, the batch refused whole, and an answer that does not echo the
/// oversized value back.
#[tokio::test]
async fn input_past_the_record_limits_is_refused_whole_naming_field_and_limit() {
    let s = TestServer::start(ServerConfig::default()).await;
    let token = s.token(&[Scope::Ingest]);
    let good = serde_json::to_value(batch(3)).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let many_labels: serde_json::Map<String, Value> = (0..100_000)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "10 MB label value",
            with(&|v| v["points"][0]["labels"] = json!({"big": "x".repeat(10 << 20)})),
            "points[0].labels[\"big\"]",
            "limit of 4096 characters",
        ),
        (
            "100,000 labels on one point",
            with(&|v| v["points"][1]["labels"] = Value::Object(many_labels.clone())),
            "points[1].labels",
            "has 100000 entries; the limit is 64",
        ),
        (
            "64 KB resource id",
            with(&|v| v["points"][2]["resource"]["id"] = json!("i".repeat(64 << 10))),
            "points[2].resource.id",
            "limit of 1024 characters",
        ),
        (
            "64 KB resource name",
            with(&|v| {
                v["resources"] = json!([{"provider": "host", "kind": "host", "id": "h1",
                    "name": "n".repeat(64 << 10), "observed_at": "2026-11-22T10:00:00Z"}])
            }),
            "resources[0].name",
            "limit of 1024 characters",
        ),
        (
            "NUL in a label value",
            with(&|v| v["points"][0]["labels"] = json!({"device": "sda\u{0}"})),
            "points[0].labels[\"device\"]",
            "control character",
        ),
        (
            "NUL in a resource id",
            with(&|v| v["points"][0]["resource"]["id"] = json!("h\u{0}1")),
            "points[0].resource.id",
            "control character",
        ),
        (
            "NUL in a tag key",
            with(&|v| {
                v["resources"] = json!([{"provider": "host", "kind": "host", "id": "h1",
                    "tags": {"a\u{0}b": "1"}, "observed_at": "2026-11-22T10:00:00Z"}])
            }),
            "resources[0].tags",
            "key `a\\0b` contains a control character",
        ),
        (
            "empty label key",
            with(&|v| v["points"][0]["labels"] = json!({"": "x"})),
            "points[0].labels",
            "empty key",
        ),
        (
            "metric name with a space",
            with(&|v| v["points"][0]["metric"] = json!("cpu utilization")),
            "points[0].metric",
            "1-256 of letters",
        ),
        (
            "nil batch_id",
            with(&|v| v["batch_id"] = json!("00000000-0000-0000-0000-000000000000")),
            "batch_id",
            "nil UUID",
        ),
    ];
    for (name, body, path, says) in cases {
        for fast_path_defeated in [false, true] {
            // Pretty-printed JSON with an escape in it goes through serde_json instead of
            // the fast path: both must refuse alike.
            let body = if fast_path_defeated {
                let mut v: Value = serde_json::from_slice(&body).unwrap();
                v["agent_id"] = json!("agent\u{e9}\"quoted\"");
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                body.clone()
            };
            let resp = s
                .client
                .post(format!("{}/api/v1/ingest", s.url))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let len = resp.content_length();
            let (status, err) = error_of(resp).await;
            assert_eq!(status, 400, "{name}: {err}");
            assert_eq!(err["code"], "invalid_batch", "{name}: {err}");
            let fields: Vec<&str> = err["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap())
                .collect();
            assert_eq!(fields, [path], "{name}: {err}");
            let msg = err["message"].as_str().unwrap();
            assert!(msg.contains(says), "{name}: `{says}` not in {msg}");
            assert!(msg.contains("nothing was stored"), "{name}: {msg}");
            assert!(len.is_none_or(|l| l < 4096), "{name}: the answer is short");
        }
    }
    let st = s.stats();
    assert_eq!(
        (st.batches, st.points),
        (0, 0),
        "nothing of any of them was stored"
    );

    // A batch exactly at the limits is stored.
    let at_limits = with(&|v| {
        v["points"][0]["labels"] = Value::Object(
            (0..64)
                .map(|i| (format!("{i:0>256}"), json!("ß".repeat(4096))))
                .collect(),
        );
        v["points"][0]["resource"]["id"] = json!("é".repeat(1024));
    });
    let resp = s
        .client
        .post(format!("{}/api/v1/ingest", s.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(at_limits)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// The same batch sent again stays a quiet duplicate, however it was serialized; the same
/// batch_id with other content is answered 409 and stored nowhere.
#[tokio::test]
async fn a_reused_batch_id_with_other_content_is_a_409_conflict() {
    let s = TestServer::start(ServerConfig::default()).await;
    let token = s.token(&[Scope::Ingest]);
    let post = |body: Vec<u8>, gzipped: bool| {
        let mut r = s
            .client
            .post(format!("{}/api/v1/ingest", s.url))
            .bearer_auth(&token)
            .header("content-type", "application/json");
        if gzipped {
            r = r.header("content-encoding", "gzip").body(gzip(&body));
        } else {
            r = r.body(body);
        }
        r.send()
    };
    let b = batch(10);
    let resp = post(serde_json::to_vec(&b).unwrap(), false).await.unwrap();
    assert_eq!(resp.status(), 200);
    let stored = s.stats();

    // A retry written again by another serializer: pretty, keys reordered, offsets.
    let mut v = serde_json::to_value(&b).unwrap();
    let points = v["points"].take();
    let obj = v.as_object_mut().unwrap();
    obj.remove("points");
    obj.insert("points".into(), points);
    let mut text = serde_json::to_string_pretty(&v).unwrap();
    let ts0 = b.points[0].ts;
    let shifted = (ts0 + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M:%S%.f+02:00");
    text = text.replacen(
        &format!(
            "\"{}\"",
            ts0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
        &format!("\"{shifted}\""),
        1,
    );
    assert!(text.contains("+02:00\""), "the rewrite changed an offset");
    let resp = post(text.into_bytes(), true).await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["duplicate"], true, "{r}");

    let mut other = b.clone();
    other.points[9].value += 1.0;
    let resp = post(serde_json::to_vec(&other).unwrap(), false)
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["code"], "batch_conflict");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains(&b.batch_id.to_string()), "{msg}");
    assert!(msg.contains("nothing was stored"), "{msg}");
    assert_eq!(err["fields"][0]["path"], "batch_id");
    let after = s.stats();
    assert_eq!(
        (after.batches, after.points),
        (stored.batches, stored.points)
    );

    // The original is still a duplicate after the conflict.
    let resp = post(serde_json::to_vec(&b).unwrap(), false).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["duplicate"], true);
}
