//! `/api/v1/budgets` and `/api/v1/anomalies`: each budget's month so far and its forecast,
//! and the days whose cost left a cost group's weekly pattern (skymeter-savings computes
//! them from the store's cost lines; docs/savings.md).

use crate::apidoc::{query_param, string, time_param, Op, Schemas};
use crate::error::ApiErr;
use crate::params::Params;
use crate::state::{blocking, AppState, RouteSpec};
use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use skymeter_savings::anomaly::AnomalyKind;
use skymeter_savings::notify::AnomalyAlert;
use skymeter_savings::watch::BudgetReport;

type ApiResult<T> = Result<T, ApiErr>;

/// `GET /api/v1/budgets`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BudgetsAnswer {
    /// The day the budgets are evaluated on (UTC).
    pub as_of: NaiveDate,
    /// Every `[[budget]]` of the server's config, in its order.
    pub budgets: Vec<BudgetReport>,
}

/// `GET /api/v1/anomalies`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AnomaliesAnswer {
    /// Anomalies are judged on the complete days before this one (UTC).
    pub as_of: NaiveDate,
    /// Newest day first, then largest size.
    pub items: Vec<AnomalyAlert>,
}

pub async fn budgets(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<BudgetsAnswer>> {
    let mut p = Params::parse(q.as_deref())?;
    let at = p.take_time("at", Utc::now())?;
    p.finish()?;
    let savings = st.savings.clone();
    let store = st.store.clone();
    let (at, reports) = blocking(move || savings.budget_reports(&*store, at)).await?;
    Ok(Json(BudgetsAnswer {
        as_of: at.date_naive(),
        budgets: reports.to_vec(),
    }))
}

fn take_day(p: &mut Params, name: &'static str) -> ApiResult<Option<NaiveDate>> {
    p.take(name)?
        .map(|v| {
            NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| {
                ApiErr::bad_request(format!(
                    "query parameter `{name}`=`{v}`: use a day as YYYY-MM-DD"
                ))
            })
        })
        .transpose()
}

pub async fn anomalies(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<AnomaliesAnswer>> {
    let mut p = Params::parse(q.as_deref())?;
    let at = p.take_time("at", Utc::now())?;
    let provider = p.take("provider")?;
    let account = p.take("account")?;
    let service = p.take("service")?;
    let kind = match p.take("kind")?.as_deref() {
        None | Some("") => None,
        Some("spike") => Some(AnomalyKind::Spike),
        Some("level_shift") => Some(AnomalyKind::LevelShift),
        Some(other) => {
            return Err(ApiErr::bad_request(format!(
                "query parameter `kind`=`{other}`: use spike or level_shift"
            )))
        }
    };
    let from = take_day(&mut p, "from")?;
    let to = take_day(&mut p, "to")?;
    p.finish()?;
    let savings = st.savings.clone();
    let store = st.store.clone();
    let (at, all) = blocking(move || savings.anomalies(&*store, at)).await?;
    let matches = |a: &AnomalyAlert, key: &str, want: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| a.group.get(key).is_some_and(|v| v.eq_ignore_ascii_case(w)))
    };
    let items = all
        .iter()
        .filter(|a| matches(a, "provider", &provider))
        .filter(|a| matches(a, "account", &account))
        .filter(|a| matches(a, "service", &service))
        .filter(|a| kind.is_none_or(|k| a.anomaly.kind == k))
        .filter(|a| from.is_none_or(|d| a.anomaly.day >= d))
        .filter(|a| to.is_none_or(|d| a.anomaly.day <= d))
        .cloned()
        .collect();
    Ok(Json(AnomaliesAnswer {
        as_of: at.date_naive(),
        items,
    }))
}

/// The OpenAPI description of the budget and anomaly endpoints.
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let day = |name: &str, what: &str| {
        query_param(
            name,
            what,
            json!({"type": "string", "pattern": "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"}),
        )
    };
    let op = match (spec.method, spec.path) {
        ("GET", "/api/v1/budgets") => Op {
            tag: "savings",
            summary: "Each budget's spend this month, its forecast and the thresholds crossed",
            description: "Every `[[budget]]` of the server's config evaluated on the day of \
                          `at`: the month's spend so far over the cost lines its scope selects \
                          (one source per account and day: billed, else estimated, else rated; \
                          USD), the mean daily cost of the last 7 complete days, the forecast \
                          for the month and each threshold with whether it is crossed.",
            params: vec![time_param("at", "now (the computation of the last minute)")],
            body: None,
            ok: vec![(
                "200",
                "The budgets.",
                Some(("application/json", s.of::<BudgetsAnswer>())),
            )],
            errors: vec![],
        },
        ("GET", "/api/v1/anomalies") => Op {
            tag: "savings",
            summary: "Days whose cost left its weekly pattern, with the resources that drove them",
            description: "Daily cost per group (`[anomalies] group_by`, default provider, \
                          account and service) over `history_days` complete days before the \
                          day of `at`, judged against a weekday-median baseline with a MAD \
                          spread: spikes and level shifts, up and down, each with its size, \
                          score and drivers.",
            params: vec![
                time_param("at", "now (the computation of the last minute)"),
                query_param(
                    "provider",
                    "Only groups of this provider (`aws`).",
                    string(),
                ),
                query_param("account", "Only groups of this account.", string()),
                query_param(
                    "service",
                    "Only groups of this service (any case).",
                    string(),
                ),
                query_param(
                    "kind",
                    "Only spikes or only level shifts.",
                    json!({"type": "string", "enum": ["", "spike", "level_shift"]}),
                ),
                day("from", "Only anomalies on or after this day (YYYY-MM-DD)."),
                day("to", "Only anomalies on or before this day (YYYY-MM-DD)."),
            ],
            body: None,
            ok: vec![(
                "200",
                "The anomalies.",
                Some(("application/json", s.of::<AnomaliesAnswer>())),
            )],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}
