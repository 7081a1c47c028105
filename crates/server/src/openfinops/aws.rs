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

use super::records::{entries, list, num, tags, text, Kind, Metric, Place, Records};
use serde_json::Value;
use skymeter_model::{Stat, Unit};

const PROVIDER: &str = "Amazon Web Services";
const EC2_SERVICE: &str = "Amazon Elastic Compute Cloud";

const EC2: Kind = Kind {
    kind: "compute.instance",
    native_type: "AWS::EC2::Instance",
    attributes: &[
        ("instance_type", "instance_type"),
        ("state", "state"),
        ("availability_zone", "availability_zone"),
        ("launch_time", "launch_time"),
        ("private_ip", "private_ip"),
        ("public_ip", "public_ip"),
    ],
};
const EKS: Kind = Kind {
    kind: "k8s.cluster",
    native_type: "AWS::EKS::Cluster",
    attributes: &[
        ("status", "status"),
        ("version", "version"),
        ("platform_version", "platform_version"),
        ("endpoint", "endpoint"),
        ("created_at", "created"),
    ],
};
const NODEGROUP: Kind = Kind {
    kind: "k8s.node_group",
    native_type: "AWS::EKS::Nodegroup",
    attributes: &[
        ("instance_types", "instance_types"),
        ("desired_capacity", "desired_size"),
        ("min_size", "min_size"),
        ("max_size", "max_size"),
        ("status", "status"),
        ("version", "version"),
    ],
};
const LAMBDA: Kind = Kind {
    kind: "function",
    native_type: "AWS::Lambda::Function",
    attributes: &[
        ("runtime", "runtime"),
        ("memory_size", "memory_mb"),
        ("timeout", "timeout_s"),
        ("code_size", "code_size_bytes"),
        ("last_modified", "last_modified"),
    ],
};
const RDS: Kind = Kind {
    kind: "database.instance",
    native_type: "AWS::RDS::DBInstance",
    attributes: &[
        ("db_instance_class", "instance_class"),
        ("engine", "engine"),
        ("engine_version", "engine_version"),
        ("status", "status"),
        ("allocated_storage", "allocated_storage_gib"),
        ("availability_zone", "availability_zone"),
        ("multi_az", "multi_az"),
        ("backup_retention_period", "backup_retention_period"),
    ],
};
const S3: Kind = Kind {
    kind: "storage.bucket",
    native_type: "AWS::S3::Bucket",
    attributes: &[("created_date", "created")],
};

/// CloudWatch's 5-minute average, as the agent asks it.
const CPU: Metric = Metric::new("cpu.utilization", Unit::Percent, Stat::Avg, 300);
const CONNECTIONS: Metric = Metric::new("database.connections", Unit::Count, Stat::Avg, 300);
const INVOCATIONS: Metric = Metric::new("function.invocations", Unit::Count, Stat::Sum, 3600);
const DURATION: Metric = Metric::new("function.duration", Unit::Milliseconds, Stat::Avg, 3600);
const SIZE: Metric = Metric::new("storage.size", Unit::Bytes, Stat::Avg, 86_400);
const OBJECTS: Metric = Metric::new("storage.objects", Unit::Count, Stat::Avg, 86_400);

pub fn map(body: &Value, out: &mut Records) {
    let region = text(body.get("region")).unwrap_or_default();
    let place = Place {
        provider: "aws",
        account: "",
        region: &region,
    };
    let services = body.get("services").and_then(Value::as_object);
    out.sections(services, "AWS", |name, service, out| match name {
        "ec2" => ec2(service, &place, out),
        "eks" => eks(service, &place, out),
        "lambda" => lambda(service, &place, out),
        "rds" => rds(service, &place, out),
        "s3" => s3(service, &place, out),
        _ => {}
    });
}

