//! Metrics through the Azure Monitor batch API only (`metrics:getBatch`, DESIGN §4): one
//! call per (subscription, region, resource type) and 50 resources, with every metric name
//! of that type and every aggregation asked in the one call. The per-resource ARM metrics
//! API (one call per resource) throttles quickly and is never used.

use super::calls;
use super::catalog::{AzMetric, Service, Shape, MEMORY_USAGE};
use super::client::{Client, Needs, MONITORING_READER};
use crate::cloud::SeriesHead;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use futures::StreamExt;
use serde::Deserialize;
use skymeter_model::{Point, PointLabels, Resource, ResourceRef, SmolStr, Stat, Unit};
use skymeter_plugin_api::{ErrorKind, MetricSelection, PluginError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The API maximum of resource ids in one getBatch call.
pub const MAX_RESOURCES_PER_CALL: usize = 50;
/// The API maximum of metric names in one call.
pub const MAX_METRICS_PER_CALL: usize = 20;
pub const API_VERSION: &str = "2023-10-01";
/// Samples of the per-minute VM totals (Disk Read Bytes, Network In Total) are one minute.
const SAMPLE_S: f64 = 60.0;

pub use crate::cloud::window::{metric_window, MetricWindow};

/// The ISO 8601 duration Azure Monitor accepts as `interval`.
pub fn interval(secs: i64) -> Option<&'static str> {
    Some(match secs {
        60 => "PT1M",
        300 => "PT5M",
        900 => "PT15M",
        1800 => "PT30M",
        3600 => "PT1H",
        21600 => "PT6H",
        43200 => "PT12H",
        86400 => "P1D",
        _ => return None,
    })
}

/// The Azure aggregation of a stat.
pub fn aggregation(stat: Stat) -> &'static str {
    match stat {
        Stat::Avg => "average",
        Stat::Max => "maximum",
        Stat::Min => "minimum",
        Stat::Sum => "total",
        _ => "count",
    }
}

/// One planned getBatch call.
#[derive(Debug, Clone)]
pub struct Call {
    pub subscription: String,
    pub region: String,
    pub service: Service,
    /// Indices into the collection's resources.
    pub resources: Vec<usize>,
    pub metrics: Vec<&'static AzMetric>,
    pub aggregations: Vec<&'static str>,
}

