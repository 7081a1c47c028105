//! skymeter's records → Cloudforet's: which metrics fill `data.monitoring`, how a metric's
//! series become one `avg` and one `max`, and the `ResourceInfo` of a resource (its
//! `resource_type`, `match_rules`, `reference.resource_id` per provider).
//!
//! | Cloudforet `data.monitoring.` | skymeter metric | Prometheus name (query API) |
//! |---|---|---|
//! | `cpu.utilization` | `cpu.utilization` (percent) | `cpu_utilization_percent` |
//! | `memory.usage` | `memory.usage` (percent) | `memory_usage_percent` |
//! | `disk.read_iops` / `disk.write_iops` | same (count/s) | `disk_read_iops_per_second` / `disk_write_iops_per_second` |
//! | `disk.read_throughput` / `disk.write_throughput` | same (bytes/s) | `disk_read_throughput_bytes_per_second` / … |
//! | `network.received_throughput` / `network.sent_throughput` | same (bytes/s) | `network_received_throughput_bytes_per_second` / … |
//! | `network.received_pps` / `network.sent_pps` | same (count/s) | `network_received_pps_per_second` / … |

use crate::options::Window;
use crate::source::{Resource, Sample};
use serde_json::{json, Map, Value};
use skymeter_model::{catalog, prom};

pub use crate::provider::{cloudforet_provider, skymeter_provider};
use std::collections::BTreeMap;

/// The metrics of `data.monitoring`: Cloudforet's monitoring-metric collector's keys, which
/// are skymeter's normalized names.
pub const METRICS: [&str; 10] = [
    "cpu.utilization",
    "memory.usage",
    "disk.read_iops",
    "disk.write_iops",
    "disk.read_throughput",
    "disk.write_throughput",
    "network.received_throughput",
    "network.sent_throughput",
    "network.received_pps",
    "network.sent_pps",
];

/// The Prometheus name of a metric of [`METRICS`], from the catalog's unit.
pub fn prometheus_name(metric: &str) -> String {
    let unit = catalog::lookup(metric)
        .map(|d| d.unit)
        .unwrap_or(skymeter_model::Unit::None);
    prom::metric_name(metric, unit)
}

/// Kinds Cloudforet holds as `inventory.Server`.
pub const SERVER_KINDS: [&str; 2] = ["compute.instance", "host"];

pub const SERVER: &str = "inventory.Server";
pub const CLOUD_SERVICE: &str = "inventory.CloudService";
/// The resource type of a failure item, as Cloudforet's own collectors send it.
pub const ERROR_RESOURCE: &str = "inventory.ErrorResource";

fn attr<'a>(r: &'a Resource, key: &str) -> Option<&'a str> {
    r.attributes
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The id Cloudforet's own inventory collectors put in `reference.resource_id`, which the
/// match rule joins on: the EC2 instance id on AWS, the ARM resource id on Azure (skymeter's
/// ids there already), the instance's `selfLink` for a GCE instance (built from project,
/// zone and name; Cloudforet's Google collector sets `reference.resource_id` to
/// `data.google_cloud.self_link`, `compute_engine/vm_instance_manager.py` of
/// cloudforet-io/plugin-google-cloud-inven-collector), skymeter's id otherwise.
pub fn reference_id(r: &Resource) -> String {
    if r.provider == "gcp" && r.kind == "compute.instance" && !r.name.is_empty() {
        if let Some(zone) = attr(r, "availability_zone") {
            return format!(
                "https://www.googleapis.com/compute/v1/projects/{}/zones/{zone}/instances/{}",
                r.account, r.name
            );
        }
    }
    r.id.clone()
}

