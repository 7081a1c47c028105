//! `aws`: inventory of EC2, EBS (volumes and snapshots), RDS, Lambda, S3, EKS, Elastic IPs,
//! NAT gateways and ELBv2 load balancers (every page of every list),
//! their metrics from CloudWatch `GetMetricData` only (500 queries per call, the API maximum;
//! DESIGN §4), and cost: estimated from price tables, billed from Cost Explorer.
//!
//! Credentials come from the AWS SDK's default chain (environment, shared profile, SSO,
//! IMDS, web identity); `profile`, `accounts[].profile` and `accounts[].assume_role`
//! override. Every account × region pair is collected concurrently, at most `max_targets`
//! at once; within a pair, GetMetricData calls are bounded by `max_concurrency` and the
//! per-resource Describe calls by `api_concurrency`. Throttling is retried by the SDK's
//! standard retry mode (exponential backoff with full jitter).

use crate::cloud::{self, BilledRange, CloudConfig, CloudProvider, CollectContext, Inventory};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Cost, Point, Resource, SmolStr, Stat, Unit};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::prices::PriceSource;
use skymeter_plugin_api::{
    async_trait, ConfigError, ErrorKind, MetricInfo, PluginError, RawConfig,
};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

pub mod billing;
pub mod calls;
pub mod catalog;
pub mod errors;
pub mod inventory;
pub mod metrics;
pub mod prices;
/// moto, the AWS emulator, started for a test (feature `standin`).
#[cfg(any(test, feature = "standin"))]
pub mod standin;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod waste_tests;

use calls::ApiCalls;
use catalog::{CwMetric, Service, CATALOG};
use errors::api_error;
pub use metrics::{metric_window, MetricWindow, MAX_QUERIES_PER_CALL};

/// The aws collector: [`AwsCloud`] driven by the shared cloud collector.
pub type Aws = cloud::CloudCollector<AwsCloud>;

/// The keys only the aws collector has, beside the shared ones (`period`, `delay`, `stats`,
/// `tags`, `max_concurrency` (GetMetricData calls in flight per account and region),
/// `max_attempts`, `cost`, `prices_file`, `billed_days`, `billed_every`, `dry_run`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    /// Services to collect: any of ec2, ebs, rds, lambda, s3, eks, snapshots, eips, nat, elb.
    /// Default: all.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// EC2 CloudWatch metrics to ask for (CloudWatch names, e.g. "CPUUtilization",
    /// "EBSReadBytes", "mem_used_percent"). Default: all of the catalog. Each one is one
    /// billed CloudWatch metric per instance and stat.
    #[serde(default)]
    pub ec2_metrics: Option<Vec<String>>,
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
    #[serde(default = "default_sample_interval")]
    pub sample_interval: DurationStr,
    /// Billed: also read costs per resource (GetCostAndUsageWithResources; the last 14 days
    /// only, and it must be enabled in the Cost Explorer settings). Default false.
    #[serde(default)]
    pub resource_costs: bool,
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

fn default_api_concurrency() -> usize {
    4
}
fn default_max_targets() -> usize {
    8
}
fn default_sample_interval() -> DurationStr {
    DurationStr(Duration::from_secs(300))
}

/// The most days one billed read reaches back when it fills a window missed during downtime
/// (Cost Explorer keeps 14 months at daily granularity; a year bounds the read).
const BILLED_DAYS_MAX: u32 = 365;

/// The self-metrics of the aws collector beyond `aws.api_calls` and `aws.planned_calls`.
pub const METRICS_REQUESTED: &str = "aws.cloudwatch_metrics_requested";
pub const COLLECTION_COST: &str = "aws.collection_cost";

/// One account to collect: its id and the SDK config (credentials) that reaches it.
#[derive(Clone)]
pub struct Account {
    id: String,
    sdk: SdkConfig,
    /// Regions to collect in it.
    regions: Vec<String>,
}

/// A scope of the aws collector: one region of one account.
#[derive(Clone)]
pub struct Target {
    account: Arc<Account>,
    region: String,
}

/// One account's buckets of a collection: listed by the first target that asks; None when
/// the listing failed.
type BucketList = OnceCell<Option<Arc<Vec<Resource>>>>;

