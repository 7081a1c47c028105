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

mod hashmap;
mod v2;

use crate::error::ApiErr;
use crate::rating::Rating;
use crate::state::{blocking, scope_name, AppState};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use skymeter_rating::decimal::{decimal_from_f64, parse_decimal};
use skymeter_rating::hashmap::RuleError;
use skymeter_rating::{DataFrame, DataPoint, Decimal, ToPrimitive, MODULES};
use skymeter_store::{Scope, StoreError};
use std::sync::Arc;

/// An error in WSME's shape (CloudKitty v1), which the client shows: `faultstring`.
pub struct CkErr {
    status: StatusCode,
    message: String,
}

impl CkErr {
    fn new(status: StatusCode, message: impl Into<String>) -> CkErr {
        CkErr {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> CkErr {
        CkErr::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> CkErr {
        CkErr::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for CkErr {
    fn into_response(self) -> Response {
        let fault = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        (
            self.status,
            Json(
                json!({"faultcode": fault, "faultstring": self.message, "debuginfo": null,
                        // CloudKitty v2 (flask) answers `message`; both clients read theirs.
                        "message": self.message}),
            ),
        )
            .into_response()
    }
}

impl From<RuleError> for CkErr {
    fn from(e: RuleError) -> CkErr {
        let status = match e {
            RuleError::NotFound { .. } => StatusCode::NOT_FOUND,
            RuleError::Conflict(_) => StatusCode::CONFLICT,
            RuleError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        CkErr::new(status, e.to_string())
    }
}

impl From<StoreError> for CkErr {
    fn from(e: StoreError) -> CkErr {
        let status = match e {
            StoreError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        CkErr::new(status, e.to_string())
    }
}

impl From<ApiErr> for CkErr {
    fn from(e: ApiErr) -> CkErr {
        CkErr::new(e.status, e.body.message)
    }
}

pub type CkResult<T> = Result<T, CkErr>;

/// The rating job, or CloudKitty's answer when the server rates nothing.
fn job(st: &AppState) -> CkResult<Arc<Rating>> {
    st.rating.clone().ok_or_else(|| {
        CkErr::not_found(
            "rating is not configured on this skymeter server: add a `[rating]` table with \
             `rules = \"FILE\"` to its config file (docs/rating.md)",
        )
    })
}

/// A JSON body, or the error naming what is wrong with it. CloudKitty's client sends
/// `Content-Type: application/json`; bodies are small (rules, quotes).
async fn json_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> CkResult<T> {
    let raw =
        crate::body::read_raw(headers, body, crate::body::Encoding::Identity, st.limits).await?;
    serde_json::from_slice(&raw).map_err(|e| {
        CkErr::bad_request(format!("the request body is not what this call takes: {e}"))
    })
}

/// A decimal as CloudKitty's clients send it: a JSON number (the CLI's `float`) or text.
fn decimal_field(v: &Value, field: &str) -> CkResult<Decimal> {
    match v {
        Value::String(s) => {
            parse_decimal(s).map_err(|e| CkErr::bad_request(format!("`{field}`: {e}")))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Decimal::from(i)),
            None => decimal_from_f64(n.as_f64().unwrap_or(f64::NAN))
                .map_err(|e| CkErr::bad_request(format!("`{field}`: {e}"))),
        },
        _ => Err(CkErr::bad_request(format!("`{field}` must be a number"))),
    }
}

/// The routes, nested by the main router under `/cloudkitty`.
pub fn routes(state: AppState) -> Router<AppState> {
    let r = Router::new()
        .route("/", get(versions))
        .route("/v1/rating/modules", get(v1_modules))
        .route("/v1/rating/modules/", get(v1_modules))
        .route(
            "/v1/rating/modules/{module_id}",
            get(v1_module).put(v1_module_put),
        )
        .route("/v1/rating/quote", axum::routing::post(v1_quote))
        .route("/v1/rating/quote/", axum::routing::post(v1_quote))
        .route("/v1/rating/reload_modules", get(reload_modules))
        .route("/v1/rating/reload_modules/", get(reload_modules))
        .route("/v2/rating/modules", get(v2::modules))
        .route(
            "/v2/rating/modules/{module_id}",
            get(v2::module).put(v2::module_put),
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

/// One module as v1 shows it (`hot-config`, with a dash) or v2 (`hot_config`).
fn module_json(rating: &Rating, name: &str, v2: bool) -> Option<Value> {
    let info = MODULES.iter().find(|m| m.name == name)?;
    let state = rating.rules().module(name)?;
    let hot = if v2 { "hot_config" } else { "hot-config" };
    Some(json!({
        "module_id": name, "description": info.description, "enabled": state.enabled,
        hot: true, "priority": state.priority,
    }))
}

fn all_modules(rating: &Rating, v2: bool) -> Value {
    let modules: Vec<Value> = MODULES
        .iter()
        .filter_map(|m| module_json(rating, m.name, v2))
        .collect();
    json!({ "modules": modules })
}

async fn v1_modules(State(st): State<AppState>) -> CkResult<Json<Value>> {
    let rating = job(&st)?;
    Ok(Json(all_modules(&rating, false)))
}

async fn v1_module(State(st): State<AppState>, Path(id): Path<String>) -> CkResult<Json<Value>> {
    let rating = job(&st)?;
    module_json(&rating, &id, false)
        .map(Json)
        .ok_or_else(|| CkErr::not_found(format!("Module '{id}' not found")))
}

/// The changes a module `PUT` may carry (the client sends the whole module back).
#[derive(Debug, Deserialize)]
struct ModuleChange {
    enabled: Option<bool>,
    priority: Option<i64>,
}

/// Applies a module change. Shared by v1 and v2.
async fn set_module(st: &AppState, id: String, change: ModuleChange) -> CkResult<()> {
    let rating = job(st)?;
    if !MODULES.iter().any(|m| m.name == id) {
        return Err(CkErr::not_found(format!("Module '{id}' not found")));
    }
    if let Some(p) = change.priority {
        if p < 1 || p > i64::from(i32::MAX) {
            return Err(CkErr::bad_request(
                "`priority` must be a whole number from 1",
            ));
        }
    }
    let store = st.store.clone();
    blocking(move || {
        rating.edit(&*store, |rules| {
            let m = rules
                .modules
                .get_mut(&id)
                .ok_or_else(|| ApiErr::not_found(format!("Module '{id}' not found")))?;
            if let Some(e) = change.enabled {
                m.enabled = e;
            }
            if let Some(p) = change.priority {
                m.priority = p as i32;
            }
            Ok::<(), ApiErr>(())
        })
    })
    .await?;
    Ok(())
}

/// `PUT /v1/rating/modules/{id}`: answered `302` like CloudKitty's (the client reads the
/// module again).
async fn v1_module_put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> CkResult<StatusCode> {
    let change: ModuleChange = json_body(&st, &headers, body).await?;
    set_module(&st, id, change).await?;
    Ok(StatusCode::FOUND)
}

/// The rules are reloaded on each change; kept for the client's `reload_modules`.
async fn reload_modules(State(st): State<AppState>) -> CkResult<StatusCode> {
    job(&st)?;
    Ok(StatusCode::NO_CONTENT)
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
