//! A price table read from the AWS Price List Query API (`GetProducts`), narrowed by
//! TERM_MATCH filters to the products the table holds.

use super::table::{Deployments, InstanceSpec, PriceTable, RegionPrices, Tier};
use crate::collectors::aws::errors::api_error;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_pricing::types::{Filter, FilterType};
use serde_json::Value;
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::BTreeMap;

/// The Price List Query API answers in us-east-1 (and eu-central-1, ap-south-1); the prices
/// of every region are read there.
pub const PRICING_API_REGION: &str = "us-east-1";
/// The API's maximum page size.
pub const PAGE_SIZE: i32 = 100;

/// An SDK config for `prices update`: the default credential chain, `profile` and
/// `endpoint_url` when given, standard retries.
pub async fn sdk_config(profile: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader.load().await
}

/// Reads the on-demand prices of `regions` (EC2 with the types' vCPUs and memory, EBS volumes
/// and snapshots, RDS, Lambda, S3, EKS, public IPv4, NAT gateways, ALB/NLB) from the Price
/// List Query API, every page, counting each call as `pricing:GetProducts` in `calls`.
/// `progress(what, products)` is called after every page with the products read so far for
/// `what` (`us-east-1 AmazonEC2`). A region of which the API knows no EC2 price is an error
/// (a mistyped region code).
pub async fn fetch_price_list(
    sdk: &SdkConfig,
    regions: &[String],
    calls: &ApiCallCounts,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<PriceTable, PluginError> {
    let mut conf = aws_sdk_pricing::config::Builder::from(sdk);
    // The API lives in us-east-1 whatever region the caller works in; an endpoint override
    // (an emulator) keeps the configured region when there is one.
    if sdk.endpoint_url().is_none() || sdk.region().is_none() {
        conf = conf.region(Region::new(PRICING_API_REGION));
    }
    let client = aws_sdk_pricing::Client::from_conf(conf.build());
    let fetcher = Fetcher {
        client: &client,
        calls,
        progress,
    };
    let mut table = PriceTable {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        currency: "USD".into(),
        source: format!(
            "AWS Price List Query API (GetProducts, FormatVersion aws_v1, on-demand terms) at {}",
            sdk.endpoint_url()
                .unwrap_or("https://api.pricing.us-east-1.amazonaws.com")
        ),
        regions: BTreeMap::new(),
        ec2_specs: BTreeMap::new(),
    };
    for region in regions {
        let prices = fetcher.region(region, &mut table.ec2_specs).await?;
        table.regions.insert(region.clone(), prices);
    }
    Ok(table)
}

struct Fetcher<'a> {
    client: &'a aws_sdk_pricing::Client,
    calls: &'a ApiCallCounts,
    progress: &'a (dyn Fn(&str, u64) + Sync),
}

