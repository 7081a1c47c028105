//! Property test of ingest bodies through real HTTP: gzip and zstd bodies, valid,
//! truncated, corrupted, and bombs that decompress past the limit, never crash the server,
//! are answered with the documented status and JSON error, and never store more than the
//! configured limits let in. 256 cases (`PROPTEST_CASES` raises it).

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use skymeter_server::ServerConfig;
use skymeter_store::Scope;
use std::io::Write;
use support::*;

/// The server's limits in this test: small, so that bombs are cheap to make.
const MAX_BYTES: usize = 64 << 10;
const MAX_COMPRESSED: usize = 16 << 10;

#[derive(Debug, Clone)]
enum Shape {
    Valid,
    /// The compressed stream cut at this fraction (per mille) of its length.
    Truncated(u16),
    /// One byte of the compressed stream replaced.
    Flipped(usize, u8),
    /// The batch padded with this many KiB of whitespace inside the object.
    Padded(usize),
    /// Not a compressed stream at all.
    Random(Vec<u8>),
}

fn compress(data: &[u8], zstd: bool) -> Vec<u8> {
    if zstd {
        zstd::encode_all(data, 3).unwrap()
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        2 => Just(Shape::Valid),
        2 => (0u16..1000).prop_map(Shape::Truncated),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Shape::Flipped(i, b)),
        2 => (0usize..4096).prop_map(Shape::Padded),
        1 => prop::collection::vec(any::<u8>(), 0..2048).prop_map(Shape::Random),
    ]
}

#[test]
fn compressed_bodies_never_crash_and_stay_within_the_limits() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = ServerConfig {
        max_body_bytes: MAX_BYTES,
        max_compressed_body_bytes: MAX_COMPRESSED,
        ..Default::default()
    };
    let s = rt.block_on(TestServer::start(config));
    let token = s.token(&[Scope::Ingest]);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(
        &(shape(), any::<bool>(), 1usize..40),
        |(shape, zstd, points)| {
            cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let b = batch(points);
            let json = serde_json::to_vec(&b).unwrap();
            let (body, expect): (Vec<u8>, &[u16]) = match &shape {
                Shape::Valid => (compress(&json, zstd), &[200]),
                Shape::Truncated(per_mille) => {
                    let c = compress(&json, zstd);
                    let cut = c.len() * usize::from(*per_mille) / 1000;
                    (c[..cut].to_vec(), &[400])
                }
                Shape::Flipped(i, byte) => {
                    let mut c = compress(&json, zstd);
                    let i = i % c.len();
                    c[i] = *byte;
                    // A flip may land in a field the decoder ignores (gzip's mtime), or
                    // change the batch into another valid one.
                    (c, &[200, 400])
                }
                Shape::Padded(kib) => {
                    let mut padded = json[..json.len() - 1].to_vec();
                    padded.extend(std::iter::repeat_n(b' ', kib << 10));
                    padded.push(b'}');
                    let over = padded.len() > MAX_BYTES;
                    let c = compress(&padded, zstd);
                    (c, if over { &[413] } else { &[200] })
                }
                Shape::Random(bytes) => (bytes.clone(), &[400]),
            };
            let compressed_over = body.len() > MAX_COMPRESSED;
            let (status, answer) = rt.block_on(async {
                let resp = s
                    .client
                    .post(format!("{}/api/v1/ingest", s.url))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .header("content-encoding", if zstd { "zstd" } else { "gzip" })
                    .body(body)
                    .send()
                    .await
                    .expect("the server answers");
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.expect("a JSON answer"))
            });
            if compressed_over {
                prop_assert_eq!(status, 413, "{}", answer);
            } else {
                prop_assert!(
                    expect.contains(&status),
                    "{:?}: {} {}",
                    shape,
                    status,
                    answer
                );
            }
            if status == 200 {
                // A flip may have changed the batch id into another valid one (zstd
                // frames carry no checksum by default).
                if !matches!(shape, Shape::Flipped(..)) {
                    prop_assert_eq!(&answer["batch_id"], &Value::from(b.batch_id.to_string()));
                }
            } else {
                let code = answer["error"]["code"].as_str().unwrap_or_default();
                let known = ["bad_request", "invalid_json", "invalid_batch", "too_large"];
                prop_assert!(known.contains(&code), "{}", answer);
            }
            Ok::<(), TestCaseError>(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // Still up, and nothing stored beyond what was acknowledged.
    let health = rt.block_on(s.get("/health", None));
    assert_eq!(health.status(), 200);
    let stats = s.stats();
    eprintln!(
        "prop_ingest_body: {} cases, {} batches stored",
        cases.into_inner(),
        stats.batches
    );
}
