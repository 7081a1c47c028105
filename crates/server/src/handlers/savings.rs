//! `/api/v1/findings`: what the store's inventory, utilization and cost say a user could
//! stop paying for, and where the estimate and the bill disagree (skymeter-savings
//! computes them; this serves them with filters, groups, totals and cursor pages, as JSON
//! or CSV).

use crate::apidoc::{page_params, query_param, string, time_param, Op, Schemas};
use crate::error::ApiErr;
use crate::params::Params;
use crate::state::{blocking, AppState, RouteSpec};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use skymeter_savings::findings::{Finding, FindingKind, Totals};
use skymeter_store::PageQuery;
use std::collections::BTreeMap;

type ApiResult<T> = Result<T, ApiErr>;

/// `GET /api/v1/findings`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FindingsPage {
    /// The moment the findings are computed as of.
    pub at: DateTime<Utc>,
    /// Money and counts of every finding that matches the filters (all pages).
    pub totals: Totals,
    /// With `group_by`: money and count per group, largest first. A group's money is its
    /// savings; reconciliation gaps count only in groups by `kind` (their own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<FindingGroup>,
    /// This page of findings, largest saving first.
    pub items: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FindingGroup {
    pub group: BTreeMap<String, String>,
    pub count: u64,
    pub monthly_usd: f64,
}

const GROUPS: [&str; 6] = [
    "kind",
    "provider",
    "account",
    "region",
    "resource_kind",
    "action",
];

fn group_value(f: &Finding, by: &str) -> String {
    match by {
        "kind" => f.kind.name().to_string(),
        "provider" => f.resource.provider.clone(),
        "account" => f.resource.account.clone(),
        "region" => f.resource.region.clone(),
        "resource_kind" => f.resource.kind.clone(),
        // The verb: "resize to m5.large" groups as "resize".
        _ => f.action.split(' ').next().unwrap_or("").to_string(),
    }
}

pub async fn list(State(st): State<AppState>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let now = Utc::now();
    let mut p = Params::parse(q.as_deref())?;
    let kind = match p.take("kind")? {
        None => None,
        Some(k) => Some(FindingKind::parse(&k).ok_or_else(|| {
            ApiErr::bad_request(format!(
                "query parameter `kind`=`{k}`: use idle, orphaned, rightsizing or untagged (savings), or reconciliation (estimate vs bill)"
            ))
        })?),
    };
    let provider = p.take("provider")?;
    let account = p.take("account")?;
    let region = p.take("region")?;
    let resource_kind = p.take("resource_kind")?;
    let tags = p.take_prefixed("tag.")?;
    let group_by: Vec<String> = p
        .take("group_by")?
        .map(|g| g.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    if let Some(bad) = group_by.iter().find(|g| !GROUPS.contains(&g.as_str())) {
        return Err(ApiErr::bad_request(format!(
            "query parameter `group_by`: `{bad}` is not one of {}",
            GROUPS.join(", ")
        )));
    }
    let min_usd = p.take_parsed::<f64>("min_monthly_usd", "use a number of USD, e.g. 10")?;
    let at = p.take_time("at", now)?;
    let format = p.take("format")?;
    let page = p.take_page()?;
    p.finish()?;
    let csv = match format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiErr::bad_request(format!(
                "query parameter `format`=`{other}`: use json or csv"
            )))
        }
    };
    let savings = st.savings.clone();
    let store = st.store.clone();
    let (at, all) = blocking(move || savings.findings(&*store, at)).await?;
    let selected: Vec<&Finding> = all
        .iter()
        .filter(|f| kind.is_none_or(|k| f.kind == k))
        .filter(|f| provider.as_ref().is_none_or(|v| &f.resource.provider == v))
        .filter(|f| account.as_ref().is_none_or(|v| &f.resource.account == v))
        .filter(|f| region.as_ref().is_none_or(|v| &f.resource.region == v))
        .filter(|f| resource_kind.as_ref().is_none_or(|v| &f.resource.kind == v))
        .filter(|f| tags.iter().all(|(k, v)| f.resource.tags.get(k) == Some(v)))
        .filter(|f| min_usd.is_none_or(|m| f.monthly_usd.unwrap_or(0.0) >= m))
        .collect();
    if csv {
        return Ok(csv_response(&selected));
    }
    let totals = Totals::of(selected.iter().copied());
    let mut groups: BTreeMap<Vec<String>, (u64, f64)> = BTreeMap::new();
    if !group_by.is_empty() {
        // A reconciliation gap is not a saving: it is summed only where its group holds
        // reconciliation findings alone (grouped by kind), as the totals do.
        let by_kind = group_by.iter().any(|g| g == "kind");
        for f in &selected {
            let key = group_by.iter().map(|g| group_value(f, g)).collect();
            let e = groups.entry(key).or_default();
            e.0 += 1;
            if by_kind || f.kind.is_saving() {
                e.1 += f.monthly_usd.unwrap_or(0.0);
            }
        }
    }
    let mut groups: Vec<FindingGroup> = groups
        .into_iter()
        .map(|(values, (count, usd))| FindingGroup {
            group: group_by.iter().cloned().zip(values).collect(),
            count,
            monthly_usd: (usd * 100.0).round() / 100.0,
        })
        .collect();
    groups.sort_by(|a, b| b.monthly_usd.total_cmp(&a.monthly_usd));
    // The cursor is the position after the page's last finding in this order; findings
    // computed again (a minute later) may shift it, as any live list does.
    let start: usize = match &page.cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            ApiErr::bad_request(format!(
                "query parameter `cursor`=`{c}` is not a cursor of this list; pass the `next_cursor` of the previous page"
            ))
        })?,
    };
    let limit = page.limit.unwrap_or(PageQuery::DEFAULT_LIMIT) as usize;
    let items: Vec<Finding> = selected
        .iter()
        .skip(start)
        .take(limit)
        .map(|f| (*f).clone())
        .collect();
    let next = start + items.len();
    Ok(Json(FindingsPage {
        at,
        totals,
        groups,
        items,
        next_cursor: (next < selected.len()).then(|| next.to_string()),
    })
    .into_response())
}

