//! `aws`: inventory of EC2, EBS, RDS, Lambda, S3 and EKS (every page of every list),
//! their metrics from CloudWatch `GetMetricData` only (500 queries per call, the API maximum;
//! DESIGN §4), and cost: estimated from price tables, billed from Cost Explorer.
//!
//! Credentials come from the AWS SDK's default chain (environment, shared profile, SSO,
//! IMDS, web identity); `profile`, `accounts[].profile` and `accounts[].assume_role`
//! override. Every account × region pair is collected concurrently, at most `max_targets`
//! at once; within a pair, GetMetricData calls are bounded by `max_concurrency` and the
//! per-resource Describe calls by `api_concurrency`. Throttling is retried by the SDK's
//! standard retry mode (exponential backoff with full jitter).

use crate::common::cloud_config;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Point, Resource, ResourceRef, SmolStr, Stat, Unit};
use skymeter_plugin::config::DurationStr;
use skymeter_plugin::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub mod billing;
pub mod calls;
pub mod catalog;
pub mod errors;
pub mod inventory;
pub mod metrics;
#[cfg(test)]
mod moto_server;
pub mod pricing;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use calls::ApiCalls;
use catalog::{CwMetric, Service, CATALOG};
use errors::api_error;
pub use metrics::{metric_window, MetricWindow, MAX_QUERIES_PER_CALL};

/// `[[task]] collect = [{ plugin = "aws", ... }]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Regions to collect; `["*"]` = every region enabled for the account (DescribeRegions).
    /// Default: the region of the SDK's chain (`AWS_REGION`, the profile's `region`, IMDS).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Shared-config profile to take credentials and region from. Default: the SDK's chain
    /// (`AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Accounts to collect, each with its own credentials. Default: the one account of the
    /// default credentials.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Endpoint override for every AWS API (an emulator such as moto). The SDK also honours
    /// `AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Services to collect: any of ec2, ebs, rds, lambda, s3, eks. Default: all.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// EC2 CloudWatch metrics to ask for (CloudWatch names, e.g. "CPUUtilization",
    /// "EBSReadBytes", "mem_used_percent"). Default: all of the catalog. Each one is one
    /// billed CloudWatch metric per instance and stat.
    #[serde(default)]
    pub ec2_metrics: Option<Vec<String>>,
    /// CloudWatch period. Default 300s (EC2 basic monitoring); a multiple of 60s.
    #[serde(default = "default_period")]
    pub period: DurationStr,
    /// How far behind the collection's end the last period asked for ends. Default 300s:
    /// CloudWatch publishes EC2 data minutes late (basic monitoring every 5 minutes), so the
    /// newest period would often be missing or partial, and a period skipped once is never
    /// emitted later. "0s" reads the newest period at once (emulators, detailed monitoring).
    #[serde(default = "default_delay")]
    pub delay: DurationStr,
    /// Statistics: any of avg, max, min, sum, count, p95. Default ["avg", "max"]. Each one is
    /// one billed CloudWatch metric per resource and metric.
    #[serde(default = "default_stats")]
    pub stats: Vec<String>,
    /// Only resources with all these tags (`tags = { env = "prod" }`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// GetMetricData calls in flight at once, per account and region. Default 8.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Per-resource Describe/List calls (EKS clusters and node groups, Lambda and S3 tags,
    /// bucket locations) in flight at once, per account and region. Default 4.
    #[serde(default = "default_api_concurrency")]
    pub api_concurrency: usize,
    /// Account × region pairs collected at once. Default 8.
    #[serde(default = "default_max_targets")]
    pub max_targets: usize,
    /// Seconds between two CloudWatch samples of the instances (300 with basic monitoring, 60
    /// with detailed): max/min/p95 of a counter metric (bytes, packets, ops) are divided by
    /// it to give a per-second rate. Default 300s.
    #[serde(default = "default_period")]
    pub sample_interval: DurationStr,
    /// Tries per AWS call (the first included), with the SDK's jittered exponential backoff
    /// on throttling and 5xx. Default 5.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Cost sources: "estimated" (price tables × usage, every collection) and/or "billed"
    /// (Cost Explorer, at most every `billed_every`). Default ["estimated"].
    #[serde(default = "default_cost")]
    pub cost: Vec<String>,
    /// Billed: also read costs per resource (GetCostAndUsageWithResources; the last 14 days
    /// only, and it must be enabled in the Cost Explorer settings). Default false.
    #[serde(default)]
    pub resource_costs: bool,
    /// Billed: the days read each time, today included (Cost Explorer revises recent days;
    /// the server replaces the lines it already has). Default 3.
    #[serde(default = "default_billed_days")]
    pub billed_days: u32,
    /// Billed: the least time between two Cost Explorer reads (each request costs USD 0.01).
    /// Default 6h.
    #[serde(default = "default_billed_every")]
    pub billed_every: DurationStr,
    /// Estimated: a price table file (`skymeter prices aws update` writes one). Default:
    /// `<data_dir>/prices/aws.json` when it exists, else the table shipped in the binary.
    #[serde(default)]
    pub prices_file: Option<String>,
    /// Discover, then report the plan (API calls per API, CloudWatch metrics requested,
    /// their estimated cost) as self-metrics, without calling GetMetricData or Cost
    /// Explorer. `skymeter collect aws --dry-run` sets it.
    #[serde(default)]
    pub dry_run: bool,
}

