//! The OpenFinOps `GCPTelemetryAgent`'s post (`metrics.{compute_engine, gke,
//! cloud_functions, cloud_sql, cloud_storage}`) as skymeter records, keyed as skymeter's own
//! GCP collector keys them: provider `gcp`, account = the project, and the collector's
//! ids: an instance's numeric id, `{location}/{cluster}[/{pool}]`,
//! `projects/{p}/locations/{r}/functions/{f}`, a Cloud SQL instance's and a bucket's name.
//!
//! What the agent does not send: a GKE cluster's location (it lists the clusters of its own
//! region, which stands in: a zonal cluster's collector id has its zone instead) and
//! labels. A project it could not find is sent as `unknown-project`: such resources get an
//! empty account (and functions an id without `projects/…/`).
//!
//! Points: an instance's CPU (the newest one-minute sample of
//! `compute.googleapis.com/instance/cpu/utilization` in the last 5 minutes, ×100; 0 when
//! there was none, kept as sent), a function's executions of the last hour, and a bucket's
//! size and object count from listing it, only when the listing was whole (the agent stops
//! at 1000 objects). Memory, disk, network, Cloud SQL and function error/duration figures
//! are constant 0 placeholders and `cost_metrics` zeros: not records.

use super::records::{entries, list, lower, num, text, Kind, Metric, Place, Records};
use serde_json::Value;
use skymeter_model::{Stat, Unit};

const INSTANCE: Kind = Kind {
    kind: "compute.instance",
    native_type: "compute.googleapis.com/Instance",
    attributes: &[
        ("machine_type", "instance_type"),
        ("zone", "availability_zone"),
        ("created_time", "launch_time"),
        ("tags", "network_tags"),
    ],
};
const CLUSTER: Kind = Kind {
    kind: "k8s.cluster",
    native_type: "container.googleapis.com/Cluster",
    attributes: &[("master_version", "version"), ("node_count", "node_count")],
};
const POOL: Kind = Kind {
    kind: "k8s.node_group",
    native_type: "container.googleapis.com/NodePool",
    attributes: &[
        ("machine_type", "instance_type"),
        ("disk_size", "size_gib"),
        ("node_count", "node_count"),
        ("auto_scaling", "autoscaling"),
    ],
};
const FUNCTION: Kind = Kind {
    kind: "function",
    native_type: "cloudfunctions.googleapis.com/Function",
    attributes: &[
        ("runtime", "runtime"),
        ("memory", "memory_mb"),
        ("timeout", "timeout_s"),
    ],
};
const SQL: Kind = Kind {
    kind: "database.instance",
    native_type: "sqladmin.googleapis.com/Instance",
    attributes: &[
        ("tier", "instance_class"),
        ("storage_size", "size_gib"),
        ("storage_type", "volume_type"),
        ("backup_enabled", "backup_enabled"),
        ("database_version", "database_version"),
    ],
};
const BUCKET: Kind = Kind {
    kind: "storage.bucket",
    native_type: "storage.googleapis.com/Bucket",
    attributes: &[
        ("storage_class", "storage_class"),
        ("created", "launch_time"),
        ("versioning_enabled", "versioning_enabled"),
        ("lifecycle_rules", "lifecycle_rules"),
    ],
};

/// The newest raw sample of a GCE CPU series: one minute.
const CPU: Metric = Metric::new("cpu.utilization", Unit::Percent, Stat::Avg, 60);
const INVOCATIONS: Metric = Metric::new("function.invocations", Unit::Count, Stat::Sum, 3600);
const SIZE: Metric = Metric::new("storage.size", Unit::Bytes, Stat::Last, 0);
const OBJECTS: Metric = Metric::new("storage.objects", Unit::Count, Stat::Last, 0);

/// The agent lists at most this many objects of a bucket.
const LISTING_CAP: f64 = 1000.0;

/// The region of a zone (`us-central1-a` → `us-central1`); a region stays as it is.
fn region_of_zone(zone: &str) -> String {
    match zone.rsplit_once('-') {
        Some((region, z)) if z.len() == 1 => region.to_string(),
        _ => zone.to_string(),
    }
}

/// A GCE status as the collector writes it: lower case, `TERMINATED` as `stopped`.
fn gce_state(v: Option<&Value>) -> Option<Value> {
    lower(v).map(|s| match s.as_str() {
        Some("terminated") => Value::from("stopped"),
        _ => s,
    })
}