impl Fetcher<'_> {
    /// Every product of `service` matching `filters` (field, value) plus the region's code.
    async fn products(
        &self,
        service: &str,
        region: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Value>, PluginError> {
        let mut terms = vec![term("regionCode", region)?];
        for (field, value) in filters {
            terms.push(term(field, value)?);
        }
        let what = format!("{region} {service}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            self.calls.count("pricing:GetProducts");
            let page = self
                .client
                .get_products()
                .service_code(service)
                .set_filters(Some(terms.clone()))
                .format_version("aws_v1")
                .max_results(PAGE_SIZE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| api_error("GetProducts", "pricing:GetProducts", region, &e))?;
            for item in page.price_list() {
                let doc: Value = serde_json::from_str(item).map_err(|e| {
                    PluginError::new(
                        ErrorKind::BadResponse,
                        format!("GetProducts ({service}) answered a PriceList item that is not JSON: {e}"),
                    )
                    .with("api", "GetProducts")
                    .with("region", region)
                })?;
                out.push(doc);
            }
            (self.progress)(&what, out.len() as u64);
            match page.next_token() {
                Some(t) if !t.is_empty() => {
                    if Some(t) == token.as_deref() {
                        break;
                    }
                    token = Some(t.to_string());
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn region(
        &self,
        region: &str,
        specs: &mut BTreeMap<String, InstanceSpec>,
    ) -> Result<RegionPrices, PluginError> {
        let mut p = RegionPrices::default();
        let instances = self
            .products(
                "AmazonEC2",
                region,
                &[
                    ("productFamily", "Compute Instance"),
                    ("tenancy", "Shared"),
                    ("preInstalledSw", "NA"),
                    ("capacitystatus", "Used"),
                    ("licenseModel", "No License required"),
                ],
            )
            .await?;
        for doc in &instances {
            if let Some((ty, os, price)) = ec2_price(doc) {
                if let Some(spec) = ec2_spec(doc) {
                    specs.entry(ty.clone()).or_insert(spec);
                }
                p.ec2.entry(ty).or_default().insert(os, price);
            }
        }
        if p.ec2.is_empty() {
            return Err(PluginError::new(
                ErrorKind::Config,
                format!("the AWS Price List API has no EC2 on-demand prices for region \"{region}\": check the region code (e.g. us-east-1, eu-west-1)"),
            )
            .with("region", region));
        }
        for family in [
            "Storage",
            "System Operation",
            "Provisioned Throughput",
            "Storage Snapshot",
        ] {
            for doc in self
                .products("AmazonEC2", region, &[("productFamily", family)])
                .await?
            {
                ebs_price(&doc, &mut p);
            }
        }
        for family in ["Database Instance", "Database Storage"] {
            let docs = self
                .products("AmazonRDS", region, &[("productFamily", family)])
                .await?;
            let mut storage_rank: BTreeMap<(String, bool), u8> = BTreeMap::new();
            for doc in &docs {
                rds_price(doc, &mut p, &mut storage_rank);
            }
        }
        for doc in self.products("AWSLambda", region, &[]).await? {
            lambda_price(&doc, &mut p);
        }
        for doc in self
            .products(
                "AmazonS3",
                region,
                &[("productFamily", "Storage"), ("volumeType", "Standard")],
            )
            .await?
        {
            if usage_is(&doc, "TimedStorage-ByteHrs") {
                if let Some((usd, _)) = first_tier(&doc) {
                    p.s3.standard_gb_month = Some(usd);
                }
            }
        }
        for doc in self
            .products("AmazonEC2", region, &[("productFamily", "NAT Gateway")])
            .await?
        {
            if usage_is(&doc, "NatGateway-Hours") {
                p.vpc.nat_gateway_hour = first_tier(&doc).map(|(usd, _)| usd);
            } else if usage_is(&doc, "NatGateway-Bytes") {
                p.vpc.nat_gateway_gb = first_tier(&doc).map(|(usd, _)| usd);
            }
        }
        // The public IPv4 charge is the VPC service's (usage types PublicIPv4:InUseAddress and
        // PublicIPv4:IdleAddress, one price).
        for doc in self.products("AmazonVPC", region, &[]).await? {
            let usd = first_tier(&doc).map(|(usd, _)| usd);
            if usage_is(&doc, "PublicIPv4:InUseAddress") {
                p.vpc.public_ipv4_hour = usd.or(p.vpc.public_ipv4_hour);
            // Some listings carry the NAT gateway under AmazonVPC rather than AmazonEC2.
            } else if usage_is(&doc, "NatGateway-Hours") && p.vpc.nat_gateway_hour.is_none() {
                p.vpc.nat_gateway_hour = usd;
            } else if usage_is(&doc, "NatGateway-Bytes") && p.vpc.nat_gateway_gb.is_none() {
                p.vpc.nat_gateway_gb = usd;
            }
        }
        for doc in self.products("AWSELB", region, &[]).await? {
            elb_price(&doc, &mut p);
        }
        for doc in self.products("AmazonEKS", region, &[]).await? {
            if usage_is(&doc, "AmazonEKS-Hours:perCluster") {
                if let Some((usd, _)) = first_tier(&doc) {
                    p.eks.cluster_hour = Some(usd);
                }
            }
        }
        Ok(p)
    }
}

fn term(field: &str, value: &str) -> Result<Filter, PluginError> {
    Filter::builder()
        .r#type(FilterType::TermMatch)
        .field(field)
        .value(value)
        .build()
        .map_err(|e| PluginError::new(ErrorKind::Other, format!("GetProducts filter: {e}")))
}

fn attr<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.get("product")?.get("attributes")?.get(name)?.as_str()
}

/// Whether the product's `usagetype`, less its region prefix (`USE2-`), is `suffix`.
fn usage_is(doc: &Value, suffix: &str) -> bool {
    attr(doc, "usagetype").is_some_and(|u| {
        u == suffix
            || u.strip_suffix(suffix).is_some_and(|prefix| {
                prefix.ends_with('-') && !prefix[..prefix.len() - 1].contains(['-', ':'])
            })
    })
}

/// One on-demand price dimension: USD per `unit` from `begin` units on.
struct Dimension {
    usd: f64,
    unit: String,
    begin: f64,
}

/// Every dimension of the product's on-demand terms (`terms.OnDemand.*.priceDimensions.*`).
fn dimensions(doc: &Value) -> Vec<Dimension> {
    let mut out = Vec::new();
    let Some(terms) = doc.pointer("/terms/OnDemand").and_then(Value::as_object) else {
        return out;
    };
    for term in terms.values() {
        let Some(dims) = term.get("priceDimensions").and_then(Value::as_object) else {
            continue;
        };
        for d in dims.values() {
            let Some(usd) = d
                .pointer("/pricePerUnit/USD")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
            else {
                continue;
            };
            let begin = d
                .get("beginRange")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            out.push(Dimension {
                usd,
                unit: d
                    .get("unit")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                begin,
            });
        }
    }
    out.sort_by(|a, b| a.begin.total_cmp(&b.begin));
    out
}

/// The price of the first tier (the dimension beginning at 0) and its unit.
fn first_tier(doc: &Value) -> Option<(f64, String)> {
    dimensions(doc)
        .into_iter()
        .find(|d| d.begin == 0.0)
        .map(|d| (d.usd, d.unit))
}

/// The `operation` of each operating system's plain on-demand product: other operations with
/// the same `operatingSystem` are variants (BYOL, SQL Server) that the filters may let through.
fn plain_operation(os: &str) -> Option<&'static str> {
    Some(match os {
        "Linux" => "RunInstances",
        "Windows" => "RunInstances:0002",
        "RHEL" => "RunInstances:0010",
        "SUSE" => "RunInstances:000g",
        "Red Hat Enterprise Linux with HA" => "RunInstances:1010",
        "Ubuntu Pro" => "RunInstances:0g00",
        _ => return None,
    })
}

/// vCPUs and memory of an instance product (`vcpu` "8", `memory` "32 GiB").
fn ec2_spec(doc: &Value) -> Option<InstanceSpec> {
    let vcpus: u32 = attr(doc, "vcpu")?.trim().parse().ok()?;
    let gib: f64 = attr(doc, "memory")?
        .trim()
        .strip_suffix("GiB")?
        .trim()
        .replace(',', "")
        .parse()
        .ok()?;
    let memory_mib = (gib * 1024.0).round();
    (vcpus > 0 && memory_mib >= 1.0).then_some(InstanceSpec {
        vcpus,
        memory_mib: memory_mib as u64,
    })
}

/// ALB and NLB hours and capacity units (AWSELB, by `operation` and usage type).
fn elb_price(doc: &Value, p: &mut RegionPrices) {
    let Some((usd, _)) = first_tier(doc) else {
        return;
    };
    let (hour, lcu) = match attr(doc, "operation") {
        Some("LoadBalancing:Application") => (&mut p.elb.alb_hour, &mut p.elb.alb_lcu_hour),
        Some("LoadBalancing:Network") => (&mut p.elb.nlb_hour, &mut p.elb.nlb_lcu_hour),
        _ => return,
    };
    if usage_is(doc, "LoadBalancerUsage") {
        *hour = Some(usd);
    } else if usage_is(doc, "LCUUsage") {
        *lcu = Some(usd);
    }
}

fn ec2_price(doc: &Value) -> Option<(String, String, f64)> {
    let ty = attr(doc, "instanceType")?;
    let os = attr(doc, "operatingSystem")?;
    if let (Some(op), Some(plain)) = (attr(doc, "operation"), plain_operation(os)) {
        if op != plain {
            return None;
        }
    }
    // Capacity Blocks and other purchase options carry their own products.
    if attr(doc, "marketoption").is_some_and(|m| m != "OnDemand") {
        return None;
    }
    let (usd, unit) = first_tier(doc)?;
    // A zero hourly price marks a product that is not sold on demand, not a free instance.
    (unit == "Hrs" && usd > 0.0).then(|| (ty.to_string(), os.to_string(), usd))
}

/// io2 IOPS tiers begin at these provisioned IOPS (EBS pricing); each tier is a product of
/// its own, `EBS:VolumeP-IOPS.io2`, `….io2.tier2`, `….io2.tier3`.
const IO2_TIER_STARTS: [(&str, u64); 3] = [
    ("EBS:VolumeP-IOPS.io2", 0),
    ("EBS:VolumeP-IOPS.io2.tier2", 32_000),
    ("EBS:VolumeP-IOPS.io2.tier3", 64_000),
];

fn ebs_price(doc: &Value, p: &mut RegionPrices) {
    let family = doc
        .pointer("/product/productFamily")
        .and_then(Value::as_str);
    let Some((usd, unit)) = first_tier(doc) else {
        return;
    };
    match family {
        Some("Storage") => {
            if let Some(ty) = attr(doc, "volumeApiName") {
                if unit == "GB-Mo" {
                    p.ebs.storage_gb_month.insert(ty.to_string(), usd);
                }
            }
        }
        Some("System Operation") => {
            let mut tier = None;
            for (usage, from) in IO2_TIER_STARTS {
                if usage_is(doc, usage) {
                    tier = Some(("io2", from));
                }
            }
            if usage_is(doc, "EBS:VolumeP-IOPS.piops") {
                tier = Some(("io1", 0));
            }
            if usage_is(doc, "EBS:VolumeP-IOPS.gp3") {
                tier = Some(("gp3", 0));
            }
            if let Some((ty, from)) = tier {
                let tiers = p.ebs.iops_month.entry(ty.to_string()).or_default();
                tiers.retain(|t| t.from != from);
                tiers.push(Tier { from, usd });
                tiers.sort_by_key(|t| t.from);
            }
        }
        Some("Storage Snapshot") if unit == "GB-Mo" => {
            if usage_is(doc, "EBS:SnapshotUsage") {
                p.ebs.snapshot_gb_month = Some(usd);
            } else if usage_is(doc, "EBS:SnapshotArchiveStorage") {
                p.ebs.snapshot_archive_gb_month = Some(usd);
            }
        }
        Some("Provisioned Throughput") if usage_is(doc, "EBS:VolumeP-Throughput.gp3") => {
            // The API prices gp3 throughput per GiBps-month; the table per MiB/s-month.
            let per_mibps = match unit.as_str() {
                "GiBps-mo" | "GiBps-Mo" => usd / 1024.0,
                _ => usd,
            };
            p.ebs.throughput_mibps_month.insert("gp3".into(), per_mibps);
        }
        _ => {}
    }
}

/// The RDS API engine name of a Price List (databaseEngine, databaseEdition, licenseModel).
fn rds_engine(engine: &str, edition: &str, license: &str) -> Option<&'static str> {
    let included = license.eq_ignore_ascii_case("License included");
    Some(match (engine, edition) {
        ("MySQL", _) => "mysql",
        ("PostgreSQL", _) => "postgres",
        ("MariaDB", _) => "mariadb",
        ("Aurora MySQL", _) => "aurora-mysql",
        ("Aurora PostgreSQL", _) => "aurora-postgresql",
        ("Oracle", "Standard Two") if included => "oracle-se2",
        ("Oracle", "Enterprise") if !included => "oracle-ee",
        ("SQL Server", "Express") if included => "sqlserver-ex",
        ("SQL Server", "Web") if included => "sqlserver-web",
        ("SQL Server", "Standard") if included => "sqlserver-se",
        ("SQL Server", "Enterprise") if included => "sqlserver-ee",
        _ => return None,
    })
}

/// The storage type (`gp2`, …) of a Price List `volumeType`.
fn rds_storage_type(volume_type: &str) -> Option<&'static str> {
    let v = volume_type.to_ascii_lowercase();
    Some(if v.contains("gp3") {
        "gp3"
    } else if v.contains("io2") {
        "io2"
    } else if v == "general purpose" {
        "gp2"
    } else if v == "provisioned iops" {
        "io1"
    } else if v == "magnetic" {
        "standard"
    } else {
        return None;
    })
}

