//! Self-accounting: GCP API calls per API (every HTTP request sent, retries included), keyed
//! by REST method name (`compute.instances.aggregatedList`, `monitoring.timeSeries.list`,
//! `bigquery.jobs.query`) and shared by every project task.

pub use crate::common::api_calls::ApiCallCounts as ApiCalls;
