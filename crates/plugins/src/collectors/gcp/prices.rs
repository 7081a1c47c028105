//! Estimated GCP costs: the inventory × on-demand list prices from the Cloud Billing Catalog
//! (a table shipped in the binary, refreshed by `skymeter prices gcp update`).
//!
//! Price keys (per region):
//! - `gce/{family}/vcpu` (USD per vCPU-hour) and `gce/{family}/memory` (per GiB-hour) of a
//!   machine family (`e2`, `n1`, `n2`, `n2d`, `c2`, `t2d`, …); custom machine types use
//!   `gce/{family}-custom/…` (`custom-4-8192` is N1 custom).
//! - `gce/f1-micro/instance`, `gce/g1-small/instance`: the two legacy shared-core types,
//!   priced per instance-hour.
//! - `pd/{type}` (per GiB-month) for zonal `pd-standard`, `pd-balanced`, `pd-ssd`;
//!   `pd/{type}/regional` for regional disks (two replicas, twice the price).
//! - `gke/zonal`, `gke/regional`, `gke/autopilot`: the GKE cluster management fee per
//!   cluster-hour.
//! - `snapshot/standard`, `snapshot/archive` (per GiB-month) of snapshots stored in a
//!   region, `snapshot/{tier}/multiregional` of those stored in a multi-region (`us`, `eu`,
//!   `asia`), in the row of the source disk's region.
//! - `address/unused` (a static external address reserved and not in use) and
//!   `address/in-use` (in use by a VM or a Cloud NAT gateway), per hour.
//! - `lb/forwarding-rule`: a forwarding rule per hour, at the price of the first five
//!   (global rules in the `global` row).

use super::calls::ApiCalls;
use super::client::{Api, Call};
use crate::cloud::prices::FlatPriceSource;
use crate::common::price_list::{
    number, text, Cloud, Estimator, Line, ListPrice, PriceList, PricedKind,
};
use serde_json::Value;
use skymeter_model::Resource;
use skymeter_plugin_api::prices::UpdateOption;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const CLOUD: Cloud = Cloud {
    id: "gcp",
    display: "GCP",
    provider_name: skymeter_model::provider::GCP.focus_name,
};

/// The table compiled into skymeter (its `source` says where the figures come from).
pub const SHIPPED: &str = include_str!("prices.json");

/// Cloud Billing Catalog service ids.
pub const COMPUTE_ENGINE_SERVICE: &str = "6F81-5844-456A";
pub const KUBERNETES_ENGINE_SERVICE: &str = "CCD8-9BF1-090E";

pub const SKUS: Call = Call {
    api: "cloudbilling.services.skus.list",
    permission: "serviceusage.services.use (the Cloud Billing API enabled in the quota project)",
    role: "roles/serviceusage.serviceUsageConsumer",
};

const COMPUTE_ENGINE: &str = "Compute Engine";
const KUBERNETES_ENGINE: &str = "Kubernetes Engine";

/// Disk types priced per GiB-month alone. Hyperdisks and pd-extreme also charge provisioned
/// IOPS and throughput, which the table does not hold.
const PRICED_DISKS: [&str; 3] = ["pd-standard", "pd-balanced", "pd-ssd"];

/// The fraction of a vCPU that Google bills for the E2 shared-core types (their
/// machineTypes entry says 2 vCPUs, which they burst to).
fn shared_core_fraction(machine_type: &str) -> Option<f64> {
    match machine_type {
        "e2-micro" => Some(0.25),
        "e2-small" => Some(0.5),
        "e2-medium" => Some(1.0),
        _ => None,
    }
}

/// The price family of a machine type: `n2-standard-4` → `n2`, `custom-4-8192` →
/// `n1-custom`, `n2-custom-4-8192` → `n2-custom`.
pub fn machine_family(machine_type: &str) -> String {
    if machine_type.starts_with("custom-") {
        return "n1-custom".into();
    }
    let family = machine_type.split('-').next().unwrap_or(machine_type);
    if machine_type.contains("-custom-") {
        format!("{family}-custom")
    } else {
        family.to_string()
    }
}

