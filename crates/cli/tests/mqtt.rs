//! The `mqtt` publisher through the binary, to the MQTT broker these machines run
//! (Mosquitto on 127.0.0.1:1883), read back with `mosquitto_sub`.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn run_once_publishes_a_message_per_resource_to_the_broker() {
    let test = "run_once_publishes_a_message_per_resource_to_the_broker";
    if std::net::TcpStream::connect(("127.0.0.1", 1883)).is_err() {
        skip(
            test,
            "no MQTT broker on 127.0.0.1:1883 (Mosquitto runs there on these machines)",
        );
        return;
    }
    let Some(sub) = skymeter_testkit::tool::require_tool(
        test,
        skymeter_testkit::tool::program("mosquitto_sub", "mosquitto-clients"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("skymeter-test/{}", uuid::Uuid::now_v7().simple());
    // Two messages: the host resource's and the `internal` collector's agent resource.
    let reader = Command::new(sub)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "1883",
            "-q",
            "1",
            "-v",
            "-C",
            "2",
            "-W",
            "60",
        ])
        .arg("-t")
        .arg(format!("{prefix}/#"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let task = dir.path().join("task.toml");
    std::fs::write(
        &task,
        format!(
            "[agent]\nid = \"edge-1\"\ndata_dir = {:?}\n\n[[task]]\nname = \"host\"\nschedule = {{ every = \"10s\" }}\n\
             metrics = [\"memory.*\", \"skymeter.runs\"]\ncollect = [{{ plugin = \"host\" }}, {{ plugin = \"internal\" }}]\n\
             publish = [{{ plugin = \"mqtt\", url = \"mqtt://127.0.0.1:1883\", topic_prefix = \"{prefix}\" }}]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = skymeter(&["run", "--once", "-c", task.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = reader.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&got.stdout);
    let lines: Vec<(&str, serde_json::Value)> = text
        .lines()
        .map(|l| {
            let (topic, payload) = l.split_once(' ').unwrap();
            (topic, serde_json::from_str(payload).unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let host = lines
        .iter()
        .find(|(t, _)| t.starts_with(&format!("{prefix}/host/")))
        .unwrap_or_else(|| panic!("no host message: {text}"));
    assert_eq!(host.1["agent_id"], "edge-1");
    assert_eq!(host.1["resource"]["kind"], "host");
    let points = host.1["points"].as_array().unwrap();
    assert!(
        points
            .iter()
            .any(|p| p["metric"] == "memory.total" && p["value"].as_f64() > Some(0.0)),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|(t, _)| t.starts_with(&format!("{prefix}/skymeter/"))),
        "{text}"
    );
    // Delivered: nothing left in the buffer.
    let buffer = dir.path().join("data/buffer/host/mqtt");
    let left: Vec<_> = std::fs::read_dir(&buffer)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "gz"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
