//! Operations: `/health` for load balancers and `/metrics` for Prometheus.
//!
//! `/health` runs the store's check ([`Store::check`](skymeter_store::Store::check)) one at a
//! time: probes that arrive while a check runs wait for the next one and share its answer.
//! Every probe still gets the answer of a check that started after it arrived, but a hundred
//! concurrent probers cost two checks, not a hundred, never run checks side by side (which
//! made a healthy server answer 503 when one check read back another's value), and leave
//! the store's write path to ingest.

use crate::error::ApiErr;
use crate::routes::{blocking, AppState};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Instant;

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

/// The last store check: when it started and what it said (`Err` carries the message).
#[derive(Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl HealthCache {
    /// The answer of a store check that started after this call.
    async fn get(&self, st: &AppState) -> Result<(), String> {
        let arrived = Instant::now();
        // An async mutex: probes queue here, without holding a thread, while one checks.
        let mut last = self.last.lock().await;
        if let Some((started, answer)) = last.as_ref() {
            if *started >= arrived {
                return answer.clone();
            }
        }
        let started = Instant::now();
        let store = st.store.clone();
        let answer = blocking(move || store.check().map_err(ApiErr::store))
            .await
            .map_err(|e| e.body.message);
        *last = Some((started, answer.clone()));
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
