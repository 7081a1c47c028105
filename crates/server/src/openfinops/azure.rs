//! The OpenFinOps `AzureTelemetryAgent`'s post (`metrics.{virtual_machines, aks,
//! azure_functions, sql_databases, storage}`) as skymeter records, keyed as skymeter's own
//! Azure collector keys them: provider `azure`, account = the subscription, region = the
//! resource's `location`, id = its ARM resource id. The agent sends the VMs' ARM ids; the
//! others' are built from the subscription, resource group and name, which is the id ARM
//! gives them (a post without a subscription id gives ids without their
//! `/subscriptions/{id}` prefix, and an empty account: they do not merge with the
//! collector's then).
//!
//! Only inventory: the agent's utilisation figures (VM CPU, memory, disk, network; function
//! invocations; storage sizes) are constant 0 placeholders ("would need monitoring setup"),
//! and its `cost_metrics` are zeros; none become points or cost lines.
//! `security_compliance` (a constant score) and `summary` (counts) are not records either.

use super::records::{entries, list, lower, text, Kind, Place, Records};
use serde_json::{Map, Value};

const VM: Kind = Kind {
    kind: "compute.instance",
    native_type: "Microsoft.Compute/virtualMachines",
    attributes: &[
        ("vm_size", "instance_type"),
        ("resource_group", "resource_group"),
        ("provisioning_state", "provisioning_state"),
        ("os_disk_size", "os_disk_size_gib"),
        ("os_disk_type", "os_disk_type"),
    ],
};
const AKS: Kind = Kind {
    kind: "k8s.cluster",
    native_type: "Microsoft.ContainerService/managedClusters",
    attributes: &[
        ("kubernetes_version", "version"),
        ("resource_group", "resource_group"),
        ("provisioning_state", "provisioning_state"),
    ],
};
const POOL: Kind = Kind {
    kind: "k8s.node_group",
    native_type: "Microsoft.ContainerService/managedClusters/agentPools",
    attributes: &[
        ("vm_size", "instance_type"),
        ("node_count", "node_count"),
        ("mode", "mode"),
        ("max_pods", "max_pods"),
    ],
};
const FUNCTION: Kind = Kind {
    kind: "function",
    native_type: "Microsoft.Web/sites",
    attributes: &[
        ("kind", "platform"),
        ("resource_group", "resource_group"),
        ("runtime_version", "python_version"),
        ("host_name", "host_name"),
    ],
};
const SQL: Kind = Kind {
    kind: "database.instance",
    native_type: "Microsoft.Sql/servers/databases",
    attributes: &[
        ("service_level_objective", "instance_class"),
        ("edition", "edition"),
        ("collation", "collation"),
        ("max_size_bytes", "max_size_bytes"),
        ("creation_date", "launch_time"),
    ],
};
const STORAGE: Kind = Kind {
    kind: "storage.bucket",
    native_type: "Microsoft.Storage/storageAccounts",
    attributes: &[
        ("sku_name", "sku"),
        ("resource_group", "resource_group"),
        ("creation_time", "launch_time"),
    ],
};

/// The subscription of an ARM id (`/subscriptions/{id}/…`).
fn subscription_of(arm_id: &str) -> Option<&str> {
    let mut parts = arm_id.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() => {
            Some(id)
        }
        _ => None,
    }
}

/// The name (`name_field`) of an entry and the ARM id of the resource of type `arm_type`
/// (`Microsoft.Web/sites`) of that name in its `resource_group`.
fn arm(
    place: &Place,
    e: &Map<String, Value>,
    name_field: &str,
    arm_type: &str,
) -> Option<(String, String)> {
    let name = text(e.get(name_field))?;
    let group = text(e.get("resource_group"))?;
    let path = format!("/resourceGroups/{group}/providers/{arm_type}/{name}");
    let id = if place.account.is_empty() {
        path
    } else {
        format!("/subscriptions/{}{path}", place.account)
    };
    Some((name, id))
}

/// An Azure SDK enum's Python name as Azure spells its value: `STORAGE_V2` → `StorageV2`.
fn pascal(v: Option<&Value>) -> Option<Value> {
    let name = text(v)?;
    let words = name.split('_').map(|w| {
        let mut c = w.chars();
        c.next().map_or(String::new(), |f| {
            format!(
                "{}{}",
                f.to_ascii_uppercase(),
                c.as_str().to_ascii_lowercase()
            )
        })
    });
    Some(Value::String(words.collect()))
}

/// The entry's `location` as its region.
fn location(e: &Map<String, Value>) -> Option<String> {
    text(e.get("location"))
}

