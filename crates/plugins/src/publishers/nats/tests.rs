use super::*;
use crate::common::testing::{
    batch, batch_files, batch_of, build_error, ids as ids_of, point, sample_entries, with_raw,
};
use skymeter_model::Batch;
use skymeter_testkit::nats::{program, OwnNats};
use std::io::Read;

#[test]
fn server_urls() {
    assert!(parse_server("nats://127.0.0.1:4222").is_ok());
    assert!(parse_server("tls://nats.example.com").is_ok());
    assert!(parse_server("http://b:4222")
        .unwrap_err()
        .contains("not a NATS URL"));
    assert!(parse_server("127.0.0.1:4222")
        .unwrap_err()
        .contains("not a NATS URL"));
    let creds = parse_server("nats://me:secret@b:4222").unwrap_err();
    assert!(creds.contains("carries credentials"), "{creds}");
}

#[test]
fn agent_ids_become_one_subject_token() {
    assert_eq!(subject_token("edge-1"), "edge-1");
    assert_eq!(subject_token("web.eu-1 *>"), "web_eu-1___");
    assert_eq!(subject_token(""), "_");
}

#[test]
fn config_mistakes_are_named() {
    let err = |text: &str| build_error(text, build);
    let e = err("url = \"mqtt://b\"");
    assert!(e.contains("url") && e.contains("nats://"), "{e}");
    assert!(err("url = []").contains("at least one server"));
    assert!(err("url = \"nats://b\"\nstream = \"a.b\"").contains("stream"));
    assert!(err("url = \"nats://b\"\nsubject = \"a.*\"").contains("subject"));
    assert!(err("url = \"nats://b\"\nsubject = \"a..b\"").contains("subject"));
    assert!(err("url = \"nats://b\"\npassword = \"p\"").contains("username"));
    let both = err("url = \"nats://b\"\ntoken = \"t0ps3cret\"\ncreds_file = \"/x.creds\"");
    assert!(both.contains("one way to log in"), "{both}");
    assert!(!both.contains("t0ps3cret"), "{both}");
    assert!(err("url = \"nats://b\"\ntimeout = \"0s\"").contains("timeout"));
    assert!(err("url = \"nats://b\"\nretry = { attempts = 3 }").contains("attempts"));
}

#[test]
fn sample_entries_build() {
    for entry in sample_entries(include_str!("sample.toml"), "publish", "nats") {
        with_raw(&entry, |raw| build(raw, &BuildContext::one_shot("t")))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}

/// The messages of `stream`, in order: (subject, `Nats-Msg-Id`, the batch).
async fn read_stream(url: &str, stream: &str) -> Vec<(String, String, Batch)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let s = js.get_stream(stream).await.unwrap();
    let info = s.get_info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        let m = s.get_raw_message(seq).await.unwrap();
        assert_eq!(
            m.headers.get("Content-Encoding").map(|v| v.as_str()),
            Some("gzip")
        );
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&m.payload[..])
            .read_to_end(&mut json)
            .unwrap();
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        out.push((
            m.subject.to_string(),
            id,
            serde_json::from_slice(&json).unwrap(),
        ));
    }
    out
}

async fn wait_for_count(url: &str, stream: &str, n: usize) -> Vec<(String, String, Batch)> {
    for _ in 0..300 {
        if let Ok(client) = async_nats::connect(url).await {
            let js = async_nats::jetstream::new(client);
            if let Ok(s) = js.get_stream(stream).await {
                if s.get_info()
                    .await
                    .is_ok_and(|i| i.state.messages as usize >= n)
                {
                    return read_stream(url, stream).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stream {stream} never held {n} messages");
}

/// A publisher of agent `agent` to `stream` of `nats`, quick to retry, buffering in `buffer`.
fn publisher_to(
    nats: &OwnNats,
    stream: &str,
    buffer: &std::path::Path,
    agent: &str,
) -> Box<dyn Publisher> {
    let text = format!(
        "url = \"{}\"\nstream = \"{stream}\"\ntimeout = \"2s\"\nretry = {{ initial = \"50ms\", max = \"300ms\" }}\nbuffer = {{ dir = {:?} }}",
        nats.url(),
        buffer.display().to_string()
    );
    with_raw(&text, |raw| build(raw, &BuildContext::one_shot(agent))).unwrap()
}

#[tokio::test]
async fn batches_published_while_nats_is_down_arrive_after_it_is_back() {
    let test = "batches_published_while_nats_is_down_arrive_after_it_is_back";
    let Some(program) = skymeter_testkit::tool::require_tool(test, program()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nats = OwnNats::start(program, &dir.path().join("js"));
    let buffer = dir.path().join("buffer");
    let mut publisher = publisher_to(&nats, "OUTAGE", &buffer, "edge.1");
    let (a, b, c) = (batch_of(1.0), batch_of(2.0), batch_of(3.0));

    publisher.publish(&a).await.unwrap();
    let got = wait_for_count(&nats.url(), "OUTAGE", 1).await;
    assert_eq!(got[0].1, a.batch_id.to_string());

    // NATS goes away: publishing goes on (into the buffer), nothing is lost.
    nats.kill();
    publisher.publish(&b).await.unwrap();
    publisher.publish(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    nats.up();
    let got = wait_for_count(&nats.url(), "OUTAGE", 3).await;
    publisher.flush().await.unwrap();
    // Settled: a late resend would show as a fourth message.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = read_stream(&nats.url(), "OUTAGE").await;
    assert_eq!(got_after.len(), got.len());
    let ids: Vec<&str> = got.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ids_of(&[&a, &b, &c]),
        "all three, in order, none twice"
    );
    for ((subject, _, batch), value) in got.iter().zip([1.0, 2.0, 3.0]) {
        assert_eq!(subject, "skymeter.batches.edge_1");
        assert_eq!(batch.points[0].value, value);
    }
    assert!(
        batch_files(&buffer).is_empty(),
        "delivered batches leave the buffer"
    );
}

#[tokio::test]
async fn a_batch_over_max_payload_is_set_aside_with_a_clear_reason() {
    let test = "a_batch_over_max_payload_is_set_aside_with_a_clear_reason";
    let Some(program) = skymeter_testkit::tool::require_tool(test, program()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = OwnNats::start_with(program, &dir.path().join("js"), "max_payload: 2048\n");
    let buffer = dir.path().join("buffer");
    let mut publisher = publisher_to(&nats, "BIG", &buffer, "a");
    // Distinct values so that gzip cannot squeeze the batch under 2 KiB.
    let points = (0..2000)
        .map(|i| {
            point(
                "cpu.utilization",
                i as f64 * 1.37,
                "2026-11-22T10:00:00Z",
                &[],
            )
        })
        .collect();
    let big = batch(points);
    let small = batch(vec![point(
        "cpu.utilization",
        1.0,
        "2026-11-22T10:00:00Z",
        &[],
    )]);
    publisher.publish(&big).await.unwrap();
    publisher.publish(&small).await.unwrap();
    let got = wait_for_count(&nats.url(), "BIG", 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, small.batch_id.to_string());
    let report = std::fs::read_dir(buffer.join("rejected"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".error.json"))
        .expect("the big batch is in rejected/ with its report");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path()).unwrap()).unwrap();
    assert_eq!(report["batch_id"], big.batch_id.to_string());
    assert_eq!(report["max_payload"], 2048);
}
