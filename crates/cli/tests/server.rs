//! The server and agents end to end through the real binary: `skymeter up`, lossless
//! delivery across server crashes, tokens and scopes.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

impl Proc {
    fn signal(&mut self, sig: &str) {
        let pid = self.0.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// SIGTERM, then the exit status within `within`.
    fn stop(mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("-TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < within, "did not stop within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn get(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().unwrap_or(serde_json::Value::Null))
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Polls `f` until it returns Some, up to `within`.
fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn up_serves_the_local_host_within_30_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let up = spawn(
        &["up", "--listen", &listen, "--data-dir", "data"],
        dir.path(),
    );
    let started = Instant::now();
    let health = eventually(Duration::from_secs(10), || {
        let (status, body) = get(&format!("{base}/health"), None);
        (status == 200).then_some(body)
    });
    assert_eq!(health.expect("/health answers")["status"], "ok");
    let host = eventually(Duration::from_secs(30), || {
        let (_, body) = get(&format!("{base}/api/v1/resources?provider=host"), None);
        body["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    })
    .expect("the local host is listed within 30 s");
    let key = host["key"].as_str().unwrap().to_string();
    let points = eventually(Duration::from_secs(30), || {
        let (_, body) = get(
            &format!(
                "{base}/api/v1/points?metric=cpu.utilization&resource={}&start=-10m",
                encode(&key)
            ),
            None,
        );
        let series = body["series"].as_array()?.clone();
        let total: usize = series
            .iter()
            .map(|s| s["points"].as_array().map_or(0, |p| p.len()))
            .sum();
        (total > 0).then_some(series)
    })
    .expect("cpu.utilization points within 30 s");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(points.iter().all(|s| s["unit"] == "percent"));
    let (_, agents) = get(&format!("{base}/api/v1/agents"), None);
    assert_eq!(agents["items"][0]["status"], "healthy", "{agents}");
    assert!(up.stop(Duration::from_secs(15)).success());
}

/// The agent sends continuously while the server is killed with SIGKILL and restarted twice;
/// afterwards the server holds exactly what the agent produced: no loss, no duplicates.
#[test]
fn delivery_survives_two_server_crashes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            r#"
[agent]
id = "crash-test"
data_dir = "agent-data"

[[task]]
name = "load"
schedule = {{ every = "200ms" }}
collect = [{{ plugin = "host", warmup = "50ms" }}]
process = [{{ plugin = "filter", include = ["load.*", "memory.*", "process.count"] }}]
publish = [{{ plugin = "server", url = "{base}", heartbeat_interval = "1s", timeout = "2s" }}, {{ plugin = "file", path = "produced.jsonl" }}]
"#
        ),
    )
    .unwrap();
    let server_args = [
        "server",
        "--listen",
        listen.as_str(),
        "--data-dir",
        "server-data",
        "--no-auth",
    ];
    let mut server = spawn(&server_args, dir.path());
    eventually(Duration::from_secs(10), || {
        (get(&format!("{base}/health"), None).0 == 200).then_some(())
    })
    .expect("server up");
    let agent = spawn(&["run", "-c", "agent.toml"], dir.path());
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2500));
        server.signal("-KILL");
        let _ = server.0.wait();
        std::thread::sleep(Duration::from_millis(1500));
        server = spawn(&server_args, dir.path());
        eventually(Duration::from_secs(10), || {
            (get(&format!("{base}/health"), None).0 == 200).then_some(())
        })
        .expect("server back");
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        agent.stop(Duration::from_secs(30)).success(),
        "the agent flushes its buffer and exits 0"
    );

    let produced = json_lines(&std::fs::read_to_string(dir.path().join("produced.jsonl")).unwrap());
    let produced_points = points(&produced).len();
    assert!(produced_points > 100, "{produced_points}");
    // Everything the agent produced is in the server, once.
    let stored = eventually(Duration::from_secs(20), || {
        let mut total = 0u64;
        let mut cursor = String::new();
        loop {
            let (status, body) = get(&format!("{base}/api/v1/series?limit=1000{cursor}"), None);
            if status != 200 {
                return None;
            }
            // The server's own agent series (heartbeats as `agent.*` points of provider
            // `skymeter`) are not what the agent produced.
            total += body["items"]
                .as_array()?
                .iter()
                .filter(|s| s["resource"]["provider"] != "skymeter")
                .map(|s| s["points"].as_u64().unwrap_or(0))
                .sum::<u64>();
            match body["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={}", encode(c)),
                None => break,
            }
        }
        (total as usize == produced_points).then_some(total)
    });
    assert_eq!(
        stored,
        Some(produced_points as u64),
        "stored points equal produced points"
    );
    let (_, metrics) = get(&format!("{base}/health"), None);
    assert_eq!(metrics["status"], "ok");
    drop(server);
}

