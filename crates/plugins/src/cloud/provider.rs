//! What a cloud is to the driver: the [`CloudProvider`] trait, the shared config it is given
//! and what a collection's tasks share.

use super::window::MetricWindow;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use skymeter_model::provider::Provider;
use skymeter_model::{Cost, Point, Resource, Stat, Window};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::prices::PriceSource;
use skymeter_plugin_api::{
    async_trait, ConfigError, MetricInfo, MetricSelection, PluginError, RawConfig,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What one scope's inventory gave.
#[derive(Debug, Default)]
pub struct Inventory {
    pub resources: Vec<Resource>,
    pub errors: Vec<PluginError>,
    /// At least one list call succeeded (a scope where every list failed counts as down).
    pub listed: bool,
}

impl Inventory {
    /// Adds the outcome of one list call.
    pub fn add(&mut self, listed: Result<Vec<Resource>, PluginError>) {
        match listed {
            Ok(v) => {
                self.listed = true;
                self.resources.extend(v);
            }
            Err(e) => self.errors.push(e),
        }
    }
}

/// What a collection's tasks share.
#[derive(Debug)]
pub struct CollectContext {
    /// When the collection started (inventory ages, `x_collected_at`).
    pub now: DateTime<Utc>,
    /// The collection's window as the runner asked it (for metrics asked at a period of
    /// their own: `metric_window(request, delay, their period)`, daily values).
    pub request: Window,
    /// The metric periods asked and emitted.
    pub window: MetricWindow,
    /// The metrics the task wants.
    pub metrics: MetricSelection,
    /// Bounds the metric calls in flight across all scopes (`max_concurrency`).
    pub limit: Arc<Semaphore>,
    pub cfg: Arc<CloudConfig>,
}

/// The days a billed read covers: `days` whole UTC days, today included.
#[derive(Debug, Clone, Copy)]
pub struct BilledRange {
    pub now: DateTime<Utc>,
    pub days: u32,
}

/// One cloud, as the driver sees it.
#[async_trait]
pub trait CloudProvider: Sized + Send + Sync + 'static {
    /// The keys only this cloud has (credentials, endpoints, scopes). Its serde attributes
    /// must not deny unknown fields: the shared keys sit in the same table.
    type Config: DeserializeOwned + JsonSchema + Send + Sync;
    /// A unit of fan-out: a project, a subscription, an (account, region).
    type Scope: Clone + Send + Sync + 'static;
    /// A collection's API client; it counts every call in the counts it was made with.
    type Session: Send + Sync + 'static;
    /// One planned metric call.
    type Query: Send + 'static;
    /// The price table estimated costs are computed from.
    type Prices: Send + Sync + 'static;

    const PROVIDER: &'static Provider;
    /// One line for `skymeter plugins`.
    const SUMMARY: &'static str;
    /// The statistics the metric API can give.
    const STATS: &'static [Stat];
    /// The metric API the plan counts (`monitoring.timeSeries.list`).
    const METRIC_API: &'static str;
    /// What a scope is called in messages (`project`, `account`).
    const SCOPE_NOUN: &'static str = "scope";
    /// How many days one billed read may cover (a limit of the billing API).
    const BILLED_MAX_DAYS: u32 = u32::MAX;

    /// Defaults of the shared keys.
    fn defaults() -> Defaults {
        Defaults::default()
    }

    /// The cost sources when `cost` is not set.
    fn default_cost(_own: &Self::Config) -> &'static [&'static str] {
        &["estimated"]
    }

    /// The metrics the collector can emit (the self-metrics are added by the driver).
    fn catalog() -> Vec<MetricInfo>;

    /// Checks the cloud's own keys against the shared ones; `raw` locates errors.
    fn new(
        own: Self::Config,
        shared: &CloudConfig,
        raw: &RawConfig<'_>,
    ) -> Result<Self, ConfigError>;

    /// Scopes listed at once. Default 8.
    fn scope_concurrency(&self) -> usize {
        8
    }

    /// Credentials and a client for one collection; errors fail the collection.
    async fn session(&self, calls: Arc<ApiCallCounts>) -> Result<Self::Session, PluginError>;

    /// Proves the credentials work (gets a first token): `skymeter validate --verify` and
    /// the warm-up before a task's first collection.
    async fn verify(&self, session: &Self::Session) -> Result<(), PluginError>;

    /// The scopes to collect (configured, or discovered from the credentials), and an error
    /// for each configured scope that could not be resolved (the others are collected).
    async fn scopes(&self, session: &Self::Session) -> (Vec<Self::Scope>, Vec<PluginError>);

    /// The (key, value) that names a scope in errors: ("project", "my-project").
    fn scope_label(scope: &Self::Scope) -> (&'static str, String);

    /// Every resource of one scope, filtered by the tag filter.
    async fn inventory(
        &self,
        session: &Self::Session,
        scope: &Self::Scope,
        ctx: &CollectContext,
    ) -> Inventory;

    /// The metric calls `resources` need for the wanted metrics and stats (a dry run makes
    /// the discovery calls a plan needs, never the metric calls).
    async fn plan(
        &self,
        session: &Self::Session,
        scope: &Self::Scope,
        resources: &[Resource],
        ctx: &CollectContext,
    ) -> (Vec<Self::Query>, Vec<PluginError>);

    /// The metric API calls one query makes (a batch may take several). Default 1.
    fn calls_of(_query: &Self::Query) -> usize {
        1
    }

    /// The billed units one query asks for (CloudWatch bills per metric requested). Default 1.
    fn units_of(_query: &Self::Query) -> usize {
        1
    }

    /// This cloud's self-metrics beyond `<id>.api_calls` and `<id>.planned_calls` (listed
    /// in its [`catalog`](CloudProvider::catalog)): (name, unit, value), for the points
    /// and the log line. `planned_units` sums [`units_of`](CloudProvider::units_of) over
    /// the plan.
    fn own_self_metrics(
        &self,
        _session: &Self::Session,
        _dry_run: bool,
        _planned_units: usize,
    ) -> Vec<(&'static str, skymeter_model::Unit, f64)> {
        Vec::new()
    }

    /// Makes the planned calls (under `ctx.limit`) and maps the answers onto `resources`
    /// (shared, for tasks that outlive the call).
    async fn fetch(
        &self,
        session: &Self::Session,
        scope: &Self::Scope,
        resources: &Arc<Vec<Resource>>,
        queries: Vec<Self::Query>,
        ctx: &CollectContext,
    ) -> (Vec<Point>, Vec<PluginError>);

    /// The price table in use: `explicit`, else `<data_dir>/prices/<id>.json`, else the
    /// shipped one.
    fn load_prices(explicit: Option<&Path>, data_dir: &Path) -> Result<Self::Prices, PluginError>;

    /// What `skymeter prices <id> …` uses; None for a cloud without a price table.
    fn price_source() -> Option<Box<dyn PriceSource>>;

    /// Estimated cost of `resources` over `[start, end)` (`points`: the usage collected,
    /// for usage-priced kinds); a price missing from the table is an error naming it.
    fn estimate(
        &self,
        prices: &Self::Prices,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resources: &[Resource],
        points: &[Point],
    ) -> (Vec<Cost>, Vec<PluginError>);

    /// Billed cost of `range` from the billing source. The driver calls it at most every
    /// `billed_every`; it is not called again sooner unless an error is returned.
    async fn billed(
        &self,
        session: &Self::Session,
        scopes: &[Self::Scope],
        range: BilledRange,
        resources: &[Resource],
    ) -> (Vec<Cost>, Vec<PluginError>);
}