/// What the estimate prices, kind by kind (cost lines over the window; one error per price
/// the table lacks):
///
/// - `compute.instance`, `running`, not Spot or preemptible: vCPU-hours × the family's vCPU
///   price + GiB-hours × its memory price (E2 shared-core types at their billed vCPU
///   fraction; f1-micro and g1-small per instance-hour). GPUs, local SSDs, licences and
///   sustained-use or committed-use discounts are not included.
/// - `storage.volume`: size × months at the disk type's price, whatever its state (Google
///   bills provisioned disks).
/// - `k8s.cluster`, `running`: the cluster management fee per hour (the monthly free-tier
///   credit of one billing account is not applied).
///
/// Cloud SQL, Cloud Functions and Cloud Storage are not estimated (their billed cost comes
/// from the BigQuery export).
/// - `storage.snapshot`: its billed size (`size_gib`, from storageBytes) × months at its tier's
///   price (standard or archive; regional or multi-regional by its storage location).
/// - `network.public_ip`: reserved and unused at the unused price; in use by a VM or a
///   NAT gateway at the in-use price; in use by a forwarding rule costs nothing.
/// - `network.load_balancer` (a forwarding rule): hours at the first-five price. Google
///   charges less for the sixth and later rules of a project and region, so this is an upper
///   bound; data processed is not included.
///
/// Cloud NAT gateways are not estimated: their hourly price depends on the number of VMs
/// using them, which the inventory does not know.
pub const PRICED_KINDS: &[PricedKind] = &[
    ("compute.instance", instance),
    ("storage.volume", disk),
    ("k8s.cluster", cluster),
    ("storage.snapshot", snapshot),
    ("network.public_ip", address),
    ("network.load_balancer", forwarding_rule),
];

/// A storage location that is a multi-region (`us`, `eu`, `asia`), not a region.
fn multi_regional(location: &str) -> bool {
    !location.contains('-')
}

fn snapshot(est: &mut Estimator<'_>, r: &Resource) {
    let Some(size) = number(r, "size_gib") else {
        return;
    };
    let tier = match text(r, "storage_tier") {
        Some("archive") => "archive",
        _ => "standard",
    };
    let multi = text(r, "storage_location").is_some_and(multi_regional);
    let key = if multi {
        format!("snapshot/{tier}/multiregional")
    } else {
        format!("snapshot/{tier}")
    };
    let quantity = size * est.months();
    let region = r.region.clone();
    est.charge(
        Line {
            resource: r,
            service: COMPUTE_ENGINE,
            category: "Storage",
            key,
            quantity,
            unit: "GiB-Months",
        },
        || {
            format!(
                "no {}{tier} snapshot price per GiB-month for disks in {region}",
                if multi { "multi-regional " } else { "" }
            )
        },
    );
}

fn address(est: &mut Estimator<'_>, r: &Resource) {
    let in_use = r.attributes.get("associated") == Some(&Value::Bool(true));
    let key = if in_use {
        // Addresses of forwarding rules are not charged.
        if text(r, "attached_to").is_some_and(|u| u.contains("/forwardingRules/")) {
            return;
        }
        "address/in-use"
    } else {
        "address/unused"
    };
    let what = if in_use { "in-use" } else { "unused" };
    est.charge(
        Line {
            resource: r,
            service: COMPUTE_ENGINE,
            category: "Networking",
            key: key.into(),
            quantity: est.hours,
            unit: "Hours",
        },
        || {
            format!(
                "no {what} static external IP price per hour in {}",
                r.region
            )
        },
    );
}

fn forwarding_rule(est: &mut Estimator<'_>, r: &Resource) {
    est.charge(
        Line {
            resource: r,
            service: "Cloud Load Balancing",
            category: "Networking",
            key: "lb/forwarding-rule".into(),
            quantity: est.hours,
            unit: "Hours",
        },
        || format!("no forwarding rule price per hour in {}", r.region),
    );
}

