//! The OpenFinOps agents, unchanged (openfinops 0.3.0's sdist; scripts/test fetches them),
//! post to a running skymeter at `/openfinops/<ingest token>`: the AWS agent reading moto,
//! and the generic agent reading this host. Afterwards every resource and metric they sent
//! is in `/api/v1/resources` and the Prometheus query API, with the values they sent.

#![cfg(feature = "aws")]

mod common;

use common::*;
use serde_json::Value;
use skymeter_plugins::collectors::aws::standin::Moto;
use std::path::PathBuf;
use std::process::Command;

/// Two t3.micro instances (one with CPU samples), an EKS cluster with a node group of two
/// m5.large, a PostgreSQL RDS instance, a bucket with an object, and a Lambda function with
/// an hour of invocations.
const SEED: &str = r#"
import boto3, datetime, io, sys, zipfile
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
img = ec2.describe_images()["Images"][0]["ImageId"]
r = ec2.run_instances(ImageId=img, InstanceType="t3.micro", MinCount=2, MaxCount=2,
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "core"}]}])
cw = boto3.client("cloudwatch", **kw)
now = datetime.datetime.now(datetime.timezone.utc)
cw.put_metric_data(Namespace="AWS/EC2", MetricData=[{"MetricName": "CPUUtilization",
    "Dimensions": [{"Name": "InstanceId", "Value": r["Instances"][0]["InstanceId"]}],
    "Timestamp": now - datetime.timedelta(minutes=3), "Value": 42.5}])
boto3.client("rds", **kw).create_db_instance(DBInstanceIdentifier="orders", Engine="postgres",
    DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="u", MasterUserPassword="p4ssw0rd!")
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket="invoices")
s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"x" * 1000)
role = boto3.client("iam", **kw).create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
eks = boto3.client("eks", **kw)
eks.create_cluster(name="prod", roleArn=role, resourcesVpcConfig={"subnetIds": []})
eks.create_nodegroup(clusterName="prod", nodegroupName="ng1", nodeRole=role, subnets=["subnet-1"],
    instanceTypes=["m5.large"], scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2})
code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("f.py", "def handler(e, c):\n    return 1\n")
boto3.client("lambda", **kw).create_function(FunctionName="resize", Runtime="python3.12",
    Role=role, Handler="f.handler", Code={"ZipFile": code.getvalue()},
    MemorySize=256, Timeout=10)
cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[
    {"MetricName": "Invocations", "Dimensions": [{"Name": "FunctionName", "Value": "resize"}],
     "Timestamp": now - datetime.timedelta(minutes=10), "Value": 100.0},
    {"MetricName": "Duration", "Dimensions": [{"Name": "FunctionName", "Value": "resize"}],
     "Timestamp": now - datetime.timedelta(minutes=10), "Value": 120.0}])
"#;

/// The AWS agent as its README runs it, driven step by step to print what it sends.
const AWS_AGENT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from aws_telemetry_agent import AWSTelemetryAgent
a = AWSTelemetryAgent(server_url=sys.argv[2], region="us-east-1")
assert a.register_agent(), "register"
data = a.collect_telemetry_data()
assert a.send_telemetry_data(data), "ingest"
print(json.dumps(data))
"#;

const GENERIC_AGENT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from generic_telemetry_agent import GenericTelemetryAgent
a = GenericTelemetryAgent(sys.argv[2])
assert a.register_agent(), "register"
assert a.health_check(), "health"
posts = []
for _ in range(2):
    metrics = a.collect_all_metrics()
    assert a.send_telemetry_data(metrics), "ingest"
    posts.append(metrics)
print(json.dumps(posts))
"#;

