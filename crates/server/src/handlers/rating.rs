//! `/api/v1/rating/*`: the rating job's status, its rules, quotes, and re-rating a range.

use crate::apidoc::{Op, Schemas};
use crate::error::ApiErr;
use crate::rating::{Rating, RatingStatus, RerateStatus};
use crate::state::{blocking, AppState, RouteSpec};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_rating::decimal::parse_decimal;
use skymeter_rating::{DataFrame, DataPoint, Decimal};
use std::collections::BTreeMap;
use std::sync::Arc;

type ApiResult<T> = Result<T, ApiErr>;

fn job(st: &AppState) -> ApiResult<Arc<Rating>> {
    st.rating.clone().ok_or_else(|| {
        ApiErr::not_found(
            "rating is not configured on this server: add a `[rating]` table with `rules = \"FILE\"` \
             to the server's config file (docs/rating.md)",
        )
    })
}

pub async fn status(State(st): State<AppState>) -> ApiResult<Json<RatingStatus>> {
    let Some(rating) = st.rating.clone() else {
        return Ok(Json(RatingStatus {
            enabled: false,
            period_s: None,
            wait_periods: None,
            scope_by: None,
            rules_file: None,
            start: None,
            ready_until: None,
            rated_until: None,
            last_round: None,
            error: None,
            scopes: Vec::new(),
            rerates: Vec::new(),
        }));
    };
    let store = st.store.clone();
    let s = blocking(move || rating.status(&*store, Utc::now()).map_err(ApiErr::store)).await?;
    Ok(Json(s))
}

/// `GET /api/v1/rating/rules`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RulesView {
    /// Module → `{enabled, priority}`; higher priority runs first.
    pub modules: BTreeMap<String, serde_json::Value>,
    /// The rated services (CloudKitty's metrics.yml), with where their usage comes from.
    pub services: Vec<serde_json::Value>,
    /// The hashmap module's services, fields, groups, mappings and thresholds.
    pub hashmap: serde_json::Value,
    /// The scripts, in the order they run.
    pub scripts: Vec<String>,
}

pub async fn rules(State(st): State<AppState>) -> ApiResult<Json<RulesView>> {
    let rules = job(&st)?.rules();
    Ok(Json(RulesView {
        modules: rules
            .modules
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect(),
        services: rules.services.iter().map(to_json).collect(),
        hashmap: to_json(&rules.hashmap),
        scripts: rules.scripts.iter().map(|s| s.name.clone()).collect(),
    }))
}

/// A part of the rules as JSON (plain data: serializing it cannot fail).
fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// One usage item of a quote.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteItem {
    /// The rated service (`instance`, `volume.size`).
    pub service: String,
    /// How much, in the service's unit: a number, or a decimal as text to keep every digit.
    pub qty: serde_json::Value,
    /// Attributes field mappings match (`flavor`, `volume_type`, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// `POST /api/v1/rating/quote`: the price of usage you describe, before it happens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    pub items: Vec<QuoteItem>,
    /// The scope whose scoped rules apply.
    #[serde(default)]
    pub scope: Option<String>,
    /// The start of the hour priced, for rules in force only part of the time. Default now.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct QuotedItem {
    pub service: String,
    /// Decimal, as text.
    pub qty: String,
    pub unit: String,
    /// Decimal, as text.
    pub price: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct QuoteResponse {
    /// The sum of the items' prices (decimal, as text).
    pub total: String,
    pub currency: String,
    pub items: Vec<QuotedItem>,
}

fn decimal_of(v: &serde_json::Value, field: &str) -> ApiResult<Decimal> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiErr::bad_request(format!(
                "`{field}` must be a number or a decimal as text (\"80\", \"0.5\")"
            )))
        }
    };
    parse_decimal(&text).map_err(|e| ApiErr::bad_request(format!("`{field}`: {e}")))
}