/// `POSTGRES_15` → (`postgres`, `15`); `MYSQL_8_0` → (`mysql`, `8.0`);
/// `SQLSERVER_2019_STANDARD` → (`sqlserver`, `2019_standard`), as the collector splits it.
fn engine(version: &str) -> Option<(String, String)> {
    let lower = version.to_ascii_lowercase();
    let (e, v) = lower.split_once('_')?;
    let v = if e == "sqlserver" {
        v.to_string()
    } else {
        v.replace('_', ".")
    };
    Some((e.to_string(), v))
}

pub fn map(body: &Value, out: &mut Records) {
    let metrics = &body["metrics"];
    let project = text(metrics.get("project_id"))
        .filter(|p| p != "unknown-project")
        .unwrap_or_default();
    let region = text(metrics.get("region")).unwrap_or_default();
    let place = Place {
        provider: "gcp",
        account: &project,
        region: &region,
    };
    out.metrics_post(body, "GCP", |name, section, out| match name {
        "compute_engine" => instances(section, &place, out),
        "gke" => clusters(section, &place, out),
        "cloud_functions" => functions(section, &place, out),
        "cloud_sql" => sql(section, &place, out),
        "cloud_storage" => buckets(section, &place, out),
        _ => {}
    });
}

fn instances(section: &Value, place: &Place, out: &mut Records) {
    for i in list(section, "instances") {
        let Some(id) = text(i.get("instance_id")) else {
            continue;
        };
        let r = INSTANCE
            .of(i, &id)
            .name(text(i.get("instance_name")))
            .region(text(i.get("zone")).map(|z| region_of_zone(&z)))
            .attr("state", gce_state(i.get("status")))
            .add(place, out);
        out.measure(&r, &CPU, num(i.get("cpu_utilization")));
    }
}

fn clusters(section: &Value, place: &Place, out: &mut Records) {
    for c in list(section, "clusters") {
        let Some(name) = text(c.get("cluster_name")) else {
            continue;
        };
        // The agent lists `locations/{its region}`: that is the cluster's location.
        let id = format!("{}/{name}", place.region);
        CLUSTER
            .of(c, &id)
            .name(Some(name.clone()))
            .attr("status", lower(c.get("status")))
            .add(place, out);
        for p in entries(c.get("nodes")) {
            let Some(pool) = text(p.get("pool_name")) else {
                continue;
            };
            POOL.of(p, &format!("{id}/{pool}"))
                .name(Some(pool))
                .attr("cluster", Some(Value::String(name.clone())))
                .add(place, out);
        }
    }
}

fn functions(section: &Value, place: &Place, out: &mut Records) {
    for f in list(section, "functions") {
        let Some(name) = text(f.get("function_name")) else {
            continue;
        };
        let path = format!("locations/{}/functions/{name}", place.region);
        let id = if place.account.is_empty() {
            path
        } else {
            format!("projects/{}/{path}", place.account)
        };
        let r = FUNCTION
            .of(f, &id)
            .name(Some(name))
            .attr("state", lower(f.get("status")))
            .add(place, out);
        out.measure(&r, &INVOCATIONS, num(f.get("invocations")));
    }
}

fn sql(section: &Value, place: &Place, out: &mut Records) {
    for i in list(section, "instances") {
        let Some(name) = text(i.get("instance_name")) else {
            continue;
        };
        // The SDK's enum: its name (`POSTGRES_15`), or its number from a proto-plus enum.
        let engine = i
            .get("database_version")
            .and_then(Value::as_str)
            .and_then(engine);
        let (eng, ver) = engine.unzip();
        let state = lower(i.get("state")).map(|s| match s.as_str() {
            Some("runnable") => Value::from("running"),
            _ => s,
        });
        SQL.of(i, &name)
            .region(text(i.get("region")))
            .attr("engine", eng.map(Value::from))
            .attr("engine_version", ver.map(Value::from))
            .attr("state", state)
            .add(place, out);
    }
}

fn buckets(section: &Value, place: &Place, out: &mut Records) {
    for b in list(section, "buckets") {
        let Some(name) = text(b.get("bucket_name")) else {
            continue;
        };
        let r = BUCKET
            .of(b, &name)
            .region(text(b.get("location")).map(|l| l.to_ascii_lowercase()))
            .add(place, out);
        // A listing that stopped at the cap counts only its first objects.
        let objects = num(b.get("object_count")).filter(|n| *n < LISTING_CAP);
        out.measure(&r, &OBJECTS, objects);
        out.measure(&r, &SIZE, objects.and(num(b.get("total_size"))));
    }
}
