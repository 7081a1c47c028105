//! The OpenFinOps `AWSTelemetryAgent`'s post (`services.{ec2,eks,lambda,rds,s3}`) as
//! skymeter records, with the kinds, ids and attribute names of skymeter's own AWS
//! collector. The agent sends no account id: its resources have an empty `account` (they
//! do not merge with what skymeter's AWS collector reports for the same account).
//!
//! Values as the agent reads them: CPU and connections are CloudWatch averages over 5
//! minutes (the agent sends 0 when CloudWatch had none; kept as sent), Lambda invocations
//! and duration are the last hour's, S3 sizes the last day's. Its hourly prices become
//! estimated cost lines of the post's UTC hour; S3's from its monthly figure ÷ 720, as the
//! agent's own total computes it.

use super::records::{attributes, num, tags, text, Records};
use serde_json::{Map, Value};
use skymeter_model::{Labels, Stat, Unit};

const PROVIDER: &str = "Amazon Web Services";

fn list<'a>(service: &'a Value, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    service
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        // An entry the agent could not read carries `error` and zeros: not a measurement.
        .filter(|o| !o.contains_key("error"))
}

pub fn map(body: &Value, out: &mut Records) {
    let region = text(body.get("region")).unwrap_or_default();
    let services = body.get("services").and_then(Value::as_object);
    for (name, service) in services.into_iter().flatten() {
        if let Some(e) = text(service.get("error")) {
            out.error(
                "openfinops/aws",
                format!("the OpenFinOps AWS agent could not read {name}: {e}"),
                &[("service", name)],
            );
            continue;
        }
        match name.as_str() {
            "ec2" => ec2(service, &region, out),
            "eks" => eks(service, &region, out),
            "lambda" => lambda(service, &region, out),
            "rds" => rds(service, &region, out),
            "s3" => s3(service, &region, out),
            _ => {}
        }
    }
}

fn ec2(service: &Value, region: &str, out: &mut Records) {
    for i in list(service, "instances") {
        let Some(id) = text(i.get("instance_id")) else {
            continue;
        };
        let tags = tags(i.get("tags"));
        let name = tags.get("Name").cloned().unwrap_or_else(|| id.clone());
        let r = out.resource(
            "aws",
            "",
            region,
            "compute.instance",
            "AWS::EC2::Instance",
            &id,
            &name,
            tags,
            attributes(
                i,
                &[
                    ("instance_type", "instance_type"),
                    ("state", "state"),
                    ("availability_zone", "availability_zone"),
                    ("launch_time", "launch_time"),
                    ("private_ip", "private_ip"),
                    ("public_ip", "public_ip"),
                ],
            ),
        );
        out.point(
            &r,
            "cpu.utilization",
            Unit::Percent,
            Stat::Avg,
            300,
            num(i.get("cpu_usage")),
            Labels::new(),
        );
        let itype = text(i.get("instance_type")).unwrap_or_default();
        out.hourly_cost(
            &r,
            PROVIDER,
            "Amazon Elastic Compute Cloud",
            "Compute",
            "AWS::EC2::Instance",
            &format!("ec2/{itype}"),
            num(i.get("hourly_cost")),
        );
    }
}

