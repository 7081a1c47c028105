//! `azure`: inventory through Azure Resource Manager (virtual machines, managed disks, AKS
//! clusters and agent pools, Function apps, SQL databases, storage accounts; every page),
//! their metrics from the Azure Monitor batch API `metrics:getBatch` only (50 resources of
//! one subscription, region and type per call, all metric names of the type in the call;
//! DESIGN §4), and billed cost from the Cost Management Query API.
//!
//! Credentials come from `azure_identity` (auth.rs): client secret from config or the
//! `AZURE_*` variables, workload identity, managed identity, Azure CLI. Subscriptions are
//! collected concurrently; the getBatch calls of all subscriptions share `max_concurrency`,
//! ARM list calls are bounded by `api_concurrency` per subscription.

use crate::cloud::{self, BilledRange, CloudConfig, CloudProvider, CollectContext, Inventory};
use crate::common::cloud_config;
use crate::common::price_list::PriceList;
use azure_core::credentials::TokenCredential;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Cost, Point, Resource, Stat, Unit};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, ConfigError, ErrorKind, ExposeSecret, MetricInfo, PluginError, RawConfig,
    SecretString,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

pub mod auth;
pub mod billing;
pub mod calls;
pub mod catalog;
pub mod client;
pub mod inventory;
pub mod metrics;
pub mod prices;
/// A local stand-in of the Azure APIs, for tests and `bench/azure_standin` (feature `standin`).
#[cfg(any(test, feature = "standin"))]
pub mod standin;
#[cfg(test)]
mod tests;

use catalog::{AzMetric, Service, CATALOG};
use client::Client;

/// The azure collector: [`AzureCloud`] driven by the shared cloud collector.
pub type Azure = cloud::CloudCollector<AzureCloud>;

/// The keys only the azure collector has, beside the shared ones (`period`, `delay`,
/// `stats`, `tags`, `max_concurrency`, `max_attempts`, `cost`, `prices_file`,
/// `billed_days`, `billed_every`, `dry_run`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    /// Resource types: any of vm, disk, aks, function, sql, storage, snapshot, public_ip,
    /// load_balancer, nat_gateway. Default: all.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// ARM list calls in flight at once, per subscription. Default 4.
    #[serde(default = "default_api_concurrency")]
    pub api_concurrency: usize,
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
fn default_api_concurrency() -> usize {
    4
}

/// The HTTP client and the credential, kept for the collector's life: azure_identity
/// caches tokens until shortly before they expire.
struct Credential {
    http: reqwest::Client,
    cred: Arc<dyn TokenCredential>,
    cred_name: String,
}

/// Azure for the cloud driver: a scope is one subscription, a session the [`Client`] of
/// one collection.
pub struct AzureCloud {
    own: AzureConfig,
    /// `resource_manager_endpoint` without a trailing slash.
    arm: String,
    services: BTreeSet<Service>,
    credential: auth::Kind,
    /// The certificates of `ca_file`.
    ca_certs: Vec<reqwest::Certificate>,
    retry: RetryPolicy,
    /// Built by the first collection that could (a failure is tried again next time).
    credentials: OnceCell<Credential>,
}

fn is_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

impl AzureCloud {
    /// The resource types collected.
    pub fn services(&self) -> &BTreeSet<Service> {
        &self.services
    }

    /// The HTTP client (trusting `ca_file`) and the credential.
    fn build_credential(&self) -> Result<Credential, PluginError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")));
        for c in &self.ca_certs {
            b = b.add_root_certificate(c.clone());
        }
        let http = b
            .build()
            .map_err(|e| PluginError::new(ErrorKind::Other, format!("HTTP client: {e}")))?;
        let secret = self.own.client_secret.as_ref().map(|s| s.expose_secret());
        let (cred, cred_name) = auth::credential(&auth::Settings {
            kind: self.credential,
            tenant_id: self.own.tenant_id.as_deref(),
            client_id: self.own.client_id.as_deref(),
            client_secret: secret,
            authority_host: self.own.authority_host.as_deref(),
            http: http.clone(),
        })
        .map_err(|e| PluginError::new(ErrorKind::Auth, format!("azure credentials: {e}")))?;
        Ok(Credential {
            http,
            cred,
            cred_name,
        })
    }
}

#[async_trait]
impl CloudProvider for AzureCloud {
    type Config = AzureConfig;
    type Scope = String;
    type Session = Arc<Client>;
    type Query = metrics::Call;
    type Prices = PriceList;

    const PROVIDER: &'static skymeter_model::provider::Provider = &skymeter_model::provider::AZURE;
    const SUMMARY: &'static str = "Azure inventory (VMs, disks, snapshots, public IPs, load balancers, NAT gateways, AKS, Function apps, SQL databases, storage accounts), Azure Monitor metrics (getBatch, 50 resources per call) and billed cost (Cost Management)";
    const STATS: &'static [Stat] = &[Stat::Avg, Stat::Max, Stat::Min, Stat::Sum, Stat::Count];
    const METRIC_API: &'static str = calls::GET_BATCH;
    const SCOPE_NOUN: &'static str = "subscription";
    const BILLED_MAX_DAYS: u32 = 31;
    // The shared keys' defaults are the driver's: period and delay 300s, stats avg and max.

