//! Resources and usage points × a price table → FOCUS cost lines (`x_source` = estimated).

use super::table::{operating_system, PriceTable, RegionPrices, Tier};
use crate::common::price_list::{estimated_line, number, text, EstimatedLine};
use chrono::{DateTime, Utc};
use skymeter_model::{Cost, Point, Resource, Stat};
use skymeter_plugin_api::prices::SizeOption;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::{BTreeMap, HashMap};

/// Hours in the month AWS prices monthly quantities (GB-month, IOPS-month) against.
pub use skymeter_plugin_api::prices::HOURS_PER_MONTH;
/// gp3 includes 3,000 IOPS and 125 MiB/s; only what is provisioned above them is charged.
pub const GP3_FREE_IOPS: f64 = 3000.0;
pub const GP3_FREE_THROUGHPUT_MIBPS: f64 = 125.0;

const PROVIDER: &str = skymeter_model::provider::AWS.focus_name;
const EC2: &str = "Amazon Elastic Compute Cloud";
const RDS: &str = "Amazon Relational Database Service";
const LAMBDA: &str = "AWS Lambda";
const S3: &str = "Amazon Simple Storage Service";
const EKS: &str = "Amazon Elastic Kubernetes Service";
const VPC: &str = "Amazon Virtual Private Cloud";
const ELB: &str = "Elastic Load Balancing";
/// Bytes in the GB AWS prices data processing by.
const GB: f64 = (1u64 << 30) as f64;

/// What [`estimate`] found: cost lines, and one error per price the table lacks.
#[derive(Debug, Clone, Default)]
pub struct Estimate {
    pub costs: Vec<Cost>,
    pub missing: Vec<PluginError>,
}

/// Estimates what `resources` cost over `[window_start, window_end)` at `table`'s on-demand
/// prices. Each priced component of a resource is one line (an instance's hours, a volume's
/// GB-months and its provisioned IOPS, a function's GB-seconds and its requests).
///
/// - `compute.instance`: running on-demand instances, hours × the hourly price of (type,
///   operating system), shared tenancy. Spot, Capacity Block and scheduled instances are not
///   priced from on-demand prices and are skipped without an error.
/// - `storage.volume` (any state): size × months, plus io1/io2 IOPS, gp3 IOPS above 3,000
///   and gp3 throughput above 125 MiB/s.
/// - `database.instance`: hours when `available`; allocated storage × months in any state
///   (AWS bills the storage of a stopped instance). Aurora cluster storage is billed per GB
///   used, which the inventory does not tell: not estimated.
/// - `k8s.cluster`: control-plane hours when `ACTIVE`.
/// - `storage.bucket`: the latest `storage.size` StandardStorage point × months.
/// - `function`: Σ over the window's `function.invocations` sums × the same period's
///   `function.duration` average × memory, in GB-seconds, plus the requests.
/// - `storage.snapshot`: size × months at the standard or archive tier's GB-month price.
/// - `network.public_ip`: every Elastic IP, associated or not, hours × the public IPv4 price.
/// - `network.nat_gateway`: hours when `available`, plus the GB of the window's
///   `network.sent_bytes` and `network.received_bytes` sums × the data processing price.
/// - `network.load_balancer`: application and network load balancers' hours when `active`
///   (or `active_impaired`); capacity units (LCU) are not estimated.
///
/// A month is 730 hours. A price absent from the table gives no line and one error per
/// (region, price) in `missing`.
pub fn estimate(
    table: &PriceTable,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    resources: &[Resource],
    points: &[Point],
) -> Estimate {
    let hours = (window_end - window_start).num_milliseconds() as f64 / 3_600_000.0;
    let mut est = Estimator {
        table,
        start: window_start,
        end: window_end,
        hours,
        costs: Vec::new(),
        missing: BTreeMap::new(),
    };
    if hours > 0.0 {
        for r in resources.iter().filter(|r| r.provider == "aws") {
            est.resource(r, points);
        }
    }
    Estimate {
        costs: est.costs,
        missing: est.missing.into_values().collect(),
    }
}