fn instance(est: &mut Estimator<'_>, r: &Resource) {
    if text(r, "state") != Some("running") {
        return;
    }
    // Spot and preemptible VMs are billed at prices that change; not list prices.
    if matches!(text(r, "lifecycle"), Some("spot" | "preemptible")) {
        return;
    }
    let Some(ty) = text(r, "instance_type") else {
        return;
    };
    let hours = est.hours;
    if ty == "f1-micro" || ty == "g1-small" {
        est.hourly(r, COMPUTE_ENGINE, format!("gce/{ty}/instance"), || {
            format!("no {ty} price per hour in {}", r.region)
        });
        return;
    }
    if ty.ends_with("-ext") {
        est.report(
            &r.region,
            &format!("gce/{ty}"),
            format!("GCP custom machine types with extended memory ({ty}) are not estimated: their memory above the standard ratio has its own price (their cost comes from the billed source)"),
        );
        return;
    }
    let (Some(vcpus), Some(memory_mib)) = (number(r, "vcpus"), number(r, "memory_mib")) else {
        return;
    };
    let vcpus = shared_core_fraction(ty).unwrap_or(vcpus);
    let family = machine_family(ty);
    let region = r.region.clone();
    est.charge(
        Line {
            resource: r,
            service: COMPUTE_ENGINE,
            category: "Compute",
            key: format!("gce/{family}/vcpu"),
            quantity: vcpus * hours,
            unit: "vCPU-Hours",
        },
        || format!("no {} vCPU price in {region}", family.to_uppercase()),
    );
    est.charge(
        Line {
            resource: r,
            service: COMPUTE_ENGINE,
            category: "Compute",
            key: format!("gce/{family}/memory"),
            quantity: memory_mib / 1024.0 * hours,
            unit: "GiB-Hours",
        },
        || format!("no {} memory price in {region}", family.to_uppercase()),
    );
}

fn disk(est: &mut Estimator<'_>, r: &Resource) {
    let (Some(ty), Some(size)) = (text(r, "volume_type"), number(r, "size_gib")) else {
        return;
    };
    if !PRICED_DISKS.contains(&ty) {
        est.report(
            &r.region,
            &format!("pd/{ty}"),
            format!("GCP {ty} disks are not estimated: they are also charged per provisioned IOPS or throughput, which the price table does not hold (their cost comes from the billed source)"),
        );
        return;
    }
    // Regional disks have a region and no zone.
    let regional = text(r, "availability_zone").is_none();
    let key = if regional {
        format!("pd/{ty}/regional")
    } else {
        format!("pd/{ty}")
    };
    let quantity = size * est.months();
    let region = r.region.clone();
    est.charge(
        Line {
            resource: r,
            service: COMPUTE_ENGINE,
            category: "Storage",
            key,
            quantity,
            unit: "GiB-Months",
        },
        || {
            format!(
                "no {}{ty} price per GiB-month in {region}",
                if regional { "regional " } else { "" }
            )
        },
    );
}

fn cluster(est: &mut Estimator<'_>, r: &Resource) {
    if text(r, "status") != Some("running") {
        return;
    }
    let mode = if r.attributes.get("autopilot") == Some(&Value::Bool(true)) {
        "autopilot"
    } else if text(r, "availability_zone").is_some() {
        "zonal"
    } else {
        "regional"
    };
    est.hourly(r, KUBERNETES_ENGINE, format!("gke/{mode}"), || {
        format!("no GKE {mode} cluster fee in {}", r.region)
    });
}

/// The predefined machine types of the series the table prices, for rightsizing: (series,
/// vCPU counts, MiB of memory per vCPU). From Google's general-purpose machine family
/// documentation (cloud.google.com/compute/docs/general-purpose-machines, the N1, N2, N2D,
/// E2 and Tau T2D tables), read 2026-12-07. E2 shared-core types and custom types are not
/// listed (they have no fixed ratio).
const SERIES: &[(&str, &[u32], f64)] = &[
    ("n1-standard", &[1, 2, 4, 8, 16, 32, 64, 96], 3840.0),
    ("n1-highmem", &[2, 4, 8, 16, 32, 64, 96], 6656.0),
    (
        "n2-standard",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128],
        4096.0,
    ),
    (
        "n2-highmem",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128],
        8192.0,
    ),
    ("n2-highcpu", &[2, 4, 8, 16, 32, 48, 64, 80, 96], 1024.0),
    (
        "n2d-standard",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224],
        4096.0,
    ),
    ("n2d-highmem", &[2, 4, 8, 16, 32, 48, 64, 80, 96], 8192.0),
    (
        "n2d-highcpu",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224],
        1024.0,
    ),
    ("e2-standard", &[2, 4, 8, 16, 32], 4096.0),
    ("e2-highmem", &[2, 4, 8, 16], 8192.0),
    ("e2-highcpu", &[2, 4, 8, 16, 32], 1024.0),
    ("t2d-standard", &[1, 2, 4, 8, 16, 32, 48, 60], 4096.0),
];

