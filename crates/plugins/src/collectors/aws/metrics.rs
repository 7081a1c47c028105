//! CloudWatch `GetMetricData`: one query per (resource, metric, stat) asked, 500 queries per
//! call (the API maximum), a bounded number of calls in flight, answers mapped back by query
//! id. Nothing else reads CloudWatch data: GetMetricStatistics would take one call per
//! resource and metric.

use super::calls::ApiCalls;
use super::catalog::{CwMetric, Shape, CWAGENT_MEMORY};
use super::errors::api_error;
use crate::cloud::SeriesHead;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use skymeter_model::{Labels, Point, PointLabels, Resource, ResourceRef, SmolStr, Stat, Unit};
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The API maximum of queries in one `GetMetricData` call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// One day, the period of S3 storage metrics.
pub const DAY: i64 = 86_400;

pub use crate::cloud::window::{metric_window, MetricWindow};

/// The window of the daily S3 metrics: the last three whole days, so that the newest daily
/// value (published hours after its day ends) is in the answer.
pub fn daily_window(req_end: i64) -> MetricWindow {
    let end = req_end.div_euclid(DAY) * DAY;
    MetricWindow {
        start: end - 3 * DAY,
        end,
        emit_after: end - 3 * DAY,
    }
}

/// The dimensions of one CloudWatch metric, shared by every query of it.
pub type Dims = Arc<[(String, String)]>;

/// CWAgent dimension sets per instance id.
pub type CwAgentDims = HashMap<String, Vec<Dims>>;

/// One query: which resource, metric and stat a query id stands for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Index into the resources the plan was made for.
    pub resource: u32,
    pub metric: &'static CwMetric,
    /// The record stat asked; [`statistic`] names it for CloudWatch. One byte, not the name:
    /// a plan holds a query per resource × metric × stat (240,000 for 10,000 instances).
    pub stat: Stat,
    /// Dimensions found by ListMetrics (CWAgent); `None` = the catalog's dimension.
    pub dims: Option<Dims>,
}

/// The CloudWatch statistic that gives a record stat.
pub fn statistic(stat: Stat) -> &'static str {
    match stat {
        Stat::Avg => "Average",
        Stat::Max => "Maximum",
        Stat::Min => "Minimum",
        Stat::Sum => "Sum",
        Stat::Count => "SampleCount",
        Stat::P50 => "p50",
        Stat::P95 => "p95",
        Stat::P99 => "p99",
        Stat::Last => "Average",
    }
}

/// What to ask: queries over the regular window and the daily (S3) queries.
#[derive(Debug, Default)]
pub struct Plan {
    pub regular: Vec<Query>,
    pub daily: Vec<Query>,
}

impl Plan {
    /// GetMetricData calls the plan takes (without pages).
    pub fn calls(&self) -> usize {
        self.regular.len().div_ceil(MAX_QUERIES_PER_CALL)
            + self.daily.len().div_ceil(MAX_QUERIES_PER_CALL)
    }

    /// Metrics requested, CloudWatch's billing unit.
    pub fn metrics(&self) -> usize {
        self.regular.len() + self.daily.len()
    }
}

/// What the plan is made of.
pub struct Wanted<'a> {
    /// Catalog entries asked for (services, `ec2_metrics` and the metric selection applied).
    pub metrics: Vec<&'static CwMetric>,
    pub stats: &'a [Stat],
    /// CWAgent dimension sets per instance id, from ListMetrics.
    pub cwagent: &'a CwAgentDims,
}

/// The CloudWatch namespace of a resource's own metrics: by kind, and for a load balancer by
/// its type (gateway load balancers have none asked).
pub fn namespace_of(r: &Resource) -> Option<&'static str> {
    Some(match r.kind.as_str() {
        "compute.instance" => "AWS/EC2",
        "database.instance" => "AWS/RDS",
        "function" => "AWS/Lambda",
        "storage.bucket" => "AWS/S3",
        "network.nat_gateway" => "AWS/NATGateway",
        "network.load_balancer" => match r.attributes.get("lb_type").and_then(|v| v.as_str()) {
            Some("application") => super::catalog::ALB_NAMESPACE,
            Some("network") => super::catalog::NLB_NAMESPACE,
            _ => return None,
        },
        _ => return None,
    })
}

/// The value of the dimension that names `r` in CloudWatch: its id, except for a load
/// balancer, named by the part of its ARN after `loadbalancer/` (`app/web/50dc6c495c0c9188`).
pub fn dimension_value(r: &Resource) -> &str {
    if r.kind == "network.load_balancer" {
        if let Some((_, suffix)) = r.id.split_once(":loadbalancer/") {
            return suffix;
        }
    }
    &r.id
}