/// `accounts = [{ id = "...", assume_role = { role_arn = "..." } }]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The 12-digit account id. Default: asked with STS GetCallerIdentity.
    #[serde(default)]
    pub id: Option<String>,
    /// Profile whose credentials reach this account (before `assume_role`). Default: the
    /// collector's `profile`, else the default chain.
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume in this account with STS AssumeRole.
    #[serde(default)]
    pub assume_role: Option<AssumeRoleConfig>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleConfig {
    /// `arn:aws:iam::123456789012:role/skymeter-read`.
    pub role_arn: String,
    /// The external id the role's trust policy requires, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Session name shown in CloudTrail. Default "skymeter".
    #[serde(default)]
    pub session_name: Option<String>,
}

fn default_period() -> DurationStr {
    DurationStr(Duration::from_secs(300))
}
fn default_delay() -> DurationStr {
    DurationStr(Duration::from_secs(300))
}
fn default_stats() -> Vec<String> {
    vec!["avg".into(), "max".into()]
}
fn default_max_concurrency() -> usize {
    8
}
fn default_api_concurrency() -> usize {
    4
}
fn default_max_targets() -> usize {
    8
}
fn default_attempts() -> u32 {
    5
}
fn default_cost() -> Vec<String> {
    vec!["estimated".into()]
}
fn default_billed_days() -> u32 {
    3
}
fn default_billed_every() -> DurationStr {
    DurationStr(Duration::from_secs(6 * 3600))
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "aws",
            kind: PluginKind::Collector,
            summary: "AWS inventory (EC2, EBS, RDS, Lambda, S3, EKS), CloudWatch metrics (GetMetricData, 500 queries per call) and cost (estimated, Cost Explorer)",
            config_schema: PluginDescription::schema_of::<AwsConfig>,
            metrics,
        },
        build,
    }
}

/// The self-metrics every collection emits (labels in brackets).
/// The most days one billed read reaches back when it fills a window missed during downtime
/// (Cost Explorer keeps 14 months at daily granularity; a year bounds the read).
const BILLED_DAYS_MAX: u32 = 365;

pub const SELF_METRICS: [(&str, Unit, &str); 4] = [
    (
        "aws.api_calls",
        Unit::Count,
        "AWS API calls made by this collection [api].",
    ),
    (
        "aws.planned_calls",
        Unit::Count,
        "AWS API calls a dry run made (discovery) or plans (GetMetricData) [api].",
    ),
    (
        "aws.cloudwatch_metrics_requested",
        Unit::Count,
        "CloudWatch metrics requested through GetMetricData, the unit CloudWatch bills.",
    ),
    (
        "aws.collection_cost",
        Unit::Usd,
        "What the collection's own API calls cost at list price (GetMetricData per metric, Cost Explorer per request).",
    ),
];

fn metrics() -> Vec<MetricInfo> {
    let mut out: Vec<MetricInfo> = Vec::new();
    for m in &CATALOG {
        if out.iter().any(|o| o.name == m.name) {
            continue;
        }
        let same: Vec<&CwMetric> = CATALOG.iter().filter(|o| o.name == m.name).collect();
        let sources: Vec<String> = same
            .iter()
            .map(|o| format!("{} {}", o.namespace, o.cloudwatch))
            .collect();
        let stats = match m.shape {
            catalog::Shape::Total => vec![Stat::Sum],
            catalog::Shape::Daily => vec![Stat::Avg],
            _ => vec![
                Stat::Avg,
                Stat::Max,
                Stat::Min,
                Stat::Sum,
                Stat::Count,
                Stat::P95,
            ],
        };
        let mut labels = Vec::new();
        if same.iter().any(|o| o.source.is_some()) {
            labels.push("source");
        }
        if same.iter().any(|o| !o.fixed.is_empty()) {
            labels.push("storage_type");
        }
        out.push(MetricInfo {
            name: m.name.into(),
            unit: m.unit,
            stats,
            labels,
            source: format!("CloudWatch {}", sources.join(", ")),
            description: skymeter_model::catalog::lookup(m.name)
                .map(|c| c.description.to_string())
                .unwrap_or_default(),
        });
    }
    for (name, unit, description) in SELF_METRICS {
        out.push(MetricInfo {
            name: name.into(),
            unit,
            stats: vec![Stat::Last],
            labels: if name.ends_with("calls") {
                vec!["api"]
            } else {
                vec![]
            },
            source: "skymeter aws collector".into(),
            description: description.into(),
        });
    }
    out
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let mut aws = Aws::from_raw(raw)?;
    aws.data_dir = ctx.data_dir.clone();
    Ok(Box::new(aws))
}

