//! The one collector every cloud runs in: fan-out over scopes, metric plan and fetch,
//! estimated and billed cost, self-accounting.

use super::config;
use super::provider::{BilledRange, CloudConfig, CloudProvider, CollectContext, Inventory};
use chrono::{DateTime, Utc};
use skymeter_model::{Point, ResourceRef, Stat, Unit};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind, RawConfig,
    Registry,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Registers provider `P`: its collector, and its price table when it has one.
pub fn register<P: CloudProvider>(r: &mut Registry) {
    r.add_collector(factory::<P>());
    if let Some(p) = P::price_source() {
        r.add_price_source(p);
    }
}

/// The collector factory of provider `P`.
pub fn factory<P: CloudProvider>() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: P::PROVIDER.id,
            kind: PluginKind::Collector,
            summary: P::SUMMARY,
            config_schema: config::schema::<P>,
            metrics: metrics::<P>,
        },
        build: build::<P>,
    }
}

fn build<P: CloudProvider>(
    raw: &RawConfig<'_>,
    ctx: &BuildContext,
) -> Result<Box<dyn Collector>, ConfigError> {
    let mut c = CloudCollector::<P>::from_raw(raw)?;
    c.data_dir = ctx.data_dir.clone();
    Ok(Box::new(c))
}

/// The self-metric names of provider `P`: (api calls, planned calls).
fn self_metric_names<P: CloudProvider>() -> (String, String) {
    let id = P::PROVIDER.id;
    (format!("{id}.api_calls"), format!("{id}.planned_calls"))
}

pub fn metrics<P: CloudProvider>() -> Vec<MetricInfo> {
    let mut out = P::catalog();
    let (calls, planned) = self_metric_names::<P>();
    let who = P::PROVIDER.display_name;
    for (name, description) in [
        (
            calls,
            format!(
                "{who} API calls (HTTP requests, retries included) made by this collection [api]."
            ),
        ),
        (
            planned,
            format!("{who} API calls a dry run made (discovery) or plans (metric calls) [api]."),
        ),
    ] {
        out.push(MetricInfo {
            name,
            unit: Unit::Count,
            stats: vec![Stat::Last],
            labels: vec!["api"],
            source: format!("skymeter {} collector", P::PROVIDER.id),
            description,
        });
    }
    out
}

/// A cloud collector: provider `P` driven by the shared rules.
pub struct CloudCollector<P: CloudProvider> {
    provider: Arc<P>,
    cfg: Arc<CloudConfig>,
    /// Where `<data_dir>/prices/<id>.json` is looked for.
    pub data_dir: PathBuf,
    /// Calls per API of the last collection.
    calls: Arc<ApiCallCounts>,
    /// When the billing source was last read.
    last_billed: Option<DateTime<Utc>>,
    /// The price table, loaded by the first collection that needs it.
    prices: Option<Arc<P::Prices>>,
}

impl<P: CloudProvider> CloudCollector<P> {
    /// Decodes and checks an entry: the shared keys and the provider's.
    pub fn from_raw(raw: &RawConfig<'_>) -> Result<Self, ConfigError> {
        let (own, cfg) = config::decode::<P>(raw)?;
        let provider = P::new(own, &cfg, raw)?;
        Ok(CloudCollector {
            provider: Arc::new(provider),
            cfg: Arc::new(cfg),
            data_dir: std::env::temp_dir(),
            calls: Arc::default(),
            last_billed: None,
            prices: None,
        })
    }

    /// Calls per API of the last collection.
    pub fn calls(&self) -> &ApiCallCounts {
        &self.calls
    }

    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The provider, to set up between collections (tests give it a client of their own).
    ///
    /// Panics during a collection (the provider is shared with its tasks then).
    pub fn provider_mut(&mut self) -> &mut P {
        Arc::get_mut(&mut self.provider).expect("no collection in flight")
    }

    pub fn config(&self) -> &CloudConfig {
        &self.cfg
    }
}

/// The points and errors of a set of metric-call tasks, as they finish; a task that failed
/// (panicked) is an error naming `what` it was calling.
pub async fn join_fetches<E>(
    mut set: tokio::task::JoinSet<(Vec<Point>, E)>,
    capacity: usize,
    what: &str,
) -> (Vec<Point>, Vec<PluginError>)
where
    E: IntoIterator<Item = PluginError> + 'static,
{
    let mut points = Vec::with_capacity(capacity);
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((p, e)) => {
                append(&mut points, p);
                errors.extend(e);
            }
            Err(e) => errors.push(PluginError::new(
                ErrorKind::Other,
                format!("a {what} task failed: {e}"),
            )),
        }
    }
    (points, errors)
}

/// `from` appended to `to`, by a move when `to` is empty.
fn append<T>(to: &mut Vec<T>, mut from: Vec<T>) {
    if to.is_empty() {
        std::mem::swap(to, &mut from);
    } else {
        to.append(&mut from);
    }
}

