//! The server's NATS consumer (`--consume`) against the NATS these machines run (JetStream
//! on 127.0.0.1:4222), over the in-memory store: what it acknowledges, terminates and hands
//! back, what `/metrics` shows, and a clean stop. A stream of the test's own, deleted at the
//! end.

mod support;

use async_nats::jetstream;
use skymeter_model::Batch;
use skymeter_server::{Auth, NatsConsume, ServerConfig};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn send(js: &jetstream::Context, subject: &str, id: &str, enc: Option<&str>, body: Vec<u8>) {
    let mut m = jetstream::message::PublishMessage::build()
        .payload(body.into())
        .message_id(id);
    if let Some(e) = enc {
        m = m.header("Content-Encoding", e);
    }
    js.send_publish(subject.to_string(), m)
        .await
        .unwrap()
        .await
        .unwrap();
}

/// The value of an unlabelled metric in the exposition text.
async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = s.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

async fn wait_metric(s: &TestServer, name: &str, at_least: f64, within: Duration) {
    let started = Instant::now();
    while metric(s, name).await < at_least {
        assert!(
            started.elapsed() < within,
            "{name} stayed under {at_least} (now {})",
            metric(s, name).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn stored_batches_are_acked_bad_ones_terminated_and_failed_ones_delivered_again() {
    let test = "stored_batches_are_acked_bad_ones_terminated_and_failed_ones_delivered_again";
    if !skymeter_testkit::nats::machine_nats(test) {
        return;
    }
    let (stream, prefix) = skymeter_testkit::nats::unique_stream();
    let _cleanup = skymeter_testkit::nats::DeleteStream(stream.clone());
    let subject = format!("{prefix}.agent");
    let js = skymeter_testkit::nats::machine_jetstream().await;
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .unwrap();

    let mut consume = NatsConsume::new(vec![skymeter_testkit::nats::MACHINE_URL.parse().unwrap()]);
    consume.stream = stream.clone();
    consume.ack_wait = Duration::from_secs(30);
    let mut config = ServerConfig {
        auth: Auth::Disabled,
        consume: Some(consume),
        ..Default::default()
    };
    let store = MemStore::new();
    let s = TestServer::start_with(&mut config, store.clone()).await;

    let a = batch(3);
    let a_json = serde_json::to_vec(&a).unwrap();
    let b = batch(2);
    let c = batch(4);
    let mut a_other = a.clone();
    a_other.points[0].value += 1.0;
    // Stored: gzip, plain, zstd; and `a` again under another message id (past JetStream's
    // duplicate window, say): the store's dedupe answers, and it is acknowledged too.
    send(&js, &subject, "a", Some("gzip"), gzip(&a_json)).await;
    send(&js, &subject, "b", None, serde_json::to_vec(&b).unwrap()).await;
    let c_zstd = zstd::encode_all(&serde_json::to_vec(&c).unwrap()[..], 1).unwrap();
    send(&js, &subject, "c", Some("zstd"), c_zstd).await;
    send(&js, &subject, "a-again", None, a_json.clone()).await;
    // Never storable: not JSON, a batch id reused for other content, an unknown encoding.
    send(&js, &subject, "junk", None, b"not a batch".to_vec()).await;
    send(
        &js,
        &subject,
        "a-other",
        None,
        serde_json::to_vec(&a_other).unwrap(),
    )
    .await;
    send(&js, &subject, "br", Some("br"), a_json.clone()).await;

    let within = Duration::from_secs(20);
    wait_metric(&s, "skymeter_nats_consumer_acked_total", 4.0, within).await;
    wait_metric(&s, "skymeter_nats_consumer_terminated_total", 3.0, within).await;
    assert_eq!(metric(&s, "skymeter_nats_consumer_connected").await, 1.0);
    assert_eq!(s.stats().batches, 3, "a, b and c, each once");

    // Storage fails: the batch is handed back and comes again once the store is back.
    store.fail_ingest.store(true, Ordering::Relaxed);
    let d: Batch = batch(1);
    send(&js, &subject, "d", None, serde_json::to_vec(&d).unwrap()).await;
    wait_metric(&s, "skymeter_nats_consumer_nacked_total", 1.0, within).await;
    store.fail_ingest.store(false, Ordering::Relaxed);
    wait_metric(&s, "skymeter_nats_consumer_acked_total", 5.0, within).await;
    assert!(metric(&s, "skymeter_nats_consumer_redelivered_total").await >= 1.0);
    assert_eq!(s.stats().batches, 4);
    // Counted with the HTTP ingest's: 4 stored, 1 duplicate, 3 rejected and the failed try.
    let text = s.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains("skymeter_ingest_batches_total{result=\"stored\"} 4\n")
            && text.contains("skymeter_ingest_batches_total{result=\"duplicate\"} 1\n")
            && text.contains("skymeter_ingest_batches_total{result=\"rejected\"} 4\n"),
        "{text}"
    );

    // A clean stop: the server returns, and nothing is left unacknowledged.
    s.stop().await;
    let mut consumer: jetstream::consumer::PullConsumer = js
        .get_stream(&stream)
        .await
        .unwrap()
        .get_consumer("skymeter")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
}

#[tokio::test]
async fn the_consumer_comes_back_after_nats_restarts() {
    let test = "the_consumer_comes_back_after_nats_restarts";
    let Some(program) =
        skymeter_testkit::tool::require_tool(test, skymeter_testkit::nats::program())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nats = skymeter_testkit::nats::OwnNats::start(program, &dir.path().join("js"));
    let jetstream_of =
        |url: String| async move { jetstream::new(async_nats::connect(url).await.unwrap()) };
    let js = jetstream_of(nats.url()).await;
    js.create_stream(jetstream::stream::Config {
        name: "RESTART".into(),
        subjects: vec!["restart.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut consume = NatsConsume::new(vec![nats.url().parse().unwrap()]);
    consume.stream = "RESTART".into();
    let mut config = ServerConfig {
        auth: Auth::Disabled,
        consume: Some(consume),
        ..Default::default()
    };
    let s = TestServer::start_with(&mut config, MemStore::new()).await;
    let first = serde_json::to_vec(&batch(1)).unwrap();
    send(&js, "restart.a", "1", None, first).await;
    let within = Duration::from_secs(30);
    wait_metric(&s, "skymeter_nats_consumer_acked_total", 1.0, within).await;

    nats.kill();
    let started = Instant::now();
    while metric(&s, "skymeter_nats_consumer_connected").await != 0.0 {
        assert!(started.elapsed() < within, "the consumer never noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nats.up();
    let js = jetstream_of(nats.url()).await;
    let second = serde_json::to_vec(&batch(2)).unwrap();
    send(&js, "restart.a", "2", None, second).await;
    wait_metric(&s, "skymeter_nats_consumer_acked_total", 2.0, within).await;
    assert_eq!(metric(&s, "skymeter_nats_consumer_connected").await, 1.0);
    assert_eq!(s.stats().batches, 2);
    s.stop().await;
}
