//! The OpenFinOps agents' server API, under `/openfinops/{token}`, so that their agents post
//! to skymeter unchanged: `--server http://HOST:8080/openfinops/<ingest token>`.
//!
//! The agents cannot send a header (they call `requests.post(f"{server}/api/v1/…")`), so
//! the token rides in the base URL's path; with `--no-auth`, any segment (e.g. `open`)
//! works. Routes, as their reference server (`openfinops/observability/telemetry_server.py`)
//! answers them, 200 with `{"status": "success", …}`, 400 `{"error": …}`:
//! - `POST …/api/v1/agents/register`: only `agent_id` is required (the generic and Azure
//!   agents send no `region` or `cloud_provider`, which the reference server wrongly
//!   requires); the agent joins skymeter's agent registry.
//! - `POST …/api/v1/telemetry/ingest`: mapped into standard records and stored as one batch
//!   ([`aws`]: the AWS agent's `services`; [`azure`], [`gcp`]: those agents' `metrics`;
//!   [`generic`]: the generic agent's system metrics). Other agents' posts (Databricks,
//!   Snowflake, SaaS) are accepted and recorded as a collection error saying they are not
//!   mapped yet. An agent that never registered (`--once` does not) is registered from its
//!   post.
//! - `GET …/health` (and `/openfinops/health`).

pub use generic::Counters;

mod aws;
mod azure;
mod gcp;
mod generic;
mod records;
#[cfg(test)]
mod tests;

use crate::error::ApiErr;
use crate::state::{blocking, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use records::Records;
use serde_json::{json, Value};
use skymeter_model::api::AgentRegistration;
use skymeter_store::{IngestOutcome, Scope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/{token}/health", get(health_with_token))
        .route("/{token}/api/v1/health", get(health_with_token))
        .route("/{token}/api/v1/agents/register", post(register))
        .route("/{token}/api/v1/telemetry/ingest", post(ingest))
}

/// An answer in the reference server's shape.
fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    answer(status, json!({ "error": error.into() }))
}

async fn health() -> Response {
    answer(
        StatusCode::OK,
        json!({"status": "healthy", "service": "skymeter (OpenFinOps agent API)",
               "version": env!("CARGO_PKG_VERSION")}),
    )
}

async fn health_with_token(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    if let Err(r) = authorize(&st, token).await {
        return r;
    }
    health().await
}

/// The path's token must be a skymeter token with the `ingest` (or `admin`) scope.
async fn authorize(st: &AppState, token: String) -> Result<(), Response> {
    if st.auth == crate::config::Auth::Disabled {
        return Ok(());
    }
    let store = st.store.clone();
    match blocking(move || store.authenticate(&token).map_err(ApiErr::store)).await {
        Ok(Some(info))
            if info.scopes.contains(&Scope::Ingest) || info.scopes.contains(&Scope::Admin) =>
        {
            Ok(())
        }
        Ok(Some(_)) => Err(refuse(
            StatusCode::FORBIDDEN,
            "the token in the URL needs the `ingest` scope",
        )),
        Ok(None) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "the token in the URL (`/openfinops/<token>/…`) is not a valid skymeter API token",
        )),
        Err(e) => Err(e.into_response()),
    }
}

/// A JSON object body, or the reference server's 400.
async fn object(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    let enc = crate::body::Encoding::from_headers(headers).map_err(IntoResponse::into_response)?;
    let raw = crate::body::read_raw(headers, body, enc, st.limits)
        .await
        .map_err(IntoResponse::into_response)?;
    let bytes =
        crate::body::decode(raw, enc, st.limits.max_bytes).map_err(IntoResponse::into_response)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "Invalid telemetry data: the body must be a JSON object",
        )),
    }
}

fn agent_id(body: &Value) -> Option<String> {
    records::text(body.get("agent_id"))
        .filter(|id| id.chars().count() <= 256 && !id.chars().any(char::is_control))
}

/// A post the token allows, as a JSON object with an `agent_id`; else the answer, with
/// `missing` as the reference server words a post without `agent_id`.
async fn accept(
    st: &AppState,
    token: String,
    headers: &HeaderMap,
    body: Body,
    missing: &str,
) -> Result<(Value, String), Response> {
    authorize(st, token).await?;
    let body = object(st, headers, body).await?;
    match agent_id(&body) {
        Some(id) => Ok((body, id)),
        None => Err(refuse(StatusCode::BAD_REQUEST, missing)),
    }
}

/// The registration skymeter keeps for an OpenFinOps agent.
fn registration(id: &str, body: &Value) -> AgentRegistration {
    // Registration bodies have these at the top; the Azure, GCP and generic agents' posts
    // under `metrics`.
    let s = |k: &str| records::text(body.get(k)).or_else(|| records::text(body["metrics"].get(k)));
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("source".to_string(), "openfinops".to_string());
    for key in ["cloud_provider", "region", "agent_type", "environment"] {
        if let Some(v) = s(key) {
            labels.insert(key.to_string(), v);
        }
    }
    let interval = records::num(body["config"].get("collection_interval"))
        .filter(|s| *s >= 1.0)
        .map_or(300, |s| s as u64);
    AgentRegistration {
        id: id.to_string(),
        hostname: s("hostname").unwrap_or_default(),
        version: s("agent_version").unwrap_or_else(|| "openfinops".into()),
        tasks: Vec::new(),
        labels,
        heartbeat_interval_s: interval,
    }
}

