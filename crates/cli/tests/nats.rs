//! NATS JetStream through the binary, against the NATS these machines run (JetStream on
//! 127.0.0.1:4222): the `nats` publisher of `skymeter run --once`, read back from the
//! stream; and two `skymeter server --consume` sharing one durable consumer, one of them
//! SIGKILLed mid-stream, every batch stored.
//!
//! Each test makes streams of its own (unique names) and deletes them at the end.

mod common;
use common::*;
use skymeter_testkit::nats::{machine_jetstream as jetstream, unique_stream, DeleteStream};
use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

/// A runtime for the test's own NATS client calls.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn run_once_publishes_the_batch_to_a_jetstream_stream() {
    let test = "run_once_publishes_the_batch_to_a_jetstream_stream";
    if !skymeter_testkit::nats::machine_nats(test) {
        return;
    }
    let (stream, prefix) = unique_stream();
    let _cleanup = DeleteStream(stream.clone());
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task.toml");
    std::fs::write(
        &task,
        format!(
            "[agent]\nid = \"edge.1\"\ndata_dir = {:?}\n\n[[task]]\nname = \"host\"\nschedule = {{ every = \"10s\" }}\n\
             metrics = [\"memory.*\", \"skymeter.runs\"]\ncollect = [{{ plugin = \"host\" }}, {{ plugin = \"internal\" }}]\n\
             publish = [{{ plugin = \"nats\", url = \"nats://127.0.0.1:4222\", stream = \"{stream}\", subject = \"{prefix}\" }}]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = skymeter(&["run", "--once", "-c", task.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (subject, msg_id, encoding, batch) = rt().block_on(async {
        let s = jetstream().await.get_stream(&stream).await.unwrap();
        let info = s.get_info().await.unwrap();
        assert_eq!(info.state.messages, 1, "one batch, one message");
        assert_eq!(info.config.subjects, [format!("{prefix}.>")]);
        let m = s.get_raw_message(info.state.first_sequence).await.unwrap();
        let header = |n: &str| {
            m.headers
                .get(n)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&m.payload[..])
            .read_to_end(&mut json)
            .unwrap();
        let batch: serde_json::Value = serde_json::from_slice(&json).unwrap();
        (
            m.subject.to_string(),
            header("Nats-Msg-Id"),
            header("Content-Encoding"),
            batch,
        )
    });
    assert_eq!(subject, format!("{prefix}.edge_1"));
    assert_eq!(encoding, "gzip");
    assert_eq!(batch["agent_id"], "edge.1");
    assert_eq!(msg_id, batch["batch_id"].as_str().unwrap());
    let points = batch["points"].as_array().unwrap();
    assert!(
        points
            .iter()
            .any(|p| p["metric"] == "memory.total" && p["value"].as_f64() > Some(0.0)),
        "{batch}"
    );
    // Delivered: nothing left in the buffer.
    let buffer = dir.path().join("data/buffer/host/nats");
    let left = std::fs::read_dir(&buffer)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "gz"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0);
}

/// Batch `i` as the server ingests it: 60 points of resource `r-<i>`, a minute apart.
fn test_batch(i: usize) -> Vec<u8> {
    let points: Vec<serde_json::Value> = (0..60)
        .map(|m| {
            serde_json::json!({"metric": "cpu.utilization", "unit": "percent", "stat": "avg",
                "period_s": 60, "ts": format!("2026-11-22T10:{m:02}:00Z"), "value": (i * m) as f64,
                "resource": {"provider": "host", "account": "lab", "region": "", "id": format!("r-{i}")}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schema": 1, "batch_id": uuid::Uuid::now_v7(), "agent_id": "a", "task": "t",
        "collected_at": "2026-11-22T11:00:00Z", "points": points
    }))
    .unwrap()
}

/// The resources (`r-<i>`) whose batches the server at `base` stored.
fn stored(base: &str) -> BTreeSet<String> {
    let body: serde_json::Value = reqwest::blocking::get(format!(
        "{base}/api/v1/series?match[]=cpu_utilization_percent"
    ))
    .unwrap()
    .json()
    .unwrap();
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| s["resource_id"].as_str().unwrap().to_string())
        .collect()
}

fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// What [`kill_mid_stream`] leaves: the resources each server lists, the servers (alive),
/// and how many batches NATS delivered again.
struct KillRun {
    in_a: BTreeSet<String>,
    in_b: BTreeSet<String>,
    base_a: String,
    base_b: String,
    redelivered: f64,
    _servers: (Proc, Proc),
}

const N: usize = 500;

