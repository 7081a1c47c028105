//! Inventory through ARM list calls, every page (`nextLink`): virtual machines (the model
//! from List All, the power states from a second List All with `statusOnly=true`, which
//! answers the instance view but not the hardware profile or tags; size → vCPUs and memory
//! from `locations/{location}/vmSizes`, once per location), managed disks, AKS clusters and their
//! agent pools (inline in the cluster), Function apps (`Microsoft.Web/sites` whose `kind`
//! contains `functionapp`), SQL databases (servers, then each server's databases), storage
//! accounts, disk snapshots, public IP addresses, load balancers and NAT gateways.

use super::calls;
use super::catalog::Service;
use super::client::{Client, Needs, READER};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use skymeter_model::{Labels, Resource};
use skymeter_plugin_api::PluginError;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::Semaphore;

pub const API_COMPUTE: &str = "2024-07-01";
pub const API_DISKS: &str = "2024-03-02";
pub const API_AKS: &str = "2024-09-01";
pub const API_WEB: &str = "2023-12-01";
pub const API_SQL: &str = "2021-11-01";
pub const API_STORAGE: &str = "2023-05-01";
/// Public IP addresses, load balancers and NAT gateways (Microsoft.Network).
pub const API_NETWORK: &str = "2024-05-01";

/// What one subscription's listing needs.
pub struct Scope<'a> {
    pub client: &'a Client,
    /// `resource_manager_endpoint`, without a trailing slash.
    pub arm: &'a str,
    /// The token scope of ARM.
    pub token_scope: &'a str,
    pub subscription: &'a str,
    pub tags: &'a BTreeMap<String, String>,
    pub api_limit: &'a Semaphore,
    pub now: DateTime<Utc>,
}

fn needs(action: &'static str) -> Needs {
    Needs {
        action,
        role: READER,
    }
}

impl Scope<'_> {
    fn url(&self, path: &str, api_version: &str, extra: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/{path}?api-version={api_version}{extra}",
            self.arm, self.subscription
        )
    }

    async fn list(
        &self,
        api: &'static str,
        action: &'static str,
        url: &str,
    ) -> Result<Vec<Value>, PluginError> {
        let _permit = self.api_limit.acquire().await;
        self.client
            .list_all(api, needs(action), self.token_scope, url)
            .await
            .map_err(|e| e.with("subscription", self.subscription))
    }

    /// A resource from the common ARM fields, or None when the tag filter excludes it.
    fn resource(&self, v: &Value, kind: &str, native_type: &str) -> Option<Resource> {
        let tags: Labels = v
            .get("tags")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if self.tags.iter().any(|(k, want)| tags.get(k) != Some(want)) {
            return None;
        }
        let mut attributes = BTreeMap::new();
        if let Some(z) = v.pointer("/zones/0").and_then(Value::as_str) {
            attributes.insert("availability_zone".into(), json!(z));
        }
        Some(Resource {
            provider: "azure".into(),
            account: self.subscription.to_string(),
            region: str_at(v, "/location").unwrap_or_default().to_string(),
            kind: kind.into(),
            native_type: native_type.into(),
            id: str_at(v, "/id").unwrap_or_default().to_string(),
            name: str_at(v, "/name").unwrap_or_default().to_string(),
            tags,
            attributes,
            observed_at: self.now,
        })
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn set(r: &mut Resource, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        r.attributes.insert(key.into(), v);
    }
}

fn lower(v: &Value, pointer: &str) -> Option<Value> {
    str_at(v, pointer).map(|s| json!(s.to_ascii_lowercase()))
}

