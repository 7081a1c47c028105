//! Cost lines as a user gets them, out as FOCUS: an agent collects the moto AWS scenario
//! (EC2 instances and a volume priced from the shipped table: `estimated`; Cost Explorer:
//! `billed`) into a running server, whose rating job prices a host fleet (`rated`); then
//! `skymeter costs export` writes each source as CSV and Parquet, and FinOps Foundation's
//! `focus-validator` finds no failed check in any of the six files.

#![cfg(feature = "aws")]

mod common;

use chrono::{Duration as Span, DurationRound, Utc};
use common::*;
use serde_json::json;
use skymeter_plugins::collectors::aws::standin::Moto;
use skymeter_testkit::focus_validator;
use std::process::Command;

/// Three m5.large instances and a 100 GiB gp3 volume, and yesterday's Cost Explorer answer.
const SEED: &str = r#"
import boto3, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
img = ec2.describe_images()["Images"][0]["ImageId"]
ec2.run_instances(ImageId=img, InstanceType="m5.large", MinCount=3, MaxCount=3)
ec2.create_volume(AvailabilityZone="us-east-1a", Size=100, VolumeType="gp3")
"#;

const RULES: &str = r#"
[[service]]
metric = "host"
unit = "hour"
usage = { kind = "host" }
groupby = ["id", "account"]
category = "Compute"

[[hashmap.service]]
name = "host"
mapping = [{ type = "flat", cost = "0.012" }]
"#;

#[test]
fn billed_estimated_and_rated_lines_export_as_focus_the_validator_accepts() {
    let test = "billed_estimated_and_rated_lines_export_as_focus_the_validator_accepts";
    let Some(m) = tool::require_tool(test, Moto::start()) else {
        return;
    };
    let Some(validator) = tool::require_tool(test, focus_validator::find()) else {
        return;
    };
    let seed = Command::new(m.python())
        .args(["-c", SEED, &m.url])
        .output()
        .unwrap();
    assert!(
        seed.status.success(),
        "{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let today = Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let ce = json!({"results": [{
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"},
                             {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
        "ResultsByTime": [{
            "TimePeriod": {"Start": day(today - chrono::Days::new(1)), "End": day(today)},
            "Total": {},
            "Groups": [
                {"Keys": ["Amazon Elastic Compute Cloud - Compute", "123456789012"],
                 "Metrics": {"UnblendedCost": {"Amount": "6.91", "Unit": "USD"},
                             "AmortizedCost": {"Amount": "6.50", "Unit": "USD"}}},
                {"Keys": ["Tax", "123456789012"],
                 "Metrics": {"UnblendedCost": {"Amount": "0.55", "Unit": "USD"},
                             "AmortizedCost": {"Amount": "0.55", "Unit": "USD"}}}
            ],
            "Estimated": false}],
        "DimensionValueAttributes": []}]});
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "{}/moto-api/static/ce/cost-and-usage-results",
            m.url
        ))
        .json(&ce)
        .send()
        .unwrap();
    assert!(r.status().is_success());

    // The server, rating hosts by the hour.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Utc::now().duration_trunc(Span::hours(1)).unwrap() - Span::hours(3);
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    std::fs::write(
        dir.path().join("server.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nno_auth = true\n\n\
             [rating]\nrules = \"rules.toml\"\nwait_periods = 0\nstart = \"{}\"\n",
            t0.to_rfc3339()
        ),
    )
    .unwrap();
    let _server = spawn(&["server", "-c", "server.toml"], dir.path());
    wait_healthy(&base);

    // The agent: the AWS account, once, into the server.
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "[agent]\ndata_dir = \"agent\"\n\n[[task]]\nname = \"aws\"\nschedule = {{ every = \"5m\" }}\n\
             collect = [{{ plugin = \"aws\", regions = [\"us-east-1\"], services = [\"ec2\", \"ebs\"], \
             delay = \"0s\", cost = [\"estimated\", \"billed\"] }}]\n\
             publish = [{{ plugin = \"server\", url = \"{base}\" }}]\n"
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", "-c", "agent.toml", "--once"])
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &m.url)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // The host fleet: four hosts of two teams, seen since t0.
    let hosts = |at: chrono::DateTime<Utc>| -> Vec<serde_json::Value> {
        (0..4)
            .map(|i| {
                json!({"provider": "host", "account": if i < 2 { "team-a" } else { "team-b" },
                       "kind": "host", "id": format!("node-{i}"), "native_type": "linux",
                       "observed_at": at.to_rfc3339()})
            })
            .collect()
    };
    for at in [t0, Utc::now()] {
        let batch = json!({"schema": 1, "batch_id": uuid::Uuid::now_v7().to_string(),
            "agent_id": "fleet", "task": "hosts", "collected_at": Utc::now().to_rfc3339(),
            "resources": hosts(at)});
        let r = reqwest::blocking::Client::new()
            .post(format!("{base}/api/v1/ingest"))
            .json(&batch)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
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

    for source in ["billed", "estimated", "rated"] {
        for format in ["csv", "parquet"] {
            let file = dir.path().join(format!("{source}.{format}"));
            let out = skymeter(&[
                "costs",
                "export",
                "--server",
                &base,
                "--source",
                source,
                "--format",
                format,
                "-o",
                file.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{source} {format}: {}", stderr(&out));
            let report = validator.validate(&file);
            // pandas reads a CSV column of digits (AWS account ids) as integers, which the
            // validator then finds are not strings; the same lines pass as Parquet.
            let failed: Vec<&String> = report
                .failed
                .iter()
                .filter(|f| {
                    !(format == "csv"
                        && source != "rated"
                        && ["BillingAccountId_IsString", "SubAccountId_IsString"]
                            .contains(&f.as_str()))
                })
                .collect();
            assert!(
                failed.is_empty(),
                "{source} {format}: {failed:?}\n{}",
                report.text
            );
            if format == "parquet" {
                assert!(report.succeeded, "{source} {format}: {}", report.text);
            }
        }
    }
    // Each file holds its source's lines: the rated hours of the hosts, the Cost Explorer
    // lines, and estimates of the instances and the volume.
    let csv =
        |source: &str| std::fs::read_to_string(dir.path().join(format!("{source}.csv"))).unwrap();
    assert_eq!(csv("rated").lines().count(), 1 + 4 * 3, "{}", csv("rated"));
    let billed = csv("billed");
    assert_eq!(billed.lines().count(), 3, "{billed}");
    assert!(
        billed.contains("Amazon Elastic Compute Cloud - Compute"),
        "{billed}"
    );
    let estimated = csv("estimated");
    assert!(estimated.lines().count() >= 5, "{estimated}"); // header + 3 instances + the volume
    assert!(estimated.contains("m5.large"), "{estimated}");
}
