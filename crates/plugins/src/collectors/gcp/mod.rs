//! `gcp`: inventory of Compute Engine (instances, persistent disks), GKE (clusters, node
//! pools), Cloud Functions, Cloud SQL and Cloud Storage (every page of every list), their
//! metrics from Cloud Monitoring `projects.timeSeries.list` (one paged call per metric type
//! and stat per project), and billed cost from a BigQuery billing export.
//!
//! Credentials: Application Default Credentials through gcp_auth (GOOGLE_APPLICATION_CREDENTIALS,
//! gcloud's application-default credentials, the metadata server, `gcloud`), or the
//! service-account key of `credentials_file`. Every project is collected concurrently; the
//! timeSeries.list calls of all projects share `max_concurrency`.

use crate::common::cloud_config;
use crate::common::price_list::{load_once, PriceList};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Point, Resource, ResourceRef, Stat, Unit};
use skymeter_plugin::config::DurationStr;
use skymeter_plugin::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub mod billing;
pub mod calls;
pub mod catalog;
pub mod client;
#[cfg(test)]
mod fake_server;
pub mod inventory;
pub mod metrics;
pub mod prices;
#[cfg(test)]
mod tests;

use calls::ApiCalls;
use catalog::{GcpMetric, CATALOG};
use client::{Api, TokenSource};

/// `[[task]] collect = [{ plugin = "gcp", ... }]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
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
    /// Alignment period of Cloud Monitoring. Default 300s; a multiple of 60s.
    #[serde(default = "default_period")]
    pub period: DurationStr,
    /// How far behind the collection's end the last period asked for ends. Default 300s
    /// (Compute Engine metrics appear up to ~4 minutes late); "0s" reads the newest period.
    #[serde(default = "default_period")]
    pub delay: DurationStr,
    /// Statistics: any of avg, max, min, sum, count, p95 (ALIGN_MEAN or ALIGN_RATE, ALIGN_MAX,
    /// ALIGN_MIN, ALIGN_SUM, ALIGN_COUNT, ALIGN_PERCENTILE_95). Default ["avg", "max"]. Each
    /// one is one timeSeries.list call per metric type and project.
    #[serde(default = "default_stats")]
    pub stats: Vec<String>,
    /// Only resources with all these labels (`labels = { env = "prod" }`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// timeSeries.list calls in flight at once (all projects). Default 8.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Projects collected at once. Default 8.
    #[serde(default = "default_max_concurrency")]
    pub max_projects: usize,
    /// Tries per API call (the first included): 429 waits `Retry-After` (at most 60 s) or a
    /// jittered backoff, 5xx and connection errors a jittered backoff. Default 5.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Seconds between two samples of Compute Engine DELTA metrics (60): max/min/p95 of a
    /// counter (bytes, packets, ops) are divided by it to give a per-second rate. Default 60s.
    #[serde(default = "default_sample_interval")]
    pub sample_interval: DurationStr,
    /// Cost sources: "estimated" (the inventory × on-demand list prices of the price table,
    /// every collection) and/or "billed" (the BigQuery export; needs
    /// `billing_export_table`). Default: ["estimated"], and "billed" too when
    /// `billing_export_table` is set; [] for none.
    #[serde(default)]
    pub cost: Option<Vec<String>>,
    /// Estimated: a price table file (`skymeter gcp prices update` writes one). Default:
    /// `<data_dir>/prices/gcp.json` when it exists, else the table shipped in the binary.
    #[serde(default)]
    pub prices_file: Option<String>,
    /// Billed cost: the BigQuery Cloud Billing export table,
    /// `project.dataset.gcp_billing_export_v1_XXXXXX_XXXXXX_XXXXXX` (standard: daily cost per
    /// service and project) or `…gcp_billing_export_resource_v1_…` (detailed: per resource too).
    #[serde(default)]
    pub billing_export_table: Option<String>,
    /// The project the BigQuery query job runs (and is billed) in. Default: the table's.
    #[serde(default)]
    pub billing_project: Option<String>,
    /// Billed: the days read each time, today included (the export revises recent days; the
    /// server replaces the lines it already has). Default 3.
    #[serde(default = "default_billed_days")]
    pub billed_days: u32,
    /// Billed: the least time between two BigQuery reads (each query scans the table).
    /// Default 6h.
    #[serde(default = "default_billed_every")]
    pub billed_every: DurationStr,
    /// Discover, then report the plan (`gcp.planned_calls{api}`) without calling
    /// timeSeries.list or BigQuery. `skymeter collect gcp --dry-run` sets it.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_period() -> DurationStr {
    DurationStr(Duration::from_secs(300))
}
fn default_sample_interval() -> DurationStr {
    DurationStr(Duration::from_secs(60))
}
fn default_stats() -> Vec<String> {
    vec!["avg".into(), "max".into()]
}
fn default_max_concurrency() -> usize {
    8
}
fn default_attempts() -> u32 {
    5
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
            name: "gcp",
            kind: PluginKind::Collector,
            summary: "GCP inventory (Compute Engine, disks, GKE, Cloud Functions, Cloud SQL, Cloud Storage), Cloud Monitoring metrics (one timeSeries.list per metric type and stat) and billed cost (BigQuery billing export)",
            config_schema: PluginDescription::schema_of::<GcpConfig>,
            metrics,
        },
        build,
    }
}

