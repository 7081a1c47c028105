//! Self-accounting of the cloud collectors and price sources: API calls of one collection (or
//! one price update) per API.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Calls of one collection per API name (every page and every retry is one call), shared
/// by the collection's concurrent tasks. Each collector names its APIs its own way
/// (`ec2:DescribeInstances`, `monitoring.timeSeries.list`, `monitor.metrics.getBatch`).
#[derive(Debug, Default)]
pub struct ApiCallCounts {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl ApiCallCounts {
    /// Counts one call of `api`.
    pub fn count(&self, api: &'static str) {
        *self.lock().entry(api).or_default() += 1;
    }

    pub fn get(&self, api: &str) -> u64 {
        self.lock().get(api).copied().unwrap_or(0)
    }

    /// Every API called, in name order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.lock().iter().map(|(a, n)| (*a, *n)).collect()
    }

    /// Forgets the counts (each collection reports its own calls).
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// A panic while counting leaves the counts usable: they are plain numbers.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, u64>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}
