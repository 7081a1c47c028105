//! `gcp`: inventory of Compute Engine (instances, persistent disks, snapshots, external
//! addresses, forwarding rules, Cloud NAT gateways), GKE (clusters, node
//! pools), Cloud Functions, Cloud SQL and Cloud Storage (every page of every list), their
//! metrics from Cloud Monitoring `projects.timeSeries.list` (one paged call per metric type
//! and stat per project), and billed cost from a BigQuery billing export.
//!
//! Credentials: Application Default Credentials through gcp_auth (GOOGLE_APPLICATION_CREDENTIALS,
//! gcloud's application-default credentials, the metadata server, `gcloud`), or the
//! service-account key of `credentials_file`. Every project is collected concurrently; the
//! timeSeries.list calls of all projects share `max_concurrency`.

use crate::cloud::{self, BilledRange, CloudConfig, CloudProvider, CollectContext, Inventory};
use crate::common::price_list::PriceList;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Cost, Point, Resource, Stat};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, ConfigError, ErrorKind, MetricInfo, PluginError, RawConfig,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

pub mod billing;
pub mod calls;
pub mod catalog;
pub mod client;
pub mod inventory;
pub mod metrics;
pub mod prices;
/// A local stand-in of the Google APIs, for tests and `bench/gcp_standin` (feature `standin`).
#[cfg(any(test, feature = "standin"))]
pub mod standin;
#[cfg(test)]
mod tests;

use catalog::{GcpMetric, CATALOG};
use client::{Api, TokenSource};

/// The gcp collector: [`GcpCloud`] driven by the shared cloud collector.
pub type Gcp = cloud::CloudCollector<GcpCloud>;

/// The keys only the gcp collector has, beside the shared ones (`period`, `delay`, `stats`,
/// `tags` (or `labels`), `max_concurrency`, `max_attempts`, `cost`, `prices_file`,
/// `billed_days`, `billed_every`, `dry_run`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct GcpConfig {
    /// Project ids to collect. Default: the project of the credentials (the key file's
    /// `project_id`, gcloud's or the metadata server's project).
    #[serde(default)]
    pub projects: Vec<String>,
    /// A service-account key file (JSON). Default: Application Default Credentials
    /// (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, the
    /// metadata server, `gcloud auth print-access-token`).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// Replaces `https://<service>.googleapis.com` of every API (Compute, Monitoring, GKE,
    /// Cloud Functions, Cloud SQL Admin, Cloud Storage, BigQuery): their paths differ, so one
    /// base serves all (a test server, a proxy, Private Service Connect). The token endpoint
    /// is the key file's `token_uri`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Projects collected at once. Default 8.
    #[serde(default = "default_max_projects")]
    pub max_projects: usize,
    /// Seconds between two samples of Compute Engine DELTA metrics (60): max/min/p95 of a
    /// counter (bytes, packets, ops) are divided by it to give a per-second rate. Default 60s.
    #[serde(default = "default_sample_interval")]
    pub sample_interval: DurationStr,
    /// Billed cost: the BigQuery Cloud Billing export table,
    /// `project.dataset.gcp_billing_export_v1_XXXXXX_XXXXXX_XXXXXX` (standard: daily cost per
    /// service and project) or `…gcp_billing_export_resource_v1_…` (detailed: per resource too).
    /// With it, `cost` defaults to ["estimated", "billed"].
    #[serde(default)]
    pub billing_export_table: Option<String>,
    /// The project the BigQuery query job runs (and is billed) in. Default: the table's.
    #[serde(default)]
    pub billing_project: Option<String>,
}

fn default_max_projects() -> usize {
    8
}
fn default_sample_interval() -> DurationStr {
    DurationStr(Duration::from_secs(60))
}

/// Google Cloud for the cloud driver.
pub struct GcpCloud {
    own: GcpConfig,
    retry: RetryPolicy,
    http: reqwest::Client,
    /// Built by the first collection that could (a failure is tried again next time).
    tokens: OnceCell<TokenSource>,
    /// Projects resolved by the first collection that could.
    projects: OnceCell<Vec<String>>,
}

#[async_trait]
impl CloudProvider for GcpCloud {
    type Config = GcpConfig;
    type Scope = String;
    type Session = Arc<Api>;
    type Query = metrics::Query;
    type Prices = PriceList;