struct Estimator<'a> {
    table: &'a PriceTable,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    hours: f64,
    costs: Vec<Cost>,
    /// (region, price key) → the error, so that a price missing for a thousand resources is
    /// reported once.
    missing: BTreeMap<(String, String), PluginError>,
}

/// One priced component of a resource.
struct Line<'a> {
    resource: &'a Resource,
    service: &'static str,
    category: &'static str,
    /// The price's key in the table (`ec2/m5.large/Linux`); the SkuId is `region/key`.
    key: String,
    quantity: f64,
    unit: &'static str,
}

fn flag(r: &Resource, key: &str) -> bool {
    match r.attributes.get(key) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    }
}

impl<'a> Estimator<'a> {
    fn resource(&mut self, r: &Resource, points: &[Point]) {
        match r.kind.as_str() {
            "compute.instance" => self.instance(r),
            "storage.volume" => self.volume(r),
            "database.instance" => self.database(r),
            "k8s.cluster" => self.cluster(r),
            "storage.bucket" => self.bucket(r, points),
            "function" => self.function(r, points),
            "storage.snapshot" => self.snapshot(r),
            "network.public_ip" => self.public_ip(r),
            "network.nat_gateway" => self.nat_gateway(r, points),
            "network.load_balancer" => self.load_balancer(r),
            _ => {}
        }
    }

