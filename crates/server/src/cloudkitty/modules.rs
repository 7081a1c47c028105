//! Rating modules, as CloudKitty's v1 (`hot-config`, `PUT` → 302) and v2 (`hot_config`,
//! `PUT` → 204) show and change them.

use super::common::{job, json_body, CkErr, CkResult};
use crate::error::ApiErr;
use crate::rating::Rating;
use crate::state::{blocking, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use skymeter_rating::MODULES;

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

pub async fn v1_modules(State(st): State<AppState>) -> CkResult<Json<Value>> {
    let rating = job(&st)?;
    Ok(Json(all_modules(&rating, false)))
}

/// One module, in v1's or v2's shape.
fn one_module(st: &AppState, id: &str, v2: bool) -> CkResult<Json<Value>> {
    let rating = job(st)?;
    module_json(&rating, id, v2)
        .map(Json)
        .ok_or_else(|| CkErr::not_found(format!("Module '{id}' not found")))
}

pub async fn v1_module(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> CkResult<Json<Value>> {
    one_module(&st, &id, false)
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
pub async fn v1_module_put(
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
pub async fn reload_modules(State(st): State<AppState>) -> CkResult<StatusCode> {
    job(&st)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn v2_modules(State(st): State<AppState>) -> CkResult<Json<Value>> {
    let rating = job(&st)?;
    Ok(Json(all_modules(&rating, true)))
}

pub async fn v2_module(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> CkResult<Json<Value>> {
    one_module(&st, &id, true)
}

/// `PUT /v2/rating/modules/{id}` `{"enabled"?, "priority"?}`: `204`.
pub async fn v2_module_put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> CkResult<StatusCode> {
    let change: ModuleChange = json_body(&st, &headers, body).await?;
    set_module(&st, id, change).await?;
    Ok(StatusCode::NO_CONTENT)
}
