//! `/v1/rating/module_config/hashmap/*`: the hashmap rules, in CloudKitty's shapes.
//!
//! Every path answers with and without a trailing slash (the client adds one when it
//! names no id). Deletes take the id from the path or, as the client sends it, from the
//! JSON body (`{"mapping_id": …}`). `POST` answers `201` with the rule, `PUT` `302`, `DELETE`
//! `204`. Costs and levels are answered as decimal text, as CloudKitty does.

use super::common::{decimal_field, job, json_body, CkErr, CkResult};
use crate::state::{blocking, AppState};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use skymeter_rating::hashmap::{MapType, Mapping, RuleError, Threshold};
use skymeter_rating::{HashMapRules, RatingRules};
use std::collections::BTreeMap;
use uuid::Uuid;

const BASE: &str = "/v1/rating/module_config/hashmap";

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let mut r = r;
    for kind in ["services", "fields", "mappings", "thresholds", "groups"] {
        let collection = get(list)
            .post(create)
            .put(update_from_body)
            .delete(delete_from_body);
        r = r
            .route(&format!("{BASE}/{kind}"), collection.clone())
            .route(&format!("{BASE}/{kind}/"), collection)
            .route(
                &format!("{BASE}/{kind}/{{id}}"),
                get(get_one).put(update_one).delete(delete_one),
            );
    }
    r.route(&format!("{BASE}/types"), get(types))
        .route(&format!("{BASE}/types/"), get(types))
}

async fn types() -> Json<Value> {
    Json(json!(["flat", "rate"]))
}

/// Which collection a request is for, from its path.
fn kind_of(uri: &axum::http::Uri) -> &'static str {
    let rest = uri.path().rsplit_once(BASE).map_or("", |(_, r)| r);
    let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "services" => "services",
        "fields" => "fields",
        "mappings" => "mappings",
        "thresholds" => "thresholds",
        _ => "groups",
    }
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn uuid_of(text: &str, what: &str) -> CkResult<Uuid> {
    Uuid::parse_str(text.trim())
        .map_err(|_| CkErr::bad_request(format!("`{what}` = `{text}` is not a UUID")))
}

fn opt_uuid(v: Option<&Value>, what: &str) -> CkResult<Option<Uuid>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => uuid_of(s, what).map(Some),
        Some(_) => Err(CkErr::bad_request(format!("`{what}` must be a UUID"))),
    }
}

fn opt_text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn opt_time(v: Option<&Value>, what: &str) -> CkResult<Option<chrono::DateTime<chrono::Utc>>> {
    match opt_text(v) {
        None => Ok(None),
        Some(t) => {
            // CloudKitty takes ISO 8601 with or without a zone (UTC when absent).
            let parsed = chrono::DateTime::parse_from_rfc3339(&t)
                .map(|d| d.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S")
                        .or_else(|_| {
                            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                        })
                        .map(|n| n.and_utc())
                });
            parsed.map(Some).map_err(|_| {
                CkErr::bad_request(format!("`{what}` = `{t}` is not an ISO 8601 time"))
            })
        }
    }
}

fn map_type(v: Option<&Value>) -> CkResult<MapType> {
    match opt_text(v) {
        None => Ok(MapType::Flat),
        Some(t) => MapType::parse(&t)
            .ok_or_else(|| CkErr::bad_request(format!("`type` = `{t}`: use flat or rate"))),
    }
}

fn dec_text(d: skymeter_rating::Decimal) -> String {
    d.normalize().to_string()
}

fn mapping_json(m: &Mapping) -> Value {
    json!({
        "mapping_id": m.mapping_id, "value": m.value, "type": m.map_type, "cost": dec_text(m.cost),
        "service_id": m.service_id, "field_id": m.field_id, "group_id": m.group_id,
        "tenant_id": m.tenant_id, "start": m.start, "end": m.end, "name": m.name,
        "description": m.description, "created_at": null, "deleted": null,
        "created_by": null, "updated_by": null, "deleted_by": null,
    })
}

