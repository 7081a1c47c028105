//! Cost lines as series, so that PromQL (and Grafana) can chart cost next to utilization.
//!
//! Cost lines live in the store's cost table, which `/api/v1/costs` groups; the Prometheus
//! view only sees series. So at ingest every cost line also becomes two points, written in
//! the same store call as the batch (so they are stored with it, whole, or not at all); the
//! `remote_write` publisher sends the same points, so a TSDB shows cost as the server does:
//!
//! | point | value | Prometheus name (USD) | other currencies |
//! |---|---|---|---|
//! | `cost.billed` | `BilledCost` | `cost_billed_usd` | `cost_billed_eur`, … (`cost.billed.eur`, no unit) |
//! | `cost.effective` | `EffectiveCost` | `cost_effective_usd` | `cost_effective_eur`, … |
//!
//! - timestamp: the line's `ChargePeriodStart`, so that today's running line is visible now
//!   (its end is tomorrow). A window `[23h59m59s999ms]` evaluated at a midnight thus holds
//!   exactly the daily lines of the day that starts there.
//! - stat `sum`, `period_s` = the charge period's length.
//! - resource reference: provider = the skymeter provider name of `ProviderName` (`aws`,
//!   `gcp`, `azure`, else the name lowercased), account = `SubAccountId`, region = `RegionId`,
//!   id = `ResourceId` (each empty when absent, which Prometheus shows as an absent label).
//!   A line of an inventoried resource therefore also gets its `kind`, `resource_name` and
//!   `tag_*` labels.
//! - point labels: `service` (`ServiceName`), `source` (`billed`|`estimated`), `category`
//!   (`ChargeCategory`), and `sku` when the line has a `SkuId`.
//!
//! Together these are the store's cost-line key but for `ChargePeriodEnd` and the spelling of
//! `ProviderName`, so a line ingested again (a billing period re-read) lands on the same
//! series at the same timestamp and replaces its sample instead of adding one. Two lines that
//! differ only in `ChargePeriodEnd` (an hourly and a daily line of the same start) share a
//! sample: the later write wins.

use crate::{Batch, ChargeCategory, Cost, Labels, Point, ResourceRef, SmolStr, Stat, Unit};
use chrono::{DateTime, Utc};
use std::sync::Arc;

fn category_name(c: ChargeCategory) -> &'static str {
    match c {
        ChargeCategory::Usage => "Usage",
        ChargeCategory::Purchase => "Purchase",
        ChargeCategory::Tax => "Tax",
        ChargeCategory::Credit => "Credit",
        ChargeCategory::Adjustment => "Adjustment",
    }
}

/// The metric and unit of one cost column in one currency: USD gets the `usd` unit
/// (`cost_billed_usd`); any other currency its own metric (`cost_billed_eur`), so that no
/// sum ever adds two currencies.
fn metric_for(column: &str, currency: &str) -> (SmolStr, Unit) {
    if currency.eq_ignore_ascii_case("USD") {
        (SmolStr::new(format!("cost.{column}")), Unit::Usd)
    } else {
        (
            SmolStr::new(format!("cost.{column}.{}", currency.to_ascii_lowercase())),
            Unit::None,
        )
    }
}