/// The checked config, shared with the account × region tasks.
struct Shared {
    cfg: AwsConfig,
    stats: Vec<Stat>,
    services: BTreeSet<Service>,
    /// EC2 CloudWatch names asked for.
    ec2_metrics: BTreeSet<&'static str>,
    /// Newest daily (S3) value emitted per (account, bucket, metric), so that a daily value
    /// is emitted once although every collection reads the last three days.
    daily_emitted: Mutex<HashMap<(String, SmolStr, &'static str), i64>>,
}

impl Aws {
    /// Decodes and checks the config.
    pub fn from_raw(raw: &RawConfig<'_>) -> Result<Aws, ConfigError> {
        let cfg: AwsConfig = raw.decode()?;
        let period = cfg.period.0.as_secs();
        if period == 0 || !period.is_multiple_of(60) || cfg.period.0.subsec_nanos() != 0 {
            return Err(raw.error(
            "period",
            "must be a whole number of minutes (CloudWatch periods are multiples of 60s), e.g. \"300s\"",
        ));
        }
        if cfg.sample_interval.0.as_secs() == 0 {
            return Err(raw.error("sample_interval", "must be at least 1s, e.g. \"60s\""));
        }
        let stats = cloud_config::parse_stats(
            raw,
            &cfg.stats,
            &[
                Stat::Avg,
                Stat::Max,
                Stat::Min,
                Stat::Sum,
                Stat::Count,
                Stat::P95,
            ],
        )?;
        cloud_config::at_least_one(
            raw,
            &[
                ("max_concurrency", cfg.max_concurrency),
                ("api_concurrency", cfg.api_concurrency),
                ("max_targets", cfg.max_targets),
                ("max_attempts", cfg.max_attempts as usize),
            ],
        )?;
        if let Some(u) = &cfg.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(raw.error("endpoint_url", "must start with http:// or https://"));
            }
        }
        if cfg.regions.iter().any(|r| r == "*") && cfg.regions.len() > 1 {
            return Err(raw.error(
                "regions",
                "\"*\" (every enabled region) stands alone; list regions or write [\"*\"]",
            ));
        }
        if let Some(r) = cfg.regions.iter().find(|r| {
            *r != "*"
                && (r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        }) {
            return Err(raw.error(
                "regions",
                format!("\"{r}\" is not a region code; write codes such as \"us-east-1\""),
            ));
        }
        let services: BTreeSet<Service> = match &cfg.services {
            None => Service::ALL.into_iter().collect(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for s in list {
                    match Service::parse(s) {
                        Some(v) => {
                            set.insert(v);
                        }
                        None => {
                            return Err(raw.error(
                                "services",
                                format!(
                                    "unknown service \"{s}\"; allowed: {}",
                                    Service::ALL.map(Service::name).join(", ")
                                ),
                            ))
                        }
                    }
                }
                if set.is_empty() {
                    return Err(raw.error("services", "list at least one service"));
                }
                set
            }
        };
        let known = catalog::ec2_names();
        let ec2_metrics: BTreeSet<&'static str> = match &cfg.ec2_metrics {
            None => known.iter().copied().collect(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for n in list {
                    match known.iter().find(|k| **k == n.as_str()) {
                        Some(k) => {
                            set.insert(*k);
                        }
                        None => {
                            return Err(raw.error(
                                "ec2_metrics",
                                format!(
                                    "unknown EC2 metric \"{n}\"; allowed (CloudWatch names): {}",
                                    known.join(", ")
                                ),
                            ))
                        }
                    }
                }
                set
            }
        };
        for c in &cfg.cost {
            if c != "estimated" && c != "billed" {
                return Err(raw.error(
                    "cost",
                    format!("unknown cost source \"{c}\"; allowed: estimated, billed"),
                ));
            }
        }
        if cfg.billed_days == 0 {
            return Err(raw.error("billed_days", "must be at least 1"));
        }
        if cfg.resource_costs && cfg.billed_days > billing::RESOURCE_DAYS as u32 {
            return Err(raw.error(
                "billed_days",
                format!(
                    "must be at most {} with resource_costs = true (Cost Explorer keeps resource-level data for 14 days)",
                    billing::RESOURCE_DAYS
                ),
            ));
        }
        for (i, a) in cfg.accounts.iter().enumerate() {
            if let Some(id) = &a.id {
                if id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(raw.error(
                        &format!("accounts[{i}].id"),
                        format!("\"{id}\" is not an AWS account id (12 digits)"),
                    ));
                }
            }
            if let Some(r) = &a.assume_role {
                if !r.role_arn.starts_with("arn:") || !r.role_arn.contains(":role/") {
                    return Err(raw.error(
                        &format!("accounts[{i}].assume_role.role_arn"),
                        "must be a role ARN such as arn:aws:iam::123456789012:role/skymeter-read",
                    ));
                }
            }
        }
        Ok(Aws {
            shared: Arc::new(Shared {
                cfg,
                stats,
                services,
                ec2_metrics,
                daily_emitted: Mutex::new(HashMap::new()),
            }),
            sdk: None,
            accounts: None,
            calls: Arc::new(ApiCalls::default()),
            data_dir: std::env::temp_dir(),
            last_billed: None,
            prices: None,
        })
    }
}