fn eks(service: &Value, region: &str, out: &mut Records) {
    for c in list(service, "clusters") {
        let Some(cluster) = text(c.get("cluster_name")) else {
            continue;
        };
        out.resource(
            "aws",
            "",
            region,
            "k8s.cluster",
            "AWS::EKS::Cluster",
            &cluster,
            &cluster,
            Labels::new(),
            attributes(
                c,
                &[
                    ("status", "status"),
                    ("version", "version"),
                    ("platform_version", "platform_version"),
                    ("endpoint", "endpoint"),
                    ("created_at", "created"),
                ],
            ),
        );
        for ng in c
            .get("nodegroups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
        {
            let Some(name) = text(ng.get("nodegroup_name")) else {
                continue;
            };
            let mut attrs = attributes(
                ng,
                &[
                    ("instance_types", "instance_types"),
                    ("desired_capacity", "desired_size"),
                    ("min_size", "min_size"),
                    ("max_size", "max_size"),
                    ("status", "status"),
                    ("version", "version"),
                ],
            );
            attrs.insert("cluster".into(), Value::String(cluster.clone()));
            let r = out.resource(
                "aws",
                "",
                region,
                "k8s.node_group",
                "AWS::EKS::Nodegroup",
                &format!("{cluster}/{name}"),
                &name,
                Labels::new(),
                attrs,
            );
            let itype = ng
                .get("instance_types")
                .and_then(Value::as_array)
                .and_then(|a| text(a.first()))
                .unwrap_or_default();
            let desired = text(ng.get("desired_capacity")).unwrap_or_default();
            out.hourly_cost(
                &r,
                PROVIDER,
                "Amazon Elastic Compute Cloud",
                "Compute",
                "AWS::EKS::Nodegroup",
                &format!("eks-nodegroup/{itype}x{desired}"),
                num(ng.get("hourly_cost")),
            );
        }
    }
}

fn lambda(service: &Value, region: &str, out: &mut Records) {
    for f in list(service, "functions") {
        let Some(name) = text(f.get("function_name")) else {
            continue;
        };
        let r = out.resource(
            "aws",
            "",
            region,
            "function",
            "AWS::Lambda::Function",
            &name,
            &name,
            Labels::new(),
            attributes(
                f,
                &[
                    ("runtime", "runtime"),
                    ("memory_size", "memory_mb"),
                    ("timeout", "timeout_s"),
                    ("code_size", "code_size_bytes"),
                    ("last_modified", "last_modified"),
                ],
            ),
        );
        out.point(
            &r,
            "function.invocations",
            Unit::Count,
            Stat::Sum,
            3600,
            num(f.get("invocations_last_hour")),
            Labels::new(),
        );
        out.point(
            &r,
            "function.duration",
            Unit::Milliseconds,
            Stat::Avg,
            3600,
            num(f.get("avg_duration_ms")),
            Labels::new(),
        );
        out.hourly_cost(
            &r,
            PROVIDER,
            "AWS Lambda",
            "Compute",
            "AWS::Lambda::Function",
            "lambda/requests-and-duration",
            num(f.get("estimated_hourly_cost")),
        );
    }
}

fn rds(service: &Value, region: &str, out: &mut Records) {
    for d in list(service, "databases") {
        let Some(id) = text(d.get("db_identifier")) else {
            continue;
        };
        let r = out.resource(
            "aws",
            "",
            region,
            "database.instance",
            "AWS::RDS::DBInstance",
            &id,
            &id,
            Labels::new(),
            attributes(
                d,
                &[
                    ("db_instance_class", "instance_class"),
                    ("engine", "engine"),
                    ("engine_version", "engine_version"),
                    ("status", "status"),
                    ("allocated_storage", "allocated_storage_gib"),
                    ("availability_zone", "availability_zone"),
                    ("multi_az", "multi_az"),
                    ("backup_retention_period", "backup_retention_period"),
                ],
            ),
        );
        out.point(
            &r,
            "cpu.utilization",
            Unit::Percent,
            Stat::Avg,
            300,
            num(d.get("cpu_usage")),
            Labels::new(),
        );
        out.point(
            &r,
            "database.connections",
            Unit::Count,
            Stat::Avg,
            300,
            num(d.get("connections")),
            Labels::new(),
        );
        let class = text(d.get("db_instance_class")).unwrap_or_default();
        out.hourly_cost(
            &r,
            PROVIDER,
            "Amazon Relational Database Service",
            "Databases",
            "AWS::RDS::DBInstance",
            &format!("rds/{class}"),
            num(d.get("hourly_cost")),
        );
    }
}

fn s3(service: &Value, region: &str, out: &mut Records) {
    for b in list(service, "buckets") {
        let Some(name) = text(b.get("bucket_name")) else {
            continue;
        };
        // The agent does not send a bucket's region: the agent's region stands in.
        let r = out.resource(
            "aws",
            "",
            region,
            "storage.bucket",
            "AWS::S3::Bucket",
            &name,
            &name,
            Labels::new(),
            attributes(b, &[("created_date", "created")]),
        );
        out.point(
            &r,
            "storage.size",
            Unit::Bytes,
            Stat::Avg,
            86_400,
            num(b.get("size_bytes")),
            Labels::new(),
        );
        out.point(
            &r,
            "storage.objects",
            Unit::Count,
            Stat::Avg,
            86_400,
            num(b.get("object_count")),
            Labels::new(),
        );
        // The agent's own total: size in GB × 0.023 a month, over 30 × 24 hours.
        let hourly = num(b.get("size_gb")).map(|gb| gb * 0.023 / 720.0);
        out.hourly_cost(
            &r,
            PROVIDER,
            "Amazon Simple Storage Service",
            "Storage",
            "AWS::S3::Bucket",
            "s3/standard-storage",
            hourly,
        );
    }
}
