//! How the findings read the store's series: one metric at a time over every resource
//! (`Store::scan_points`, on every core), each series reduced to a few figures as soon as it
//! is read, so that memory holds a few series' points and one summary per resource, never
//! the window's points of the whole fleet. Several windows of one metric (the idle and the
//! rightsizing windows of CPU) are reduced from a single read.

use chrono::{DateTime, Duration, Utc};
use skymeter_model::Stat;
use skymeter_store::{
    each_bucket, from_ns, to_ns_saturating, SeriesKey, SeriesQuery, SeriesScan, Store, StoreError,
};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What the findings need of one metric and stat of one resource over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesSummary {
    pub stat: Stat,
    pub max: f64,
    /// The total of the points (or buckets); NaN for buckets of `max`, where it would mean
    /// nothing and is not computed.
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
            percentile: p.map(|p| percentile(&values, p)).unwrap_or(0.0),
            points: points.len() as u64,
            first_ts: first,
            last_ts: last,
        })
    }

    /// The summary of raw points (`ts` in nanoseconds, ascending, non-empty).
    fn of_raw(stat: Stat, ts: &[i64], vals: &[f64], p: Option<f64>) -> Option<SeriesSummary> {
        Some(SeriesSummary {
            stat,
            max: vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sum: vals.iter().sum(),
            percentile: p.map(|p| percentile(vals, p)).unwrap_or(0.0),
            points: vals.len() as u64,
            first_ts: from_ns(*ts.first()?),
            last_ts: from_ns(*ts.last()?),
        })
    }

    /// The summary of the points' `step`-wide buckets combined with `agg`: what `of` would
    /// say of the store's downsampled series, without building it.
    fn of_buckets(
        stat: Stat,
        ts: &[i64],
        vals: &[f64],
        step_ns: i64,
        agg: Stat,
    ) -> Option<SeriesSummary> {
        let (mut max, mut sum, mut n) = (f64::NEG_INFINITY, 0.0, 0u64);
        let (mut first, mut last) = (None, 0);
        if agg == Stat::Max {
            // The largest bucket peak is the largest point and the peaks' sum is not
            // asked for (a sum of hourly maxima means nothing): only the buckets are
            // counted, on the timestamps, without combining values bucket by bucket.
            let mut i = 0;
            while i < ts.len() {
                let end = skymeter_store::bucket_end(ts[i], step_ns);
                i += ts[i..].partition_point(|t| *t <= end);
                n += 1;
                first.get_or_insert(end);
                last = end;
            }
            return Some(SeriesSummary {
                stat,
                max: vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                sum: f64::NAN,
                percentile: 0.0,
                points: n,
                first_ts: from_ns(first?),
                last_ts: from_ns(last),
            });
        }
        each_bucket(ts, vals, step_ns, agg, |end, v| {
            max = max.max(v);
            sum += v;
            n += 1;
            first.get_or_insert(end);
            last = end;
        });
        Some(SeriesSummary {
            stat,
            max,
            sum,
            percentile: 0.0,
            points: n,
            first_ts: from_ns(first?),
            last_ts: from_ns(last),
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

/// A scan of every series of `metric` with `stat` over `[lo, hi)` (nanoseconds).
fn scan_of<'a>(
    metric: &str,
    stat: Stat,
    (lo, hi): (i64, i64),
    want: Option<&'a (dyn Fn(&SeriesKey) -> bool + Sync)>,
) -> SeriesScan<'a> {
    SeriesScan {
        series: SeriesQuery {
            metric: Some(metric.to_string()),
            stat: Some(stat),
            ..Default::default()
        },
        start: from_ns(lo),
        end: from_ns(hi),
        want,
    }
}

/// The `p`-th percentile (0-100] of `values`, nearest rank (the value at rank ⌈p/100 × n⌉),
/// as CloudWatch's and Compute Optimizer's percentiles are read; 0 for none. Values are
/// ordered as `f64::total_cmp` orders them.
///
/// A high percentile is the smallest of the values above its rank, a few of many (the 95th
/// of two weeks of 5-minute points is the least of the top 202 of 4,032): those few are kept
/// in a heap while the values go by once, most of them turned away by one comparison with
/// the heap's least: no copy of the series and no partitioning of it, which is what the
/// rightsizing read spends much of its time on over a fleet.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let at = rank.clamp(1, n) - 1;
    // The answer is the least of the `top` largest values.
    let top = n - at;
    if top * 4 > n {
        let mut keys: Vec<i64> = values.iter().map(|v| order_key(*v)).collect();
        return from_order_key(*keys.select_nth_unstable(at).1);
    }
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<i64>> =
        std::collections::BinaryHeap::with_capacity(top + 1);
    for v in values {
        let k = order_key(*v);
        if heap.len() < top {
            heap.push(std::cmp::Reverse(k));
        } else if let Some(mut least) = heap.peek_mut() {
            if k > least.0 {
                *least = std::cmp::Reverse(k);
            }
        }
    }
    heap.peek().map_or(0.0, |least| from_order_key(least.0))
}

