//! Per-second rates from monotonically increasing counters, shared by every collector that
//! reads counters (host `/proc` counters, Prometheus counters, JSON and exec counters).

use std::collections::HashMap;
use std::hash::Hash;

/// Remembers the last value of each counter and turns the next one into a rate.
#[derive(Debug)]
pub struct CounterRates<K> {
    prev: HashMap<K, Sample>,
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    at_s: f64,
    generation: u64,
}

impl<K: Hash + Eq> Default for CounterRates<K> {
    fn default() -> Self {
        CounterRates {
            prev: HashMap::new(),
            generation: 0,
        }
    }
}

impl<K: Hash + Eq> CounterRates<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` read at `at_s` (seconds on any monotonic clock) and returns the rate
    /// per second since the previous read of the same counter, if there was one. A value
    /// lower than the previous one is a counter reset: the counter restarted from zero, so
    /// the rate is `value / elapsed` (Prometheus' `rate()` makes the same assumption).
    pub fn update(&mut self, key: K, value: f64, at_s: f64) -> Option<f64> {
        let sample = Sample {
            value,
            at_s,
            generation: self.generation,
        };
        let prev = self.prev.insert(key, sample)?;
        let dt = at_s - prev.at_s;
        if dt <= 0.0 {
            return None;
        }
        let delta = if value >= prev.value {
            value - prev.value
        } else {
            value
        };
        Some(delta / dt)
    }

    /// Whether a previous value exists for `key`.
    pub fn has(&self, key: &K) -> bool {
        self.prev.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }

    /// Call once per collection, after all updates: forgets counters not seen in this
    /// collection, so that series that disappear do not leak memory.
    pub fn sweep(&mut self) {
        let generation = self.generation;
        self.prev.retain(|_, s| s.generation == generation);
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_resets_and_sweeps() {
        let mut r = CounterRates::new();
        assert_eq!(r.update("a", 100.0, 0.0), None);
        assert_eq!(r.update("b", 5.0, 0.0), None);
        r.sweep();
        assert_eq!(r.update("a", 160.0, 10.0), Some(6.0));
        assert_eq!(r.update("a", 160.0, 10.0), None, "no time elapsed");
        r.sweep();
        assert!(!r.has(&"b"), "b was not seen last collection");
        assert_eq!(
            r.update("a", 20.0, 20.0),
            Some(2.0),
            "reset counts from zero"
        );
    }
}