fn agents() -> Result<(PathBuf, PathBuf), String> {
    let cache = tool::cache();
    let python = std::env::var_os("SKYMETER_OPENFINOPS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("venv-openfinops/bin/python3"));
    let dir = std::env::var_os("SKYMETER_OPENFINOPS_AGENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("openfinops-0.3.0/agents"));
    if !python.is_file() || !dir.join("aws_telemetry_agent.py").is_file() {
        return Err(format!(
            "the OpenFinOps 0.3.0 agents are not installed ({} with boto3, requests, psutil, \
             PyYAML; {} from the openfinops 0.3.0 sdist); scripts/test installs both",
            python.display(),
            dir.display()
        ));
    }
    Ok((python, dir))
}

fn run_python(python: &PathBuf, script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    // From an empty folder: the generic agent loads every `plugins/*.py` of its cwd.
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(script).args(args).current_dir(cwd.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.env_remove("AWS_PROFILE").output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap()
}

fn get(url: &str, token: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

/// The value of the one series the PromQL `query` selects.
fn promql(base: &str, token: &str, query: &str) -> f64 {
    let v = get(
        &format!(
            "{base}/api/v1/query?query={}",
            query
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
        ),
        token,
    );
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(result.len(), 1, "{query}: {v}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn resource_ids(base: &str, token: &str, kind: &str) -> Vec<String> {
    let v = get(
        &format!("{base}/api/v1/resources?kind={kind}&limit=1000"),
        token,
    );
    let mut ids: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn openfinops_agents_post_to_skymeter_unchanged() {
    let test = "openfinops_agents_post_to_skymeter_unchanged";
    let Some(m) = tool::require_tool(test, Moto::start()) else {
        return;
    };
    let Some((python, agents_dir)) = tool::require_tool(test, agents()) else {
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

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ingest = create_token(&data, "ingest", &["ingest"]);
    let read = create_token(&data, "read", &["read"]);
    let (_server, base) = server_on(dir.path());
    let endpoint = format!("{base}/openfinops/{ingest}");
    let agents_dir = agents_dir.to_str().unwrap();
    let aws_env = [
        ("AWS_ENDPOINT_URL", m.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];

    // A wrong token: the agent's own check fails (it exits 1 on a refused ingest).
    let refused = Command::new(&python)
        .arg(agents_dir.to_string() + "/aws_telemetry_agent.py")
        .args([
            "--server",
            &format!("{base}/openfinops/sky_wrong"),
            "--once",
        ])
        .envs(aws_env)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // The AWS agent: what it sent is what skymeter holds.
    let sent = run_python(&python, AWS_AGENT, &[agents_dir, &endpoint], &aws_env);
    let ec2 = &sent["services"]["ec2"]["instances"];
    let mut instance_ids: Vec<String> = ec2
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    instance_ids.sort();
    assert_eq!(instance_ids.len(), 2, "{sent}");
    assert_eq!(resource_ids(&base, &read, "compute.instance"), instance_ids);
    assert_eq!(resource_ids(&base, &read, "database.instance"), ["orders"]);
    assert_eq!(resource_ids(&base, &read, "storage.bucket"), ["invoices"]);
    assert_eq!(resource_ids(&base, &read, "function"), ["resize"]);
    assert_eq!(resource_ids(&base, &read, "k8s.cluster"), ["prod"]);
    assert_eq!(resource_ids(&base, &read, "k8s.node_group"), ["prod/ng1"]);
    for i in ec2.as_array().unwrap() {
        let id = i["instance_id"].as_str().unwrap();
        let cpu = promql(
            &base,
            &read,
            &format!("cpu_utilization_percent{{resource_id=\"{id}\"}}"),
        );
        assert_eq!(cpu, i["cpu_usage"].as_f64().unwrap(), "{id}");
    }
    assert!(
        ec2.as_array()
            .unwrap()
            .iter()
            .any(|i| i["cpu_usage"] == 42.5),
        "{ec2}"
    );
    let f = &sent["services"]["lambda"]["functions"][0];
    assert_eq!(
        promql(&base, &read, "function_invocations{resource_id=\"resize\"}"),
        f["invocations_last_hour"].as_f64().unwrap()
    );
    assert_eq!(
        promql(
            &base,
            &read,
            "function_duration_milliseconds{resource_id=\"resize\"}"
        ),
        f["avg_duration_ms"].as_f64().unwrap()
    );
    let b = &sent["services"]["s3"]["buckets"][0];
    assert_eq!(
        promql(&base, &read, "storage_size_bytes{resource_id=\"invoices\"}"),
        b["size_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        promql(&base, &read, "storage_objects{resource_id=\"invoices\"}"),
        b["object_count"].as_f64().unwrap()
    );
    let db = &sent["services"]["rds"]["databases"][0];
    assert_eq!(
        promql(&base, &read, "database_connections{resource_id=\"orders\"}"),
        db["connections"].as_f64().unwrap()
    );
    assert_eq!(
        promql(
            &base,
            &read,
            "cpu_utilization_percent{resource_id=\"orders\"}"
        ),
        db["cpu_usage"].as_f64().unwrap()
    );
    // Their prices as estimated cost lines of this hour.
    let costs = get(
        &format!("{base}/api/v1/costs?source=estimated&group_by=service"),
        &read,
    );
    let ec2_cost: f64 = costs["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"]["service"] == "Amazon Elastic Compute Cloud")
        .map(|g| g["billed_cost"].as_f64().unwrap())
        .unwrap_or_else(|| panic!("{costs}"));
    // EC2 capacity: the instances and the EKS node group.
    let nodegroup = &sent["services"]["eks"]["clusters"][0]["nodegroups"][0];
    let sent_ec2: f64 = ec2
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["hourly_cost"].as_f64().unwrap())
        .sum::<f64>()
        + nodegroup["hourly_cost"].as_f64().unwrap();
    assert!(
        (ec2_cost - sent_ec2).abs() < 1e-9,
        "{ec2_cost} vs {sent_ec2}"
    );

    // The generic agent: this host.
    let posts = run_python(&python, GENERIC_AGENT, &[agents_dir, &endpoint], &[]);
    let (first, metrics) = (&posts[0], &posts[1]);
    let host = metrics["hostname"].as_str().unwrap();
    assert!(resource_ids(&base, &read, "host").contains(&host.to_string()));
    let sys = &metrics["collectors"]["system_metrics"]["data"];
    let (mem, disk) = (&sys["memory"], &sys["disk"]);
    let used = mem["total_bytes"].as_f64().unwrap() - mem["available_bytes"].as_f64().unwrap();
    let load = |i: usize| sys["load_average"][i].as_f64().unwrap();
    for (query, sent) in [
        (
            "cpu_utilization_percent",
            sys["cpu"]["usage_percent"].as_f64().unwrap(),
        ),
        (
            "memory_usage_percent",
            mem["usage_percent"].as_f64().unwrap(),
        ),
        ("memory_total_bytes", mem["total_bytes"].as_f64().unwrap()),
        (
            "memory_available_bytes",
            mem["available_bytes"].as_f64().unwrap(),
        ),
        ("memory_used_bytes", used),
        ("swap_total_bytes", mem["swap_total"].as_f64().unwrap()),
        ("swap_used_bytes", mem["swap_used"].as_f64().unwrap()),
        ("swap_usage_percent", mem["swap_percent"].as_f64().unwrap()),
        (
            "filesystem_total_bytes",
            disk["total_bytes"].as_f64().unwrap(),
        ),
        (
            "filesystem_used_bytes",
            disk["used_bytes"].as_f64().unwrap(),
        ),
        (
            "filesystem_usage_percent",
            disk["usage_percent"].as_f64().unwrap(),
        ),
        ("process_count", sys["processes"]["count"].as_f64().unwrap()),
        ("load_1m", load(0)),
        ("load_5m", load(1)),
        ("load_15m", load(2)),
    ] {
        let q = format!("{query}{{provider=\"host\",resource_id=\"{host}\"}}");
        assert_eq!(promql(&base, &read, &q), sent, "{query}");
    }
    // Its counters (since boot) as rates between its two posts.
    let before = &first["collectors"]["system_metrics"]["data"];
    let dt = sys["timestamp"].as_f64().unwrap() - before["timestamp"].as_f64().unwrap();
    let rate = |path: &[&str]| {
        let at = |d: &Value| path.iter().fold(d, |v, k| &v[*k]).as_f64().unwrap();
        (at(sys) - at(before)) / dt
    };
    for (query, want) in [
        (
            "network_received_throughput_bytes_per_second",
            rate(&["network", "bytes_recv"]),
        ),
        (
            "network_sent_throughput_bytes_per_second",
            rate(&["network", "bytes_sent"]),
        ),
        (
            "disk_read_throughput_bytes_per_second",
            rate(&["disk", "io", "read_bytes"]),
        ),
        (
            "disk_write_iops_per_second",
            rate(&["disk", "io", "write_count"]),
        ),
    ] {
        let q = format!("{query}{{provider=\"host\",resource_id=\"{host}\"}}");
        let got = promql(&base, &read, &q);
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{query}: {got} vs {want}"
        );
    }
    // Both agents are in skymeter's registry.
    let listed = get(&format!("{base}/api/v1/agents"), &read).to_string();
    assert!(
        listed.contains("aws-agent-") && listed.contains("generic-telemetry-"),
        "{listed}"
    );
}