/// Every query for `resources`.
pub fn plan(resources: &[Resource], wanted: &Wanted<'_>) -> Plan {
    let mut plan = Plan::default();
    for (i, r) in resources.iter().enumerate() {
        let Some(namespace) = namespace_of(r) else {
            continue;
        };
        for m in &wanted.metrics {
            let dims_sets: Vec<Option<Dims>> = if m.namespace == CWAGENT_MEMORY.namespace {
                if r.kind != "compute.instance" {
                    continue;
                }
                match wanted.cwagent.get(&r.id) {
                    // One instance may publish under one dimension set; take the first.
                    Some(sets) => sets.iter().take(1).cloned().map(Some).collect(),
                    None => continue,
                }
            } else if m.namespace == namespace {
                vec![None]
            } else {
                continue;
            };
            for dims in dims_sets {
                let push = |plan: &mut Plan, stat: Stat| {
                    let q = Query {
                        resource: i as u32,
                        metric: m,
                        stat,
                        dims: dims.clone(),
                    };
                    if m.shape == Shape::Daily {
                        plan.daily.push(q);
                    } else {
                        plan.regular.push(q);
                    }
                };
                match m.shape {
                    Shape::Gauge | Shape::Counter => {
                        for s in wanted.stats {
                            push(&mut plan, *s);
                        }
                    }
                    Shape::Total => push(&mut plan, Stat::Sum),
                    Shape::Daily => push(&mut plan, Stat::Avg),
                    Shape::Peak => push(&mut plan, Stat::Max),
                }
            }
        }
    }
    // The plan is held while every answer comes in; give back what doubling left unused.
    plan.regular.shrink_to_fit();
    plan.daily.shrink_to_fit();
    plan
}

/// How values of a query are turned into records.
#[derive(Debug, Clone, Copy)]
pub struct Scaling {
    /// The CloudWatch period asked for, seconds.
    pub period: i64,
    /// Seconds between two samples of EC2 counters (divides max/min/p95).
    pub sample_interval: f64,
}

/// The CloudWatch statistic a query asks for.
fn cloudwatch_stat(q: &Query) -> &'static str {
    match (q.metric.shape, q.stat) {
        (Shape::Counter, Stat::Avg) => "Sum",
        _ => statistic(q.stat),
    }
}

/// The unit and divisor of a query's values.
fn conversion(q: &Query, s: &Scaling) -> (Unit, f64) {
    match (q.metric.shape, q.stat) {
        (_, Stat::Count) => (Unit::Count, 1.0),
        (Shape::Counter, Stat::Avg) => (q.metric.unit, s.period as f64),
        (Shape::Counter, Stat::Sum) => (q.metric.sum_unit, 1.0),
        (Shape::Counter, _) => (q.metric.unit, s.sample_interval),
        _ => (q.metric.unit, 1.0),
    }
}

/// The labels every point of `m` carries, built once per metric and shared by its points.
fn point_labels(m: &CwMetric) -> PointLabels {
    let mut labels = Labels::new();
    if let Some(s) = m.source {
        labels.insert("source".into(), s.into());
    }
    for (n, v) in m.fixed {
        if *n == "StorageType" {
            labels.insert("storage_type".into(), (*v).into());
        }
    }
    labels.into()
}

/// A map key for a catalog entry: entries are statics, so their address names them.
fn metric_key(m: &'static CwMetric) -> usize {
    m as *const CwMetric as usize
}

