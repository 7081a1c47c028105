//! Which periods a collection asks a metric API for and which it emits, the same for every
//! cloud: a run's window is mapped onto whole aggregation periods, `delay` behind its end;
//! the points of those periods are built the same way too ([`SeriesHead`]).

use chrono::{TimeZone, Utc};
use skymeter_model::{Point, PointLabels, ResourceRef, SmolStr, Stat, Unit};
use std::sync::Arc;

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
/// that end in `(end − max(period, window length), end]`. Times in Unix seconds.
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

impl MetricWindow {
    /// This window moved back by whole periods so that it ends at least `min_delay` before
    /// the collection's end, for metrics whose data shows up later than `delay` allows.
    pub fn later(self, delay: i64, min_delay: i64, period: i64) -> MetricWindow {
        let extra = min_delay - delay;
        if extra <= 0 {
            return self;
        }
        let shift = (extra + period - 1).div_euclid(period) * period;
        MetricWindow {
            start: self.start - shift,
            end: self.end - shift,
            emit_after: self.emit_after - shift,
        }
    }
}

impl MetricWindow {
    /// Whether the period ending at `end` (unix seconds) is emitted by this collection: it
    /// ends in `(emit_after, end]` (earlier ones were emitted before, later ones are not
    /// asked for).
    pub fn emits(&self, end: i64) -> bool {
        end > self.emit_after && end <= self.end
    }
}

/// What every point of one metric query shares: the normalized metric, the statistic, the
/// aggregation period and the labels.
pub struct SeriesHead {
    pub metric: SmolStr,
    pub stat: Stat,
    pub period_s: u32,
    pub labels: PointLabels,
}

impl SeriesHead {
    pub fn new(metric: SmolStr, stat: Stat, period_s: i64, labels: PointLabels) -> SeriesHead {
        SeriesHead {
            metric,
            stat,
            period_s: period_s as u32,
            labels,
        }
    }

    /// The point of `resource` for the period ending at `end` (unix seconds); `None` for a
    /// value that is not finite (a rate over no samples, a NaN in an answer), which is left
    /// out rather than stored.
    pub fn point(
        &self,
        end: i64,
        value: f64,
        unit: Unit,
        resource: &Arc<ResourceRef>,
    ) -> Option<Point> {
        if !value.is_finite() {
            return None;
        }
        Some(Point {
            metric: self.metric.clone(),
            unit,
            stat: self.stat,
            period_s: self.period_s,
            ts: Utc.timestamp_opt(end, 0).single()?,
            value,
            resource: resource.clone(),
            labels: self.labels.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_period_behind_the_delay() {
        // A 5-minute run ending 12:07:30, delay 5 min, period 5 min.
        let w = metric_window(43_350, 43_650, 300, 300);
        assert_eq!((w.start, w.end, w.emit_after), (42_600, 43_200, 42_900));
        // A long catch-up window asks and emits all of it.
        let w = metric_window(36_000, 43_200, 0, 300);
        assert_eq!((w.start, w.end, w.emit_after), (36_000, 43_200, 36_000));
        // Moved back for a late metric: 4 min more than the delay is one whole period.
        let l = metric_window(43_350, 43_650, 300, 300).later(300, 540, 300);
        assert_eq!((l.start, l.end, l.emit_after), (42_300, 42_900, 42_600));
        assert_eq!(w.later(300, 300, 300), w);
    }
}
