//! Operations: `/health` for load balancers and `/metrics` for Prometheus.

use crate::error::ApiErr;
use crate::routes::{blocking, AppState};
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
    let store = st.store.clone();
    let check = blocking(move || store.check().map_err(ApiErr::store)).await;
    let (code, status, storage) = match check {
        Ok(()) => (StatusCode::OK, "ok", "ok".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, "degraded", e.body.message),
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
    let text = st.metrics.render(stats.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