/// What one collection shares across its targets.
pub struct Session {
    calls: Arc<ApiCalls>,
    /// S3 buckets of each account, listed once per collection (ListBuckets is global) by
    /// the first of its targets; None when the listing failed.
    buckets: Mutex<HashMap<String, Arc<BucketList>>>,
}

/// Amazon Web Services for the cloud driver.
pub struct AwsCloud {
    own: AwsConfig,
    max_attempts: u32,
    /// First retry wait of the SDK's standard retry mode (the shared `backoff` key).
    backoff: Duration,
    services: BTreeSet<Service>,
    /// EC2 CloudWatch names asked for.
    ec2_metrics: BTreeSet<&'static str>,
    /// The SDK config of the default chain (or `profile`), loaded once.
    sdk: OnceCell<SdkConfig>,
    /// Accounts resolved by the first collection that resolved all of them.
    accounts: Mutex<Option<Vec<Arc<Account>>>>,
    /// Newest daily (S3) value emitted per (account, bucket, metric), so that a daily value
    /// is emitted once although every collection reads the last three days.
    daily_emitted: Mutex<HashMap<(String, SmolStr, &'static str), i64>>,
}

#[async_trait]
impl CloudProvider for AwsCloud {
    type Config = AwsConfig;
    type Scope = Target;
    type Session = Session;
    type Query = metrics::Plan;
    type Prices = prices::PriceTable;

    const PROVIDER: &'static skymeter_model::provider::Provider = &skymeter_model::provider::AWS;
    const SUMMARY: &'static str = "AWS inventory (EC2, EBS volumes and snapshots, RDS, Lambda, S3, EKS, Elastic IPs, NAT gateways, load balancers), CloudWatch metrics (GetMetricData, 500 queries per call) and cost (estimated, Cost Explorer)";
    const STATS: &'static [Stat] = cloud::EVERY_STAT;
    const METRIC_API: &'static str = "cloudwatch:GetMetricData";
    const SCOPE_NOUN: &'static str = "account";
    const BILLED_MAX_DAYS: u32 = BILLED_DAYS_MAX;

    fn catalog() -> Vec<MetricInfo> {
        let mut out = cloud::catalog::metric_infos(
            &CATALOG,
            |m| m.name,
            |_, same: &[&CwMetric]| {
                let sources: Vec<String> = same
                    .iter()
                    .map(|o| format!("{} {}", o.namespace, o.cloudwatch))
                    .collect();
                let mut labels = Vec::new();
                if same.iter().any(|o| o.source.is_some()) {
                    labels.push("source");
                }
                if same.iter().any(|o| !o.fixed.is_empty()) {
                    labels.push("storage_type");
                }
                cloud::catalog::CatalogRow {
                    unit: same[0].unit,
                    stats: match same[0].shape {
                        catalog::Shape::Total => vec![Stat::Sum],
                        catalog::Shape::Daily => vec![Stat::Avg],
                        catalog::Shape::Peak => vec![Stat::Max],
                        _ => Self::STATS.to_vec(),
                    },
                    labels,
                    source: format!("CloudWatch {}", sources.join(", ")),
                }
            },
        );
        // Names the shared catalog does not have (yet) are described here.
        for info in out.iter_mut().filter(|i| i.description.is_empty()) {
            info.description = catalog::own_description(&info.name)
                .unwrap_or_default()
                .into();
        }
        for (name, unit, description) in [
            (
                METRICS_REQUESTED,
                Unit::Count,
                "CloudWatch metrics requested through GetMetricData, the unit CloudWatch bills.",
            ),
            (
                COLLECTION_COST,
                Unit::Usd,
                "What the collection's own API calls cost at list price (GetMetricData per metric, Cost Explorer per request).",
            ),
        ] {
            out.push(MetricInfo {
                name: name.into(),
                unit,
                stats: vec![Stat::Last],
                labels: vec![],
                source: "skymeter aws collector".into(),
                description: description.into(),
            });
        }
        out
    }

