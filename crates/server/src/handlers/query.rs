//! Reads: resources (with history and a monitoring summary), series, points, costs.

use crate::apidoc::{
    page_params, query_param, series_params, stat_schema, string, time_param, Op, PageOf, Schemas,
};
use crate::error::{ApiErr, ApiResult};
use crate::params::Params;
use crate::state::{blocking, AppState, RouteSpec};
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::{Map, Value};
use skymeter_model::{Stat, Unit};
use skymeter_promql::TimeRange;
use skymeter_store::{
    CostGroup, CostQuery, Page, PageQuery, PointsQuery, ResourceChange, ResourceQuery, SeriesInfo,
    SeriesPoints, SeriesQuery, Store, StoredResource,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const STAT_HINT: &str = "use avg, max, min, sum, count, last, p50, p95 or p99";

pub async fn resources(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Page<StoredResource>>> {
    let mut p = Params::parse(q.as_deref())?;
    let query = ResourceQuery {
        provider: p.take("provider")?,
        account: p.take("account")?,
        region: p.take("region")?,
        kind: p.take("kind")?,
        tags: p.take_prefixed("tag.")?,
        q: p.take("q")?,
        sort: p.take("sort")?,
        page: p.take_page()?,
    };
    p.finish()?;
    if let Some(s) = &query.sort {
        let key = s.strip_prefix('-').unwrap_or(s);
        if !["key", "name", "kind", "last_seen", "first_seen"].contains(&key) {
            return Err(ApiErr::bad_request(format!(
                "query parameter `sort`=`{s}`: use key, name, kind, last_seen or first_seen, \
                 with `-` in front for descending"
            )));
        }
    }
    let store = st.store.clone();
    Ok(Json(
        blocking(move || store.resources(&query).map_err(ApiErr::store)).await?,
    ))
}

/// `GET /api/v1/resources/{key}`: the resource, its changes, and its metrics summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceDetail {
    #[serde(flatten)]
    pub resource: StoredResource,
    /// Attribute, tag, name and kind changes, oldest first.
    pub history: Vec<ResourceChange>,
    /// Every metric of the resource over the period, nested by the dotted metric name as
    /// Cloudforet lays it out: `cpu.utilization` →
    /// `{"cpu": {"utilization": {"avg": 12.3, "max": 80.1, "unit": "percent"}}}`.
    pub monitoring: Map<String, Value>,
    /// The period the summary covers: `[start, end)`.
    pub monitoring_window: MonitoringWindow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MonitoringWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

pub async fn resource(
    State(st): State<AppState>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<ResourceDetail>> {
    let mut p = Params::parse(q.as_deref())?;
    let period = p
        .take_duration("period")?
        .unwrap_or(std::time::Duration::from_secs(86_400));
    p.finish()?;
    let too_long = || {
        ApiErr::bad_request(
            "query parameter `period` is too long; use at most 10000 years (and far less \
             to be useful)",
        )
    };
    let period = chrono::Duration::from_std(period)
        .ok()
        .filter(|p| p.num_milliseconds() <= skymeter_promql::MAX_DURATION_MS)
        .ok_or_else(too_long)?;
    let store = st.store.clone();
    blocking(move || {
        let resource = store
            .resource(&key)
            .map_err(ApiErr::store)?
            .ok_or_else(|| {
                ApiErr::not_found(format!(
                    "no resource `{key}`; keys are provider/account/region/id, \
                     percent-encoded in the URL (list them with GET /api/v1/resources)"
                ))
            })?;
        let history = store.resource_history(&key).map_err(ApiErr::store)?;
        let end = Utc::now();
        let start = end.checked_sub_signed(period).ok_or_else(too_long)?;
        let monitoring = monitoring(&*store, &key, start, end)?;
        Ok(Json(ResourceDetail {
            resource,
            history,
            monitoring,
            monitoring_window: MonitoringWindow { start, end },
        }))
    })
    .await
}

/// The longest bucket the embedded store takes.
const MAX_STEP_S: u64 = 1_000_000_000;

/// One series' value over the whole window under one aggregation.
fn one_bucket(
    store: &dyn Store,
    key: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    agg: Stat,
) -> Result<Vec<SeriesPoints>, ApiErr> {
    // Buckets are aligned to multiples of `step` since the epoch. With step = end / 2 (and
    // a window shorter than that) the window lies in the one bucket [step, 2 × step).
    // Stores cap the step (the embedded one at 10^9 s, which end / 2 stays under until
    // 2033); past the cap a window across a multiple of it gets two buckets, which the
    // caller combines.
    let step_s = (end.timestamp().max(2) as u64).div_ceil(2).min(MAX_STEP_S);
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let q = PointsQuery {
            series: SeriesQuery {
                resource: Some(key.to_string()),
                page: PageQuery {
                    limit: Some(PageQuery::MAX_LIMIT),
                    cursor,
                },
                ..Default::default()
            },
            start,
            end,
            step_s: Some(step_s),
            agg: Some(agg),
        };
        let page = store.points(&q).map_err(ApiErr::store)?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The Cloudforet-shaped summary: per metric, `avg` (from its avg series, else last, else
/// whatever stat it has) and `max` (from its max series when present, else the max of the
/// values). Series without labels (a host's total CPU) are preferred over labelled ones
/// (per-core CPU); several series of the same kind are averaged (avg) and maxed (max).
fn monitoring(
    store: &dyn Store,
    key: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiErr> {
    struct Seen {
        stat: Stat,
        unlabelled: bool,
        unit: Unit,
        avg: Option<f64>,
        max: Option<f64>,
    }
    let mut by_metric: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    let series_id = |s: &SeriesPoints| (s.key.metric.clone(), s.key.stat, s.key.labels.clone());
    let mut index: BTreeMap<_, usize> = BTreeMap::new();
    for (agg, is_max) in [(Stat::Avg, false), (Stat::Max, true)] {
        for s in one_bucket(store, key, start, end, agg)? {
            // One bucket; should a store return more, combine them.
            let combine: fn(f64, f64) -> f64 = if is_max {
                f64::max
            } else {
                |a, b| (a + b) / 2.0
            };
            let Some(v) = s.points.iter().map(|(_, v)| *v).reduce(combine) else {
                continue;
            };
            let id = series_id(&s);
            let list = by_metric.entry(s.key.metric.clone()).or_default();
            let i = *index.entry(id).or_insert_with(|| {
                list.push(Seen {
                    stat: s.key.stat,
                    unlabelled: s.key.labels.is_empty(),
                    unit: s.key.unit,
                    avg: None,
                    max: None,
                });
                list.len() - 1
            });
            if is_max {
                list[i].max = Some(v);
            } else {
                list[i].avg = Some(v);
            }
        }
    }
    let mut root = Map::new();
    for (metric, mut seen) in by_metric {
        if seen.iter().any(|s| s.unlabelled) {
            seen.retain(|s| s.unlabelled);
        }
        let primary = [Stat::Avg, Stat::Last]
            .into_iter()
            .chain(Stat::ALL)
            .find(|st| seen.iter().any(|s| s.stat == *st))
            .expect("a metric has at least one series");
        let prim: Vec<&Seen> = seen.iter().filter(|s| s.stat == primary).collect();
        let avgs: Vec<f64> = prim.iter().filter_map(|s| s.avg).collect();
        let avg = (!avgs.is_empty()).then(|| avgs.iter().sum::<f64>() / avgs.len() as f64);
        let maxes: Vec<f64> = if seen.iter().any(|s| s.stat == Stat::Max) {
            seen.iter()
                .filter(|s| s.stat == Stat::Max)
                .filter_map(|s| s.max)
                .collect()
        } else {
            prim.iter().filter_map(|s| s.max).collect()
        };
        let max = maxes.into_iter().reduce(f64::max);
        let mut leaf = Map::new();
        leaf.insert("avg".into(), json_num(avg));
        leaf.insert("max".into(), json_num(max));
        leaf.insert("unit".into(), Value::String(prim[0].unit.as_str().into()));
        insert_path(&mut root, &metric, leaf);
    }
    Ok(root)
}

fn json_num(v: Option<f64>) -> Value {
    v.and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Puts `leaf`'s fields at the dotted `path`, creating objects on the way (a metric that is
/// also a prefix of another keeps both its fields and its children).
fn insert_path(root: &mut Map<String, Value>, path: &str, leaf: Map<String, Value>) {
    let mut node = root;
    for part in path.split('.') {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        node = entry.as_object_mut().expect("just made an object");
    }
    for (k, v) in leaf {
        node.entry(k).or_insert(v);
    }
}

fn series_query(p: &mut Params) -> Result<SeriesQuery, ApiErr> {
    Ok(SeriesQuery {
        metric: p.take("metric")?,
        resource: p.take("resource")?,
        provider: p.take("provider")?,
        account: p.take("account")?,
        region: p.take("region")?,
        stat: p.take_parsed::<Stat>("stat", STAT_HINT)?,
        labels: p.take_prefixed("label.")?,
        page: p.take_page()?,
    })
}

pub async fn series(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Page<SeriesInfo>>> {
    let mut p = Params::parse(q.as_deref())?;
    let query = series_query(&mut p)?;
    p.finish()?;
    let store = st.store.clone();
    Ok(Json(
        blocking(move || store.series(&query).map_err(ApiErr::store)).await?,
    ))
}

/// `GET /api/v1/points`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointsResponse {
    /// Each matching series with its `[ts, value]` pairs, oldest first.
    pub series: Vec<SeriesPoints>,
    /// Pass as `cursor` for the next page of series; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Most buckets a downsampled series may have, as Prometheus limits `query_range`.
const MAX_BUCKETS: i64 = skymeter_promql::MAX_POINTS_PER_SERIES;

pub async fn points(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<PointsResponse>> {
    let now = Utc::now();
    let mut p = Params::parse(q.as_deref())?;
    let series = series_query(&mut p)?;
    let end = p.take_time("end", now)?.unwrap_or(now);
    let start = p
        .take_time("start", now)?
        .unwrap_or(end - chrono::Duration::hours(1));
    let step = p.take_duration("step")?;
    let agg = p.take_parsed::<Stat>("agg", STAT_HINT)?;
    p.finish()?;
    if start >= end {
        return Err(ApiErr::bad_request(format!(
            "`start` ({}) must be before `end` ({})",
            start.to_rfc3339(),
            end.to_rfc3339()
        )));
    }
    // The one validated form of a request's times (the default start, an hour before
    // `end`, is checked here too).
    let range = TimeRange::span(start.timestamp_millis(), end.timestamp_millis())
        .map_err(|e| ApiErr::bad_request(format!("query parameters `start`/`end`: {e}")))?;
    let step_s = match step {
        None => None,
        Some(d) if d.as_secs() == 0 => {
            return Err(ApiErr::bad_request(
                "query parameter `step` must be at least 1s",
            ))
        }
        Some(d) => {
            let step_ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            if TimeRange::steps(range.start_ms(), range.end_ms(), step_ms).is_err() {
                let buckets = (range.end_ms() - range.start_ms()) / step_ms;
                return Err(ApiErr::bad_request(format!(
                    "`step`={} gives {buckets} points per series over this range; at most \
                     {MAX_BUCKETS} are allowed: use a larger step or a shorter range",
                    humantime::format_duration(d)
                )));
            }
            Some(d.as_secs())
        }
    };
    if agg.is_some() && step_s.is_none() {
        return Err(ApiErr::bad_request(
            "query parameter `agg` needs a `step` to aggregate over",
        ));
    }
    let query = PointsQuery {
        series,
        start,
        end,
        step_s,
        agg,
    };
    let store = st.store.clone();
    // One page reads at most `max_samples` raw points (see `Store::points_limited`).
    let max_points = st.query.max_samples as u64;
    let page = blocking(move || {
        store
            .points_limited(&query, max_points)
            .map_err(ApiErr::store)
    })
    .await?;
    Ok(Json(PointsResponse {
        series: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/costs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostsResponse {
    /// One entry per group (one total when `group_by` is empty).
    pub groups: Vec<CostGroup>,
}

/// What `group_by` accepts.
pub const COST_GROUPS: [&str; 10] = [
    "provider", "service", "account", "region", "resource", "category", "source", "currency",
    "day", "month",
];

pub async fn costs(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<CostsResponse>> {
    let now = Utc::now();
    let mut p = Params::parse(q.as_deref())?;
    let group_by: Vec<String> = p
        .take("group_by")?
        .map(|g| {
            g.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let query = CostQuery {
        start: p.take_time("start", now)?,
        end: p.take_time("end", now)?,
        group_by,
        provider: p.take("provider")?,
        source: p.take("source")?,
    };
    p.finish()?;
    for g in &query.group_by {
        if !COST_GROUPS.contains(&g.as_str()) {
            return Err(ApiErr::bad_request(format!(
                "query parameter `group_by` has `{g}`; use any of: {}",
                COST_GROUPS.join(", ")
            )));
        }
    }
    if let Some(s) = &query.source {
        if skymeter_model::CostSource::parse(s).is_none() {
            return Err(ApiErr::bad_request(format!(
                "query parameter `source`=`{s}`: use billed, estimated or rated"
            )));
        }
    }
    if let (Some(s), Some(e)) = (query.start, query.end) {
        if s >= e {
            return Err(ApiErr::bad_request("`start` must be before `end`"));
        }
        TimeRange::span(s.timestamp_millis(), e.timestamp_millis())
            .map_err(|e| ApiErr::bad_request(format!("query parameters `start`/`end`: {e}")))?;
    }
    let store: Arc<dyn Store> = st.store.clone();
    let groups = blocking(move || store.costs(&query).map_err(ApiErr::store)).await?;
    Ok(Json(CostsResponse { groups }))
}

/// The OpenAPI description of resources, points and costs (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("GET", "/api/v1/resources") => {
            let mut params = vec![
                query_param("provider", "`aws`, `gcp`, `azure`, `host`, …", string()),
                query_param("account", "Account, project or subscription.", string()),
                query_param("region", "Region.", string()),
                query_param("kind", "Normalized kind (`compute.instance`, `host`, …).", string()),
                query_param("tag.KEY", "Tag that must match exactly, one parameter per tag: `tag.env=prod`.", string()),
                query_param("q", "Case-insensitive substring of the name or id.", string()),
                query_param(
                    "sort",
                    "`key` (default), `name`, `kind`, `last_seen` or `first_seen`; `-` in front for descending. Empty: the default.",
                    json!({"type": "string", "pattern": "^(-?(key|name|kind|last_seen|first_seen))?$"}),
                ),
            ];
            params.extend(page_params());
            Op {
                tag: "inventory",
                summary: "List resources",
                description: "Every filter must hold; no filter lists everything.",
                params,
                body: None,
                ok: vec![(
                    "200",
                    "A page of resources.",
                    Some((json_ct, s.of::<PageOf<StoredResource>>())),
                )],
                errors: vec![],
            }
        }
        ("GET", "/api/v1/resources/{*key}") => Op {
            tag: "inventory",
            summary: "One resource, its history and a monitoring summary",
            description: "`monitoring` holds, for every metric of the resource over `period`, \
                          its `avg` and `max`, nested by the dotted metric name as Cloudforet \
                          lays it out: `{\"cpu\": {\"utilization\": {\"avg\": 12.3, \"max\": 80.1, \
                          \"unit\": \"percent\"}}}`.",
            params: vec![
                json!({"name": "key", "in": "path", "required": true,
                       "description": "`provider/account/region/id`, percent-encoded (`/` as `%2F`).",
                       "schema": string()}),
                query_param(
                    "period",
                    "Window of the monitoring summary, ending now; default `1d` (`1h`, `7d`, …).",
                    string(),
                ),
            ],
            body: None,
            ok: vec![(
                "200",
                "The resource.",
                Some((json_ct, s.of::<ResourceDetail>())),
            )],
            errors: vec![("404", "No such resource (`not_found`).")],
        },
        ("GET", "/api/v1/points") => {
            let mut params = series_params();
            params.extend([
                time_param("start", "Default: `end` minus 1 hour. Inclusive."),
                time_param("end", "Default: now. Exclusive."),
                query_param(
                    "step",
                    "Downsample to buckets this wide (`1m`, `5m`, `1h`), aligned to the epoch and \
                     stamped with their end; at most 11000 buckets. Absent: raw points.",
                    string(),
                ),
                query_param(
                    "agg",
                    "How points combine within a bucket; default `avg`. Needs `step`.",
                    stat_schema(),
                ),
            ]);
            Op {
                tag: "metrics",
                summary: "Points of the matching series",
                description: "`limit` and `cursor` page over series; each series carries all \
                              its points in the range as `[ts, value]` pairs. A page reads at \
                              most `max_samples` (`[server.query]`) raw points: it may end \
                              with fewer than `limit` series and a `next_cursor`, and a series \
                              that alone holds more in the range is refused (400).",
                params,
                body: None,
                ok: vec![(
                    "200",
                    "Series with their points.",
                    Some((json_ct, s.of::<PointsResponse>())),
                )],
                errors: vec![],
            }
        }
        ("GET", "/api/v1/costs") => Op {
            tag: "costs",
            summary: "Costs, grouped",
            description: "Sums of `BilledCost` and `EffectiveCost` of the cost lines whose \
                          charge period overlaps `[start, end)`.",
            params: vec![
                query_param(
                    "group_by",
                    &format!(
                        "Comma-separated, any of: {}. Absent: one total.",
                        COST_GROUPS.join(", ")
                    ),
                    string(),
                ),
                time_param("start", "Default: no lower bound."),
                time_param("end", "Default: no upper bound."),
                query_param("provider", "Only this provider's lines.", string()),
                query_param(
                    "source",
                    "`billed`, `estimated` or `rated`; empty: all.",
                    json!({"type": "string", "enum": ["", "billed", "estimated", "rated"]}),
                ),
            ],
            body: None,
            ok: vec![(
                "200",
                "The groups.",
                Some((json_ct, s.of::<CostsResponse>())),
            )],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_paths_nest_like_cloudforet() {
        let mut root = Map::new();
        let leaf = |avg: f64| {
            let mut m = Map::new();
            m.insert("avg".into(), avg.into());
            m
        };
        insert_path(&mut root, "cpu.utilization", leaf(1.0));
        insert_path(&mut root, "cpu.load.1m", leaf(2.0));
        insert_path(&mut root, "cpu", leaf(3.0));
        assert_eq!(
            Value::Object(root),
            serde_json::json!({"cpu": {"utilization": {"avg": 1.0}, "load": {"1m": {"avg": 2.0}}, "avg": 3.0}})
        );
    }
}