/// Every machine type of `machine_type`'s series (`n2-standard-4` → `n2-standard-2` …
/// `n2-standard-128`), itself included, with (name, vCPUs, memory MiB); empty for a type of
/// a series not listed.
pub fn same_series(machine_type: &str) -> Vec<(String, f64, f64)> {
    let Some((series, n)) = machine_type.rsplit_once('-') else {
        return Vec::new();
    };
    if n.parse::<u32>().is_err() {
        return Vec::new();
    }
    SERIES
        .iter()
        .find(|(s, _, _)| *s == series)
        .map(|(s, counts, mib)| {
            counts
                .iter()
                .map(|c| (format!("{s}-{c}"), f64::from(*c), f64::from(*c) * mib))
                .collect()
        })
        .unwrap_or_default()
}

/// The table for `skymeter prices gcp show|update`.
pub fn source() -> FlatPriceSource {
    FlatPriceSource {
        provider: &skymeter_model::provider::GCP,
        cloud: CLOUD,
        shipped: SHIPPED,
        kind: "on-demand",
        example_region: "us-central1",
        api: SKUS.api,
        noun: "SKUs",
        options: &[UpdateOption::CredentialsFile, UpdateOption::EndpointUrl],
        help: "Lists the SKUs of Compute Engine and Kubernetes Engine (Cloud Billing Catalog services.skus.list, every page, in USD) and keeps, for each region asked, the vCPU and memory prices of every machine family, the f1-micro and g1-small prices, the pd-standard, pd-balanced and pd-ssd prices (zonal and regional), the snapshot storage prices (standard and archive, regional and multi-regional), the static external IP prices (unused, in use by a VM), the regional forwarding rule price and the GKE cluster fee. Credentials: --credentials-file (a service-account key), else Application Default Credentials; the Cloud Billing API must be enabled in the credentials' project. --endpoint-url replaces https://cloudbilling.googleapis.com.",
        fetch: |req, calls| {
            Box::pin(fetch_with(
                req.credentials_file,
                req.endpoint_url,
                req.regions,
                req.date,
                calls,
                req.progress,
            ))
        },
    }
}

/// [`fetch`] with a client of its own: credentials from `credentials_file` (a
/// service-account key) or Application Default Credentials, every API at `endpoint_url`
/// when given (a proxy or a test server).
pub async fn fetch_with(
    credentials_file: Option<&str>,
    endpoint_url: Option<&str>,
    regions: &[String],
    date: &str,
    calls: Arc<ApiCalls>,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<PriceList, PluginError> {
    let tokens = super::token_source(credentials_file).await?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| {
            PluginError::new(
                ErrorKind::Other,
                format!("cannot build an HTTP client: {e}"),
            )
        })?;
    let api = Api::new(
        http,
        endpoint_url.map(str::to_string),
        tokens,
        calls,
        crate::cloud::provider::default_retry(),
    );
    fetch(&api, regions, date, progress).await
}