/// One account to collect: its id and the SDK config (credentials) that reaches it.
#[derive(Clone)]
struct Account {
    id: String,
    sdk: SdkConfig,
    /// Regions to collect in it.
    regions: Vec<String>,
}

pub struct Aws {
    shared: Arc<Shared>,
    sdk: Option<SdkConfig>,
    /// Accounts resolved by the first collection that could (credentials, id, regions).
    accounts: Option<Vec<Account>>,
    /// Calls per API of the last collection (all accounts and regions).
    pub calls: Arc<ApiCalls>,
    data_dir: std::path::PathBuf,
    /// When Cost Explorer was last read.
    last_billed: Option<DateTime<Utc>>,
    /// The price table of estimated costs, loaded by the first collection that needs it.
    prices: Option<Arc<pricing::PriceTable>>,
}

impl Aws {
    fn cfg(&self) -> &AwsConfig {
        &self.shared.cfg
    }

    fn loader(&self, profile: Option<&str>) -> aws_config::ConfigLoader {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(self.cfg().max_attempts));
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(u) = &self.cfg().endpoint_url {
            loader = loader.endpoint_url(u);
        }
        loader
    }

    /// The SDK config of the default chain (or `profile`).
    async fn sdk_config(&mut self) -> SdkConfig {
        if let Some(c) = &self.sdk {
            return c.clone();
        }
        let c = self.loader(self.cfg().profile.as_deref()).load().await;
        self.sdk = Some(c.clone());
        c
    }

    /// Resolves the accounts: credentials (profile, assumed role), id (config or STS
    /// GetCallerIdentity) and regions (config, `*` = DescribeRegions, or the chain's).
    async fn resolve_accounts(&mut self, calls: &ApiCalls) -> (Vec<Account>, Vec<PluginError>) {
        if let Some(a) = &self.accounts {
            return (a.clone(), Vec::new());
        }
        let base = self.sdk_config().await;
        let wanted: Vec<AccountConfig> = if self.cfg().accounts.is_empty() {
            vec![AccountConfig {
                id: None,
                profile: None,
                assume_role: None,
            }]
        } else {
            self.cfg().accounts.clone()
        };
        let mut accounts = Vec::new();
        let mut errors = Vec::new();
        for (i, a) in wanted.iter().enumerate() {
            match self.resolve_account(&base, a, calls).await {
                Ok(acc) => accounts.push(acc),
                Err(e) => {
                    let mut e = e;
                    if !self.cfg().accounts.is_empty() {
                        e = e.with("accounts", i.to_string());
                    }
                    errors.push(e)
                }
            }
        }
        if errors.is_empty() {
            self.accounts = Some(accounts.clone());
        }
        (accounts, errors)
    }

    async fn resolve_account(
        &self,
        base: &SdkConfig,
        a: &AccountConfig,
        calls: &ApiCalls,
    ) -> Result<Account, PluginError> {
        let mut sdk = match &a.profile {
            Some(p) => self.loader(Some(p)).load().await,
            None => base.clone(),
        };
        if let Some(role) = &a.assume_role {
            let mut b = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(role.session_name.as_deref().unwrap_or("skymeter"));
            if let Some(x) = &role.external_id {
                b = b.external_id(x);
            }
            if sdk.region().is_none() {
                b = b.region(Region::new("us-east-1"));
            }
            let provider = b.configure(&sdk).build().await;
            sdk = sdk
                .into_builder()
                .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                    provider,
                ))
                .build();
        }
        let home = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        let id = match &a.id {
            Some(id) => id.clone(),
            None => {
                let sts = aws_sdk_sts::Client::new(&sdk);
                calls.count("sts:GetCallerIdentity");
                let who = sts.get_caller_identity().send().await.map_err(|e| {
                    let mut err = api_error("GetCallerIdentity", "sts:GetCallerIdentity", "", &e);
                    if let Some(r) = &a.assume_role {
                        err.message = format!(
                            "{} (while assuming {}: check that the role exists, trusts the caller and, if it asks for one, the external id)",
                            err.message, r.role_arn
                        );
                        err = err.with("role_arn", r.role_arn.as_str());
                    }
                    err
                })?;
                who.account().unwrap_or_default().to_string()
            }
        };
        let regions = if self.cfg().regions.first().map(String::as_str) == Some("*") {
            let ec2 = aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&sdk)
                    .region(Region::new(home.clone()))
                    .build(),
            );
            calls.count("ec2:DescribeRegions");
            let answer = ec2
                .describe_regions()
                .all_regions(false)
                .send()
                .await
                .map_err(|e| {
                    api_error("DescribeRegions", "ec2:DescribeRegions", &home, &e)
                        .with("account", id.as_str())
                })?;
            let mut r: Vec<String> = answer
                .regions()
                .iter()
                .filter_map(|r| r.region_name().map(str::to_string))
                .collect();
            r.sort();
            r
        } else if !self.cfg().regions.is_empty() {
            self.cfg().regions.clone()
        } else {
            match sdk.region() {
                Some(r) => vec![r.to_string()],
                None => {
                    return Err(PluginError::new(
                        ErrorKind::Config,
                        "no AWS region: set `regions` in the plugin's config, AWS_REGION, or `region` in the profile",
                    ))
                }
            }
        };
        Ok(Account { id, sdk, regions })
    }
}