/// An integer that orders as `f64::total_cmp` orders the floats (negative floats' bits
/// turned around, so that larger magnitudes come first).
fn order_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

fn from_order_key(k: i64) -> f64 {
    // The same flip undoes itself: the sign bit is kept.
    f64::from_bits((k ^ ((((k >> 63) as u64) >> 1) as i64)) as u64)
}

/// One window of a metric to summarise: its points in `(start, end]` (points are stamped
/// with the end of their period), in `step_s` buckets combined with `agg` when given, with
/// the `p`-th percentile of the raw points when asked.
#[derive(Clone, Copy)]
pub struct Window<'a> {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub buckets: Option<(u64, Stat)>,
    pub p: Option<f64>,
    /// Leaves out the resources (by key) for which it says true, when the window is one of
    /// several read together and only some resources need it.
    pub skip: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
}

impl Window<'_> {
    /// The window's nanosecond range `[lo, hi)`: one second on from `(start, end]`, as the
    /// store's ranges are `[start, end)`, so that a point stamped `start` (the end of the
    /// period before the window) is left out and one stamped `end` is in.
    fn range_ns(&self) -> (i64, i64) {
        (
            to_ns_saturating(self.start + Duration::seconds(1)),
            to_ns_saturating(self.end + Duration::seconds(1)),
        )
    }
}

/// Summaries by resource key of every series of `metric` with `stat`, one map per window,
/// from one read. Only the resources `want` accepts are read (all when `None`).
pub fn read_windows(
    store: &dyn Store,
    metric: &str,
    stat: Stat,
    windows: &[Window],
    want: Option<&HashSet<String>>,
) -> Result<Vec<HashMap<String, SeriesSummary>>, StoreError> {
    let Some(lo) = windows.iter().map(|w| w.range_ns().0).min() else {
        return Ok(Vec::new());
    };
    let hi = windows.iter().map(|w| w.range_ns().1).max().unwrap_or(lo);
    // Each series' summaries with the series' labels, merged per resource afterwards in
    // the order of their labels: the threads hand series over in no particular order, and
    // a resource's sum over several series must not depend on it.
    type Found = (String, skymeter_model::Labels, Vec<Option<SeriesSummary>>);
    let found: Mutex<Vec<Found>> = Mutex::new(Vec::new());
    let accept = |key: &SeriesKey| want.is_none_or(|w| w.contains(&key.resource.key()));
    store.scan_points(
        &scan_of(
            metric,
            stat,
            (lo, hi),
            want.is_some()
                .then_some(&accept as &(dyn Fn(&SeriesKey) -> bool + Sync)),
        ),
        &|key, ts, vals| {
            let resource = key.resource.key();
            let summaries = windows
                .iter()
                .map(|w| {
                    if w.skip.is_some_and(|skip| skip(&resource)) {
                        return None;
                    }
                    let (lo, hi) = w.range_ns();
                    let (a, b) = (
                        ts.partition_point(|t| *t < lo),
                        ts.partition_point(|t| *t < hi),
                    );
                    let (ts, vals) = (&ts[a..b], &vals[a..b]);
                    match w.buckets {
                        Some((step, agg)) => SeriesSummary::of_buckets(
                            stat,
                            ts,
                            vals,
                            step as i64 * 1_000_000_000,
                            agg,
                        ),
                        None => SeriesSummary::of_raw(stat, ts, vals, w.p),
                    }
                })
                .collect();
            let labels = key.labels.clone();
            found
                .lock()
                .expect("not poisoned")
                .push((resource, labels, summaries));
        },
    )?;
    let mut found = found.into_inner().expect("not poisoned");
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out = vec![HashMap::new(); windows.len()];
    for (resource, _, summaries) in found {
        for (map, s) in out.iter_mut().zip(summaries) {
            let Some(s) = s else { continue };
            match map.get_mut(&resource) {
                Some(have) => SeriesSummary::merge(have, &s),
                None => {
                    map.insert(resource.clone(), s);
                }
            }
        }
    }
    Ok(out)
}

