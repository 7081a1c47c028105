//! Agents as series, so that PromQL (and Grafana) can chart and alert on agent health.
//!
//! The agents table answers "how is each agent now" (`GET /api/v1/agents`); a dashboard
//! and an alert rule need history, through the Prometheus view, which only sees series. So
//! each registration and each heartbeat also stores a small batch for the agent as a
//! resource `{provider "skymeter", kind "agent", id = agent id, name = hostname}` (its
//! registration labels as tags, its version as an attribute) with these points, stamped
//! with the server's clock:
//!
//! | point | unit | Prometheus name | value |
//! |---|---|---|---|
//! | `agent.up` | — | `agent_up` | 1 |
//! | `agent.buffered_batches` | — | `agent_buffered_batches` | batches waiting in the agent's buffer |
//! | `agent.dropped_batches` | — | `agent_dropped_batches` | batches dropped since the agent started |
//! | `agent.heartbeat_interval` | seconds | `agent_heartbeat_interval_seconds` | the registered interval |
//! | `agent.heartbeat_timestamp` | seconds | `agent_heartbeat_timestamp_seconds` | Unix time of this heartbeat |
//!
//! With the last two, PromQL tells healthy / late / offline exactly as the agents list does
//! (silent for at most 2, 5, more intervals): silence is
//! `time() - max_over_time(agent_heartbeat_timestamp_seconds[24h])`.
//!
//! The resource record is written with every heartbeat too, so its `last_seen` moves and
//! retention keeps it (and the `kind` / `resource_name` labels) while the agent lives.
//! These batches go through the store like any other (WAL, dedupe ids, retention); a failure
//! to store them is logged and does not fail the heartbeat, whose own record is kept.

use chrono::{DateTime, Utc};
use skymeter_model::api::{AgentRegistration, Heartbeat};
use skymeter_model::{Batch, Point, Resource, ResourceRef, SmolStr, Stat, Unit};
use skymeter_store::Store;
use std::sync::Arc;

/// The provider of the agents' resources.
pub const PROVIDER: &str = "skymeter";
/// The kind of the agents' resources.
pub const KIND: &str = "agent";

/// The batch that records one registration or heartbeat of `reg`'s agent at `now`.
pub fn agent_batch(reg: &AgentRegistration, hb: &Heartbeat, now: DateTime<Utc>) -> Batch {
    let mut batch = Batch::new(reg.id.clone(), "agent-heartbeat", now);
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("version".to_string(), reg.version.clone().into());
    attributes.insert(
        "heartbeat_interval_s".to_string(),
        reg.heartbeat_interval_s.into(),
    );
    batch.resources.push(Resource {
        provider: PROVIDER.into(),
        account: String::new(),
        region: String::new(),
        kind: KIND.into(),
        native_type: "skymeter.agent".into(),
        id: reg.id.clone(),
        name: reg.hostname.clone(),
        tags: reg.labels.clone(),
        attributes,
        observed_at: now,
    });
    let resource = Arc::new(ResourceRef {
        provider: SmolStr::new(PROVIDER),
        account: SmolStr::default(),
        region: SmolStr::default(),
        id: SmolStr::new(&reg.id),
    });
    let point = |metric: &str, unit: Unit, value: f64| Point {
        metric: SmolStr::new(metric),
        unit,
        stat: Stat::Last,
        period_s: 0,
        ts: now,
        value,
        resource: resource.clone(),
        labels: Default::default(),
    };
    batch.points = vec![
        point("agent.up", Unit::None, 1.0),
        point(
            "agent.buffered_batches",
            Unit::None,
            hb.buffered_batches as f64,
        ),
        point(
            "agent.dropped_batches",
            Unit::None,
            hb.dropped_batches as f64,
        ),
        point(
            "agent.heartbeat_interval",
            Unit::Seconds,
            reg.heartbeat_interval_s as f64,
        ),
        point(
            "agent.heartbeat_timestamp",
            Unit::Seconds,
            now.timestamp_millis() as f64 / 1000.0,
        ),
    ];
    batch
}

/// Stores the agent's batch; logs (and swallows) a failure, since the registration or
/// heartbeat itself was recorded and the agent should not retry it.
pub fn record(store: &dyn Store, reg: &AgentRegistration, hb: &Heartbeat, now: DateTime<Utc>) {
    let batch = agent_batch(reg, hb, now);
    if let Err(e) = batch.validate() {
        // An agent id the registration accepted but a resource id cannot carry: nothing
        // to chart, not worth failing the heartbeat over.
        tracing::warn!(agent_id = %reg.id, ?e, "agent series not written: the agent's batch is not valid");
        return;
    }
    if let Err(e) = store.ingest(&batch) {
        tracing::warn!(agent_id = %reg.id, error = %e, "agent series not written: storing the agent's heartbeat batch failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skymeter_model::prom::metric_name;

    #[test]
    fn a_heartbeat_becomes_a_valid_batch_for_the_agent_resource() {
        let reg = AgentRegistration {
            id: "agent-1".into(),
            hostname: "web-1".into(),
            version: "0.1.0".into(),
            tasks: vec![],
            labels: [("team".to_string(), "sre".to_string())].into(),
            heartbeat_interval_s: 30,
        };
        let hb = Heartbeat {
            buffered_batches: 4,
            dropped_batches: 2,
        };
        let now: DateTime<Utc> = "2026-03-02T10:00:00.250Z".parse().unwrap();
        let b = agent_batch(&reg, &hb, now);
        b.validate().unwrap();
        assert_eq!(b.resources[0].kind, "agent");
        assert_eq!(b.resources[0].name, "web-1");
        let by_name: std::collections::BTreeMap<String, f64> = b
            .points
            .iter()
            .map(|p| (metric_name(&p.metric, p.unit), p.value))
            .collect();
        assert_eq!(by_name["agent_up"], 1.0);
        assert_eq!(by_name["agent_buffered_batches"], 4.0);
        assert_eq!(by_name["agent_dropped_batches"], 2.0);
        assert_eq!(by_name["agent_heartbeat_interval_seconds"], 30.0);
        assert_eq!(
            by_name["agent_heartbeat_timestamp_seconds"],
            1_772_445_600.25
        );
        assert!(b
            .points
            .iter()
            .all(|p| p.ts == now && p.resource.id == "agent-1"));
    }
}
