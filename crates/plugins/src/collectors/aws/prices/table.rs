//! The price table: on-demand list prices per region, shipped with skymeter or fetched by
//! `skymeter prices aws update`, and how a table is found and checked.

use serde::{Deserialize, Serialize};
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The table compiled into skymeter (see `prices.json` and its `source`).
const SHIPPED: &str = include_str!("prices.json");

/// On-demand list prices, per region. Serialized as JSON (`prices.json`, `<data_dir>/prices/aws.json`).
/// A price that is not in the table is absent, never zero or guessed: the estimator reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// `YYYY-MM-DD`: when the prices were read. Cost lines carry it as `x_price_date`.
    pub date: String,
    /// Always `USD`: the Price List API's currency.
    pub currency: String,
    /// Where the prices come from.
    pub source: String,
    /// Region code (`us-east-1`) → its prices.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionPrices>,
    /// vCPUs and memory of EC2 instance types, the same in every region: what rightsizing
    /// compares a type's capacity with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ec2_specs: BTreeMap<String, InstanceSpec>,
}

/// The capacity of one EC2 instance type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// Default vCPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
}

/// The prices of one region. Every section may be empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPrices {
    /// EC2 on-demand USD per hour, shared tenancy, no pre-installed software:
    /// instance type → operating system (the Price List's `operatingSystem`: `Linux`,
    /// `Windows`, `RHEL`, `SUSE`, `Red Hat Enterprise Linux with HA`, `Ubuntu Pro`) → price.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ec2: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "EbsPrices::is_empty")]
    pub ebs: EbsPrices,
    #[serde(default, skip_serializing_if = "RdsPrices::is_empty")]
    pub rds: RdsPrices,
    #[serde(default, skip_serializing_if = "LambdaPrices::is_empty")]
    pub lambda: LambdaPrices,
    #[serde(default, skip_serializing_if = "S3Prices::is_empty")]
    pub s3: S3Prices,
    #[serde(default, skip_serializing_if = "EksPrices::is_empty")]
    pub eks: EksPrices,
    #[serde(default, skip_serializing_if = "VpcPrices::is_empty")]
    pub vpc: VpcPrices,
    #[serde(default, skip_serializing_if = "ElbPrices::is_empty")]
    pub elb: ElbPrices,
}

/// EBS volumes, by EC2 API volume type (`gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1`, `standard`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbsPrices {
    /// USD per GB-month of provisioned size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_gb_month: BTreeMap<String, f64>,
    /// USD per provisioned IOPS-month, in tiers: io1/io2 charge every provisioned IOPS,
    /// gp3 those above its free 3,000 (the estimator applies the baseline).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub iops_month: BTreeMap<String, Vec<Tier>>,
    /// USD per MiB/s-month of provisioned throughput (gp3: above its free 125 MiB/s).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throughput_mibps_month: BTreeMap<String, f64>,
    /// USD per GB-month of snapshot data in the standard tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_gb_month: Option<f64>,
    /// USD per GB-month of snapshot data in the archive tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_archive_gb_month: Option<f64>,
}

/// One tier of a tiered price: `usd` per unit for the units from `from` (inclusive) up to
/// the next tier's `from`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub from: u64,
    pub usd: f64,
}

/// RDS DB instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsPrices {
    /// USD per hour: instance class (`db.m5.large`) → RDS API engine name (`mysql`,
    /// `postgres`, `mariadb`, `aurora-mysql`, `aurora-postgresql`, `oracle-se2` licence
    /// included, `oracle-ee` bring your own licence, `sqlserver-ex|web|se|ee` licence
    /// included) → deployment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_hour: BTreeMap<String, BTreeMap<String, Deployments>>,
    /// USD per GB-month: storage type (`gp2`, `gp3`, `io1`, `io2`, `standard`) → deployment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_gb_month: BTreeMap<String, Deployments>,
}

/// A price for Single-AZ and one for Multi-AZ deployments, either may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployments {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_az: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<f64>,
}

impl Deployments {
    pub fn get(&self, multi_az: bool) -> Option<f64> {
        if multi_az {
            self.multi_az
        } else {
            self.single_az
        }
    }
}

