//! CloudKitty's v2 API: `rating/modules`, and `summary` and `dataframes` read from the
//! rated cost lines (`x_source = rated`): a line is a rated point, its scope (`project_id`)
//! the `rating_scope` tag, its groupby attributes those its `SkuId` names, the rest of its
//! tags its metadata.

use super::common::{job, CkErr, CkResult};
use crate::error::ApiErr;
use crate::state::{blocking, AppState};
use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde_json::{json, Value};
use skymeter_model::Cost;
use skymeter_rating::decimal::decimal_from_f64;
use skymeter_rating::{Decimal, ToPrimitive};
use skymeter_store::{CostLineQuery, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};

// ---- summary and dataframes, from the rated cost lines ----

/// The query of `summary` and `dataframes`: `begin`, `end` (ISO 8601; default this month),
/// `filters=key:value,…`, `groupby=a,b`, `offset`, `limit`, `response_format`.
struct Query {
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
    filters: Vec<(String, String)>,
    groupby: Vec<String>,
    offset: usize,
    limit: usize,
    format: String,
}

fn iso(text: &str, what: &str) -> CkResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").map(|n| n.and_utc())
        })
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc())
        })
        .map_err(|_| CkErr::bad_request(format!("`{what}` = `{text}` is not an ISO 8601 time")))
}

fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t)
}

impl Query {
    fn parse(raw: Option<&str>) -> CkResult<Query> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| CkErr::bad_request(format!("the query string cannot be read: {e}")))?;
        let now = Utc::now();
        let mut q = Query {
            begin: month_start(now),
            end: next_month(now),
            filters: Vec::new(),
            groupby: Vec::new(),
            offset: 0,
            limit: 100,
            format: "table".into(),
        };
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "begin" => q.begin = iso(&v, "begin")?,
                "end" => q.end = iso(&v, "end")?,
                "groupby" => q
                    .groupby
                    .extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from)),
                "filters" => {
                    for f in v.split(',').filter(|s| !s.is_empty()) {
                        let (k, v) = f.split_once(':').ok_or_else(|| {
                            CkErr::bad_request(format!("filter `{f}`: write key:value"))
                        })?;
                        q.filters.push((k.to_string(), v.to_string()));
                    }
                }
                "offset" => {
                    q.offset = v
                        .parse()
                        .map_err(|_| CkErr::bad_request("`offset` must be a whole number"))?
                }
                "limit" => {
                    q.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|l| (1..=10_000).contains(l))
                        .ok_or_else(|| CkErr::bad_request("`limit` must be 1 to 10000"))?
                }
                "response_format" => {
                    if v != "table" && v != "object" {
                        return Err(CkErr::bad_request(format!(
                            "Invalid response format [{v}]. Valid format are [table, object]."
                        )));
                    }
                    q.format = v;
                }
                "custom_fields" => {}
                other => {
                    return Err(CkErr::bad_request(format!(
                        "unknown query parameter `{other}`; use begin, end, groupby, filters, offset, limit, response_format"
                    )))
                }
            }
        }
        if q.end <= q.begin {
            return Err(CkErr::bad_request("`end` must be after `begin`"));
        }
        Ok(q)
    }
}

/// The scope of a rated line (CloudKitty's `project_id`).
fn scope_of(c: &Cost) -> &str {
    c.tags
        .get("rating_scope")
        .map(String::as_str)
        .or(c.sub_account_id.as_deref())
        .unwrap_or("")
}