/// The self-metrics every collection emits (labels in brackets).
pub const SELF_METRICS: [(&str, Unit, &str); 2] = [
    (
        "gcp.api_calls",
        Unit::Count,
        "GCP API calls (HTTP requests, retries included) made by this collection [api].",
    ),
    (
        "gcp.planned_calls",
        Unit::Count,
        "GCP API calls a dry run made (discovery) or plans (timeSeries.list, without pages) [api].",
    ),
];

fn metrics() -> Vec<MetricInfo> {
    let mut out: Vec<MetricInfo> = Vec::new();
    for m in &CATALOG {
        if out.iter().any(|o| o.name == m.name) {
            continue;
        }
        let same: Vec<&GcpMetric> = CATALOG.iter().filter(|o| o.name == m.name).collect();
        let sources: Vec<String> = same
            .iter()
            .map(|o| format!("{} [{}]", o.metric_type, o.native_unit))
            .collect();
        out.push(MetricInfo {
            name: m.name.into(),
            unit: m.unit,
            stats: catalog::stats_of(m.shape),
            labels: vec![],
            source: format!("Cloud Monitoring {}", sources.join(", ")),
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
            labels: vec!["api"],
            source: "skymeter gcp collector".into(),
            description: description.into(),
        });
    }
    out
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let mut gcp = Gcp::from_raw(raw)?;
    gcp.data_dir = ctx.data_dir.clone();
    Ok(Box::new(gcp))
}

pub struct Gcp {
    cfg: Arc<GcpConfig>,
    stats: Vec<Stat>,
    http: reqwest::Client,
    tokens: Option<TokenSource>,
    /// Projects resolved by the first collection that could.
    projects: Option<Vec<String>>,
    /// Calls per API of the last collection.
    pub calls: Arc<ApiCalls>,
    /// When BigQuery was last read.
    last_billed: Option<DateTime<Utc>>,
    /// The cost sources on: (estimated, billed).
    estimated: bool,
    billed: bool,
    /// Where `<data_dir>/prices/gcp.json` is looked for.
    pub data_dir: std::path::PathBuf,
    /// The price table of estimated costs, loaded by the first collection that needs it.
    prices: Option<Arc<PriceList>>,
}