/// A provider's defaults for the shared keys.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub period: Duration,
    pub delay: Duration,
    pub stats: &'static [Stat],
    pub max_concurrency: usize,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub billed_days: u32,
    pub billed_every: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            period: Duration::from_secs(300),
            delay: Duration::from_secs(300),
            stats: &[Stat::Avg, Stat::Max],
            max_concurrency: 8,
            max_attempts: 5,
            backoff: Duration::from_millis(500),
            billed_days: 3,
            billed_every: Duration::from_secs(6 * 3600),
        }
    }
}

/// The shared keys, checked, with the provider's defaults filled in.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub period: Duration,
    pub delay: Duration,
    pub stats: Vec<Stat>,
    pub tags: BTreeMap<String, String>,
    pub max_concurrency: usize,
    pub max_attempts: u32,
    /// The first retry wait (see [`CloudConfig::retry`]).
    pub backoff: Duration,
    /// The cost sources on.
    pub estimated: bool,
    pub billed: bool,
    pub prices_file: Option<String>,
    pub billed_days: u32,
    pub billed_every: Duration,
    pub dry_run: bool,
}

/// The longest wait between two tries of a cloud call, a `Retry-After` included: longer
/// than this and the collection would run into the next one.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// The retry policy of a provider's defaults, for calls made outside a collection
/// (`skymeter prices <cloud> update`).
pub fn default_retry() -> skymeter_plugin_api::retry::RetryPolicy {
    let d = Defaults::default();
    skymeter_plugin_api::retry::RetryPolicy::new(d.max_attempts as usize, d.backoff, MAX_RETRY_WAIT)
}

impl CloudConfig {
    /// How every call of the collection is retried: `max_attempts` tries, waits from
    /// `backoff` doubling up to [`MAX_RETRY_WAIT`], a `Retry-After` honoured up to that.
    pub fn retry(&self) -> skymeter_plugin_api::retry::RetryPolicy {
        skymeter_plugin_api::retry::RetryPolicy::new(
            self.max_attempts as usize,
            self.backoff,
            MAX_RETRY_WAIT,
        )
    }

    /// `period` in whole seconds.
    pub fn period_s(&self) -> i64 {
        self.period.as_secs() as i64
    }

    /// `delay` in whole seconds.
    pub fn delay_s(&self) -> i64 {
        self.delay.as_secs() as i64
    }
}