async fn register(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, id) = match accept(
        &st,
        token,
        &headers,
        body,
        "Missing required fields: agent_id",
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let reg = registration(&id, &body);
    let store = st.store.clone();
    match blocking(move || {
        store
            .register_agent(&reg, Utc::now())
            .map_err(ApiErr::store)
    })
    .await
    {
        Ok(()) => answer(
            StatusCode::OK,
            json!({"status": "success", "message": "Agent registered"}),
        ),
        Err(e) => e.into_response(),
    }
}

/// Which agent posted: the envelopes differ (AWS: top-level `services`; the others:
/// `metrics`). An Azure or GCP post whose collection failed as a whole
/// (`metrics: {"error": …}`) is known by its agent id (`azure-telemetry-…`,
/// `gcp-telemetry-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Aws,
    Generic,
    Azure,
    Gcp,
    Other,
}

impl Agent {
    fn of(body: &Value, agent_id: &str) -> Agent {
        let metrics = &body["metrics"];
        let has = |keys: &[&str]| keys.iter().any(|k| metrics.get(k).is_some());
        if body.get("services").is_some_and(Value::is_object) {
            Agent::Aws
        } else if metrics["collectors"].is_object() {
            Agent::Generic
        } else if has(&["subscription_id", "virtual_machines", "azure_functions"])
            || agent_id.starts_with("azure-telemetry-")
        {
            Agent::Azure
        } else if has(&["project_id", "compute_engine", "cloud_functions"])
            || agent_id.starts_with("gcp-telemetry-")
        {
            Agent::Gcp
        } else {
            Agent::Other
        }
    }

    /// The cloud of its resources, for the agent's labels when its post does not say.
    fn cloud(self) -> Option<&'static str> {
        match self {
            Agent::Aws => Some("aws"),
            Agent::Azure => Some("azure"),
            Agent::Gcp => Some("gcp"),
            Agent::Generic | Agent::Other => None,
        }
    }
}

fn time_of(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let secs = records::num(v)?;
    DateTime::from_timestamp_millis((secs * 1000.0) as i64)
}

async fn ingest(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, id) = match accept(&st, token, &headers, body, "Invalid telemetry data").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = Utc::now();
    // The post's own time, unless it is not a time or lies ahead of the server's clock.
    let at = time_of(body.get("timestamp"))
        .filter(|t| *t <= now + chrono::Duration::minutes(5))
        .unwrap_or(now);
    let agent = Agent::of(&body, &id);
    let mut out;
    match agent {
        Agent::Aws => {
            out = Records::new(at, "openfinops/aws");
            aws::map(&body, &mut out);
        }
        Agent::Generic => {
            out = Records::new(at, "openfinops/generic");
            generic::map(&body, &st.openfinops_counters, &mut out);
        }
        Agent::Azure => {
            out = Records::new(at, "openfinops/azure");
            azure::map(&body, &mut out);
        }
        Agent::Gcp => {
            out = Records::new(at, "openfinops/gcp");
            gcp::map(&body, &mut out);
        }
        Agent::Other => {
            out = Records::new(at, "openfinops");
            let provider = records::text(body.get("cloud_provider")).unwrap_or_else(|| "?".into());
            out.error(
                "openfinops",
                format!(
                    "telemetry of this OpenFinOps agent (cloud_provider `{provider}`) is accepted \
                     but not mapped into records yet; the AWS, Azure, GCP and generic agents' are"
                ),
                &[("agent_id", &id)],
            );
        }
    }
    let batch = out.into_batch(&id, now);
    if let Err(errs) = batch.validate() {
        let list: Vec<String> = errs.iter().take(5).map(|e| e.to_string()).collect();
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("Invalid telemetry data: {}", list.join("; ")),
        );
    }
    let mut reg = registration(&id, &body);
    if let Some(cloud) = agent.cloud() {
        reg.labels
            .entry("cloud_provider".into())
            .or_insert_with(|| cloud.into());
    }
    let store = st.store.clone();
    let stored = blocking(move || {
        // An agent that never registered (the AWS agent's --once) is known from its posts.
        store
            .register_agent(&reg, now)
            .and_then(|()| store.ingest(&batch))
            .map_err(ApiErr::store)
    })
    .await;
    match stored {
        Ok(IngestOutcome::Stored | IngestOutcome::Duplicate) => answer(
            StatusCode::OK,
            json!({"status": "success", "message": "Telemetry data received"}),
        ),
        Ok(IngestOutcome::Conflict) => refuse(StatusCode::CONFLICT, "batch id reused"),
        Err(e) => e.into_response(),
    }
}