/// A creation time as RFC 3339 in UTC, whole seconds (`2024-05-01T10:00:00Z`); ARM writes
/// seven decimals and an offset.
fn created(v: &Value, pointer: &str) -> Option<Value> {
    let t = DateTime::parse_from_rfc3339(str_at(v, pointer)?).ok()?;
    Some(json!(t
        .with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// The number of items of an array property (0 when absent).
fn count_at(v: &Value, pointer: &str) -> usize {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// A VM size: vCPUs and memory.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub vcpus: u64,
    pub memory_mb: u64,
}

/// Virtual machines with power state and size details.
///
/// Two lists, run at once: the model, and `statusOnly=true` for the power states. No single
/// subscription-wide list gives both: `$expand=instanceView` on the list is only allowed
/// with a `virtualMachineScaleSet/id` filter (Compute REST reference, api-version
/// 2024-07-01), and the statusOnly answer carries no model (tags, size, OS).
pub async fn vms(s: &Scope<'_>) -> (Vec<Resource>, Vec<PluginError>) {
    let mut errors = Vec::new();
    let url = s.url("Microsoft.Compute/virtualMachines", API_COMPUTE, "");
    let status_url = s.url(
        "Microsoft.Compute/virtualMachines",
        API_COMPUTE,
        "&statusOnly=true",
    );
    let action = "Microsoft.Compute/virtualMachines/read";
    let (items, statuses) = tokio::join!(
        s.list(calls::VMS, action, &url),
        s.list(calls::VM_STATUS, action, &status_url)
    );
    let items = match items {
        Ok(i) => i,
        Err(e) => return (Vec::new(), vec![e]),
    };
    // Power state per VM id (ids compared case-insensitively).
    let power: HashMap<String, String> = match statuses {
        Ok(list) => list
            .iter()
            .filter_map(|v| {
                let id = str_at(v, "/id")?.to_ascii_lowercase();
                let code = v
                    .pointer("/properties/instanceView/statuses")
                    .and_then(Value::as_array)?
                    .iter()
                    .filter_map(|x| str_at(x, "/code"))
                    .find_map(|c| c.strip_prefix("PowerState/"))?;
                Some((id, code.to_ascii_lowercase()))
            })
            .collect(),
        Err(e) => {
            errors.push(e);
            HashMap::new()
        }
    };
    // Sizes once per location of a VM found.
    let mut locations: Vec<&str> = items
        .iter()
        .filter_map(|v| str_at(v, "/location"))
        .collect();
    locations.sort_unstable();
    locations.dedup();
    let mut sizes: HashMap<(String, String), Size> = HashMap::new();
    for loc in locations {
        let url = s.url(
            &format!("Microsoft.Compute/locations/{loc}/vmSizes"),
            API_COMPUTE,
            "",
        );
        match s
            .list(
                calls::VM_SIZES,
                "Microsoft.Compute/locations/vmSizes/read",
                &url,
            )
            .await
        {
            Ok(list) => {
                for z in list {
                    if let (Some(name), Some(c), Some(m)) = (
                        str_at(&z, "/name"),
                        z.get("numberOfCores").and_then(Value::as_u64),
                        z.get("memoryInMB").and_then(Value::as_u64),
                    ) {
                        sizes.insert(
                            (loc.to_string(), name.to_ascii_lowercase()),
                            Size {
                                vcpus: c,
                                memory_mb: m,
                            },
                        );
                    }
                }
            }
            Err(e) => errors.push(e.with("region", loc)),
        }
    }
    let mut out = Vec::new();
    for v in &items {
        let Some(mut r) = s.resource(v, "compute.instance", Service::Vm.native_type()) else {
            continue;
        };
        let size = str_at(v, "/properties/hardwareProfile/vmSize");
        set(&mut r, "instance_type", size.map(|z| json!(z)));
        if let Some(z) = size.and_then(|z| sizes.get(&(r.region.clone(), z.to_ascii_lowercase()))) {
            set(&mut r, "vcpus", Some(json!(z.vcpus)));
            set(&mut r, "memory_mib", Some(json!(z.memory_mb)));
        }
        let state = power.get(&r.id.to_ascii_lowercase()).map(|p| json!(p));
        set(&mut r, "state", state);
        set(
            &mut r,
            "platform",
            lower(v, "/properties/storageProfile/osDisk/osType"),
        );
        set(
            &mut r,
            "launch_time",
            str_at(v, "/properties/timeCreated").map(|t| json!(t)),
        );
        set(
            &mut r,
            "vm_id",
            str_at(v, "/properties/vmId").map(|t| json!(t)),
        );
        // Spot VMs (`priority` Spot, or the older Low) are not billed at list prices.
        let lifecycle = match str_at(v, "/properties/priority") {
            Some("Spot" | "Low") => "spot",
            _ => "standard",
        };
        set(&mut r, "lifecycle", Some(json!(lifecycle)));
        // Azure Hybrid Benefit: a Windows VM with its own licence is billed the Linux price.
        set(
            &mut r,
            "license_type",
            str_at(v, "/properties/licenseType").map(|t| json!(t)),
        );
        out.push(r);
    }
    (out, errors)
}

pub async fn disks(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Compute/disks", API_DISKS, "");
    let items = s
        .list(calls::DISKS, "Microsoft.Compute/disks/read", &url)
        .await?;
    Ok(items
        .iter()
        .filter_map(|v| {
            let mut r = s.resource(v, "storage.volume", Service::Disk.native_type())?;
            set(
                &mut r,
                "size_gib",
                v.pointer("/properties/diskSizeGB").cloned(),
            );
            set(
                &mut r,
                "volume_type",
                str_at(v, "/sku/name").map(|t| json!(t)),
            );
            set(&mut r, "state", lower(v, "/properties/diskState"));
            // The performance tier the disk is billed at (`P10`), when ARM reports one.
            set(
                &mut r,
                "tier",
                str_at(v, "/properties/tier").map(|t| json!(t)),
            );
            set(
                &mut r,
                "launch_time",
                str_at(v, "/properties/timeCreated").map(|t| json!(t)),
            );
            set(
                &mut r,
                "attached_to",
                str_at(v, "/managedBy").map(|t| json!(t)),
            );
            set(&mut r, "created", created(v, "/properties/timeCreated"));
            Some(r)
        })
        .collect())
}

/// Managed disk snapshots (Snapshots - List). `size_gib` is diskSizeGB (an incremental
/// snapshot is billed for the blocks it holds, which ARM does not report); `volume_id` the
/// source disk's ARM id; `storage_tier` `standard` (Standard_LRS, Standard_ZRS) or `premium`.
pub async fn snapshots(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Compute/snapshots", API_DISKS, "");
    let items = s
        .list(calls::SNAPSHOTS, "Microsoft.Compute/snapshots/read", &url)
        .await?;
    Ok(items
        .iter()
        .filter_map(|v| {
            let mut r = s.resource(v, "storage.snapshot", Service::Snapshot.native_type())?;
            let sku = str_at(v, "/sku/name");
            set(
                &mut r,
                "size_gib",
                v.pointer("/properties/diskSizeGB").cloned(),
            );
            set(&mut r, "created", created(v, "/properties/timeCreated"));
            set(
                &mut r,
                "volume_id",
                str_at(v, "/properties/creationData/sourceResourceId").map(|t| json!(t)),
            );
            set(&mut r, "state", lower(v, "/properties/provisioningState"));
            set(
                &mut r,
                "storage_tier",
                sku.map(|k| {
                    json!(if k.starts_with("Premium") {
                        "premium"
                    } else {
                        "standard"
                    })
                }),
            );
            set(&mut r, "sku", sku.map(|t| json!(t)));
            set(
                &mut r,
                "incremental",
                v.pointer("/properties/incremental").cloned(),
            );
            Some(r)
        })
        .collect())
}

/// Public IP addresses (Public IP Addresses - List All). `associated`: it has an
/// ipConfiguration (a NIC, a load balancer frontend, a gateway) or a NAT gateway;
/// `attached_to` is that ipConfiguration's (or NAT gateway's) id.
pub async fn public_ips(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Network/publicIPAddresses", API_NETWORK, "");
    let items = s
        .list(
            calls::PUBLIC_IPS,
            "Microsoft.Network/publicIPAddresses/read",
            &url,
        )
        .await?;
    Ok(items
        .iter()
        .filter_map(|v| {
            let mut r = s.resource(v, "network.public_ip", Service::PublicIp.native_type())?;
            let user = str_at(v, "/properties/ipConfiguration/id")
                .or_else(|| str_at(v, "/properties/natGateway/id"));
            set(&mut r, "associated", Some(json!(user.is_some())));
            set(&mut r, "attached_to", user.map(|t| json!(t)));
            set(&mut r, "sku", str_at(v, "/sku/name").map(|t| json!(t)));
            set(&mut r, "sku_tier", str_at(v, "/sku/tier").map(|t| json!(t)));
            set(
                &mut r,
                "allocation",
                str_at(v, "/properties/publicIPAllocationMethod").map(|t| json!(t)),
            );
            set(
                &mut r,
                "public_ip",
                str_at(v, "/properties/ipAddress").map(|t| json!(t)),
            );
            set(
                &mut r,
                "ip_version",
                lower(v, "/properties/publicIPAddressVersion"),
            );
            set(&mut r, "state", lower(v, "/properties/provisioningState"));
            Some(r)
        })
        .collect())
}

/// Load balancers (Load Balancers - List All): `lb_type` `network` (Azure Load Balancer is
/// layer 4), `scheme` external when a frontend has a public IP, `frontends`, `rules`
/// (load-balancing plus outbound rules, what Azure bills beyond the first five) and
/// `backend_pools`.
pub async fn load_balancers(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Network/loadBalancers", API_NETWORK, "");
    let items = s
        .list(
            calls::LOAD_BALANCERS,
            "Microsoft.Network/loadBalancers/read",
            &url,
        )
        .await?;
    Ok(items
        .iter()
        .filter_map(|v| {
            let mut r = s.resource(
                v,
                "network.load_balancer",
                Service::LoadBalancer.native_type(),
            )?;
            let frontends = v
                .pointer("/properties/frontendIPConfigurations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let external = frontends
                .iter()
                .any(|f| f.pointer("/properties/publicIPAddress/id").is_some());
            set(&mut r, "sku", str_at(v, "/sku/name").map(|t| json!(t)));
            set(&mut r, "lb_type", Some(json!("network")));
            set(
                &mut r,
                "scheme",
                Some(json!(if external { "external" } else { "internal" })),
            );
            set(&mut r, "frontends", Some(json!(frontends.len())));
            set(
                &mut r,
                "rules",
                Some(json!(
                    count_at(v, "/properties/loadBalancingRules")
                        + count_at(v, "/properties/outboundRules")
                )),
            );
            set(
                &mut r,
                "backend_pools",
                Some(json!(count_at(v, "/properties/backendAddressPools"))),
            );
            set(&mut r, "state", lower(v, "/properties/provisioningState"));
            Some(r)
        })
        .collect())
}

/// NAT gateways (NAT Gateways - List All): `public_ips` (addresses and prefixes), `subnets`
/// and `associated` (serves at least one subnet).
pub async fn nat_gateways(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Network/natGateways", API_NETWORK, "");
    let items = s
        .list(
            calls::NAT_GATEWAYS,
            "Microsoft.Network/natGateways/read",
            &url,
        )
        .await?;
    Ok(items
        .iter()
        .filter_map(|v| {
            let mut r = s.resource(v, "network.nat_gateway", Service::NatGateway.native_type())?;
            let subnets = count_at(v, "/properties/subnets");
            set(&mut r, "sku", str_at(v, "/sku/name").map(|t| json!(t)));
            set(
                &mut r,
                "public_ips",
                Some(json!(
                    count_at(v, "/properties/publicIpAddresses")
                        + count_at(v, "/properties/publicIpPrefixes")
                )),
            );
            set(&mut r, "subnets", Some(json!(subnets)));
            set(&mut r, "associated", Some(json!(subnets > 0)));
            set(&mut r, "state", lower(v, "/properties/provisioningState"));
            Some(r)
        })
        .collect())
}

/// AKS clusters and their agent pools (`properties.agentPoolProfiles`, no extra call).
pub async fn aks(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.ContainerService/managedClusters", API_AKS, "");
    let items = s
        .list(
            calls::AKS,
            "Microsoft.ContainerService/managedClusters/read",
            &url,
        )
        .await?;
    let mut out = Vec::new();
    for v in &items {
        let Some(mut r) = s.resource(v, "k8s.cluster", Service::Aks.native_type()) else {
            continue;
        };
        let version = str_at(v, "/properties/currentKubernetesVersion")
            .or_else(|| str_at(v, "/properties/kubernetesVersion"));
        set(&mut r, "version", version.map(|t| json!(t)));
        set(&mut r, "status", lower(v, "/properties/powerState/code"));
        // The pricing tier: Free, Standard (uptime SLA) or Premium (long-term support).
        set(&mut r, "tier", str_at(v, "/sku/tier").map(|t| json!(t)));
        let pools = v
            .pointer("/properties/agentPoolProfiles")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for p in &pools {
            let Some(name) = str_at(p, "/name") else {
                continue;
            };
            let mut g = r.clone();
            g.kind = "k8s.node_group".into();
            g.native_type = "Microsoft.ContainerService/managedClusters/agentPools".into();
            g.id = format!("{}/agentPools/{name}", r.id);
            g.name = name.to_string();
            g.attributes.clear();
            set(
                &mut g,
                "instance_type",
                str_at(p, "/vmSize").map(|t| json!(t)),
            );
            set(&mut g, "node_count", p.get("count").cloned());
            set(&mut g, "status", lower(p, "/powerState/code"));
            set(
                &mut g,
                "version",
                str_at(p, "/currentOrchestratorVersion")
                    .or_else(|| str_at(p, "/orchestratorVersion"))
                    .map(|t| json!(t)),
            );
            set(&mut g, "platform", lower(p, "/osType"));
            set(&mut g, "cluster", Some(json!(r.name)));
            out.push(g);
        }
        out.push(r);
    }
    Ok(out)
}

/// Function apps: `Microsoft.Web/sites` whose `kind` contains `functionapp`.
pub async fn functions(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Web/sites", API_WEB, "");
    let items = s
        .list(calls::SITES, "Microsoft.Web/sites/read", &url)
        .await?;
    Ok(items
        .iter()
        .filter(|v| {
            str_at(v, "/kind").is_some_and(|k| k.to_ascii_lowercase().contains("functionapp"))
        })
        .filter_map(|v| {
            let mut r = s.resource(v, "function", Service::Function.native_type())?;
            set(&mut r, "state", lower(v, "/properties/state"));
            set(
                &mut r,
                "runtime",
                str_at(v, "/properties/siteConfig/linuxFxVersion").map(|t| json!(t)),
            );
            set(&mut r, "platform", str_at(v, "/kind").map(|t| json!(t)));
            Some(r)
        })
        .collect())
}

/// SQL databases of every server (the `master` database excluded).
pub async fn sql(s: &Scope<'_>) -> (Vec<Resource>, Vec<PluginError>) {
    let url = s.url("Microsoft.Sql/servers", API_SQL, "");
    let servers = match s
        .list(calls::SQL_SERVERS, "Microsoft.Sql/servers/read", &url)
        .await
    {
        Ok(i) => i,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let jobs = servers.iter().filter_map(|srv| {
        let id = str_at(srv, "/id")?;
        let url = format!("{}{id}/databases?api-version={API_SQL}", s.arm);
        Some(async move {
            let r = s
                .list(
                    calls::SQL_DATABASES,
                    "Microsoft.Sql/servers/databases/read",
                    &url,
                )
                .await;
            (srv, r)
        })
    });
    for (srv, r) in futures::future::join_all(jobs).await {
        match r {
            Ok(dbs) => {
                for v in &dbs {
                    if str_at(v, "/name") == Some("master") {
                        continue;
                    }
                    let Some(mut r) =
                        s.resource(v, "database.instance", Service::Sql.native_type())
                    else {
                        continue;
                    };
                    set(&mut r, "engine", Some(json!("sqlserver")));
                    set(
                        &mut r,
                        "engine_version",
                        str_at(srv, "/properties/version").map(|t| json!(t)),
                    );
                    set(
                        &mut r,
                        "instance_class",
                        str_at(v, "/sku/name").map(|t| json!(t)),
                    );
                    set(&mut r, "status", lower(v, "/properties/status"));
                    set(&mut r, "server", str_at(srv, "/name").map(|t| json!(t)));
                    out.push(r);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

pub async fn storage(s: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let url = s.url("Microsoft.Storage/storageAccounts", API_STORAGE, "");
    let items = s
        .list(
            calls::STORAGE,
            "Microsoft.Storage/storageAccounts/read",
            &url,
        )
        .await?;
    Ok(items
        .iter()
        .filter_map(|v| {
            let mut r = s.resource(v, "storage.bucket", Service::Storage.native_type())?;
            set(&mut r, "status", lower(v, "/properties/provisioningState"));
            set(&mut r, "sku", str_at(v, "/sku/name").map(|t| json!(t)));
            set(&mut r, "storage_kind", str_at(v, "/kind").map(|t| json!(t)));
            set(
                &mut r,
                "launch_time",
                str_at(v, "/properties/creationTime").map(|t| json!(t)),
            );
            Some(r)
        })
        .collect())
}