#[test]
fn tokens_and_scopes_guard_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_of = |scope: &str| {
        let out = skymeter(&[
            "token",
            "create",
            "--scope",
            scope,
            "--name",
            scope,
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let ingest = token_of("ingest");
    let read = token_of("read");
    assert_ne!(ingest, read);
    let list = stdout(&skymeter(&[
        "token",
        "list",
        "--data-dir",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert!(
        !list.contains(&ingest) && !list.contains(&read),
        "tokens are never shown again"
    );
    let db_bytes: Vec<u8> = walk(&data)
        .into_iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(
        !contains(&db_bytes, ingest.as_bytes()),
        "only a hash is stored"
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let server = spawn(
        &[
            "server",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    eventually(Duration::from_secs(10), || {
        (get(&format!("{base}/health"), None).0 == 200).then_some(())
    })
    .expect("up");
    assert_eq!(get(&format!("{base}/api/v1/resources"), None).0, 401);
    assert_eq!(
        get(&format!("{base}/api/v1/resources"), Some("sky_bogus_token")).0,
        401
    );
    assert_eq!(
        get(&format!("{base}/api/v1/resources"), Some(&ingest)).0,
        403
    );
    assert_eq!(get(&format!("{base}/api/v1/resources"), Some(&read)).0, 200);

    // Tokens are managed beside the running server, and take effect at once.
    let late = token_of("admin");
    assert_eq!(get(&format!("{base}/api/v1/resources"), Some(&late)).0, 200);
    let listed = json_lines(&stdout(&skymeter(&[
        "token",
        "list",
        "--data-dir",
        data.to_str().unwrap(),
        "--format",
        "json",
    ])));
    let id = listed.iter().find(|t| t["name"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = skymeter(&["token", "revoke", &id, "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        get(&format!("{base}/api/v1/resources"), Some(&late)).0,
        401,
        "revoked"
    );

    // A --no-auth server must listen on loopback only.
    let out = skymeter(&[
        "server",
        "--listen",
        "0.0.0.0:0",
        "--no-auth",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
    assert!(server.stop(Duration::from_secs(15)).success());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Bad input against the real binary and store: each gets the right 4xx with a JSON error,
/// and nothing is stored; a good batch is stored whole, and once.
#[test]
fn bad_batches_are_refused_whole_and_good_ones_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let server = spawn(
        &[
            "server",
            "--listen",
            &listen,
            "--data-dir",
            "data",
            "--no-auth",
        ],
        dir.path(),
    );
    eventually(Duration::from_secs(10), || {
        (get(&format!("{base}/health"), None).0 == 200).then_some(())
    })
    .expect("up");
    let client = reqwest::blocking::Client::new();
    let post = |body: Vec<u8>| {
        let r = client
            .post(format!("{base}/api/v1/ingest"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            r.json::<serde_json::Value>()
                .unwrap_or(serde_json::Value::Null),
        )
    };
    let point = |ts: &str| {
        serde_json::json!({"metric": "cpu.utilization", "unit": "percent", "stat": "avg", "period_s": 60, "ts": ts,
            "value": 1.5, "resource": {"provider": "host", "account": "", "region": "", "id": "h1"}})
    };
    let mut good: Vec<serde_json::Value> = (0..20)
        .map(|i| point(&format!("2026-11-22T10:{i:02}:00Z")))
        .collect();
    let batch = |points: &[serde_json::Value]| {
        serde_json::json!({"schema": 1, "batch_id": uuid::Uuid::now_v7(), "agent_id": "a", "task": "t",
            "collected_at": "2026-11-22T10:30:00Z", "points": points})
    };

    let (status, body) = post(b"{\"schema\": 1, ".to_vec());
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let mut wrong = good.clone();
    wrong[17]["ts"] = serde_json::json!("yesterday");
    let (status, body) = post(serde_json::to_vec(&batch(&wrong)).unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("points[17].ts"), "{body}");
    let mut missing = good.clone();
    missing[3].as_object_mut().unwrap().remove("unit");
    let (status, body) = post(serde_json::to_vec(&batch(&missing)).unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("points[3]") && body.to_string().contains("unit"),
        "{body}"
    );
    let mut nan = good.clone();
    nan[5]["metric"] = serde_json::json!("bad name");
    let (status, body) = post(serde_json::to_vec(&batch(&nan)).unwrap());
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_batch")),
        "{body}"
    );
    assert_eq!(
        body["error"]["fields"][0]["path"], "points[5].metric",
        "{body}"
    );
    // Over the 32 MiB limit. curl sends `Expect: 100-continue`, so it reads the early 413
    // that the server answers from the Content-Length alone, without sending the body.
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 40 << 20]).unwrap();
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            "content-type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", big.display()))
        .arg(format!("{base}/api/v1/ingest"))
        .args(["-w", "\n%{http_code}"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (json, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "413", "{text}");
    let body: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    let (_, series) = get(&format!("{base}/api/v1/series"), None);
    assert_eq!(
        series["items"].as_array().map(|a| a.len()),
        Some(0),
        "nothing stored: {series}"
    );

    good.truncate(20);
    let ok = serde_json::to_vec(&batch(&good)).unwrap();
    let (status, first) = post(ok.clone());
    assert_eq!(
        (
            status,
            first["duplicate"].as_bool(),
            first["points"].as_u64()
        ),
        (200, Some(false), Some(20)),
        "{first}"
    );
    let (status, again) = post(ok);
    assert_eq!(
        (status, again["duplicate"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    let (_, series) = get(&format!("{base}/api/v1/series"), None);
    assert_eq!(series["items"][0]["points"], 20, "{series}");
    assert!(server.stop(Duration::from_secs(15)).success());
}

#[test]
fn server_reads_its_config_file_and_locates_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("server.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"from-file\"\nno_auth = true\nretention = \"90d\"\n"),
    )
    .unwrap();
    let server = spawn(&["server", "-c", "server.toml"], dir.path());
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(10), || {
        (get(&format!("{base}/health"), None).0 == 200).then_some(())
    })
    .expect("up");
    assert_eq!(
        get(&format!("{base}/api/v1/resources"), None).0,
        200,
        "no_auth from the file"
    );
    assert!(
        dir.path().join("from-file").is_dir(),
        "data_dir from the file"
    );
    assert!(server.stop(Duration::from_secs(15)).success());

    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\nretension = \"90d\"\n",
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["server", "-c", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.toml:3:1: unknown field `retension`"),
        "{}",
        stderr(&out)
    );

    // Budgets, anomalies, the webhook: a mistake names the file, the line and the setting.
    let good = "[server]\nlisten = \"127.0.0.1:1\"\nno_auth = true\n\n[[budget]]\nname = \"eng\"\namount = 100\n";
    for (extra, wanted) in [
        (
            "\n[[budget]]\nname = \"eng\"\namount = 5\n",
            "`name` is the name of an earlier budget",
        ),
        (
            "\n[[budget]]\nname = \"zero\"\namount = 0\n",
            "[[budget]] \"zero\": `amount` must be a positive number",
        ),
        (
            "\n[anomalies]\nthreshold = -1\n",
            "bad.toml:10:13: key `anomalies.threshold`: anomaly setting `threshold`",
        ),
        (
            "\n[anomalies]\ngroup_by = [\"sku\"]\n",
            "anomaly setting `group_by`: has `sku`",
        ),
        (
            "\n[webhook]\nurl = \"ftp://hooks.example.com\"\n",
            "bad.toml:10:7: key `webhook.url`: webhook `url`",
        ),
        (
            "\n[savings]\nevery = \"0s\"\n",
            "bad.toml:10:9: key `savings.every`: use at least 1s",
        ),
    ] {
        std::fs::write(dir.path().join("bad.toml"), format!("{good}{extra}")).unwrap();
        let out = skymeter_in(dir.path(), &["server", "-c", "bad.toml"]);
        assert_eq!(out.status.code(), Some(2), "{extra}: {}", stderr(&out));
        assert!(stderr(&out).contains(wanted), "{extra}: {}", stderr(&out));
    }
}

#[test]
fn a_taken_port_fails_at_once_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = skymeter_in(
        dir.path(),
        &["up", "--listen", &listen, "--data-dir", "data"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no hanging on a dead address"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot listen on {listen}")),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("data/agent/buffer").exists(),
        "the agent never started"
    );
}

/// Issue 12: a series whose points retention dropped leaves the server (its series count,
/// `/metrics` `skymeter_store_series`), and a restart does not bring it back.
#[test]
fn series_emptied_by_retention_leave_the_server_and_stay_gone_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("server.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nno_auth = true\nretention = \"2h\"\n"),
    )
    .unwrap();
    let series_count = || -> Option<u64> {
        let text = reqwest::blocking::get(format!("{base}/metrics"))
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("skymeter_store_series "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    let start = || {
        let server = spawn(&["server", "-c", "server.toml"], dir.path());
        eventually(Duration::from_secs(10), || {
            (get(&format!("{base}/health"), None).0 == 200).then_some(())
        })
        .expect("up");
        server
    };

    // Retention runs at start (nothing to drop yet), then hourly: the 5-hour-old point
    // ingested now stays until the next run, which the restart below brings forward.
    let server = start();
    let now = chrono::Utc::now();
    let point = |id: &str, ts: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({"metric": "cpu.utilization", "unit": "percent", "stat": "avg", "period_s": 60,
            "ts": ts.to_rfc3339(), "value": 1.5, "resource": {"provider": "host", "account": "", "region": "", "id": id}})
    };
    let batch = serde_json::json!({"schema": 1, "batch_id": uuid::Uuid::now_v7(), "agent_id": "a", "task": "t",
        "collected_at": now.to_rfc3339(),
        "points": [point("old", now - chrono::Duration::hours(5)), point("new", now - chrono::Duration::minutes(5))]});
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/ingest"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&batch).unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(series_count(), Some(2));
    assert!(server.stop(Duration::from_secs(15)).success());

    let server = start();
    assert_eq!(
        eventually(Duration::from_secs(10), || series_count()
            .filter(|n| *n == 1)),
        Some(1),
        "the series retention emptied is gone"
    );
    let (_, values) = get(&format!("{base}/api/v1/label/resource_id/values"), None);
    assert_eq!(values["data"], serde_json::json!(["new"]), "{values}");
    assert!(server.stop(Duration::from_secs(15)).success());

    let server = start();
    assert_eq!(series_count(), Some(1), "a restart does not bring it back");
    assert!(server.stop(Duration::from_secs(15)).success());
}

/// `skymeter budgets` and `skymeter anomalies` against a server configured with a budget:
/// cost posted through the API shows in the budget's spend, the table names the threshold
/// crossed, and a wrong argument exits 2.
#[test]
fn budgets_and_anomalies_commands_read_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("server.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nno_auth = true\n\n\
             [[budget]]\nname = \"ec2\"\namount = 10\nscope = {{ service = \"Amazon EC2\" }}\n\
             thresholds = [{{ percent = 50 }}]\n"
        ),
    )
    .unwrap();
    let server = spawn(&["server", "-c", "server.toml"], dir.path());
    wait_healthy(&base);
    let today = chrono::Utc::now().date_naive();
    let start = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let batch = serde_json::json!({
        "schema": 1,
        "batch_id": uuid::Uuid::now_v7().to_string(),
        "agent_id": "agent-1",
        "task": "billing",
        "collected_at": chrono::Utc::now().to_rfc3339(),
        "costs": [{
            "BilledCost": 7.25, "EffectiveCost": 7.25, "BillingCurrency": "USD",
            "ChargePeriodStart": start.to_rfc3339(),
            "ChargePeriodEnd": (start + chrono::Duration::days(1)).to_rfc3339(),
            "ChargeCategory": "Usage", "ProviderName": "Amazon Web Services",
            "ServiceName": "Amazon EC2", "SubAccountId": "111", "x_source": "billed"
        }],
    });
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/ingest"))
        .json(&batch)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());

    let out = skymeter(&["budgets", "--server", &base, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["budgets"][0]["name"], "ec2");
    assert_eq!(answer["budgets"][0]["actual"], 7.25);
    assert_eq!(answer["budgets"][0]["thresholds"][0]["crossed"], true);
    let out = skymeter(&["budgets", "--server", &base]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for want in ["ec2", "7.25", "10.00", "72.5 %", "50.0 % actual"] {
        assert!(table.contains(want), "{want} in\n{table}");
    }

    // One day of cost is no history: no anomaly, said plainly.
    let out = skymeter(&["anomalies", "--server", &base]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("no cost anomalies in the days before"),
        "{}",
        stdout(&out)
    );
    let out = skymeter(&["anomalies", "--server", &base, "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("YYYY-MM-DD"), "{}", stderr(&out));
    assert!(server.stop(Duration::from_secs(15)).success());
}