/// Reads the Compute Engine and Kubernetes Engine SKUs of the Cloud Billing Catalog
/// (`services.skus.list`, every page, in USD) and keeps the on-demand prices the estimate
/// uses for `regions`. `progress` gets (service, SKUs so far) after each page.
pub async fn fetch(
    api: &Api,
    regions: &[String],
    date: &str,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<PriceList, PluginError> {
    let mut prices: BTreeMap<String, BTreeMap<String, ListPrice>> = regions
        .iter()
        .map(|r| (r.clone(), BTreeMap::new()))
        .collect();
    let mut total = 0u64;
    for (service, name) in [
        (COMPUTE_ENGINE_SERVICE, COMPUTE_ENGINE),
        (KUBERNETES_ENGINE_SERVICE, KUBERNETES_ENGINE),
    ] {
        let url = api.url(
            "cloudbilling.googleapis.com",
            &format!("/v1/services/{service}/skus"),
        );
        let query = [
            ("currencyCode", "USD".to_string()),
            ("pageSize", "5000".to_string()),
        ];
        let mut seen = 0u64;
        api.pages(&SKUS, &url, &query, |page: Value| {
            for sku in page["skus"].as_array().into_iter().flatten() {
                seen += 1;
                if let Some((key, price)) = price_of(sku) {
                    for region in sku["serviceRegions"].as_array().into_iter().flatten() {
                        let Some(region) = region.as_str() else {
                            continue;
                        };
                        if region == "global" && key.starts_with("lb/") {
                            // A global forwarding rule's price: the `global` row only (global
                            // load balancers are inventoried in region `global`).
                            if let Some(p) = prices.get_mut("global") {
                                p.insert(key.clone(), price.clone());
                            }
                        } else if region == "global" {
                            // The GKE fee is one price for every region.
                            for p in prices.values_mut() {
                                p.insert(key.clone(), price.clone());
                            }
                        } else if let Some(p) = prices.get_mut(region) {
                            p.insert(key.clone(), price.clone());
                        }
                    }
                }
            }
            progress(name, seen);
        })
        .await?;
        total += seen;
    }
    if total == 0 {
        return Err(PluginError::new(
            ErrorKind::BadResponse,
            "the Cloud Billing Catalog listed no SKU for Compute Engine or Kubernetes Engine",
        )
        .with("api", SKUS.api));
    }
    Ok(PriceList {
        date: date.to_string(),
        currency: "USD".into(),
        source: "Cloud Billing Catalog API (cloudbilling.googleapis.com/v1/services/*/skus), on-demand list prices".into(),
        regions: prices,
    })
}

/// The table key and price of a SKU the estimate uses, or None.
fn price_of(sku: &Value) -> Option<(String, ListPrice)> {
    let category = &sku["category"];
    if category["usageType"].as_str() != Some("OnDemand") {
        return None;
    }
    let description = sku["description"].as_str()?;
    let info = sku["pricingInfo"].as_array()?.last()?;
    let expression = &info["pricingExpression"];
    let usd = unit_price(expression)?;
    let unit = expression["usageUnit"].as_str().unwrap_or_default();
    let (key, per) = match category["resourceFamily"].as_str()? {
        "Storage" => (
            disk_key(description).or_else(|| snapshot_key(description))?,
            "GiB-month",
        ),
        _ => compute_key(description, unit).or_else(|| {
            gke_key(description)
                .or_else(|| network_key(description))
                .map(|k| (k, "hour"))
        })?,
    };
    // The unit must be what the key is priced in; a SKU in another unit is not that price.
    let expected = match per {
        "hour" => "h",
        "GiB-hour" => "GiBy.h",
        _ => "GiBy.mo",
    };
    if unit != expected {
        return None;
    }
    Some((
        key,
        ListPrice {
            usd,
            per: per.into(),
        },
    ))
}

/// USD per usage unit: the first tier with a price (tiers that start at 0 and are free are
/// free-tier allowances, not the list price).
fn unit_price(expression: &Value) -> Option<f64> {
    let tiers = expression["tieredRates"].as_array()?;
    let price = |t: &Value| {
        let p = &t["unitPrice"];
        if p["currencyCode"].as_str().is_some_and(|c| c != "USD") {
            return None;
        }
        let units = match &p["units"] {
            Value::String(s) => s.parse::<f64>().ok()?,
            Value::Number(n) => n.as_f64()?,
            _ => 0.0,
        };
        let nanos = p["nanos"].as_f64().unwrap_or(0.0);
        Some(units + nanos / 1e9)
    };
    let prices: Vec<f64> = tiers.iter().filter_map(price).collect();
    prices
        .iter()
        .copied()
        .find(|p| *p > 0.0)
        .or(prices.first().copied())
}

/// `N2 Instance Core running in Americas` → `gce/n2/vcpu`, and so on. The catalog's
/// wording varies by region and age (`E2 Instance RAM in Montreal`, `Compute optimized
/// Instance Core running in Madrid`), so the location and the filler words are stripped and
/// vCPU or memory is decided by the last word together with the usage unit.
fn compute_key(description: &str, unit: &str) -> Option<(String, &'static str)> {
    let d = description.split(" in ").next()?.trim();
    let d = d.strip_suffix(" running").unwrap_or(d);
    for skip in [
        "Sole Tenancy",
        "Preemptible",
        "Spot",
        "Commitment",
        "Extended",
        "Reserved",
        "Premium",
    ] {
        if d.contains(skip) {
            return None;
        }
    }
    match d {
        "Micro Instance with burstable CPU" => {
            return Some(("gce/f1-micro/instance".into(), "hour"))
        }
        "Small Instance with 1 VCPU" => return Some(("gce/g1-small/instance".into(), "hour")),
        _ => {}
    }
    let mut words: Vec<&str> = d.split_whitespace().collect();
    let last = words.pop()?.to_ascii_lowercase();
    let (what, per) = match (last.as_str(), unit) {
        ("core", "h") => ("vcpu", "hour"),
        ("ram", "GiBy.h") => ("memory", "GiB-hour"),
        _ => return None,
    };
    // What is left names the family: drop the filler words.
    words.retain(|w| !matches!(*w, "Instance" | "AMD" | "Arm" | "Intel"));
    let family = match words.as_slice() {
        ["N1", "Predefined"] => "n1".to_string(),
        ["Custom"] => "n1-custom".to_string(),
        ["Compute", "optimized"] => "c2".to_string(),
        ["Memory-optimized"] => "m1".to_string(),
        [f, "Custom"] => format!("{}-custom", f.to_ascii_lowercase()),
        [f] if f.chars().all(|c| c.is_ascii_alphanumeric()) => f.to_ascii_lowercase(),
        _ => return None,
    };
    Some((format!("gce/{family}/{what}"), per))
}

/// `Balanced PD Capacity in Belgium` → `pd/pd-balanced`; the regional variants get
/// `/regional`.
fn disk_key(description: &str) -> Option<String> {
    let d = description.split(" in ").next()?.trim();
    let (regional, d) = match d.strip_prefix("Regional ") {
        Some(rest) => (true, rest),
        None => (false, d),
    };
    let ty = match d {
        "Storage PD Capacity" => "pd-standard",
        "Balanced PD Capacity" => "pd-balanced",
        "SSD backed PD Capacity" => "pd-ssd",
        _ => return None,
    };
    Some(if regional {
        format!("pd/{ty}/regional")
    } else {
        format!("pd/{ty}")
    })
}

/// Snapshot storage: `Storage PD Snapshot` (a regional location) → `snapshot/standard`,
/// `Storage PD Snapshot in US` (a multi-region: US, EU, Asia) →
/// `snapshot/standard/multiregional`; the archive tier's `… Archive Snapshot Data Storage …`
/// → `snapshot/archive` (`/multiregional` when it says multi-regional). Early-deletion and
/// retrieval SKUs are one-off charges, not storage prices, and are left out.
fn snapshot_key(description: &str) -> Option<String> {
    let lower = description.to_ascii_lowercase();
    if lower.contains("early deletion") || lower.contains("retrieval") {
        return None;
    }
    if let Some(rest) = description.strip_prefix("Storage PD Snapshot") {
        let place = rest.trim().strip_prefix("in ").unwrap_or("").trim();
        let multi = matches!(place, "US" | "EU" | "Asia" | "Europe");
        return Some(if multi {
            "snapshot/standard/multiregional".into()
        } else {
            "snapshot/standard".into()
        });
    }
    if lower.contains("archive snapshot") && lower.contains("storage") {
        let multi = lower.contains("multi-regional") || lower.contains("multiregional");
        return Some(if multi {
            "snapshot/archive/multiregional".into()
        } else {
            "snapshot/archive".into()
        });
    }
    None
}

/// External addresses and forwarding rules, per hour: `Static Ip Charge` →
/// `address/unused`, `External IP Charge on a Standard VM` → `address/in-use`,
/// `… Forwarding Rule Minimum Service Charge …` and `Cloud Load Balancer Forwarding Rule
/// Minimum Global` (the first five rules) → `lb/forwarding-rule` (a global SKU's price goes
/// to the `global` row only, see [`fetch`]).
fn network_key(description: &str) -> Option<String> {
    let d = description.trim();
    if d.starts_with("Static Ip Charge") {
        return Some("address/unused".into());
    }
    if d.starts_with("External IP Charge on a Standard VM") {
        return Some("address/in-use".into());
    }
    if d.contains("Forwarding Rule Minimum") {
        return Some("lb/forwarding-rule".into());
    }
    None
}

/// `Regional Kubernetes Clusters` → `gke/regional`.
fn gke_key(description: &str) -> Option<String> {
    let mode = match description.trim() {
        "Zonal Kubernetes Clusters" => "zonal",
        "Regional Kubernetes Clusters" => "regional",
        "Autopilot Kubernetes Clusters" => "autopilot",
        _ => return None,
    };
    Some(format!("gke/{mode}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sku(
        description: &str,
        family: &str,
        group: &str,
        unit: &str,
        units: &str,
        nanos: i64,
        regions: &[&str],
    ) -> Value {
        json!({
            "name": format!("services/{COMPUTE_ENGINE_SERVICE}/skus/X"),
            "skuId": "X",
            "description": description,
            "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family, "resourceGroup": group, "usageType": "OnDemand"},
            "serviceRegions": regions,
            "pricingInfo": [{
                "effectiveTime": "2026-11-01T00:00:00Z",
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit, "usageUnitDescription": "", "baseUnit": "s",
                    "baseUnitConversionFactor": 3600, "displayQuantity": 1,
                    "tieredRates": [{"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": units, "nanos": nanos}}]
                },
                "currencyConversionRate": 1
            }],
            "serviceProviderName": "Google"
        })
    }

    #[test]
    fn skus_map_to_keys() {
        let core = sku(
            "N2 Instance Core running in Americas",
            "Compute",
            "CPU",
            "h",
            "0",
            31_611_000,
            &["us-central1"],
        );
        let (k, p) = price_of(&core).unwrap();
        assert_eq!(k, "gce/n2/vcpu");
        assert!((p.usd - 0.031611).abs() < 1e-12);
        let ram = sku(
            "N2D AMD Instance Ram running in Americas",
            "Compute",
            "RAM",
            "GiBy.h",
            "0",
            3_686_000,
            &["us-central1"],
        );
        assert_eq!(price_of(&ram).unwrap().0, "gce/n2d/memory");
        let n1 = sku(
            "N1 Predefined Instance Core running in Americas",
            "Compute",
            "N1Standard",
            "h",
            "0",
            31_611_000,
            &[],
        );
        assert_eq!(price_of(&n1).unwrap().0, "gce/n1/vcpu");
        let custom = sku(
            "Custom Instance Ram running in Americas",
            "Compute",
            "RAM",
            "GiBy.h",
            "0",
            4_450_000,
            &[],
        );
        assert_eq!(price_of(&custom).unwrap().0, "gce/n1-custom/memory");
        let spot = sku(
            "Spot Preemptible N2 Instance Core running in Americas",
            "Compute",
            "CPU",
            "h",
            "0",
            1,
            &[],
        );
        assert!(price_of(&spot).is_none());
        let sole = sku(
            "N2 Sole Tenancy Instance Core running in Americas",
            "Compute",
            "CPU",
            "h",
            "0",
            1,
            &[],
        );
        assert!(price_of(&sole).is_none());
        // Newer wordings: no "running", "RAM" in capitals, an extra "Instance".
        let montreal = sku(
            "E2 Instance RAM in Montreal",
            "Compute",
            "RAM",
            "GiBy.h",
            "0",
            3_218_160,
            &[],
        );
        assert_eq!(price_of(&montreal).unwrap().0, "gce/e2/memory");
        let madrid = sku(
            "Compute optimized Instance Core running in Madrid",
            "Compute",
            "CPU",
            "h",
            "0",
            1,
            &[],
        );
        assert_eq!(price_of(&madrid).unwrap().0, "gce/c2/vcpu");
        let n2d_custom = sku(
            "N2D AMD Custom Instance Core running in Americas",
            "Compute",
            "CPU",
            "h",
            "0",
            1,
            &[],
        );
        assert_eq!(price_of(&n2d_custom).unwrap().0, "gce/n2d-custom/vcpu");
        // A core SKU priced in another unit is not a vCPU-hour price.
        let odd_core = sku(
            "E2 Instance Core running in Americas",
            "Compute",
            "CPU",
            "GiBy.h",
            "0",
            1,
            &[],
        );
        assert!(price_of(&odd_core).is_none());
        let pd = sku(
            "Regional Balanced PD Capacity in Iowa",
            "Storage",
            "SSD",
            "GiBy.mo",
            "0",
            200_000_000,
            &[],
        );
        let (k, p) = price_of(&pd).unwrap();
        assert_eq!(
            (k.as_str(), p.per.as_str()),
            ("pd/pd-balanced/regional", "GiB-month")
        );
        // A price in a unit other than the key's is not taken.
        let odd = sku(
            "Storage PD Capacity in Iowa",
            "Storage",
            "PDStandard",
            "GiBy.h",
            "0",
            1,
            &[],
        );
        assert!(price_of(&odd).is_none());
        let mut gke = sku(
            "Zonal Kubernetes Clusters",
            "Compute",
            "Kubernetes",
            "h",
            "0",
            100_000_000,
            &["global"],
        );
        gke["category"]["resourceFamily"] = json!("Compute");
        assert_eq!(price_of(&gke).unwrap().0, "gke/zonal");
    }

    #[test]
    fn waste_skus_map_to_keys() {
        let key = |d: &str, family: &str, unit: &str| {
            price_of(&sku(
                d,
                family,
                "G",
                unit,
                "0",
                10_000_000,
                &["us-central1"],
            ))
            .map(|(k, p)| (k, p.per))
        };
        let k = |k: &str, per: &str| Some((k.to_string(), per.to_string()));
        assert_eq!(
            key("Storage PD Snapshot", "Storage", "GiBy.mo"),
            k("snapshot/standard", "GiB-month")
        );
        assert_eq!(
            key("Storage PD Snapshot in US", "Storage", "GiBy.mo"),
            k("snapshot/standard/multiregional", "GiB-month")
        );
        assert_eq!(
            key(
                "Multi-regional Archive Snapshot Data Storage in US",
                "Storage",
                "GiBy.mo"
            ),
            k("snapshot/archive/multiregional", "GiB-month")
        );
        assert_eq!(
            key("Archive Snapshot Early Deletion", "Storage", "GiBy.mo"),
            None
        );
        assert_eq!(
            key("Static Ip Charge", "Network", "h"),
            k("address/unused", "hour")
        );
        assert_eq!(
            key("External IP Charge on a Standard VM", "Network", "h"),
            k("address/in-use", "hour")
        );
        assert_eq!(
            key(
                "Network Load Balancing: Forwarding Rule Minimum Service Charge in Americas",
                "Network",
                "h"
            ),
            k("lb/forwarding-rule", "hour")
        );
        assert_eq!(
            key(
                "HTTP Load Balancing: Global Forwarding Rule Minimum Service Charge",
                "Network",
                "h"
            ),
            k("lb/forwarding-rule", "hour")
        );
        // A unit that is not the key's is not that price.
        assert_eq!(key("Static Ip Charge", "Network", "GiBy"), None);
    }

    #[test]
    fn series_of_a_machine_type() {
        let n2 = same_series("n2-standard-4");
        assert_eq!(n2.len(), 10);
        assert_eq!(n2[0], ("n2-standard-2".to_string(), 2.0, 8192.0));
        assert_eq!(n2[9], ("n2-standard-128".to_string(), 128.0, 524288.0));
        assert_eq!(same_series("n1-standard-1")[0].2, 3840.0);
        assert!(same_series("e2-medium").is_empty());
        assert!(same_series("custom-4-8192").is_empty());
        assert!(same_series("c3-standard-4").is_empty());
    }

    #[test]
    fn families() {
        assert_eq!(machine_family("n2-standard-4"), "n2");
        assert_eq!(machine_family("custom-4-8192"), "n1-custom");
        assert_eq!(machine_family("n2d-custom-4-8192"), "n2d-custom");
        assert_eq!(machine_family("e2-micro"), "e2");
    }

    #[test]
    fn the_shipped_table_is_valid_and_dated() {
        let t = PriceList::parse(CLOUD, SHIPPED, "prices.json").unwrap();
        assert!(t.regions.contains_key("us-central1"));
        assert!(t.len() > 20, "{}", t.len());
    }
}
