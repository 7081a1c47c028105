//! `skymeter costs export` against a real `skymeter server` seeded through
//! `POST /api/v1/ingest`: a FOCUS 1.2 CSV to standard output, a Parquet file with `-o`,
//! filters, `--help`, and exit codes (2 for usage, 1 for a failure).

mod common;
use common::*;
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource};
use std::process::Command;

fn export(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["costs", "export"])
        .args(args)
        .env_remove("SKYMETER_TOKEN")
        .env_remove("SKYMETER_SERVER")
        .output()
        .unwrap()
}

#[test]
fn costs_export_writes_focus_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, token) = server_with_token(dir.path());
    let client = reqwest::blocking::Client::new();
    let t0: chrono::DateTime<chrono::Utc> = "2026-11-03T00:00:00Z".parse().unwrap();
    let mut b = Batch::new("agent", "seed", t0);
    for (i, source) in CostSource::ALL.into_iter().enumerate() {
        let start = t0 + chrono::Duration::hours(i as i64);
        let mut c = Cost::billed(
            "Amazon Web Services",
            ChargeCategory::Usage,
            1.0 + i as f64,
            1.0 + i as f64,
            "USD".into(),
            start,
            start + chrono::Duration::hours(1),
            "Amazon Elastic Compute Cloud - Compute".into(),
        );
        c.x_source = source;
        b.costs.push(c);
    }
    let resp = client
        .post(format!("{base}/api/v1/ingest"))
        .bearer_auth(&token)
        .json(&b)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());

    let out = export(&["--server", &base, "--token", &token]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = skymeter_focus::check::check_csv(&out.stdout[..]).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.rows, 3);

    let out = export(&["--server", &base, "--token", &token, "--source", "rated"]);
    assert_eq!(
        skymeter_focus::check::check_csv(&out.stdout[..])
            .unwrap()
            .rows,
        1
    );

    let file = dir.path().join("costs.parquet");
    let out = export(&[
        "--server",
        &base,
        "--token",
        &token,
        "--format",
        "parquet",
        "--start",
        "2026-11-03T01:00:00Z",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("exported"), "{}", stderr(&out));
    assert!(!dir.path().join("costs.parquet.part").exists());
    let bytes = bytes::Bytes::from(std::fs::read(&file).unwrap());
    let report = skymeter_focus::check::check_parquet(bytes).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.rows, 2);

    // The server's 400 is a usage error (2); a missing token a failure (1).
    let out = export(&["--server", &base, "--token", &token, "--start", "someday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`start`"), "{}", stderr(&out));
    let out = export(&["--server", &base]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("read"), "{}", stderr(&out));
}

#[test]
fn costs_export_help_and_usage_errors() {
    let out = skymeter(&["costs", "export", "--help"]);
    assert!(out.status.success());
    for flag in [
        "--server", "--token", "--format", "--start", "--end", "--source", "--output",
    ] {
        assert!(stdout(&out).contains(flag), "{flag}: {}", stdout(&out));
    }
    let out = export(&["--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = export(&["--source", "guessed"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Nothing listens there: a failure, not a usage error.
    let port = free_port();
    let out = export(&["--server", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
