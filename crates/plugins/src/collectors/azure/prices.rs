//! Estimated Azure costs: the inventory × pay-as-you-go list prices from the Azure Retail
//! Prices API (a table shipped in the binary, refreshed by `skymeter prices azure update`).
//!
//! Price keys (per region, the ARM `location`):
//! - `vm/{size}/linux`, `vm/{size}/windows` (USD per hour): a VM size (`Standard_D2s_v3`)
//!   at the pay-as-you-go price, the Windows licence included for `windows`.
//! - `disk/{tier} {redundancy}` (per disk-month): a managed disk's billed tier
//!   (`disk/P10 LRS`, `disk/E10 ZRS`, `disk/S10 LRS`).
//! - `aks/Standard`, `aks/Premium` (per cluster-hour): the AKS pricing tier's fee.
//! - `snapshot/{sku}` (per GiB-month): managed disk snapshots by their SKU
//!   (`snapshot/Standard_LRS`, `snapshot/Standard_ZRS`, `snapshot/Premium_LRS`).
//! - `ip/{sku}/{allocation}` (per hour): public IP addresses (`ip/Standard/Static`,
//!   `ip/Basic/Static`, `ip/Basic/Dynamic`).
//! - `lb/Standard` (per hour, the first five rules included), `lb/Standard/rule` (per
//!   rule-hour beyond five), `lb/Standard/data` (per GB processed): Standard load balancers.
//! - `nat/Standard` (per hour), `nat/Standard/data` (per GB processed): NAT gateways.

use crate::cloud::prices::FlatPriceSource;
use crate::cloud::rest::{RestCall, RestClient};
use crate::common::price_list::{
    number, text, Cloud, Estimator, Line, ListPrice, PriceList, PricedKind,
};
use serde_json::Value;
use skymeter_model::Resource;
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::prices::UpdateOption;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const CLOUD: Cloud = Cloud {
    id: "azure",
    display: "Azure",
    provider_name: skymeter_model::provider::AZURE.focus_name,
};

/// The table compiled into skymeter (its `source` says where the figures come from).
pub const SHIPPED: &str = include_str!("prices.json");

/// The public, unauthenticated Retail Prices API.
pub const RETAIL_PRICES_ENDPOINT: &str = "https://prices.azure.com";
pub const RETAIL_PRICES_API_VERSION: &str = "2023-01-01-preview";
/// The self-accounting name of a Retail Prices page.
pub const RETAIL_PRICES: &str = "retail.prices.list";

const VIRTUAL_MACHINES: &str = "Virtual Machines";
const STORAGE: &str = "Storage";
const AKS: &str = "Azure Kubernetes Service";
const LOAD_BALANCER: &str = "Load Balancer";
const VIRTUAL_NETWORK: &str = "Virtual Network";
/// The Retail Prices `productName`s of public IPs and NAT gateways.
const IP_ADDRESSES: &str = "IP Addresses";
const NAT_GATEWAY: &str = "NAT Gateway";

/// The Retail Prices `productName`s of the managed disks priced per disk-month, and the
/// letter of their tiers.
const DISK_PRODUCTS: [(&str, char); 3] = [
    ("Premium SSD Managed Disks", 'P'),
    ("Standard SSD Managed Disks", 'E'),
    ("Standard HDD Managed Disks", 'S'),
];

/// Managed disk tiers: (number, the largest size in GiB it covers). A disk is billed at
/// the smallest tier that holds its size. Standard HDD starts at S4.
const DISK_TIERS: [(u32, f64); 14] = [
    (1, 4.0),
    (2, 8.0),
    (3, 16.0),
    (4, 32.0),
    (6, 64.0),
    (10, 128.0),
    (15, 256.0),
    (20, 512.0),
    (30, 1024.0),
    (40, 2048.0),
    (50, 4096.0),
    (60, 8192.0),
    (70, 16384.0),
    (80, 32767.0),
];

