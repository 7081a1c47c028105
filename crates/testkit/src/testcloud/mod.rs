//! `testcloud`: a cloud that lives in memory, implemented on the cloud driver exactly as a
//! real provider is (see docs/adding-a-provider.md). Every account has `machines` machines in
//! `region`; their CPU is a known function of the machine and the time, so tests can check
//! values; list prices come from a table shipped beside this file, and `prices testcloud
//! update` "reads" a table of its own making.

use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::provider::Provider;
use skymeter_model::{Cost, Point, Resource, Stat, Unit};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::prices::{PriceSource, UpdateOption};
use skymeter_plugin_api::{async_trait, ConfigError, MetricInfo, PluginError, RawConfig};
use skymeter_plugins::cloud::prices::FlatPriceSource;
use skymeter_plugins::cloud::{BilledRange, CloudConfig, CloudProvider, CollectContext, Inventory};
use skymeter_plugins::common::price_list::{Cloud, Estimator, ListPrice, PriceList};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider {
    id: "testcloud",
    display_name: "Test Cloud",
    focus_name: "Test Cloud",
    aliases: &[],
};

const CLOUD: Cloud = Cloud {
    id: PROVIDER.id,
    display: PROVIDER.display_name,
    provider_name: PROVIDER.focus_name,
};

const SHIPPED: &str = include_str!("prices.json");

/// The APIs the test cloud "calls" (each counted per call).
pub const LIST_MACHINES: &str = "testcloud.machines.list";
pub const GET_METRICS: &str = "testcloud.metrics.get";
pub const LIST_PRICES: &str = "testcloud.prices.list";

/// The keys only testcloud has.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct TestCloudConfig {
    /// Accounts to collect (one scope each). Default ["acct-1"].
    #[serde(default = "default_accounts")]
    pub accounts: Vec<String>,
    /// Machines per account. Default 2.
    #[serde(default = "default_machines")]
    pub machines: u32,
    /// The region every machine is in. Default "test-1".
    #[serde(default = "default_region")]
    pub region: String,
}

fn default_accounts() -> Vec<String> {
    vec!["acct-1".into()]
}
fn default_machines() -> u32 {
    2
}
fn default_region() -> String {
    "test-1".into()
}

/// The CPU of machine `index` over the period ending at `ts`: 10 + index + minute of the
/// hour / 10, a value tests can recompute.
pub fn cpu(index: u32, ts: i64) -> f64 {
    10.0 + f64::from(index) + (ts.rem_euclid(3600) / 60) as f64 / 10.0
}

pub struct TestCloud {
    own: TestCloudConfig,
}

/// One planned metric call: one stat of `cpu.utilization` for every machine of a scope.
pub struct CpuQuery {
    stat: Stat,
}

#[async_trait]
impl CloudProvider for TestCloud {
    type Config = TestCloudConfig;
    type Scope = String;
    type Session = Arc<ApiCallCounts>;
    type Query = CpuQuery;
    type Prices = PriceList;

    const PROVIDER: &'static Provider = &PROVIDER;
    const SUMMARY: &'static str =
        "Test Cloud: machines held in memory, their CPU, and list prices (for skymeter's tests)";
    const STATS: &'static [Stat] = &[Stat::Avg, Stat::Max];
    const METRIC_API: &'static str = GET_METRICS;
    const SCOPE_NOUN: &'static str = "account";

    fn catalog() -> Vec<MetricInfo> {
        vec![MetricInfo {
            name: "cpu.utilization".into(),
            unit: Unit::Percent,
            stats: vec![Stat::Avg, Stat::Max],
            labels: vec![],
            source: "testcloud machine CPU".into(),
            description: "CPU in use, percent of the machine.".into(),
        }]
    }

    fn new(
        own: TestCloudConfig,
        _shared: &CloudConfig,
        raw: &RawConfig<'_>,
    ) -> Result<Self, ConfigError> {
        if own.accounts.is_empty() {
            return Err(raw.error("accounts", "list at least one account"));
        }
        Ok(TestCloud { own })
    }

    async fn session(&self, calls: Arc<ApiCallCounts>) -> Result<Self::Session, PluginError> {
        Ok(calls)
    }

    async fn verify(&self, _calls: &Self::Session) -> Result<(), PluginError> {
        Ok(())
    }

    async fn scopes(&self, _calls: &Self::Session) -> (Vec<String>, Vec<PluginError>) {
        (self.own.accounts.clone(), Vec::new())
    }

    fn scope_label(account: &String) -> (&'static str, String) {
        ("account", account.clone())
    }