fn rds_price(doc: &Value, p: &mut RegionPrices, storage_rank: &mut BTreeMap<(String, bool), u8>) {
    let multi_az = match attr(doc, "deploymentOption") {
        Some("Single-AZ") => false,
        Some("Multi-AZ") => true,
        _ => return,
    };
    let family = doc
        .pointer("/product/productFamily")
        .and_then(Value::as_str);
    let Some((usd, unit)) = first_tier(doc) else {
        return;
    };
    let set = |d: &mut Deployments| {
        if multi_az {
            d.multi_az = Some(usd);
        } else {
            d.single_az = Some(usd);
        }
    };
    match family {
        Some("Database Instance") => {
            let (Some(class), Some(engine)) =
                (attr(doc, "instanceType"), attr(doc, "databaseEngine"))
            else {
                return;
            };
            // Aurora I/O-Optimized instances are priced apart from the standard ones.
            if attr(doc, "usagetype").is_some_and(|u| u.contains("IOOptimized")) || unit != "Hrs" {
                return;
            }
            let edition = attr(doc, "databaseEdition").unwrap_or("");
            let license = attr(doc, "licenseModel").unwrap_or("");
            let Some(engine) = rds_engine(engine, edition, license) else {
                return;
            };
            set(p
                .rds
                .instance_hour
                .entry(class.to_string())
                .or_default()
                .entry(engine.to_string())
                .or_default());
        }
        Some("Database Storage") => {
            let Some(ty) = attr(doc, "volumeType").and_then(rds_storage_type) else {
                return;
            };
            if unit != "GB-Mo" {
                return;
            }
            // Storage is listed per engine or for "Any"; prefer "Any", then the open-source
            // engines, whose storage prices are the general ones.
            let rank = match attr(doc, "databaseEngine") {
                Some("Any") => 3,
                Some("MySQL" | "PostgreSQL" | "MariaDB") => 2,
                _ => return,
            };
            let seen = storage_rank.entry((ty.to_string(), multi_az)).or_insert(0);
            if rank > *seen {
                *seen = rank;
                set(p.rds.storage_gb_month.entry(ty.to_string()).or_default());
            }
        }
        _ => {}
    }
}

