//! Cloud Monitoring `projects.timeSeries.list`: exactly one paged call per (metric type,
//! stat) per project, whatever the number of resources: the filter names the metric type and
//! monitored-resource type only, and the answer's series are mapped back to the resources
//! by their resource labels (`instance_id`, `database_id`, `region` + `function_name`,
//! `bucket_name`). Series of resources not in the inventory (other labels, deleted) are
//! dropped.

use super::catalog::{self, GcpMetric, Shape, Target};
use super::client::{Api, Call, Paged};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use skymeter_model::{Point, PointLabels, Resource, ResourceRef, SmolStr, Stat};
use skymeter_plugin::PluginError;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub const TIME_SERIES: Call = Call {
    api: "monitoring.timeSeries.list",
    permission: "monitoring.timeSeries.list",
    role: "roles/monitoring.viewer",
};

/// The window of a collection: `[start, end)` aligned to the period, and the earliest
/// period end that is emitted (`emit_after`, exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricWindow {
    pub start: i64,
    pub end: i64,
    pub emit_after: i64,
}

/// end = floor(window.end − delay, period); the query asks for max(window length, 2 ×
/// period) so that a lagging bucket does not leave the answer empty, and emits the periods
/// that end in `(end − max(period, window length), end]` (as the aws collector does).
pub fn metric_window(req_start: i64, req_end: i64, delay: i64, period: i64) -> MetricWindow {
    let end = (req_end - delay).div_euclid(period) * period;
    let len = (req_end - req_start).max(period);
    let len = (len + period - 1).div_euclid(period) * period;
    MetricWindow {
        start: end - len.max(2 * period),
        end,
        emit_after: end - len,
    }
}

/// `window` moved back by whole periods so that it ends at least `min_delay` before the
/// collection's end, for metrics whose data shows up later than `delay` allows.
pub fn later_window(window: MetricWindow, delay: i64, min_delay: i64, period: i64) -> MetricWindow {
    let extra = min_delay - delay;
    if extra <= 0 {
        return window;
    }
    let shift = (extra + period - 1).div_euclid(period) * period;
    MetricWindow {
        start: window.start - shift,
        end: window.end - shift,
        emit_after: window.emit_after - shift,
    }
}

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

/// `TypedValue`: int64 values come as JSON strings.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedValue {
    double_value: Option<f64>,
    int64_value: Option<serde_json::Value>,
}

impl TypedValue {
    fn get(&self) -> Option<f64> {
        self.double_value.or_else(|| match &self.int64_value {
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            Some(v) => v.as_f64(),
            None => None,
        })
    }
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
        ("aggregation.alignmentPeriod", format!("{period}s")),
    ];
    let reducer = match (m.reduce, m.shape, q.aligner) {
        (false, _, _) => None,
        (true, Shape::Distribution, "ALIGN_PERCENTILE_95") => Some("REDUCE_PERCENTILE_95"),
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
            let window = later_window(f.window, f.delay, q.metric.min_delay_s, f.period);
            let params = query_params(&q, window, f.period);
            let labels = PointLabels::default();
            let mut points = Vec::new();
            let target = q.metric.target;
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
                            if t <= window.emit_after || t > window.end {
                                continue;
                            }
                            let Some(native) = p.value.get() else {
                                continue;
                            };
                            let (value, unit) =
                                catalog::convert(q.metric, q.stat, native, f.sample_interval);
                            if !value.is_finite() {
                                continue;
                            }
                            points.push(Point {
                                metric: SmolStr::new_static(q.metric.name),
                                unit,
                                stat: q.stat,
                                period_s: f.period as u32,
                                ts: end,
                                value,
                                resource: refs[i].clone(),
                                labels: labels.clone(),
                            });
                        }
                    }
                })
                .await;
            let err = r.err().map(|e| {
                e.with("project", f.project.as_str())
                    .with("metric", q.metric.metric_type)
            });
            (points, err)
        });
    }
    let mut points = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((p, e)) => {
                points.extend(p);
                errors.extend(e);
            }
            Err(e) => errors.push(PluginError::new(
                skymeter_plugin::ErrorKind::Other,
                format!("a timeSeries.list task failed: {e}"),
            )),
        }
    }
    (points, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_metrics_ask_for_an_earlier_window() {
        let w = metric_window(36_000 - 300, 36_000, 300, 300);
        assert_eq!(later_window(w, 300, 0, 300), w);
        assert_eq!(later_window(w, 900, 900, 300), w);
        let l = later_window(w, 300, 900, 300);
        assert_eq!(
            (l.start, l.end, l.emit_after),
            (w.start - 600, w.end - 600, w.emit_after - 600)
        );
        // The shift is whole periods: 600 s more at a 60 s period is 10 periods.
        let w = metric_window(36_000 - 60, 36_000, 300, 60);
        assert_eq!(later_window(w, 300, 900, 60).end, w.end - 600);
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
