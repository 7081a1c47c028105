//! Findings end to end, as a user gets them: moto (the AWS emulator) holds a seeded fleet,
//! `skymeter run --once` collects it with the aws collector into a real `skymeter server`,
//! and `skymeter findings` (through `GET /api/v1/findings`) names exactly the wasteful
//! resources, with the kind, the recommended type and the monthly amount to the cent from
//! the shipped price table.
//!
//! The fleet: an idle m5.2xlarge (CPU ≤ 2 %), a busy one, an oversized one (p95 CPU 10 % of
//! 8 vCPUs), an unattached 100 GiB gp3 volume, an unassociated and an associated Elastic
//! IP, a 200-day-old snapshot and a new one. moto stamps snapshots with the time they are
//! made; the test's moto is moto's own server with one patch that backdates a snapshot
//! whose description says `aged <time>` (AWS has old snapshots; moto cannot make one).
//!
//! One day of 5-minute CloudWatch data is collected (`every = "1d"`), so the findings look
//! back one day (`[findings] idle.days = 1`, `rightsizing.days = 1`); the defaults (14 days)
//! are exercised over a real store in crates/savings' unit tests.

#![cfg(feature = "aws")]

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// moto's server, with snapshots backdated on request.
const MOTO: &str = r#"
import datetime, sys
import moto.ec2.models.elastic_block_store as ebs
_made = ebs.Snapshot.__init__
def _backdated(self, *args, **kwargs):
    _made(self, *args, **kwargs)
    said = self.description or ""
    if said.startswith("aged "):
        self.start_time = datetime.datetime.fromisoformat(said[5:]).replace(tzinfo=None)
ebs.Snapshot.__init__ = _backdated
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

/// The fleet, and two days of CloudWatch data at 5 minutes. Prints `name id` lines.
const SEED: &str = r#"
import boto3, datetime, sys
url = sys.argv[1]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
cw = boto3.client("cloudwatch", **kw)
img = ec2.describe_images()["Images"][0]["ImageId"]
def instance(name):
    r = ec2.run_instances(ImageId=img, InstanceType="m5.2xlarge", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
    i = r["Instances"][0]["InstanceId"]
    print(name, i)
    return i
idle, busy, big = instance("idle"), instance("busy"), instance("oversized")
vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=100, VolumeType="gp3")["VolumeId"]
print("volume", vol)
free = ec2.allocate_address(Domain="vpc")["AllocationId"]
print("eip", free)
used = ec2.allocate_address(Domain="vpc")["AllocationId"]
ec2.associate_address(AllocationId=used, InstanceId=busy)
src = ec2.create_volume(AvailabilityZone="us-east-1a", Size=40, VolumeType="gp3")["VolumeId"]
old = ec2.create_snapshot(VolumeId=src, Description="aged 2026-01-01T00:00:00")["SnapshotId"]
print("snapshot", old)
ec2.create_snapshot(VolumeId=src, Description="yesterday's")
ec2.delete_volume(VolumeId=src)

now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
start = now - datetime.timedelta(days=2)
def put(inst, metric, value):
    data = []
    for k in range(2 * 288):
        data.append({"MetricName": metric,
            "Dimensions": [{"Name": "InstanceId", "Value": inst}],
            "Timestamp": start + datetime.timedelta(minutes=5 * k, seconds=30),
            "Value": float(value(k))})
    for j in range(0, len(data), 500):
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=data[j:j + 500])
put(idle, "CPUUtilization", lambda k: 1.0 + (k % 10) / 10)
put(busy, "CPUUtilization", lambda k: 40 + k % 51)
# p95 10 %: one period in 25 at 25 %, the rest at 10 % or less.
put(big, "CPUUtilization", lambda k: 25 if k % 25 == 0 else 10 - (k % 3))
# NetworkIn/Out are bytes per 5-minute sample: idle ~1 kB/s in all, the others busy.
for inst, b in [(idle, 150_000), (busy, 600_000_000), (big, 60_000_000)]:
    put(inst, "NetworkIn", lambda k, b=b: b)
    put(inst, "NetworkOut", lambda k, b=b: b)
"#;

fn moto(test: &str) -> Option<(Proc, String, std::path::PathBuf)> {
    let bin = match std::env::var_os("SKYMETER_MOTO_SERVER") {
        Some(b) if std::path::Path::new(&b).exists() => std::path::PathBuf::from(b),
        _ => {
            skip(
                test,
                "SKYMETER_MOTO_SERVER is not set or missing (scripts/test installs moto and sets it)",
            );
            return None;
        }
    };
    let python = bin.with_file_name("python");
    let port = free_port();
    let child = Command::new(&python)
        .args(["-c", MOTO, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let proc = Proc(child);
    eventually(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("moto listens");
    Some((proc, format!("http://127.0.0.1:{port}"), python))
}

#[test]
fn findings_name_exactly_the_wasteful_resources_with_their_money() {
    let test = "findings_name_exactly_the_wasteful_resources_with_their_money";
    let Some((_moto, url, python)) = moto(test) else {
        return;
    };
    let seed = Command::new(&python)
        .args(["-c", SEED, &url])
        .output()
        .unwrap();
    assert!(
        seed.status.success(),
        "{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let ids: std::collections::BTreeMap<String, String> = String::from_utf8_lossy(&seed.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    let server = FindingsServer::start();
    server.collect_a_day(
        r#"plugin = "aws""#,
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &url),
        ],
        &["AWS_PROFILE"],
    );
    let base = &server.base;
    // As of the end of the window collected (today 00:00 UTC): the day looked back is the
    // day collected, whatever the time the test runs at.
    let at = midnight();
    let (answer, got) = server.findings();
    let want = |name: &str, kind: &str, usd: f64, ty: Option<&str>| {
        (
            ids[name].clone(),
            kind.to_string(),
            Some(usd),
            ty.map(str::to_string),
        )
    };
    assert_eq!(
        got,
        vec![
            // m5.2xlarge, Linux, us-east-1: 0.384 × 730.
            want("idle", "idle", 280.32, None),
            // 8 vCPU × 10 % × 1.25 = 1 vCPU: m5.large, (0.384 − 0.096) × 730.
            want("oversized", "rightsizing", 210.24, Some("m5.large")),
            // 100 GiB gp3 at 0.08 (3,000 IOPS and 125 MiB/s included).
            want("volume", "orphaned", 8.0, None),
            // One public IPv4 address at 0.005 an hour.
            want("eip", "orphaned", 3.65, None),
            // 40 GiB at 0.05.
            want("snapshot", "orphaned", 2.0, None),
        ],
        "{}",
        serde_json::to_string_pretty(&answer).unwrap()
    );
    assert_eq!(answer["totals"]["monthly_usd"], 504.21);

    // The table a user reads, and the CSV a spreadsheet takes.
    let table = Command::new(bin())
        .args(["findings", "--server", &base, "--at", &at])
        .output()
        .unwrap();
    let text = stdout(&table);
    assert!(text.contains("resize to m5.large"), "{text}");
    assert!(text.contains("5 finding(s), 504.21 USD/month"), "{text}");
    let csv = Command::new(bin())
        .args([
            "findings", "--server", &base, "--format", "csv", "--kind", "orphaned", "--at", &at,
        ])
        .output()
        .unwrap();
    let csv = stdout(&csv);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("kind,monthly_usd,action,"), "{csv}");
    // The API refuses what it does not know, naming it.
    let bad = reqwest::blocking::get(format!("{base}/api/v1/findings?kind=wasteful")).unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .unwrap()
        .contains("idle, orphaned, rightsizing or untagged"));
}
