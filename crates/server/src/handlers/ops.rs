//! Operations: `/health` for load balancers and `/metrics` for Prometheus.
//!
//! `/health` runs the store's check one at a time through the server state's `HealthCache`
//! (`state.rs`): probes that arrive while a check runs share the next one's answer.

use crate::error::ApiErr;
use crate::state::{blocking, AppState};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthBody {
    /// `ok`, or `degraded` when the storage check failed (answered with 503).
    pub status: String,
    /// `ok`, or what the storage check said.
    pub storage: String,
    /// The server's version.
    pub version: String,
}

pub async fn health(State(st): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let (code, status, storage) = match st.health.get(&st).await {
        Ok(()) => (StatusCode::OK, "ok", "ok".to_string()),
        Err(message) => (StatusCode::SERVICE_UNAVAILABLE, "degraded", message),
    };
    (
        code,
        Json(HealthBody {
            status: status.into(),
            storage,
            version: env!("CARGO_PKG_VERSION").into(),
        }),
    )
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    let store = st.store.clone();
    let stats = blocking(move || store.stats().map_err(ApiErr::store))
        .await
        .ok();
    let text = st
        .metrics
        .render(stats.as_ref(), st.ingest_budget.in_flight());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