/// The two points (`cost.billed`, `cost.effective`) of one cost line.
pub fn cost_points(c: &Cost) -> [Point; 2] {
    let resource = Arc::new(ResourceRef {
        provider: SmolStr::new(crate::provider::slug(&c.provider_name)),
        account: SmolStr::new(c.sub_account_id.as_deref().unwrap_or_default()),
        region: SmolStr::new(c.region_id.as_deref().unwrap_or_default()),
        id: SmolStr::new(c.resource_id.as_deref().unwrap_or_default()),
    });
    let mut labels = Labels::new();
    labels.insert("service".into(), c.service_name.clone());
    let source = c.x_source.as_str();
    labels.insert("source".into(), source.into());
    labels.insert("category".into(), category_name(c.charge_category).into());
    if let Some(sku) = c.sku_id.as_deref().filter(|s| !s.is_empty()) {
        labels.insert("sku".into(), sku.into());
    }
    let labels: crate::PointLabels = labels.into();
    let period_s = period_seconds(c.charge_period_start, c.charge_period_end);
    let point = |column: &str, value: f64| {
        let (metric, unit) = metric_for(column, &c.billing_currency);
        Point {
            metric,
            unit,
            stat: Stat::Sum,
            period_s,
            ts: c.charge_period_start,
            value,
            resource: resource.clone(),
            labels: labels.clone(),
        }
    };
    [
        point("billed", c.billed_cost),
        point("effective", c.effective_cost),
    ]
}

fn period_seconds(start: DateTime<Utc>, end: DateTime<Utc>) -> u32 {
    (end - start).num_seconds().clamp(0, u32::MAX as i64) as u32
}

/// Appends the cost lines' points to a validated batch, so the store writes them with it.
pub fn add_cost_points(batch: &mut Batch) {
    if batch.costs.is_empty() {
        return;
    }
    let mut points = Vec::with_capacity(batch.costs.len() * 2);
    for c in &batch.costs {
        points.extend(cost_points(c));
    }
    batch.points.extend(points);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::metric_name;

    fn line(currency: &str) -> Cost {
        let start: DateTime<Utc> = "2026-03-02T00:00:00Z".parse().unwrap();
        Cost {
            billed_cost: 12.5,
            effective_cost: 10.0,
            list_cost: None,
            billing_currency: currency.into(),
            charge_period_start: start,
            charge_period_end: start + chrono::Duration::days(1),
            charge_category: ChargeCategory::Usage,
            provider_name: "Amazon Web Services".into(),
            service_name: "Amazon EC2".into(),
            service_category: None,
            sub_account_id: Some("123456789012".into()),
            region_id: Some("us-east-1".into()),
            resource_id: None,
            resource_type: None,
            sku_id: Some("SKU1".into()),
            pricing_quantity: None,
            pricing_unit: None,
            consumed_quantity: None,
            consumed_unit: None,
            tags: Default::default(),
            x_source: crate::CostSource::Billed,
            x_price_date: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_usd_line_becomes_billed_and_effective_points_at_its_start() {
        let c = line("USD");
        let [billed, effective] = cost_points(&c);
        assert_eq!(metric_name(&billed.metric, billed.unit), "cost_billed_usd");
        assert_eq!(
            metric_name(&effective.metric, effective.unit),
            "cost_effective_usd"
        );
        assert_eq!(billed.value, 12.5);
        assert_eq!(effective.value, 10.0);
        assert_eq!(billed.ts, c.charge_period_start);
        assert_eq!(billed.period_s, 86_400);
        assert_eq!(billed.stat, Stat::Sum);
        assert_eq!(billed.resource.provider, "aws");
        assert_eq!(billed.resource.account, "123456789012");
        assert_eq!(billed.resource.region, "us-east-1");
        assert_eq!(billed.resource.id, "");
        assert_eq!(billed.labels.get("service").unwrap(), "Amazon EC2");
        assert_eq!(billed.labels.get("source").unwrap(), "billed");
        assert_eq!(billed.labels.get("category").unwrap(), "Usage");
        assert_eq!(billed.labels.get("sku").unwrap(), "SKU1");
    }

    #[test]
    fn other_currencies_get_their_own_metric() {
        let [billed, _] = cost_points(&line("EUR"));
        assert_eq!(metric_name(&billed.metric, billed.unit), "cost_billed_eur");
    }

    #[test]
    fn provider_names_map_to_inventory_names() {
        use crate::provider::slug;
        assert_eq!(slug("Google Cloud"), "gcp");
        assert_eq!(slug("Microsoft"), "azure");
        assert_eq!(slug("Acme Cloud"), "acme cloud");
    }
}
