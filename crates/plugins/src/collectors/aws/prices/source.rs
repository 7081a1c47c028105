//! The AWS table for `skymeter prices aws show|update`: typed per service (the Price List API
//! is queried per attribute), shown as flat rows in the estimator's key form.

use super::fetch::{fetch_price_list, sdk_config};
use super::table::{PriceTable, RegionPrices};
use skymeter_model::provider::{Provider, AWS};
use skymeter_model::Resource;
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::prices::{
    self, PriceRow, PriceSource, PriceUpdate, SizeOption, UpdateOption,
};
use skymeter_plugin_api::{async_trait, PluginError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The Price List Query API, as a price source.
pub struct AwsPriceSource;

#[async_trait]
impl PriceSource for AwsPriceSource {
    fn provider(&self) -> &'static Provider {
        &AWS
    }
    fn kind(&self) -> &'static str {
        "on-demand"
    }
    fn example_region(&self) -> &'static str {
        "us-east-1"
    }
    fn api(&self) -> &'static str {
        "pricing:GetProducts"
    }
    fn noun(&self) -> &'static str {
        "products"
    }
    fn update_options(&self) -> &'static [UpdateOption] {
        &[UpdateOption::Profile, UpdateOption::EndpointUrl]
    }
    fn update_help(&self) -> &'static str {
        "Calls pricing:GetProducts (the Price List Query API, in us-east-1) for EC2 instances (shared tenancy, no pre-installed software; with their vCPUs and memory), EBS volumes and snapshots, RDS instances and storage, Lambda, S3 Standard, EKS clusters, public IPv4 addresses, NAT gateways and application and network load balancers of each region, every page. The Price List API is free; credentials come from the AWS SDK's default chain (environment, profile, SSO, instance role; --profile picks a profile) and need pricing:GetProducts. --endpoint-url (or AWS_ENDPOINT_URL) points it at an emulator or a proxy."
    }
    fn load(
        &self,
        explicit: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Box<dyn prices::PriceTable>, PluginError> {
        Ok(Box::new(PriceTable::load(explicit, data_dir)?))
    }
    async fn fetch(
        &self,
        req: &PriceUpdate<'_>,
        calls: Arc<ApiCallCounts>,
    ) -> Result<Box<dyn prices::PriceTable>, PluginError> {
        let sdk = sdk_config(req.profile, req.endpoint_url).await;
        let table = fetch_price_list(&sdk, req.regions, &calls, req.progress).await?;
        Ok(Box::new(table))
    }
}

impl prices::PriceTable for PriceTable {
    fn date(&self) -> &str {
        &self.date
    }
    fn currency(&self) -> &str {
        &self.currency
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn regions(&self) -> Vec<String> {
        self.regions.keys().cloned().collect()
    }
    fn rows(&self, region: &str) -> Vec<PriceRow> {
        self.regions.get(region).map(rows).unwrap_or_default()
    }
    fn counts(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        self.regions
            .iter()
            .map(|(region, p)| {
                let c = p.counts();
                let by_kind = [
                    ("ec2", c.ec2),
                    ("ebs", c.ebs),
                    ("rds", c.rds),
                    ("lambda", c.lambda),
                    ("s3", c.s3),
                    ("eks", c.eks),
                    ("vpc", c.vpc),
                    ("elb", c.elb),
                ]
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect();
                (region.clone(), by_kind)
            })
            .collect()
    }
    fn to_json(&self) -> String {
        PriceTable::to_json(self)
    }
    fn retain_regions(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.regions.retain(|r, _| keep(r));
    }
    fn monthly_usd(&self, resource: &Resource) -> Option<f64> {
        super::estimate::monthly_usd(self, resource)
    }
    fn size_options(&self, resource: &Resource) -> Vec<SizeOption> {
        super::estimate::size_options(self, resource)
    }
}

/// Every price of a region as rows, in the estimator's key form.
fn rows(p: &RegionPrices) -> Vec<PriceRow> {
    let mut out = Vec::new();
    let mut row = |key: String, usd: f64, per: &str| {
        out.push(PriceRow {
            key,
            usd,
            per: per.to_string(),
        })
    };
    for (ty, oses) in &p.ec2 {
        for (os, v) in oses {
            row(format!("ec2/{ty}/{os}"), *v, "hour");
        }
    }
    for (ty, v) in &p.ebs.storage_gb_month {
        row(format!("ebs/{ty}/storage"), *v, "GB-month");
    }
    for (ty, tiers) in &p.ebs.iops_month {
        for t in tiers {
            let key = if t.from == 0 {
                format!("ebs/{ty}/iops")
            } else {
                format!("ebs/{ty}/iops from {}", t.from)
            };
            row(key, t.usd, "IOPS-month");
        }
    }
    for (ty, v) in &p.ebs.throughput_mibps_month {
        row(format!("ebs/{ty}/throughput"), *v, "MiB/s-month");
    }
    if let Some(v) = p.ebs.snapshot_gb_month {
        row("ebs/snapshot/standard".into(), v, "GB-month");
    }
    if let Some(v) = p.ebs.snapshot_archive_gb_month {
        row("ebs/snapshot/archive".into(), v, "GB-month");
    }
    for (class, engines) in &p.rds.instance_hour {
        for (engine, d) in engines {
            for (dep, v) in [("single_az", d.single_az), ("multi_az", d.multi_az)] {
                if let Some(v) = v {
                    row(format!("rds/{class}/{engine}/{dep}"), v, "hour");
                }
            }
        }
    }
    for (ty, d) in &p.rds.storage_gb_month {
        for (dep, v) in [("single_az", d.single_az), ("multi_az", d.multi_az)] {
            if let Some(v) = v {
                row(format!("rds/storage/{ty}/{dep}"), v, "GB-month");
            }
        }
    }
    for (arch, v) in &p.lambda.gb_second {
        row(format!("lambda/{arch}/gb_second"), *v, "GB-second");
    }
    for (arch, v) in &p.lambda.request {
        row(format!("lambda/{arch}/request"), *v, "request");
    }
    if let Some(v) = p.s3.standard_gb_month {
        row("s3/standard".into(), v, "GB-month");
    }
    if let Some(v) = p.eks.cluster_hour {
        row("eks/cluster".into(), v, "hour");
    }
    if let Some(v) = p.vpc.public_ipv4_hour {
        row("vpc/public_ipv4".into(), v, "hour");
    }
    if let Some(v) = p.vpc.nat_gateway_hour {
        row("vpc/nat_gateway".into(), v, "hour");
    }
    if let Some(v) = p.vpc.nat_gateway_gb {
        row("vpc/nat_gateway/data".into(), v, "GB");
    }
    for (key, v, per) in [
        ("elb/alb", p.elb.alb_hour, "hour"),
        ("elb/alb/lcu", p.elb.alb_lcu_hour, "LCU-hour"),
        ("elb/nlb", p.elb.nlb_hour, "hour"),
        ("elb/nlb/lcu", p.elb.nlb_lcu_hour, "NLCU-hour"),
    ] {
        if let Some(v) = v {
            row(key.into(), v, per);
        }
    }
    out
}