/// Lambda, by architecture (`x86_64`, `arm64`): the first tier of duration and requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaPrices {
    /// USD per GB-second of duration (first monthly tier).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gb_second: BTreeMap<String, f64>,
    /// USD per request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request: BTreeMap<String, f64>,
}

/// S3.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Prices {
    /// USD per GB-month of S3 Standard storage, first tier (the first 50 TB of a month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_gb_month: Option<f64>,
}

/// EKS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EksPrices {
    /// USD per cluster-hour of a control plane in standard support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_hour: Option<f64>,
}

/// VPC: public IPv4 addresses and NAT gateways.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcPrices {
    /// USD per hour of a public IPv4 address, in use or idle (charged since 2024-02-01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ipv4_hour: Option<f64>,
    /// USD per hour of a NAT gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_hour: Option<f64>,
    /// USD per GB a NAT gateway processes (both directions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_gb: Option<f64>,
}

/// Elastic Load Balancing (ELBv2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElbPrices {
    /// USD per hour of an application load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alb_hour: Option<f64>,
    /// USD per LCU-hour of an application load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alb_lcu_hour: Option<f64>,
    /// USD per hour of a network load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlb_hour: Option<f64>,
    /// USD per NLCU-hour of a network load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlb_lcu_hour: Option<f64>,
}

impl EbsPrices {
    pub fn is_empty(&self) -> bool {
        self.storage_gb_month.is_empty()
            && self.iops_month.is_empty()
            && self.throughput_mibps_month.is_empty()
            && self.snapshot_gb_month.is_none()
            && self.snapshot_archive_gb_month.is_none()
    }
}
impl VpcPrices {
    pub fn is_empty(&self) -> bool {
        self.public_ipv4_hour.is_none()
            && self.nat_gateway_hour.is_none()
            && self.nat_gateway_gb.is_none()
    }
    /// (field name, value) of every price.
    pub fn fields(&self) -> [(&'static str, Option<f64>); 3] {
        [
            ("public_ipv4_hour", self.public_ipv4_hour),
            ("nat_gateway_hour", self.nat_gateway_hour),
            ("nat_gateway_gb", self.nat_gateway_gb),
        ]
    }
}
impl ElbPrices {
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }
    /// (field name, value) of every price.
    pub fn fields(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("alb_hour", self.alb_hour),
            ("alb_lcu_hour", self.alb_lcu_hour),
            ("nlb_hour", self.nlb_hour),
            ("nlb_lcu_hour", self.nlb_lcu_hour),
        ]
    }
}
impl RdsPrices {
    pub fn is_empty(&self) -> bool {
        self.instance_hour.is_empty() && self.storage_gb_month.is_empty()
    }
}
impl LambdaPrices {
    pub fn is_empty(&self) -> bool {
        self.gb_second.is_empty() && self.request.is_empty()
    }
}
impl S3Prices {
    pub fn is_empty(&self) -> bool {
        self.standard_gb_month.is_none()
    }
}
impl EksPrices {
    pub fn is_empty(&self) -> bool {
        self.cluster_hour.is_none()
    }
}

/// Where `prices update` writes and `load` looks: `<data_dir>/prices/aws.json`.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("prices").join("aws.json")
}

/// Prices per kind, as the summaries show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PriceCounts {
    pub ec2: usize,
    pub ebs: usize,
    pub rds: usize,
    pub lambda: usize,
    pub s3: usize,
    pub eks: usize,
    pub vpc: usize,
    pub elb: usize,
}

impl PriceCounts {
    pub fn total(&self) -> usize {
        self.ec2 + self.ebs + self.rds + self.lambda + self.s3 + self.eks + self.vpc + self.elb
    }
}

