//! CloudKitty's API, under `/cloudkitty`, for CloudKitty's own client
//! (`python-cloudkittyclient`, the `cloudkitty` CLI) and the tools built on it:
//!
//! - v1 `rating/modules` (list, get, enable/disable, priority), `rating/quote`, and the
//!   hashmap module's `rating/module_config/hashmap/{services,fields,mappings,thresholds,
//!   groups,types}` (create, read, update, delete; [`hashmap`]);
//! - v2 `rating/modules`, `summary` (totals grouped and filtered) and `dataframes` (the
//!   rated frames), read from the rated cost lines ([`v2`]).
//!
//! Requests and answers have CloudKitty's shapes, including its quirks: paths with and
//! without a trailing slash, ids of deletes in the JSON body, `PUT` answered `302`, errors
//! as `{"faultcode", "faultstring"}` (WSME's shape, which the client prints).
//!
//! Authentication: `X-Auth-Token` (what the client sends with keystoneauth's `admin_token`
//! / `token` plugins) or `Authorization: Bearer` carries a skymeter API token; reads need
//! the `read` scope, changes `admin`. On a `--no-auth` loopback server the client's
//! `cloudkitty-noauth` mode works as is. Point the client at `http://HOST:PORT/cloudkitty`.
//!
//! Rule edits go through [`Rating::edit`]: checked with CloudKitty's constraints, in force
//! at once, saved in the store (they survive a restart unless the rules file changed).

mod common;
mod hashmap;
mod modules;
mod v2;

use crate::error::ApiErr;
use crate::state::{blocking, scope_name, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::{decimal_field, job, json_body, CkErr, CkResult};
use serde::Deserialize;
use serde_json::{json, Value};
use skymeter_rating::{DataFrame, DataPoint, ToPrimitive};
use skymeter_store::Scope;

/// The routes, nested by the main router under `/cloudkitty`.
pub fn routes(state: AppState) -> Router<AppState> {
    let r = Router::new()
        .route("/", get(versions))
        .route("/v1/rating/modules", get(modules::v1_modules))
        .route("/v1/rating/modules/", get(modules::v1_modules))
        .route(
            "/v1/rating/modules/{module_id}",
            get(modules::v1_module).put(modules::v1_module_put),
        )
        .route("/v1/rating/quote", axum::routing::post(v1_quote))
        .route("/v1/rating/quote/", axum::routing::post(v1_quote))
        .route("/v1/rating/reload_modules", get(modules::reload_modules))
        .route("/v1/rating/reload_modules/", get(modules::reload_modules))
        .route("/v2/rating/modules", get(modules::v2_modules))
        .route(
            "/v2/rating/modules/{module_id}",
            get(modules::v2_module).put(modules::v2_module_put),
        )
        .route("/v2/summary", get(v2::summary))
        .route("/v2/dataframes", get(v2::dataframes));
    hashmap::routes(r).layer(from_fn_with_state(state, authorize))
}

/// `X-Auth-Token` (or `Authorization: Bearer`) against the store; reads need `read`,
/// changes `admin`.
async fn authorize(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st.auth == crate::config::Auth::Disabled {
        return next.run(req).await;
    }
    let header_token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .or_else(|| {
            let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = header_token else {
        return CkErr::new(
            StatusCode::UNAUTHORIZED,
            "this API needs a skymeter API token in `X-Auth-Token` (cloudkitty CLI: --os-auth-type admin_token --os-token TOKEN --os-endpoint URL/cloudkitty)",
        )
        .into_response();
    };
    let scope = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Admin
    };
    let store = st.store.clone();
    let info = match blocking(move || store.authenticate(&token).map_err(ApiErr::store)).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return CkErr::new(
                StatusCode::UNAUTHORIZED,
                "the token is not valid (unknown or revoked); use a current skymeter API token",
            )
            .into_response()
        }
        Err(e) => return CkErr::from(e).into_response(),
    };
    if !info.scopes.contains(&Scope::Admin) && !info.scopes.contains(&scope) {
        return CkErr::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} {} needs a token with the `{}` (or `admin`) scope",
                req.method(),
                req.uri().path(),
                scope_name(&scope)
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// `GET /cloudkitty/`: the API versions, as CloudKitty's root answers.
async fn versions() -> Json<Value> {
    Json(json!({"versions": [
        {"id": "v1", "status": "CURRENT", "links": [{"rel": "self", "href": "v1/"}]},
        {"id": "v2", "status": "EXPERIMENTAL", "links": [{"rel": "self", "href": "v2/"}]}
    ]}))
}

/// `POST /v1/rating/quote`: `{"resources": [{"service", "desc", "volume"}]}` → the total
/// price, a JSON number (as CloudKitty answers).
async fn v1_quote(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> CkResult<Json<f64>> {
    #[derive(Deserialize)]
    struct Resource {
        service: String,
        #[serde(default)]
        desc: serde_json::Map<String, Value>,
        volume: Value,
    }
    #[derive(Deserialize)]
    struct Quote {
        resources: Vec<Resource>,
    }
    let rating = job(&st)?;
    let q: Quote = json_body(&st, &headers, body).await?;
    if q.resources.is_empty() {
        return Err(CkErr::bad_request(
            "`resources` is empty: describe at least one resource",
        ));
    }
    let rules = rating.rules();
    let begin = chrono::Utc::now();
    let mut frame = DataFrame::new(begin, begin + chrono::Duration::hours(1));
    for (i, r) in q.resources.iter().enumerate() {
        let qty = decimal_field(&r.volume, &format!("resources[{i}].volume"))?;
        let mut p = DataPoint::new("undef", qty);
        for (k, v) in &r.desc {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            p = p.with_metadata(k, &text);
        }
        frame.add_point(&r.service, p);
    }
    let rated = blocking(move || {
        rules
            .rate(frame, None)
            .map_err(|e| ApiErr::bad_request(e.to_string()))
    })
    .await?;
    Ok(Json(rated.total().to_f64().unwrap_or(0.0)))
}