    /// The region's prices, or a missing-region error (once per region) and None.
    fn region(&mut self, region: &str) -> Option<&'a RegionPrices> {
        match self.table.regions.get(region) {
            Some(p) => Some(p),
            None => {
                let what = format!("no prices for region {region} at all");
                self.report(region, "region", &what);
                None
            }
        }
    }

    /// Records a price the table lacks; the fix is a newer table with that region.
    fn report(&mut self, region: &str, key: &str, what: &str) {
        let date = &self.table.date;
        let message = format!(
            "the AWS price table of {date} has {what}: costs that need it are not estimated; run `skymeter prices aws update --regions {region}`"
        );
        self.report_with(region, key, message);
    }

    /// Records something the table cannot price whatever its date.
    fn report_with(&mut self, region: &str, key: &str, message: String) {
        self.missing
            .entry((region.to_string(), key.to_string()))
            .or_insert_with(|| {
                PluginError::new(ErrorKind::Config, message)
                    .with("region", region)
                    .with("price", key)
            });
    }

    /// Pushes the line at its table price or, when the table lacks that price, reports it
    /// (`missing` says what is missing).
    fn charge(&mut self, price: Option<f64>, line: Line<'_>, missing: impl FnOnce() -> String) {
        match price {
            Some(price) => self.push(line, price),
            None => {
                let region = line.resource.region.clone();
                self.report(&region, &line.key, &missing());
            }
        }
    }

    fn push(&mut self, l: Line<'_>, price: f64) {
        self.costs.push(estimated_line(
            EstimatedLine {
                provider_name: PROVIDER,
                currency: &self.table.currency,
                price_date: &self.table.date,
                start: self.start,
                end: self.end,
            },
            l.resource,
            l.service,
            l.category,
            &l.key,
            l.quantity,
            l.unit,
            price,
        ));
    }

    fn instance(&mut self, r: &Resource) {
        if text(r, "state") != Some("running") {
            return;
        }
        // Spot instances are billed at the spot price of the moment, Capacity Blocks are
        // paid up front: neither is an on-demand price, so neither is estimated.
        if matches!(
            text(r, "lifecycle"),
            Some("spot" | "capacity-block" | "scheduled")
        ) {
            return;
        }
        let region = r.region.as_str();
        let Some(ty) = text(r, "instance_type") else {
            return;
        };
        let platform = text(r, "platform").unwrap_or("Linux/UNIX");
        if let Some(t) = text(r, "tenancy").filter(|t| *t != "default") {
            self.report_with(
                region,
                &format!("ec2/tenancy/{t}"),
                format!("EC2 instances with tenancy `{t}` are not estimated: the price table holds shared-tenancy prices only (their cost comes from the billed source)"),
            );
            return;
        }
        let Some(os) = operating_system(platform) else {
            self.report_with(
                region,
                &format!("ec2/platform/{platform}"),
                format!("EC2 instances with platform \"{platform}\" are not estimated: the price table holds prices without pre-installed software or BYOL licences only (their cost comes from the billed source)"),
            );
            return;
        };
        let Some(prices) = self.region(region) else {
            return;
        };
        let key = format!("ec2/{ty}/{os}");
        self.charge(
            prices.ec2.get(ty).and_then(|m| m.get(os)).copied(),
            Line {
                resource: r,
                service: EC2,
                category: "Compute",
                key,
                quantity: self.hours,
                unit: "Hrs",
            },
            || format!("no EC2 on-demand price for {ty} ({os}) in {region}"),
        );
    }

    fn volume(&mut self, r: &Resource) {
        let region = r.region.as_str();
        let (Some(ty), Some(size)) = (text(r, "volume_type"), number(r, "size_gib")) else {
            return;
        };
        let Some(prices) = self.region(region) else {
            return;
        };
        let months = self.hours / HOURS_PER_MONTH;
        let key = format!("ebs/{ty}/storage");
        self.charge(
            prices.ebs.storage_gb_month.get(ty).copied(),
            Line {
                resource: r,
                service: EC2,
                category: "Storage",
                key,
                quantity: size * months,
                unit: "GB-Mo",
            },
            || format!("no EBS {ty} storage price per GB-month in {region}"),
        );
        let iops = number(r, "iops").unwrap_or(0.0);
        let charged_iops = match ty {
            "io1" | "io2" => iops,
            "gp3" => (iops - GP3_FREE_IOPS).max(0.0),
            _ => 0.0,
        };
        if charged_iops > 0.0 {
            let key = format!("ebs/{ty}/iops");
            match prices.ebs.iops_month.get(ty) {
                Some(tiers) => {
                    for (n, (price, amount)) in
                        split_tiers(tiers, charged_iops).into_iter().enumerate()
                    {
                        self.push(
                            Line {
                                resource: r,
                                service: EC2,
                                category: "Storage",
                                key: if n == 0 {
                                    key.clone()
                                } else {
                                    format!("{key}/tier{}", n + 1)
                                },
                                quantity: amount * months,
                                unit: "IOPS-Mo",
                            },
                            price,
                        );
                    }
                }
                None => self.report(
                    region,
                    &key,
                    &format!("no EBS {ty} price per provisioned IOPS-month in {region}"),
                ),
            }
        }
        if ty == "gp3" {
            let extra =
                (number(r, "throughput_mibps").unwrap_or(0.0) - GP3_FREE_THROUGHPUT_MIBPS).max(0.0);
            if extra > 0.0 {
                let key = "ebs/gp3/throughput".to_string();
                self.charge(
                    prices.ebs.throughput_mibps_month.get("gp3").copied(),
                    Line {
                        resource: r,
                        service: EC2,
                        category: "Storage",
                        key,
                        quantity: extra * months,
                        unit: "MiBps-Mo",
                    },
                    || format!("no EBS gp3 price per provisioned MiB/s-month in {region}"),
                );
            }
        }
    }

    fn database(&mut self, r: &Resource) {
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        let multi_az = flag(r, "multi_az");
        let deployment = if multi_az { "multi_az" } else { "single_az" };
        if text(r, "status") == Some("available") {
            if let (Some(class), Some(engine)) = (text(r, "instance_class"), text(r, "engine")) {
                let key = format!("rds/{class}/{engine}/{deployment}");
                self.charge(
                    prices
                        .rds
                        .instance_hour
                        .get(class)
                        .and_then(|e| e.get(engine))
                        .and_then(|d| d.get(multi_az)),
                    Line {
                        resource: r,
                        service: RDS,
                        category: "Databases",
                        key,
                        quantity: self.hours,
                        unit: "Hrs",
                    },
                    || {
                        format!(
                            "no RDS price for {class} {engine} {} in {region}",
                            if multi_az { "Multi-AZ" } else { "Single-AZ" }
                        )
                    },
                );
            }
        }
        let storage = text(r, "storage_type").unwrap_or("");
        if storage == "aurora" || storage.is_empty() {
            return;
        }
        let Some(size) = number(r, "allocated_storage_gib").filter(|s| *s > 0.0) else {
            return;
        };
        let key = format!("rds/storage/{storage}/{deployment}");
        self.charge(
            prices
                .rds
                .storage_gb_month
                .get(storage)
                .and_then(|d| d.get(multi_az)),
            Line {
                resource: r,
                service: RDS,
                category: "Databases",
                key,
                quantity: size * self.hours / HOURS_PER_MONTH,
                unit: "GB-Mo",
            },
            || {
                format!(
                    "no RDS {storage} storage price per GB-month ({}) in {region}",
                    if multi_az { "Multi-AZ" } else { "Single-AZ" }
                )
            },
        );
    }

    fn cluster(&mut self, r: &Resource) {
        if text(r, "status") != Some("ACTIVE") {
            return;
        }
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        self.charge(
            prices.eks.cluster_hour,
            Line {
                resource: r,
                service: EKS,
                category: "Compute",
                key: "eks/cluster".into(),
                quantity: self.hours,
                unit: "Hrs",
            },
            || format!("no EKS cluster price per hour in {region}"),
        );
    }

    fn bucket(&mut self, r: &Resource, points: &[Point]) {
        let latest = points
            .iter()
            .filter(|p| {
                p.metric == "storage.size"
                    && p.ts <= self.end
                    && p.labels.get("storage_type").map(String::as_str) == Some("StandardStorage")
                    && belongs_to(p, r)
            })
            .max_by_key(|p| p.ts);
        let Some(size) = latest else {
            return;
        };
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        let gb = size.value / (1u64 << 30) as f64;
        self.charge(
            prices.s3.standard_gb_month,
            Line {
                resource: r,
                service: S3,
                category: "Storage",
                key: "s3/standard".into(),
                quantity: gb * self.hours / HOURS_PER_MONTH,
                unit: "GB-Mo",
            },
            || format!("no S3 Standard storage price per GB-month in {region}"),
        );
    }

    fn function(&mut self, r: &Resource, points: &[Point]) {
        let in_window = |p: &&Point| p.ts > self.start && p.ts <= self.end && belongs_to(p, r);
        let durations: HashMap<(DateTime<Utc>, u32), f64> = points
            .iter()
            .filter(in_window)
            .filter(|p| p.metric == "function.duration" && p.stat == Stat::Avg)
            .map(|p| ((p.ts, p.period_s), p.value))
            .collect();
        let memory_gb = number(r, "memory_mb").unwrap_or(0.0) / 1024.0;
        let (mut requests, mut gb_seconds) = (0.0, 0.0);
        for p in points
            .iter()
            .filter(in_window)
            .filter(|p| p.metric == "function.invocations" && p.stat == Stat::Sum)
        {
            requests += p.value;
            // CloudWatch reports an average Duration for every period with invocations.
            if let Some(ms) = durations.get(&(p.ts, p.period_s)) {
                gb_seconds += p.value * ms / 1000.0 * memory_gb;
            }
        }
        if requests <= 0.0 {
            return;
        }
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        let arch = text(r, "architecture").unwrap_or("x86_64");
        let key = format!("lambda/{arch}/gb_second");
        self.charge(
            prices.lambda.gb_second.get(arch).copied(),
            Line {
                resource: r,
                service: LAMBDA,
                category: "Compute",
                key,
                quantity: gb_seconds,
                unit: "GB-Seconds",
            },
            || format!("no Lambda {arch} price per GB-second in {region}"),
        );
        let key = format!("lambda/{arch}/request");
        self.charge(
            prices.lambda.request.get(arch).copied(),
            Line {
                resource: r,
                service: LAMBDA,
                category: "Compute",
                key,
                quantity: requests,
                unit: "Requests",
            },
            || format!("no Lambda {arch} price per request in {region}"),
        );
    }
}