/// A console link for the resource, where one is known.
fn external_link(r: &Resource) -> Option<String> {
    match (r.provider.as_str(), r.kind.as_str()) {
        ("aws", "compute.instance") => Some(format!(
            "https://console.aws.amazon.com/ec2/v2/home?region={0}#Instances:instanceId={1}",
            r.region, r.id
        )),
        ("azure", _) if r.id.starts_with("/subscriptions/") => Some(format!(
            "https://portal.azure.com/#resource{}/overview",
            r.id
        )),
        ("gcp", "compute.instance") => attr(r, "availability_zone").map(|zone| {
            format!(
                "https://console.cloud.google.com/compute/instancesDetail/zones/{zone}/instances/{}?project={}",
                r.name, r.account
            )
        }),
        _ => None,
    }
}

/// Cloudforet's `cloud_service_group` and `cloud_service_type` of a resource: its
/// collectors' names for instances, else from the native type (`AWS::RDS::DBInstance` →
/// `RDS`, `DBInstance`; `sqladmin.googleapis.com/Instance` → `sqladmin`, `Instance`;
/// `Microsoft.Sql/servers` → `Sql`, `servers`), else from the kind.
pub fn service_group_and_type(r: &Resource) -> (String, String) {
    match (r.provider.as_str(), r.kind.as_str()) {
        ("aws", "compute.instance") => return ("EC2".into(), "Instance".into()),
        ("gcp", "compute.instance") => return ("ComputeEngine".into(), "Instance".into()),
        ("azure", "compute.instance") => return ("VirtualMachines".into(), "Instance".into()),
        (_, "host") => return ("Host".into(), "Server".into()),
        _ => {}
    }
    let nt = r.native_type.as_str();
    let parts: Vec<&str> = nt.split("::").collect();
    if parts.len() == 3 && !parts[1].is_empty() && !parts[2].is_empty() {
        return (parts[1].into(), parts[2].into());
    }
    if let Some((svc, ty)) = nt.split_once(".googleapis.com/") {
        return (svc.into(), ty.into());
    }
    if let Some(rest) = nt.strip_prefix("Microsoft.") {
        if let Some((svc, ty)) = rest.split_once('/') {
            return (svc.into(), ty.into());
        }
    }
    match r.kind.split_once('.') {
        Some((g, t)) => (g.into(), t.into()),
        None => (r.kind.clone(), r.kind.clone()),
    }
}

/// Labels every series has from its resource and key; any other (but `tag_*`) is a label
/// of the point (`cpu`, `device`…), which marks a per-core or per-device series.
const FIXED_LABELS: [&str; 8] = skymeter_model::prom::SERIES_LABELS;

/// What identifies a resource in both the resource list and series labels.
pub type ResourceRef = (String, String, String, String);

pub fn resource_ref(r: &Resource) -> ResourceRef {
    (
        r.provider.clone(),
        r.account.clone(),
        r.region.clone(),
        r.id.clone(),
    )
}

/// One series of a metric over the window: `avg_over_time` and `max_over_time` of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesSummary {
    pub stat: String,
    /// Has point labels (per core, per device…).
    pub labelled: bool,
    pub avg: Option<f64>,
    pub max: Option<f64>,
}

/// The `avg` and `max` of a metric from its series, by the rule of the server's own
/// summary (`GET /api/v1/resources/{key}`'s `monitoring`): series without point labels win
/// over labelled ones; `avg` is the mean of the avg-over-time of the series of the primary
/// stat (`avg`, else `last`, else the first stat present); `max` is the largest
/// max-over-time of the `max` series when there are any, else of the primary stat's.
pub fn summarize(series: &[SeriesSummary]) -> (Option<f64>, Option<f64>) {
    let chosen: Vec<&SeriesSummary> = if series.iter().any(|s| !s.labelled) {
        series.iter().filter(|s| !s.labelled).collect()
    } else {
        series.iter().collect()
    };
    let order = [
        "avg", "last", "max", "min", "sum", "count", "p50", "p95", "p99",
    ];
    let Some(primary) = order
        .iter()
        .copied()
        .find(|st| chosen.iter().any(|s| s.stat == *st))
        .or_else(|| chosen.first().map(|s| s.stat.as_str()))
    else {
        return (None, None);
    };
    let prim: Vec<&&SeriesSummary> = chosen.iter().filter(|s| s.stat == primary).collect();
    let avgs: Vec<f64> = prim.iter().filter_map(|s| s.avg).collect();
    let avg = (!avgs.is_empty()).then(|| avgs.iter().sum::<f64>() / avgs.len() as f64);
    let max = if chosen.iter().any(|s| s.stat == "max") {
        chosen
            .iter()
            .filter(|s| s.stat == "max")
            .filter_map(|s| s.max)
            .reduce(f64::max)
    } else {
        prim.iter().filter_map(|s| s.max).reduce(f64::max)
    };
    (avg, max)
}