/// The billed tier of a managed disk: `Premium_LRS` of 100 GiB → `P10 LRS`. None for disk
/// SKUs that are not priced per tier (Premium SSD v2, Ultra Disk).
pub fn disk_tier(sku: &str, size_gib: f64) -> Option<String> {
    let (kind, redundancy) = sku.split_once('_')?;
    let letter = match kind {
        "Premium" => 'P',
        "StandardSSD" => 'E',
        "Standard" => 'S',
        _ => return None,
    };
    let first = if letter == 'S' { 4 } else { 1 };
    let (n, _) = DISK_TIERS
        .iter()
        .filter(|(n, _)| *n >= first)
        .find(|(_, max)| size_gib <= *max)?;
    Some(format!("{letter}{n} {redundancy}"))
}

/// What the estimate prices, kind by kind (cost lines over the window; one error per price
/// the table lacks):
///
/// - `compute.instance`, `running`, not Spot: hours × the size's pay-as-you-go price, the
///   Linux price for Linux VMs and for Windows VMs under Azure Hybrid Benefit
///   (`license_type` Windows_Server / Windows_Client), else the Windows price.
/// - `storage.volume`: months × the tier's monthly price (a disk is billed whatever its
///   state). Transactions of Standard disks, and Premium SSD v2 and Ultra disks (priced per
///   GiB, IOPS and throughput), are not estimated.
/// - `k8s.cluster`, `running`, Standard or Premium tier: hours × the tier's fee (the Free
///   tier costs nothing; its nodes are VMs of their own).
///
/// Function apps, SQL databases and storage accounts are not estimated (their billed cost
/// comes from Cost Management).
/// - `storage.snapshot`: `size_gib` × months at its SKU's price per GiB-month (an
///   incremental snapshot is billed for the data it holds, which ARM does not report: the
///   disk's size is an upper bound).
/// - `network.public_ip`: hours at its SKU and allocation's price, whether associated or
///   not; a Basic dynamic address without an address allocated costs nothing.
/// - `network.load_balancer`, Standard: hours at the price with five rules included, plus
///   rule-hours beyond five; Basic costs nothing; data processed is not included.
/// - `network.nat_gateway`: hours at the gateway's price; data processed is not included.
pub const PRICED_KINDS: &[PricedKind] = &[
    ("compute.instance", vm),
    ("storage.volume", disk),
    ("k8s.cluster", cluster),
    ("storage.snapshot", snapshot),
    ("network.public_ip", public_ip),
    ("network.load_balancer", load_balancer),
    ("network.nat_gateway", nat_gateway),
];

fn snapshot(est: &mut Estimator<'_>, r: &Resource) {
    let (Some(sku), Some(size)) = (text(r, "sku"), number(r, "size_gib")) else {
        return;
    };
    let quantity = size * est.months();
    let region = r.region.clone();
    est.charge(
        Line {
            resource: r,
            service: STORAGE,
            category: "Storage",
            key: format!("snapshot/{sku}"),
            quantity,
            unit: "GiB-Months",
        },
        || format!("no {sku} snapshot price per GiB-month in {region}"),
    );
}

fn network_line<'r>(
    r: &'r Resource,
    service: &'static str,
    key: String,
    quantity: f64,
) -> Line<'r> {
    Line {
        resource: r,
        service,
        category: "Networking",
        key,
        quantity,
        unit: "Hours",
    }
}

fn public_ip(est: &mut Estimator<'_>, r: &Resource) {
    let (Some(sku), Some(allocation)) = (text(r, "sku"), text(r, "allocation")) else {
        return;
    };
    // A dynamic address is allocated only while in use; without one there is nothing billed.
    if allocation == "Dynamic" && text(r, "public_ip").is_none() {
        return;
    }
    let hours = est.hours;
    est.charge(
        network_line(r, VIRTUAL_NETWORK, format!("ip/{sku}/{allocation}"), hours),
        || {
            format!(
                "no {sku} {allocation} public IP price per hour in {}",
                r.region
            )
        },
    );
}

