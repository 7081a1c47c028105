//! `azure`: inventory through Azure Resource Manager (virtual machines, managed disks, AKS
//! clusters and agent pools, Function apps, SQL databases, storage accounts; every page),
//! their metrics from the Azure Monitor batch API `metrics:getBatch` only (50 resources of
//! one subscription, region and type per call, all metric names of the type in the call;
//! DESIGN §4), and billed cost from the Cost Management Query API.
//!
//! Credentials come from `azure_identity` (auth.rs): client secret from config or the
//! `AZURE_*` variables, workload identity, managed identity, Azure CLI. Subscriptions are
//! collected concurrently; getBatch calls are bounded by `max_concurrency` per collection,
//! ARM list calls by `api_concurrency`.

use crate::common::cloud_config;
use crate::common::price_list::{load_once, PriceList};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Point, ResourceRef, Stat, Unit};
use skymeter_plugin::config::DurationStr;
use skymeter_plugin::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    ExposeSecret, MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind,
    RawConfig, SecretString,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub mod auth;
pub mod calls;
pub mod catalog;
pub mod client;
pub mod cost;
pub mod inventory;
pub mod metrics;
#[cfg(test)]
pub mod mock;
pub mod prices;
#[cfg(test)]
mod tests;

use calls::ApiCalls;
use catalog::{AzMetric, Service, CATALOG};
use client::Client;

/// `[[task]] collect = [{ plugin = "azure", ... }]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Subscription ids to collect (at least one).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Which credential: "auto" (client secret when tenant_id/client_id/client_secret or
    /// AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET are set, else workload identity
    /// when AZURE_FEDERATED_TOKEN_FILE is set, else managed identity, then the Azure CLI),
    /// "client_secret", "workload_identity", "managed_identity", "azure_cli". Default "auto".
    #[serde(default = "default_credential")]
    pub credential: String,
    /// Entra tenant id (e.g. "${AZURE_TENANT_ID}"). Default: AZURE_TENANT_ID.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Application (client) id; with managed identity, the user-assigned identity's client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret, as a reference ("${AZURE_CLIENT_SECRET}" or "${file:/path}").
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<SecretString>,
    /// Entra authority host. Default https://login.microsoftonline.com (azure_identity
    /// requires https).
    #[serde(default)]
    pub authority_host: Option<String>,
    /// ARM endpoint. Default https://management.azure.com.
    #[serde(default = "default_arm")]
    pub resource_manager_endpoint: String,
    /// Token scope of ARM calls. Default https://management.azure.com/.default.
    #[serde(default = "default_arm_scope")]
    pub resource_manager_scope: String,
    /// Azure Monitor metrics endpoint, `{region}` replaced by the resources' region.
    /// Default https://{region}.metrics.monitor.azure.com.
    #[serde(default = "default_metrics_endpoint")]
    pub metrics_endpoint: String,
    /// Token scope of getBatch. Default https://metrics.monitor.azure.com/.default.
    #[serde(default = "default_metrics_scope")]
    pub metrics_scope: String,
    /// Extra root certificates (PEM) trusted for every Azure endpoint (a TLS-inspecting
    /// proxy, Azure Stack, tests).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Resource types: any of vm, disk, aks, function, sql, storage. Default: all.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Metrics interval: 1m, 5m, 15m, 30m, 1h, 6h, 12h or 1d. Default 300s.
    #[serde(default = "default_period")]
    pub period: DurationStr,
    /// How far behind the collection's end the last interval asked for ends (Azure Monitor
    /// publishes platform metrics a few minutes late). Default 300s.
    #[serde(default = "default_period")]
    pub delay: DurationStr,
    /// Statistics: any of avg, max, min, sum, count (Azure aggregations average, maximum,
    /// minimum, total, count). Default ["avg", "max"].
    #[serde(default = "default_stats")]
    pub stats: Vec<String>,
    /// Only resources with all these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// getBatch calls in flight at once. Default 8.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// ARM list calls in flight at once, per subscription. Default 4.
    #[serde(default = "default_api_concurrency")]
    pub api_concurrency: usize,
    /// Tries per call (the first included): 429 waits `Retry-After` (at most 60 s), 5xx and
    /// connection errors back off exponentially with jitter. Default 5.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff wait. Default 500ms.
    #[serde(default = "default_backoff")]
    pub backoff: DurationStr,
    /// Cost sources: "estimated" (the inventory × pay-as-you-go list prices of the price
    /// table, every collection) and/or "billed" (Cost Management Query). Default
    /// ["estimated", "billed"]; [] for none.
    #[serde(default = "default_cost")]
    pub cost: Vec<String>,
    /// Estimated: a price table file (`skymeter azure prices update` writes one). Default:
    /// `<data_dir>/prices/azure.json` when it exists, else the table shipped in the binary.
    #[serde(default)]
    pub prices_file: Option<String>,
    /// Billed: the days read each time, today included. Default 3.
    #[serde(default = "default_billed_days")]
    pub billed_days: u32,
    /// Billed: the least time between two reads (Cost Management throttles hard). Default 6h.
    #[serde(default = "default_billed_every")]
    pub billed_every: DurationStr,
    /// Discover, then report the planned getBatch calls (`azure.planned_calls`) without
    /// calling getBatch or Cost Management. `skymeter collect azure --dry-run` sets it.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_credential() -> String {
    "auto".into()
}
fn default_arm() -> String {
    "https://management.azure.com".into()
}
fn default_arm_scope() -> String {
    "https://management.azure.com/.default".into()
}
fn default_metrics_endpoint() -> String {
    "https://{region}.metrics.monitor.azure.com".into()
}
fn default_metrics_scope() -> String {
    "https://metrics.monitor.azure.com/.default".into()
}
fn default_period() -> DurationStr {
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
fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> DurationStr {
    DurationStr(Duration::from_millis(500))
}
fn default_cost() -> Vec<String> {
    vec!["estimated".into(), "billed".into()]
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
            name: "azure",
            kind: PluginKind::Collector,
            summary: "Azure inventory (VMs, disks, AKS, Function apps, SQL databases, storage accounts), Azure Monitor metrics (getBatch, 50 resources per call) and billed cost (Cost Management)",
            config_schema: PluginDescription::schema_of::<AzureConfig>,
            metrics,
        },
        build,
    }
}