/// The groupby attributes of a rated line, from its `SkuId` (`service|k=v|k=v`).
fn groupby_of(c: &Cost) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(sku) = &c.sku_id {
        for part in sku.split('|').skip(1) {
            if let Some((k, v)) = part.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// A line's value of a groupby or filter key, as CloudKitty names them: `type` (the rated
/// service), `project_id` (the scope), `time-d|w|m|y` (the period's day, week, month,
/// year), or any groupby or metadata attribute of the rated point.
fn value_of(c: &Cost, key: &str) -> Option<String> {
    let t = c.charge_period_start;
    match key {
        "type" => Some(c.service_name.clone()),
        "project_id" => Some(scope_of(c).to_string()),
        "time" => Some(t.to_rfc3339()),
        "time-d" => Some(t.ordinal().to_string()),
        "time-w" => Some(t.iso_week().week().to_string()),
        "time-m" => Some(t.month().to_string()),
        "time-y" => Some(t.year().to_string()),
        other => c.tags.get(other).cloned(),
    }
}

/// The time span of a time groupby's bucket, for the `begin` and `end` of its rows.
fn bucket(c: &Cost, groupby: &[String]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let t = c.charge_period_start;
    let day = Utc
        .with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
        .single()?;
    if groupby.iter().any(|g| g == "time") {
        return Some((c.charge_period_start, c.charge_period_end));
    }
    if groupby.iter().any(|g| g == "time-d") {
        return Some((day, day + chrono::Duration::days(1)));
    }
    if groupby.iter().any(|g| g == "time-w") {
        let monday = day - chrono::Duration::days(i64::from(t.weekday().num_days_from_monday()));
        return Some((monday, monday + chrono::Duration::days(7)));
    }
    if groupby.iter().any(|g| g == "time-m") {
        return Some((month_start(t), next_month(t)));
    }
    if groupby.iter().any(|g| g == "time-y") {
        let y = Utc.with_ymd_and_hms(t.year(), 1, 1, 0, 0, 0).single()?;
        let next = Utc.with_ymd_and_hms(t.year() + 1, 1, 1, 0, 0, 0).single()?;
        return Some((y, next));
    }
    None
}

/// Calls `f` on every rated line of `[begin, end)` that passes the filters, page by page
/// (memory stays flat whatever the range holds).
fn each_rated_line(
    store: &dyn Store,
    q: &Query,
    mut f: impl FnMut(&Cost),
) -> Result<(), StoreError> {
    let mut cursor = None;
    loop {
        let page = store.cost_lines(&CostLineQuery {
            start: Some(q.begin),
            end: Some(q.end),
            provider: None,
            source: Some("rated".into()),
            limit: Some(10_000),
            cursor,
        })?;
        for c in &page.items {
            if q.filters
                .iter()
                .all(|(k, v)| value_of(c, k).as_deref() == Some(v.as_str()))
            {
                f(c);
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// A summary row being summed: begin, end, quantity, price (decimals keep cents exact).
type Total = (DateTime<Utc>, DateTime<Utc>, Decimal, Decimal);

/// A frame: its period and scope.
type FrameKey = (DateTime<Utc>, DateTime<Utc>, String);

/// `GET /v2/summary`: rated totals (`qty`, `rate`) grouped by `groupby`.
pub async fn summary(State(st): State<AppState>, RawQuery(raw): RawQuery) -> CkResult<Json<Value>> {
    job(&st)?;
    let q = Query::parse(raw.as_deref())?;
    let store = st.store.clone();
    let out = blocking(move || {
        let mut groups: BTreeMap<Vec<String>, Total> = BTreeMap::new();
        each_rated_line(&*store, &q, |c| {
            let key: Vec<String> = q
                .groupby
                .iter()
                .map(|g| value_of(c, g).unwrap_or_default())
                .collect();
            let (b, e) = bucket(c, &q.groupby).unwrap_or((q.begin, q.end));
            let g = groups
                .entry(key)
                .or_insert((b, e, Decimal::ZERO, Decimal::ZERO));
            let dec = |v: Option<f64>| {
                v.and_then(|v| decimal_from_f64(v).ok())
                    .unwrap_or(Decimal::ZERO)
            };
            g.2 += dec(c.pricing_quantity);
            g.3 += dec(Some(c.billed_cost));
        })?;
        let total = groups.len();
        let mut columns: Vec<String> = ["begin", "end", "qty", "rate"].map(String::from).to_vec();
        columns.extend(q.groupby.iter().cloned());
        let rows: Vec<Vec<Value>> = groups
            .into_iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|(key, (b, e, qty, rate))| {
                let mut row = vec![
                    json!(b.to_rfc3339()),
                    json!(e.to_rfc3339()),
                    json!(qty.to_f64().unwrap_or(0.0)),
                    json!(rate.to_f64().unwrap_or(0.0)),
                ];
                row.extend(key.into_iter().map(Value::String));
                row
            })
            .collect();
        let body = if q.format == "object" {
            let results: Vec<Value> = rows
                .into_iter()
                .map(|r| {
                    Value::Object(
                        columns
                            .iter()
                            .cloned()
                            .zip(r)
                            .collect::<serde_json::Map<_, _>>(),
                    )
                })
                .collect();
            json!({"total": total, "results": results, "format": "object"})
        } else {
            let columns = if rows.is_empty() { Vec::new() } else { columns };
            json!({"total": total, "columns": columns, "results": rows, "format": "table"})
        };
        Ok::<_, ApiErr>(body)
    })
    .await?;
    Ok(Json(out))
}

/// `GET /v2/dataframes`: the rated frames, one per scope and period, with their points
/// (unit, quantity, price, groupby and metadata attributes).
pub async fn dataframes(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> CkResult<Json<Value>> {
    job(&st)?;
    let q = Query::parse(raw.as_deref())?;
    let store = st.store.clone();
    let out = blocking(move || {
        // First the frames' keys (period, scope) to page them, then the points of the page.
        let mut keys: BTreeSet<FrameKey> = BTreeSet::new();
        each_rated_line(&*store, &q, |c| {
            keys.insert((
                c.charge_period_start,
                c.charge_period_end,
                scope_of(c).to_string(),
            ));
        })?;
        let total = keys.len();
        let page: BTreeSet<_> = keys.into_iter().skip(q.offset).take(q.limit).collect();
        let mut frames: BTreeMap<FrameKey, BTreeMap<String, Vec<Value>>> =
            page.iter().map(|k| (k.clone(), BTreeMap::new())).collect();
        if !frames.is_empty() {
            each_rated_line(&*store, &q, |c| {
                let k = (
                    c.charge_period_start,
                    c.charge_period_end,
                    scope_of(c).to_string(),
                );
                if let Some(usage) = frames.get_mut(&k) {
                    let groupby = groupby_of(c);
                    let metadata: BTreeMap<&String, &String> = c
                        .tags
                        .iter()
                        .filter(|(k, _)| !groupby.contains_key(*k))
                        .collect();
                    usage
                        .entry(c.service_name.clone())
                        .or_default()
                        .push(json!({
                            "vol": {"unit": c.pricing_unit.as_deref().unwrap_or("undef"),
                                    "qty": c.pricing_quantity.unwrap_or(0.0)},
                            "rating": {"price": c.billed_cost},
                            "groupby": groupby,
                            "metadata": metadata,
                        }));
                }
            })?;
        }
        Ok::<_, ApiErr>((total, frames))
    })
    .await?;
    let (total, frames) = out;
    if total == 0 {
        return Err(CkErr::not_found("No resource found for provided filters."));
    }
    let dataframes: Vec<Value> = frames
        .into_iter()
        .map(|((b, e, _), usage)| {
            json!({"period": {"begin": b.to_rfc3339(), "end": e.to_rfc3339()}, "usage": usage})
        })
        .collect();
    Ok(Json(json!({"total": total, "dataframes": dataframes})))
}
