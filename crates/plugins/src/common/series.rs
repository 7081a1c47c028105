//! Gauge and counter readings of custom sources (a Prometheus scrape, a command's output)
//! turned into points: gauges as they are (`Stat::Last`, `period_s` 0 unless told), counters
//! as per-second rates since the previous collection (`Stat::Avg`, `period_s` = seconds
//! between the two reads). The `prometheus` and `exec` collectors share it so that both
//! treat counters the same way.

use chrono::{DateTime, Utc};
use skymeter_model::{Labels, Point, ResourceRef, Stat, Unit};
use skymeter_plugin_api::rate::CounterRates;

/// One value read from a source, before it becomes a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub kind: ReadingKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadingKind {
    /// Emitted as read.
    Gauge { unit: Unit, stat: Stat },
    /// A monotonically increasing total; emitted as a rate in `rate_unit`.
    Counter { rate_unit: Unit },
}

/// The unit of a counter's per-second rate, given the unit of the counter itself: bytes →
/// bytes/s, seconds → ratio (the fraction of time), joules → watts, anything else → count/s.
pub fn rate_unit(base: Unit) -> Unit {
    base.per_second().unwrap_or(Unit::CountPerSecond)
}

/// Counter values across collections. One per collector instance.
#[derive(Debug, Default)]
pub struct RateState {
    rates: CounterRates<String>,
    last_at: Option<f64>,
}

impl RateState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a previous collection exists to compute rates against.
    pub fn has_previous(&self) -> bool {
        self.last_at.is_some()
    }

    /// Starts turning the readings of one collection, read at `now_s` (seconds on a
    /// monotonic clock), into points for `resource` at `ts`.
    pub fn begin(
        &mut self,
        now_s: f64,
        resource: std::sync::Arc<ResourceRef>,
        ts: DateTime<Utc>,
    ) -> Emitter<'_> {
        let period_s = self
            .last_at
            .map(|prev| (now_s - prev).round().max(1.0) as u32)
            .unwrap_or(0);
        Emitter {
            state: self,
            now_s,
            period_s,
            resource,
            ts,
            counters: 0,
        }
    }
}

/// Turns one collection's readings into points; [`Emitter::finish`] ends the collection.
pub struct Emitter<'s> {
    state: &'s mut RateState,
    now_s: f64,
    period_s: u32,
    resource: std::sync::Arc<ResourceRef>,
    ts: DateTime<Utc>,
    counters: usize,
}

impl Emitter<'_> {
    /// Adds the point of one reading to `out`. Gauges that are not finite (a summary
    /// quantile with no observations is NaN) are skipped, as are counters read for the first
    /// time (they have no rate yet).
    pub fn push(&mut self, r: Reading, out: &mut Vec<Point>) {
        if !r.value.is_finite() {
            return;
        }
        let (value, unit, stat, period_s) = match r.kind {
            ReadingKind::Gauge { unit, stat } => (r.value, unit, stat, 0),
            ReadingKind::Counter { rate_unit } => {
                self.counters += 1;
                let mut key = String::with_capacity(r.metric.len() + 16 * r.labels.len());
                key.push_str(&r.metric);
                for (k, v) in &r.labels {
                    key.push('\u{1}');
                    key.push_str(k);
                    key.push('\u{2}');
                    key.push_str(v);
                }
                match self.state.rates.update(key, r.value, self.now_s) {
                    Some(rate) => (rate, rate_unit, Stat::Avg, self.period_s),
                    None => return,
                }
            }
        };
        out.push(Point {
            metric: r.metric.into(),
            unit,
            stat,
            period_s,
            ts: self.ts,
            value,
            resource: self.resource.clone(),
            labels: r.labels.into(),
        });
    }

    /// How many counter readings this collection had (rates need a second collection).
    pub fn counters(&self) -> usize {
        self.counters
    }

    /// Ends the collection: forgets counters that were not read this time.
    pub fn finish(self) {
        self.state.rates.sweep();
        self.state.last_at = Some(self.now_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(metric: &str, value: f64, kind: ReadingKind) -> Reading {
        Reading {
            metric: metric.into(),
            labels: [("a".to_string(), "1".to_string())].into(),
            value,
            kind,
        }
    }

    #[test]
    fn gauges_pass_counters_become_rates_on_the_second_collection() {
        let res = ResourceRef {
            provider: "custom".into(),
            account: Default::default(),
            region: Default::default(),
            id: "x".into(),
        };
        let ts = Utc::now();
        let gauge = ReadingKind::Gauge {
            unit: Unit::Bytes,
            stat: Stat::Last,
        };
        let counter = ReadingKind::Counter {
            rate_unit: Unit::BytesPerSecond,
        };
        let mut state = RateState::new();
        let mut out = Vec::new();
        let mut e = state.begin(100.0, res.clone().into(), ts);
        e.push(reading("g", 5.0, gauge), &mut out);
        e.push(reading("g", f64::NAN, gauge), &mut out);
        e.push(reading("c", 1000.0, counter), &mut out);
        assert_eq!(e.counters(), 1);
        e.finish();
        assert_eq!(out.len(), 1, "the counter has no rate yet");
        assert_eq!(
            (out[0].value, out[0].stat, out[0].period_s),
            (5.0, Stat::Last, 0)
        );

        out.clear();
        let mut e = state.begin(102.4, res.into(), ts);
        e.push(reading("c", 1480.0, counter), &mut out);
        e.finish();
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(
            (p.metric.as_str(), p.unit, p.stat, p.period_s),
            ("c", Unit::BytesPerSecond, Stat::Avg, 2)
        );
        assert!((p.value - 200.0).abs() < 1e-9, "{}", p.value);
        assert_eq!(p.labels["a"], "1");
        assert_eq!(rate_unit(Unit::Seconds), Unit::Ratio);
        assert_eq!(rate_unit(Unit::Celsius), Unit::CountPerSecond);
    }
}