pub const SELF_METRICS: [(&str, Unit, &str); 2] = [
    (
        "azure.api_calls",
        Unit::Count,
        "Azure API calls made by this collection, every page and retry [api].",
    ),
    (
        "azure.planned_calls",
        Unit::Count,
        "Azure API calls a dry run made (discovery) or plans (getBatch) [api].",
    ),
];

fn metrics() -> Vec<MetricInfo> {
    let mut out: Vec<MetricInfo> = Vec::new();
    let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
    names.push(catalog::MEMORY_USAGE);
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            continue;
        }
        let same: Vec<&AzMetric> = CATALOG.iter().filter(|o| o.name == name).collect();
        let mut sources: Vec<String> = same
            .iter()
            .map(|o| format!("{} \"{}\"", o.service.native_type(), o.azure))
            .collect();
        if name == catalog::MEMORY_USAGE {
            sources.push("Microsoft.Compute/virtualMachines \"Available Memory Bytes\" (derived with the VM size's memory)".into());
        }
        let (unit, stats) = match same.first() {
            Some(m) if m.shape == catalog::Shape::Total => (m.unit, vec![Stat::Sum]),
            Some(m) => (
                m.unit,
                vec![Stat::Avg, Stat::Max, Stat::Min, Stat::Sum, Stat::Count],
            ),
            None => (Unit::Percent, vec![Stat::Avg, Stat::Max, Stat::Min]),
        };
        out.push(MetricInfo {
            name: name.into(),
            unit,
            stats,
            labels: vec![],
            source: format!("Azure Monitor {}", sources.join(", ")),
            description: skymeter_model::catalog::lookup(name)
                .map(|c| c.description.to_string())
                .unwrap_or_default(),
        });
    }
    for (name, unit, description) in SELF_METRICS {
        out.push(MetricInfo {
            name: name.into(),
            unit,
            stats: vec![Stat::Last],
            labels: vec!["api"],
            source: "skymeter azure collector".into(),
            description: description.into(),
        });
    }
    out
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let mut azure = Azure::from_raw(raw)?;
    azure.data_dir = ctx.data_dir.clone();
    Ok(Box::new(azure))
}

