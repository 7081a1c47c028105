//! The server's rating job end to end through the real binary: a fleet's usage ingested
//! over HTTP, rated every hour by the rules of `[rating]`, stored as `rated` cost lines;
//! the status, a quote, and a re-rate that replaces the range's lines (rating twice changes
//! nothing; a service dropped from the rules loses its lines).

mod common;

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const RULES: &str = r#"
[[service]]
metric = "instance"
unit = "hour"
usage = { kind = "compute.instance" }
groupby = ["id", "account", "region"]
metadata = ["instance_type", "provider"]
category = "Compute"

[[service]]
metric = "volume"
unit = "GiB-hour"
usage = { kind = "storage.volume", attribute = "size_gib" }
groupby = ["id", "account"]
category = "Storage"

[[service]]
metric = "cpu"
unit = "percent"
usage = { metric = "cpu.utilization", aggregate = "avg" }
groupby = ["id", "account"]

[[hashmap.service]]
name = "instance"

[[hashmap.service.field]]
name = "instance_type"
mapping = [
  { value = "m5.large", type = "flat", cost = "0.096" },
  { value = "t3.micro", type = "flat", cost = "0.0104" },
]

[[hashmap.service.field]]
name = "account"
mapping = [{ value = "team-b", type = "rate", cost = "1.5" }]

[[hashmap.service]]
name = "volume"
mapping = [{ type = "flat", cost = "0.0001" }]

[[hashmap.service]]
name = "cpu"
mapping = [{ type = "flat", cost = "0.001" }]
"#;

fn resource(kind: &str, id: &str, account: &str, attrs: Value, at: DateTime<Utc>) -> Value {
    json!({"provider": "aws", "account": account, "region": "us-east-1", "kind": kind,
           "native_type": "", "id": id, "name": id, "attributes": attrs,
           "observed_at": at.to_rfc3339()})
}

/// The fleet, observed at `at`: two instances in two teams and a 100 GiB volume.
fn fleet(at: DateTime<Utc>) -> Vec<Value> {
    vec![
        resource(
            "compute.instance",
            "i-1",
            "team-a",
            json!({"instance_type": "m5.large"}),
            at,
        ),
        resource(
            "compute.instance",
            "i-2",
            "team-b",
            json!({"instance_type": "t3.micro"}),
            at,
        ),
        resource(
            "storage.volume",
            "vol-1",
            "team-a",
            json!({"size_gib": 100}),
            at,
        ),
    ]
}

fn batch(resources: Vec<Value>, points: Vec<Value>) -> Value {
    json!({"schema": 1, "batch_id": uuid::Uuid::now_v7().to_string(), "agent_id": "seed",
           "task": "seed", "collected_at": Utc::now().to_rfc3339(),
           "resources": resources, "points": points})
}

fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url)
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn start_server(dir: &Path, port: u16, rules: &str, t0: DateTime<Utc>) -> Proc {
    std::fs::write(dir.join("rules.toml"), rules).unwrap();
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nno_auth = true\n\n\
             [rating]\nrules = \"rules.toml\"\nperiod = \"1h\"\nwait_periods = 0\nstart = \"{}\"\n",
            t0.to_rfc3339()
        ),
    )
    .unwrap();
    let server = spawn(&["server", "-c", "server.toml"], dir);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base);
    server
}

