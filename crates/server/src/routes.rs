//! The router, built from the route table ([`ROUTES`], in `state.rs`): each handler is
//! added with [`Builder::add`], which checks the handler's route against the table, and the
//! table is checked against the router at the end. Around the routes: auth, the ingest
//! budget, the browser guard, CORS, compression, timeout, catch-panic, logging and metrics.

use crate::body::Limits;
use crate::budget::IngestBudget;
use crate::config::{Auth, ServerConfig};
use crate::error::ApiErr;
use crate::guard::BrowserGuard;
use crate::metrics::Metrics;
use crate::state::{
    blocking, scope_name, Access, AppState, HealthCache, Inner, RouteSpec, INGEST, ROUTES,
};
use crate::{budget, docs, guard, handlers, ui};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use skymeter_store::{Scope, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Builder {
    router: Router<AppState>,
    added: Vec<RouteSpec>,
    state: AppState,
}

impl Builder {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let spec = *ROUTES
            .iter()
            .find(|s| s.method == method.as_str() && s.path == path)
            .unwrap_or_else(|| panic!("{method} {path} is not in ROUTES"));
        let filter = MethodFilter::try_from(method).expect("a standard method");
        let mut mr = on(filter, handler);
        if spec.access == INGEST {
            // Inside authorize: a request without a valid token reserves nothing.
            let st = &self.state;
            mr = mr.route_layer(from_fn_with_state(
                (st.ingest_budget.clone(), st.metrics.clone()),
                budget::reserve,
            ));
        }
        if let Access::Scope(scope) = spec.access {
            mr = mr.route_layer(from_fn_with_state((self.state.clone(), scope), authorize));
        }
        self.router = self.router.route(path, mr);
        self.added.push(spec);
        self
    }
}

/// The application: every route, its auth, logging, metrics, timeout, CORS, compression,
/// browser guard, ingest budget and catch-panic. [`crate::serve`] runs it; tests and
/// embedders may serve it themselves.
pub fn router(config: &ServerConfig, store: Arc<dyn Store>) -> Router {
    router_with_state(config, store).0
}

/// [`router`], and the state its handlers share (the server starts the rating job on it).
pub(crate) fn router_with_state(
    config: &ServerConfig,
    store: Arc<dyn Store>,
) -> (Router, AppState) {
    let state = app_state(config, store);
    let b = Builder {
        router: Router::new(),
        added: Vec::new(),
        state: state.clone(),
    };
    let b = b
        .add(Method::GET, "/health", handlers::ops::health)
        .add(Method::GET, "/metrics", handlers::ops::metrics)
        .add(Method::GET, "/api/openapi.json", docs::openapi_json)
        .add(Method::GET, "/api/docs", docs::page)
        .add(Method::GET, "/api/docs/docs.js", docs::script)
        .add(Method::GET, "/api/docs/docs.css", docs::style)
        .add(Method::GET, "/", ui::index)
        .add(Method::GET, "/ui/{*path}", ui::asset)
        .add(Method::POST, "/api/v1/ingest", handlers::ingest::ingest)
        .add(Method::POST, "/api/v1/write", handlers::remote_write::write)
        .add(
            Method::POST,
            "/api/v1/agents/register",
            handlers::agents::register,
        )
        .add(
            Method::POST,
            "/api/v1/agents/{id}/heartbeat",
            handlers::agents::heartbeat,
        )
        .add(Method::GET, "/api/v1/agents", handlers::agents::list)
        .add(Method::GET, "/api/v1/resources", handlers::query::resources)
        .add(
            Method::GET,
            "/api/v1/resources/{*key}",
            handlers::query::resource,
        )
        .add(Method::GET, "/api/v1/series", handlers::prom::series_get)
        .add(Method::GET, "/api/v1/points", handlers::query::points)
        .add(Method::GET, "/api/v1/costs", handlers::query::costs)
        .add(
            Method::GET,
            "/api/v1/costs/export",
            handlers::export::export,
        )
        .add(
            Method::GET,
            "/api/v1/rating/status",
            handlers::rating::status,
        )
        .add(Method::GET, "/api/v1/rating/rules", handlers::rating::rules)
        .add(
            Method::POST,
            "/api/v1/rating/quote",
            handlers::rating::quote,
        )
        .add(
            Method::POST,
            "/api/v1/rating/rerate",
            handlers::rating::rerate,
        )
        .add(Method::GET, "/api/v1/findings", handlers::savings::list)
        .add(Method::GET, "/api/v1/budgets", handlers::budgets::budgets)
        .add(
            Method::GET,
            "/api/v1/anomalies",
            handlers::budgets::anomalies,
        );
    let b = add_prometheus_api(b);
    // CloudKitty's API for its own client (cloudkitty/mod.rs) and the OpenFinOps agents'
    // (openfinops/mod.rs): their own auth (X-Auth-Token; a token in the path) and error
    // shapes, outside skymeter's documented API.
    let b = Builder {
        router: b
            .router
            .nest("/cloudkitty", crate::cloudkitty::routes(state.clone()))
            .nest("/openfinops", crate::openfinops::routes()),
        ..b
    };
    for spec in ROUTES {
        assert!(
            b.added.contains(spec),
            "{} {} has no handler",
            spec.method,
            spec.path
        );
    }

    let app = b
        .router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method);
    (edge_layers(app, config, state.clone()), state)
}