/// What one account × region pair collected.
#[derive(Default)]
struct TargetOutput {
    resources: Vec<Resource>,
    points: Vec<Point>,
    errors: Vec<PluginError>,
    /// Inventory calls that succeeded (false = nothing could be listed).
    listed: bool,
    planned_calls: usize,
    planned_metrics: usize,
}

/// Everything a target task needs besides its account and region.
#[derive(Clone)]
struct TargetJob {
    shared: Arc<Shared>,
    calls: Arc<ApiCalls>,
    metrics: Arc<Vec<&'static CwMetric>>,
    window: MetricWindow,
    daily: MetricWindow,
    now: DateTime<Utc>,
}

impl TargetJob {
    async fn run(self, account: Account, region: String, buckets: Vec<Resource>) -> TargetOutput {
        let sh = &self.shared;
        let cfg = &sh.cfg;
        let sdk = account
            .sdk
            .to_builder()
            .region(Region::new(region.clone()))
            .build();
        let limit = Semaphore::new(cfg.api_concurrency);
        let scope = inventory::Scope {
            account: &account.id,
            region: &region,
            sdk: &sdk,
            calls: &self.calls,
            tags: &cfg.tags,
            limit: &limit,
            now: self.now,
        };
        let mut out = TargetOutput::default();
        let mut ok = 0usize;
        let mut tried = 0usize;
        let mut take = |r: Result<Vec<Resource>, PluginError>, out: &mut TargetOutput| {
            tried += 1;
            match r {
                Ok(v) => {
                    ok += 1;
                    out.resources.extend(v)
                }
                Err(e) => out.errors.push(e.with("account", account.id.as_str())),
            }
        };
        if sh.services.contains(&Service::Ec2) {
            let r = match inventory::ec2_instances(&scope).await {
                Ok(mut v) => {
                    if let Err(e) = inventory::instance_types(&scope, &mut v).await {
                        out.errors.push(e.with("account", account.id.as_str()));
                    }
                    Ok(v)
                }
                Err(e) => Err(e),
            };
            take(r, &mut out);
        }
        if sh.services.contains(&Service::Ebs) {
            take(inventory::ebs_volumes(&scope).await, &mut out);
        }
        if sh.services.contains(&Service::Rds) {
            take(inventory::rds_instances(&scope).await, &mut out);
        }
        if sh.services.contains(&Service::Lambda) {
            take(inventory::lambda_functions(&scope).await, &mut out);
        }
        if sh.services.contains(&Service::Eks) {
            take(inventory::eks_clusters(&scope).await, &mut out);
        }
        out.listed = ok > 0 || (tried == 0 && !buckets.is_empty());
        out.resources.extend(buckets);

        let cw = aws_sdk_cloudwatch::Client::new(&sdk);
        let mut cwagent = HashMap::new();
        let wants_memory = self
            .metrics
            .iter()
            .any(|m| m.namespace == catalog::CWAGENT_MEMORY.namespace);
        if wants_memory && out.resources.iter().any(|r| r.kind == "compute.instance") {
            match metrics::cwagent_dimensions(&cw, &region, &self.calls).await {
                Ok(m) => cwagent = m,
                Err(e) => out.errors.push(e.with("account", account.id.as_str())),
            }
        }
        let plan = metrics::plan(
            &out.resources,
            &metrics::Wanted {
                metrics: self.metrics.to_vec(),
                stats: &sh.stats,
                cwagent: &cwagent,
            },
        );
        out.planned_calls = plan.calls();
        out.planned_metrics = plan.metrics();
        if cfg.dry_run || plan.metrics() == 0 {
            return out;
        }
        let scaling = metrics::Scaling {
            period: cfg.period.0.as_secs() as i64,
            sample_interval: cfg.sample_interval.0.as_secs_f64(),
        };
        let resources = Arc::new(std::mem::take(&mut out.resources));
        let gmd_limit = Arc::new(Semaphore::new(cfg.max_concurrency));
        if !plan.regular.is_empty() {
            let (points, errors) = metrics::fetch(
                &cw,
                &region,
                resources.clone(),
                Arc::new(plan.regular),
                self.window,
                scaling.period,
                scaling,
                gmd_limit.clone(),
                self.calls.clone(),
            )
            .await;
            out.points = points;
            out.errors.extend(
                errors
                    .into_iter()
                    .map(|e| e.with("account", account.id.as_str())),
            );
        }
        if !plan.daily.is_empty() {
            let (points, errors) = metrics::fetch(
                &cw,
                &region,
                resources.clone(),
                Arc::new(plan.daily),
                self.daily,
                metrics::DAY,
                scaling,
                gmd_limit,
                self.calls.clone(),
            )
            .await;
            out.points.extend(self.newest_daily(&account.id, points));
            out.errors.extend(
                errors
                    .into_iter()
                    .map(|e| e.with("account", account.id.as_str())),
            );
        }
        out.resources = Arc::try_unwrap(resources).unwrap_or_else(|a| (*a).clone());
        out
    }

