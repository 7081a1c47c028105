//! The Prometheus view of the store: every stored series as a Prometheus series (name and
//! labels by `skymeter_model::prom`, the one mapping), selected by label matchers, with
//! its raw samples; what the PromQL engine (`skymeter-promql`) and the Prometheus HTTP API
//! (`/api/v1/query`, `series`, `labels`, ...) read.
//!
//! A series' labels:
//!
//! | label | from |
//! |---|---|
//! | `__name__` | `prom::metric_name(metric, unit)`: `cpu_utilization_percent` |
//! | `provider`, `account`, `region`, `resource_id` | the series' resource reference |
//! | `stat` | the point's statistic: `avg`, `max`, ... |
//! | the point's own labels | names through `prom::sanitize`; a name that collides with one above becomes `exported_<name>` (Prometheus' rule for scraped labels) |
//! | `kind`, `resource_name`, `tag_<key>` | the resource's latest stored record, when there is one; they follow its changes |
//!
//! Empty values are absent labels, as in Prometheus. Timestamps are milliseconds (the
//! store keeps nanoseconds; sub-millisecond parts are cut, and of two samples in the same
//! millisecond the later one is kept).
//!
//! The [`Store`] trait carries the `prom_*` methods; the embedded store answers them from
//! an in-memory label index (see `embedded/prom.rs`). Their default implementations work
//! on any backend through the generic `series`/`resources`/`points` reads (correct, but
//! they read everything: fine for tests and small stores). [`PromQuerier`] adapts any
//! store to the engine's [`Querier`].

use crate::{PageQuery, PointsQuery, ResourceQuery, SeriesKey, SeriesQuery, Store, StoreError};
use chrono::{DateTime, Utc};
use skymeter_model::prom::{metric_name, sanitize, tag_label};
use skymeter_model::Unit;
pub use skymeter_promql::{Labels, MatchOp, Matcher, Querier, QueryError, SelectBudget, Series};
use std::collections::{BTreeMap, BTreeSet};

/// The labels every series gets from its key and resource; a point label of one of these
/// names is renamed `exported_<name>`.
pub const RESERVED: [&str; 8] = [
    "__name__",
    "provider",
    "account",
    "region",
    "resource_id",
    "stat",
    "kind",
    "resource_name",
];

/// What the labels of a series take from its resource's latest record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceLabels {
    pub kind: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

impl ResourceLabels {
    pub fn of(r: &skymeter_model::Resource) -> Self {
        ResourceLabels {
            kind: r.kind.clone(),
            name: r.name.clone(),
            tags: r.tags.clone().into_iter().collect(),
        }
    }
}

/// The Prometheus labels of a stored series.
pub fn series_labels(key: &SeriesKey, resource: Option<&ResourceLabels>) -> Labels {
    let r = &key.resource;
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(10 + key.labels.len());
    // Point labels and tags first, so that on a collision the fixed labels (pushed last)
    // win in `from_pairs`, which keeps the last pair of a name.
    if let Some(res) = resource {
        for (k, v) in &res.tags {
            pairs.push((tag_label(k), v.clone()));
        }
    }
    for (k, v) in key.labels.iter() {
        let mut name = sanitize(k, false);
        if RESERVED.contains(&name.as_str()) || name.starts_with("__") {
            name = format!("exported_{}", name.trim_start_matches('_'));
        }
        pairs.push((name, v.clone()));
    }
    if let Some(res) = resource {
        pairs.push(("kind".into(), res.kind.clone()));
        pairs.push(("resource_name".into(), res.name.clone()));
    }
    pairs.push(("__name__".into(), metric_name(&key.metric, key.unit)));
    pairs.push(("provider".into(), r.provider.to_string()));
    pairs.push(("account".into(), r.account.to_string()));
    pairs.push(("region".into(), r.region.to_string()));
    pairs.push(("resource_id".into(), r.id.to_string()));
    pairs.push(("stat".into(), key.stat.as_str().to_string()));
    Labels::from_pairs(pairs)
}

/// A metric name as the store knows it: for `/api/v1/metadata`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromMetric {
    /// `cpu_utilization_percent`
    pub name: String,
    /// `cpu.utilization`
    pub metric: String,
    pub unit: Unit,
}

/// Whether any of `selectors` (each a conjunction of matchers) matches; no selectors
/// matches everything.
pub fn matches_any(selectors: &[Vec<Matcher>], labels: &Labels) -> bool {
    selectors.is_empty()
        || selectors
            .iter()
            .any(|s| skymeter_promql::matches_all(s, labels))
}

/// The engine's [`Querier`] over any store: `range_query(&PromQuerier(&*store), ...)`.
pub struct PromQuerier<'a>(pub &'a dyn Store);

impl Querier for PromQuerier<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        self.0.prom_select(matchers, start_ms, end_ms, budget)
    }
}