fn load_balancer(est: &mut Estimator<'_>, r: &Resource) {
    match text(r, "sku") {
        Some("Standard") => {}
        // Basic load balancers have no charge.
        Some("Basic") | None => return,
        Some(other) => {
            est.report(
                &r.region,
                &format!("lb/{other}"),
                format!("Azure {other} load balancers are not estimated (their cost comes from the billed source)"),
            );
            return;
        }
    }
    let hours = est.hours;
    est.charge(
        network_line(r, LOAD_BALANCER, "lb/Standard".into(), hours),
        || format!("no Standard load balancer price per hour in {}", r.region),
    );
    let extra = number(r, "rules").unwrap_or(0.0) - 5.0;
    if extra > 0.0 {
        let mut line = network_line(r, LOAD_BALANCER, "lb/Standard/rule".into(), extra * hours);
        line.unit = "Rule-Hours";
        est.charge(line, || {
            format!(
                "no Standard load balancer price per rule-hour beyond five in {}",
                r.region
            )
        });
    }
}

fn nat_gateway(est: &mut Estimator<'_>, r: &Resource) {
    let sku = text(r, "sku").unwrap_or("Standard");
    let hours = est.hours;
    est.charge(
        network_line(r, VIRTUAL_NETWORK, format!("nat/{sku}"), hours),
        || format!("no {sku} NAT gateway price per hour in {}", r.region),
    );
}

fn vm(est: &mut Estimator<'_>, r: &Resource) {
    if text(r, "state") != Some("running") {
        return;
    }
    // Spot prices change with demand; not list prices.
    if text(r, "lifecycle") == Some("spot") {
        return;
    }
    let Some(size) = text(r, "instance_type") else {
        return;
    };
    let hybrid_benefit = matches!(
        text(r, "license_type"),
        Some("Windows_Server" | "Windows_Client")
    );
    let os = if text(r, "platform") == Some("windows") && !hybrid_benefit {
        "windows"
    } else {
        "linux"
    };
    est.hourly(r, VIRTUAL_MACHINES, format!("vm/{size}/{os}"), || {
        format!("no pay-as-you-go price for {size} ({os}) in {}", r.region)
    });
}

fn disk(est: &mut Estimator<'_>, r: &Resource) {
    let (Some(sku), Some(size)) = (text(r, "volume_type"), number(r, "size_gib")) else {
        return;
    };
    // The tier ARM reports wins (a disk can be set to a higher performance tier than its
    // size needs, and is billed at it); else the smallest tier that holds the size.
    let redundancy = sku.split_once('_').map(|(_, x)| x).unwrap_or("LRS");
    let tier = match text(r, "tier") {
        Some(t) if disk_tier(sku, size).is_some() => Some(format!("{t} {redundancy}")),
        _ => disk_tier(sku, size),
    };
    let Some(tier) = tier else {
        est.report(
            &r.region,
            &format!("disk/{sku}"),
            format!("Azure {sku} disks are not estimated: they are priced per GiB, IOPS and throughput, which the price table does not hold (their cost comes from the billed source)"),
        );
        return;
    };
    let months = est.months();
    let region = r.region.clone();
    est.charge(
        Line {
            resource: r,
            service: STORAGE,
            category: "Storage",
            key: format!("disk/{tier}"),
            quantity: months,
            unit: "Disk-Months",
        },
        || format!("no monthly price for a {tier} managed disk in {region}"),
    );
}

fn cluster(est: &mut Estimator<'_>, r: &Resource) {
    if text(r, "status") != Some("running") {
        return;
    }
    let tier = match text(r, "tier") {
        Some(t @ ("Standard" | "Premium")) => t,
        _ => return,
    };
    est.hourly(r, AKS, format!("aks/{tier}"), || {
        format!("no AKS {tier} tier fee in {}", r.region)
    });
}