impl Gcp {
    /// Decodes and checks the config.
    pub fn from_raw(raw: &RawConfig<'_>) -> Result<Gcp, ConfigError> {
        let cfg: GcpConfig = raw.decode()?;
        let period = cfg.period.0.as_secs();
        if period == 0 || !period.is_multiple_of(60) || cfg.period.0.subsec_nanos() != 0 {
            return Err(raw.error(
                "period",
                "must be a whole number of minutes (Cloud Monitoring alignment periods are multiples of 60s), e.g. \"300s\"",
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
                ("max_projects", cfg.max_projects),
                ("max_attempts", cfg.max_attempts as usize),
                ("billed_days", cfg.billed_days as usize),
            ],
        )?;
        if let Some(u) = &cfg.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(raw.error("endpoint_url", "must start with http:// or https://"));
            }
        }
        if let Some(p) = cfg.projects.iter().find(|p| !valid_project(p)) {
            return Err(raw.error(
                "projects",
                format!("\"{p}\" is not a project id (lower-case letters, digits and hyphens, e.g. \"my-project-123\")"),
            ));
        }
        if let Some(t) = &cfg.billing_export_table {
            if billing::TableName::parse(t).is_none() {
                return Err(raw.error(
                    "billing_export_table",
                    "must be `project.dataset.table`, e.g. \"my-billing.billing.gcp_billing_export_v1_0123AB_4567CD_89EF01\"",
                ));
            }
        }
        let sources = match &cfg.cost {
            Some(list) => list.clone(),
            None if cfg.billing_export_table.is_some() => vec!["estimated".into(), "billed".into()],
            None => vec!["estimated".into()],
        };
        for c in &sources {
            if c != "estimated" && c != "billed" {
                return Err(raw.error(
                    "cost",
                    format!("unknown cost source \"{c}\"; allowed: estimated, billed"),
                ));
            }
        }
        let billed = sources.iter().any(|c| c == "billed");
        if billed && cfg.billing_export_table.is_none() {
            return Err(raw.error(
                "cost",
                "the \"billed\" source reads the BigQuery billing export: set `billing_export_table`, or remove \"billed\"",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| raw.error("endpoint_url", format!("cannot build an HTTP client: {e}")))?;
        Ok(Gcp {
            estimated: sources.iter().any(|c| c == "estimated"),
            billed,
            data_dir: std::env::temp_dir(),
            prices: None,
            cfg: Arc::new(cfg),
            stats,
            http,
            tokens: None,
            projects: None,
            calls: Arc::new(ApiCalls::default()),
            last_billed: None,
        })
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
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cur = c.source();
    }
    PluginError::new(
        ErrorKind::Auth,
        format!("{what} ({text}): set `credentials_file` to a service-account key, set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or run where the metadata server gives a service account"),
    )
}

impl Gcp {
    async fn tokens(&mut self) -> Result<TokenSource, PluginError> {
        if let Some(t) = &self.tokens {
            return Ok(t.clone());
        }
        let t = token_source(self.cfg.credentials_file.as_deref()).await?;
        self.tokens = Some(t.clone());
        Ok(t)
    }