    fn new(cfg: AwsConfig, shared: &CloudConfig, raw: &RawConfig<'_>) -> Result<Self, ConfigError> {
        if cfg.sample_interval.0.as_secs() == 0 {
            return Err(raw.error("sample_interval", "must be at least 1s, e.g. \"60s\""));
        }
        crate::common::cloud_config::at_least_one(
            raw,
            &[
                ("api_concurrency", cfg.api_concurrency),
                ("max_targets", cfg.max_targets),
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
        if cfg.resource_costs && shared.billed_days > billing::RESOURCE_DAYS as u32 {
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
        Ok(AwsCloud {
            own: cfg,
            max_attempts: shared.max_attempts,
            backoff: shared.backoff,
            services,
            ec2_metrics,
            sdk: OnceCell::new(),
            accounts: Mutex::new(None),
            daily_emitted: Mutex::new(HashMap::new()),
        })
    }

    fn scope_concurrency(&self) -> usize {
        self.own.max_targets
    }

    async fn session(&self, calls: Arc<ApiCallCounts>) -> Result<Session, PluginError> {
        Ok(Session {
            calls: Arc::new(ApiCalls::new(calls)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// The accounts were resolved (credentials, roles, STS) by `scopes`.
    async fn verify(&self, _session: &Session) -> Result<(), PluginError> {
        Ok(())
    }

    /// Every region of every account: credentials (profile, assumed role), id (config or
    /// STS GetCallerIdentity) and regions (config, `*` = DescribeRegions, or the chain's).
    async fn scopes(&self, session: &Session) -> (Vec<Target>, Vec<PluginError>) {
        let (accounts, errors) = self.resolve_accounts(&session.calls).await;
        let targets = accounts
            .iter()
            .flat_map(|a| {
                a.regions.iter().map(|r| Target {
                    account: a.clone(),
                    region: r.clone(),
                })
            })
            .collect();
        (targets, errors)
    }

    fn scope_label(t: &Target) -> (&'static str, String) {
        ("account", t.account.id.clone())
    }

    async fn inventory(&self, session: &Session, t: &Target, ctx: &CollectContext) -> Inventory {
        let sdk = t.sdk();
        let limit = Semaphore::new(self.own.api_concurrency);
        let scope = inventory::Scope {
            account: &t.account.id,
            region: &t.region,
            sdk: &sdk,
            calls: &session.calls,
            tags: &ctx.cfg.tags,
            limit: &limit,
            now: ctx.now,
        };
        let mut out = Inventory::default();
        let on = |s: Service| self.services.contains(&s);
        // Buckets first: ListBuckets is the account's first call, made once. Its failure is
        // reported after the instances' (the target's first error is the collection's when
        // nothing could be listed: the instances are what a user looks for first).
        let mut bucket_error = None;
        if on(Service::S3) {
            let (buckets, error) = self.account_buckets(session, &t.account, ctx).await;
            bucket_error = error;
            if let Some(all) = buckets {
                // Buckets in regions not collected are out of scope.
                out.add(Ok(all
                    .iter()
                    .filter(|b| b.region == t.region)
                    .cloned()
                    .collect()));
            }
        }
        if on(Service::Ec2) {
            match inventory::ec2_instances(&scope).await {
                Ok(mut v) => {
                    if let Err(e) = inventory::instance_types(&scope, &mut v).await {
                        out.errors.push(e);
                    }
                    out.add(Ok(v));
                }
                Err(e) => out.add(Err(e)),
            }
        }
        out.errors.extend(bucket_error);
        if on(Service::Ebs) {
            out.add(inventory::ebs_volumes(&scope).await);
        }
        if on(Service::Rds) {
            out.add(inventory::rds_instances(&scope).await);
        }
        if on(Service::Lambda) {
            out.add(inventory::lambda_functions(&scope).await);
        }
        if on(Service::Eks) {
            out.add(inventory::eks_clusters(&scope).await);
        }
        if on(Service::Snapshots) {
            out.add(inventory::ebs_snapshots(&scope).await);
        }
        if on(Service::Eips) {
            out.add(inventory::elastic_ips(&scope).await);
        }
        if on(Service::Nat) {
            out.add(inventory::nat_gateways(&scope).await);
        }
        if on(Service::Elb) {
            out.add(inventory::load_balancers(&scope).await);
        }
        out
    }

    /// Finds the CloudWatch agent's memory metrics (ListMetrics) when memory is wanted,
    /// then plans every query: one [`metrics::Plan`] per target.
    async fn plan(
        &self,
        session: &Session,
        t: &Target,
        resources: &[Resource],
        ctx: &CollectContext,
    ) -> (Vec<metrics::Plan>, Vec<PluginError>) {
        let wanted: Vec<&'static CwMetric> = CATALOG
            .iter()
            .filter(|m| self.services.contains(&m.service))
            .filter(|m| m.service != Service::Ec2 || self.ec2_metrics.contains(m.cloudwatch))
            .filter(|m| ctx.metrics.matches(m.name))
            .collect();
        let mut errors = Vec::new();
        let mut cwagent = HashMap::new();
        let wants_memory = wanted
            .iter()
            .any(|m| m.namespace == catalog::CWAGENT_MEMORY.namespace);
        if wants_memory && resources.iter().any(|r| r.kind == "compute.instance") {
            let cw = aws_sdk_cloudwatch::Client::new(&t.sdk());
            match metrics::cwagent_dimensions(&cw, &t.region, &session.calls).await {
                Ok(m) => cwagent = m,
                Err(e) => errors.push(e),
            }
        }
        let plan = metrics::plan(
            resources,
            &metrics::Wanted {
                metrics: wanted,
                stats: &ctx.cfg.stats,
                cwagent: &cwagent,
            },
        );
        let plans = if plan.metrics() == 0 {
            Vec::new()
        } else {
            vec![plan]
        };
        (plans, errors)
    }

    fn calls_of(plan: &metrics::Plan) -> usize {
        plan.calls()
    }

    fn units_of(plan: &metrics::Plan) -> usize {
        plan.metrics()
    }

    async fn fetch(
        &self,
        session: &Session,
        t: &Target,
        resources: &Arc<Vec<Resource>>,
        plans: Vec<metrics::Plan>,
        ctx: &CollectContext,
    ) -> (Vec<Point>, Vec<PluginError>) {
        let cw = aws_sdk_cloudwatch::Client::new(&t.sdk());
        let scaling = metrics::Scaling {
            period: ctx.cfg.period_s(),
            sample_interval: self.own.sample_interval.0.as_secs_f64(),
        };
        let gmd_limit = Arc::new(Semaphore::new(ctx.cfg.max_concurrency));
        let (mut points, mut errors) = (Vec::new(), Vec::new());
        for plan in plans {
            if !plan.regular.is_empty() {
                let (p, e) = metrics::fetch(
                    &cw,
                    &t.region,
                    resources.clone(),
                    Arc::new(plan.regular),
                    ctx.window,
                    scaling.period,
                    scaling,
                    gmd_limit.clone(),
                    session.calls.clone(),
                )
                .await;
                points.extend(p);
                errors.extend(e);
            }
            if !plan.daily.is_empty() {
                let (p, e) = metrics::fetch(
                    &cw,
                    &t.region,
                    resources.clone(),
                    Arc::new(plan.daily),
                    metrics::daily_window(ctx.request.end.timestamp()),
                    metrics::DAY,
                    scaling,
                    gmd_limit.clone(),
                    session.calls.clone(),
                )
                .await;
                points.extend(self.newest_daily(&t.account.id, p));
                errors.extend(e);
            }
        }
        (points, errors)
    }

    fn load_prices(
        explicit: Option<&Path>,
        data_dir: &Path,
    ) -> Result<prices::PriceTable, PluginError> {
        prices::PriceTable::load(explicit, data_dir)
    }

    fn price_source() -> Option<Box<dyn PriceSource>> {
        Some(Box::new(prices::AwsPriceSource))
    }

    fn estimate(
        &self,
        table: &prices::PriceTable,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resources: &[Resource],
        points: &[Point],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        let e = prices::estimate(table, start, end, resources, points);
        (e.costs, e.missing)
    }

    /// Cost Explorer for every account (each request costs USD 0.01).
    async fn billed(
        &self,
        session: &Session,
        targets: &[Target],
        range: BilledRange,
        _resources: &[Resource],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        let mut accounts: Vec<&Arc<Account>> = Vec::new();
        for t in targets {
            if !accounts.iter().any(|a| a.id == t.account.id) {
                accounts.push(&t.account);
            }
        }
        let (start, end) = billing::billed_days(range.now, range.days);
        let q = billing::BilledQuery {
            start,
            end,
            resource_costs: self.own.resource_costs,
        };
        let (mut costs, mut errors) = (Vec::new(), Vec::new());
        for a in accounts {
            let (c, e) = billing::billed_costs(&a.sdk, &q, &session.calls).await;
            costs.extend(c);
            errors.extend(e.into_iter().map(|e| e.with("account", a.id.as_str())));
        }
        (costs, errors)
    }

    /// CloudWatch metrics requested (planned in a dry run) and what the collection's calls
    /// cost at list price.
    fn own_self_metrics(
        &self,
        session: &Session,
        dry_run: bool,
        planned_units: usize,
    ) -> Vec<(&'static str, Unit, f64)> {
        let calls = &session.calls;
        let (requested, cost) = if dry_run {
            (
                planned_units as f64,
                planned_units as f64 / 1000.0 * calls::GET_METRIC_DATA_USD_PER_1000_METRICS,
            )
        } else {
            (calls.metrics_requested() as f64, calls.estimated_cost_usd())
        };
        vec![
            (METRICS_REQUESTED, Unit::Count, requested),
            (COLLECTION_COST, Unit::Usd, cost),
        ]
    }
}

impl Target {
    /// The account's SDK config in this target's region.
    fn sdk(&self) -> SdkConfig {
        self.account
            .sdk
            .to_builder()
            .region(Region::new(self.region.clone()))
            .build()
    }
}

impl AwsCloud {
    /// Uses `sdk` instead of the default chain's config (an emulator's endpoint and keys).
    pub fn set_sdk(&mut self, sdk: SdkConfig) {
        self.sdk = OnceCell::new_with(Some(sdk));
    }

    fn loader(&self, profile: Option<&str>) -> aws_config::ConfigLoader {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
            RetryConfig::standard()
                .with_max_attempts(self.max_attempts)
                .with_initial_backoff(self.backoff),
        );
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(u) = &self.own.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        loader
    }

    /// Resolves every account; the list is kept once all of them resolved.
    async fn resolve_accounts(&self, calls: &ApiCalls) -> (Vec<Arc<Account>>, Vec<PluginError>) {
        if let Some(a) = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return (a.clone(), Vec::new());
        }
        let base = self
            .sdk
            .get_or_init(|| self.loader(self.own.profile.as_deref()).load())
            .await;
        let wanted: Vec<AccountConfig> = if self.own.accounts.is_empty() {
            vec![AccountConfig {
                id: None,
                profile: None,
                assume_role: None,
            }]
        } else {
            self.own.accounts.clone()
        };
        let mut accounts = Vec::new();
        let mut errors = Vec::new();
        for (i, a) in wanted.iter().enumerate() {
            match self.resolve_account(base, a, calls).await {
                Ok(acc) => accounts.push(Arc::new(acc)),
                Err(e) => {
                    let mut e = e;
                    if !self.own.accounts.is_empty() {
                        e = e.with("accounts", i.to_string());
                    }
                    errors.push(e)
                }
            }
        }
        if errors.is_empty() {
            *self.accounts.lock().unwrap_or_else(|p| p.into_inner()) = Some(accounts.clone());
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
        let regions = if self.own.regions.first().map(String::as_str) == Some("*") {
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
        } else if !self.own.regions.is_empty() {
            self.own.regions.clone()
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

    /// The S3 buckets of `account` (ListBuckets is global), listed by the first target of
    /// the account in this collection; that target also reports a failure.
    async fn account_buckets(
        &self,
        session: &Session,
        account: &Account,
        ctx: &CollectContext,
    ) -> (Option<Arc<Vec<Resource>>>, Option<PluginError>) {
        let cell = session
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(account.id.clone())
            .or_default()
            .clone();
        let mut error = None;
        let buckets = cell
            .get_or_init(|| async {
                let home = account
                    .sdk
                    .region()
                    .map(|r| r.to_string())
                    .or_else(|| account.regions.first().cloned())
                    .unwrap_or_else(|| "us-east-1".into());
                let sdk = account
                    .sdk
                    .to_builder()
                    .region(Region::new(home.clone()))
                    .build();
                let limit = Semaphore::new(self.own.api_concurrency);
                let scope = inventory::Scope {
                    account: &account.id,
                    region: &home,
                    sdk: &sdk,
                    calls: &session.calls,
                    tags: &ctx.cfg.tags,
                    limit: &limit,
                    now: ctx.now,
                };
                match inventory::s3_buckets(&scope).await {
                    Ok(b) => Some(Arc::new(b)),
                    Err(e) => {
                        error = Some(e);
                        None
                    }
                }
            })
            .await;
        (buckets.clone(), error)
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
        let mut emitted = self.daily_emitted.lock().unwrap_or_else(|p| p.into_inner());
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
