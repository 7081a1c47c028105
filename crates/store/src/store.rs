//! The [`Store`] trait, and the defaults of its Prometheus view: every backend answers the
//! `prom_*` methods through the generic paged reads unless it overrides them.

use crate::prom::{
    label_names_of, label_values_of, matches_any, series_labels, PromMetric, ResourceLabels,
};
use crate::types::{
    AgentRecord, CostGroup, CostLineQuery, CostQuery, ExtentFn, IngestOutcome, Page, PageQuery,
    PointsQuery, ResourceChange, ResourceQuery, RetentionReport, ScanFn, Scope, SeriesExtent,
    SeriesInfo, SeriesKey, SeriesPoints, SeriesQuery, SeriesScan, StoreError, StoreStats,
    StoredResource, TokenInfo,
};
use chrono::{DateTime, Utc};
use skymeter_model::api::{AgentRegistration, Heartbeat};
use skymeter_model::prom::metric_name;
use skymeter_model::{Batch, Cost};
use skymeter_promql::{Labels, Matcher, QueryError, SelectBudget, Series};
use std::collections::{BTreeMap, BTreeSet};

/// A storage backend.
pub trait Store: Send + Sync + 'static {
    /// Stores a batch whole, durably (on disk, synced) before returning, or not at all.
    /// The batch has been validated (`Batch::validate`) by the caller. A `batch_id` seen
    /// before returns [`IngestOutcome::Duplicate`] (same content) or
    /// [`IngestOutcome::Conflict`] (different content) and stores nothing. Cost lines are keyed
    /// by (x_source, ProviderName, SubAccountId, RegionId, ServiceName, ResourceId, SkuId,
    /// ChargeCategory, ChargePeriodStart, ChargePeriodEnd, BillingCurrency): a line whose
    /// key is stored replaces it, unless the stored one came from a batch with a later
    /// `collected_at`.
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError>;

    fn resources(&self, q: &ResourceQuery) -> Result<Page<StoredResource>, StoreError>;
    fn resource(&self, key: &str) -> Result<Option<StoredResource>, StoreError>;
    /// Attribute, tag, name and kind changes of a resource, oldest first.
    fn resource_history(&self, key: &str) -> Result<Vec<ResourceChange>, StoreError>;

    fn series(&self, q: &SeriesQuery) -> Result<Page<SeriesInfo>, StoreError>;
    /// At most `series.page.limit` series per call; the caller pages with the cursor.
    fn points(&self, q: &PointsQuery) -> Result<Page<SeriesPoints>, StoreError>;

    /// `points` reading at most `max_points` raw points for the page: the page ends before
    /// the series that would take it past the limit (its cursor resumes there), and a
    /// series that alone holds more in the range is refused (`BadRequest` naming the
    /// limit). What the server answers `GET /api/v1/points` with, so that one request
    /// cannot hold a year of points of a thousand series in memory. Backends that cannot
    /// count while reading read everything.
    fn points_limited(
        &self,
        q: &PointsQuery,
        max_points: u64,
    ) -> Result<Page<SeriesPoints>, StoreError> {
        let _ = max_points;
        self.points(q)
    }

    /// Calls `f` with each series matching `scan` that has points in its range and those
    /// raw points, so that fleet-wide reductions (the savings findings) hold a few series'
    /// points at a time and no `(DateTime, f64)` pair per point, as the pages of `points`
    /// do. `f` may be called from several threads at once. The default pages through
    /// `points`; the embedded store decodes chunks straight into the slices, on every core.
    fn scan_points(&self, scan: &SeriesScan<'_>, f: ScanFn<'_>) -> Result<(), StoreError> {
        let mut q = PointsQuery {
            series: scan.series.clone(),
            start: scan.start,
            end: scan.end,
            step_s: None,
            agg: None,
        };
        q.series.page = PageQuery {
            limit: Some(PageQuery::MAX_LIMIT),
            cursor: None,
        };
        let (mut ts, mut vals) = (Vec::new(), Vec::new());
        loop {
            let page = self.points(&q)?;
            for mut s in page.items {
                if scan.want.is_some_and(|want| !want(&s.key)) || s.points.is_empty() {
                    continue;
                }
                s.points.sort_by_key(|p| p.0);
                s.points.dedup_by_key(|p| p.0);
                ts.clear();
                vals.clear();
                for (t, v) in &s.points {
                    ts.push(crate::to_ns_saturating(*t));
                    vals.push(*v);
                }
                f(&s.key, &ts, &vals);
            }
            match page.next_cursor {
                Some(c) => q.series.page.cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    /// Each series matching `scan` with points in its range, with what `scan_points` would
    /// say of its extent there (first and last timestamps, points, largest value), for
    /// reductions that want only a series' peak (the findings' first look at CPU peaks).
    /// The embedded store answers from its blocks' index where it can, without decoding;
    /// the default reads the points.
    fn scan_extents(&self, scan: &SeriesScan<'_>, f: ExtentFn<'_>) -> Result<(), StoreError> {
        self.scan_points(scan, &|key, ts, vals| {
            if let (Some(first), Some(last)) = (ts.first(), ts.last()) {
                f(
                    key,
                    SeriesExtent {
                        first_ns: *first,
                        last_ns: *last,
                        points: ts.len() as u64,
                        max: vals.iter().copied().fold(f64::NAN, f64::max),
                    },
                );
            }
        })
    }

    fn costs(&self, q: &CostQuery) -> Result<Vec<CostGroup>, StoreError>;
    /// The answers to several grouping queries, in order. Backends that can answer them
    /// from one read of the lines do (the savings findings ask for two groupings of the
    /// same month); the default asks `costs` once per query.
    fn costs_many(&self, qs: &[CostQuery]) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        qs.iter().map(|q| self.costs(q)).collect()
    }
    /// The stored cost lines matching `q`, in storage order, at most `q.limit()` of them;
    /// `next_cursor` resumes after the last one. Each call reads one page, so a caller walks
    /// any number of lines in flat memory (the FOCUS export, `GET /api/v1/costs/export`).
    fn cost_lines(&self, q: &CostLineQuery) -> Result<Page<Cost>, StoreError>;

    /// Calls `f` with every stored cost line whose charge period starts in `[start, end)`, in
    /// no particular order: for a reduction over a window of lines in flat memory (a budget
    /// scoped by tags, which a grouping cannot select). The default pages `cost_lines`; the
    /// embedded store reads the window through its index in one pass instead of walking
    /// every line stored.
    fn for_each_cost_line(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        f: &mut dyn FnMut(&Cost),
    ) -> Result<(), StoreError> {
        let mut cursor = None;
        loop {
            let page = self.cost_lines(&CostLineQuery {
                start: Some(start),
                end: Some(end),
                limit: Some(10_000),
                cursor,
                ..Default::default()
            })?;
            page.items.iter().for_each(&mut *f);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    fn register_agent(&self, a: &AgentRegistration, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// False when the agent is unknown (it should register again).
    fn heartbeat(
        &self,
        id: &str,
        stats: &Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    fn agents(&self, page: &PageQuery, now: DateTime<Utc>)
        -> Result<Page<AgentRecord>, StoreError>;
    /// The registration of one agent, `None` when it is not registered. The default walks
    /// [`Store::agents`]; backends answer it by key.
    fn agent_registration(&self, id: &str) -> Result<Option<AgentRegistration>, StoreError> {
        let mut page = PageQuery {
            limit: Some(PageQuery::MAX_LIMIT),
            cursor: None,
        };
        loop {
            let found = self.agents(&page, Utc::now())?;
            if let Some(a) = found.items.into_iter().find(|a| a.registration.id == id) {
                return Ok(Some(a.registration));
            }
            match found.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(None),
            }
        }
    }

    /// Creates a token and returns it in clear: the only time it exists outside the
    /// caller's hands. Only a hash is stored.
    fn create_token(&self, name: &str, scopes: &[Scope])
        -> Result<(String, TokenInfo), StoreError>;
    /// The token's info when `token` is a valid token.
    fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, StoreError>;
    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;
    fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;

    /// A cheap, read-only check that the storage answers, for `/health`. It must not
    /// write nor wait for ingest: probes arrive often and concurrently, and a probe stuck
    /// behind a busy writer would report a healthy server as down.
    fn check(&self) -> Result<(), StoreError>;
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Deletes points, costs and resources (not seen since) older than `before`.
    fn enforce_retention(&self, before: DateTime<Utc>) -> Result<RetentionReport, StoreError>;
    /// Deletes the cost lines of `source` whose charge period starts in `[start, end)`;
    /// returns how many. Re-rating a range does this before it rates the range again, so
    /// that lines rules no longer produce do not linger.
    fn delete_costs(
        &self,
        source: skymeter_model::CostSource,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// A small value the server keeps across restarts (the rating job's progress, rules
    /// edited through the API), by key; `None` when never set. Written durably.
    fn server_state(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn put_server_state(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Makes everything ingested so far part of the compressed, compacted storage (normally
    /// done in the background; called at shutdown and by benchmarks).
    fn flush(&self) -> Result<(), StoreError>;

    // ---- the Prometheus view (see `prom/mod.rs` for the labels) ----
    //
    // Times are milliseconds since the epoch, both ends inclusive; `i64::MIN`/`i64::MAX`
    // for no bound. `selectors` is a list of matcher conjunctions of which a series must
    // satisfy one (`match[]` of the HTTP API); an empty list selects every series. The
    // defaults read everything through the generic reads above; backends override them.

    /// Every series matching all `matchers`, sorted by labels, with at least its samples in
    /// `[start_ms, end_ms]` (samples outside the range may come along). Series without a
    /// sample in the range may be returned (with or without samples).
    ///
    /// Within `budget` (see [`SelectBudget`]): series are counted before samples are
    /// read, samples while they are read, and the deadline is watched; over a limit the
    /// error is the engine's (`execution` or `timeout`), storage failures are `internal`.
    fn prom_select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        generic_select(self, matchers, start_ms, end_ms, budget)
    }

    /// The label sets of the series that match one of `selectors` and have samples in
    /// `[start_ms, end_ms]`, sorted.
    fn prom_series(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StoreError> {
        generic_series_labels(self, selectors, start_ms, end_ms)
    }

    /// Label names of those series, sorted.
    fn prom_label_names(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let sets = self.prom_series(selectors, start_ms, end_ms)?;
        Ok(label_names_of(&sets))
    }

    /// Values of label `name` over those series, sorted.
    fn prom_label_values(
        &self,
        name: &str,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let sets = self.prom_series(selectors, start_ms, end_ms)?;
        Ok(label_values_of(name, &sets))
    }

    /// Every Prometheus metric name in the store with the skymeter metric and unit behind
    /// it, sorted by name.
    fn prom_metrics(&self) -> Result<Vec<PromMetric>, StoreError> {
        generic_metrics(self)
    }
}

// ---- the generic implementation of the Prometheus view (any backend) ----

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Calls `f` on every stored resource, reading them a page (the largest) at a time.
pub fn for_each_resource<S: Store + ?Sized>(
    store: &S,
    mut f: impl FnMut(StoredResource),
) -> Result<(), StoreError> {
    let mut cursor = None;
    loop {
        let page = store.resources(&ResourceQuery {
            page: PageQuery {
                limit: Some(PageQuery::MAX_LIMIT),
                cursor,
            },
            ..Default::default()
        })?;
        page.items.into_iter().for_each(&mut f);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Every series of the store with its labels and sample extent (ms), through the generic
/// paged reads.
pub(crate) fn generic_series<S: Store + ?Sized>(
    store: &S,
) -> Result<Vec<(SeriesKey, Labels, i64, i64)>, StoreError> {
    let mut resources: BTreeMap<String, ResourceLabels> = BTreeMap::new();
    for_each_resource(store, |r| {
        resources.insert(r.key, ResourceLabels::of(&r.resource));
    })?;
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