/// Groups the resources by (subscription, region, type) and cuts each group into calls of
/// 50 resources (and 20 metric names).
pub fn plan(resources: &[Resource], metrics: &[&'static AzMetric], stats: &[Stat]) -> Vec<Call> {
    let mut groups: BTreeMap<(&str, &str, Service), Vec<usize>> = BTreeMap::new();
    for (i, r) in resources.iter().enumerate() {
        let Some(service) = Service::ALL
            .into_iter()
            .find(|s| s.native_type() == r.native_type)
        else {
            continue;
        };
        // Basic load balancers publish no Azure Monitor metrics.
        if service == Service::LoadBalancer
            && r.attributes.get("sku").and_then(|v| v.as_str()) == Some("Basic")
        {
            continue;
        }
        groups
            .entry((r.account.as_str(), r.region.as_str(), service))
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for ((sub, region, service), ids) in groups {
        let ms: Vec<&'static AzMetric> = metrics
            .iter()
            .copied()
            .filter(|m| m.service == service)
            .collect();
        if ms.is_empty() {
            continue;
        }
        for names in ms.chunks(MAX_METRICS_PER_CALL) {
            let aggregations = aggregations(names, stats);
            for chunk in ids.chunks(MAX_RESOURCES_PER_CALL) {
                out.push(Call {
                    subscription: sub.to_string(),
                    region: region.to_string(),
                    service,
                    resources: chunk.to_vec(),
                    metrics: names.to_vec(),
                    aggregations: aggregations.clone(),
                });
            }
        }
    }
    out
}

/// The aggregations one call needs: the stats asked, `total` for event counts, and for
/// available memory the opposite extreme too (usage max = available min).
fn aggregations(metrics: &[&AzMetric], stats: &[Stat]) -> Vec<&'static str> {
    let mut set = BTreeSet::new();
    for m in metrics {
        match m.shape {
            Shape::Total => {
                set.insert("total");
            }
            Shape::AvailableMemory => {
                for s in stats {
                    set.insert(aggregation(*s));
                    match s {
                        Stat::Max => set.insert("minimum"),
                        Stat::Min => set.insert("maximum"),
                        _ => false,
                    };
                }
            }
            _ => {
                for s in stats {
                    set.insert(aggregation(*s));
                }
            }
        }
    }
    // A stable order: Azure's own (average, count, maximum, minimum, total).
    set.into_iter().collect()
}

#[derive(Debug, Deserialize)]
struct BatchResponse {
    #[serde(default)]
    values: Vec<ResourceValues>,
}

#[derive(Debug, Deserialize)]
struct ResourceValues {
    resourceid: String,
    #[serde(default)]
    value: Vec<MetricValues>,
}

#[derive(Debug, Deserialize)]
struct MetricValues {
    name: Localizable,
    #[serde(default)]
    timeseries: Vec<TimeSeries>,
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Localizable {
    value: String,
}

#[derive(Debug, Deserialize)]
struct TimeSeries {
    #[serde(default)]
    data: Vec<DataPoint>,
    /// The dimension values of a split series (`[{name: {value: "Direction"}, value: "Out"}]`).
    #[serde(default)]
    metadatavalues: Vec<MetadataValue>,
}

#[derive(Debug, Deserialize)]
struct MetadataValue {
    name: Localizable,
    #[serde(default)]
    value: String,
}

impl TimeSeries {
    fn dimension(&self, name: &str) -> Option<&str> {
        self.metadatavalues
            .iter()
            .find(|m| m.name.value.eq_ignore_ascii_case(name))
            .map(|m| m.value.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct DataPoint {
    #[serde(rename = "timeStamp")]
    time_stamp: DateTime<Utc>,
    average: Option<f64>,
    maximum: Option<f64>,
    minimum: Option<f64>,
    total: Option<f64>,
    count: Option<f64>,
}

impl DataPoint {
    fn get(&self, stat: Stat) -> Option<f64> {
        match stat {
            Stat::Avg => self.average,
            Stat::Max => self.maximum,
            Stat::Min => self.minimum,
            Stat::Sum => self.total,
            _ => self.count,
        }
    }
}

/// What every call of one subscription's metrics shares.
pub struct Fetch {
    pub client: Arc<Client>,
    /// `metrics_endpoint`, `{region}` to be replaced.
    pub endpoint: String,
    pub token_scope: String,
    pub stats: Vec<Stat>,
    /// The collector's period and window.
    pub period: i64,
    pub window: MetricWindow,
    /// Windows of types with a fixed interval, keyed by interval.
    pub fixed_windows: HashMap<i64, MetricWindow>,
    /// Whether the task wants a normalized metric.
    pub wanted: MetricSelection,
    /// Bounds the getBatch calls in flight across subscriptions (`max_concurrency`).
    pub limit: Arc<Semaphore>,
}

impl Fetch {
    fn window_of(&self, service: Service) -> (i64, MetricWindow) {
        match service.fixed_interval() {
            Some(p) => (
                p,
                self.fixed_windows.get(&p).copied().unwrap_or(self.window),
            ),
            None => (self.period, self.window),
        }
    }

    pub fn url(&self, call: &Call) -> String {
        let (period, w) = self.window_of(call.service);
        let base = self.endpoint.replace("{region}", &call.region);
        let mut url = match reqwest::Url::parse(&format!(
            "{}/subscriptions/{}/metrics:getBatch",
            base.trim_end_matches('/'),
            call.subscription
        )) {
            Ok(u) => u,
            Err(_) => return base,
        };
        let ts = |t: i64| {
            Utc.timestamp_opt(t, 0)
                .single()
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        };
        let names: Vec<&str> = call.metrics.iter().map(|m| m.azure).collect();
        url.query_pairs_mut()
            .append_pair("metricnamespace", call.service.native_type())
            .append_pair("metricnames", &names.join(","))
            .append_pair("starttime", &ts(w.start))
            .append_pair("endtime", &ts(w.end))
            .append_pair("interval", interval(period).unwrap_or("PT5M"))
            .append_pair("aggregation", &call.aggregations.join(","));
        if call.metrics.iter().any(|m| m.by_direction.is_some()) {
            url.query_pairs_mut()
                .append_pair("filter", "Direction eq '*'");
        }
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        url.into()
    }

    /// Runs the calls of `plan` over `resources` (what its indices point into), at most
    /// `limit` at once.
    pub async fn run(
        &self,
        resources: &[Resource],
        plan: Vec<Call>,
    ) -> (Vec<Point>, Vec<PluginError>) {
        let mut results = plan
            .into_iter()
            .map(|c| async move {
                let _permit = self.limit.acquire().await;
                self.one(resources, c).await
            })
            .collect::<futures::stream::FuturesUnordered<_>>();
        let mut points = Vec::new();
        let mut errors = Vec::new();
        while let Some((p, e)) = results.next().await {
            points.extend(p);
            errors.extend(e);
        }
        (points, errors)
    }

    async fn one(&self, resources: &[Resource], call: Call) -> (Vec<Point>, Vec<PluginError>) {
        let body = serde_json::json!({
            "resourceids": call.resources.iter().map(|i| resources[*i].id.as_str()).collect::<Vec<_>>()
        });
        let url = self.url(&call);
        let ctx = |e: PluginError| {
            e.with("subscription", call.subscription.as_str())
                .with("region", call.region.as_str())
                .with("namespace", call.service.native_type())
        };
        let answer = match self
            .client
            .send(
                calls::GET_BATCH,
                Needs {
                    action: "Microsoft.Insights/metrics/read",
                    role: MONITORING_READER,
                },
                &self.token_scope,
                reqwest::Method::POST,
                &url,
                Some(&body),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => return (Vec::new(), vec![ctx(e)]),
        };
        let parsed: BatchResponse = match serde_json::from_value(answer) {
            Ok(p) => p,
            Err(e) => {
                return (
                    Vec::new(),
                    vec![ctx(PluginError::new(
                        ErrorKind::BadResponse,
                        format!(
                            "{}: the answer is not a metrics batch result: {e}",
                            calls::GET_BATCH
                        ),
                    )
                    .with("api", calls::GET_BATCH))],
                )
            }
        };
        let by_id: HashMap<String, usize> = call
            .resources
            .iter()
            .map(|i| (resources[*i].id.to_ascii_lowercase(), *i))
            .collect();
        let (period, w) = self.window_of(call.service);
        let mut points = Vec::new();
        let mut errors = Vec::new();
        for rv in parsed.values {
            let Some(&idx) = by_id.get(&rv.resourceid.to_ascii_lowercase()) else {
                continue;
            };
            let r = &resources[idx];
            // One per resource, shared by its points.
            let rref = std::sync::Arc::new(ResourceRef {
                provider: SmolStr::new_static("azure"),
                account: r.account.as_str().into(),
                region: r.region.as_str().into(),
                id: r.id.as_str().into(),
            });
            let memory_bytes = r
                .attributes
                .get("memory_mib")
                .and_then(|v| v.as_f64())
                .map(|m| m * 1024.0 * 1024.0);
            for mv in rv.value {
                if mv
                    .error_code
                    .as_deref()
                    .is_some_and(|c| !c.eq_ignore_ascii_case("Success"))
                {
                    errors.push(ctx(PluginError::new(
                        ErrorKind::BadResponse,
                        format!(
                            "{}: metric \"{}\" of {}: {} {}",
                            calls::GET_BATCH,
                            mv.name.value,
                            r.id,
                            mv.error_code.unwrap_or_default(),
                            mv.error_message.unwrap_or_default()
                        ),
                    )));
                    continue;
                }
                let Some(&m) = call
                    .metrics
                    .iter()
                    .find(|m| m.azure.eq_ignore_ascii_case(&mv.name.value))
                else {
                    continue;
                };
                for ts in &mv.timeseries {
                    // A series split by direction takes that direction's name.
                    let split;
                    let m = match m.by_direction {
                        Some((out, into)) => {
                            let name = match ts.dimension("Direction") {
                                Some(d) if d.eq_ignore_ascii_case("Out") => out,
                                Some(d) if d.eq_ignore_ascii_case("In") => into,
                                _ => continue,
                            };
                            split = AzMetric { name, ..*m };
                            &split
                        }
                        None => m,
                    };
                    for dp in &ts.data {
                        let end = dp.time_stamp.timestamp() + period;
                        if !w.emits(end) {
                            continue;
                        }
                        let mut push = |name: &str, unit: Unit, stat: Stat, value: f64| {
                            if self.wanted.matches(name) {
                                let head =
                                    SeriesHead::new(name.into(), stat, period, PointLabels::new());
                                points.extend(head.point(end, value, unit, &rref));
                            }
                        };
                        emit(m, dp, &self.stats, memory_bytes, &mut push);
                    }
                }
            }
        }
        (points, errors)
    }
}

/// The normalized values of one data point (the catalog's shapes).
fn emit(
    m: &AzMetric,
    dp: &DataPoint,
    stats: &[Stat],
    memory_bytes: Option<f64>,
    push: &mut impl FnMut(&str, Unit, Stat, f64),
) {
    match m.shape {
        Shape::Total => {
            if let Some(v) = dp.total {
                push(m.name, m.unit, Stat::Sum, v);
            }
        }
        Shape::Gauge => {
            for s in stats {
                if let Some(v) = dp.get(*s) {
                    let unit = if *s == Stat::Count {
                        Unit::Count
                    } else {
                        m.unit
                    };
                    push(m.name, unit, *s, v);
                }
            }
        }
        Shape::PerMinute => {
            for s in stats {
                if let Some(v) = dp.get(*s) {
                    match s {
                        Stat::Sum => push(m.name, m.sum_unit, *s, v),
                        Stat::Count => push(m.name, Unit::Count, *s, v),
                        _ => push(m.name, m.unit, *s, v / SAMPLE_S),
                    }
                }
            }
        }
        Shape::AvailableMemory => {
            for s in stats {
                if let Some(v) = dp.get(*s) {
                    let unit = if *s == Stat::Count {
                        Unit::Count
                    } else {
                        m.unit
                    };
                    push(m.name, unit, *s, v);
                }
                let Some(total) = memory_bytes.filter(|t| *t > 0.0) else {
                    continue;
                };
                let available = match s {
                    Stat::Avg => dp.average,
                    Stat::Max => dp.minimum,
                    Stat::Min => dp.maximum,
                    _ => None,
                };
                if let Some(a) = available {
                    push(
                        MEMORY_USAGE,
                        Unit::Percent,
                        *s,
                        (100.0 * (1.0 - a / total)).clamp(0.0, 100.0),
                    );
                }
            }
        }
    }
}