pub fn map(body: &Value, out: &mut Records) {
    let metrics = &body["metrics"];
    // The subscription the agent was given, else the one its VMs' ids name.
    let subscription = text(metrics.get("subscription_id"))
        .or_else(|| {
            list(&metrics["virtual_machines"], "virtual_machines")
                .find_map(|v| subscription_of(&text(v.get("vm_id"))?).map(str::to_string))
        })
        .unwrap_or_default();
    let place = Place {
        provider: "azure",
        account: &subscription,
        region: "",
    };
    out.metrics_post(body, "Azure", |name, section, out| match name {
        "virtual_machines" => vms(section, &place, out),
        "aks" => aks(section, &place, out),
        "azure_functions" => functions(section, &place, out),
        "sql_databases" => sql(section, &place, out),
        "storage" => storage(section, &place, out),
        _ => {}
    });
}

fn vms(section: &Value, place: &Place, out: &mut Records) {
    for v in list(section, "virtual_machines") {
        let Some(id) = text(v.get("vm_id")) else {
            continue;
        };
        // A VM's id names its subscription, whatever the agent was given.
        let account = subscription_of(&id).unwrap_or(place.account).to_string();
        let platform = lower(v.get("os_type")).filter(|p| p != "unknown");
        let state = lower(v.get("power_state")).filter(|p| p != "unknown");
        VM.of(v, &id)
            .name(text(v.get("vm_name")))
            .region(location(v))
            .tags(super::records::tags(v.get("tags")))
            .attr("state", state)
            .attr("platform", platform)
            .add(
                &Place {
                    account: &account,
                    ..*place
                },
                out,
            );
    }
}

fn aks(section: &Value, place: &Place, out: &mut Records) {
    for c in list(section, "clusters") {
        let Some((name, id)) = arm(
            place,
            c,
            "cluster_name",
            "Microsoft.ContainerService/managedClusters",
        ) else {
            continue;
        };
        let status = lower(c.get("power_state")).filter(|p| p != "unknown");
        AKS.of(c, &id)
            .name(Some(name.clone()))
            .region(location(c))
            .attr("status", status)
            .add(place, out);
        for p in entries(c.get("node_pools")) {
            let Some(pool) = text(p.get("pool_name")) else {
                continue;
            };
            let scaling = p.get("auto_scaling").and_then(Value::as_object);
            let field = |k: &str| scaling.and_then(|s| s.get(k)).filter(|v| !v.is_null());
            POOL.of(p, &format!("{id}/agentPools/{pool}"))
                .name(Some(pool))
                .region(location(c))
                .attr("platform", lower(p.get("os_type")))
                .attr("autoscaling", field("enabled").cloned())
                .attr("min_nodes", field("min_count").cloned())
                .attr("max_nodes", field("max_count").cloned())
                .attr("cluster", Some(Value::String(name.clone())))
                .add(place, out);
        }
    }
}

fn functions(section: &Value, place: &Place, out: &mut Records) {
    for f in list(section, "function_apps") {
        let Some((name, id)) = arm(place, f, "app_name", "Microsoft.Web/sites") else {
            continue;
        };
        FUNCTION
            .of(f, &id)
            .name(Some(name))
            .region(location(f))
            .attr("state", lower(f.get("state")))
            .add(place, out);
    }
}

/// Each server's databases (the flat `databases` list repeats them without their server).
fn sql(section: &Value, place: &Place, out: &mut Records) {
    for s in list(section, "sql_servers") {
        let Some((server, server_id)) = arm(place, s, "server_name", "Microsoft.Sql/servers")
        else {
            continue;
        };
        for d in entries(s.get("databases")) {
            let Some(db) = text(d.get("database_name")) else {
                continue;
            };
            SQL.of(d, &format!("{server_id}/databases/{db}"))
                .name(Some(db))
                .region(location(s))
                .attr("engine", Some(Value::from("sqlserver")))
                .attr("engine_version", s.get("version").cloned())
                .attr("status", lower(d.get("status")))
                .attr("server", Some(Value::String(server.clone())))
                .attr("resource_group", s.get("resource_group").cloned())
                .add(place, out);
        }
    }
}

fn storage(section: &Value, place: &Place, out: &mut Records) {
    for a in list(section, "storage_accounts") {
        let Some((name, id)) = arm(
            place,
            a,
            "account_name",
            "Microsoft.Storage/storageAccounts",
        ) else {
            continue;
        };
        let blob = a.get("primary_endpoints").and_then(|e| e.get("blob"));
        STORAGE
            .of(a, &id)
            .name(Some(name))
            .region(location(a))
            .attr("status", lower(a.get("provisioning_state")))
            .attr("storage_kind", pascal(a.get("kind")))
            .attr("sku_tier", pascal(a.get("sku_tier")))
            .attr("blob_endpoint", blob.filter(|b| !b.is_null()).cloned())
            .add(place, out);
    }
}