/// The query answers of a set of resources, gathered per resource, metric and series.
#[derive(Debug, Default)]
pub struct Readings {
    series: BTreeMap<(ResourceRef, &'static str), BTreeMap<String, SeriesSummary>>,
}

impl Readings {
    /// Adds the answer of `avg_over_time` (`is_max` false) or `max_over_time` of `metric`.
    pub fn add(&mut self, metric: &'static str, is_max: bool, samples: Vec<Sample>) {
        for s in samples {
            let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let r = (
                get("provider"),
                get("account"),
                get("region"),
                get("resource_id"),
            );
            let point_labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| !FIXED_LABELS.contains(&k.as_str()) && !k.starts_with("tag_"))
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            let stat = get("stat");
            let id = format!("{stat}{{{}}}", point_labels.join(","));
            let entry = self
                .series
                .entry((r, metric))
                .or_default()
                .entry(id)
                .or_insert_with(|| SeriesSummary {
                    stat,
                    labelled: !point_labels.is_empty(),
                    avg: None,
                    max: None,
                });
            if is_max {
                entry.max = Some(s.value);
            } else {
                entry.avg = Some(s.value);
            }
        }
    }

    /// `data.monitoring` of one resource: `{group: {name: {avg, max}}}` for each metric of
    /// [`METRICS`] it has values of.
    pub fn monitoring(&self, r: &ResourceRef) -> Map<String, Value> {
        let mut root = Map::new();
        for metric in METRICS {
            let Some(series) = self.series.get(&(r.clone(), metric)) else {
                continue;
            };
            let list: Vec<SeriesSummary> = series.values().cloned().collect();
            let (avg, max) = summarize(&list);
            if avg.is_none() && max.is_none() {
                continue;
            }
            let (group, name) = metric.split_once('.').expect("dotted metric names");
            let group = root
                .entry(group)
                .or_insert_with(|| Value::Object(Map::new()));
            group
                .as_object_mut()
                .expect("groups are objects")
                .insert(name.into(), json!({"avg": avg, "max": max}));
        }
        root
    }
}

/// The `ResourceInfo` parts of a resource: `resource_type`, `match_rules`, `resource`.
pub fn resource_info(
    r: &Resource,
    monitoring: Map<String, Value>,
    window: &Window,
) -> (&'static str, Value, Value) {
    let server = SERVER_KINDS.contains(&r.kind.as_str());
    let provider = cloudforet_provider(&r.provider);
    let (group, ty) = service_group_and_type(r);
    let mut reference = json!({"resource_id": reference_id(r)});
    if let Some(link) = external_link(r) {
        reference["external_link"] = Value::String(link);
    }
    let mut resource = json!({
        "name": if r.name.is_empty() { &r.id } else { &r.name },
        "provider": provider,
        "account": r.account,
        "region_code": r.region,
        "cloud_service_group": group,
        "cloud_service_type": ty,
        "tags": r.tags,
        "reference": reference,
        "data": {
            "monitoring": monitoring,
            "skymeter": {
                "key": r.key,
                "id": r.id,
                "kind": r.kind,
                "native_type": r.native_type,
                "attributes": r.attributes,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
                "monitoring_window": {
                    "start": window.start.to_rfc3339(),
                    "end": window.end.to_rfc3339(),
                },
            },
        },
    });
    if let Some(t) = attr(r, "instance_type") {
        resource["instance_type"] = t.into();
    }
    let ips: Vec<&str> = ["private_ip", "public_ip"]
        .iter()
        .filter_map(|k| attr(r, k))
        .collect();
    if let Some(first) = ips.first() {
        resource["primary_ip_address"] = (*first).into();
        resource["ip_addresses"] = json!(ips);
    }
    if server {
        if r.kind == "compute.instance" {
            resource["server_type"] = "VM".into();
        }
        if let Some(os) = attr(r, "platform").or_else(|| attr(r, "os")) {
            let os = os.to_ascii_lowercase();
            if os.contains("windows") {
                resource["os_type"] = "WINDOWS".into();
            } else if os.contains("linux") {
                resource["os_type"] = "LINUX".into();
            }
        }
        // Cloudforet's servers are merged on the reference id alone (the seed's rule).
        (SERVER, json!({"1": ["reference.resource_id"]}), resource)
    } else {
        (
            CLOUD_SERVICE,
            json!({"1": ["reference.resource_id", "provider", "cloud_service_type",
                         "cloud_service_group"]}),
            resource,
        )
    }
}

