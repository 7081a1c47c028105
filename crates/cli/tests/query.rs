//! `skymeter query` against a real `skymeter server` seeded through `POST /api/v1/ingest`:
//! table and JSON output, instant and range, tokens from the flag and the environment,
//! exit codes.

mod common;
use common::*;
use skymeter_model::{Batch, Point, ResourceRef, Stat, Unit};
use std::process::Command;

/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600;

fn query(args: &[&str], token_env: Option<&str>) -> std::process::Output {
    let mut c = Command::new(bin());
    c.arg("query")
        .args(args)
        .env_remove("SKYMETER_TOKEN")
        .env_remove("SKYMETER_SERVER");
    if let Some(t) = token_env {
        c.env("SKYMETER_TOKEN", t);
    }
    c.output().unwrap()
}

#[test]
fn query_prints_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, token) = server_with_token(dir.path());
    let client = reqwest::blocking::Client::new();
    let mut b = Batch::new(
        "agent",
        "seed",
        chrono::DateTime::from_timestamp(T0, 0).unwrap(),
    );
    for (i, (region, id)) in [
        ("us-east-1", "i-a"),
        ("us-east-1", "i-b"),
        ("eu-west-1", "i-c"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = ResourceRef {
            provider: "aws".into(),
            account: "111".into(),
            region: region.into(),
            id: id.into(),
        };
        for k in 1..=10i64 {
            b.points.push(Point {
                metric: "cpu.utilization".into(),
                unit: Unit::Percent,
                stat: Stat::Avg,
                period_s: 60,
                ts: chrono::DateTime::from_timestamp(T0 + 60 * k, 0).unwrap(),
                value: (10 * (i as i64 + 1) + k) as f64,
                resource: r.clone().into(),
                labels: Default::default(),
            });
        }
    }
    let resp = client
        .post(format!("{base}/api/v1/ingest"))
        .bearer_auth(&token)
        .json(&b)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Instant, table: one row per series with its value and time.
    let at = "2026-01-01T00:10:00Z";
    let out = query(
        &[
            "avg by (region) (cpu_utilization_percent)",
            "--time",
            at,
            "--server",
            &base,
            "--token",
            &token,
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("region=")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let row = |region: &str| {
        rows.iter()
            .find(|l| l.contains(region))
            .copied()
            .unwrap_or_else(|| panic!("{region}: {text}"))
    };
    assert!(
        row("\"us-east-1\"").contains(" 25 ")
            && row("\"us-east-1\"").contains("2026-01-01T00:10:00Z"),
        "{text}"
    );
    assert!(row("\"eu-west-1\"").contains(" 40 "), "{text}");

    // Range, JSON (the API's data), the token from the environment.
    let out = query(
        &[
            "sum(cpu_utilization_percent{region=\"us-east-1\"})",
            "--range",
            "2m",
            "--step",
            "1m",
            "--end",
            at,
            "--server",
            &base,
            "--format",
            "json",
        ],
        Some(&token),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let data: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(data["resultType"], "matrix");
    assert_eq!(
        data["result"][0]["values"],
        serde_json::json!([[T0 + 480, "46"], [T0 + 540, "48"], [T0 + 600, "50"]])
    );

    // Range, table: points, first, last, min, max.
    let out = query(
        &[
            "cpu_utilization_percent{resource_id=\"i-c\"}",
            "--range",
            "5m",
            "--step",
            "1m",
            "--end",
            at,
            "--server",
            &base,
        ],
        Some(&token),
    );
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.contains("i-c"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row
        .split('┆')
        .map(|c| c.trim_matches(|ch: char| ch.is_whitespace() || ch == '│'))
        .collect();
    assert_eq!(
        &cells[1..],
        [
            "6",
            "35 @ 2026-01-01T00:05:00Z",
            "40 @ 2026-01-01T00:10:00Z",
            "35",
            "40"
        ],
        "{text}"
    );

    // Nothing matches: said so.
    let out = query(
        &[
            "nothing_here",
            "--time",
            at,
            "--server",
            &base,
            "--token",
            &token,
        ],
        None,
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "(no series)");

    // A bad query is a usage error (2); no token a runtime one (1) that says what to do.
    let out = query(&["sum(", "--server", &base, "--token", &token], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad_data"), "{}", stderr(&out));
    let out = query(&["1", "--server", &base], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("SKYMETER_TOKEN"), "{}", stderr(&out));
    let out = query(&["1", "--time", "yesterday", "--server", &base], None);
    assert_eq!(out.status.code(), Some(2));
    // Nobody listening: a runtime error naming the URL.
    let out = query(
        &[
            "1",
            "--server",
            &format!("http://127.0.0.1:{}", free_port()),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is the server running"),
        "{}",
        stderr(&out)
    );
}
