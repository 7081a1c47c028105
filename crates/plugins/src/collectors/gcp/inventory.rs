//! Discovery, every page of every list, for one project: Compute Engine instances (with the
//! vCPUs and memory of their machine types), persistent disks and their snapshots, external
//! addresses, forwarding rules (load balancers) and Cloud NAT gateways, GKE clusters and
//! their node pools, Cloud Functions (v2), Cloud SQL instances and Cloud Storage buckets.

use super::client::{Api, Call};
use crate::cloud::Attrs;
use chrono::{DateTime, Utc};
use serde_json::Value;
use skymeter_model::{Labels, Resource};
use skymeter_plugin_api::PluginError;
use std::collections::{BTreeMap, HashMap};

pub const INSTANCES: Call = Call {
    api: "compute.instances.aggregatedList",
    permission: "compute.instances.list",
    role: "roles/compute.viewer",
};
pub const MACHINE_TYPES: Call = Call {
    api: "compute.machineTypes.aggregatedList",
    permission: "compute.machineTypes.list",
    role: "roles/compute.viewer",
};
pub const DISKS: Call = Call {
    api: "compute.disks.aggregatedList",
    permission: "compute.disks.list",
    role: "roles/compute.viewer",
};
pub const SNAPSHOTS: Call = Call {
    api: "compute.snapshots.list",
    permission: "compute.snapshots.list",
    role: "roles/compute.viewer",
};
pub const ADDRESSES: Call = Call {
    api: "compute.addresses.aggregatedList",
    permission: "compute.addresses.list",
    role: "roles/compute.viewer",
};
pub const FORWARDING_RULES: Call = Call {
    api: "compute.forwardingRules.aggregatedList",
    permission: "compute.forwardingRules.list",
    role: "roles/compute.viewer",
};
pub const ROUTERS: Call = Call {
    api: "compute.routers.aggregatedList",
    permission: "compute.routers.list",
    role: "roles/compute.viewer",
};
pub const CLUSTERS: Call = Call {
    api: "container.projects.locations.clusters.list",
    permission: "container.clusters.list",
    role: "roles/container.clusterViewer",
};
pub const FUNCTIONS: Call = Call {
    api: "cloudfunctions.projects.locations.functions.list",
    permission: "cloudfunctions.functions.list",
    role: "roles/cloudfunctions.viewer",
};
pub const SQL_INSTANCES: Call = Call {
    api: "sql.instances.list",
    permission: "cloudsql.instances.list",
    role: "roles/cloudsql.viewer",
};
pub const BUCKETS: Call = Call {
    api: "storage.buckets.list",
    permission: "storage.buckets.list",
    role: "roles/storage.bucketViewer",
};

/// Where a discovery runs: one project.
pub struct Scope<'a> {
    pub project: &'a str,
    pub api: &'a Api,
    /// Only resources with all these labels.
    pub labels: &'a BTreeMap<String, String>,
    pub now: DateTime<Utc>,
}

impl Scope<'_> {
    #[allow(clippy::too_many_arguments)]
    fn resource(
        &self,
        kind: &str,
        native_type: &str,
        region: String,
        id: String,
        name: String,
        tags: Labels,
        attributes: Attrs,
    ) -> Resource {
        Resource {
            provider: "gcp".into(),
            account: self.project.to_string(),
            region,
            kind: kind.into(),
            native_type: native_type.into(),
            id,
            name,
            tags,
            attributes: attributes.0,
            observed_at: self.now,
        }
    }

    fn wanted(&self, tags: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| tags.get(k) == Some(v))
    }

    fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project)
    }
}

/// How a VM is provisioned, from its `scheduling`: `spot`, `preemptible` or `standard`.
fn lifecycle(scheduling: &Value) -> &'static str {
    if scheduling["provisioningModel"].as_str() == Some("SPOT") {
        "spot"
    } else if scheduling["preemptible"].as_bool() == Some(true) {
        "preemptible"
    } else {
        "standard"
    }
}

/// The last segment of a URL or resource name (`…/zones/us-central1-a` → `us-central1-a`).
pub fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The region of a zone (`us-central1-a` → `us-central1`); a region stays as it is.
pub fn region_of_zone(zone: &str) -> String {
    match zone.rsplit_once('-') {
        Some((region, z)) if z.len() == 1 => region.to_string(),
        _ => zone.to_string(),
    }
}

