//! Self-accounting: GCP API calls per API (every HTTP request sent, retries included).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// API calls of one collection, keyed by REST method name (`compute.instances.aggregatedList`,
/// `monitoring.timeSeries.list`, `bigquery.jobs.query`). Shared by every project task.
#[derive(Debug, Default)]
pub struct ApiCalls {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl ApiCalls {
    /// Counts one call of `api`.
    pub fn count(&self, api: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(api)
            .or_default() += 1;
    }

    pub fn get(&self, api: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(api)
            .copied()
            .unwrap_or(0)
    }

    /// Every API called, in name order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, n)| (*a, *n))
            .collect()
    }
}