fn ec2(service: &Value, place: &Place, out: &mut Records) {
    for i in list(service, "instances") {
        let Some(id) = text(i.get("instance_id")) else {
            continue;
        };
        let tags = tags(i.get("tags"));
        let name = tags.get("Name").cloned();
        let r = EC2.of(i, &id).name(name).tags(tags).add(place, out);
        out.measure(&r, &CPU, num(i.get("cpu_usage")));
        let itype = text(i.get("instance_type")).unwrap_or_default();
        out.hourly_cost(
            &r,
            PROVIDER,
            EC2_SERVICE,
            "Compute",
            EC2.native_type,
            &format!("ec2/{itype}"),
            num(i.get("hourly_cost")),
        );
    }
}

fn eks(service: &Value, place: &Place, out: &mut Records) {
    for c in list(service, "clusters") {
        let Some(cluster) = text(c.get("cluster_name")) else {
            continue;
        };
        EKS.of(c, &cluster).add(place, out);
        for ng in entries(c.get("nodegroups")) {
            let Some(name) = text(ng.get("nodegroup_name")) else {
                continue;
            };
            let r = NODEGROUP
                .of(ng, &format!("{cluster}/{name}"))
                .name(Some(name))
                .attr("cluster", Some(Value::String(cluster.clone())))
                .add(place, out);
            let itype = ng
                .get("instance_types")
                .and_then(Value::as_array)
                .and_then(|a| text(a.first()))
                .unwrap_or_default();
            let desired = text(ng.get("desired_capacity")).unwrap_or_default();
            out.hourly_cost(
                &r,
                PROVIDER,
                EC2_SERVICE,
                "Compute",
                NODEGROUP.native_type,
                &format!("eks-nodegroup/{itype}x{desired}"),
                num(ng.get("hourly_cost")),
            );
        }
    }
}

fn lambda(service: &Value, place: &Place, out: &mut Records) {
    for f in list(service, "functions") {
        let Some(name) = text(f.get("function_name")) else {
            continue;
        };
        let r = LAMBDA.of(f, &name).add(place, out);
        out.measure(&r, &INVOCATIONS, num(f.get("invocations_last_hour")));
        out.measure(&r, &DURATION, num(f.get("avg_duration_ms")));
        out.hourly_cost(
            &r,
            PROVIDER,
            "AWS Lambda",
            "Compute",
            LAMBDA.native_type,
            "lambda/requests-and-duration",
            num(f.get("estimated_hourly_cost")),
        );
    }
}

fn rds(service: &Value, place: &Place, out: &mut Records) {
    for d in list(service, "databases") {
        let Some(id) = text(d.get("db_identifier")) else {
            continue;
        };
        let r = RDS.of(d, &id).add(place, out);
        out.measure(&r, &CPU, num(d.get("cpu_usage")));
        out.measure(&r, &CONNECTIONS, num(d.get("connections")));
        let class = text(d.get("db_instance_class")).unwrap_or_default();
        out.hourly_cost(
            &r,
            PROVIDER,
            "Amazon Relational Database Service",
            "Databases",
            RDS.native_type,
            &format!("rds/{class}"),
            num(d.get("hourly_cost")),
        );
    }
}

fn s3(service: &Value, place: &Place, out: &mut Records) {
    for b in list(service, "buckets") {
        let Some(name) = text(b.get("bucket_name")) else {
            continue;
        };
        // The agent does not send a bucket's region: the agent's region stands in.
        let r = S3.of(b, &name).add(place, out);
        out.measure(&r, &SIZE, num(b.get("size_bytes")));
        out.measure(&r, &OBJECTS, num(b.get("object_count")));
        // The agent's own total: size in GB × 0.023 a month, over 30 × 24 hours.
        let hourly = num(b.get("size_gb")).map(|gb| gb * 0.023 / 720.0);
        out.hourly_cost(
            &r,
            PROVIDER,
            "Amazon Simple Storage Service",
            "Storage",
            S3.native_type,
            "s3/standard-storage",
            hourly,
        );
    }
}
