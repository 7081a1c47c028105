use super::*;
use crate::common::testing::{batch, batch_of, build_error, point, wait_for, with_raw};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[test]
fn broker_urls() {
    assert_eq!(
        parse_broker("mqtt://127.0.0.1:1884").unwrap(),
        ("127.0.0.1".into(), 1884)
    );
    assert_eq!(
        parse_broker("mqtt://broker.local").unwrap(),
        ("broker.local".into(), 1883)
    );
    assert_eq!(
        parse_broker("tcp://[::1]:1883").unwrap(),
        ("::1".into(), 1883)
    );
    assert!(parse_broker("mqtts://b:8883")
        .unwrap_err()
        .contains("not supported yet"));
    assert!(parse_broker("http://b")
        .unwrap_err()
        .contains("not a broker URL"));
    assert!(parse_broker("mqtt://b:x")
        .unwrap_err()
        .contains("not a port"));
}

#[test]
fn config_mistakes_are_named() {
    let err = |text: &str| build_error(text, build);
    assert!(err("url = \"mqtts://b\"").contains("url"));
    assert!(err("url = \"mqtt://b\"\ntopic_prefix = \"a/#\"").contains("topic_prefix"));
    assert!(err("url = \"mqtt://b\"\npassword = \"p\"").contains("username"));
}

#[test]
fn a_message_per_resource_with_the_batch_header() {
    let mut b = batch(vec![
        point("cpu.utilization", 12.5, "2026-11-22T10:00:00Z", &[]),
        point("memory.usage", 40.0, "2026-11-22T10:00:00Z", &[]),
    ]);
    let mut other = point("cpu.utilization", 3.0, "2026-11-22T10:00:00Z", &[]);
    other.resource = ResourceRef {
        provider: "aws".into(),
        account: "1".into(),
        region: "".into(),
        id: "arn:aws:s3:::a/b+c#d".into(),
    }
    .into();
    b.points.push(other);
    let msgs = messages("site/1", &b);
    let topics: Vec<&str> = msgs.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "site/1/aws/1/_/arn:aws:s3:::a%2Fb%2Bc%23d",
            "site/1/host/acct/eu-west-1/h1"
        ]
    );
    let host: serde_json::Value = serde_json::from_slice(&msgs[1].1).unwrap();
    assert_eq!(host["batch_id"], b.batch_id.to_string());
    assert_eq!(host["agent_id"], "agent");
    assert_eq!(host["points"].as_array().unwrap().len(), 2);
    assert_eq!(host["resource"], serde_json::Value::Null);
}

