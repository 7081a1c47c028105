//! The skymeter server: an HTTP API over a [`skymeter_store::Store`].
//!
//! Agents post batches to `/api/v1/ingest` (gzip or zstd JSON, stored whole or not at all,
//! deduplicated on `batch_id`), register and heartbeat; people, the UI and Grafana read
//! resources, series, points and costs. Every error is an
//! [`ApiErrorBody`](skymeter_model::api::ApiErrorBody); every endpoint is listed once in
//! [`ROUTES`] with the token scope it needs, and described by the OpenAPI document at
//! `/api/openapi.json` (rendered at `/api/docs`). See this crate's README for the endpoints,
//! auth and limits.
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn skymeter_store::Store>) -> Result<(), skymeter_server::ServerError> {
//! use skymeter_server::{serve, ServerConfig};
//! let config = ServerConfig { listen: "127.0.0.1:8080".parse().unwrap(), ..Default::default() };
//! serve(config, store, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod agent_series;
mod apidoc;
mod body;
mod budget;
mod cloudkitty;
mod config;
mod consume;
mod docs;
mod error;
mod fastjson;
mod guard;
mod handlers;
mod host;
mod metrics;
mod openfinops;
mod params;
mod rating;
mod routes;
mod savings;
mod server;
mod state;
mod ui;

pub use config::{
    Auth, NatsConsume, NatsLogin, QueryLimits, SavingsConfig, ServerConfig, ServerError, TlsFiles,
};
pub use docs::openapi;
pub use handlers::agents::RegisterResponse;
pub use handlers::ops::HealthBody;
pub use handlers::query::{CostsResponse, MonitoringWindow, PointsResponse, ResourceDetail};
/// The remote-write 1.0 messages `POST /api/v1/write` reads, and Prometheus' stale marker.
pub use handlers::remote_write::{proto as remote_write_proto, STALE_NAN};
pub use rating::{RatingConfig, RatingStatus, RerateStatus, ScopeStatus};
pub use routes::router;
pub use server::{serve, Server};
pub use state::{Access, RouteSpec, ROUTES};