fn labels_of(v: &Value) -> Labels {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A JSON number or an int64 sent as a string (`"sizeGb": "10"`).
fn num_of(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()))
}

/// A GCE state in lower case, TERMINATED (a stopped VM) as `stopped`.
fn gce_state(s: &str) -> String {
    match s {
        "TERMINATED" => "stopped".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Every scoped item of an aggregatedList page: `items` is a map of `zones/…` or
/// `regions/…` to `{ "<field>": [...] }` (or `{ "warning": … }` when the scope has none).
fn aggregated<'v>(page: &'v Value, field: &str) -> Vec<&'v Value> {
    page["items"]
        .as_object()
        .map(|scopes| {
            scopes
                .values()
                .filter_map(|s| s.get(field).and_then(Value::as_array))
                .flatten()
                .collect()
        })
        .unwrap_or_default()
}

const COMPUTE: &str = "compute.googleapis.com";

/// Compute Engine instances (instances.aggregatedList, every page).
pub async fn instances(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/aggregated/instances")),
    );
    let query = [
        ("maxResults", "500".to_string()),
        ("returnPartialSuccess", "true".to_string()),
    ];
    let mut out = Vec::new();
    scope
        .api
        .pages(&INSTANCES, &url, &query, |page: Value| {
            for i in aggregated(&page, "instances") {
                let tags = labels_of(&i["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let zone = last_segment(i["zone"].as_str().unwrap_or_default()).to_string();
                let nic = &i["networkInterfaces"][0];
                let attrs = Attrs::default()
                    .s(
                        "instance_type",
                        i["machineType"]
                            .as_str()
                            .map(|t| last_segment(t).to_string()),
                    )
                    .s("state", i["status"].as_str().map(gce_state))
                    .s(
                        "availability_zone",
                        Some(zone.clone()).filter(|z| !z.is_empty()),
                    )
                    .s("private_ip", str_of(&nic["networkIP"]))
                    .s("public_ip", str_of(&nic["accessConfigs"][0]["natIP"]))
                    .s("launch_time", str_of(&i["creationTimestamp"]))
                    .s("platform", str_of(&i["cpuPlatform"]))
                    .s("lifecycle", Some(lifecycle(&i["scheduling"])));
                let id = str_of(&i["id"]).unwrap_or_default();
                let name = str_of(&i["name"]).unwrap_or_else(|| id.clone());
                out.push(scope.resource(
                    "compute.instance",
                    "compute.googleapis.com/Instance",
                    region_of_zone(&zone),
                    id,
                    name,
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// Fills `vcpus` and `memory_mib` of instances from machineTypes.aggregatedList (one listing
/// per project, every page). Custom machine types (`custom-4-8192`) are read from the name.
pub async fn machine_types(
    scope: &Scope<'_>,
    instances: &mut [Resource],
) -> Result<(), PluginError> {
    let needed = instances
        .iter()
        .any(|r| r.attributes.contains_key("instance_type"));
    if !needed {
        return Ok(());
    }
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/aggregated/machineTypes")),
    );
    let query = [
        ("maxResults", "500".to_string()),
        ("returnPartialSuccess", "true".to_string()),
    ];
    // Same name, same shape in every zone: keyed by name.
    let mut types: HashMap<String, (f64, f64)> = HashMap::new();
    scope
        .api
        .pages(&MACHINE_TYPES, &url, &query, |page: Value| {
            for t in aggregated(&page, "machineTypes") {
                if let (Some(name), Some(cpus), Some(mem)) = (
                    t["name"].as_str(),
                    num_of(&t["guestCpus"]),
                    num_of(&t["memoryMb"]),
                ) {
                    types.entry(name.to_string()).or_insert((cpus, mem));
                }
            }
        })
        .await?;
    for r in instances.iter_mut() {
        let Some(t) = r.attributes.get("instance_type").and_then(Value::as_str) else {
            continue;
        };
        let shape = types.get(t).copied().or_else(|| custom_shape(t));
        if let Some((cpus, mem)) = shape {
            r.attributes
                .insert("vcpus".into(), Value::from(cpus as i64));
            r.attributes
                .insert("memory_mib".into(), Value::from(mem as i64));
        }
    }
    Ok(())
}

/// `custom-4-8192`, `n2-custom-4-8192`, `…-ext` → (4, 8192).
fn custom_shape(t: &str) -> Option<(f64, f64)> {
    let t = t.strip_suffix("-ext").unwrap_or(t);
    let rest = &t[t.find("custom-")? + "custom-".len()..];
    let (cpus, mem) = rest.split_once('-')?;
    Some((cpus.parse().ok()?, mem.parse().ok()?))
}

/// Persistent disks (disks.aggregatedList, zonal and regional, every page).
pub async fn disks(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/aggregated/disks")),
    );
    let query = [
        ("maxResults", "500".to_string()),
        ("returnPartialSuccess", "true".to_string()),
    ];
    let mut out = Vec::new();
    scope
        .api
        .pages(&DISKS, &url, &query, |page: Value| {
            for d in aggregated(&page, "disks") {
                let tags = labels_of(&d["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let zone = d["zone"].as_str().map(|z| last_segment(z).to_string());
                let region = match &zone {
                    Some(z) => region_of_zone(z),
                    None => last_segment(d["region"].as_str().unwrap_or_default()).to_string(),
                };
                let attrs = Attrs::default()
                    .n("size_gib", num_of(&d["sizeGb"]))
                    .s(
                        "volume_type",
                        d["type"].as_str().map(|t| last_segment(t).to_string()),
                    )
                    .s("state", d["status"].as_str().map(str::to_ascii_lowercase))
                    .s("availability_zone", zone)
                    .s("launch_time", str_of(&d["creationTimestamp"]))
                    .s("created", created(&d["creationTimestamp"]))
                    // The instances using the disk; none: unattached.
                    .s("attached_to", str_of(&d["users"][0]));
                let id = str_of(&d["id"]).unwrap_or_default();
                let name = str_of(&d["name"]).unwrap_or_else(|| id.clone());
                out.push(scope.resource(
                    "storage.volume",
                    "compute.googleapis.com/Disk",
                    region,
                    id,
                    name,
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// A creation time as RFC 3339 in UTC (`2024-01-15T16:30:00Z`), whatever offset the API
/// wrote it with.
pub fn created(v: &Value) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(
        t.with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

/// The region of a zonal or regional resource URL (`…/zones/us-central1-a/disks/d` →
/// `us-central1`, `…/regions/europe-west1/…` → `europe-west1`).
fn region_of_url(url: &str) -> Option<String> {
    let mut segs = url.split('/');
    while let Some(s) = segs.next() {
        match s {
            "zones" => return segs.next().map(region_of_zone),
            "regions" => return segs.next().map(str::to_string),
            _ => {}
        }
    }
    None
}

/// The query of every Compute Engine list: the API's largest page (500) and the scopes
/// that answered even when another failed.
fn compute_query() -> [(&'static str, String); 2] {
    [
        ("maxResults", "500".to_string()),
        ("returnPartialSuccess", "true".to_string()),
    ]
}

/// Disk snapshots (snapshots.list, global, every page). A snapshot lives in a storage
/// location (a region or a multi-region such as `us`), not in a zone; its region is the
/// source disk's (so it is priced and grouped beside the disk), else its storage location.
/// `size_gib` is what Google bills, `storageBytes` ÷ 2^30; `source_size_gib` is the disk's.
pub async fn snapshots(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/global/snapshots")),
    );
    let query = compute_query();
    let mut out = Vec::new();
    scope
        .api
        .pages(&SNAPSHOTS, &url, &query[..1], |page: Value| {
            for s in page["items"].as_array().into_iter().flatten() {
                let tags = labels_of(&s["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let location = str_of(&s["storageLocations"][0]);
                let region = s["sourceDisk"]
                    .as_str()
                    .and_then(region_of_url)
                    .or_else(|| location.clone())
                    .unwrap_or_default();
                let tier = match s["snapshotType"].as_str() {
                    Some("ARCHIVE") => "archive",
                    _ => "standard",
                };
                let attrs = Attrs::default()
                    .n(
                        "size_gib",
                        num_of(&s["storageBytes"]).map(|b| b / (1u64 << 30) as f64),
                    )
                    .n("source_size_gib", num_of(&s["diskSizeGb"]))
                    .s("created", created(&s["creationTimestamp"]))
                    .s("volume_id", str_of(&s["sourceDiskId"]))
                    .s("source_disk", str_of(&s["sourceDisk"]))
                    .s("state", s["status"].as_str().map(str::to_ascii_lowercase))
                    .s("storage_tier", Some(tier))
                    .s("storage_location", location);
                let id = str_of(&s["id"]).unwrap_or_default();
                let name = str_of(&s["name"]).unwrap_or_else(|| id.clone());
                out.push(scope.resource(
                    "storage.snapshot",
                    "compute.googleapis.com/Snapshot",
                    region,
                    id,
                    name,
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// External IP addresses, regional and global (addresses.aggregatedList, every page);
/// internal addresses are left out. `associated` is status IN_USE, `attached_to` the first
/// user (an instance or a forwarding rule).
pub async fn addresses(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/aggregated/addresses")),
    );
    let query = compute_query();
    let mut out = Vec::new();
    scope
        .api
        .pages(&ADDRESSES, &url, &query, |page: Value| {
            for a in aggregated(&page, "addresses") {
                // addressType is EXTERNAL when absent.
                if a["addressType"].as_str() == Some("INTERNAL") {
                    continue;
                }
                let tags = labels_of(&a["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let region = a["region"]
                    .as_str()
                    .map(|r| last_segment(r).to_string())
                    .unwrap_or_else(|| "global".into());
                let status = a["status"].as_str().unwrap_or_default();
                let attrs = Attrs::default()
                    .s("public_ip", str_of(&a["address"]))
                    .b("associated", Some(status == "IN_USE"))
                    .s("attached_to", str_of(&a["users"][0]))
                    .s(
                        "state",
                        Some(status.to_ascii_lowercase()).filter(|s| !s.is_empty()),
                    )
                    .s("allocation", Some("static"))
                    .s(
                        "network_tier",
                        a["networkTier"].as_str().map(str::to_ascii_lowercase),
                    )
                    .s("created", created(&a["creationTimestamp"]));
                let id = str_of(&a["id"]).unwrap_or_default();
                let name = str_of(&a["name"]).unwrap_or_else(|| id.clone());
                out.push(scope.resource(
                    "network.public_ip",
                    "compute.googleapis.com/Address",
                    region,
                    id,
                    name,
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// What a forwarding rule's target makes of it: `application` for HTTP(S) proxies (Layer 7
/// load balancers), `network` for the others (passthrough, TCP/SSL proxies).
fn lb_type(rule: &Value) -> &'static str {
    let target = rule["target"].as_str().unwrap_or_default();
    if target.contains("/targetHttpProxies/") || target.contains("/targetHttpsProxies/") {
        "application"
    } else {
        "network"
    }
}

/// Load balancer frontends: forwarding rules, regional and global
/// (forwardingRules.aggregatedList, every page), those with an EXTERNAL* or INTERNAL*
/// `loadBalancingScheme` (Private Service Connect rules have none and are left out).
pub async fn forwarding_rules(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/aggregated/forwardingRules")),
    );
    let query = compute_query();
    let mut out = Vec::new();
    scope
        .api
        .pages(&FORWARDING_RULES, &url, &query, |page: Value| {
            for f in aggregated(&page, "forwardingRules") {
                let scheme = f["loadBalancingScheme"].as_str().unwrap_or_default();
                let side = if scheme.starts_with("EXTERNAL") {
                    "external"
                } else if scheme.starts_with("INTERNAL") {
                    "internal"
                } else {
                    continue;
                };
                let tags = labels_of(&f["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let region = f["region"]
                    .as_str()
                    .map(|r| last_segment(r).to_string())
                    .unwrap_or_else(|| "global".into());
                let attrs = Attrs::default()
                    .s("lb_type", Some(lb_type(f)))
                    .s("scheme", Some(side))
                    .s("load_balancing_scheme", Some(scheme))
                    .s("ip_address", str_of(&f["IPAddress"]))
                    .s(
                        "public_ip",
                        str_of(&f["IPAddress"]).filter(|_| side == "external"),
                    )
                    .s("protocol", str_of(&f["IPProtocol"]))
                    .s("port_range", str_of(&f["portRange"]))
                    .s(
                        "target",
                        str_of(&f["target"]).or_else(|| str_of(&f["backendService"])),
                    )
                    .n("frontends", Some(1u32))
                    .s("created", created(&f["creationTimestamp"]));
                let id = str_of(&f["id"]).unwrap_or_default();
                let name = str_of(&f["name"]).unwrap_or_else(|| id.clone());
                out.push(scope.resource(
                    "network.load_balancer",
                    "compute.googleapis.com/ForwardingRule",
                    region,
                    id,
                    name,
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// Cloud NAT gateways: the `nats[]` of every Cloud Router (routers.aggregatedList, every
/// page). A NAT gateway has no id of its own: its id is `region/router/nat`. Routers carry no
/// labels, so a label filter leaves every NAT gateway out.
pub async fn nat_gateways(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        COMPUTE,
        &format!("/compute/v1{}", scope.path("/aggregated/routers")),
    );
    let query = compute_query();
    let mut out = Vec::new();
    if !scope.labels.is_empty() {
        return Ok(out);
    }
    scope
        .api
        .pages(&ROUTERS, &url, &query, |page: Value| {
            for r in aggregated(&page, "routers") {
                let region = last_segment(r["region"].as_str().unwrap_or_default()).to_string();
                let router = str_of(&r["name"]).unwrap_or_default();
                for n in r["nats"].as_array().into_iter().flatten() {
                    let name = str_of(&n["name"]).unwrap_or_default();
                    let attrs = Attrs::default()
                        .s("router", Some(router.clone()))
                        // Cloud Monitoring names the gateway by its router's numeric id.
                        .s("router_id", str_of(&r["id"]))
                        .s(
                            "network",
                            r["network"].as_str().map(|u| last_segment(u).to_string()),
                        )
                        .s(
                            "nat_type",
                            Some(n["type"].as_str().unwrap_or("PUBLIC").to_ascii_lowercase()),
                        )
                        .s(
                            "allocation",
                            n["natIpAllocateOption"]
                                .as_str()
                                .map(str::to_ascii_lowercase),
                        )
                        .n("public_ips", n["natIps"].as_array().map(|a| a.len() as f64))
                        .s(
                            "subnets",
                            n["sourceSubnetworkIpRangesToNat"]
                                .as_str()
                                .map(str::to_ascii_lowercase),
                        )
                        .s("created", created(&r["creationTimestamp"]));
                    out.push(scope.resource(
                        "network.nat_gateway",
                        "compute.googleapis.com/RouterNat",
                        region.clone(),
                        format!("{region}/{router}/{name}"),
                        name,
                        Labels::default(),
                        attrs,
                    ));
                }
            }
        })
        .await?;
    Ok(out)
}

/// GKE clusters of every location (`locations/-`) and their node pools (in the same
/// answer). clusters.list has no paging.
pub async fn clusters(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        "container.googleapis.com",
        &format!("/v1{}", scope.path("/locations/-/clusters")),
    );
    let page: Value = scope.api.get(&CLUSTERS, &url, &[]).await?;
    let mut out = Vec::new();
    for c in page["clusters"].as_array().into_iter().flatten() {
        let tags = labels_of(&c["resourceLabels"]);
        if !scope.wanted(&tags) {
            continue;
        }
        let name = str_of(&c["name"]).unwrap_or_default();
        let location = str_of(&c["location"]).unwrap_or_default();
        let region = region_of_zone(&location);
        let zone = (region != location).then(|| location.clone());
        let id = format!("{location}/{name}");
        let attrs = Attrs::default()
            .s("version", str_of(&c["currentMasterVersion"]))
            .s("status", c["status"].as_str().map(str::to_ascii_lowercase))
            .s("availability_zone", zone.clone())
            .s("launch_time", str_of(&c["createTime"]))
            .n("node_count", num_of(&c["currentNodeCount"]))
            .b("autopilot", c["autopilot"]["enabled"].as_bool());
        for p in c["nodePools"].as_array().into_iter().flatten() {
            let pool = str_of(&p["name"]).unwrap_or_default();
            let attrs = Attrs::default()
                .s("instance_type", str_of(&p["config"]["machineType"]))
                .s("version", str_of(&p["version"]))
                .s("status", p["status"].as_str().map(str::to_ascii_lowercase))
                .n("size_gib", num_of(&p["config"]["diskSizeGb"]))
                .n("node_count", num_of(&p["initialNodeCount"]))
                .n("min_nodes", num_of(&p["autoscaling"]["minNodeCount"]))
                .n("max_nodes", num_of(&p["autoscaling"]["maxNodeCount"]))
                .s("cluster", Some(name.clone()));
            out.push(scope.resource(
                "k8s.node_group",
                "container.googleapis.com/NodePool",
                region.clone(),
                format!("{id}/{pool}"),
                pool,
                tags.clone(),
                attrs,
            ));
        }
        out.push(scope.resource(
            "k8s.cluster",
            "container.googleapis.com/Cluster",
            region,
            id,
            name,
            tags,
            attrs,
        ));
    }
    Ok(out)
}

/// `256M`, `1Gi`, `512Mi`, `2G` → MB.
fn memory_mb(s: &str) -> Option<f64> {
    let idx = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = s.split_at(idx);
    let n: f64 = n.parse().ok()?;
    let mb = match unit {
        "M" => n,
        "Mi" => n * 1.048_576,
        "G" => n * 1000.0,
        "Gi" => n * 1_073.741_824,
        "k" | "K" => n / 1000.0,
        _ => return None,
    };
    Some(mb.round())
}

/// Cloud Functions of every location (v2 `locations/-/functions`, every page). The id is
/// the full name (`projects/p/locations/r/functions/f`); the name is the short one.
pub async fn functions(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        "cloudfunctions.googleapis.com",
        &format!("/v2{}", scope.path("/locations/-/functions")),
    );
    let query = [("pageSize", "1000".to_string())];
    let mut out = Vec::new();
    scope
        .api
        .pages(&FUNCTIONS, &url, &query, |page: Value| {
            for f in page["functions"].as_array().into_iter().flatten() {
                let tags = labels_of(&f["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let full = str_of(&f["name"]).unwrap_or_default();
                let parts: Vec<&str> = full.split('/').collect();
                let region = parts.get(3).copied().unwrap_or_default().to_string();
                let attrs = Attrs::default()
                    .s("runtime", str_of(&f["buildConfig"]["runtime"]))
                    .n(
                        "memory_mb",
                        f["serviceConfig"]["availableMemory"]
                            .as_str()
                            .and_then(memory_mb),
                    )
                    .s("state", f["state"].as_str().map(str::to_ascii_lowercase))
                    .s("environment", str_of(&f["environment"]))
                    // 2nd gen: the Cloud Run service it runs on, whose metrics are its own.
                    .s(
                        "service_name",
                        f["serviceConfig"]["service"]
                            .as_str()
                            .map(|s| last_segment(s).to_string()),
                    )
                    .s("launch_time", str_of(&f["createTime"]));
                out.push(scope.resource(
                    "function",
                    "cloudfunctions.googleapis.com/Function",
                    region,
                    full.clone(),
                    last_segment(&full).to_string(),
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// `POSTGRES_15` → (`postgres`, `15`); `MYSQL_8_0` → (`mysql`, `8.0`); `SQLSERVER_2019_STANDARD`
/// → (`sqlserver`, `2019_standard`).
fn engine(v: &str) -> (String, String) {
    let lower = v.to_ascii_lowercase();
    match lower.split_once('_') {
        Some((e, ver)) if e == "sqlserver" => (e.to_string(), ver.to_string()),
        Some((e, ver)) => (e.to_string(), ver.replace('_', ".")),
        None => (lower, String::new()),
    }
}

/// Cloud SQL instances (sqladmin v1 instances.list, every page).
pub async fn sql_instances(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url(
        "sqladmin.googleapis.com",
        &format!("/v1{}", scope.path("/instances")),
    );
    let query = [("maxResults", "500".to_string())];
    let mut out = Vec::new();
    scope
        .api
        .pages(&SQL_INSTANCES, &url, &query, |page: Value| {
            for i in page["items"].as_array().into_iter().flatten() {
                let tags = labels_of(&i["settings"]["userLabels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let (eng, ver) = i["databaseVersion"]
                    .as_str()
                    .map(engine)
                    .unwrap_or_default();
                let ip = |kind: &str| {
                    i["ipAddresses"].as_array().and_then(|a| {
                        a.iter()
                            .find(|x| x["type"] == kind)
                            .and_then(|x| str_of(&x["ipAddress"]))
                    })
                };
                let state = i["state"].as_str().map(|s| match s {
                    "RUNNABLE" => "running".to_string(),
                    o => o.to_ascii_lowercase(),
                });
                let attrs = Attrs::default()
                    .s("instance_class", str_of(&i["settings"]["tier"]))
                    .s("engine", Some(eng).filter(|e| !e.is_empty()))
                    .s("engine_version", Some(ver).filter(|e| !e.is_empty()))
                    .s("state", state)
                    .s("availability_zone", str_of(&i["gceZone"]))
                    .s("private_ip", ip("PRIVATE"))
                    .s("public_ip", ip("PRIMARY"))
                    .n("size_gib", num_of(&i["settings"]["dataDiskSizeGb"]))
                    .s("volume_type", str_of(&i["settings"]["dataDiskType"]))
                    .s("launch_time", str_of(&i["createTime"]));
                let name = str_of(&i["name"]).unwrap_or_default();
                out.push(scope.resource(
                    "database.instance",
                    "sqladmin.googleapis.com/Instance",
                    str_of(&i["region"]).unwrap_or_default(),
                    name.clone(),
                    name,
                    tags,
                    attrs,
                ));
            }
        })
        .await?;
    Ok(out)
}

/// Cloud Storage buckets (`storage/v1/b?project=`, every page). The region is the bucket's
/// location in lower case (`us-central1`, or a multi-region such as `us`).
pub async fn buckets(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = scope.api.url("storage.googleapis.com", "/storage/v1/b");
    let query = [
        ("project", scope.project.to_string()),
        ("maxResults", "1000".to_string()),
    ];
    let mut out = Vec::new();
    scope
        .api
        .pages(&BUCKETS, &url, &query, |page: Value| {
            for b in page["items"].as_array().into_iter().flatten() {
                let tags = labels_of(&b["labels"]);
                if !scope.wanted(&tags) {
                    continue;
                }
                let name = str_of(&b["name"]).unwrap_or_default();
                let attrs = Attrs::default()
                    .s("storage_class", str_of(&b["storageClass"]))
                    .s("location_type", str_of(&b["locationType"]))
                    .s("launch_time", str_of(&b["timeCreated"]));
                out.push(
                    scope.resource(
                        "storage.bucket",
                        "storage.googleapis.com/Bucket",
                        b["location"]
                            .as_str()
                            .unwrap_or_default()
                            .to_ascii_lowercase(),
                        name.clone(),
                        name,
                        tags,
                        attrs,
                    ),
                );
            }
        })
        .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parsers() {
        assert_eq!(region_of_zone("us-central1-a"), "us-central1");
        assert_eq!(region_of_zone("europe-west4"), "europe-west4");
        assert_eq!(custom_shape("custom-4-8192"), Some((4.0, 8192.0)));
        assert_eq!(custom_shape("n2-custom-2-4096-ext"), Some((2.0, 4096.0)));
        assert_eq!(custom_shape("e2-medium"), None);
        assert_eq!(memory_mb("256M"), Some(256.0));
        assert_eq!(memory_mb("1Gi"), Some(1074.0));
        assert_eq!(engine("POSTGRES_15"), ("postgres".into(), "15".into()));
        assert_eq!(engine("MYSQL_8_0"), ("mysql".into(), "8.0".into()));
        assert_eq!(gce_state("TERMINATED"), "stopped");
        assert_eq!(gce_state("RUNNING"), "running");
        assert_eq!(
            created(&Value::from("2024-01-15T08:30:00.000-08:00")).as_deref(),
            Some("2024-01-15T16:30:00Z")
        );
        assert_eq!(created(&Value::from("yesterday")), None);
        assert_eq!(
            region_of_url(
                "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/disks/d"
            )
            .as_deref(),
            Some("us-central1")
        );
        assert_eq!(
            region_of_url("projects/p/regions/europe-west1/disks/d").as_deref(),
            Some("europe-west1")
        );
        assert_eq!(region_of_url("projects/p/global/images/i"), None);
    }
}