fn threshold_json(t: &Threshold) -> Value {
    json!({
        "threshold_id": t.threshold_id, "level": dec_text(t.level), "type": t.map_type,
        "cost": dec_text(t.cost), "service_id": t.service_id, "field_id": t.field_id,
        "group_id": t.group_id, "tenant_id": t.tenant_id,
    })
}

/// A rule's JSON by kind and id (the `{id}` of a path).
fn one_json(hm: &HashMapRules, kind: &str, id: Uuid) -> Result<Value, RuleError> {
    let not_found = |k: &'static str| RuleError::NotFound {
        kind: k,
        id: id.to_string(),
    };
    Ok(match kind {
        "services" => json!(hm.service(id)?),
        "fields" => json!(hm.field(id)?),
        "groups" => json!(hm.group(id)?),
        "mappings" => mapping_json(
            hm.mappings
                .iter()
                .find(|m| m.mapping_id == id)
                .ok_or_else(|| not_found("mapping"))?,
        ),
        _ => threshold_json(
            hm.thresholds
                .iter()
                .find(|t| t.threshold_id == id)
                .ok_or_else(|| not_found("threshold"))?,
        ),
    })
}

/// The mappings or thresholds (`kind`) that pass CloudKitty's list filters: `service_id`,
/// `field_id`, `group_id`, `no_group`, `tenant_id`, and `filter_tenant` (only unscoped
/// rules when no tenant is given).
fn filtered_rules(
    hm: &HashMapRules,
    kind: &str,
    q: &BTreeMap<String, String>,
) -> CkResult<Vec<Value>> {
    let want =
        |key: &str| -> CkResult<Option<Uuid>> { q.get(key).map(|v| uuid_of(v, key)).transpose() };
    let (service, field, group) = (want("service_id")?, want("field_id")?, want("group_id")?);
    let tenant = q.get("tenant_id").cloned();
    let truthy = |k: &str| {
        q.get(k)
            .is_some_and(|v| v == "true" || v == "True" || v == "1")
    };
    let (filter_tenant, no_group) = (truthy("filter_tenant"), truthy("no_group"));
    let keep = |s: Option<Uuid>, f: Option<Uuid>, g: Option<Uuid>, t: &Option<String>| {
        service.is_none_or(|x| s == Some(x))
            && field.is_none_or(|x| f == Some(x))
            && group.is_none_or(|x| g == Some(x))
            && (!no_group || g.is_none())
            && match &tenant {
                Some(want) => t.as_deref() == Some(want.as_str()),
                None => !filter_tenant || t.is_none(),
            }
    };
    Ok(if kind == "mappings" {
        hm.mappings
            .iter()
            .filter(|m| keep(m.service_id, m.field_id, m.group_id, &m.tenant_id))
            .map(mapping_json)
            .collect()
    } else {
        hm.thresholds
            .iter()
            .filter(|t| keep(t.service_id, t.field_id, t.group_id, &t.tenant_id))
            .map(threshold_json)
            .collect()
    })
}

/// `GET …/{kind}`: `{"services": […]}` and so on, filtered as CloudKitty filters.
async fn list(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    RawQuery(q): RawQuery,
) -> CkResult<Json<Value>> {
    let rules = job(&st)?.rules();
    let hm = &rules.hashmap;
    let q = query_map(q.as_deref());
    let kind = kind_of(&uri);
    let want =
        |key: &str| -> CkResult<Option<Uuid>> { q.get(key).map(|v| uuid_of(v, key)).transpose() };
    let items: Vec<Value> = match kind {
        "services" => hm.services.iter().map(|s| json!(s)).collect(),
        "groups" => hm.groups.iter().map(|g| json!(g)).collect(),
        "fields" => {
            let service = want("service_id")?;
            hm.fields
                .iter()
                .filter(|f| service.is_none_or(|s| f.service_id == s))
                .map(|f| json!(f))
                .collect()
        }
        _ => filtered_rules(hm, kind, &q)?,
    };
    Ok(Json(json!({ kind: items })))
}