pub struct Azure {
    cfg: AzureConfig,
    stats: Vec<Stat>,
    services: BTreeSet<Service>,
    credential: auth::Kind,
    client: Option<Arc<Client>>,
    /// Calls of the last collection.
    pub calls: Arc<ApiCalls>,
    last_billed: Option<DateTime<Utc>>,
    /// Where `<data_dir>/prices/azure.json` is looked for.
    pub data_dir: std::path::PathBuf,
    /// The price table of estimated costs, loaded by the first collection that needs it.
    prices: Option<Arc<PriceList>>,
}

fn is_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

impl Azure {
    pub fn from_raw(raw: &RawConfig<'_>) -> Result<Azure, ConfigError> {
        let cfg: AzureConfig = raw.decode()?;
        if cfg.subscriptions.is_empty() {
            return Err(raw.error(
                "subscriptions",
                "list the subscription ids to collect, e.g. subscriptions = [\"00000000-0000-0000-0000-000000000000\"]",
            ));
        }
        if let Some(s) = cfg
            .subscriptions
            .iter()
            .find(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        {
            return Err(raw.error(
                "subscriptions",
                format!("\"{s}\" is not a subscription id (a GUID)"),
            ));
        }
        let credential = auth::Kind::parse(&cfg.credential).ok_or_else(|| {
            raw.error(
                "credential",
                format!(
                    "unknown credential \"{}\"; allowed: {}",
                    cfg.credential,
                    auth::Kind::NAMES.join(", ")
                ),
            )
        })?;
        let period = cfg.period.0.as_secs() as i64;
        if metrics::interval(period).is_none() || cfg.period.0.subsec_nanos() != 0 {
            return Err(raw.error(
                "period",
                "must be an Azure Monitor interval: 1m, 5m, 15m, 30m, 1h, 6h, 12h or 1d",
            ));
        }
        let stats = cloud_config::parse_stats(
            raw,
            &cfg.stats,
            &[Stat::Avg, Stat::Max, Stat::Min, Stat::Sum, Stat::Count],
        )?;
        cloud_config::at_least_one(
            raw,
            &[
                ("max_concurrency", cfg.max_concurrency),
                ("api_concurrency", cfg.api_concurrency),
                ("max_attempts", cfg.max_attempts as usize),
                ("billed_days", cfg.billed_days as usize),
            ],
        )?;
        // Cost Management answers a Daily query of at most 31 days.
        if cfg.billed_days > 31 {
            return Err(raw.error(
                "billed_days",
                "must be at most 31 (Cost Management's longest Daily query)",
            ));
        }
        for (key, v) in [
            (
                "resource_manager_endpoint",
                Some(&cfg.resource_manager_endpoint),
            ),
            ("metrics_endpoint", Some(&cfg.metrics_endpoint)),
            ("authority_host", cfg.authority_host.as_ref()),
        ] {
            if let Some(u) = v {
                if !is_url(u) {
                    return Err(raw.error(
                        key,
                        "must start with https:// (or http:// for a local stand-in)",
                    ));
                }
            }
        }
        if cfg
            .authority_host
            .as_deref()
            .is_some_and(|h| !h.starts_with("https://"))
        {
            return Err(raw.error(
                "authority_host",
                "must start with https:// (azure_identity refuses other schemes); for a local token endpoint serve TLS and trust its CA with ca_file",
            ));
        }
        let services: BTreeSet<Service> = match &cfg.services {
            None => Service::ALL.into_iter().collect(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for s in list {
                    set.insert(Service::parse(s).ok_or_else(|| {
                        raw.error(
                            "services",
                            format!(
                                "unknown service \"{s}\"; allowed: {}",
                                Service::ALL.map(Service::name).join(", ")
                            ),
                        )
                    })?);
                }
                if set.is_empty() {
                    return Err(raw.error("services", "list at least one service"));
                }
                set
            }
        };
        for c in &cfg.cost {
            if c != "billed" && c != "estimated" {
                return Err(raw.error(
                    "cost",
                    format!("unknown cost source \"{c}\"; allowed: estimated, billed"),
                ));
            }
        }
        if let Some(f) = &cfg.ca_file {
            let pem = std::fs::read(f)
                .map_err(|e| raw.error("ca_file", format!("cannot read {f}: {e}")))?;
            reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| raw.error("ca_file", format!("{f} holds no PEM certificate")))?;
        }
        Ok(Azure {
            cfg,
            stats,
            services,
            credential,
            client: None,
            calls: Arc::new(ApiCalls::default()),
            last_billed: None,
            data_dir: std::env::temp_dir(),
            prices: None,
        })
    }