/// VM series for rightsizing: (name prefix, name suffix, vCPU counts, GiB of memory per
/// vCPU); a size is `{prefix}{vCPUs}{suffix}`. From Microsoft's size pages
/// (learn.microsoft.com/azure/virtual-machines/sizes: Dsv5, Dasv5, Dsv3, Esv5, Fsv2 series),
/// read 2026-12-07. Constrained-vCPU sizes (`E4-2s_v5`) are not listed.
const SERIES: &[(&str, &str, &[u32], f64)] = &[
    ("Standard_D", "s_v5", &[2, 4, 8, 16, 32, 48, 64, 96], 4.0),
    ("Standard_D", "as_v5", &[2, 4, 8, 16, 32, 48, 64, 96], 4.0),
    ("Standard_D", "s_v3", &[2, 4, 8, 16, 32, 48, 64], 4.0),
    (
        "Standard_E",
        "s_v5",
        &[2, 4, 8, 16, 20, 32, 48, 64, 96],
        8.0,
    ),
    ("Standard_F", "s_v2", &[2, 4, 8, 16, 32, 48, 64, 72], 2.0),
];

/// Every size of `size`'s series (`Standard_D4s_v5` → `Standard_D2s_v5` …
/// `Standard_D96s_v5`), itself included, with (name, vCPUs, memory MiB); empty for a size of
/// a series not listed.
pub fn same_series(size: &str) -> Vec<(String, f64, f64)> {
    for (prefix, suffix, counts, gib) in SERIES {
        let Some(rest) = size.strip_prefix(prefix) else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || &rest[digits..] != *suffix {
            continue;
        }
        return counts
            .iter()
            .map(|c| {
                (
                    format!("{prefix}{c}{suffix}"),
                    f64::from(*c),
                    f64::from(*c) * gib * 1024.0,
                )
            })
            .collect();
    }
    Vec::new()
}

/// The Retail Prices queries of one region: the `$filter`s, and what they are for.
pub fn filters(region: &str) -> Vec<(&'static str, String)> {
    let base = format!("armRegionName eq '{region}' and priceType eq 'Consumption'");
    let mut out = vec![(
        VIRTUAL_MACHINES,
        format!("serviceName eq '{VIRTUAL_MACHINES}' and {base}"),
    )];
    for (product, _) in DISK_PRODUCTS {
        out.push((
            "Managed Disks",
            format!("productName eq '{product}' and {base}"),
        ));
    }
    out.push((AKS, format!("serviceName eq '{AKS}' and {base}")));
    out.push((
        IP_ADDRESSES,
        format!("productName eq '{IP_ADDRESSES}' and {base}"),
    ));
    out.push((
        LOAD_BALANCER,
        format!("serviceName eq '{LOAD_BALANCER}' and {base}"),
    ));
    out.push((
        NAT_GATEWAY,
        format!("productName eq '{NAT_GATEWAY}' and {base}"),
    ));
    out
}

/// Collects the prices of Retail Prices items into a region's table. Several items can
/// carry one key (meters re-issued over time): the latest `effectiveStartDate` wins.
#[derive(Debug, Default)]
pub struct Collected {
    prices: BTreeMap<String, (String, ListPrice)>,
    pub items: u64,
}

