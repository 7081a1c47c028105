//! Agents: register, heartbeat, list.

use super::small_json;
use crate::agent_series;
use crate::apidoc::{page_params, string, Op, PageOf, Schemas};
use crate::error::{ApiErr, ApiResult};
use crate::params::Params;
use crate::state::{blocking, AppState, RouteSpec};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use skymeter_model::api::{AgentRegistration, Heartbeat};
use skymeter_model::FieldError;
use skymeter_store::{AgentRecord, Page};

/// `200` answer of `POST /api/v1/agents/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterResponse {
    /// The agent's id, as registered.
    pub id: String,
}

pub async fn register(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RegisterResponse>> {
    let reg: AgentRegistration = small_json(&st, &headers, body).await?;
    let mut fields = Vec::new();
    if reg.id.trim().is_empty() {
        fields.push(FieldError::new("id", "must not be empty"));
    }
    // Characters, as the published schema's `maxLength` counts them.
    if reg.id.chars().count() > 256 || reg.id.chars().any(|c| c.is_control()) {
        fields.push(FieldError::new(
            "id",
            "must be at most 256 characters, without control characters",
        ));
    }
    if reg.heartbeat_interval_s == 0 {
        fields.push(FieldError::new(
            "heartbeat_interval_s",
            "must be at least 1",
        ));
    }
    if !fields.is_empty() {
        let list: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        return Err(ApiErr::bad_request(format!(
            "the registration is not valid: {}",
            list.join("; ")
        ))
        .with_fields(fields));
    }
    let store = st.store.clone();
    let id = reg.id.clone();
    blocking(move || {
        let now = chrono::Utc::now();
        store.register_agent(&reg, now).map_err(ApiErr::store)?;
        agent_series::record(&*store, &reg, &Heartbeat::default(), now);
        Ok(())
    })
    .await?;
    Ok(Json(RegisterResponse { id }))
}

pub async fn heartbeat(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let hb: Heartbeat = small_json(&st, &headers, body).await?;
    let store = st.store.clone();
    let known = {
        let id = id.clone();
        blocking(move || {
            let now = chrono::Utc::now();
            let known = store.heartbeat(&id, &hb, now).map_err(ApiErr::store)?;
            if known {
                match store.agent_registration(&id) {
                    Ok(Some(reg)) => agent_series::record(&*store, &reg, &hb, now),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(agent_id = %id, error = %e, "agent series not written: reading the agent's registration failed"),
                }
            }
            Ok(known)
        })
        .await?
    };
    if known {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiErr::not_found(format!(
            "unknown agent `{id}`; register again with POST /api/v1/agents/register"
        )))
    }
}

pub async fn list(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Page<AgentRecord>>> {
    let mut p = Params::parse(q.as_deref())?;
    let page = p.take_page()?;
    p.finish()?;
    let store = st.store.clone();
    let agents = blocking(move || {
        store
            .agents(&page, chrono::Utc::now())
            .map_err(ApiErr::store)
    })
    .await?;
    Ok(Json(agents))
}

/// The OpenAPI description of the agents' operations (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("POST", "/api/v1/agents/register") => Op {
            tag: "agents",
            summary: "Register an agent",
            description: "Agents register at start and again whenever a heartbeat is \
                          answered 404. Registering again updates the registration. The \
                          agent is also stored as a resource (provider `skymeter`, kind \
                          `agent`, name = hostname) with the points `agent_up`, \
                          `agent_buffered_batches`, `agent_dropped_batches`, \
                          `agent_heartbeat_interval_seconds`, `agent_heartbeat_timestamp_seconds`.",
            params: vec![],
            body: Some((s.of::<AgentRegistration>(), "The agent and its tasks.")),
            ok: vec![(
                "200",
                "Registered.",
                Some((json_ct, s.of::<RegisterResponse>())),
            )],
            errors: vec![
                ("413", "The body is over the server's limit."),
                ("415", "Unsupported encoding or content type."),
            ],
        },
        ("POST", "/api/v1/agents/{id}/heartbeat") => Op {
            tag: "agents",
            summary: "Heartbeat of a registered agent",
            description:
                "The body is a JSON object, `{}` at least. Also stores the agent's points \
                          (`agent_up` = 1, buffered and dropped batches, interval, heartbeat \
                          time) for the Prometheus API.",
            params: vec![
                json!({"name": "id", "in": "path", "required": true, "description": "The agent's id.", "schema": string()}),
            ],
            body: Some((s.of::<Heartbeat>(), "The agent's buffer state.")),
            ok: vec![("204", "Recorded.", None)],
            errors: vec![
                ("404", "Unknown agent (`not_found`): register again."),
                ("413", "The body is over the server's limit."),
                ("415", "Unsupported encoding or content type."),
            ],
        },
        ("GET", "/api/v1/agents") => Op {
            tag: "agents",
            summary: "List agents",
            description: "With each agent's last heartbeat and status (`healthy` within 2 \
                          heartbeat intervals, `late` within 5, `offline` after).",
            params: page_params(),
            body: None,
            ok: vec![(
                "200",
                "A page of agents.",
                Some((json_ct, s.of::<PageOf<AgentRecord>>())),
            )],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}