    /// Estimated cost of the window from the price table (`prices_file`, else
    /// `<data_dir>/prices/azure.json`, else the shipped one, loaded once); a price missing
    /// from it is one error per (region, price).
    fn estimate(&mut self, req: &CollectRequest, out: &mut Output) {
        let explicit = self.cfg.prices_file.as_deref();
        match load_once(
            &mut self.prices,
            prices::CLOUD,
            explicit,
            &self.data_dir,
            prices::SHIPPED,
        ) {
            Ok(table) => {
                let (costs, missing) =
                    prices::estimate(&table, req.window.start, req.window.end, &out.resources);
                out.costs.extend(costs);
                out.errors.extend(missing);
            }
            Err(e) => out.errors.push(e),
        }
    }

    /// The HTTP client and credential, built once.
    fn client(&mut self) -> Result<Arc<Client>, PluginError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")));
        if let Some(f) = &self.cfg.ca_file {
            let pem = std::fs::read(f)
                .map_err(|e| PluginError::new(ErrorKind::Config, format!("ca_file {f}: {e}")))?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| PluginError::new(ErrorKind::Config, format!("ca_file {f}: {e}")))?
            {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| PluginError::new(ErrorKind::Other, format!("HTTP client: {e}")))?;
        let secret = self.cfg.client_secret.as_ref().map(|s| s.expose_secret());
        let (cred, cred_name) = auth::credential(&auth::Settings {
            kind: self.credential,
            tenant_id: self.cfg.tenant_id.as_deref(),
            client_id: self.cfg.client_id.as_deref(),
            client_secret: secret,
            authority_host: self.cfg.authority_host.as_deref(),
            http: http.clone(),
        })
        .map_err(|e| PluginError::new(ErrorKind::Auth, format!("azure credentials: {e}")))?;
        let c = Arc::new(Client {
            http,
            cred,
            cred_name,
            calls: self.calls.clone(),
            max_attempts: self.cfg.max_attempts,
            backoff: self.cfg.backoff.0,
        });
        self.client = Some(c.clone());
        Ok(c)
    }
}

/// The full text of an error and its sources.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn self_point(name: &str, value: f64, at: DateTime<Utc>, api: &str) -> Point {
    Point {
        metric: name.into(),
        unit: Unit::Count,
        stat: Stat::Last,
        period_s: 0,
        ts: at,
        value,
        resource: ResourceRef {
            provider: "azure".into(),
            account: Default::default(),
            region: Default::default(),
            id: "skymeter-azure-collector".into(),
        }
        .into(),
        labels: [("api", api)].into_iter().collect(),
    }
}

#[async_trait]
impl Collector for Azure {
    /// Azure Monitor keeps 93 days of metrics and Cost Management every day; every window is
    /// derived from `req.window`.
    fn reads_history(&self) -> bool {
        true
    }

    /// Builds the HTTP client and gets the first Resource Manager token (a client-secret
    /// or managed-identity round trip): the slow part of a first collection, kept out of
    /// its `timeout`. The client is kept and azure_identity caches the token; on a failure
    /// the collection tries again.
    async fn warm_up(&mut self, _metrics: &MetricSelection) -> Result<(), PluginError> {
        self.verify().await
    }