/// The `resource` of a failure item: what names the resource, as Cloudforet's
/// `ErrorResource` carries it.
pub fn failure_resource(r: &Resource) -> Value {
    let (group, ty) = service_group_and_type(r);
    json!({
        "provider": cloudforet_provider(&r.provider),
        "cloud_service_group": group,
        "cloud_service_type": ty,
        "resource_id": reference_id(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn res(provider: &str, kind: &str, id: &str, attrs: Value) -> Resource {
        Resource {
            key: format!("{provider}/acct/r1/{id}"),
            provider: provider.into(),
            account: "acct".into(),
            region: "r1".into(),
            kind: kind.into(),
            id: id.into(),
            name: "web-1".into(),
            attributes: attrs.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    fn sample(id: &str, stat: &str, extra: &[(&str, &str)], value: f64) -> Sample {
        let mut labels: BTreeMap<String, String> = [
            ("provider", "aws"),
            ("account", "acct"),
            ("region", "r1"),
            ("resource_id", id),
            ("stat", stat),
            ("kind", "compute.instance"),
            ("tag_team", "core"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        Sample { labels, value }
    }

    #[test]
    fn prometheus_names_follow_the_catalog() {
        assert_eq!(
            prometheus_name("cpu.utilization"),
            "cpu_utilization_percent"
        );
        assert_eq!(
            prometheus_name("disk.read_iops"),
            "disk_read_iops_per_second"
        );
        assert_eq!(
            prometheus_name("network.sent_throughput"),
            "network_sent_throughput_bytes_per_second"
        );
        for m in METRICS {
            assert!(catalog::lookup(m).is_some(), "{m} is in the catalog");
        }
    }

    #[test]
    fn avg_and_max_come_from_the_right_series() {
        let mut rd = Readings::default();
        // An avg series and a max series (CloudWatch-like); per-core series are ignored
        // when an unlabelled one exists.
        rd.add(
            "cpu.utilization",
            false,
            vec![
                sample("i-1", "avg", &[], 20.0),
                sample("i-1", "max", &[], 70.0),
                sample("i-1", "avg", &[("cpu", "0")], 99.0),
            ],
        );
        rd.add(
            "cpu.utilization",
            true,
            vec![
                sample("i-1", "avg", &[], 40.0),
                sample("i-1", "max", &[], 90.0),
                sample("i-1", "avg", &[("cpu", "0")], 100.0),
            ],
        );
        // Only a `last` gauge: avg and max of its values.
        rd.add(
            "memory.usage",
            false,
            vec![sample("i-1", "last", &[], 55.5)],
        );
        rd.add("memory.usage", true, vec![sample("i-1", "last", &[], 60.0)]);
        // Only per-device series: their avgs averaged, their maxes maxed.
        rd.add(
            "disk.read_iops",
            false,
            vec![
                sample("i-1", "avg", &[("device", "sda")], 10.0),
                sample("i-1", "avg", &[("device", "sdb")], 30.0),
            ],
        );
        rd.add(
            "disk.read_iops",
            true,
            vec![
                sample("i-1", "avg", &[("device", "sda")], 15.0),
                sample("i-1", "avg", &[("device", "sdb")], 35.0),
            ],
        );
        // Another resource's values stay its own.
        rd.add(
            "network.sent_throughput",
            false,
            vec![sample("i-2", "avg", &[], 1.0)],
        );
        let r = res("aws", "compute.instance", "i-1", json!({}));
        let m = Value::Object(rd.monitoring(&resource_ref(&r)));
        assert_eq!(
            m,
            json!({"cpu": {"utilization": {"avg": 20.0, "max": 90.0}},
                   "memory": {"usage": {"avg": 55.5, "max": 60.0}},
                   "disk": {"read_iops": {"avg": 20.0, "max": 35.0}}})
        );
        assert_eq!(summarize(&[]), (None, None));
    }

    #[test]
    fn servers_and_cloud_services_carry_cloudforets_fields_and_match_rules() {
        let window = Window {
            start: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            end: DateTime::<Utc>::from_timestamp(86_400, 0).unwrap(),
        };
        let ec2 = res(
            "aws",
            "compute.instance",
            "i-0abc",
            json!({"instance_type": "t3.micro", "private_ip": "10.0.0.5", "platform": "Linux/UNIX"}),
        );
        let mon = json!({"cpu": {"utilization": {"avg": 1.0, "max": 2.0}}});
        let (ty, rules, r) = resource_info(&ec2, mon.as_object().unwrap().clone(), &window);
        assert_eq!(ty, "inventory.Server");
        assert_eq!(rules, json!({"1": ["reference.resource_id"]}));
        assert_eq!(r["reference"]["resource_id"], "i-0abc");
        assert_eq!(r["provider"], "aws");
        assert_eq!(r["cloud_service_group"], "EC2");
        assert_eq!(r["instance_type"], "t3.micro");
        assert_eq!(r["primary_ip_address"], "10.0.0.5");
        assert_eq!(r["server_type"], "VM");
        assert_eq!(r["os_type"], "LINUX");
        assert_eq!(r["region_code"], "r1");
        assert_eq!(r["data"]["monitoring"], mon);
        assert_eq!(
            r["data"]["skymeter"]["monitoring_window"]["end"],
            "1970-01-02T00:00:00+00:00"
        );

        let gce = res(
            "gcp",
            "compute.instance",
            "123",
            json!({"availability_zone": "europe-west1-b"}),
        );
        let (_, _, r) = resource_info(&gce, Map::new(), &window);
        assert_eq!(r["provider"], "google_cloud");
        assert_eq!(
            r["reference"]["resource_id"],
            "https://www.googleapis.com/compute/v1/projects/acct/zones/europe-west1-b/instances/web-1"
        );

        let rds = Resource {
            native_type: "AWS::RDS::DBInstance".into(),
            ..res("aws", "database.instance", "orders", json!({}))
        };
        let (ty, rules, r) = resource_info(&rds, Map::new(), &window);
        assert_eq!(ty, "inventory.CloudService");
        assert_eq!(rules["1"][0], "reference.resource_id");
        assert_eq!(
            (
                r["cloud_service_group"].as_str(),
                r["cloud_service_type"].as_str()
            ),
            (Some("RDS"), Some("DBInstance"))
        );
        let vm = Resource {
            native_type: "Microsoft.Sql/servers".into(),
            ..res("azure", "database.server", "/subscriptions/s/x", json!({}))
        };
        assert_eq!(
            service_group_and_type(&vm),
            ("Sql".into(), "servers".into())
        );
        assert_eq!(failure_resource(&vm)["resource_id"], "/subscriptions/s/x");
    }
}