/// N batches wait in a stream; two `skymeter server --consume` (with `extra` arguments)
/// share its durable consumer; server a is SIGKILLed once it has acknowledged ten, then
/// started again; returns once the consumer has nothing left to deliver.
fn kill_mid_stream(extra: &[String]) -> KillRun {
    let (stream, prefix) = unique_stream();
    let _cleanup = DeleteStream(stream.clone());
    let rt = rt();
    let js = rt.block_on(async {
        let js = jetstream().await;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        js
    });
    let dir = tempfile::tempdir().unwrap();
    // Server a takes its consumer settings from flags, b from its config file.
    let start = |name: &str, port: u16| {
        let data = dir.path().join(name);
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "server",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--no-auth",
        ];
        args.extend(extra.iter().map(String::as_str));
        let conf = dir.path().join(format!("{name}.toml"));
        let conf_arg = conf.display().to_string();
        if name == "a" {
            args.extend([
                "--consume",
                "nats://127.0.0.1:4222",
                "--consume-stream",
                &stream,
                "--consume-ack-wait",
                "2s",
                "--consume-max-in-flight",
                "4",
            ]);
        } else {
            std::fs::write(
                &conf,
                format!(
                    "[server.consume]\nurl = [\"nats://127.0.0.1:4222\"]\nstream = \"{stream}\"\nack_wait = \"2s\"\nmax_in_flight = 4\n"
                ),
            )
            .unwrap();
            args.extend(["-c", &conf_arg]);
        }
        spawn(&args, dir.path())
    };
    // The agents were faster than the servers: a backlog of N batches waits in the stream.
    rt.block_on(async {
        let mut acks = Vec::with_capacity(N);
        for i in 0..N {
            acks.push(
                js.publish(format!("{prefix}.a"), test_batch(i).into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    });
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let mut a = start("a", port_a);
    let b = start("b", port_b);
    wait_healthy(&base_a);
    wait_healthy(&base_b);

    // Server a is killed as soon as it has stored a share of the backlog: it dies with more
    // batches pulled and in flight.
    let killer = {
        let (base_a, base_b) = (base_a.clone(), base_b.clone());
        std::thread::spawn(move || {
            let acked = eventually(Duration::from_secs(30), || {
                let n = metric(&base_a, "skymeter_nats_consumer_acked_total");
                (n >= 10.0).then_some(n)
            })
            .expect("server a takes batches");
            a.0.kill().unwrap();
            a.0.wait().unwrap();
            (acked, metric(&base_b, "skymeter_nats_consumer_acked_total"))
        })
    };
    let (killed_at, b_then) = killer.join().unwrap();
    assert!(
        killed_at + b_then < N as f64,
        "a was killed mid-stream ({killed_at} + {b_then} of {N} acknowledged then)"
    );
    let consumer_info = || {
        rt.block_on(async {
            let s = js.get_stream(&stream).await.unwrap();
            let mut c: async_nats::jetstream::consumer::PullConsumer =
                s.get_consumer("skymeter").await.unwrap();
            c.info().await.unwrap().clone()
        })
    };
    // The survivor goes on alone; then a comes back and joins.
    std::thread::sleep(Duration::from_secs(1));
    let a = start("a", port_a);
    wait_healthy(&base_a);

    // Done when the durable consumer has nothing left to deliver or acknowledge.
    let started = Instant::now();
    loop {
        let info = consumer_info();
        if info.num_pending == 0
            && info.num_ack_pending == 0
            && info.ack_floor.stream_sequence >= N as u64
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the consumer did not finish: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let redelivered = metric(&base_a, "skymeter_nats_consumer_redelivered_total")
        + metric(&base_b, "skymeter_nats_consumer_redelivered_total");
    for base in [&base_a, &base_b] {
        assert_eq!(metric(base, "skymeter_nats_consumer_connected"), 1.0);
        assert_eq!(metric(base, "skymeter_nats_consumer_terminated_total"), 0.0);
    }
    eprintln!("{N} batches: a killed after acknowledging {killed_at}; {redelivered} redelivered");
    KillRun {
        in_a: stored(&base_a),
        in_b: stored(&base_b),
        base_a,
        base_b,
        redelivered,
        _servers: (a, b),
    }
}

#[test]
fn two_servers_share_a_stream_and_one_killed_mid_stream_loses_nothing() {
    let test = "two_servers_share_a_stream_and_one_killed_mid_stream_loses_nothing";
    if !skymeter_testkit::nats::machine_nats(test) {
        return;
    }
    let run = kill_mid_stream(&[]);
    let (in_a, in_b) = (&run.in_a, &run.in_b);
    let all: BTreeSet<String> = (0..N).map(|i| format!("r-{i}")).collect();
    let union: BTreeSet<String> = in_a.union(in_b).cloned().collect();
    assert_eq!(union, all, "every batch is stored");
    assert!(
        !in_a.is_empty() && !in_b.is_empty(),
        "both servers took batches"
    );
    // With one embedded store each, a batch a had stored but not yet acknowledged when it
    // was killed is redelivered to b and stored there too: at most what a held in flight
    // (about 2 × max_in_flight). With shared metadata (the next test) that cannot happen.
    let both: Vec<&String> = in_a.intersection(in_b).collect();
    assert!(
        both.len() <= 8,
        "only batches in flight at the kill may be in both: {both:?}"
    );
    assert!(run.redelivered > 0.0, "a was killed holding batches");
}

#[test]
fn two_scale_out_servers_share_a_stream_and_store_every_batch_exactly_once() {
    let test = "two_scale_out_servers_share_a_stream_and_store_every_batch_exactly_once";
    if !skymeter_testkit::nats::machine_nats(test) {
        return;
    }
    if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        skip(
            test,
            "no PostgreSQL on 127.0.0.1:5432 (these machines run one)",
        );
        return;
    }
    let tool = skymeter_testkit::tool::require_tool;
    if tool(
        test,
        skymeter_testkit::tool::program("psql", "postgresql-client"),
    )
    .is_none()
    {
        return;
    }
    let Some(vm_bin) = tool(test, skymeter_testkit::victoria::find()) else {
        return;
    };
    let psql = |db: &str, sql: &str| {
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let db = format!("skymeter_nats_{}", std::process::id());
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    psql("postgres", &format!("CREATE DATABASE {db}"));
    let vm_dir = tempfile::tempdir().unwrap();
    let vm = skymeter_testkit::victoria::VictoriaMetrics::start(vm_bin, vm_dir.path());
    let run = kill_mid_stream(&[
        "--metadata".into(),
        format!("postgres://postgres@127.0.0.1:5432/{db}"),
        "--tsdb".into(),
        format!("remote-write={0}/api/v1/write,query={0}", vm.url()),
    ]);
    let all: BTreeSet<String> = (0..N).map(|i| format!("r-{i}")).collect();
    // One state: both servers list every batch's resource, once the remote-write queues
    // have delivered.
    // Generous: redelivery after the kill waits for ack_wait, and a loaded 2-core CI
    // machine (builds beside the tests) has taken more than 30 s to drain the queues.
    for base in [&run.base_a, &run.base_b] {
        let seen = eventually(Duration::from_secs(120), || {
            let s = stored(base);
            (s == all).then_some(s)
        });
        assert!(
            seen.is_some(),
            "{base} sees every batch: {} of {N}",
            stored(base).len()
        );
    }
    assert!(run.redelivered > 0.0, "a was killed holding batches");
    // Exactly once: N batch ids stored, and every sample once in the TSDB (a batch a had
    // stored when it died was answered `duplicate` on redelivery, not stored again).
    let batches = psql(&db, "SELECT count(*) FROM batches");
    assert_eq!(batches, N.to_string());
    let samples = eventually(Duration::from_secs(30), || {
        let body: serde_json::Value = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/query", run.base_b))
            .query(&[
                ("query", "sum(count_over_time(cpu_utilization_percent[2h]))"),
                ("time", "2026-11-22T11:00:00Z"),
            ])
            .send()
            .ok()?
            .json()
            .ok()?;
        let n: f64 = body["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()?;
        (n == (N * 60) as f64).then_some(n)
    });
    assert_eq!(
        samples,
        Some((N * 60) as f64),
        "every sample once in VictoriaMetrics"
    );
    // The series catalog has each batch's series once (its point counts are statistics,
    // written every few seconds: a SIGKILL loses the last ones, see docs/scaling.md).
    let catalog: serde_json::Value = reqwest::blocking::get(format!(
        "{}/api/v1/series?metric=cpu.utilization&limit=1000",
        run.base_a
    ))
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(
        catalog["items"].as_array().map(Vec::len),
        Some(N),
        "{catalog}"
    );
    drop(run);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

#[test]
fn consume_mistakes_name_the_flag_or_the_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = skymeter(&[
        "server",
        "--data-dir",
        data,
        "--no-auth",
        "--consume",
        "http://127.0.0.1:4222",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--consume: `http://127.0.0.1:4222` is not a NATS URL"),
        "{}",
        stderr(&out)
    );
    let conf = dir.path().join("server.toml");
    std::fs::write(
        &conf,
        "[server]\nretention = \"30d\"\n\n[server.consume]\nurl = \"nats://127.0.0.1:4222\"\ntoken = \"${SKYMETER_TEST_NATS_TOKEN}\"\ncreds_file = \"/etc/x.creds\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["server", "--data-dir", data, "--no-auth", "-c"])
        .arg(&conf)
        .env("SKYMETER_TEST_NATS_TOKEN", "s3cr3t-t0ken")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("server.toml:6"), "the token's line: {err}");
    assert!(err.contains("one way to log in"), "{err}");
    assert!(!err.contains("s3cr3t-t0ken"), "{err}");
}