impl RegionPrices {
    pub fn counts(&self) -> PriceCounts {
        let deployments =
            |d: &Deployments| d.single_az.is_some() as usize + d.multi_az.is_some() as usize;
        PriceCounts {
            ec2: self.ec2.values().map(BTreeMap::len).sum(),
            ebs: self.ebs.storage_gb_month.len()
                + self.ebs.iops_month.values().map(Vec::len).sum::<usize>()
                + self.ebs.throughput_mibps_month.len()
                + self.ebs.snapshot_gb_month.is_some() as usize
                + self.ebs.snapshot_archive_gb_month.is_some() as usize,
            rds: self
                .rds
                .instance_hour
                .values()
                .flat_map(BTreeMap::values)
                .map(deployments)
                .sum::<usize>()
                + self
                    .rds
                    .storage_gb_month
                    .values()
                    .map(deployments)
                    .sum::<usize>(),
            lambda: self.lambda.gb_second.len() + self.lambda.request.len(),
            s3: self.s3.standard_gb_month.is_some() as usize,
            eks: self.eks.cluster_hour.is_some() as usize,
            vpc: self
                .vpc
                .fields()
                .iter()
                .filter(|(_, v)| v.is_some())
                .count(),
            elb: self
                .elb
                .fields()
                .iter()
                .filter(|(_, v)| v.is_some())
                .count(),
        }
    }
}

impl PriceTable {
    /// The table compiled into skymeter.
    pub fn shipped() -> PriceTable {
        // A unit test parses and validates the embedded file, so this cannot fail at run time.
        serde_json::from_str(SHIPPED).expect("the shipped prices.json is a valid price table")
    }

    /// Reads and checks a table written by `skymeter prices aws update` (or by hand).
    pub fn from_file(path: &Path) -> Result<PriceTable, PluginError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PluginError::new(
                ErrorKind::Config,
                format!("cannot read the AWS price table {shown}: {e}"),
            )
            .with("file", shown.to_string())
        })?;
        let table: PriceTable = serde_json::from_str(&text).map_err(|e| {
            PluginError::new(
                ErrorKind::Config,
                format!(
                    "the AWS price table {shown} is not a price table: {e}; write a new one with `skymeter prices aws update --output {shown}`"
                ),
            )
            .with("file", shown.to_string())
        })?;
        table.validate().map_err(|what| {
            PluginError::new(
                ErrorKind::Config,
                format!("the AWS price table {shown} is wrong: {what}"),
            )
            .with("file", shown.to_string())
        })?;
        Ok(table)
    }

    /// The table to use: `explicit` when given, else `<data_dir>/prices/aws.json` when it
    /// exists, else the shipped one.
    pub fn load(explicit: Option<&Path>, data_dir: &Path) -> Result<PriceTable, PluginError> {
        if let Some(p) = explicit {
            return PriceTable::from_file(p);
        }
        let fetched = default_path(data_dir);
        if fetched.exists() {
            return PriceTable::from_file(&fetched);
        }
        Ok(PriceTable::shipped())
    }

    /// What serde cannot check: the date's form, the currency, and that every price is a
    /// finite number ≥ 0 with tiers in increasing order. Says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if chrono::NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").is_err() {
            return Err(format!("`date` is \"{}\", not YYYY-MM-DD", self.date));
        }
        if self.currency != "USD" {
            return Err(format!(
                "`currency` is \"{}\"; skymeter's tables are in USD",
                self.currency
            ));
        }
        let check = |path: String, v: f64| -> Result<(), String> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "`{path}` is {v}, not a price (a finite number ≥ 0)"
                ))
            }
        };
        for (region, p) in &self.regions {
            let at = |s: &str| format!("regions.{region}.{s}");
            for (ty, oses) in &p.ec2 {
                for (os, v) in oses {
                    check(at(&format!("ec2.{ty}.{os}")), *v)?;
                }
            }
            for (ty, v) in &p.ebs.storage_gb_month {
                check(at(&format!("ebs.storage_gb_month.{ty}")), *v)?;
            }
            for (ty, tiers) in &p.ebs.iops_month {
                let path = at(&format!("ebs.iops_month.{ty}"));
                if tiers.is_empty() {
                    return Err(format!("`{path}` has no tier"));
                }
                if tiers[0].from != 0 {
                    return Err(format!("`{path}` must start with a tier `from: 0`"));
                }
                for (i, t) in tiers.iter().enumerate() {
                    check(format!("{path}[{i}].usd"), t.usd)?;
                    if i > 0 && t.from <= tiers[i - 1].from {
                        return Err(format!(
                            "`{path}[{i}].from` is not above the tier before it"
                        ));
                    }
                }
            }
            for (ty, v) in &p.ebs.throughput_mibps_month {
                check(at(&format!("ebs.throughput_mibps_month.{ty}")), *v)?;
            }
            if let Some(v) = p.ebs.snapshot_gb_month {
                check(at("ebs.snapshot_gb_month"), v)?;
            }
            if let Some(v) = p.ebs.snapshot_archive_gb_month {
                check(at("ebs.snapshot_archive_gb_month"), v)?;
            }
            for (name, v) in p.vpc.fields() {
                if let Some(v) = v {
                    check(at(&format!("vpc.{name}")), v)?;
                }
            }
            for (name, v) in p.elb.fields() {
                if let Some(v) = v {
                    check(at(&format!("elb.{name}")), v)?;
                }
            }
            for (class, engines) in &p.rds.instance_hour {
                for (engine, d) in engines {
                    let path = at(&format!("rds.instance_hour.{class}.{engine}"));
                    check_deployments(&path, d, check)?;
                }
            }
            for (ty, d) in &p.rds.storage_gb_month {
                check_deployments(&at(&format!("rds.storage_gb_month.{ty}")), d, check)?;
            }
            for (arch, v) in &p.lambda.gb_second {
                check(at(&format!("lambda.gb_second.{arch}")), *v)?;
            }
            for (arch, v) in &p.lambda.request {
                check(at(&format!("lambda.request.{arch}")), *v)?;
            }
            if let Some(v) = p.s3.standard_gb_month {
                check(at("s3.standard_gb_month"), v)?;
            }
            if let Some(v) = p.eks.cluster_hour {
                check(at("eks.cluster_hour"), v)?;
            }
        }
        for (ty, spec) in &self.ec2_specs {
            if spec.vcpus == 0 || spec.memory_mib == 0 {
                return Err(format!(
                    "`ec2_specs.{ty}` has {} vCPUs and {} MiB: both must be above 0",
                    spec.vcpus, spec.memory_mib
                ));
            }
        }
        Ok(())
    }

    /// Prices per kind over every region.
    pub fn counts(&self) -> PriceCounts {
        self.regions
            .values()
            .map(RegionPrices::counts)
            .fold(PriceCounts::default(), |a, c| PriceCounts {
                ec2: a.ec2 + c.ec2,
                ebs: a.ebs + c.ebs,
                rds: a.rds + c.rds,
                lambda: a.lambda + c.lambda,
                s3: a.s3 + c.s3,
                eks: a.eks + c.eks,
                vpc: a.vpc + c.vpc,
                elb: a.elb + c.elb,
            })
    }

    /// Pretty JSON, keys in order, ending with a newline: the file format.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