/// Rated totals per account over the three seeded hours.
fn rated_by_account(base: &str, t0: DateTime<Utc>) -> Vec<(String, f64, u64)> {
    let end = t0 + Span::hours(3);
    let v = get(&format!(
        "{base}/api/v1/costs?source=rated&group_by=account&start={}&end={}",
        t0.timestamp(),
        end.timestamp()
    ));
    v["groups"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|g| {
            (
                g["group"]["account"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                g["billed_cost"].as_f64().unwrap(),
                g["lines"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The fields of one CSV line (RFC 4180: quoted fields, doubled quotes; no line breaks in
/// fields, which the export does not write for these lines).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_server_rates_each_hour_per_scope_and_rerates_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let now = Utc::now();
    let t0 = now.duration_trunc(Span::hours(1)).unwrap() - Span::hours(3);
    let server = start_server(dir.path(), port, RULES, t0);

    // Seen at t0 and now: present during the three whole hours since t0. i-1's CPU
    // averages 20 % in each hour.
    let mut points = Vec::new();
    for h in 0..3 {
        for (min, v) in [(20, 10.0), (40, 30.0)] {
            let ts = t0 + Span::hours(h) + Span::minutes(min);
            points.push(json!({"metric": "cpu.utilization", "unit": "percent", "stat": "avg",
                "period_s": 60, "ts": ts.to_rfc3339(), "value": v,
                "resource": {"provider": "aws", "account": "team-a", "region": "us-east-1", "id": "i-1"}}));
        }
    }
    assert_eq!(
        post(&base, "/api/v1/ingest", &batch(fleet(t0), points)).0,
        200
    );
    assert_eq!(
        post(&base, "/api/v1/ingest", &batch(fleet(Utc::now()), vec![])).0,
        200
    );

    // The job wakes for its next period, or at once when told to rate the seeded range.
    let (code, queued) = post(
        &base,
        "/api/v1/rating/rerate",
        &json!({"from": t0.to_rfc3339(), "to": (t0 + Span::hours(3)).to_rfc3339()}),
    );
    assert_eq!(code, 202, "{queued}");
    // Per hour: team-a 0.096 (m5.large) + 100 GiB × 0.0001 + 20 % × 0.001 = 0.126;
    // team-b 0.0104 × 1.5 = 0.0156. Lines: 2 for team-a's instance and volume, 1 cpu,
    // 1 for team-b, each hour.
    let want = vec![
        ("team-a".to_string(), 0.378, 9u64),
        ("team-b".to_string(), 0.0468, 3u64),
    ];
    let got = eventually(Duration::from_secs(30), || {
        let got = rated_by_account(&base, t0);
        (got.len() == 2
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.0 == w.0 && close(g.1, w.1) && g.2 == w.2))
        .then_some(got)
    });
    assert!(
        got.is_some(),
        "rated totals: {:?}",
        rated_by_account(&base, t0)
    );

    // The status names both scopes, soon rated up to the end of the seeded hours by the
    // job's own round (which follows the re-rate).
    let status = eventually(Duration::from_secs(30), || {
        let out = skymeter(&["rating", "status", "--server", &base, "--format", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        let done = status["scopes"].as_array()?.iter().all(|s| {
            s["rated_until"]
                .as_str()
                .and_then(|u| u.parse::<DateTime<Utc>>().ok())
                .is_some_and(|u| u >= t0 + Span::hours(3))
        });
        (done && status["scopes"].as_array()?.len() == 2).then_some(status)
    })
    .expect("both scopes rated");
    assert_eq!(status["enabled"], true);
    let scopes: Vec<&str> = status["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["team-a", "team-b"], "{status}");
    let out = skymeter(&["rating", "status", "--server", &base]);
    assert!(stdout(&out).contains("team-b"), "{}", stdout(&out));

    // A rated line as FOCUS: the columns rating fills, in the export.
    let csv = reqwest::blocking::get(format!(
        "{base}/api/v1/costs/export?format=csv&source=rated&start={}&end={}",
        t0.timestamp(),
        (t0 + Span::hours(1)).timestamp()
    ))
    .unwrap()
    .text()
    .unwrap();
    let mut rows = csv.lines().map(csv_fields);
    let header = rows.next().unwrap();
    let line = rows
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r)
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .find(|r| r["ResourceId"] == "i-2")
        .unwrap_or_else(|| panic!("no rated line of i-2 in\n{csv}"));
    for (column, want) in [
        ("x_source", "rated"),
        ("ServiceName", "instance"),
        ("ServiceCategory", "Compute"),
        ("SubAccountId", "team-b"),
        ("ProviderName", "Amazon Web Services"),
        ("InvoiceIssuerName", "skymeter"),
        ("ChargeCategory", "Usage"),
        ("ChargeFrequency", "Usage-Based"),
        ("PricingQuantity", "1.0"),
        ("PricingUnit", "hour"),
        ("RegionId", "us-east-1"),
        ("BillingCurrency", "USD"),
    ] {
        assert_eq!(line[column], want, "{column}: {line:?}");
    }
    for cost in ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"] {
        let v: f64 = line[cost].parse().unwrap();
        assert!(close(v, 0.0156), "{cost}: {line:?}");
    }
    assert_eq!(
        line["ChargePeriodStart"],
        t0.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );

    // A quote with the same rules: two hours of an m5.large in team-b.
    let (code, q) = post(
        &base,
        "/api/v1/rating/quote",
        &json!({"items": [{"service": "instance", "qty": 2,
                           "attributes": {"instance_type": "m5.large", "account": "team-b"}}]}),
    );
    assert_eq!(code, 200, "{q}");
    assert_eq!(q["total"], "0.288");
    let (code, q) = post(
        &base,
        "/api/v1/rating/quote",
        &json!({"items": [{"service": "gpu", "qty": 1}]}),
    );
    assert_eq!(code, 400);
    assert!(
        q["error"]["message"].as_str().unwrap().contains("`gpu`"),
        "{q}"
    );

    // The same through the command, and the rules it prices with.
    let out = skymeter(&[
        "rating",
        "quote",
        "--server",
        &base,
        "--service",
        "instance",
        "--qty",
        "2",
        "--attr",
        "instance_type=m5.large",
        "--attr",
        "account=team-b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0.288");
    let out = skymeter(&["rating", "rules", "--server", &base]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    assert!(
        listed.contains("m5.large") && listed.contains("0.0104"),
        "{listed}"
    );
    assert!(listed.contains("valid; runs hashmap"), "{listed}");

    // Rating the same range again changes nothing.
    let out = skymeter(&[
        "rating",
        "rerate",
        "--server",
        &base,
        "--wait",
        "--from",
        &t0.to_rfc3339(),
        "--to",
        &(t0 + Span::hours(3)).to_rfc3339(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("done"), "{}", stdout(&out));
    let again = rated_by_account(&base, t0);
    assert!(
        again
            .iter()
            .zip(&want)
            .all(|(g, w)| g.0 == w.0 && close(g.1, w.1) && g.2 == w.2),
        "{again:?}"
    );
    drop(server);

    // Without the volume service in the rules, a re-rate removes the volume's lines.
    let fewer = RULES
        .replace("metric = \"volume\"", "metric = \"volume-gone\"")
        .replace(
            "usage = { kind = \"storage.volume\", attribute = \"size_gib\" }\n",
            "",
        );
    let server = start_server(dir.path(), port, &fewer, t0);
    let out = skymeter(&[
        "rating",
        "rerate",
        "--server",
        &base,
        "--wait",
        "--format",
        "json",
        "--from",
        &t0.to_rfc3339(),
        "--to",
        &(t0 + Span::hours(3)).to_rfc3339(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state"], "done");
    assert_eq!(r["deleted"], 12, "{r}");
    assert_eq!(r["lines"], 9, "{r}");
    let got = rated_by_account(&base, t0);
    assert!(close(got[0].1, 0.348) && got[0].2 == 6, "{got:?}");
    drop(server);
}

#[test]
fn a_bad_rating_section_is_refused_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[service]]\nmetric = \"instance\"\nunit = \"hour\"\nusage = { kind = \"compute.instance\", metric = \"cpu\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("server.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\n[rating]\nrules = \"rules.toml\"\n",
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["server", "-c", "server.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("rules.toml:4"), "{err}");
    assert!(err.contains("usage: give `kind`"), "{err}");

    // Rules that rate nothing from the store: the job would do nothing, so the server says so.
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[service]]\nmetric = \"instance\"\nunit = \"hour\"\n",
    )
    .unwrap();
    let out = skymeter_in(dir.path(), &["server", "-c", "server.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no service with `usage`"),
        "{}",
        stderr(&out)
    );
}
