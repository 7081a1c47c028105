//! How the findings read the store's series: one metric at a time over every resource, a
//! page of series per call, each series reduced to a few figures as soon as it is read, so
//! that memory holds one page of points and one summary per resource, never the window's
//! points of the whole fleet.

use chrono::{DateTime, Utc};
use skymeter_model::Stat;
use skymeter_store::{PageQuery, PointsQuery, SeriesQuery, Store, StoreError};
use std::collections::HashMap;

/// What the findings need of one metric and stat of one resource over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesSummary {
    pub stat: Stat,
    pub max: f64,
    pub sum: f64,
    /// The percentile asked for; with several series of the resource (other labels), the
    /// largest of theirs (a resource is sized for its busiest series).
    pub percentile: f64,
    pub points: u64,
    pub first_ts: DateTime<Utc>,
    pub last_ts: DateTime<Utc>,
}

impl SeriesSummary {
    /// The summary of `points` (time-ordered, non-empty), with the `p`-th percentile.
    pub fn of(
        stat: Stat,
        points: &[(DateTime<Utc>, f64)],
        p: Option<f64>,
    ) -> Option<SeriesSummary> {
        let (first, last) = (points.first()?.0, points.last()?.0);
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        Some(SeriesSummary {
            stat,
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sum: values.iter().sum(),
            percentile: p.map(|p| percentile(values, p)).unwrap_or(0.0),
            points: points.len() as u64,
            first_ts: first,
            last_ts: last,
        })
    }

    fn merge(&mut self, o: &SeriesSummary) {
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.percentile = self.percentile.max(o.percentile);
        self.points += o.points;
        self.first_ts = self.first_ts.min(o.first_ts);
        self.last_ts = self.last_ts.max(o.last_ts);
    }
}

/// The `p`-th percentile (0-100] of `values`, nearest rank (the value at rank ⌈p/100 × n⌉),
/// as CloudWatch's and Compute Optimizer's percentiles are read; 0 for none.
pub fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    let at = rank.clamp(1, values.len()) - 1;
    *values.select_nth_unstable_by(at, f64::total_cmp).1
}

/// Every series of `metric` with `stat` in `(start, end]` (points are stamped with the end
/// of their period), downsampled to `step_s` with `agg` when given, summarised by resource
/// key; `p` asks for a percentile.
#[allow(clippy::too_many_arguments)]
pub fn read_series(
    store: &dyn Store,
    metric: &str,
    stat: Stat,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step_s: Option<u64>,
    agg: Option<Stat>,
    p: Option<f64>,
) -> Result<HashMap<String, SeriesSummary>, StoreError> {
    let mut out: HashMap<String, SeriesSummary> = HashMap::new();
    each_series(
        store,
        metric,
        stat,
        start,
        end,
        step_s,
        agg,
        |key, points| {
            if let Some(s) = SeriesSummary::of(stat, points, p) {
                match out.get_mut(&key) {
                    Some(have) => have.merge(&s),
                    None => {
                        out.insert(key, s);
                    }
                }
            }
        },
    )?;
    Ok(out)
}

/// Calls `f` with the resource key and the points in `(start, end]` of every series.
#[allow(clippy::too_many_arguments)]
fn each_series(
    store: &dyn Store,
    metric: &str,
    stat: Stat,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step_s: Option<u64>,
    agg: Option<Stat>,
    mut f: impl FnMut(String, &[(DateTime<Utc>, f64)]),
) -> Result<(), StoreError> {
    let mut cursor = None;
    loop {
        let page = store.points(&PointsQuery {
            series: SeriesQuery {
                metric: Some(metric.to_string()),
                stat: Some(stat),
                page: PageQuery {
                    limit: Some(PageQuery::MAX_LIMIT),
                    cursor,
                },
                ..Default::default()
            },
            // The store's range is [start, end): one second on, so that a point stamped
            // `start` (the end of the period before the window) is left out and one
            // stamped `end` is in.
            start: start + chrono::Duration::seconds(1),
            end: end + chrono::Duration::seconds(1),
            step_s,
            agg,
        })?;
        for mut s in page.items {
            s.points.sort_by_key(|p| p.0);
            f(s.key.resource.key(), &s.points);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Received + sent network throughput (bytes/s) in hourly averages, summarised by
/// resource key (`max` is the busiest hour).
pub fn hourly_network(
    store: &dyn Store,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<HashMap<String, SeriesSummary>, StoreError> {
    // Hourly buckets of one page's resources only would split a resource across pages, so
    // each resource's hours are kept for the whole window: as one f64 per hour indexed from
    // the window's first hour (NaN: no point), 8 bytes an hour. (A map by timestamp took
    // about 30 bytes an hour and was half the findings' heap at 10,000 resources.)
    let base = start.timestamp().div_euclid(3600);
    let len = (end.timestamp().div_euclid(3600) - base + 2).max(1) as usize;
    let mut hours: HashMap<String, Vec<f64>> = HashMap::new();
    for metric in ["network.received_throughput", "network.sent_throughput"] {
        each_series(
            store,
            metric,
            Stat::Avg,
            start,
            end,
            Some(3600),
            Some(Stat::Avg),
            |key, points| {
                let h = hours.entry(key).or_insert_with(|| vec![f64::NAN; len]);
                for (ts, v) in points {
                    let i = ts.timestamp().div_euclid(3600) - base;
                    if let Some(slot) = usize::try_from(i).ok().and_then(|i| h.get_mut(i)) {
                        *slot = if slot.is_nan() { *v } else { *slot + v };
                    }
                }
            },
        )?;
    }
    Ok(hours
        .into_iter()
        .filter_map(|(key, h)| {
            let points: Vec<(DateTime<Utc>, f64)> = h
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .filter_map(|(i, v)| {
                    DateTime::from_timestamp((base + i as i64) * 3600, 0).map(|t| (t, *v))
                })
                .collect();
            SeriesSummary::of(Stat::Avg, &points, None).map(|s| (key, s))
        })
        .collect())
}
