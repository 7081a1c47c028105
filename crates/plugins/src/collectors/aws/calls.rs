//! Self-accounting: AWS API calls per API, CloudWatch metrics requested, and what the
//! collection itself costs on the AWS bill.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// USD per 1,000 metrics requested through GetMetricData (us-east-1 list price).
pub const GET_METRIC_DATA_USD_PER_1000_METRICS: f64 = 0.01;
/// USD per Cost Explorer API request (GetCostAndUsage and …WithResources).
pub const COST_EXPLORER_USD_PER_REQUEST: f64 = 0.01;

/// API calls of one collection, keyed by IAM-style name (`ec2:DescribeInstances`,
/// `cloudwatch:GetMetricData`, `ce:GetCostAndUsage`). Shared by every account × region task.
#[derive(Debug, Default)]
pub struct ApiCalls {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    metrics_requested: AtomicU64,
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

    /// Counts `n` GetMetricData metric queries (the billed unit).
    pub fn count_metrics(&self, n: u64) {
        self.metrics_requested.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, api: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(api)
            .copied()
            .unwrap_or(0)
    }

    pub fn metrics_requested(&self) -> u64 {
        self.metrics_requested.load(Ordering::Relaxed)
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

    /// What the calls cost at list price: GetMetricData per metric requested, Cost Explorer
    /// per request. Describe/List calls are free.
    pub fn estimated_cost_usd(&self) -> f64 {
        self.metrics_requested() as f64 / 1000.0 * GET_METRIC_DATA_USD_PER_1000_METRICS
            + (self.get("ce:GetCostAndUsage") + self.get("ce:GetCostAndUsageWithResources")) as f64
                * COST_EXPLORER_USD_PER_REQUEST
    }
}
