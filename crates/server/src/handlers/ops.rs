//! Operations: `/health` for load balancers and `/metrics` for Prometheus.
//!
//! `/health` runs the store's check one at a time through the server state's `HealthCache`
//! (`state.rs`): probes that arrive while a check runs share the next one's answer.

use crate::apidoc::{string, Op, Schemas};
use crate::error::ApiErr;
use crate::state::{blocking, AppState, RouteSpec};
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

/// The OpenAPI description of `/health` and `/metrics` (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("GET", "/health") => Op {
            tag: "operations",
            summary: "Health of the server and its storage",
            description: "For load balancers and monitors. No authentication.",
            params: vec![],
            body: None,
            ok: vec![
                (
                    "200",
                    "The server and its storage work.",
                    Some((json_ct, s.of::<HealthBody>())),
                ),
                (
                    "503",
                    "The storage check failed; `storage` says why.",
                    Some((json_ct, s.of::<HealthBody>())),
                ),
            ],
            errors: vec![],
        },
        ("GET", "/metrics") => Op {
            tag: "operations",
            summary: "The server's own metrics, for Prometheus",
            description: "Requests by route and status, ingest batches, points and bytes, \
                          ingest latency, and the store's sizes, in the Prometheus text format.",
            params: vec![],
            body: None,
            ok: vec![(
                "200",
                "Prometheus text exposition format 0.0.4.",
                Some(("text/plain", string())),
            )],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}
