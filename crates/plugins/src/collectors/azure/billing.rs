//! Billed cost from the Cost Management Query API: `POST
//! {arm}/subscriptions/{sub}/providers/Microsoft.CostManagement/query?api-version=2023-11-01`,
//! type ActualCost, timeframe Custom, granularity Daily, grouped by ResourceId and
//! ServiceName, every page (`properties.nextLink`, posted the same body); columns are read
//! by name from `properties.columns`. One FOCUS Cost record per row (`x_source = billed`).
//! ActualCost is what the invoice shows, so BilledCost = EffectiveCost (amortized
//! reservations would need type AmortizedCost). The query may answer `204 No Content` when
//! there is nothing to report (a subscription without usage in the period): that is zero
//! rows, not an error.

use super::calls;
use super::client::{Client, Needs, COST_READER};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use skymeter_model::{ChargeCategory, Cost};
use skymeter_plugin_api::{ErrorKind, PluginError};

pub const API_VERSION: &str = "2023-11-01";

/// The query body for the whole days `[start, end)`.
pub fn body(start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    let last = end - Duration::seconds(1);
    json!({
        "type": "ActualCost",
        "timeframe": "Custom",
        "timePeriod": {
            "from": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "to": last.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
        "dataset": {
            "granularity": "Daily",
            "aggregation": { "totalCost": { "name": "Cost", "function": "Sum" } },
            "grouping": [
                { "type": "Dimension", "name": "ResourceId" },
                { "type": "Dimension", "name": "ServiceName" }
            ]
        }
    })
}

/// The days read: the last `days` whole days, today included.
pub fn billed_days(now: DateTime<Utc>, days: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.date_naive();
    let end = Utc.from_utc_datetime(
        &(today + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default(),
    );
    (end - Duration::days(days as i64), end)
}

/// FOCUS ServiceCategory of an Azure service name.
fn category(service: &str) -> &'static str {
    let s = service.to_ascii_lowercase();
    if s.contains("virtual machine")
        || s.contains("functions")
        || s.contains("kubernetes")
        || s.contains("app service")
    {
        "Compute"
    } else if s.contains("sql") || s.contains("database") || s.contains("cosmos") {
        "Databases"
    } else if s.contains("storage") || s.contains("disk") {
        "Storage"
    } else if s.contains("bandwidth")
        || s.contains("network")
        || s.contains("load balancer")
        || s.contains("ip address")
    {
        "Networking"
    } else {
        "Other"
    }
}

/// `Microsoft.Compute/virtualMachines` from a resource id.
pub fn resource_type(id: &str) -> Option<String> {
    let lower = id.to_ascii_lowercase();
    let i = lower.rfind("/providers/")?;
    let parts: Vec<&str> = id[i + "/providers/".len()..].split('/').collect();
    // namespace / type / name [/ subtype / name]…
    let mut t = vec![*parts.first()?];
    t.extend(parts.iter().skip(1).step_by(2));
    (t.len() >= 2).then(|| t.join("/"))
}

/// Every Cost record of one subscription for `[start, end)`.
pub async fn query(
    client: &Client,
    arm: &str,
    token_scope: &str,
    subscription: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Cost>, PluginError> {
    let body = body(start, end);
    let mut url = Some(format!(
        "{arm}/subscriptions/{subscription}/providers/Microsoft.CostManagement/query?api-version={API_VERSION}"
    ));
    let needs = Needs {
        action: "Microsoft.CostManagement/query/action",
        role: COST_READER,
    };
    let mut out = Vec::new();
    while let Some(u) = url.take() {
        let page = client
            .send(
                calls::COST_QUERY,
                needs,
                token_scope,
                reqwest::Method::POST,
                &u,
                Some(&body),
            )
            .await
            .map_err(|e| e.with("subscription", subscription))?;
        // 204 No Content (the client's `Null`): no rows, and no page after it.
        if page.is_null() {
            break;
        }
        let bad = |what: &str| {
            PluginError::new(
                ErrorKind::BadResponse,
                format!("{}: {what}", calls::COST_QUERY),
            )
            .with("api", calls::COST_QUERY)
            .with("subscription", subscription)
        };
        let props = page
            .get("properties")
            .ok_or_else(|| bad("no `properties` in the answer"))?;
        let columns: Vec<String> = props
            .get("columns")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `properties.columns` in the answer"))?
            .iter()
            .map(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase()
            })
            .collect();
        let col = |name: &str| columns.iter().position(|c| c == name);
        let cost_i = col("cost")
            .or_else(|| col("pretaxcost"))
            .or_else(|| col("costusd"))
            .ok_or_else(|| bad("no `Cost` column"))?;
        let date_i = col("usagedate").ok_or_else(|| bad("no `UsageDate` column"))?;
        let (rid_i, svc_i, cur_i) = (col("resourceid"), col("servicename"), col("currency"));
        for row in props
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(row) = row.as_array() else { continue };
            let cost = row
                .get(cost_i)
                .and_then(Value::as_f64)
                .ok_or_else(|| bad("a row without a number in `Cost`"))?;
            // UsageDate is a number yyyymmdd with Daily granularity.
            let date = row
                .get(date_i)
                .and_then(|d| {
                    // A number (20240115, or 20240115.0 from some serializers) or text.
                    d.as_i64()
                        .or_else(|| d.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                        .map(|n| n.to_string())
                        .or_else(|| d.as_str().map(str::to_string))
                })
                .and_then(|d| NaiveDate::parse_from_str(&d[..8.min(d.len())], "%Y%m%d").ok())
                .ok_or_else(|| bad("a row whose `UsageDate` is not yyyymmdd"))?;
            let day = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default());
            let text = |i: Option<usize>| {
                i.and_then(|i| row.get(i))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            let service = text(svc_i).unwrap_or_else(|| "Unassigned".into());
            let resource_id = text(rid_i);
            out.push(Cost {
                service_category: Some(category(&service).into()),
                sub_account_id: Some(subscription.to_string()),
                resource_type: resource_id.as_deref().and_then(resource_type),
                resource_id,
                ..Cost::billed(
                    skymeter_model::provider::AZURE.focus_name,
                    ChargeCategory::Usage,
                    cost,
                    cost,
                    text(cur_i).unwrap_or_else(|| "USD".into()),
                    day,
                    day + Duration::days(1),
                    service,
                )
            });
        }
        url = props
            .get("nextLink")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn resource_type_of_ids() {
        assert_eq!(
            super::resource_type("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1").as_deref(),
            Some("Microsoft.Compute/virtualMachines")
        );
        assert_eq!(
            super::resource_type("/subscriptions/s/resourcegroups/rg/providers/microsoft.sql/servers/s1/databases/db").as_deref(),
            Some("microsoft.sql/servers/databases")
        );
    }
}