    async fn inventory(
        &self,
        calls: &Self::Session,
        account: &String,
        ctx: &CollectContext,
    ) -> Inventory {
        calls.count(LIST_MACHINES);
        let machines = (0..self.own.machines)
            .map(|i| Resource {
                provider: PROVIDER.id.into(),
                account: account.clone(),
                region: self.own.region.clone(),
                kind: "compute.instance".into(),
                native_type: "testcloud/Machine".into(),
                id: format!("m-{i}"),
                name: format!("machine {i}"),
                tags: Default::default(),
                attributes: [
                    ("machine_type".to_string(), "small".into()),
                    ("index".to_string(), i.into()),
                ]
                .into_iter()
                .collect(),
                observed_at: ctx.now,
            })
            .filter(|r| {
                ctx.cfg
                    .tags
                    .iter()
                    .all(|(k, v)| r.tags.get(k.as_str()).is_some_and(|t| t == v))
            })
            .collect();
        let mut out = Inventory::default();
        out.add(Ok(machines));
        out
    }

    async fn plan(
        &self,
        _calls: &Self::Session,
        _account: &String,
        resources: &[Resource],
        ctx: &CollectContext,
    ) -> (Vec<CpuQuery>, Vec<PluginError>) {
        if resources.is_empty() || !ctx.metrics.matches("cpu.utilization") {
            return (Vec::new(), Vec::new());
        }
        let queries = ctx
            .cfg
            .stats
            .iter()
            .map(|&stat| CpuQuery { stat })
            .collect();
        (queries, Vec::new())
    }

    async fn fetch(
        &self,
        calls: &Self::Session,
        _account: &String,
        resources: &Arc<Vec<Resource>>,
        queries: Vec<CpuQuery>,
        ctx: &CollectContext,
    ) -> (Vec<Point>, Vec<PluginError>) {
        let period = ctx.cfg.period_s();
        let mut points = Vec::new();
        for q in queries {
            let _permit = ctx.limit.acquire().await;
            calls.count(GET_METRICS);
            for r in resources.iter() {
                let index = r
                    .attributes
                    .get("index")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0) as u32;
                let who = Arc::new(r.reference());
                let mut end = ctx.window.emit_after + period;
                while end <= ctx.window.end {
                    let avg = cpu(index, end);
                    points.push(Point {
                        metric: "cpu.utilization".into(),
                        unit: Unit::Percent,
                        stat: q.stat,
                        period_s: period as u32,
                        ts: Utc.timestamp_opt(end, 0).single().unwrap_or_default(),
                        value: if q.stat == Stat::Max { avg + 5.0 } else { avg },
                        resource: who.clone(),
                        labels: Default::default(),
                    });
                    end += period;
                }
            }
        }
        (points, Vec::new())
    }

    fn load_prices(explicit: Option<&Path>, data_dir: &Path) -> Result<PriceList, PluginError> {
        PriceList::load(CLOUD, explicit, data_dir, SHIPPED)
    }

    fn price_source() -> Option<Box<dyn PriceSource>> {
        Some(Box::new(FlatPriceSource {
            provider: &PROVIDER,
            cloud: CLOUD,
            shipped: SHIPPED,
            kind: "list",
            example_region: "test-1",
            api: LIST_PRICES,
            noun: "prices",
            options: &[UpdateOption::EndpointUrl],
            help: "Makes a table of machine/small at 0.02 USD per hour in each region asked (the test cloud has no price API; --endpoint-url is accepted and only named in the table's source).",
            fetch: |req, calls| {
                Box::pin(async move {
                    let mut regions = BTreeMap::new();
                    for r in req.regions {
                        calls.count(LIST_PRICES);
                        (req.progress)(r, 1);
                        let price = ListPrice {
                            usd: 0.02,
                            per: "hour".into(),
                        };
                        regions.insert(r.clone(), [("machine/small".to_string(), price)].into());
                    }
                    Ok(PriceList {
                        date: req.date.to_string(),
                        currency: "USD".into(),
                        source: format!(
                            "testcloud price list at {}",
                            req.endpoint_url.unwrap_or("memory")
                        ),
                        regions,
                    })
                })
            },
        }))
    }

    fn estimate(
        &self,
        table: &PriceList,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resources: &[Resource],
        _points: &[Point],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        Estimator::each(CLOUD, table, start, end, resources, |est, r| {
            let ty = r
                .attributes
                .get("machine_type")
                .and_then(|v| v.as_str())
                .unwrap_or("small");
            est.hourly(r, "Machines", format!("machine/{ty}"), || {
                format!("no price for machine type {ty}")
            });
        })
    }

    /// The test cloud bills nothing.
    async fn billed(
        &self,
        _calls: &Self::Session,
        _accounts: &[String],
        _range: BilledRange,
        _resources: &[Resource],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        (Vec::new(), Vec::new())
    }
}
