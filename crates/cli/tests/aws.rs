//! `skymeter collect aws` through the real binary against moto, the AWS emulator, as a new
//! user would run it: credentials and endpoint from the environment.

#![cfg(feature = "aws")]

mod common;

use common::*;
use std::process::Command;

use skymeter_plugins::collectors::aws::standin::Moto;

/// moto for `test`, or the shared missing-tool rule (a skip on a laptop, a failure under CI).
#[track_caller]
fn moto(test: &str) -> Option<Moto> {
    tool::require_tool(test, Moto::start())
}

/// Seeds moto with boto3 from moto's own venv: three m5.large instances with CPU samples
/// 10 + i and 30 + i in the last whole 5-minute period. Prints the instance ids.
const SEED: &str = r#"
import boto3, datetime, sys, time
# The collect that follows reads the last whole 5-minute bucket: if one is about to close,
# wait for it, so that seeding and collecting fall in the same bucket on a slow machine.
t = datetime.datetime.now(datetime.timezone.utc)
left = 300 - ((t.minute % 5) * 60 + t.second)
if left < 60:
    time.sleep(left + 1)
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
img = ec2.describe_images()["Images"][0]["ImageId"]
r = ec2.run_instances(ImageId=img, InstanceType="m5.large", MinCount=3, MaxCount=3,
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}])
cw = boto3.client("cloudwatch", **kw)
now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
start = now - datetime.timedelta(minutes=now.minute % 5 + 5)
for i, inst in enumerate(r["Instances"]):
    for k, v in enumerate([10.0, 30.0]):
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=[{
            "MetricName": "CPUUtilization",
            "Dimensions": [{"Name": "InstanceId", "Value": inst["InstanceId"]}],
            "Timestamp": start + datetime.timedelta(minutes=k), "Value": v + i}])
    print(inst["InstanceId"])
"#;

fn collect(m: &Moto, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["collect", "aws", "--set", "delay=0s", "--period", "300s"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &m.url)
        .env_remove("AWS_PROFILE")
        .env_remove("SKYMETER_LOG")
        .output()
        .unwrap()
}

#[test]
fn collect_aws_table_shows_instances_cpu_and_api_calls() {
    let Some(m) = moto("collect_aws_table_shows_instances_cpu_and_api_calls") else {
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
    let ids: Vec<String> = String::from_utf8_lossy(&seed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 3);

    let o = collect(&m, &["--format", "table"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let summary = out.split("\nsummary\n").nth(1).expect("a summary table");
    for (i, id) in ids.iter().enumerate() {
        let row = summary
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in\n{summary}"));
        let cells: Vec<&str> = row.split('┆').map(|c| c.trim_matches(['│', ' '])).collect();
        assert_eq!(cells[0], "compute.instance", "{row}");
        assert_eq!(cells[3], "m5.large", "{row}");
        assert_eq!(cells[4], "running", "{row}");
        assert_eq!(
            cells[5],
            format!("{:.1}", 20.0 + i as f64),
            "cpu avg: {row}"
        );
        assert_eq!(
            cells[6],
            format!("{:.1}", 30.0 + i as f64),
            "cpu max: {row}"
        );
        // m5.large, Linux, us-east-1 on demand: USD 0.096 an hour (the shipped table).
        assert_eq!(cells[7], "0.0960", "cost per hour: {row}");
    }
    let run = out
        .lines()
        .find(|l| l.starts_with("run summary: API calls"))
        .expect("a run summary");
    for call in [
        "cloudwatch:GetMetricData=1",
        "ec2:DescribeInstances=1",
        "sts:GetCallerIdentity=1",
    ] {
        assert!(run.contains(call), "{run}");
    }

    // JSON: the same values as records.
    let o = collect(&m, &["--format", "json", "--metrics", "cpu.*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_lines(&stdout(&o));
    let cpu: Vec<_> = points(&records);
    assert_eq!(cpu.len(), 6, "3 instances × avg, max");

    // Dry run: the plan, no GetMetricData.
    let o = collect(&m, &["--dry-run", "--format", "table"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let run = out
        .lines()
        .find(|l| l.starts_with("run summary (dry run: planned)"))
        .expect("a planned run summary");
    assert!(run.contains("cloudwatch:GetMetricData=1"), "{run}");
    // 3 instances × 13 AWS/EC2 metrics × 2 stats.
    assert!(
        out.contains("aws.cloudwatch_metrics_requested: 78"),
        "{out}"
    );
}

#[test]
fn collect_aws_with_wrong_endpoint_fails_clearly() {
    let port = free_port();
    let o = Command::new(bin())
        .args(["collect", "aws", "--set", "max_attempts=1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: aws: GetCallerIdentity failed"),
        "{err}"
    );
    assert!(
        !err.contains("testing"),
        "no credential in the error: {err}"
    );
}

/// On a machine without AWS credentials, `collect aws --dry-run` says in one short message
/// what to set; the SDK's own warnings (one per instance-metadata probe, with debug
/// structs, 3.6 KB before) stay out of the console unless asked for with `-v`. The
/// instance-metadata endpoint is a closed loopback port, so nothing leaves the machine.
#[test]
fn collect_aws_without_credentials_says_what_to_set_in_few_lines() {
    let home = tempfile::tempdir().unwrap();
    let closed = free_port();
    let mut cmd = Command::new(bin());
    cmd.args(["collect", "aws", "--dry-run"])
        .env("HOME", home.path())
        .env("AWS_REGION", "us-east-1")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{closed}"),
        );
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "SKYMETER_LOG",
    ] {
        cmd.env_remove(var);
    }
    let o = cmd.output().unwrap();
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("no AWS credentials found") && err.contains("AWS_ACCESS_KEY_ID"),
        "the message says what to set: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains("aws_config") && !err.contains("aws_smithy"),
        "no SDK-internal log lines: {err}"
    );
    assert!(err.len() < 512, "{} bytes of stderr:\n{err}", err.len());
}
