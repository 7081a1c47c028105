//! Running the server: TLS, refusing unsafe configs, header limits, timeouts, CORS,
//! graceful shutdown and retention.

mod support;

use chrono::{Duration as CDuration, Utc};
use serde_json::Value;
use skymeter_model::Stat;
use skymeter_server::{Auth, Server, ServerConfig, ServerError, TlsFiles};
use skymeter_store::{Scope, Store};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skymeter-server-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path, cert PEM).
fn self_signed(dir: &std::path::Path) -> (PathBuf, PathBuf, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let pem = ck.cert.pem();
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key, pem)
}

#[tokio::test]
async fn serves_https_with_pem_files() {
    let dir = temp_dir("tls");
    let (cert, key, pem) = self_signed(&dir);
    let mut config = ServerConfig {
        tls: Some(TlsFiles { cert, key }),
        ..Default::default()
    };
    let s = TestServer::start_with(&mut config, MemStore::new()).await;
    assert!(s.url.starts_with("https://"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = s.token(&[Scope::Ingest]);
    let resp = client
        .post(format!("{}/api/v1/ingest", s.url))
        .bearer_auth(token)
        .json(&batch(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Plain HTTP to the TLS port gets no answer.
    let plain = s.url.replace("https://", "http://");
    assert!(s
        .client
        .get(format!("{plain}/health"))
        .send()
        .await
        .is_err());
    s.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn tls_file_problems_name_the_file() {
    let dir = temp_dir("tls-errors");
    let (cert, key, _) = self_signed(&dir);
    let bind = |cert: PathBuf, key: PathBuf| {
        Server::bind(
            ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                tls: Some(TlsFiles { cert, key }),
                ..Default::default()
            },
            MemStore::new(),
        )
    };
    let missing = dir.join("nope.pem");
    let err = bind(missing.clone(), key.clone()).await.err().unwrap();
    assert!(matches!(err, ServerError::TlsCert { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&*missing.to_string_lossy()) && msg.contains("cannot be read"),
        "{msg}"
    );

    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    let err = bind(cert.clone(), junk.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("TLS key file")
            && err.contains("junk.pem")
            && err.contains("no PEM private key"),
        "{err}"
    );
    let err = bind(junk.clone(), key.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("TLS certificate file") && err.contains("no PEM certificate"),
        "{err}"
    );

    // A key that does not belong to the certificate.
    let other = dir.join("other-key.pem");
    std::fs::write(&other, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = bind(cert, other).await.err().unwrap().to_string();
    assert!(
        err.contains("cert.pem") && err.contains("other-key.pem"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn disabled_auth_is_refused_on_a_network_address() {
    let err = Server::bind(
        ServerConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            auth: Auth::Disabled,
            ..Default::default()
        },
        MemStore::new(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, ServerError::OpenOnNetwork { .. }));
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

#[tokio::test]
async fn header_limits_are_enforced() {
    let s = TestServer::start(ServerConfig {
        max_headers: 20,
        max_header_bytes: 4096,
        ..Default::default()
    })
    .await;
    let mut req = s.client.get(format!("{}/health", s.url));
    for i in 0..40 {
        req = req.header(format!("x-extra-{i}"), "1");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 431);
    let resp = s
        .client
        .get(format!("{}/health", s.url))
        .header("x-big", "a".repeat(8000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let resp = s.get("/health", None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn slow_requests_time_out_with_a_json_body() {
    let s = TestServer::start(ServerConfig {
        auth: Auth::Disabled,
        request_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    s.store.slow_ms.store(1500, Ordering::Relaxed);
    let resp = s.get("/api/v1/resources", None).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("200ms"),
        "{body}"
    );
}

#[tokio::test]
async fn cors_only_when_configured_and_only_for_listed_origins() {
    let preflight = |s: &TestServer, origin: &str| {
        s.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/resources", s.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let s = TestServer::start(ServerConfig {
        cors_origins: vec!["http://grafana.test:3000".into()],
        ..Default::default()
    })
    .await;
    let resp = preflight(&s, "http://grafana.test:3000").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://grafana.test:3000"
    );
    assert!(resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let resp = preflight(&s, "http://evil.test").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Actual requests carry the header too (and still need a token).
    let resp = s
        .client
        .get(format!("{}/api/v1/resources", s.url))
        .header("origin", "http://grafana.test:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://grafana.test:3000"
    );

    let off = TestServer::start(ServerConfig::default()).await;
    let resp = preflight(&off, "http://grafana.test:3000").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let s = TestServer::start(ServerConfig {
        auth: Auth::Disabled,
        ..Default::default()
    })
    .await;
    s.store.slow_ms.store(600, Ordering::Relaxed);
    let client = s.client.clone();
    let url = format!("{}/api/v1/resources", s.url);
    let in_flight =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let base = s.url.clone();
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("shutdown completes");
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    let after = reqwest::Client::new()
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(after.is_err(), "no longer listening");
}

#[tokio::test]
async fn retention_runs_at_start_when_configured() {
    let store = MemStore::new();
    let mut b = batch(0);
    let r = host("h1");
    let now = Utc::now();
    b.points.push(point(
        "cpu.utilization",
        Stat::Avg,
        now - CDuration::hours(5),
        1.0,
        &r,
    ));
    b.points.push(point(
        "cpu.utilization",
        Stat::Avg,
        now - CDuration::minutes(5),
        2.0,
        &r,
    ));
    store.ingest(&b).unwrap();
    let mut config = ServerConfig {
        retention: Some(Duration::from_secs(2 * 3600)),
        ..Default::default()
    };
    let s = TestServer::start_with(&mut config, store).await;
    let mut points = 0;
    for _ in 0..100 {
        points = s.stats().points;
        if points == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        points, 1,
        "the 5-hour-old point is gone, the recent one kept"
    );
}

#[tokio::test]
async fn bad_limits_are_refused_naming_the_field() {
    let err = Server::bind(
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_header_bytes: 10,
            ..Default::default()
        },
        MemStore::new(),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("max_header_bytes"), "{err}");
}