impl Collected {
    pub fn add(&mut self, item: &Value) {
        self.items += 1;
        let Some((key, price)) = price_of(item) else {
            return;
        };
        let since = item["effectiveStartDate"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match self.prices.get(&key) {
            Some((have, _)) if *have > since => {}
            _ => {
                self.prices.insert(key, (since, price));
            }
        }
    }

    pub fn into_prices(self) -> BTreeMap<String, ListPrice> {
        self.prices.into_iter().map(|(k, (_, p))| (k, p)).collect()
    }
}

/// The table key and price of a Retail Prices item the estimate uses, or None.
fn price_of(item: &Value) -> Option<(String, ListPrice)> {
    if item["type"].as_str() != Some("Consumption") {
        return None;
    }
    if item["currencyCode"].as_str().is_some_and(|c| c != "USD") {
        return None;
    }
    // A price from a usage tier above zero is not the pay-as-you-go price of the first unit.
    if item["tierMinimumUnits"].as_f64().unwrap_or(0.0) > 0.0 {
        return None;
    }
    let usd = item["retailPrice"].as_f64()?;
    let unit = item["unitOfMeasure"].as_str()?;
    let product = item["productName"].as_str().unwrap_or_default();
    let sku = item["skuName"].as_str().unwrap_or_default();
    let meter = item["meterName"].as_str().unwrap_or_default();
    let hourly = |key: String| {
        Some((
            key,
            ListPrice {
                usd,
                per: "hour".into(),
            },
        ))
    };
    match item["serviceName"].as_str()? {
        VIRTUAL_MACHINES => {
            if unit != "1 Hour" || sku.contains("Spot") || sku.contains("Low Priority") {
                return None;
            }
            if !product.starts_with("Virtual Machines ") {
                return None;
            }
            let size = item["armSkuName"].as_str().filter(|s| !s.is_empty())?;
            let os = if product.ends_with(" Windows") {
                "windows"
            } else if product.ends_with(" Series") {
                "linux"
            } else {
                // "… Series Linux" with a distribution licence, "… Basic": other products.
                return None;
            };
            hourly(format!("vm/{size}/{os}"))
        }
        STORAGE => {
            let (_, letter) = DISK_PRODUCTS.iter().find(|(p, _)| *p == product)?;
            if let Some(key) = snapshot_key(product, meter, unit) {
                return Some((
                    key,
                    ListPrice {
                        usd,
                        per: "GiB-month".into(),
                    },
                ));
            }
            if unit != "1/Month" {
                return None;
            }
            // The meter of a disk's monthly price reads `P10 LRS Disk` (older: `P10 Disks`);
            // `… Disk Mount`, `… Disk Operations` are other meters. The key is the skuName.
            if !is_disk_meter(meter, *letter) || !sku.starts_with(*letter) {
                return None;
            }
            let tier = sku;
            Some((
                format!("disk/{tier}"),
                ListPrice {
                    usd,
                    per: "month".into(),
                },
            ))
        }
        AKS => {
            if unit != "1 Hour" || !matches!(sku, "Standard" | "Premium") {
                return None;
            }
            hourly(format!("aks/{sku}"))
        }
        LOAD_BALANCER => {
            if sku != "Standard" {
                return None;
            }
            match (meter, unit) {
                ("Standard Included LB Rules and Outbound Rules", "1 Hour") => {
                    hourly("lb/Standard".into())
                }
                ("Standard Overage LB Rules and Outbound Rules", "1/Hour" | "1 Hour") => {
                    hourly("lb/Standard/rule".into())
                }
                ("Standard Data Processed", "1 GB") => Some((
                    "lb/Standard/data".into(),
                    ListPrice {
                        usd,
                        per: "GB".into(),
                    },
                )),
                _ => None,
            }
        }
        _ if product == IP_ADDRESSES => {
            // `Standard IPv4 Static Public IP`, `Basic IPv4 Dynamic Public IP`, …; IPv6,
            // global (cross-region) and prefix meters are other prices.
            let key = match meter {
                "Standard IPv4 Static Public IP" => "ip/Standard/Static",
                "Basic IPv4 Static Public IP" => "ip/Basic/Static",
                "Basic IPv4 Dynamic Public IP" => "ip/Basic/Dynamic",
                _ => return None,
            };
            (unit == "1 Hour").then_some(())?;
            hourly(key.into())
        }
        _ if product == NAT_GATEWAY => match (meter, unit) {
            ("Standard Gateway", "1 Hour") => hourly("nat/Standard".into()),
            ("Standard Data Processed", "1 GB") => Some((
                "nat/Standard/data".into(),
                ListPrice {
                    usd,
                    per: "GB".into(),
                },
            )),
            _ => None,
        },
        _ => None,
    }
}

/// A snapshot meter of a managed-disk product: `LRS Snapshots` / `ZRS Snapshots` per
/// GB-month of `Standard HDD Managed Disks` (where standard and incremental snapshots are
/// stored) → `snapshot/Standard_LRS`, of `Premium SSD Managed Disks` → `snapshot/Premium_…`.
fn snapshot_key(product: &str, meter: &str, unit: &str) -> Option<String> {
    let kind = match product {
        "Standard HDD Managed Disks" => "Standard",
        "Premium SSD Managed Disks" => "Premium",
        _ => return None,
    };
    let redundancy = match meter {
        "LRS Snapshots" | "LRS Snapshot" => "LRS",
        "ZRS Snapshots" | "ZRS Snapshot" => "ZRS",
        _ => return None,
    };
    matches!(unit, "1 GB/Month" | "1 GiB/Month").then(|| format!("snapshot/{kind}_{redundancy}"))
}

/// `P10 LRS Disk`, `E10 ZRS Disk`, `S10 Disks`: a tier letter and number, an optional
/// redundancy, then `Disk` or `Disks`.
fn is_disk_meter(meter: &str, letter: char) -> bool {
    let mut words = meter.split(' ');
    let Some(tier) = words.next() else {
        return false;
    };
    let tier_ok =
        tier.starts_with(letter) && tier.len() > 1 && tier[1..].bytes().all(|b| b.is_ascii_digit());
    let rest: Vec<&str> = words.collect();
    tier_ok
        && matches!(
            rest.as_slice(),
            ["Disk"] | ["Disks"] | ["LRS" | "ZRS", "Disk"] | ["LRS" | "ZRS", "Disks"]
        )
}

/// Every page of one Retail Prices query: `NextPageLink` until it is null. `each` gets
/// every item; `page` is called after each page with the items so far.
pub async fn list(
    rest: &RestClient,
    endpoint: &str,
    filter: &str,
    mut each: impl FnMut(&Value),
) -> Result<(), PluginError> {
    let first = format!("{}/api/retail/prices", endpoint.trim_end_matches('/'));
    let mut next: Option<String> = None;
    loop {
        let answer = send(rest, |http| match &next {
            Some(url) => http.get(url),
            None => http.get(&first).query(&[
                ("api-version", RETAIL_PRICES_API_VERSION),
                ("currencyCode", "USD"),
                ("$filter", filter),
            ]),
        })
        .await?;
        for item in answer["Items"].as_array().into_iter().flatten() {
            each(item);
        }
        match answer["NextPageLink"].as_str() {
            Some(url) if !url.is_empty() => next = Some(url.to_string()),
            _ => return Ok(()),
        }
    }
}

/// The Retail Prices API call (public: no token, no role).
struct RetailPricesCall;

impl RestCall for RetailPricesCall {
    fn api(&self) -> &'static str {
        RETAIL_PRICES
    }