/// Runs `queries` over `window`, `MAX_QUERIES_PER_CALL` per call, at most `limit` calls at
/// once. Points of periods ending in `(emit_after, end]` go to the result; `keep` may drop
/// more (the daily metrics keep only values newer than the last emitted). Calls that fail
/// (after the SDK's retries) become errors; the other calls' points are kept.
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    resources: Arc<Vec<Resource>>,
    queries: Arc<Vec<Query>>,
    window: MetricWindow,
    period: i64,
    scaling: Scaling,
    limit: Arc<Semaphore>,
    calls: Arc<ApiCalls>,
) -> (Vec<Point>, Vec<PluginError>) {
    // What every point repeats, made once: the points of a large collection are most of its
    // memory, and each then holds copies of small inline strings and a shared label set
    // instead of allocations of its own (see `docs/benchmarks.md`).
    let refs: Arc<Vec<Arc<ResourceRef>>> =
        Arc::new(resources.iter().map(|r| Arc::new(r.reference())).collect());
    let mut by_metric: HashMap<usize, PointLabels> = HashMap::new();
    for q in queries.iter() {
        by_metric
            .entry(metric_key(q.metric))
            .or_insert_with(|| point_labels(q.metric));
    }
    let by_metric = Arc::new(by_metric);
    let emitted_periods = ((window.end - window.start.max(window.emit_after)) / period).max(1);
    // Room for what the collector adds after (its self-metrics, one per API called): the
    // points vector is the largest allocation of a run, and growing it by one would double it.
    let expected_points = queries.len() * emitted_periods as usize + 64;

    let mut set = tokio::task::JoinSet::new();
    for first in (0..queries.len()).step_by(MAX_QUERIES_PER_CALL) {
        let client = client.clone();
        let limit = limit.clone();
        let calls = calls.clone();
        let region = region.to_string();
        let resources = resources.clone();
        let queries = queries.clone();
        let refs = refs.clone();
        let by_metric = by_metric.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let last = (first + MAX_QUERIES_PER_CALL).min(queries.len());
            // Built inside the task, after the permit, so that only the calls in flight hold
            // request bodies; built again for a further page rather than kept or cloned.
            let build = || -> Vec<MetricDataQuery> {
                (first..last)
                    .map(|k| {
                        let q = &queries[k];
                        let r = &resources[q.resource as usize];
                        let mut metric = Metric::builder()
                            .namespace(q.metric.namespace)
                            .metric_name(q.metric.cloudwatch);
                        match &q.dims {
                            Some(dims) => {
                                for (n, v) in dims.iter() {
                                    metric = metric
                                        .dimensions(Dimension::builder().name(n).value(v).build());
                                }
                            }
                            None => {
                                metric = metric.dimensions(
                                    Dimension::builder()
                                        .name(q.metric.dimension)
                                        .value(dimension_value(r))
                                        .build(),
                                );
                                for (n, v) in q.metric.fixed {
                                    metric = metric.dimensions(
                                        Dimension::builder().name(*n).value(*v).build(),
                                    );
                                }
                            }
                        }
                        MetricDataQuery::builder()
                            .id(format!("q{k}"))
                            .metric_stat(
                                MetricStat::builder()
                                    .metric(metric.build())
                                    .period(period as i32)
                                    .stat(cloudwatch_stat(q))
                                    .build(),
                            )
                            .return_data(true)
                            .build()
                    })
                    .collect()
            };
            let count = (last - first) as u64;
            let mut points = Vec::new();
            let mut errors = Vec::new();
            let mut token: Option<String> = None;
            loop {
                calls.count("cloudwatch:GetMetricData");
                calls.count_metrics(count);
                let answer = client
                    .get_metric_data()
                    .set_metric_data_queries(Some(build()))
                    .start_time(AwsDateTime::from_secs(window.start))
                    .end_time(AwsDateTime::from_secs(window.end))
                    .set_next_token(token.take())
                    .send()
                    .await;
                let answer = match answer {
                    Ok(a) => a,
                    Err(e) => {
                        errors.push(api_error(
                            "GetMetricData",
                            "cloudwatch:GetMetricData",
                            &region,
                            &e,
                        ));
                        return (points, errors);
                    }
                };
                for m in answer.metric_data_results() {
                    let id = m.id().unwrap_or_default();
                    let Some(k) = id
                        .strip_prefix('q')
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|k| (first..last).contains(k))
                    else {
                        errors.push(
                            PluginError::new(
                                ErrorKind::BadResponse,
                                format!("GetMetricData answered an unknown query id {id:?}"),
                            )
                            .with("region", region.as_str()),
                        );
                        continue;
                    };
                    let q = &queries[k];
                    let resource = &refs[q.resource as usize];
                    let labels = by_metric[&metric_key(q.metric)].clone();
                    let head =
                        SeriesHead::new(SmolStr::new_static(q.metric.name), q.stat, period, labels);
                    let (unit, divisor) = conversion(q, &scaling);
                    for (t, v) in m.timestamps().iter().zip(m.values()) {
                        // CloudWatch stamps a period with its start; records carry its end.
                        let end = t.secs() + period;
                        if window.emits(end) {
                            points.extend(head.point(end, v / divisor, unit, resource));
                        }
                    }
                }
                match answer.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => return (points, errors),
                }
            }
        });
    }
    crate::cloud::join_fetches(set, expected_points, "GetMetricData").await
}

/// CWAgent `mem_used_percent` dimension sets per instance id (ListMetrics, every page):
/// the agent's `append_dimensions` decide which dimensions it publishes with, so the query
/// must use exactly those.
pub async fn cwagent_dimensions(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    calls: &ApiCalls,
) -> Result<CwAgentDims, PluginError> {
    let mut out: CwAgentDims = HashMap::new();
    let mut pages = client
        .list_metrics()
        .namespace(CWAGENT_MEMORY.namespace)
        .metric_name(CWAGENT_MEMORY.cloudwatch)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        calls.count("cloudwatch:ListMetrics");
        let page =
            page.map_err(|e| api_error("ListMetrics", "cloudwatch:ListMetrics", region, &e))?;
        for m in page.metrics() {
            let dims: Vec<(String, String)> = m
                .dimensions()
                .iter()
                .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
                .collect();
            let Some(id) = dims
                .iter()
                .find(|(n, _)| n == "InstanceId")
                .map(|(_, v)| v.clone())
            else {
                continue;
            };
            out.entry(id).or_default().push(dims.into());
        }
    }
    // Prefer the set with the fewest dimensions (InstanceId alone when published).
    for sets in out.values_mut() {
        sets.sort_by_key(|s| s.len());
    }
    Ok(out)
}