fn app_state(config: &ServerConfig, store: Arc<dyn Store>) -> AppState {
    let limits = Limits {
        max_bytes: config.max_body_bytes,
        max_compressed_bytes: config.max_compressed_body_bytes,
    };
    let rating = config
        .rating
        .clone()
        .map(|c| Arc::new(crate::rating::Rating::new(c, &*store)));
    Arc::new(Inner {
        store,
        auth: config.auth,
        limits,
        timeout: config.request_timeout,
        query: config.query,
        metrics: Arc::new(Metrics::default()),
        ingest_budget: Arc::new(IngestBudget::new(config.ingest_budget_bytes, limits)),
        health: HealthCache::default(),
        rating,
        savings: Arc::new(crate::savings::Savings::new(&config.savings)),
        openfinops_counters: Default::default(),
    })
}

/// The layers around every route, innermost first: timeout, compression, CORS, the browser
/// guard (before CORS answers a preflight), catch-panic, and logging with metrics outermost
/// (so refusals and panics are logged and counted).
fn edge_layers(app: Router<AppState>, config: &ServerConfig, state: AppState) -> Router {
    let mut app = app.layer(from_fn_with_state(state.clone(), timeout));
    if config.compress_responses {
        app = app.layer(tower_http::compression::CompressionLayer::new());
    }
    if let Some(cors) = cors_layer(&config.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(from_fn_with_state(
        Arc::new(BrowserGuard::new(config)),
        guard::guard,
    ))
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        PanicAnswer(state.metrics.clone()),
    ))
    .layer(from_fn_with_state(state.clone(), observe))
    .with_state(state)
}

/// Turns a handler's panic into `500 internal` with the API's JSON error body, logged and
/// counted: the server goes on serving (the release profile unwinds for this).
#[derive(Clone)]
struct PanicAnswer(Arc<Metrics>);

impl tower_http::catch_panic::ResponseForPanic for PanicAnswer {
    type ResponseBody = axum::body::Body;

    fn response_for_panic(
        &mut self,
        err: Box<dyn std::any::Any + Send + 'static>,
    ) -> axum::http::Response<Self::ResponseBody> {
        let what = err
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| err.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        tracing::error!(panic = what, "a request handler panicked; answered 500");
        self.0
            .panics
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiErr::internal(
            "the server failed while handling the request (a bug: please report it with the \
             server's log); it goes on serving other requests",
        )
        .into_response()
    }
}

/// The Prometheus-compatible query API (handlers/prom.rs).
fn add_prometheus_api(b: Builder) -> Builder {
    use handlers::prom;
    b.add(Method::GET, "/api/v1/query", prom::query)
        .add(Method::POST, "/api/v1/query", prom::query)
        .add(Method::GET, "/api/v1/query_range", prom::query_range)
        .add(Method::POST, "/api/v1/query_range", prom::query_range)
        .add(Method::POST, "/api/v1/series", prom::series)
        .add(Method::GET, "/api/v1/labels", prom::labels)
        .add(Method::POST, "/api/v1/labels", prom::labels)
        .add(
            Method::GET,
            "/api/v1/label/{name}/values",
            prom::label_values,
        )
        .add(Method::GET, "/api/v1/metadata", prom::metadata)
        .add(Method::GET, "/api/v1/status/buildinfo", prom::buildinfo)
        .add(Method::GET, "/api/v1/status/config", prom::config)
        .add(
            Method::GET,
            "/api/v1/query_exemplars",
            prom::query_exemplars,
        )
        .add(
            Method::POST,
            "/api/v1/query_exemplars",
            prom::query_exemplars,
        )
        .add(Method::GET, "/api/v1/format_query", prom::format_query)
        .add(Method::POST, "/api/v1/format_query", prom::format_query)
}

fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

/// The path as logged: the token the OpenFinOps agents carry in theirs
/// (`/openfinops/<token>/…`) is replaced by `[token]`.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/openfinops/") {
        Some(rest) if rest != "health" => match rest.split_once('/') {
            Some((_, tail)) => format!("/openfinops/[token]/{tail}"),
            None => "/openfinops/[token]".to_string(),
        },
        _ => path.to_owned(),
    }
}