    /// Of daily points, the newest per series that is newer than the last one emitted.
    fn newest_daily(&self, account: &str, points: Vec<Point>) -> Vec<Point> {
        let mut newest: HashMap<(SmolStr, &'static str), Point> = HashMap::new();
        for p in points {
            let name = CATALOG
                .iter()
                .find(|m| m.name == p.metric)
                .map_or("", |m| m.name);
            let key = (p.resource.id.clone(), name);
            match newest.get(&key) {
                Some(q) if q.ts >= p.ts => {}
                _ => {
                    newest.insert(key, p);
                }
            }
        }
        let mut emitted = self
            .shared
            .daily_emitted
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for ((bucket, name), p) in newest {
            let key = (account.to_string(), bucket, name);
            let ts = p.ts.timestamp();
            if emitted.get(&key).is_some_and(|last| *last >= ts) {
                continue;
            }
            emitted.insert(key, ts);
            out.push(p);
        }
        out
    }
}

/// A self-metric point of the collector.
fn self_point(name: &str, unit: Unit, value: f64, at: DateTime<Utc>, api: Option<&str>) -> Point {
    Point {
        metric: name.into(),
        unit,
        stat: Stat::Last,
        period_s: 0,
        ts: at,
        value,
        resource: ResourceRef {
            provider: "aws".into(),
            account: Default::default(),
            region: Default::default(),
            id: "skymeter-aws-collector".into(),
        }
        .into(),
        labels: api
            .map(|a| [("api", a)].into_iter().collect())
            .unwrap_or_default(),
    }
}

impl Aws {
    /// S3 buckets of every account, once per account (ListBuckets is global), keyed by
    /// (account, region).
    async fn buckets(
        &self,
        accounts: &[Account],
        calls: &ApiCalls,
        errors: &mut Vec<PluginError>,
    ) -> (HashMap<(String, String), Vec<Resource>>, BTreeSet<String>) {
        let mut by_target: HashMap<(String, String), Vec<Resource>> = HashMap::new();
        let mut listed = BTreeSet::new();
        if !self.shared.services.contains(&Service::S3) {
            return (by_target, listed);
        }
        for a in accounts {
            let home = a
                .sdk
                .region()
                .map(|r| r.to_string())
                .or_else(|| a.regions.first().cloned())
                .unwrap_or_else(|| "us-east-1".into());
            let sdk = a.sdk.to_builder().region(Region::new(home.clone())).build();
            let limit = Semaphore::new(self.cfg().api_concurrency);
            let scope = inventory::Scope {
                account: &a.id,
                region: &home,
                sdk: &sdk,
                calls,
                tags: &self.cfg().tags,
                limit: &limit,
                now: Utc::now(),
            };
            match inventory::s3_buckets(&scope).await {
                Ok(buckets) => {
                    listed.insert(a.id.clone());
                    for b in buckets {
                        // Buckets in regions not collected are out of scope.
                        if a.regions.contains(&b.region) {
                            by_target
                                .entry((a.id.clone(), b.region.clone()))
                                .or_default()
                                .push(b);
                        }
                    }
                }
                Err(e) => errors.push(e.with("account", a.id.as_str())),
            }
        }
        (by_target, listed)
    }
}

#[async_trait]
impl Collector for Aws {
    /// CloudWatch keeps 15 days of 1-minute and 63 days of 5-minute data, Cost Explorer 14
    /// months, and every window is derived from `req.window`.
    fn reads_history(&self) -> bool {
        true
    }