impl Estimator<'_> {
    fn snapshot(&mut self, r: &Resource) {
        let Some(size) = number(r, "size_gib") else {
            return;
        };
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        let archive = text(r, "storage_tier") == Some("archive");
        let (price, tier) = if archive {
            (prices.ebs.snapshot_archive_gb_month, "archive")
        } else {
            (prices.ebs.snapshot_gb_month, "standard")
        };
        self.charge(
            price,
            Line {
                resource: r,
                service: EC2,
                category: "Storage",
                key: format!("ebs/snapshot/{tier}"),
                quantity: size * self.hours / HOURS_PER_MONTH,
                unit: "GB-Mo",
            },
            || format!("no EBS snapshot price per GB-month ({tier} tier) in {region}"),
        );
    }

    fn public_ip(&mut self, r: &Resource) {
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        self.charge(
            prices.vpc.public_ipv4_hour,
            Line {
                resource: r,
                service: VPC,
                category: "Networking",
                key: "vpc/public_ipv4".into(),
                quantity: self.hours,
                unit: "Hrs",
            },
            || format!("no public IPv4 address price per hour in {region}"),
        );
    }

    fn nat_gateway(&mut self, r: &Resource, points: &[Point]) {
        if text(r, "state") != Some("available") {
            return;
        }
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        self.charge(
            prices.vpc.nat_gateway_hour,
            Line {
                resource: r,
                service: EC2,
                category: "Networking",
                key: "vpc/nat_gateway".into(),
                quantity: self.hours,
                unit: "Hrs",
            },
            || format!("no NAT gateway price per hour in {region}"),
        );
        let bytes: f64 = points
            .iter()
            .filter(|p| {
                (p.metric == "network.sent_bytes" || p.metric == "network.received_bytes")
                    && p.stat == Stat::Sum
                    && p.ts > self.start
                    && p.ts <= self.end
                    && belongs_to(p, r)
            })
            .map(|p| p.value)
            .sum();
        if bytes > 0.0 {
            self.charge(
                prices.vpc.nat_gateway_gb,
                Line {
                    resource: r,
                    service: EC2,
                    category: "Networking",
                    key: "vpc/nat_gateway/data".into(),
                    quantity: bytes / GB,
                    unit: "GB",
                },
                || format!("no NAT gateway data processing price per GB in {region}"),
            );
        }
    }

    fn load_balancer(&mut self, r: &Resource) {
        if !matches!(text(r, "state"), Some("active" | "active_impaired")) {
            return;
        }
        let (name, kind) = match text(r, "lb_type") {
            Some("application") => ("alb", "application"),
            Some("network") => ("nlb", "network"),
            // Gateway load balancers are not in the table.
            _ => return,
        };
        let region = r.region.as_str();
        let Some(prices) = self.region(region) else {
            return;
        };
        let price = if name == "alb" {
            prices.elb.alb_hour
        } else {
            prices.elb.nlb_hour
        };
        self.charge(
            price,
            Line {
                resource: r,
                service: ELB,
                category: "Networking",
                key: format!("elb/{name}"),
                quantity: self.hours,
                unit: "Hrs",
            },
            || format!("no {kind} load balancer price per hour in {region}"),
        );
    }
}