    fn status_error(&self, status: u16, body: &str, tries: u32) -> PluginError {
        let body: String = body.chars().take(300).collect();
        let kind = if status == 429 || status >= 500 {
            ErrorKind::Unavailable
        } else {
            ErrorKind::BadResponse
        };
        PluginError::new(
            kind,
            format!("the Azure Retail Prices API answered {status} after {tries} tries: {body}"),
        )
    }
}

/// One page, retried on 429 (after `Retry-After`, at most 60 s), 5xx and connection errors,
/// five tries.
async fn send(
    rest: &RestClient,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
) -> Result<Value, PluginError> {
    rest.json(&RetailPricesCall, None, request).await
}

/// `skymeter prices azure …`: the table, and its update from the Retail Prices API.
pub fn source() -> FlatPriceSource {
    FlatPriceSource {
        provider: &skymeter_model::provider::AZURE,
        cloud: CLOUD,
        shipped: SHIPPED,
        kind: "pay-as-you-go",
        example_region: "westeurope",
        api: RETAIL_PRICES,
        noun: "price items",
        options: &[UpdateOption::EndpointUrl, UpdateOption::CaFile],
        help: "Queries https://prices.azure.com/api/retail/prices (public, no credentials) for the Virtual Machines, managed disk (and disk snapshot), AKS, public IP, Load Balancer and NAT Gateway prices of each region asked, every page. --endpoint-url replaces https://prices.azure.com (a proxy or a test server); --ca-file adds PEM certificates to trust besides the system's.",
        fetch: |req, calls| {
            Box::pin(async move {
                fetch(
                    req.endpoint_url.unwrap_or(RETAIL_PRICES_ENDPOINT),
                    req.ca_file.map(std::path::Path::new),
                    req.regions,
                    req.date,
                    calls,
                    req.progress,
                )
                .await
            })
        },
    }
}