    async fn projects(&mut self, tokens: &TokenSource) -> Result<Vec<String>, PluginError> {
        if let Some(p) = &self.projects {
            return Ok(p.clone());
        }
        let p = if self.cfg.projects.is_empty() {
            let id = tokens.project_id().await.map_err(|_| {
                PluginError::new(
                    ErrorKind::Config,
                    "no GCP project: list `projects` in the plugin's config (the credentials name none)",
                )
            })?;
            vec![id.to_string()]
        } else {
            self.cfg.projects.clone()
        };
        self.projects = Some(p.clone());
        Ok(p)
    }
}

/// What one project collected.
#[derive(Default)]
struct ProjectOutput {
    resources: Vec<Resource>,
    points: Vec<Point>,
    errors: Vec<PluginError>,
    /// At least one inventory list succeeded.
    listed: bool,
    planned_calls: usize,
}

/// Everything a project task needs.
#[derive(Clone)]
struct ProjectJob {
    cfg: Arc<GcpConfig>,
    api: Arc<Api>,
    stats: Arc<Vec<Stat>>,
    metrics: Arc<Vec<&'static GcpMetric>>,
    window: metrics::MetricWindow,
    limit: Arc<Semaphore>,
    now: DateTime<Utc>,
}

impl ProjectJob {
    async fn run(self, project: String) -> ProjectOutput {
        let scope = inventory::Scope {
            project: &project,
            api: &self.api,
            labels: &self.cfg.labels,
            now: self.now,
        };
        let (inst, disks, clusters, functions, sql, buckets) = tokio::join!(
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
        );
        let mut out = ProjectOutput::default();
        let with_project = |e: PluginError| e.with("project", project.as_str());
        match inst {
            Ok((v, types_err)) => {
                out.listed = true;
                out.resources.extend(v);
                out.errors.extend(types_err.map(with_project));
            }
            Err(e) => out.errors.push(with_project(e)),
        }
        for r in [disks, clusters, functions, sql, buckets] {
            match r {
                Ok(v) => {
                    out.listed = true;
                    out.resources.extend(v);
                }
                Err(e) => out.errors.push(with_project(e)),
            }
        }
        let queries = metrics::plan(&out.resources, &self.metrics, &self.stats);
        out.planned_calls = queries.len();
        if self.cfg.dry_run || queries.is_empty() {
            return out;
        }
        let (points, errors) = metrics::fetch(
            metrics::Fetch {
                api: self.api.clone(),
                project: project.clone(),
                window: self.window,
                delay: self.cfg.delay.0.as_secs() as i64,
                period: self.cfg.period.0.as_secs() as i64,
                sample_interval: self.cfg.sample_interval.0.as_secs_f64(),
                limit: self.limit.clone(),
            },
            &out.resources,
            queries,
        )
        .await;
        out.points = points;
        out.errors.extend(errors);
        out
    }
}

/// A self-metric point of the collector.
fn self_point(name: &str, value: f64, at: DateTime<Utc>, api: &str) -> Point {
    Point {
        metric: name.into(),
        unit: Unit::Count,
        stat: Stat::Last,
        period_s: 0,
        ts: at,
        value,
        resource: ResourceRef {
            provider: "gcp".into(),
            account: Default::default(),
            region: Default::default(),
            id: "skymeter-gcp-collector".into(),
        }
        .into(),
        labels: [("api", api)].into_iter().collect(),
    }
}

#[async_trait]
impl Collector for Gcp {
    /// Cloud Monitoring keeps six weeks of data and the billing export every day; every
    /// window is derived from `req.window`.
    fn reads_history(&self) -> bool {
        true
    }

    /// Builds the token source, finds the project when none is configured, and gets the
    /// first access token (Application Default Credentials discovery, a metadata-server
    /// round trip or a key-file signature): the slow part of a first collection, kept out
    /// of its `timeout`. The token source and the projects are kept, and gcp_auth caches
    /// the token; on a failure the collection tries again.
    async fn warm_up(&mut self, _metrics: &MetricSelection) -> Result<(), PluginError> {
        self.verify().await
    }

