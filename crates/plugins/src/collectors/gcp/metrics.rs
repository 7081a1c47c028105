//! Cloud Monitoring `projects.timeSeries.list`: exactly one paged call per (metric type,
//! stat) per project, whatever the number of resources: the filter names the metric type and
//! monitored-resource type only, and the answer's series are mapped back to the resources
//! by their resource labels (`instance_id`, `database_id`, `region` + `function_name`,
//! `bucket_name`). Series of resources not in the inventory (other labels, deleted) are
//! dropped.

use super::catalog::{self, GcpMetric, Shape, Target};
use super::client::{Api, Call, Paged};
use crate::cloud::SeriesHead;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use skymeter_model::{Point, PointLabels, Resource, ResourceRef, SmolStr, Stat};
use skymeter_plugin_api::PluginError;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub const TIME_SERIES: Call = Call {
    api: "monitoring.timeSeries.list",
    permission: "monitoring.timeSeries.list",
    role: "roles/monitoring.viewer",
};

pub use crate::cloud::window::{metric_window, MetricWindow};

/// One call (and its pages): a metric type with one aligner.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub metric: &'static GcpMetric,
    pub aligner: &'static str,
    pub stat: Stat,
}

/// The calls for `resources`: every wanted metric whose target kind has at least one
/// resource, once per aligner its shape takes for `stats`.
pub fn plan(resources: &[Resource], wanted: &[&'static GcpMetric], stats: &[Stat]) -> Vec<Query> {
    let mut out = Vec::new();
    for m in wanted {
        if !resources.iter().any(|r| m.target.applies_to(r)) {
            continue;
        }
        for (aligner, stat) in catalog::aligners(m.shape, stats) {
            out.push(Query {
                metric: m,
                aligner,
                stat,
            });
        }
    }
    out
}

/// The labels of a metric's points: `direction` when the metric has one.
fn point_labels(m: &GcpMetric) -> PointLabels {
    if m.direction.is_empty() {
        return PointLabels::default();
    }
    let mut l = skymeter_model::Labels::new();
    l.insert("direction".into(), m.direction.into());
    l.into()
}

/// The key a resource's series carry (see [`Target::key_labels`]).
fn resource_key(project: &str, r: &Resource) -> Option<(Target, String)> {
    Some(match r.kind.as_str() {
        "compute.instance" => (Target::Instance, r.id.clone()),
        "database.instance" => (Target::Sql, format!("{project}:{}", r.id)),
        "function" if Target::RunRevision.applies_to(r) => {
            let service = r.attributes.get("service_name")?.as_str()?;
            (Target::RunRevision, format!("{}/{service}", r.region))
        }
        "function" => (Target::Function, format!("{}/{}", r.region, r.name)),
        "storage.bucket" => (Target::Bucket, r.id.clone()),
        "network.load_balancer" if Target::HttpsLbRule.applies_to(r) => {
            (Target::HttpsLbRule, format!("{}/{}", r.region, r.name))
        }
        "network.nat_gateway" => {
            let router_id = r.attributes.get("router_id")?.as_str()?;
            (
                Target::NatGateway,
                format!("{}/{router_id}/{}", r.region, r.name),
            )
        }
        _ => return None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    time_series: Vec<Series>,
    #[serde(default)]
    next_page_token: Option<String>,
}

impl Paged for Page {
    fn next_page_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    resource: MonitoredResource,
    #[serde(default)]
    points: Vec<ApiPoint>,
}

#[derive(Deserialize, Default)]
struct MonitoredResource {
    #[serde(default)]
    labels: HashMap<String, String>,
}

#[derive(Deserialize)]
struct ApiPoint {
    interval: Interval,
    value: TypedValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Interval {
    end_time: String,
}

/// `TypedValue`: int64 values come as JSON strings; a distribution (ALIGN_DELTA of
/// `execution_times`) as `distributionValue`, read as its `mean`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedValue {
    double_value: Option<f64>,
    int64_value: Option<serde_json::Value>,
    distribution_value: Option<Distribution>,
}

/// The part of a `Distribution` read: `count` (int64, a JSON string) and `mean` (left out
/// when 0, as proto3 JSON leaves out zeros).
#[derive(Deserialize)]
struct Distribution {
    #[serde(default)]
    count: Option<serde_json::Value>,
    #[serde(default)]
    mean: Option<f64>,
}

fn int64(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        v => v.as_f64(),
    }
}

impl TypedValue {
    fn get(&self) -> Option<f64> {
        self.double_value
            .or_else(|| self.int64_value.as_ref().and_then(int64))
            .or_else(|| {
                // An empty period (count 0) has no mean: no point, rather than a 0 ms one.
                let d = self.distribution_value.as_ref()?;
                let count = d.count.as_ref().and_then(int64).unwrap_or(0.0);
                (count > 0.0).then(|| d.mean.unwrap_or(0.0))
            })
    }
}

/// The nearest-rank percentile of `values` (`pct` in 1..=100): the ⌈pct × n / 100⌉-th
/// smallest sample, so always one of the samples and never an interpolation. With 60 s
/// samples in a 300 s period (5 samples) the 95th percentile is their maximum; with 20
/// samples (a 1200 s period) it is the 19th smallest. `None` without samples.
pub fn nearest_rank(values: &mut [f64], pct: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    // Integer arithmetic: 0.95 × 20 is not exactly 19 in floating point.
    let rank = (pct * values.len()).div_ceil(100).clamp(1, values.len());
    Some(values[rank - 1])
}

fn rfc3339(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The query string of one timeSeries.list call.
pub fn query_params(q: &Query, window: MetricWindow, period: i64) -> Vec<(&'static str, String)> {
    let m = q.metric;
    let mut params = vec![
        (
            "filter",
            format!(
                "metric.type = \"{}\" AND resource.type = \"{}\"{}",
                m.metric_type,
                m.target.resource_type(),
                m.extra_filter
            ),
        ),
        ("interval.startTime", rfc3339(window.start)),
        ("interval.endTime", rfc3339(window.end)),
    ];
    if q.aligner == catalog::RAW {
        // Raw samples: no alignment period (ignored with ALIGN_NONE) and no reducer
        // (refused with ALIGN_NONE); the series of a reduced metric are added up here.
        params.push(("aggregation.perSeriesAligner", q.aligner.to_string()));
        params.push(("view", "FULL".to_string()));
        return params;
    }
    params.push(("aggregation.alignmentPeriod", format!("{period}s")));
    let reducer = match (m.reduce, m.shape, q.stat) {
        (false, _, _) => None,
        (true, Shape::Distribution, Stat::P95) => Some("REDUCE_PERCENTILE_95"),
        (true, Shape::Distribution, _) => Some("REDUCE_MEAN"),
        (true, _, _) => Some("REDUCE_SUM"),
    };
    let aligner = match (reducer, m.shape) {
        (Some(_), Shape::Distribution) => "ALIGN_DELTA",
        _ => q.aligner,
    };
    params.push(("aggregation.perSeriesAligner", aligner.to_string()));
    if let Some(reducer) = reducer {
        params.push(("aggregation.crossSeriesReducer", reducer.to_string()));
        for l in m.target.key_labels() {
            params.push(("aggregation.groupByFields", format!("resource.labels.{l}")));
        }
    }
    params.push(("view", "FULL".to_string()));
    params
}

pub struct Fetch {
    pub api: Arc<Api>,
    pub project: String,
    pub window: MetricWindow,
    /// The collector's `delay` that `window` was computed with.
    pub delay: i64,
    pub period: i64,
    pub sample_interval: f64,
    pub limit: Arc<Semaphore>,
}

/// Runs `queries` (at most `limit` calls in flight across projects) and maps the answers to
/// points of `resources`. A failed query is one error; the others go on.
pub async fn fetch(
    f: Fetch,
    resources: &[Resource],
    queries: Vec<Query>,
) -> (Vec<Point>, Vec<PluginError>) {
    let mut index: HashMap<(Target, String), usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        if let Some(k) = resource_key(&f.project, r) {
            index.insert(k, i);
        }
    }
    let refs: Arc<Vec<Arc<ResourceRef>>> =
        Arc::new(resources.iter().map(|r| Arc::new(r.reference())).collect());
    let index = Arc::new(index);
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    for q in queries {
        let f = f.clone();
        let index = index.clone();
        let refs = refs.clone();
        set.spawn(async move {
            let _permit = f.limit.clone().acquire_owned().await;
            let url = f.api.url(
                "monitoring.googleapis.com",
                &format!("/v3/projects/{}/timeSeries", f.project),
            );
            let window = f.window.later(f.delay, q.metric.min_delay_s, f.period);
            let params = query_params(&q, window, f.period);
            let head = SeriesHead::new(
                SmolStr::new_static(q.metric.name),
                q.stat,
                f.period,
                point_labels(q.metric),
            );
            let mut points = Vec::new();
            let target = q.metric.target;
            // ALIGN_NONE (p95 of a numeric metric): the samples per (resource, sample end).
            // A reduced metric's series (one per disk or interface) are added up per
            // resource and sample time, as REDUCE_SUM does for the aligned stats.
            let raw = q.aligner == catalog::RAW;
            let mut samples: HashMap<(usize, i64), Vec<f64>> = HashMap::new();
            let r = f
                .api
                .pages(&TIME_SERIES, &url, &params, |page: Page| {
                    for s in page.time_series {
                        let key: Vec<&str> = target
                            .key_labels()
                            .iter()
                            .map(|l| s.resource.labels.get(*l).map_or("", String::as_str))
                            .collect();
                        let Some(&i) = index.get(&(target, key.join("/"))) else {
                            continue;
                        };
                        for p in s.points {
                            let Ok(end) = DateTime::parse_from_rfc3339(&p.interval.end_time) else {
                                continue;
                            };
                            let end = end.with_timezone(&Utc);
                            let t = end.timestamp();
                            if !window.emits(t) {
                                continue;
                            }
                            let Some(native) = p.value.get() else {
                                continue;
                            };
                            if raw {
                                let s = samples.entry((i, t)).or_default();
                                match s.first_mut() {
                                    Some(sum) if q.metric.reduce => *sum += native,
                                    _ => s.push(native),
                                }
                                continue;
                            }
                            let (value, unit) =
                                catalog::convert(q.metric, q.stat, native, f.sample_interval);
                            points.extend(head.point(t, value, unit, &refs[i]));
                        }
                    }
                })
                .await;
            if raw && r.is_ok() {
                points.extend(percentile_points(
                    &q,
                    samples,
                    &refs,
                    window,
                    f.period,
                    f.sample_interval,
                ));
            }
            let err = r.err().map(|e| {
                e.with("project", f.project.as_str())
                    .with("metric", q.metric.metric_type)
            });
            (points, err)
        });
    }
    crate::cloud::join_fetches(set, 0, "timeSeries.list").await
}

/// The p95 points of raw samples: each sample goes to the alignment period that ends at or
/// after it (periods end on `window.end`'s grid, as Monitoring aligns them), and each
/// (resource, period) gives the nearest-rank 95th percentile of its samples, converted as
/// ALIGN_MAX would be (counters ÷ `sample_interval`).
fn percentile_points(
    q: &Query,
    samples: HashMap<(usize, i64), Vec<f64>>,
    refs: &[Arc<ResourceRef>],
    window: MetricWindow,
    period: i64,
    sample_interval: f64,
) -> Vec<Point> {
    let mut periods: HashMap<(usize, i64), Vec<f64>> = HashMap::new();
    for ((i, t), values) in samples {
        let period_end = window.end - (window.end - t).div_euclid(period) * period;
        periods.entry((i, period_end)).or_default().extend(values);
    }
    let head = SeriesHead::new(
        SmolStr::new_static(q.metric.name),
        q.stat,
        period,
        point_labels(q.metric),
    );
    let mut out = Vec::new();
    for ((i, period_end), mut values) in periods {
        let Some(native) = nearest_rank(&mut values, 95) else {
            continue;
        };
        let (value, unit) = catalog::convert(q.metric, q.stat, native, sample_interval);
        out.extend(head.point(period_end, value, unit, &refs[i]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&mut [], 95), None);
        assert_eq!(nearest_rank(&mut [7.0], 95), Some(7.0));
        // 5 samples (60 s in a 300 s period): ⌈4.75⌉ = 5th, the largest.
        assert_eq!(nearest_rank(&mut [3.0, 1.0, 5.0, 2.0, 4.0], 95), Some(5.0));
        // 20 samples: ⌈19⌉ = 19th, exactly (not 20th through a rounding error).
        let mut v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(nearest_rank(&mut v, 95), Some(19.0));
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&mut v, 95), Some(95.0));
        assert_eq!(nearest_rank(&mut v, 50), Some(50.0));
        let mut v: Vec<f64> = (1..=21).map(f64::from).collect();
        assert_eq!(nearest_rank(&mut v, 95), Some(20.0));
    }

    #[test]
    fn distribution_values_are_read_as_their_mean() {
        let v: TypedValue = serde_json::from_value(serde_json::json!({"distributionValue": {
            "count": "40", "mean": 12500000.0, "sumOfSquaredDeviation": 1.0,
            "bucketOptions": {"exponentialBuckets": {"numFiniteBuckets": 10, "growthFactor": 2, "scale": 1}},
            "bucketCounts": ["0", "40"]
        }}))
        .unwrap();
        assert_eq!(v.get(), Some(12_500_000.0));
        let empty: TypedValue =
            serde_json::from_value(serde_json::json!({"distributionValue": {"count": "0"}}))
                .unwrap();
        assert_eq!(empty.get(), None);
        let i: TypedValue =
            serde_json::from_value(serde_json::json!({"int64Value": "120000"})).unwrap();
        assert_eq!(i.get(), Some(120_000.0));
    }

    /// p95 of `disk.read_iops`, a numeric DELTA metric: asked as raw samples.
    fn disk_p95() -> Query {
        Query {
            metric: catalog::CATALOG
                .iter()
                .find(|m| m.name == "disk.read_iops")
                .unwrap(),
            aligner: catalog::RAW,
            stat: Stat::P95,
        }
    }

    #[test]
    fn p95_of_a_numeric_metric_asks_raw_samples_without_reducer() {
        let q = disk_p95();
        let w = MetricWindow {
            start: 1_700_000_000 - 600,
            end: 1_700_000_000,
            emit_after: 1_700_000_000 - 300,
        };
        let p = query_params(&q, w, 300);
        let names: Vec<&str> = p.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "filter",
                "interval.startTime",
                "interval.endTime",
                "aggregation.perSeriesAligner",
                "view"
            ]
        );
        assert!(p.contains(&("aggregation.perSeriesAligner", "ALIGN_NONE".into())));
    }

    #[test]
    fn raw_samples_go_to_their_period_and_add_up_per_resource() {
        let q = disk_p95();
        let w = MetricWindow {
            start: 6_000 - 600,
            end: 6_000,
            emit_after: 6_000 - 300,
        };
        let refs = vec![Arc::new(ResourceRef {
            provider: "gcp".into(),
            account: "p".into(),
            region: "us-central1".into(),
            id: "1".into(),
        })];
        let mut samples = HashMap::new();
        // Period (5700, 6000]: 5 samples (5760 … 6000), the max is 600 → 10/s.
        for (k, v) in [120.0, 600.0, 240.0, 60.0, 300.0].into_iter().enumerate() {
            samples.insert((0, 5_760 + 60 * k as i64), vec![v]);
        }
        let pts = percentile_points(&q, samples, &refs, w, 300, 60.0);
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].ts.timestamp(), 6_000);
        assert_eq!(pts[0].value, 10.0);
        assert_eq!(pts[0].unit, skymeter_model::Unit::CountPerSecond);
        assert_eq!(pts[0].stat, Stat::P95);
    }

    #[test]
    fn late_metrics_ask_for_an_earlier_window() {
        let w = metric_window(36_000 - 300, 36_000, 300, 300);
        assert_eq!(w.later(300, 0, 300), w);
        assert_eq!(w.later(900, 900, 300), w);
        let l = w.later(300, 900, 300);
        assert_eq!(
            (l.start, l.end, l.emit_after),
            (w.start - 600, w.end - 600, w.emit_after - 600)
        );
        // The shift is whole periods: 600 s more at a 60 s period is 10 periods.
        let w = metric_window(36_000 - 60, 36_000, 300, 60);
        assert_eq!(w.later(300, 900, 60).end, w.end - 600);
    }

    #[test]
    fn window_is_aligned_and_delayed() {
        // 10:07:30 − 5 min delay → ends 10:00; asks 2 periods, emits the last one.
        let w = metric_window(36_450 - 300, 36_450, 300, 300);
        assert_eq!(w.end, 36_000);
        assert_eq!(w.start, 36_000 - 600);
        assert_eq!(w.emit_after, 36_000 - 300);
    }

    #[test]
    fn query_names_metric_resource_interval_and_aligner() {
        let disk = catalog::CATALOG
            .iter()
            .find(|m| m.name == "disk.read_iops")
            .unwrap();
        let q = Query {
            metric: disk,
            aligner: "ALIGN_RATE",
            stat: Stat::Avg,
        };
        let w = MetricWindow {
            start: 1_700_000_000 - 600,
            end: 1_700_000_000,
            emit_after: 1_700_000_000 - 300,
        };
        let p = query_params(&q, w, 300);
        let get = |k: &str| -> Vec<&str> {
            p.iter()
                .filter(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(
            get("filter"),
            ["metric.type = \"compute.googleapis.com/instance/disk/read_ops_count\" AND resource.type = \"gce_instance\""]
        );
        assert_eq!(get("interval.endTime"), ["2023-11-14T22:13:20Z"]);
        assert_eq!(get("interval.startTime"), ["2023-11-14T22:03:20Z"]);
        assert_eq!(get("aggregation.alignmentPeriod"), ["300s"]);
        assert_eq!(get("aggregation.perSeriesAligner"), ["ALIGN_RATE"]);
        assert_eq!(get("aggregation.crossSeriesReducer"), ["REDUCE_SUM"]);
        assert_eq!(
            get("aggregation.groupByFields"),
            ["resource.labels.instance_id"]
        );
    }
}