/// The largest value by resource key of every series of `metric` with `stat` in the
/// window, from the store's extents (its index, mostly, without decoding a point): a first
/// look that tells which resources need their points read at all.
pub fn read_peaks(
    store: &dyn Store,
    metric: &str,
    stat: Stat,
    window: Window,
) -> Result<HashMap<String, f64>, StoreError> {
    let (lo, hi) = window.range_ns();
    let peaks: Mutex<HashMap<String, f64>> = Mutex::new(HashMap::new());
    store.scan_extents(&scan_of(metric, stat, (lo, hi), None), &|key, extent| {
        let mut peaks = peaks.lock().expect("not poisoned");
        let peak = peaks.entry(key.resource.key()).or_insert(f64::NAN);
        *peak = peak.max(extent.max);
    })?;
    Ok(peaks.into_inner().expect("not poisoned"))
}

/// One window of one metric: see [`read_windows`].
pub fn read_series(
    store: &dyn Store,
    metric: &str,
    stat: Stat,
    window: Window,
) -> Result<HashMap<String, SeriesSummary>, StoreError> {
    Ok(read_windows(store, metric, stat, &[window], None)?
        .pop()
        .unwrap_or_default())
}

/// Received + sent network throughput (bytes/s) in hourly averages, summarised by
/// resource key (`max` is the busiest hour), of the resources in `of` only.
pub fn hourly_network(
    store: &dyn Store,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    of: &HashSet<String>,
) -> Result<HashMap<String, SeriesSummary>, StoreError> {
    // Hourly buckets of one series only would split a resource's throughput in two, so
    // each resource's hours are kept for the whole window: one f64 per hour indexed from
    // the window's first hour (NaN: no point), of the resources asked for (the instances
    // idle on CPU), not the fleet.
    let base = start.timestamp().div_euclid(3600);
    let len = (end.timestamp().div_euclid(3600) - base + 2).max(1) as usize;
    let window = Window {
        start,
        end,
        buckets: Some((3600, Stat::Avg)),
        p: None,
        skip: None,
    };
    let (lo, hi) = window.range_ns();
    let hours: Mutex<HashMap<String, Vec<f64>>> = Mutex::new(HashMap::new());
    let accept = |key: &SeriesKey| of.contains(&key.resource.key());
    for metric in ["network.received_throughput", "network.sent_throughput"] {
        store.scan_points(
            &scan_of(metric, Stat::Avg, (lo, hi), Some(&accept)),
            &|key, ts, vals| {
                let mut hourly = Vec::new();
                each_bucket(ts, vals, 3_600_000_000_000, Stat::Avg, |end, v| {
                    hourly.push((end.div_euclid(1_000_000_000).div_euclid(3600) - base, v));
                });
                let mut hours = hours.lock().expect("not poisoned");
                let h = hours
                    .entry(key.resource.key())
                    .or_insert_with(|| vec![f64::NAN; len]);
                for (i, v) in hourly {
                    if let Some(slot) = usize::try_from(i).ok().and_then(|i| h.get_mut(i)) {
                        *slot = if slot.is_nan() { v } else { *slot + v };
                    }
                }
            },
        )?;
    }
    Ok(hours
        .into_inner()
        .expect("not poisoned")
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