/// Logs every request (method, path, status, duration: never headers, query or body, so
/// tokens stay out of logs) and counts it by route pattern.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let resp = next.run(req).await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let route = route.as_deref().unwrap_or("unmatched");
    st.metrics.request(&method, route, status, took);
    let ms = took.as_secs_f64() * 1000.0;
    // One line per request is noise on a console (`skymeter up` with the web UI open
    // logged a line every few seconds): requests log at debug (`-v`), and only server
    // errors at warn. `/metrics` counts them all.
    if status >= 500 {
        tracing::warn!(method = %method, path = %path, status, ms, "request failed");
    } else {
        tracing::debug!(method = %method, path = %path, status, ms, "request");
    }
    resp
}

/// Answers `503 timeout` when a request takes longer than the configured limit.
async fn timeout(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(st.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than the server's limit of {}; try again, or ask \
                 for less (a shorter range, a larger step, a smaller page or batch)",
                humantime::format_duration(st.timeout)
            ),
        )
        .into_response(),
    }
}

/// Checks `Authorization: Bearer <token>` against the store and the route's scope.
async fn authorize(
    State((st, scope)): State<(AppState, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    if st.auth == Auth::Disabled {
        return next.run(req).await;
    }
    let token = match bearer(req.headers()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let store = st.store.clone();
    let info = match blocking(move || store.authenticate(&token).map_err(ApiErr::store)).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let Some(info) = info else {
        return ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid (unknown or revoked); use a current API token",
        )
        .into_response();
    };
    if !info.scopes.contains(&Scope::Admin) && !info.scopes.contains(&scope) {
        let has: Vec<String> = info.scopes.iter().map(scope_name).collect();
        return ApiErr::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {} needs a token with the `{}` (or `admin`) scope; token `{}` has: {}",
                req.method(),
                req.uri().path(),
                scope_name(&scope),
                info.id,
                if has.is_empty() {
                    "no scopes".to_string()
                } else {
                    has.join(", ")
                }
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(info);
    next.run(req).await
}

fn bearer(headers: &axum::http::HeaderMap) -> Result<String, ApiErr> {
    let unauthorized = |m: &str| ApiErr::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "this endpoint needs an API token: send `Authorization: Bearer <token>`",
        ));
    };
    let v = v
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = v.trim().split_once(' ').unwrap_or((v, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.to_string())
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiErr {
    ApiErr::not_found(format!(
        "no endpoint {method} {}; the API is described at /api/openapi.json",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiErr {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|r| route_matches(r.path, uri.path()))
        .map(|r| r.method)
        .collect();
    ApiErr::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; use {}",
            uri.path(),
            allowed.join(" or ")
        ),
    )
}

/// Whether a concrete path matches a route pattern (for the 405 message only).
fn route_matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(a), _) if a.starts_with("{*") => return true,
            (Some(a), Some(b)) if a == b || (a.starts_with('{') && !b.is_empty()) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_in_openfinops_paths_stay_out_of_logs() {
        use super::loggable_path;
        assert_eq!(
            loggable_path("/openfinops/sky_s3cret/api/v1/telemetry/ingest"),
            "/openfinops/[token]/api/v1/telemetry/ingest"
        );
        assert_eq!(
            loggable_path("/openfinops/sky_s3cret"),
            "/openfinops/[token]"
        );
        assert_eq!(loggable_path("/openfinops/health"), "/openfinops/health");
        assert_eq!(loggable_path("/api/v1/costs"), "/api/v1/costs");
    }

    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A handler that panics is answered 500 with the API's error body, counted, and the
    /// router goes on serving.
    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            skymeter_store::EmbeddedStore::open(skymeter_store::EmbeddedOptions::new(dir.path()))
                .unwrap(),
        );
        let config = ServerConfig {
            auth: Auth::Disabled,
            ..Default::default()
        };
        let state = app_state(&config, store);
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    let v: Vec<u8> = Vec::new();
                    // An out-of-bounds index: the kind of bug the layer is there for.
                    v[std::hint::black_box(3)].to_string()
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        let app = edge_layers(app, &config, state.clone());
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let resp = app
                    .oneshot(
                        axum::http::Request::get(path)
                            .header("host", "127.0.0.1:8080")
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let status = resp.status();
                let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, ct, body)
            }
        };
        for _ in 0..2 {
            let (status, ct, body) = call("/boom").await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(ct.unwrap(), "application/json");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "internal", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("goes on serving"),
                "{v}"
            );
        }
        assert_eq!(call("/fine").await.0, StatusCode::OK);
        let text = state.metrics.render(None, 0);
        assert!(text.contains("skymeter_http_panics_total 2\n"), "{text}");
        assert!(
            text.contains(
                r#"skymeter_http_requests_total{method="GET",route="/boom",status="500"} 2"#
            ),
            "{text}"
        );
    }
}