/// The findings as CSV: one line each, the columns a spreadsheet needs.
fn csv_response(findings: &[&Finding]) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "kind",
        "monthly_usd",
        "action",
        "reason",
        "provider",
        "account",
        "region",
        "resource_kind",
        "resource_id",
        "resource_name",
        "recommended_type",
        "current_monthly_usd",
        "notes",
        "id",
        "service",
        "currency",
    ]);
    for f in findings {
        let money = |v: Option<f64>| v.map(|m| format!("{m:.2}")).unwrap_or_default();
        let _ = w.write_record([
            f.kind.name(),
            &money(f.monthly_usd),
            &f.action,
            &f.reason,
            &f.resource.provider,
            &f.resource.account,
            &f.resource.region,
            &f.resource.kind,
            &f.resource.id,
            &f.resource.name,
            f.recommended_type.as_deref().unwrap_or(""),
            &money(f.current_monthly_usd),
            &f.notes.join("; "),
            &f.id,
            f.group.as_ref().map_or("", |g| g.service.as_str()),
            f.group.as_ref().map_or("", |g| g.currency.as_str()),
        ]);
    }
    let body = w.into_inner().unwrap_or_default();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"skymeter-findings.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The OpenAPI description of the savings endpoints.
pub fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let op = match (spec.method, spec.path) {
        ("GET", "/api/v1/findings") => {
            let mut params = vec![
                query_param(
                    "kind",
                    "Only findings of this kind.",
                    json!({"type": "string", "enum": ["", "idle", "orphaned", "rightsizing", "untagged", "reconciliation"]}),
                ),
                query_param("provider", "Only resources of this provider (`aws`).", string()),
                query_param("account", "Only resources of this account.", string()),
                query_param("region", "Only resources of this region.", string()),
                query_param(
                    "resource_kind",
                    "Only resources of this kind (`compute.instance`, `storage.volume`).",
                    string(),
                ),
                query_param(
                    "group_by",
                    "Money and count per group: comma-separated kind, provider, account, region, resource_kind, action.",
                    json!({
                        "type": "string",
                        "pattern": "^((kind|provider|account|region|resource_kind|action)(,(kind|provider|account|region|resource_kind|action))*)?$"
                    }),
                ),
                query_param(
                    "min_monthly_usd",
                    "Only findings saving at least this many USD a month.",
                    json!({"type": "number"}),
                ),
                time_param("at", "now (the computation of the last minute)"),
                query_param(
                    "format",
                    "`json` (default) or `csv` (every matching finding, no paging).",
                    json!({"type": "string", "enum": ["", "json", "csv"]}),
                ),
            ];
            params.extend(page_params());
            Op {
                tag: "savings",
                summary: "Idle, orphaned, oversized and untagged resources, with the money; estimate vs bill gaps",
                description: "Findings computed from the store: idle instances, databases, \
                              load balancers and NAT gateways; unattached volumes, unassociated \
                              public IPs, old snapshots and long-stopped instances; instances \
                              that fit a cheaper size; spend on resources missing required \
                              tags. Each with its monthly amount at list price, the action, \
                              and the evidence read. `reconciliation` findings are about a \
                              service of an account (`group`; `resource` stands for it with \
                              kind `billing.service` and no key) whose billed and estimated \
                              cost differ over the days both exist: the days, the totals and \
                              the resources that explain the gap (`drivers`); their \
                              `monthly_usd` is the estimate's error a month, not a saving, \
                              and stays out of `totals.monthly_usd`. `tag.KEY=VALUE` filters \
                              by resource tag.",
                params,
                body: None,
                ok: vec![
                    (
                        "200",
                        "The findings.",
                        Some(("application/json", s.of::<FindingsPage>())),
                    ),
                    (
                        "200",
                        "The findings.",
                        Some(("text/csv", json!({"type": "string"}))),
                    ),
                ],
                errors: vec![],
            }
        }
        _ => return None,
    };
    Some(op)
}