    async fn verify(&mut self) -> Result<(), PluginError> {
        let tokens = self.tokens().await?;
        self.projects(&tokens).await?;
        tokens
            .token(&[client::SCOPE])
            .await
            .map_err(|e| auth_error("could not get an access token", &e))?;
        Ok(())
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let calls = Arc::new(ApiCalls::default());
        self.calls = calls.clone();
        let now = Utc::now();
        let tokens = self.tokens().await?;
        let projects = self.projects(&tokens).await?;
        let cfg = self.cfg.clone();
        let api = Arc::new(Api::new(
            self.http.clone(),
            cfg.endpoint_url.clone(),
            tokens,
            calls.clone(),
            cfg.max_attempts,
        ));
        let wanted: Vec<&'static GcpMetric> = CATALOG
            .iter()
            .filter(|m| req.metrics.matches(m.name))
            .collect();
        let period = cfg.period.0.as_secs() as i64;
        let job = ProjectJob {
            cfg: cfg.clone(),
            api: api.clone(),
            stats: Arc::new(self.stats.clone()),
            metrics: Arc::new(wanted),
            window: metrics::metric_window(
                req.window.start.timestamp(),
                req.window.end.timestamp(),
                cfg.delay.0.as_secs() as i64,
                period,
            ),
            limit: Arc::new(Semaphore::new(cfg.max_concurrency)),
            now,
        };
        let projects_limit = Arc::new(Semaphore::new(cfg.max_projects));
        let mut set = tokio::task::JoinSet::new();
        for p in &projects {
            let job = job.clone();
            let p = p.clone();
            let limit = projects_limit.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                job.run(p).await
            });
        }
        let mut any_ok = false;
        let mut first_err: Option<PluginError> = None;
        let mut planned_calls = 0usize;
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
                    out.resources.extend(t.resources);
                    out.points.extend(t.points);
                    out.errors.extend(t.errors);
                }
                Err(e) => out.errors.push(PluginError::new(
                    ErrorKind::Other,
                    format!("a project task failed: {e}"),
                )),
            }
        }
        out.resources.sort_by(|a, b| {
            (&a.account, &a.region, &a.kind, &a.id).cmp(&(&b.account, &b.region, &b.kind, &b.id))
        });

        self.estimate(req, out);
        self.billed(&api, now, req.window.start, out).await;
        self.self_metrics(req, out, &calls, planned_calls);
        match (any_ok, first_err) {
            (false, Some(e)) => {
                out.errors.retain(|x| x.message != e.message);
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

impl Gcp {
    /// Estimated cost of the window from the price table (`prices_file`, else
    /// `<data_dir>/prices/gcp.json`, else the shipped one, loaded once); a price missing from
    /// it is one error per (region, price).
    fn estimate(&mut self, req: &CollectRequest, out: &mut Output) {
        if self.cfg.dry_run || !self.estimated {
            return;
        }
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

    /// Billed cost from the BigQuery export, at most every `billed_every`: the last
    /// `billed_days` days, which the store upserts.
    async fn billed(
        &mut self,
        api: &Api,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        out: &mut Output,
    ) {
        let cfg = self.cfg.clone();
        let Some(table) = &cfg.billing_export_table else {
            return;
        };
        if cfg.dry_run || !self.billed {
            return;
        }
        let every = chrono::Duration::from_std(cfg.billed_every.0).unwrap_or_default();
        if self.last_billed.is_some_and(|t| now - t < every) {
            return;
        }
        let Some(name) = billing::TableName::parse(table) else {
            return;
        };
        // A window the runner fills after downtime may start before the days read on
        // every run: reach back to it (the export keeps every day).
        let days = skymeter_plugin::history::billed_days_covering(
            now,
            window_start,
            cfg.billed_days,
            u32::MAX,
        );
        let q = billing::BilledQuery::new(name, cfg.billing_project.clone(), now, days);
        match billing::billed_costs(api, &q).await {
            Ok(costs) => {
                out.costs.extend(costs);
                self.last_billed = Some(now);
            }
            Err(e) => out.errors.push(e),
        }
    }

    /// Self-accounting: calls per API in the log and as points; in a dry run,
    /// `gcp.planned_calls` carries the discovery calls made and the timeSeries.list calls
    /// planned.
    fn self_metrics(
        &self,
        req: &CollectRequest,
        out: &mut Output,
        calls: &ApiCalls,
        planned: usize,
    ) {
        let dry = self.cfg.dry_run;
        let snapshot = calls.snapshot();
        tracing::info!(
            target: "skymeter::gcp",
            "gcp API calls: {}{}",
            snapshot.iter().map(|(a, n)| format!("{a}={n}")).collect::<Vec<_>>().join(" "),
            if dry { format!(" (dry run; {planned} timeSeries.list calls planned)") } else { String::new() }
        );
        let at = req.window.end;
        if req.metrics.matches("gcp.api_calls") {
            for (api, n) in &snapshot {
                out.points
                    .push(self_point("gcp.api_calls", *n as f64, at, api));
            }
        }
        if dry && req.metrics.matches("gcp.planned_calls") {
            let mut plan: BTreeMap<&str, u64> = snapshot.iter().copied().collect();
            plan.insert(metrics::TIME_SERIES.api, planned as u64);
            for (api, n) in plan {
                out.points
                    .push(self_point("gcp.planned_calls", n as f64, at, api));
            }
        }
    }
}