fn check_deployments(
    path: &str,
    d: &Deployments,
    check: impl Fn(String, f64) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(v) = d.single_az {
        check(format!("{path}.single_az"), v)?;
    }
    if let Some(v) = d.multi_az {
        check(format!("{path}.multi_az"), v)?;
    }
    Ok(())
}

/// The Price List `operatingSystem` of an EC2 `PlatformDetails` string, for the platforms
/// the table prices (no pre-installed software, licence included). `None` for platforms it
/// does not (`Windows with SQL Server …`, `Linux with SQL Server …`, `Windows BYOL`, …).
pub fn operating_system(platform_details: &str) -> Option<&'static str> {
    Some(match platform_details {
        "Linux/UNIX" | "" => "Linux",
        "Windows" => "Windows",
        "Red Hat Enterprise Linux" => "RHEL",
        "SUSE Linux" => "SUSE",
        "Red Hat Enterprise Linux with HA" => "Red Hat Enterprise Linux with HA",
        "Ubuntu Pro" => "Ubuntu Pro",
        _ => return None,
    })
}

/// The operating systems the table may hold, in the order summaries list them.
pub const OPERATING_SYSTEMS: [&str; 6] = [
    "Linux",
    "Windows",
    "RHEL",
    "SUSE",
    "Red Hat Enterprise Linux with HA",
    "Ubuntu Pro",
];