/// Reads every query of [`filters`] for `regions` from the Retail Prices API at `endpoint`
/// (trusting the extra CA certificates of `ca_file`, for a private proxy or a test server)
/// and builds the table. `progress` gets (what, items so far) after each page.
pub async fn fetch(
    endpoint: &str,
    ca_file: Option<&std::path::Path>,
    regions: &[String],
    date: &str,
    calls: Arc<ApiCallCounts>,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<PriceList, PluginError> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            PluginError::new(
                ErrorKind::Config,
                format!("cannot read the CA file {}: {e}", path.display()),
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            PluginError::new(
                ErrorKind::Config,
                format!("{} holds no PEM certificate: {e}", path.display()),
            )
        })?;
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    let http = builder.build().map_err(|e| {
        PluginError::new(
            ErrorKind::Other,
            format!("cannot build an HTTP client: {e}"),
        )
    })?;
    // Public and unthrottled for reasonable use; five tries like the collectors' default.
    let rest = RestClient::new(
        http,
        calls,
        crate::cloud::provider::default_retry(),
        "the Azure Retail Prices API",
    );
    let mut table = BTreeMap::new();
    let mut items = 0u64;
    for region in regions {
        let mut collected = Collected::default();
        for (what, filter) in filters(region) {
            list(&rest, endpoint, &filter, |item| collected.add(item))
                .await
                .map_err(|e| e.with("region", region.as_str()))?;
            progress(&format!("{region} {what}"), items + collected.items);
        }
        items += collected.items;
        table.insert(region.clone(), collected.into_prices());
    }
    Ok(PriceList {
        date: date.to_string(),
        currency: "USD".into(),
        source: format!("Azure Retail Prices API ({RETAIL_PRICES_ENDPOINT}/api/retail/prices, api-version {RETAIL_PRICES_API_VERSION}), pay-as-you-go (Consumption) retail prices"),
        regions: table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn series_of_a_size() {
        let d = same_series("Standard_D4s_v5");
        assert_eq!(d.len(), 8);
        assert_eq!(d[0], ("Standard_D2s_v5".to_string(), 2.0, 8192.0));
        assert_eq!(d[7], ("Standard_D96s_v5".to_string(), 96.0, 393216.0));
        assert_eq!(same_series("Standard_D2as_v5")[1].0, "Standard_D4as_v5");
        assert_eq!(
            same_series("Standard_E20s_v5")[4],
            ("Standard_E20s_v5".to_string(), 20.0, 163840.0)
        );
        assert!(same_series("Standard_D2ds_v5").is_empty());
        assert!(same_series("Standard_E4-2s_v5").is_empty());
        assert!(same_series("Standard_B2s").is_empty());
    }

    fn item(
        service: &str,
        product: &str,
        sku: &str,
        meter: &str,
        arm_sku: &str,
        unit: &str,
        price: f64,
    ) -> Value {
        json!({
            "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
            "armRegionName": "eastus", "location": "US East", "effectiveStartDate": "2024-01-01T00:00:00Z",
            "meterId": "m", "meterName": meter, "productId": "p", "skuId": "s", "productName": product,
            "skuName": sku, "serviceName": service, "serviceId": "x", "serviceFamily": "Compute",
            "unitOfMeasure": unit, "type": "Consumption", "isPrimaryMeterRegion": true, "armSkuName": arm_sku
        })
    }

    #[test]
    fn items_map_to_keys() {
        let linux = item(
            "Virtual Machines",
            "Virtual Machines DSv3 Series",
            "D2s v3",
            "D2s v3",
            "Standard_D2s_v3",
            "1 Hour",
            0.096,
        );
        assert_eq!(price_of(&linux).unwrap().0, "vm/Standard_D2s_v3/linux");
        let windows = item(
            "Virtual Machines",
            "Virtual Machines DSv3 Series Windows",
            "D2s v3",
            "D2s v3",
            "Standard_D2s_v3",
            "1 Hour",
            0.188,
        );
        assert_eq!(price_of(&windows).unwrap().0, "vm/Standard_D2s_v3/windows");
        let spot = item(
            "Virtual Machines",
            "Virtual Machines DSv3 Series",
            "D2s v3 Spot",
            "D2s v3 Spot",
            "Standard_D2s_v3",
            "1 Hour",
            0.01,
        );
        assert!(price_of(&spot).is_none());
        let low = item(
            "Virtual Machines",
            "Virtual Machines DSv3 Series",
            "D2s v3 Low Priority",
            "D2s v3 Low Priority",
            "Standard_D2s_v3",
            "1 Hour",
            0.02,
        );
        assert!(price_of(&low).is_none());
        let disk = item(
            "Storage",
            "Premium SSD Managed Disks",
            "P10 LRS",
            "P10 LRS Disk",
            "Premium_LRS",
            "1/Month",
            19.71,
        );
        let (k, p) = price_of(&disk).unwrap();
        assert_eq!(
            (k.as_str(), p.per.as_str(), p.usd),
            ("disk/P10 LRS", "month", 19.71)
        );
        let ops = item(
            "Storage",
            "Standard HDD Managed Disks",
            "S10 LRS",
            "LRS Disk Operations",
            "Standard_LRS",
            "10K",
            0.0005,
        );
        assert!(price_of(&ops).is_none());
        let mount = item(
            "Storage",
            "Premium SSD Managed Disks",
            "P10 LRS",
            "P10 LRS Disk Mount",
            "",
            "1/Month",
            1.0,
        );
        assert!(price_of(&mount).is_none());
        // The older meter wording.
        let older = item(
            "Storage",
            "Standard SSD Managed Disks",
            "E10 LRS",
            "E10 Disks",
            "",
            "1/Month",
            9.6,
        );
        assert_eq!(price_of(&older).unwrap().0, "disk/E10 LRS");
        let aks = item(
            "Azure Kubernetes Service",
            "Azure Kubernetes Service",
            "Standard",
            "Standard Uptime SLA",
            "",
            "1 Hour",
            0.1,
        );
        assert_eq!(price_of(&aks).unwrap().0, "aks/Standard");
        let mut reserved = linux.clone();
        reserved["type"] = json!("Reservation");
        assert!(price_of(&reserved).is_none());
    }

    #[test]
    fn the_latest_meter_wins() {
        let mut old = item(
            "Virtual Machines",
            "Virtual Machines DSv3 Series",
            "D2s v3",
            "D2s v3",
            "Standard_D2s_v3",
            "1 Hour",
            0.11,
        );
        old["effectiveStartDate"] = json!("2020-01-01T00:00:00Z");
        let new = item(
            "Virtual Machines",
            "Virtual Machines DSv3 Series",
            "D2s v3",
            "D2s v3",
            "Standard_D2s_v3",
            "1 Hour",
            0.096,
        );
        let mut c = Collected::default();
        c.add(&new);
        c.add(&old);
        assert_eq!(c.into_prices()["vm/Standard_D2s_v3/linux"].usd, 0.096);
    }

    #[test]
    fn tiers() {
        assert_eq!(disk_tier("Premium_LRS", 100.0).as_deref(), Some("P10 LRS"));
        assert_eq!(disk_tier("Premium_LRS", 128.0).as_deref(), Some("P10 LRS"));
        assert_eq!(disk_tier("Premium_LRS", 129.0).as_deref(), Some("P15 LRS"));
        assert_eq!(disk_tier("StandardSSD_ZRS", 4.0).as_deref(), Some("E1 ZRS"));
        assert_eq!(disk_tier("Standard_LRS", 4.0).as_deref(), Some("S4 LRS"));
        assert_eq!(disk_tier("PremiumV2_LRS", 100.0), None);
        assert_eq!(disk_tier("UltraSSD_LRS", 100.0), None);
    }

    #[test]
    fn the_shipped_table_is_valid_and_dated() {
        let t = PriceList::parse(CLOUD, SHIPPED, "prices.json").unwrap();
        assert!(t.regions.contains_key("eastus"));
    }
}
