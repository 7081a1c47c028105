//! Operations: `/health` for load balancers and `/metrics` for Prometheus.
//!
//! `/health` runs the store's check ([`Store::check`](skymeter_store::Store::check)) at most
//! once per [`HEALTH_FRESH`], one at a time: probes that arrive meanwhile wait for the
//! running check and share its answer. So a hundred probers cost one check a second, never
//! contend with each other or with ingest for the store's write path, and cannot see each
//! other's check values (which made a healthy server answer 503 under concurrent probes).

use crate::error::ApiErr;
use crate::routes::{blocking, AppState};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

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

/// How long one store check answers `/health`.
pub const HEALTH_FRESH: Duration = Duration::from_secs(1);

/// The last store check: when it ran and what it said (`Err` carries the message).
#[derive(Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl HealthCache {
    /// The store's health: the last check's answer while fresh, else a new check's.
    async fn get(&self, st: &AppState) -> Result<(), String> {
        // An async mutex: probes queue here, without blocking a thread, while one checks.
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < HEALTH_FRESH {
                return answer.clone();
            }
        }
        let store = st.store.clone();
        let answer = blocking(move || store.check().map_err(ApiErr::store))
            .await
            .map_err(|e| e.body.message);
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
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
    let text = st.metrics.render(stats.as_ref(), st.ingest_budget.in_flight());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