    const PROVIDER: &'static skymeter_model::provider::Provider = &skymeter_model::provider::GCP;
    const SUMMARY: &'static str = "GCP inventory (Compute Engine, disks, snapshots, addresses, load balancers, Cloud NAT, GKE, Cloud Functions, Cloud SQL, Cloud Storage), Cloud Monitoring metrics (one timeSeries.list per metric type and stat) and billed cost (BigQuery billing export)";
    const STATS: &'static [Stat] = cloud::EVERY_STAT;
    const METRIC_API: &'static str = metrics::TIME_SERIES.api;
    const SCOPE_NOUN: &'static str = "project";

    fn default_cost(own: &GcpConfig) -> &'static [&'static str] {
        match own.billing_export_table {
            Some(_) => &["estimated", "billed"],
            None => &["estimated"],
        }
    }

    fn catalog() -> Vec<MetricInfo> {
        cloud::catalog::metric_infos(
            &CATALOG,
            |m| m.name,
            |_, same: &[&GcpMetric]| {
                let sources: Vec<String> = same
                    .iter()
                    .map(|o| format!("{} [{}]", o.metric_type, o.native_unit))
                    .collect();
                cloud::catalog::CatalogRow {
                    unit: same[0].unit,
                    stats: catalog::stats_of(same[0].shape),
                    labels: vec![],
                    source: format!("Cloud Monitoring {}", sources.join(", ")),
                }
            },
        )
    }

    fn new(own: GcpConfig, shared: &CloudConfig, raw: &RawConfig<'_>) -> Result<Self, ConfigError> {
        if own.sample_interval.0.as_secs() == 0 {
            return Err(raw.error("sample_interval", "must be at least 1s, e.g. \"60s\""));
        }
        crate::common::cloud_config::at_least_one(raw, &[("max_projects", own.max_projects)])?;
        if let Some(u) = &own.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(raw.error("endpoint_url", "must start with http:// or https://"));
            }
        }
        if let Some(p) = own.projects.iter().find(|p| !valid_project(p)) {
            return Err(raw.error(
                "projects",
                format!("\"{p}\" is not a project id (lower-case letters, digits and hyphens, e.g. \"my-project-123\")"),
            ));
        }
        if let Some(t) = &own.billing_export_table {
            if billing::TableName::parse(t).is_none() {
                return Err(raw.error(
                    "billing_export_table",
                    "must be `project.dataset.table`, e.g. \"my-billing.billing.gcp_billing_export_v1_0123AB_4567CD_89EF01\"",
                ));
            }
        }
        if shared.billed && own.billing_export_table.is_none() {
            return Err(raw.error(
                "cost",
                "the \"billed\" source reads the BigQuery billing export: set `billing_export_table`, or remove \"billed\"",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| raw.error("endpoint_url", format!("cannot build an HTTP client: {e}")))?;
        Ok(GcpCloud {
            own,
            retry: shared.retry(),
            http,
            tokens: OnceCell::new(),
            projects: OnceCell::new(),
        })
    }

    fn scope_concurrency(&self) -> usize {
        self.own.max_projects
    }

    async fn session(&self, calls: Arc<ApiCallCounts>) -> Result<Arc<Api>, PluginError> {
        let tokens = self
            .tokens
            .get_or_try_init(|| token_source(self.own.credentials_file.as_deref()))
            .await?
            .clone();
        Ok(Arc::new(Api::new(
            self.http.clone(),
            self.own.endpoint_url.clone(),
            tokens,
            calls,
            self.retry,
        )))
    }

    async fn verify(&self, api: &Arc<Api>) -> Result<(), PluginError> {
        api.tokens()
            .token(&[client::SCOPE])
            .await
            .map_err(|e| auth_error("could not get an access token", &e))?;
        Ok(())
    }

    async fn scopes(&self, api: &Arc<Api>) -> (Vec<String>, Vec<PluginError>) {
        let projects = self
            .projects
            .get_or_try_init(|| async {
                if !self.own.projects.is_empty() {
                    return Ok(self.own.projects.clone());
                }
                let id = api.tokens().project_id().await.map_err(|_| {
                    PluginError::new(
                        ErrorKind::Config,
                        "no GCP project: list `projects` in the plugin's config (the credentials name none)",
                    )
                })?;
                Ok::<_, PluginError>(vec![id.to_string()])
            })
            .await;
        match projects {
            Ok(p) => (p.clone(), Vec::new()),
            Err(e) => (Vec::new(), vec![e]),
        }
    }

    fn scope_label(project: &String) -> (&'static str, String) {
        ("project", project.clone())
    }

    async fn inventory(&self, api: &Arc<Api>, project: &String, ctx: &CollectContext) -> Inventory {
        let scope = inventory::Scope {
            project,
            api,
            labels: &ctx.cfg.tags,
            now: ctx.now,
        };
        let (inst, disks, clusters, functions, sql, buckets, snapshots, addresses, rules, nats) = tokio::join!(
            async {
                let mut v = inventory::instances(&scope).await?;
                let types = inventory::machine_types(&scope, &mut v).await;
                Ok::<_, PluginError>((v, types.err()))
            },
            inventory::disks(&scope),
            inventory::clusters(&scope),
            inventory::functions(&scope),
            inventory::sql_instances(&scope),
            inventory::buckets(&scope),
            inventory::snapshots(&scope),
            inventory::addresses(&scope),
            inventory::forwarding_rules(&scope),
            inventory::nat_gateways(&scope),
        );
        let mut out = Inventory::default();
        match inst {
            Ok((v, types_err)) => {
                out.add(Ok(v));
                out.errors.extend(types_err);
            }
            Err(e) => out.add(Err(e)),
        }
        for r in [
            disks, clusters, functions, sql, buckets, snapshots, addresses, rules, nats,
        ] {
            out.add(r);
        }
        out
    }

    async fn plan(
        &self,
        _api: &Arc<Api>,
        _project: &String,
        resources: &[Resource],
        ctx: &CollectContext,
    ) -> (Vec<metrics::Query>, Vec<PluginError>) {
        let wanted: Vec<&'static GcpMetric> = CATALOG
            .iter()
            .filter(|m| ctx.metrics.matches(m.name))
            .collect();
        (
            metrics::plan(resources, &wanted, &ctx.cfg.stats),
            Vec::new(),
        )
    }

    async fn fetch(
        &self,
        api: &Arc<Api>,
        project: &String,
        resources: &Arc<Vec<Resource>>,
        queries: Vec<metrics::Query>,
        ctx: &CollectContext,
    ) -> (Vec<Point>, Vec<PluginError>) {
        metrics::fetch(
            metrics::Fetch {
                api: api.clone(),
                project: project.clone(),
                window: ctx.window,
                delay: ctx.cfg.delay_s(),
                period: ctx.cfg.period_s(),
                sample_interval: self.own.sample_interval.0.as_secs_f64(),
                limit: ctx.limit.clone(),
            },
            resources,
            queries,
        )
        .await
    }

    cloud::prices::flat_prices!(prices);

    /// Reads the BigQuery export (every day asked: the export keeps them all).
    async fn billed(
        &self,
        api: &Arc<Api>,
        _projects: &[String],
        range: BilledRange,
        _resources: &[Resource],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        let Some(name) = self
            .own
            .billing_export_table
            .as_deref()
            .and_then(billing::TableName::parse)
        else {
            return (Vec::new(), Vec::new());
        };
        let q = billing::BilledQuery::new(
            name,
            self.own.billing_project.clone(),
            range.now,
            range.days,
        );
        match billing::billed_costs(api, &q).await {
            Ok(costs) => (costs, Vec::new()),
            Err(e) => (Vec::new(), vec![e]),
        }
    }
}

/// Access tokens from a service-account key file, or from Application Default Credentials
/// when `credentials_file` is None.
pub async fn token_source(credentials_file: Option<&str>) -> Result<TokenSource, PluginError> {
    Ok(match credentials_file {
        Some(path) => Arc::new(
            gcp_auth::CustomServiceAccount::from_file(path).map_err(|e| {
                auth_error(
                    "the service-account key of `credentials_file` could not be read",
                    &e,
                )
                .with("credentials_file", path)
            })?,
        ),
        None => gcp_auth::provider()
            .await
            .map_err(|e| auth_error("no Application Default Credentials found", &e))?,
    })
}

/// A project id as GCP allows it (6–30 characters; legacy domain-scoped ids have `:` and `.`).
fn valid_project(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | ':' | '.'))
}

fn auth_error(what: &str, e: &gcp_auth::Error) -> PluginError {
    let text = skymeter_plugin_api::error_chain(e);
    PluginError::new(
        ErrorKind::Auth,
        format!("{what} ({text}): set `credentials_file` to a service-account key, set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or run where the metadata server gives a service account"),
    )
}