    /// Resolves credentials, roles and regions once (the SDK's credential chain, STS
    /// `GetCallerIdentity`, `AssumeRole`): the answer is kept, so the first collection's
    /// `timeout` covers collecting only. A failure is retried by the collection.
    async fn warm_up(&mut self, _metrics: &MetricSelection) -> Result<(), PluginError> {
        let calls = ApiCalls::default();
        let (_, errors) = self.resolve_accounts(&calls).await;
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn verify(&mut self) -> Result<(), PluginError> {
        let calls = ApiCalls::default();
        let (accounts, errors) = self.resolve_accounts(&calls).await;
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None if accounts.is_empty() => {
                Err(PluginError::new(ErrorKind::Config, "no account to collect"))
            }
            None => Ok(()),
        }
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let calls = Arc::new(ApiCalls::default());
        self.calls = calls.clone();
        let now = Utc::now();
        let (accounts, account_errors) = self.resolve_accounts(&calls).await;
        let mut first_err = account_errors.first().cloned();
        out.errors.extend(account_errors);

        let (mut buckets, s3_listed) = self.buckets(&accounts, &calls, &mut out.errors).await;
        let sh = self.shared.clone();
        let wanted: Vec<&'static CwMetric> = CATALOG
            .iter()
            .filter(|m| sh.services.contains(&m.service))
            .filter(|m| m.service != Service::Ec2 || sh.ec2_metrics.contains(m.cloudwatch))
            .filter(|m| req.metrics.matches(m.name))
            .collect();
        let period = sh.cfg.period.0.as_secs() as i64;
        let job = TargetJob {
            shared: sh.clone(),
            calls: calls.clone(),
            metrics: Arc::new(wanted),
            window: metric_window(
                req.window.start.timestamp(),
                req.window.end.timestamp(),
                sh.cfg.delay.0.as_secs() as i64,
                period,
            ),
            daily: metrics::daily_window(req.window.end.timestamp()),
            now,
        };
        let targets_limit = Arc::new(Semaphore::new(sh.cfg.max_targets));
        let mut set = tokio::task::JoinSet::new();
        for a in &accounts {
            for region in &a.regions {
                let b = buckets
                    .remove(&(a.id.clone(), region.clone()))
                    .unwrap_or_default();
                let job = job.clone();
                let account = a.clone();
                let region = region.clone();
                let limit = targets_limit.clone();
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    job.run(account, region, b).await
                });
            }
        }
        let mut any_ok = !s3_listed.is_empty();
        let mut planned_calls = 0usize;
        let mut planned_metrics = 0usize;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(t) => {
                    any_ok |= t.listed;
                    if !t.listed {
                        if let Some(e) = t.errors.first() {
                            first_err.get_or_insert_with(|| e.clone());
                        }
                    }
                    planned_calls += t.planned_calls;
                    planned_metrics += t.planned_metrics;
                    out.resources.extend(t.resources);
                    if out.points.is_empty() {
                        out.points = t.points;
                    } else {
                        out.points.extend(t.points);
                    }
                    out.errors.extend(t.errors);
                }
                Err(e) => out.errors.push(PluginError::new(
                    ErrorKind::Other,
                    format!("an account × region task failed: {e}"),
                )),
            }
        }
        // Resources in a stable order: account, region, kind, id.
        out.resources.sort_by(|a, b| {
            (&a.account, &a.region, &a.kind, &a.id).cmp(&(&b.account, &b.region, &b.kind, &b.id))
        });

        self.estimated(req, out);
        self.billed(&accounts, now, req.window.start, &calls, out)
            .await;
        self.self_metrics(req, out, planned_calls, planned_metrics);
        match (any_ok, first_err) {
            (false, Some(e)) => {
                // Nothing collected: the errors already pushed describe every account and
                // region; return the first as the collection's failure.
                out.errors.retain(|x| x.message != e.message);
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

impl Aws {
    /// Estimated cost of the window from the price table: one line per priced part of each
    /// resource. The table is loaded once (`prices_file`, else `<data_dir>/prices/aws.json`,
    /// else the one shipped in the binary); a price missing from it is one error per price.
    fn estimated(&mut self, req: &CollectRequest, out: &mut Output) {
        let cfg = self.cfg();
        if cfg.dry_run || !cfg.cost.iter().any(|c| c == "estimated") {
            return;
        }
        if self.prices.is_none() {
            let explicit = cfg.prices_file.as_deref().map(std::path::Path::new);
            match pricing::PriceTable::load(explicit, &self.data_dir) {
                Ok(t) => self.prices = Some(Arc::new(t)),
                Err(e) => {
                    out.errors.push(e);
                    return;
                }
            }
        }
        let Some(table) = &self.prices else { return };
        let estimate = pricing::estimate(
            table,
            req.window.start,
            req.window.end,
            &out.resources,
            &out.points,
        );
        out.costs.extend(estimate.costs);
        out.errors.extend(estimate.missing);
    }

    /// Billed cost from Cost Explorer, for every account, at most every `billed_every`
    /// (each request costs USD 0.01): the last `billed_days` days, which the store upserts.
    async fn billed(
        &mut self,
        accounts: &[Account],
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        calls: &ApiCalls,
        out: &mut Output,
    ) {
        let cfg = self.cfg();
        if cfg.dry_run || !cfg.cost.iter().any(|c| c == "billed") || accounts.is_empty() {
            return;
        }
        let every = chrono::Duration::from_std(cfg.billed_every.0).unwrap_or_default();
        if self.last_billed.is_some_and(|t| now - t < every) {
            return;
        }
        // A window the runner fills after downtime may start before the days read on
        // every run: reach back to it (Cost Explorer keeps 14 months).
        let days = skymeter_plugin::history::billed_days_covering(
            now,
            window_start,
            cfg.billed_days,
            BILLED_DAYS_MAX,
        );
        let (start, end) = billing::billed_days(now, days);
        let q = billing::BilledQuery {
            start,
            end,
            resource_costs: cfg.resource_costs,
        };
        let mut ok = true;
        for a in accounts {
            let (costs, errors) = billing::billed_costs(&a.sdk, &q, calls).await;
            ok &= errors.is_empty();
            out.costs.extend(costs);
            out.errors
                .extend(errors.into_iter().map(|e| e.with("account", a.id.as_str())));
        }
        if ok {
            self.last_billed = Some(now);
        }
    }

    /// Self-accounting: calls per API, metrics requested and what they cost, in the log and
    /// as points. In a dry run, `aws.planned_calls` carries the GetMetricData calls planned.
    fn self_metrics(
        &self,
        req: &CollectRequest,
        out: &mut Output,
        planned_calls: usize,
        planned_metrics: usize,
    ) {
        let calls = &self.calls;
        let dry = self.cfg().dry_run;
        let metrics_requested = if dry {
            planned_metrics as u64
        } else {
            calls.metrics_requested()
        };
        let cost = if dry {
            planned_metrics as f64 / 1000.0 * calls::GET_METRIC_DATA_USD_PER_1000_METRICS
        } else {
            calls.estimated_cost_usd()
        };
        let snapshot = calls.snapshot();
        tracing::info!(
            target: "skymeter::aws",
            "aws API calls: {}; CloudWatch metrics requested: {metrics_requested}; estimated cost of the collection: USD {cost:.4}{}",
            snapshot.iter().map(|(a, n)| format!("{a}={n}")).collect::<Vec<_>>().join(" "),
            if dry { " (dry run, planned)" } else { "" }
        );
        let at = req.window.end;
        if req.metrics.matches("aws.api_calls") {
            for (api, n) in &snapshot {
                out.points.push(self_point(
                    "aws.api_calls",
                    Unit::Count,
                    *n as f64,
                    at,
                    Some(api),
                ));
            }
        }
        if dry && req.metrics.matches("aws.planned_calls") {
            let mut planned: BTreeMap<&str, u64> = snapshot.iter().copied().collect();
            planned.insert("cloudwatch:GetMetricData", planned_calls as u64);
            for (api, n) in planned {
                out.points.push(self_point(
                    "aws.planned_calls",
                    Unit::Count,
                    n as f64,
                    at,
                    Some(api),
                ));
            }
        }
        if req.metrics.matches("aws.cloudwatch_metrics_requested") {
            out.points.push(self_point(
                "aws.cloudwatch_metrics_requested",
                Unit::Count,
                metrics_requested as f64,
                at,
                None,
            ));
        }
        if req.metrics.matches("aws.collection_cost") {
            out.points
                .push(self_point("aws.collection_cost", Unit::Usd, cost, at, None));
        }
    }
}