/// The kinds [`monthly_usd`] prices.
const MONTHLY_KINDS: [&str; 7] = [
    "compute.instance",
    "storage.volume",
    "storage.snapshot",
    "network.public_ip",
    "network.nat_gateway",
    "network.load_balancer",
    "database.instance",
];

/// What `resource` costs in a month of [`HOURS_PER_MONTH`] hours at `table`'s list prices, as
/// the estimator prices it when it runs (an instance by type and operating system, a volume
/// by size, IOPS and throughput above the free part, a database by class, engine,
/// deployment and storage, a NAT gateway or load balancer by the hour, no traffic): the
/// resource's own state does not matter (a stopped instance is priced as if it ran). `None`
/// for other kinds, for what the estimator never prices (spot, dedicated, licensed
/// platforms, gateway load balancers) and when any price it needs is missing.
pub fn monthly_usd(table: &PriceTable, resource: &Resource) -> Option<f64> {
    if !MONTHLY_KINDS.contains(&resource.kind.as_str()) || resource.provider != "aws" {
        return None;
    }
    let mut r = resource.clone();
    let running = match r.kind.as_str() {
        "compute.instance" => Some(("state", "running")),
        "database.instance" => Some(("status", "available")),
        "network.nat_gateway" => Some(("state", "available")),
        "network.load_balancer" => Some(("state", "active")),
        _ => None,
    };
    if let Some((k, v)) = running {
        r.attributes.insert(k.into(), v.into());
    }
    let start = DateTime::<Utc>::UNIX_EPOCH;
    let end = start + chrono::Duration::hours(HOURS_PER_MONTH as i64);
    let e = estimate(table, start, end, std::slice::from_ref(&r), &[]);
    if !e.missing.is_empty() || e.costs.is_empty() {
        return None;
    }
    Some(e.costs.iter().map(|c| c.billed_cost).sum())
}