pub async fn quote(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<QuoteResponse>> {
    let rating = job(&st)?;
    let req: QuoteRequest = super::small_json(&st, &headers, body).await?;
    if req.items.is_empty() {
        return Err(ApiErr::bad_request(
            "`items` is empty: describe at least one usage item",
        ));
    }
    if req.items.len() > 10_000 {
        return Err(ApiErr::bad_request(
            "`items` has more than 10000 entries; split the quote",
        ));
    }
    let rules = rating.rules();
    let begin = req.at.unwrap_or_else(Utc::now);
    let mut frame = DataFrame::new(begin, begin + chrono::Duration::hours(1));
    // Frames group points by service; remember each item's place to answer in order.
    let mut order = Vec::with_capacity(req.items.len());
    for (i, item) in req.items.iter().enumerate() {
        let qty = decimal_of(&item.qty, &format!("items[{i}].qty"))?;
        let unit = rules
            .services
            .iter()
            .find(|s| s.rated_name() == item.service)
            .map_or("unit", |s| s.unit.as_str());
        if rules.hashmap.service_named(&item.service).is_none() && rules.scripts.is_empty() {
            return Err(ApiErr::bad_request(format!(
                "items[{i}].service: no rule rates `{}`; see GET /api/v1/rating/rules",
                item.service
            )));
        }
        let mut p = DataPoint::new(unit, qty);
        for (k, v) in &item.attributes {
            p = p.with_metadata(k, v);
        }
        let at = frame.usage.get(&item.service).map_or(0, Vec::len);
        order.push((item.service.clone(), at));
        frame.add_point(&item.service, p);
    }
    let scope = req.scope.clone();
    let rated = blocking(move || {
        rules.rate(frame, scope.as_deref()).map_err(|e| {
            ApiErr::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rating_failed",
                e.to_string(),
            )
        })
    })
    .await?;
    let mut items = Vec::with_capacity(order.len());
    for (service, at) in order {
        let p = &rated.usage[&service][at];
        items.push(QuotedItem {
            service,
            qty: p.vol.qty.normalize().to_string(),
            unit: p.vol.unit.clone(),
            price: p.rating.price.normalize().to_string(),
        });
    }
    Ok(Json(QuoteResponse {
        total: rated.total().normalize().to_string(),
        currency: rating.currency().to_string(),
        items,
    }))
}

/// `POST /api/v1/rating/rerate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RerateRequest {
    /// Start of the range (widened down to a period boundary).
    pub from: DateTime<Utc>,
    /// End of the range, exclusive (widened up to a period boundary, cut at the last period
    /// ready to rate).
    pub to: DateTime<Utc>,
}

pub async fn rerate(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<RerateStatus>)> {
    let rating = job(&st)?;
    let req: RerateRequest = super::small_json(&st, &headers, body).await?;
    let queued = rating
        .request_rerate(req.from, req.to, Utc::now())
        .map_err(ApiErr::bad_request)?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// The OpenAPI description of the rating endpoints.
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("GET", "/api/v1/rating/status") => Op {
            tag: "rating",
            summary: "The rating job's progress",
            description: "Per scope, the end of the last rated period and the lag behind now; \
                          the periods ready to rate; re-rate requests and how far they got. \
                          `enabled` is false when the server has no `[rating]` config.",
            params: vec![],
            body: None,
            ok: vec![(
                "200",
                "The status.",
                Some((json_ct, s.of::<RatingStatus>())),
            )],
            errors: vec![],
        },
        ("GET", "/api/v1/rating/rules") => Op {
            tag: "rating",
            summary: "The rating rules in force",
            description: "Modules, rated services, hashmap rules and scripts.",
            params: vec![],
            body: None,
            ok: vec![("200", "The rules.", Some((json_ct, s.of::<RulesView>())))],
            errors: vec![("404", "Rating is not configured on this server.")],
        },
        ("POST", "/api/v1/rating/quote") => Op {
            tag: "rating",
            summary: "Price a usage before it happens",
            description: "Rates the items as one hour of usage with the rules in force (the \
                          quantity is in the service's unit, after conversion).",
            params: vec![],
            body: Some((s.of::<QuoteRequest>(), "The usage to price.")),
            ok: vec![(
                "200",
                "The prices.",
                Some((json_ct, s.of::<QuoteResponse>())),
            )],
            errors: vec![
                ("404", "Rating is not configured on this server."),
                (
                    "422",
                    "The rules could not rate the usage (a script failed).",
                ),
            ],
        },
        ("POST", "/api/v1/rating/rerate") => Op {
            tag: "rating",
            summary: "Rate a past range again",
            description: "Deletes the rated cost lines of the range and rates it again with \
                          the rules in force, in the background; follow it in \
                          `GET /api/v1/rating/status`. Needs an admin token.",
            params: vec![],
            body: Some((s.of::<RerateRequest>(), "The range.")),
            ok: vec![("202", "Queued.", Some((json_ct, s.of::<RerateStatus>())))],
            errors: vec![("404", "Rating is not configured on this server.")],
        },
        _ => return None,
    };
    Some(op)
}