/// What one scope's task gave.
struct ScopeOutput {
    inventory: Inventory,
    points: Vec<Point>,
    /// Metric calls planned, and the billed units they ask for.
    planned: usize,
    planned_units: usize,
}

async fn run_scope<P: CloudProvider>(
    provider: Arc<P>,
    session: Arc<P::Session>,
    scope: P::Scope,
    ctx: Arc<CollectContext>,
) -> ScopeOutput {
    let (key, value) = P::scope_label(&scope);
    let mut inventory = provider.inventory(&session, &scope, &ctx).await;
    let (queries, plan_errors) = provider
        .plan(&session, &scope, &inventory.resources, &ctx)
        .await;
    inventory.errors.extend(plan_errors);
    let planned = queries.iter().map(P::calls_of).sum();
    let planned_units = queries.iter().map(P::units_of).sum();
    let mut points = Vec::new();
    if !ctx.cfg.dry_run && !queries.is_empty() {
        let resources = Arc::new(std::mem::take(&mut inventory.resources));
        let (p, errors) = provider
            .fetch(&session, &scope, &resources, queries, &ctx)
            .await;
        inventory.resources = Arc::try_unwrap(resources).unwrap_or_else(|a| (*a).clone());
        points = p;
        inventory.errors.extend(errors);
    }
    for e in &mut inventory.errors {
        if !e.context.iter().any(|(k, _)| k == key) {
            *e = e.clone().with(key, value.as_str());
        }
    }
    ScopeOutput {
        inventory,
        points,
        planned,
        planned_units,
    }
}

#[async_trait]
impl<P: CloudProvider> Collector for CloudCollector<P> {
    /// Cloud metric APIs keep weeks of data and billing sources every day: every window is
    /// derived from `req.window`.
    fn reads_history(&self) -> bool {
        true
    }

    /// Credentials, the scopes and a first token before the first collection (a metadata
    /// server round trip, a key signature): the slow part of a first collection, kept out
    /// of its `timeout`. On a failure the collection tries again.
    async fn warm_up(&mut self, _metrics: &MetricSelection) -> Result<(), PluginError> {
        self.verify().await
    }