/// `GET …/{kind}/{id}`, and the sub-resources CloudKitty hangs at ids:
/// `mappings/group?mapping_id=`, `thresholds/group?threshold_id=`,
/// `groups/mappings?group_id=`, `groups/thresholds?group_id=`.
async fn get_one(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> CkResult<Json<Value>> {
    let rules = job(&st)?.rules();
    let hm = &rules.hashmap;
    let q = query_map(q.as_deref());
    let kind = kind_of(&uri);
    let arg = |key: &str| -> CkResult<Uuid> {
        let v = q
            .get(key)
            .ok_or_else(|| CkErr::bad_request(format!("`{key}` is required")))?;
        uuid_of(v, key)
    };
    match (kind, id.as_str()) {
        ("mappings", "group") | ("thresholds", "group") => {
            let (key, kind_one) = if kind == "mappings" {
                ("mapping_id", "mappings")
            } else {
                ("threshold_id", "thresholds")
            };
            let rule = one_json(hm, kind_one, arg(key)?)?;
            let group = opt_uuid(rule.get("group_id"), "group_id")?.ok_or_else(|| {
                CkErr::not_found(format!(
                    "the {} is in no group",
                    &kind_one[..kind_one.len() - 1]
                ))
            })?;
            Ok(Json(json!(hm.group(group)?)))
        }
        ("groups", sub @ ("mappings" | "thresholds")) => {
            hm.group(arg("group_id")?)?;
            Ok(Json(json!({ sub: filtered_rules(hm, sub, &q)? })))
        }
        _ => Ok(Json(one_json(hm, kind, uuid_of(&id, "id")?)?)),
    }
}

/// Runs a change of the hashmap rules on the blocking pool, saved when it succeeds.
async fn change<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&mut HashMapRules) -> Result<T, RuleError> + Send + 'static,
) -> CkResult<T> {
    let rating = job(st)?;
    let store = st.store.clone();
    let out = blocking(move || {
        Ok(rating.edit(&*store, |rules: &mut RatingRules| {
            f(&mut rules.hashmap).map_err(Edit::Rule)
        }))
    })
    .await?;
    out.map_err(|e| match e {
        Edit::Rule(r) => CkErr::from(r),
        Edit::Store(s) => CkErr::from(s),
    })
}

enum Edit {
    Rule(RuleError),
    Store(skymeter_store::StoreError),
}

impl From<skymeter_store::StoreError> for Edit {
    fn from(e: skymeter_store::StoreError) -> Self {
        Edit::Store(e)
    }
}

fn text_field(body: &Value, key: &str) -> CkResult<String> {
    opt_text(body.get(key)).ok_or_else(|| CkErr::bad_request(format!("`{key}` is required")))
}

/// A mapping from a request body; `id` for an update.
fn mapping_from(body: &Value, id: Option<Uuid>) -> CkResult<Mapping> {
    let cost = decimal_field(
        body.get("cost")
            .ok_or_else(|| CkErr::bad_request("`cost` is required"))?,
        "cost",
    )?;
    let mut m = Mapping::new(map_type(body.get("type"))?, cost);
    if let Some(id) = id {
        m.mapping_id = id;
    }
    m.value = opt_text(body.get("value"));
    m.service_id = opt_uuid(body.get("service_id"), "service_id")?;
    m.field_id = opt_uuid(body.get("field_id"), "field_id")?;
    m.group_id = opt_uuid(body.get("group_id"), "group_id")?;
    m.tenant_id = opt_text(body.get("tenant_id"));
    m.start = opt_time(body.get("start"), "start")?;
    m.end = opt_time(body.get("end"), "end")?;
    m.name = opt_text(body.get("name"));
    m.description = opt_text(body.get("description"));
    Ok(m)
}

fn threshold_from(body: &Value, id: Option<Uuid>) -> CkResult<Threshold> {
    let cost = decimal_field(
        body.get("cost")
            .ok_or_else(|| CkErr::bad_request("`cost` is required"))?,
        "cost",
    )?;
    let level = decimal_field(
        body.get("level")
            .ok_or_else(|| CkErr::bad_request("`level` is required"))?,
        "level",
    )?;
    let mut t = Threshold::new(level, map_type(body.get("type"))?, cost);
    if let Some(id) = id {
        t.threshold_id = id;
    }
    t.service_id = opt_uuid(body.get("service_id"), "service_id")?;
    t.field_id = opt_uuid(body.get("field_id"), "field_id")?;
    t.group_id = opt_uuid(body.get("group_id"), "group_id")?;
    t.tenant_id = opt_text(body.get("tenant_id"));
    Ok(t)
}

