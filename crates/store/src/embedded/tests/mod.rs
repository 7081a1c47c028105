//! Tests of the embedded store, on temporary directories.

mod costs;
mod dedupe;
mod durability;
mod fuzz;
mod lifecycle;
mod meta;
mod points;
mod prom;

use super::{EmbeddedOptions, EmbeddedStore};
use crate::*;
use chrono::{DateTime, Utc};
use skymeter_model::{
    Batch, ChargeCategory, Cost, CostSource, Labels, Point, Resource, ResourceRef, Stat, Unit,
};
use std::path::Path;

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub fn ts(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// A store without the background thread, so tests decide when seals happen.
pub fn open(dir: &Path) -> EmbeddedStore {
    open_with(dir, |_| {})
}

pub fn open_with(dir: &Path, f: impl FnOnce(&mut EmbeddedOptions)) -> EmbeddedStore {
    let mut o = EmbeddedOptions::new(dir);
    o.background = false;
    f(&mut o);
    EmbeddedStore::open(o).unwrap()
}

pub fn rref(id: &str) -> ResourceRef {
    ResourceRef {
        provider: "host".into(),
        account: "acct".into(),
        region: Default::default(),
        id: id.into(),
    }
}

pub fn point(metric: &str, res: &str, at: DateTime<Utc>, value: f64) -> Point {
    Point {
        metric: metric.into(),
        unit: Unit::Percent,
        stat: Stat::Avg,
        period_s: 60,
        ts: at,
        value,
        resource: rref(res).into(),
        labels: Default::default(),
    }
}

pub fn resource(id: &str, at: DateTime<Utc>) -> Resource {
    Resource {
        provider: "host".into(),
        account: "acct".into(),
        region: Default::default(),
        kind: "host".into(),
        native_type: String::new(),
        id: id.into(),
        name: id.to_uppercase(),
        tags: Labels::new(),
        attributes: Default::default(),
        observed_at: at,
    }
}

pub fn cost(billed: f64, currency: &str, service: &str, start: DateTime<Utc>) -> Cost {
    Cost {
        billed_cost: billed,
        effective_cost: billed / 2.0,
        list_cost: None,
        billing_currency: currency.into(),
        charge_period_start: start,
        charge_period_end: start + chrono::Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: service.into(),
        service_category: None,
        sub_account_id: Some("111".into()),
        region_id: Some("us-east-1".into()),
        resource_id: None,
        resource_type: None,
        sku_id: None,
        pricing_quantity: None,
        pricing_unit: None,
        consumed_quantity: None,
        consumed_unit: None,
        tags: Labels::new(),
        x_source: CostSource::Billed,
        x_price_date: None,
        ..Default::default()
    }
}

pub fn batch() -> Batch {
    Batch::new("agent-1", "task", t("2026-11-22T10:00:00Z"))
}

pub fn all_points(s: &EmbeddedStore, metric: &str) -> Vec<(DateTime<Utc>, f64)> {
    let q = PointsQuery {
        series: SeriesQuery {
            metric: Some(metric.into()),
            ..Default::default()
        },
        start: ts(0),
        end: ts(4_000_000_000),
        step_s: None,
        agg: None,
    };
    let page = s.points(&q).unwrap();
    assert!(page.items.len() <= 1, "one series expected");
    page.items
        .into_iter()
        .next()
        .map(|p| p.points)
        .unwrap_or_default()
}