// ---- the generic implementation (any backend) ----

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Every series of the store with its labels and sample extent (ms), through the generic
/// paged reads.
pub(crate) fn generic_series<S: Store + ?Sized>(
    store: &S,
) -> Result<Vec<(SeriesKey, Labels, i64, i64)>, StoreError> {
    let mut resources: BTreeMap<String, ResourceLabels> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store.resources(&ResourceQuery {
            page: PageQuery {
                limit: Some(PageQuery::MAX_LIMIT),
                cursor,
            },
            ..Default::default()
        })?;
        for r in page.items {
            resources.insert(r.key, ResourceLabels::of(&r.resource));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.series(&SeriesQuery {
            page: PageQuery {
                limit: Some(PageQuery::MAX_LIMIT),
                cursor,
            },
            ..Default::default()
        })?;
        for s in page.items {
            let labels = series_labels(&s.key, resources.get(&s.key.resource.key()));
            out.push((
                s.key,
                labels,
                s.first_ts.timestamp_millis(),
                s.last_ts.timestamp_millis(),
            ));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// A storage failure as the engine reports it.
fn internal(e: StoreError) -> QueryError {
    QueryError::internal(e.to_string())
}

pub(crate) fn generic_select<S: Store + ?Sized>(
    store: &S,
    matchers: &[Matcher],
    start_ms: i64,
    end_ms: i64,
    budget: &SelectBudget,
) -> Result<Vec<Series>, QueryError> {
    budget.check_deadline()?;
    // Series are matched and counted from their labels before any point is read.
    let selected: Vec<(SeriesKey, Labels)> = generic_series(store)
        .map_err(internal)?
        .into_iter()
        .filter(|(_, labels, _, _)| skymeter_promql::matches_all(matchers, labels))
        .map(|(key, labels, _, _)| (key, labels))
        .collect();
    budget.check_series(selected.len())?;
    let mut out = Vec::new();
    let mut loaded = 0usize;
    for (key, labels) in selected {
        budget.check_deadline()?;
        let q = PointsQuery {
            series: SeriesQuery {
                metric: Some(key.metric.clone()),
                resource: Some(key.resource.key()),
                stat: Some(key.stat),
                labels: key.labels.clone(),
                page: PageQuery {
                    limit: Some(PageQuery::MAX_LIMIT),
                    cursor: None,
                },
                ..Default::default()
            },
            start: ms_to_time(start_ms),
            // `points` reads [start, end); the engine asks for [start, end].
            end: ms_to_time(end_ms.saturating_add(1)),
            step_s: None,
            agg: None,
        };
        let mut ts = Vec::new();
        let mut vals = Vec::new();
        let mut q = q;
        loop {
            let page = store.points(&q).map_err(internal)?;
            for s in page.items.iter().filter(|s| s.key == key) {
                loaded = loaded.saturating_add(s.points.len());
                budget.check_samples(loaded)?;
                for (t, v) in &s.points {
                    ts.push(t.timestamp_millis());
                    vals.push(*v);
                }
            }
            match page.next_cursor {
                Some(c) => q.series.page.cursor = Some(c),
                None => break,
            }
        }
        out.push(Series::new(labels, ts, vals));
    }
    Ok(out)
}

pub(crate) fn generic_series_labels<S: Store + ?Sized>(
    store: &S,
    selectors: &[Vec<Matcher>],
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Labels>, StoreError> {
    Ok(generic_series(store)?
        .into_iter()
        .filter(|(_, l, first, last)| {
            *first <= end_ms && *last >= start_ms && matches_any(selectors, l)
        })
        .map(|(_, l, _, _)| l)
        .collect())
}

pub(crate) fn generic_metrics<S: Store + ?Sized>(store: &S) -> Result<Vec<PromMetric>, StoreError> {
    let set: BTreeSet<PromMetric> = generic_series(store)?
        .into_iter()
        .map(|(k, _, _, _)| PromMetric {
            name: metric_name(&k.metric, k.unit),
            metric: k.metric,
            unit: k.unit,
        })
        .collect();
    Ok(set.into_iter().collect())
}

/// Label names of a list of label sets, sorted and unique.
pub fn label_names_of<'a>(sets: impl IntoIterator<Item = &'a Labels>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for l in sets {
        for (n, _) in l.iter() {
            if !names.contains(n) {
                names.insert(n.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// Values of one label over a list of label sets, sorted and unique.
pub fn label_values_of<'a>(name: &str, sets: impl IntoIterator<Item = &'a Labels>) -> Vec<String> {
    let mut values = BTreeSet::new();
    for l in sets {
        if let Some(v) = l.get(name) {
            if !values.contains(v) {
                values.insert(v.to_string());
            }
        }
    }
    values.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skymeter_model::{ResourceRef, Stat};

    fn key(labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            metric: "cpu.utilization".into(),
            unit: Unit::Percent,
            stat: Stat::Max,
            resource: ResourceRef {
                provider: "aws".into(),
                account: "123".into(),
                region: "".into(),
                id: "i-1".into(),
            },
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn labels_follow_the_mapping_and_collisions_are_exported() {
        let res = ResourceLabels {
            kind: "compute.instance".into(),
            name: "web".into(),
            tags: [("cost-center".to_string(), "42".to_string())].into(),
        };
        let l = series_labels(
            &key(&[("cpu", "3"), ("region", "x"), ("__y", "z"), ("empty", "")]),
            Some(&res),
        );
        assert_eq!(
            l.to_string(),
            r#"{__name__="cpu_utilization_percent", account="123", cpu="3", exported_region="x", exported_y="z", kind="compute.instance", provider="aws", resource_id="i-1", resource_name="web", stat="max", tag_cost_center="42"}"#
        );
        // No resource record: no kind, name or tags; the empty region is absent.
        let l = series_labels(&key(&[]), None);
        assert_eq!(l.get("region"), None);
        assert_eq!(l.get("kind"), None);
        assert_eq!(l.len(), 5);
    }
}