/// `POST …/{kind}`: `201` with the created rule.
async fn create(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> CkResult<(StatusCode, Json<Value>)> {
    let body: Value = json_body(&st, &headers, body).await?;
    let created = match kind_of(&uri) {
        "services" => {
            let name = text_field(&body, "name")?;
            change(&st, move |hm| hm.add_service(&name).map(|s| json!(s))).await?
        }
        "fields" => {
            let name = text_field(&body, "name")?;
            let service = opt_uuid(body.get("service_id"), "service_id")?
                .ok_or_else(|| CkErr::bad_request("`service_id` is required"))?;
            change(&st, move |hm| {
                hm.add_field(service, &name).map(|f| json!(f))
            })
            .await?
        }
        "groups" => {
            let name = text_field(&body, "name")?;
            change(&st, move |hm| hm.add_group(&name).map(|g| json!(g))).await?
        }
        "mappings" => {
            let m = mapping_from(&body, None)?;
            change(&st, move |hm| hm.add_mapping(m).map(|m| mapping_json(&m))).await?
        }
        _ => {
            let t = threshold_from(&body, None)?;
            change(&st, move |hm| {
                hm.add_threshold(t).map(|t| threshold_json(&t))
            })
            .await?
        }
    };
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update(st: &AppState, kind: &str, id: Uuid, body: &Value) -> CkResult<StatusCode> {
    match kind {
        "mappings" => {
            let m = mapping_from(body, Some(id))?;
            change(st, move |hm| hm.update_mapping(m).map(|_| ())).await?;
        }
        "thresholds" => {
            let t = threshold_from(body, Some(id))?;
            change(st, move |hm| hm.update_threshold(t).map(|_| ())).await?;
        }
        other => {
            return Err(CkErr::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{other} cannot be changed; delete and create it again"),
            ))
        }
    }
    // CloudKitty answers a rule update `302` without a location; its client reads the rule
    // again.
    Ok(StatusCode::FOUND)
}

fn id_key(kind: &str) -> &'static str {
    match kind {
        "services" => "service_id",
        "fields" => "field_id",
        "groups" => "group_id",
        "mappings" => "mapping_id",
        _ => "threshold_id",
    }
}

/// `PUT …/{kind}/` with the rule (and its id) in the body, as the client sends it.
async fn update_from_body(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> CkResult<StatusCode> {
    let kind = kind_of(&uri);
    let body: Value = json_body(&st, &headers, body).await?;
    let key = id_key(kind);
    let id = uuid_of(&text_field(&body, key)?, key)?;
    update(&st, kind, id, &body).await
}

async fn update_one(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> CkResult<StatusCode> {
    let kind = kind_of(&uri);
    let body: Value = json_body(&st, &headers, body).await?;
    update(&st, kind, uuid_of(&id, id_key(kind))?, &body).await
}

async fn delete(
    st: &AppState,
    kind: &'static str,
    id: Uuid,
    recursive: bool,
) -> CkResult<StatusCode> {
    change(st, move |hm| match kind {
        "services" => hm.delete_service(id),
        "fields" => hm.delete_field(id),
        "groups" => hm.delete_group(id, recursive),
        "mappings" => hm.delete_mapping(id),
        _ => hm.delete_threshold(id),
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/{kind}/` with `{"<kind>_id": …}` (and `recursive` for groups) in the body.
async fn delete_from_body(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> CkResult<StatusCode> {
    let kind = kind_of(&uri);
    let body: Value = json_body(&st, &headers, body).await?;
    let key = id_key(kind);
    let id = uuid_of(&text_field(&body, key)?, key)?;
    let recursive = body
        .get("recursive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    delete(&st, kind, id, recursive).await
}

async fn delete_one(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> CkResult<StatusCode> {
    let kind = kind_of(&uri);
    let recursive = query_map(q.as_deref())
        .get("recursive")
        .is_some_and(|v| v == "true" || v == "True" || v == "1");
    delete(&st, kind, uuid_of(&id, id_key(kind))?, recursive).await
}