    async fn verify(&mut self) -> Result<(), PluginError> {
        let session = self.provider.session(Arc::default()).await?;
        let (scopes, errors) = self.provider.scopes(&session).await;
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        if scopes.is_empty() {
            return Err(PluginError::new(
                ErrorKind::Config,
                format!("no {} to collect", P::SCOPE_NOUN),
            ));
        }
        self.provider.verify(&session).await
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let calls = Arc::new(ApiCallCounts::default());
        self.calls = calls.clone();
        let now = Utc::now();
        let cfg = self.cfg.clone();
        let session = Arc::new(self.provider.session(calls.clone()).await?);
        let (scopes, scope_errors) = self.provider.scopes(&session).await;
        let mut first_err: Option<PluginError> = scope_errors.first().cloned();
        out.errors.extend(scope_errors);
        let ctx = Arc::new(CollectContext {
            now,
            request: req.window,
            window: super::window::metric_window(
                req.window.start.timestamp(),
                req.window.end.timestamp(),
                cfg.delay_s(),
                cfg.period_s(),
            ),
            metrics: req.metrics.clone(),
            limit: Arc::new(Semaphore::new(cfg.max_concurrency)),
            cfg: cfg.clone(),
        });
        let scope_limit = Arc::new(Semaphore::new(self.provider.scope_concurrency().max(1)));
        let mut set = tokio::task::JoinSet::new();
        for scope in &scopes {
            let (provider, session, ctx, limit) = (
                self.provider.clone(),
                session.clone(),
                ctx.clone(),
                scope_limit.clone(),
            );
            let scope = scope.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                run_scope(provider, session, scope, ctx).await
            });
        }
        let mut any_ok = false;
        let (mut planned, mut planned_units) = (0usize, 0usize);
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(t) => {
                    any_ok |= t.inventory.listed;
                    if !t.inventory.listed {
                        if let Some(e) = t.inventory.errors.first() {
                            first_err.get_or_insert_with(|| e.clone());
                        }
                    }
                    planned += t.planned;
                    planned_units += t.planned_units;
                    // Moved rather than copied when the output is still empty (one scope,
                    // or the first): no second copy of the largest vectors at the peak.
                    append(&mut out.resources, t.inventory.resources);
                    append(&mut out.points, t.points);
                    out.errors.extend(t.inventory.errors);
                }
                Err(e) => out.errors.push(PluginError::new(
                    ErrorKind::Other,
                    format!(
                        "a {} scope task failed: {}",
                        P::PROVIDER.id,
                        match e.try_into_panic() {
                            Ok(p) => skymeter_plugin_api::panic_message(p.as_ref()).to_string(),
                            Err(e) => e.to_string(),
                        }
                    ),
                )),
            }
        }
        out.resources.sort_by(|a, b| {
            (&a.account, &a.region, &a.kind, &a.id).cmp(&(&b.account, &b.region, &b.kind, &b.id))
        });
        if !cfg.dry_run {
            self.estimate(req, out);
            self.billed(&session, &scopes, now, req.window.start, out)
                .await;
        }
        self.self_metrics(req, out, &session, planned, planned_units);
        match (any_ok, first_err) {
            (false, Some(e)) => {
                out.errors.retain(|x| x.message != e.message);
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

impl<P: CloudProvider> CloudCollector<P> {
    /// Estimated cost of the window from the price table (loaded once); a price missing
    /// from it is one error per (region, price).
    fn estimate(&mut self, req: &CollectRequest, out: &mut Output) {
        if !self.cfg.estimated {
            return;
        }
        let table = match &self.prices {
            Some(t) => t.clone(),
            None => {
                let explicit = self.cfg.prices_file.as_deref().map(Path::new);
                match P::load_prices(explicit, &self.data_dir) {
                    Ok(t) => {
                        let t = Arc::new(t);
                        self.prices = Some(t.clone());
                        t
                    }
                    Err(e) => {
                        out.errors.push(e);
                        return;
                    }
                }
            }
        };
        let (costs, missing) = self.provider.estimate(
            &table,
            req.window.start,
            req.window.end,
            &out.resources,
            &out.points,
        );
        out.costs.extend(costs);
        out.errors.extend(missing);
    }

    /// Billed cost, at most every `billed_every`: the last `billed_days` days (reaching back
    /// to the window's start when the runner fills a gap), which the store upserts.
    async fn billed(
        &mut self,
        session: &P::Session,
        scopes: &[P::Scope],
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        out: &mut Output,
    ) {
        if !self.cfg.billed {
            return;
        }
        let every = chrono::Duration::from_std(self.cfg.billed_every).unwrap_or_default();
        if self.last_billed.is_some_and(|t| now - t < every) {
            return;
        }
        let days = skymeter_plugin_api::history::billed_days_covering(
            now,
            window_start,
            self.cfg.billed_days,
            P::BILLED_MAX_DAYS,
        );
        let (costs, errors) = self
            .provider
            .billed(session, scopes, BilledRange { now, days }, &out.resources)
            .await;
        if errors.is_empty() {
            self.last_billed = Some(now);
        }
        out.costs.extend(costs);
        out.errors.extend(errors);
    }

    /// Self-accounting: calls per API in the log and as points; in a dry run,
    /// `<id>.planned_calls` carries the discovery calls made and the metric calls planned.
    fn self_metrics(
        &self,
        req: &CollectRequest,
        out: &mut Output,
        session: &P::Session,
        planned: usize,
        planned_units: usize,
    ) {
        let dry = self.cfg.dry_run;
        let id = P::PROVIDER.id;
        let snapshot = self.calls.snapshot();
        let own = self.provider.own_self_metrics(session, dry, planned_units);
        tracing::info!(
            target: "skymeter::cloud",
            provider = id,
            "{id} API calls: {}{}{}",
            snapshot.iter().map(|(a, n)| format!("{a}={n}")).collect::<Vec<_>>().join(" "),
            own.iter().map(|(name, _, v)| format!("; {name}={v}")).collect::<String>(),
            if dry { format!(" (dry run; {planned} {} calls planned)", P::METRIC_API) } else { String::new() }
        );
        let at = req.window.end;
        let (calls_name, planned_name) = self_metric_names::<P>();
        let point = |name: &str, unit: Unit, value: f64, api: Option<&str>| Point {
            metric: name.into(),
            unit,
            stat: Stat::Last,
            period_s: 0,
            ts: at,
            value,
            resource: ResourceRef {
                provider: id.into(),
                account: Default::default(),
                region: Default::default(),
                id: format!("skymeter-{id}-collector").into(),
            }
            .into(),
            labels: api
                .map(|a| [("api", a)].into_iter().collect())
                .unwrap_or_default(),
        };
        if req.metrics.matches(&calls_name) {
            for (api, n) in &snapshot {
                out.points
                    .push(point(&calls_name, Unit::Count, *n as f64, Some(api)));
            }
        }
        if dry && req.metrics.matches(&planned_name) {
            let mut plan: BTreeMap<&str, u64> = snapshot.iter().copied().collect();
            plan.insert(P::METRIC_API, planned as u64);
            for (api, n) in plan {
                out.points
                    .push(point(&planned_name, Unit::Count, n as f64, Some(api)));
            }
        }
        for (name, unit, value) in own {
            if req.metrics.matches(name) {
                out.points.push(point(name, unit, value, None));
            }
        }
    }
}