    async fn verify(&mut self) -> Result<(), PluginError> {
        let client = self.client()?;
        client
            .token(&self.cfg.resource_manager_scope)
            .await
            .map(|_| ())
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        // One client for the collector's life: azure_identity caches tokens until shortly
        // before they expire.
        self.calls.reset();
        let client = self.client()?;
        let now = Utc::now();
        let cfg = self.cfg.clone();
        let arm = cfg
            .resource_manager_endpoint
            .trim_end_matches('/')
            .to_string();

        // Inventory, every subscription at once.
        let mut any_ok = false;
        let mut first_err: Option<PluginError> = None;
        let jobs = cfg.subscriptions.iter().map(|sub| {
            let client = client.clone();
            let arm = arm.clone();
            let cfg = &cfg;
            let services = &self.services;
            async move {
                let limit = Semaphore::new(cfg.api_concurrency);
                let scope = inventory::Scope {
                    client: &client,
                    arm: &arm,
                    token_scope: &cfg.resource_manager_scope,
                    subscription: sub,
                    tags: &cfg.tags,
                    api_limit: &limit,
                    now,
                };
                let on = |s: Service| services.contains(&s);
                let (vms, disks, aks, functions, sql, storage) = tokio::join!(
                    async {
                        if on(Service::Vm) {
                            Some(inventory::vms(&scope).await)
                        } else {
                            None
                        }
                    },
                    async {
                        if on(Service::Disk) {
                            Some(inventory::disks(&scope).await)
                        } else {
                            None
                        }
                    },
                    async {
                        if on(Service::Aks) {
                            Some(inventory::aks(&scope).await)
                        } else {
                            None
                        }
                    },
                    async {
                        if on(Service::Function) {
                            Some(inventory::functions(&scope).await)
                        } else {
                            None
                        }
                    },
                    async {
                        if on(Service::Sql) {
                            Some(inventory::sql(&scope).await)
                        } else {
                            None
                        }
                    },
                    async {
                        if on(Service::Storage) {
                            Some(inventory::storage(&scope).await)
                        } else {
                            None
                        }
                    },
                );
                let mut resources = Vec::new();
                let mut errors = Vec::new();
                let mut ok = false;
                for (r, e) in [vms, sql].into_iter().flatten() {
                    ok |= e.is_empty() || !r.is_empty();
                    resources.extend(r);
                    errors.extend(e);
                }
                for r in [disks, aks, functions, storage].into_iter().flatten() {
                    match r {
                        Ok(r) => {
                            ok = true;
                            resources.extend(r);
                        }
                        Err(e) => errors.push(e),
                    }
                }
                (ok, resources, errors)
            }
        });
        for (ok, resources, errors) in futures::future::join_all(jobs).await {
            any_ok |= ok;
            if !ok {
                if let Some(e) = errors.first() {
                    first_err.get_or_insert_with(|| e.clone());
                }
            }
            out.resources.extend(resources);
            out.errors.extend(errors);
        }
        out.resources.sort_by(|a, b| {
            (&a.account, &a.region, &a.kind, &a.id).cmp(&(&b.account, &b.region, &b.kind, &b.id))
        });

        // Metrics.
        let wanted_metrics: Vec<&'static AzMetric> = CATALOG
            .iter()
            .filter(|m| self.services.contains(&m.service))
            .filter(|m| {
                req.metrics.matches(m.name)
                    || (m.shape == catalog::Shape::AvailableMemory
                        && req.metrics.matches(catalog::MEMORY_USAGE))
            })
            .collect();
        let plan = metrics::plan(&out.resources, &wanted_metrics, &self.stats);
        let planned = plan.len();
        if !cfg.dry_run && !plan.is_empty() {
            let period = cfg.period.0.as_secs() as i64;
            let (start, end, delay) = (
                req.window.start.timestamp(),
                req.window.end.timestamp(),
                cfg.delay.0.as_secs() as i64,
            );
            let mut fixed_windows = HashMap::new();
            for s in Service::ALL {
                if let Some(p) = s.fixed_interval() {
                    fixed_windows.insert(p, metrics::metric_window(start, end, delay, p));
                }
            }
            let selection = req.metrics.clone();
            let fetch = Arc::new(metrics::Fetch {
                client: client.clone(),
                endpoint: cfg.metrics_endpoint.clone(),
                token_scope: cfg.metrics_scope.clone(),
                resources: Arc::new(std::mem::take(&mut out.resources)),
                stats: self.stats.clone(),
                period,
                window: metrics::metric_window(start, end, delay, period),
                fixed_windows,
                wanted: Arc::new(move |n: &str| selection.matches(n)),
                max_concurrency: cfg.max_concurrency,
            });
            let (points, errors) = fetch.clone().run(plan).await;
            out.points.extend(points);
            out.errors.extend(errors);
            out.resources = Arc::try_unwrap(fetch)
                .ok()
                .map(|f| Arc::try_unwrap(f.resources).unwrap_or_else(|a| (*a).clone()))
                .unwrap_or_default();
        }

        // Estimated cost.
        if !cfg.dry_run && cfg.cost.iter().any(|c| c == "estimated") {
            self.estimate(req, out);
        }

        // Billed cost.
        if !cfg.dry_run && cfg.cost.iter().any(|c| c == "billed") {
            let every = chrono::Duration::from_std(cfg.billed_every.0).unwrap_or_default();
            if self.last_billed.is_none_or(|t| now - t >= every) {
                // A window the runner fills after downtime may start before the days read
                // on every run: reach back to it, within the query's 31-day limit.
                let days = skymeter_plugin::history::billed_days_covering(
                    now,
                    req.window.start,
                    cfg.billed_days,
                    31,
                );
                let (start, end) = cost::billed_days(now, days);
                // Cost Management answers resource ids in lower case; the inventory's casing
                // is used where the resource was listed, so both join on `id`.
                let ids: HashMap<String, &str> = out
                    .resources
                    .iter()
                    .map(|r| (r.id.to_ascii_lowercase(), r.id.as_str()))
                    .collect();
                let mut ok = true;
                for sub in &cfg.subscriptions {
                    match cost::query(&client, &arm, &cfg.resource_manager_scope, sub, start, end)
                        .await
                    {
                        Ok(mut c) => {
                            for line in &mut c {
                                let known = line
                                    .resource_id
                                    .as_deref()
                                    .and_then(|id| ids.get(&id.to_ascii_lowercase()));
                                if let Some(id) = known {
                                    line.resource_type = cost::resource_type(id);
                                    line.resource_id = Some(id.to_string());
                                }
                            }
                            out.costs.extend(c)
                        }
                        Err(e) => {
                            ok = false;
                            out.errors.push(e);
                        }
                    }
                }
                if ok {
                    self.last_billed = Some(now);
                }
            }
        }

        // Self-accounting.
        let snapshot = self.calls.snapshot();
        tracing::info!(
            target: "skymeter::azure",
            "azure API calls: {}{}",
            snapshot.iter().map(|(a, n)| format!("{a}={n}")).collect::<Vec<_>>().join(" "),
            if cfg.dry_run { format!("; planned {}={planned} (dry run)", calls::GET_BATCH) } else { String::new() }
        );
        let at = req.window.end;
        if req.metrics.matches("azure.api_calls") {
            for (api, n) in &snapshot {
                out.points
                    .push(self_point("azure.api_calls", *n as f64, at, api));
            }
        }
        if cfg.dry_run && req.metrics.matches("azure.planned_calls") {
            let mut p: BTreeMap<&str, u64> = snapshot.iter().copied().collect();
            p.insert(calls::GET_BATCH, planned as u64);
            for (api, n) in p {
                out.points
                    .push(self_point("azure.planned_calls", n as f64, at, api));
            }
        }
        match (any_ok, first_err) {
            (false, Some(e)) => {
                out.errors.retain(|x| x.message != e.message);
                Err(e)
            }
            _ => Ok(()),
        }
    }
}