/// The user the test runs as: mosquitto started as root switches to the user `mosquitto`
/// unless its configuration names another, and that user cannot write the session store
/// into the test's directory (sessions were then lost across the restart and the test
/// passed only when the subscriber happened to resubscribe before the publisher resent).
fn current_user() -> String {
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// A mosquitto of the test's own on a free port, with persistence (so a subscriber's
/// session and its queued messages survive a restart), stopped when dropped.
struct Mosquitto {
    program: PathBuf,
    conf: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl Mosquitto {
    fn start(program: PathBuf, dir: &Path) -> Mosquitto {
        let port = skymeter_testkit::net::free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser {user}\npersistence true\npersistence_location {dir}/\n\
                 log_dest file {dir}/mosquitto.log\nlog_type all\nlog_timestamp_format %H:%M:%S\n",
                dir = dir.display(),
                user = current_user(),
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            program,
            conf,
            port,
            child: None,
        };
        m.up();
        m
    }

    fn up(&mut self) {
        let child = std::process::Command::new(&self.program)
            .arg("-c")
            .arg(&self.conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        for _ in 0..200 {
            // Its own listener, not another program's that took the port meanwhile.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mosquitto exited ({status}) on start:\n{}", self.log_tail());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "mosquitto did not listen on {}:\n{}",
            self.port,
            self.log_tail()
        );
    }

    /// The last lines of the broker's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.conf.with_file_name("mosquitto.log"))
            .unwrap_or_else(|e| format!("(no log: {e})"));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// SIGTERM (mosquitto saves its sessions), then wait.
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mosquitto_program() -> Result<PathBuf, String> {
    skymeter_testkit::tool::daemon("mosquitto", "mosquitto")
}

/// What the test's subscriber received (topic, message) and, for a failure message, what
/// happened to its connection.
#[derive(Default)]
struct Received {
    messages: Vec<(String, serde_json::Value)>,
    connection: Vec<String>,
}

/// A subscriber to `<prefix>/#` with a persistent session; what it received.
///
/// It subscribes on every connection, also when the broker says the session is still
/// there: the same filter again replaces the subscription without losing what the session
/// queued, and a broker that restored the session without its subscription would
/// otherwise leave the test waiting for messages that are never routed to it.
fn subscribe(port: u16) -> Arc<Mutex<Received>> {
    let got = Arc::new(Mutex::new(Received::default()));
    let seen = got.clone();
    let mut options = MqttOptions::new("skymeter-test-sub", "127.0.0.1", port);
    options.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(options, 100);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    seen.lock().unwrap().connection.push(format!(
                        "connected ({:?}, session present: {})",
                        ack.code, ack.session_present
                    ));
                    let _ = client.subscribe("skymeter/#", QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                    seen.lock()
                        .unwrap()
                        .connection
                        .push(format!("subscribed ({:?})", ack.return_codes));
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    seen.lock().unwrap().messages.push((p.topic.clone(), v));
                }
                Ok(_) => {}
                Err(e) => {
                    {
                        let mut seen = seen.lock().unwrap();
                        let line = format!("connection error: {e}");
                        if seen.connection.last() != Some(&line) {
                            seen.connection.push(line);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
        }
    });
    got
}

#[tokio::test]
async fn batches_published_while_the_broker_is_down_arrive_after_it_is_back() {
    let test = "batches_published_while_the_broker_is_down_arrive_after_it_is_back";
    let Some(program) = skymeter_testkit::tool::require_tool(test, mosquitto_program()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(program, dir.path());
    let got = subscribe(broker.port);
    wait_for("the subscription", || {
        std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_ok()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let buffer = dir.path().join("buffer");
    let text = format!(
        "url = \"mqtt://127.0.0.1:{}\"\ntimeout = \"3s\"\nretry = {{ initial = \"50ms\", max = \"200ms\" }}\nbuffer = {{ dir = {:?} }}",
        broker.port,
        buffer.display().to_string()
    );
    let mut publisher =
        with_raw(&text, |raw| build(raw, &BuildContext::one_shot("agent-1"))).unwrap();
    let (a, b, c) = (batch_of(1.0), batch_of(2.0), batch_of(3.0));
    let ids_seen = |got: &Mutex<Received>| -> Vec<String> {
        got.lock()
            .unwrap()
            .messages
            .iter()
            .map(|(_, v)| v["batch_id"].as_str().unwrap().to_string())
            .collect()
    };

    publisher.publish(&a).await.unwrap();
    wait_for("batch a", || {
        ids_seen(&got).contains(&a.batch_id.to_string())
    })
    .await;

    // The broker goes away: publishing goes on (into the buffer), nothing is lost.
    broker.down();
    publisher.publish(&b).await.unwrap();
    publisher.publish(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ids_seen(&got), [a.batch_id.to_string()]);
    broker.up();
    let arrived = || {
        let ids = ids_seen(&got);
        ids.contains(&b.batch_id.to_string()) && ids.contains(&c.batch_id.to_string())
    };
    // 90 s: a broker restarted on a loaded machine has taken more than 30 s to be back and
    // drained. On a timeout, everything that tells where the batches stopped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !arrived() {
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for batches b and c after the restart\n\
                 received: {:?}\nsubscriber: {:#?}\nstill in the publisher's buffer: {:?}\n\
                 broker log:\n{}",
                ids_seen(&got),
                got.lock().unwrap().connection,
                crate::common::testing::buffered_files(&buffer),
                broker.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.flush().await.unwrap();
    // The premise: the broker kept the subscriber's session (and so the batches it queued
    // for it) over the restart.
    let connections = got.lock().unwrap().connection.clone();
    assert!(
        connections
            .iter()
            .filter(|c| c.starts_with("connected"))
            .nth(1)
            .is_some_and(|c| c.contains("session present: true")),
        "{connections:#?}\nbroker log:\n{}",
        broker.log_tail()
    );

    let got = got.lock().unwrap().messages.clone();
    // In order, each on the resource's topic with its value.
    let firsts: Vec<(String, f64)> = got
        .iter()
        .map(|(topic, v)| (topic.clone(), v["points"][0]["value"].as_f64().unwrap()))
        .collect();
    let mut distinct = firsts.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            ("skymeter/host/acct/eu-west-1/h1".to_string(), 1.0),
            ("skymeter/host/acct/eu-west-1/h1".to_string(), 2.0),
            ("skymeter/host/acct/eu-west-1/h1".to_string(), 3.0),
        ]
    );
}
