//! Self-accounting: AWS API calls per API, CloudWatch metrics requested, and what the
//! collection itself costs on the AWS bill.

use crate::common::api_calls::ApiCallCounts;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// USD per 1,000 metrics requested through GetMetricData (us-east-1 list price).
pub const GET_METRIC_DATA_USD_PER_1000_METRICS: f64 = 0.01;
/// USD per Cost Explorer API request (GetCostAndUsage and …WithResources).
pub const COST_EXPLORER_USD_PER_REQUEST: f64 = 0.01;

/// API calls of one collection, keyed by IAM-style name (`ec2:DescribeInstances`,
/// `cloudwatch:GetMetricData`, `ce:GetCostAndUsage`). Shared by every account × region task.
#[derive(Debug, Default)]
pub struct ApiCalls {
    counts: Arc<ApiCallCounts>,
    metrics_requested: AtomicU64,
}

/// `count`, `get` and `snapshot` are the shared counter's.
impl Deref for ApiCalls {
    type Target = ApiCallCounts;
    fn deref(&self) -> &ApiCallCounts {
        &self.counts
    }
}

impl ApiCalls {
    /// Counts calls into `counts` (the cloud driver's counter of the collection).
    pub fn new(counts: Arc<ApiCallCounts>) -> ApiCalls {
        ApiCalls {
            counts,
            metrics_requested: AtomicU64::new(0),
        }
    }

    /// Counts `n` GetMetricData metric queries (the billed unit).
    pub fn count_metrics(&self, n: u64) {
        self.metrics_requested.fetch_add(n, Ordering::Relaxed);
    }

    pub fn metrics_requested(&self) -> u64 {
        self.metrics_requested.load(Ordering::Relaxed)
    }

    /// What the calls cost at list price: GetMetricData per metric requested, Cost Explorer
    /// per request. Describe/List calls are free.
    pub fn estimated_cost_usd(&self) -> f64 {
        self.metrics_requested() as f64 / 1000.0 * GET_METRIC_DATA_USD_PER_1000_METRICS
            + (self.get("ce:GetCostAndUsage") + self.get("ce:GetCostAndUsageWithResources")) as f64
                * COST_EXPLORER_USD_PER_REQUEST
    }
}
