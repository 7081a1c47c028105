//! What the router, the handlers and the OpenAPI document share: the route table, the
//! server's state and the helper that runs blocking work off the async threads.
//!
//! [`ROUTES`] is the one list of endpoints with the scope each needs. The router
//! (`routes.rs`) adds each handler with a check against the table (and checks the table
//! against the router at the end), and the OpenAPI document (`docs.rs`) is checked against
//! the same table by a test. So an endpoint cannot exist without being documented and
//! protected as listed.

use crate::body::Limits;
use crate::budget::IngestBudget;
use crate::config::{Auth, QueryLimits};
use crate::error::ApiErr;
use crate::metrics::Metrics;
use skymeter_store::{Scope, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, the OpenAPI document, the docs page and the web UI's files.
    Public,
    /// A token with this scope (or `admin`).
    Scope(Scope),
}

/// One endpoint: method, path (axum syntax; `{*key}` is a catch-all) and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

impl RouteSpec {
    /// The path as OpenAPI writes it (`{*key}` → `{key}`).
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

pub const INGEST: Access = Access::Scope(Scope::Ingest);
pub const READ: Access = Access::Scope(Scope::Read);
pub const ADMIN: Access = Access::Scope(Scope::Admin);

/// Every endpoint of the server.
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/health", Access::Public),
    r("GET", "/metrics", READ),
    r("GET", "/api/openapi.json", Access::Public),
    r("GET", "/api/docs", Access::Public),
    r("GET", "/api/docs/docs.js", Access::Public),
    r("GET", "/api/docs/docs.css", Access::Public),
    r("GET", "/", Access::Public),
    r("GET", "/ui/{*path}", Access::Public),
    r("POST", "/api/v1/ingest", INGEST),
    r("POST", "/api/v1/write", INGEST),
    r("POST", "/api/v1/agents/register", INGEST),
    r("POST", "/api/v1/agents/{id}/heartbeat", INGEST),
    r("GET", "/api/v1/agents", READ),
    r("GET", "/api/v1/resources", READ),
    r("GET", "/api/v1/resources/{*key}", READ),
    r("GET", "/api/v1/series", READ),
    r("GET", "/api/v1/points", READ),
    r("GET", "/api/v1/costs", READ),
    // The cost lines as a FOCUS 1.2 file (handlers/export.rs).
    r("GET", "/api/v1/costs/export", READ),
    // The rating job (rating/mod.rs, handlers/rating.rs).
    r("GET", "/api/v1/rating/status", READ),
    r("GET", "/api/v1/rating/rules", READ),
    r("POST", "/api/v1/rating/quote", READ),
    r("POST", "/api/v1/rating/rerate", ADMIN),
    // Findings: idle, orphaned, oversized and untagged resources (handlers/savings.rs).
    r("GET", "/api/v1/findings", READ),
    r("GET", "/api/v1/budgets", READ),
    r("GET", "/api/v1/anomalies", READ),
    // The Prometheus-compatible query API (handlers/prom.rs). GET /api/v1/series above
    // serves both: Prometheus' when the request has `match[]`.
    r("GET", "/api/v1/query", READ),
    r("POST", "/api/v1/query", READ),
    r("GET", "/api/v1/query_range", READ),
    r("POST", "/api/v1/query_range", READ),
    r("POST", "/api/v1/series", READ),
    r("GET", "/api/v1/labels", READ),
    r("POST", "/api/v1/labels", READ),
    r("GET", "/api/v1/label/{name}/values", READ),
    r("GET", "/api/v1/metadata", READ),
    r("GET", "/api/v1/status/buildinfo", READ),
    r("GET", "/api/v1/status/config", READ),
    r("GET", "/api/v1/query_exemplars", READ),
    r("POST", "/api/v1/query_exemplars", READ),
    r("GET", "/api/v1/format_query", READ),
    r("POST", "/api/v1/format_query", READ),
];

/// What every handler shares.
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub auth: Auth,
    pub limits: Limits,
    pub timeout: Duration,
    /// Limits of one PromQL query.
    pub query: QueryLimits,
    pub metrics: Arc<Metrics>,
    /// In-flight bytes of ingest-scope requests (see [`crate::budget`]).
    pub ingest_budget: Arc<IngestBudget>,
    pub health: HealthCache,
    /// The rating job's shared half, when `[rating]` is configured.
    pub rating: Option<Arc<crate::rating::Rating>>,
    /// The findings' config, price tables and last computation.
    pub savings: Arc<crate::savings::Savings>,
    /// The OpenFinOps generic agents' last counters, for rates between posts.
    pub openfinops_counters: crate::openfinops::Counters,
}

pub type AppState = Arc<Inner>;

/// Runs a blocking store call (or CPU-heavy work) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiErr> + Send + 'static,
) -> Result<T, ApiErr> {
    tokio::task::spawn_blocking(f).await.map_err(ApiErr::join)?
}

/// The last store check of `/health`: when it started and what it said (`Err` carries the
/// message).
///
/// The store's check ([`Store::check`]) runs one at a time: probes that arrive while a check
/// runs wait for the next one and share its answer. Every probe still gets the answer of a
/// check that started after it arrived, but a hundred concurrent probers cost two checks,
/// not a hundred, never run checks side by side (which made a healthy server answer 503 when
/// one check read back another's value), and leave the store's write path to ingest.
#[derive(Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl HealthCache {
    /// The answer of a store check that started after this call.
    pub async fn get(&self, st: &AppState) -> Result<(), String> {
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

/// A scope as tokens and the OpenAPI document name it.
pub fn scope_name(s: &Scope) -> String {
    match s {
        Scope::Ingest => "ingest",
        Scope::Read => "read",
        Scope::Admin => "admin",
    }
    .to_string()
}