fn lambda_price(doc: &Value, p: &mut RegionPrices) {
    let slot = if usage_is(doc, "Lambda-GB-Second") {
        (&mut p.lambda.gb_second, "x86_64")
    } else if usage_is(doc, "Lambda-GB-Second-ARM") {
        (&mut p.lambda.gb_second, "arm64")
    } else if usage_is(doc, "Request") {
        (&mut p.lambda.request, "x86_64")
    } else if usage_is(doc, "Request-ARM") {
        (&mut p.lambda.request, "arm64")
    } else {
        return;
    };
    if let Some((usd, _)) = first_tier(doc) {
        slot.0.insert(slot.1.to_string(), usd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(usagetype: &str) -> Value {
        serde_json::json!({"product": {"attributes": {"usagetype": usagetype}}})
    }

    #[test]
    fn usage_types_match_with_or_without_a_region_prefix() {
        assert!(usage_is(&doc("Request"), "Request"));
        assert!(usage_is(&doc("USE2-Request"), "Request"));
        assert!(!usage_is(&doc("USE2-Request-ARM"), "Request"));
        assert!(usage_is(
            &doc("APN1-EBS:VolumeP-IOPS.io2"),
            "EBS:VolumeP-IOPS.io2"
        ));
        assert!(!usage_is(
            &doc("APN1-EBS:VolumeP-IOPS.io2.tier2"),
            "EBS:VolumeP-IOPS.io2"
        ));
        assert!(!usage_is(
            &doc("USE1-Lambda-Provisioned-GB-Second"),
            "GB-Second"
        ));
        assert!(!usage_is(&doc("Lambda-Edge-GB-Second"), "GB-Second"));
    }
}
