//! The mappings on posts shaped as the agents send them (captured from the 0.3.0 agents).

use super::records::Records;
use super::{aws, generic};
use chrono::{TimeZone, Utc};
use serde_json::json;

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 9, 4, 44).unwrap()
}

#[test]
fn aws_services_become_the_aws_collectors_kinds_and_failures_errors() {
    let body = json!({"agent_id": "aws-agent-vm", "region": "us-east-1", "services": {
        "ec2": {"instances": [
            {"instance_id": "i-1", "instance_type": "t3.micro", "state": "running",
             "cpu_usage": 42.5, "hourly_cost": 0.0104, "tags": {"Name": "web", "team": "core"},
             "private_ip": null},
            {"instance_id": "i-2", "error": "throttled", "cpu_usage": 0.0}]},
        "eks": {"service": "eks", "error": "AccessDenied"},
        "s3": {"buckets": [{"bucket_name": "b", "size_bytes": 1024, "size_gb": 2.5,
                            "object_count": 3, "monthly_cost": 0.06}]}}});
    let mut out = Records::new(at(), "openfinops/aws");
    aws::map(&body, &mut out);
    assert_eq!(
        out.resources.len(),
        2,
        "the entry with an error is not a resource"
    );
    let i = &out.resources[0];
    assert_eq!(
        (i.kind.as_str(), i.id.as_str(), i.name.as_str()),
        ("compute.instance", "i-1", "web")
    );
    assert_eq!(i.native_type, "AWS::EC2::Instance");
    assert_eq!(i.tags["team"], "core");
    assert!(
        !i.attributes.contains_key("private_ip"),
        "nulls are left out"
    );
    let cpu = out
        .points
        .iter()
        .find(|p| p.metric == "cpu.utilization")
        .unwrap();
    assert_eq!((cpu.value, cpu.period_s), (42.5, 300));
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0].message.contains("AccessDenied"),
        "{:?}",
        out.errors
    );
    // An hour's line, at the hour of the post.
    let ec2 = &out.costs[0];
    assert_eq!(ec2.billed_cost, 0.0104);
    assert_eq!(
        ec2.charge_period_start,
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()
    );
    assert_eq!(ec2.service_name, "Amazon Elastic Compute Cloud");
    assert_eq!(ec2.sku_id.as_deref(), Some("openfinops/ec2/t3.micro"));
    let s3 = &out.costs[1];
    assert!(
        (s3.billed_cost - 2.5 * 0.023 / 720.0).abs() < 1e-15,
        "{}",
        s3.billed_cost
    );
    let batch = out.into_batch("aws-agent-vm", at());
    batch.validate().unwrap();
}

#[test]
fn generic_system_metrics_become_a_host_with_catalog_metrics() {
    let body = json!({"agent_id": "generic-telemetry-vm-1", "metrics": {
        "hostname": "vm", "environment": "on-premise", "collectors": {"system_metrics": {"data": {
            "cpu": {"usage_percent": 1.5, "count": 2, "frequency": null},
            "memory": {"total_bytes": 1000, "available_bytes": 600, "used_bytes": 300,
                       "usage_percent": 40.0, "swap_total": 0, "swap_used": 0, "swap_percent": 0.0},
            "disk": {"total_bytes": 500, "used_bytes": 100, "usage_percent": 20.0},
            "processes": {"count": 97}, "load_average": [1.5, 2.0, 2.5]}},
          "docker_metrics": {"error": "no docker", "healthy": false}}}});
    let mut out = Records::new(at(), "openfinops/generic");
    generic::map(&body, &generic::Counters::default(), &mut out);
    let host = &out.resources[0];
    assert_eq!(
        (host.provider.as_str(), host.kind.as_str(), host.id.as_str()),
        ("host", "host", "vm")
    );
    assert_eq!(host.attributes["vcpus"], 2);
    let value = |m: &str| out.points.iter().find(|p| p.metric == m).map(|p| p.value);
    // Total − available, not psutil's `used`.
    assert_eq!(value("memory.used"), Some(400.0));
    assert_eq!(value("load.15m"), Some(2.5));
    assert_eq!(value("process.count"), Some(97.0));
    let fs = out
        .points
        .iter()
        .find(|p| p.metric == "filesystem.usage")
        .unwrap();
    assert_eq!(fs.labels["mountpoint"], "/");
    assert_eq!(
        out.errors.len(),
        1,
        "the failed docker collector is reported"
    );
    out.into_batch("generic-telemetry-vm-1", at())
        .validate()
        .unwrap();
}

#[test]
fn generic_counters_make_rates_from_the_second_post_on() {
    let counters = generic::Counters::default();
    let post = |ts: f64, recv: f64, read: f64, err_in: f64, err_out: f64| {
        json!({"agent_id": "g", "metrics": {"hostname": "vm", "collectors": {"system_metrics": {"data": {
            "timestamp": ts,
            "disk": {"io": {"read_bytes": read, "write_bytes": 0, "read_count": 0, "write_count": 0}},
            "network": {"bytes_recv": recv, "bytes_sent": 0, "packets_recv": 0, "packets_sent": 0,
                        "errors_in": err_in, "errors_out": err_out}}}}}})
    };
    let rates = |body: serde_json::Value| {
        let mut out = Records::new(at(), "openfinops/generic");
        generic::map(&body, &counters, &mut out);
        out.points
            .iter()
            .filter(|p| p.metric.starts_with("network.") || p.metric.starts_with("disk."))
            .map(|p| (p.metric.to_string(), p.value, p.period_s))
            .collect::<Vec<_>>()
    };
    assert!(
        rates(post(100.0, 1000.0, 0.0, 1.0, 1.0)).is_empty(),
        "one post: no rate yet"
    );
    let second = rates(post(110.0, 6000.0, 2000.0, 3.0, 4.0));
    let get = |m: &str| second.iter().find(|(n, _, _)| n == m).unwrap().clone();
    assert_eq!(
        get("network.received_throughput"),
        ("network.received_throughput".into(), 500.0, 10)
    );
    assert_eq!(get("disk.read_throughput").1, 200.0);
    // Receive and transmit errors add up.
    assert_eq!(get("network.errors").1, 0.5);
    // A counter that went back (a reboot) makes no rate.
    let third = rates(post(120.0, 10.0, 3000.0, 3.0, 4.0));
    assert!(
        third
            .iter()
            .all(|(m, _, _)| m != "network.received_throughput"),
        "{third:?}"
    );
    assert!(third.iter().any(|(m, _, _)| m == "disk.read_throughput"));
}