/// The instance types `resource` (a `compute.instance`) could run as: every type of its
/// family (`m5` of `m5.2xlarge`) with a price for the same operating system in its region and
/// a spec in `ec2_specs`, its own type included, cheapest first (then by name). Empty for
/// other kinds, for platforms the table does not price and for regions it does not have.
pub fn size_options(table: &PriceTable, resource: &Resource) -> Vec<SizeOption> {
    if resource.kind != "compute.instance" || resource.provider != "aws" {
        return Vec::new();
    }
    let Some(ty) = text(resource, "instance_type") else {
        return Vec::new();
    };
    let Some((family, _)) = ty.split_once('.') else {
        return Vec::new();
    };
    let Some(os) = operating_system(text(resource, "platform").unwrap_or("Linux/UNIX")) else {
        return Vec::new();
    };
    let Some(prices) = table.regions.get(resource.region.as_str()) else {
        return Vec::new();
    };
    let prefix = format!("{family}.");
    let mut out: Vec<SizeOption> = prices
        .ec2
        .range(prefix.clone()..)
        .take_while(|(name, _)| name.starts_with(&prefix))
        .filter_map(|(name, oses)| {
            let hourly = *oses.get(os)?;
            let spec = table.ec2_specs.get(name)?;
            Some(SizeOption {
                name: name.clone(),
                vcpus: spec.vcpus as f64,
                memory_mib: spec.memory_mib as f64,
                monthly_usd: hourly * HOURS_PER_MONTH,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.monthly_usd
            .total_cmp(&b.monthly_usd)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

fn belongs_to(p: &Point, r: &Resource) -> bool {
    p.resource.provider == r.provider
        && p.resource.id == r.id
        && p.resource.region == r.region
        && p.resource.account == r.account
}

/// `amount` split over `tiers`: (price, units) for each tier it reaches.
fn split_tiers(tiers: &[Tier], amount: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (i, t) in tiers.iter().enumerate() {
        let from = t.from as f64;
        if amount <= from {
            break;
        }
        let to = tiers.get(i + 1).map_or(f64::INFINITY, |n| n.from as f64);
        out.push((t.usd, amount.min(to) - from));
    }
    out
}