    /// Cost Management needs no setup beyond the role: both sources are on by default.
    fn default_cost(_own: &AzureConfig) -> &'static [&'static str] {
        &["estimated", "billed"]
    }

    fn catalog() -> Vec<MetricInfo> {
        const DERIVED: &str = "Microsoft.Compute/virtualMachines \"Available Memory Bytes\" (derived with the VM size's memory)";
        let mut out = cloud::catalog::metric_infos(
            &CATALOG,
            |m| m.name,
            |name, same: &[&AzMetric]| {
                let mut sources: Vec<String> = same
                    .iter()
                    .map(|o| format!("{} \"{}\"", o.service.native_type(), o.azure))
                    .collect();
                if name == catalog::MEMORY_USAGE {
                    sources.push(DERIVED.into());
                }
                cloud::catalog::CatalogRow {
                    unit: same[0].unit,
                    stats: if same[0].shape == catalog::Shape::Total {
                        vec![Stat::Sum]
                    } else {
                        Self::STATS.to_vec()
                    },
                    labels: vec![],
                    source: format!("Azure Monitor {}", sources.join(", ")),
                }
            },
        );
        if !out.iter().any(|m| m.name == catalog::MEMORY_USAGE) {
            out.push(MetricInfo {
                name: catalog::MEMORY_USAGE.into(),
                unit: Unit::Percent,
                stats: vec![Stat::Avg, Stat::Max, Stat::Min],
                labels: vec![],
                source: format!("Azure Monitor {DERIVED}"),
                description: skymeter_model::catalog::lookup(catalog::MEMORY_USAGE)
                    .map(|c| c.description.to_string())
                    .unwrap_or_default(),
            });
        }
        out
    }

    fn new(
        cfg: AzureConfig,
        shared: &CloudConfig,
        raw: &RawConfig<'_>,
    ) -> Result<Self, ConfigError> {
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
        if metrics::interval(shared.period_s()).is_none() {
            return Err(raw.error(
                "period",
                "must be an Azure Monitor interval: 1m, 5m, 15m, 30m, 1h, 6h, 12h or 1d",
            ));
        }
        cloud_config::at_least_one(raw, &[("api_concurrency", cfg.api_concurrency)])?;
        // Cost Management answers a Daily query of at most 31 days.
        if shared.billed_days > Self::BILLED_MAX_DAYS {
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
        let mut ca_certs = Vec::new();
        if let Some(f) = &cfg.ca_file {
            let pem = std::fs::read(f)
                .map_err(|e| raw.error("ca_file", format!("cannot read {f}: {e}")))?;
            ca_certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| raw.error("ca_file", format!("{f} holds no PEM certificate")))?;
        }
        Ok(AzureCloud {
            arm: cfg
                .resource_manager_endpoint
                .trim_end_matches('/')
                .to_string(),
            own: cfg,
            services,
            credential,
            ca_certs,
            retry: shared.retry(),
            credentials: OnceCell::new(),
        })
    }

    /// Every subscription at once, (each bounds its own ARM lists by
    /// `api_concurrency`; getBatch calls share `max_concurrency`).
    fn scope_concurrency(&self) -> usize {
        self.own.subscriptions.len()
    }

    async fn session(&self, calls: Arc<ApiCallCounts>) -> Result<Arc<Client>, PluginError> {
        let c = self
            .credentials
            .get_or_try_init(|| async { self.build_credential() })
            .await?;
        Ok(Arc::new(Client::new(
            c.http.clone(),
            c.cred.clone(),
            c.cred_name.clone(),
            calls,
            self.retry,
        )))
    }

    /// Gets the first Resource Manager token (a client-secret or managed-identity round
    /// trip); azure_identity caches it.
    async fn verify(&self, client: &Arc<Client>) -> Result<(), PluginError> {
        client
            .token(&self.own.resource_manager_scope)
            .await
            .map(|_| ())
    }

    async fn scopes(&self, _client: &Arc<Client>) -> (Vec<String>, Vec<PluginError>) {
        (self.own.subscriptions.clone(), Vec::new())
    }

    fn scope_label(subscription: &String) -> (&'static str, String) {
        ("subscription", subscription.clone())
    }

    /// The ARM lists of the services asked, at most `api_concurrency` at once.
    async fn inventory(
        &self,
        client: &Arc<Client>,
        sub: &String,
        ctx: &CollectContext,
    ) -> Inventory {
        let limit = Semaphore::new(self.own.api_concurrency);
        let scope = inventory::Scope {
            client,
            arm: &self.arm,
            token_scope: &self.own.resource_manager_scope,
            subscription: sub,
            tags: &ctx.cfg.tags,
            api_limit: &limit,
            now: ctx.now,
        };
        // Only the services asked are listed (`if`, not `bool::then_some`, which would make
        // every call and drop the answer).
        let on = |s: Service| self.services.contains(&s);
        let (vms, disks, aks, functions, sql, storage, snapshots, ips, lbs, nats) = tokio::join!(
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
            async {
                if on(Service::Snapshot) {
                    Some(inventory::snapshots(&scope).await)
                } else {
                    None
                }
            },
            async {
                if on(Service::PublicIp) {
                    Some(inventory::public_ips(&scope).await)
                } else {
                    None
                }
            },
            async {
                if on(Service::LoadBalancer) {
                    Some(inventory::load_balancers(&scope).await)
                } else {
                    None
                }
            },
            async {
                if on(Service::NatGateway) {
                    Some(inventory::nat_gateways(&scope).await)
                } else {
                    None
                }
            },
        );
        let mut out = Inventory::default();
        // VMs and SQL are two lists each: listed when nothing failed or something came.
        for (r, e) in [vms, sql].into_iter().flatten() {
            out.listed |= e.is_empty() || !r.is_empty();
            out.resources.extend(r);
            out.errors.extend(e);
        }
        for r in [disks, aks, functions, storage, snapshots, ips, lbs, nats]
            .into_iter()
            .flatten()
        {
            out.add(r);
        }
        // getBatch calls group resources in this order (as the collection lists them).
        out.resources
            .sort_by(|a, b| (&a.region, &a.kind, &a.id).cmp(&(&b.region, &b.kind, &b.id)));
        out
    }

    async fn plan(
        &self,
        _client: &Arc<Client>,
        _sub: &String,
        resources: &[Resource],
        ctx: &CollectContext,
    ) -> (Vec<metrics::Call>, Vec<PluginError>) {
        let wanted: Vec<&'static AzMetric> = CATALOG
            .iter()
            .filter(|m| self.services.contains(&m.service))
            .filter(|m| {
                ctx.metrics.matches(m.name)
                    || (m.shape == catalog::Shape::AvailableMemory
                        && ctx.metrics.matches(catalog::MEMORY_USAGE))
            })
            .collect();
        (
            metrics::plan(resources, &wanted, &ctx.cfg.stats),
            Vec::new(),
        )
    }

    async fn fetch(
        &self,
        client: &Arc<Client>,
        _sub: &String,
        resources: &Arc<Vec<Resource>>,
        plan: Vec<metrics::Call>,
        ctx: &CollectContext,
    ) -> (Vec<Point>, Vec<PluginError>) {
        let (start, end, delay) = (
            ctx.request.start.timestamp(),
            ctx.request.end.timestamp(),
            ctx.cfg.delay_s(),
        );
        let fixed_windows = Service::ALL
            .into_iter()
            .filter_map(|s| s.fixed_interval())
            .map(|p| (p, cloud::metric_window(start, end, delay, p)))
            .collect();
        let fetch = metrics::Fetch {
            client: client.clone(),
            endpoint: self.own.metrics_endpoint.clone(),
            token_scope: self.own.metrics_scope.clone(),
            stats: ctx.cfg.stats.clone(),
            period: ctx.cfg.period_s(),
            window: ctx.window,
            fixed_windows,
            wanted: ctx.metrics.clone(),
            limit: ctx.limit.clone(),
        };
        fetch.run(resources, plan).await
    }

    cloud::prices::flat_prices!(prices);

    /// One Cost Management query per subscription. It answers resource ids in lower case;
    /// the inventory's casing is used where the resource was listed, so both join on `id`.
    async fn billed(
        &self,
        client: &Arc<Client>,
        subscriptions: &[String],
        range: BilledRange,
        resources: &[Resource],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        let (start, end) = billing::billed_days(range.now, range.days);
        let ids: HashMap<String, &str> = resources
            .iter()
            .map(|r| (r.id.to_ascii_lowercase(), r.id.as_str()))
            .collect();
        let mut costs = Vec::new();
        let mut errors = Vec::new();
        for sub in subscriptions {
            let scope = &self.own.resource_manager_scope;
            match billing::query(client, &self.arm, scope, sub, start, end).await {
                Ok(mut c) => {
                    for line in &mut c {
                        let known = line
                            .resource_id
                            .as_deref()
                            .and_then(|id| ids.get(&id.to_ascii_lowercase()));
                        if let Some(id) = known {
                            line.resource_type = billing::resource_type(id);
                            line.resource_id = Some(id.to_string());
                        }
                    }
                    costs.extend(c)
                }
                Err(e) => errors.push(e),
            }
        }
        (costs, errors)
    }
}

/// The full text of an error and its sources.
pub use skymeter_plugin_api::error_chain as error_text;
