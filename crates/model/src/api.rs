//! Wire types between agents and the server, besides [`crate::Batch`]: agent registration,
//! heartbeats, and the server's answers. Both sides use these exact types.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One task an agent runs, as it tells the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentTask {
    pub name: String,
    /// Seconds between runs (the cron's current gap for cron schedules).
    #[serde(deserialize_with = "crate::whole::u64")]
    #[schemars(range(max = 18446744073709551615u64))]
    pub interval_s: u64,
}

/// `POST /api/v1/agents/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRegistration {
    /// Stable across restarts (kept in the agent's data dir). 1 to 256 characters, not all
    /// white space, no control characters.
    #[schemars(
        length(min = 1, max = 256),
        regex(
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub id: String,
    pub hostname: String,
    /// skymeter version of the agent.
    pub version: String,
    #[serde(default)]
    pub tasks: Vec<AgentTask>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds between heartbeats; the server derives late / offline from it.
    #[serde(deserialize_with = "crate::whole::u64")]
    #[schemars(range(min = 1, max = 18446744073709551615u64))]
    pub heartbeat_interval_s: u64,
}

/// `POST /api/v1/agents/{id}/heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Batches waiting in the agent's buffer.
    #[serde(default, deserialize_with = "crate::whole::u64")]
    #[schemars(range(max = 18446744073709551615u64))]
    pub buffered_batches: u64,
    /// Batches the agent had to drop since it started (`when_full = "drop_oldest"`).
    #[serde(default, deserialize_with = "crate::whole::u64")]
    #[schemars(range(max = 18446744073709551615u64))]
    pub dropped_batches: u64,
}

/// How an agent is doing, from its last heartbeat and its interval: `healthy` within
/// 2 intervals, `late` within 5, `offline` after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Healthy,
    Late,
    Offline,
}

impl AgentStatus {
    /// The status of an agent last heard of at `last_seen`, expected every `interval_s`.
    pub fn at(now: DateTime<Utc>, last_seen: DateTime<Utc>, interval_s: u64) -> AgentStatus {
        let interval = interval_s.max(1) as i64;
        let silent = (now - last_seen).num_seconds();
        if silent <= 2 * interval {
            AgentStatus::Healthy
        } else if silent <= 5 * interval {
            AgentStatus::Late
        } else {
            AgentStatus::Offline
        }
    }
}

/// `200` answer of `POST /api/v1/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IngestResponse {
    pub batch_id: uuid::Uuid,
    /// True when this `batch_id` was already stored: nothing was stored again.
    pub duplicate: bool,
    pub resources: usize,
    pub points: usize,
    pub costs: usize,
    pub errors: usize,
}

/// Every 4xx/5xx answer of the API: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiError {
    /// Machine-readable: `invalid_json`, `invalid_batch`, `too_large`, `unauthorized`,
    /// `forbidden`, `not_found`, `bad_request`, `unsupported_encoding`, `internal`.
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
    /// For `invalid_batch`: every bad field, by path (`points[17].ts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<crate::FieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_heartbeat_interval() {
        let t0: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        let at = |s: i64| AgentStatus::at(t0 + chrono::Duration::seconds(s), t0, 10);
        assert_eq!(
            (at(20), at(21), at(50), at(51)),
            (
                AgentStatus::Healthy,
                AgentStatus::Late,
                AgentStatus::Late,
                AgentStatus::Offline
            )
        );
    }
}
