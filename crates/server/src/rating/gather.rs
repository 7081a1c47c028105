//! The usage of one rating period, read from the store: the hours each resource of a kind
//! was present (times a numeric attribute, for GiB-hours), and a metric's points combined
//! per series. Each item goes to the scope its `scope_by` attribute names.

use skymeter_model::{Labels, Resource};
use skymeter_rating::{Aggregate, Decimal, ServiceDef, Usage, UsageFrames};
use skymeter_store::{PageQuery, PointsQuery, SeriesQuery, Store, StoreError, StoredResource};
use smol_str::SmolStr;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use skymeter_rating::DataFrame;

/// The scope of items whose `scope_by` attribute is missing.
pub const UNASSIGNED: &str = "unassigned";

/// Every resource of the store, by key: read once per round of periods.
pub fn all_resources(store: &dyn Store) -> Result<HashMap<String, StoredResource>, StoreError> {
    let mut out = HashMap::new();
    skymeter_store::for_each_resource(store, |r| {
        out.insert(r.key.clone(), r);
    })?;
    Ok(out)
}

/// An attribute of a usage item, by the name rules use:
/// `id name account region provider kind native_type` are the resource's fields;
/// `tag:NAME` a resource tag, `label:NAME` a point label; any other name is a point label,
/// else a resource attribute (numbers and booleans as text), else a tag.
pub fn attribute(
    resource: Option<&Resource>,
    labels: Option<&Labels>,
    key: &str,
) -> Option<SmolStr> {
    if let Some(tag) = key.strip_prefix("tag:") {
        return resource?.tags.get(tag).map(SmolStr::new);
    }
    if let Some(label) = key.strip_prefix("label:") {
        return labels?.get(label).map(SmolStr::new);
    }
    if let Some(r) = resource {
        let field = match key {
            "id" => Some(&r.id),
            "name" => Some(&r.name),
            "account" => Some(&r.account),
            "region" => Some(&r.region),
            "provider" => Some(&r.provider),
            "kind" => Some(&r.kind),
            "native_type" => Some(&r.native_type),
            _ => None,
        };
        if let Some(v) = field {
            return (!v.is_empty()).then(|| SmolStr::new(v));
        }
    }
    if let Some(v) = labels.and_then(|l| l.get(key)) {
        return Some(SmolStr::new(v));
    }
    let r = resource?;
    match r.attributes.get(key) {
        Some(serde_json::Value::String(s)) => return Some(SmolStr::new(s)),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            return Some(SmolStr::new(v.to_string()))
        }
        _ => {}
    }
    r.tags.get(key).map(SmolStr::new)
}

fn scope_of(resource: Option<&Resource>, labels: Option<&Labels>, scope_by: &str) -> SmolStr {
    attribute(resource, labels, scope_by)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| SmolStr::new(UNASSIGNED))
}

/// Hours of `[a, b)` as an exact decimal (milliseconds ÷ 3,600,000).
fn hours(a: DateTime<Utc>, b: DateTime<Utc>) -> Decimal {
    let ms = (b - a).num_milliseconds().max(0);
    Decimal::from(ms) / Decimal::from(3_600_000)
}

fn number(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().map(Decimal::from).or_else(|| {
            n.as_f64()
                .and_then(|f| skymeter_rating::decimal::decimal_from_f64(f).ok())
        }),
        serde_json::Value::String(s) => skymeter_rating::decimal::parse_decimal(s).ok(),
        _ => None,
    }
}

/// The frames of `[begin, end)`, one per scope with usage.
pub fn frames(
    store: &dyn Store,
    resources: &HashMap<String, StoredResource>,
    services: &[ServiceDef],
    scope_by: &str,
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<BTreeMap<SmolStr, DataFrame>, StoreError> {
    let mut usage = UsageFrames::new(services, begin, end);
    for (i, def) in services.iter().enumerate() {
        match &def.usage {
            None => {}
            Some(Usage::Resources {
                kind,
                attribute: per,
            }) => {
                for r in resources.values() {
                    if &r.resource.kind != kind {
                        continue;
                    }
                    // Present from its first sighting to its last, as far as the store
                    // knows: exact for the whole periods in between, within one
                    // collection interval at creation and deletion.
                    let from = r.first_seen.max(begin);
                    let to = r.last_seen.min(end);
                    if to <= from {
                        continue;
                    }
                    let mut qty = hours(from, to);
                    if let Some(a) = per {
                        match r.resource.attributes.get(a).and_then(number) {
                            Some(n) => qty = qty.checked_mul(n).unwrap_or(Decimal::MAX),
                            None => continue,
                        }
                    }
                    let res = Some(&r.resource);
                    let scope = scope_of(res, None, scope_by);
                    usage.add(&scope, i, qty, |k| attribute(res, None, k));
                }
            }
            Some(Usage::Metric { metric, aggregate }) => {
                let mut cursor = None;
                loop {
                    let page = store.points(&PointsQuery {
                        series: SeriesQuery {
                            metric: Some(metric.clone()),
                            page: PageQuery {
                                limit: Some(PageQuery::MAX_LIMIT),
                                cursor,
                            },
                            ..Default::default()
                        },
                        start: begin,
                        end,
                        step_s: None,
                        agg: None,
                    })?;
                    for s in &page.items {
                        if s.points.is_empty() {
                            continue;
                        }
                        let Some(qty) = combine(*aggregate, &s.points) else {
                            continue;
                        };
                        let res = resources.get(&s.key.resource.key()).map(|r| &r.resource);
                        let labels = Some(&s.key.labels);
                        let scope = scope_of(res, labels, scope_by);
                        let rref = &s.key.resource;
                        usage.add(&scope, i, qty, |k| {
                            attribute(res, labels, k).or_else(|| match k {
                                // Series of resources the inventory does not hold.
                                "id" => Some(rref.id.clone()),
                                "account" => Some(rref.account.clone()),
                                "region" => Some(rref.region.clone()),
                                "provider" => Some(rref.provider.clone()),
                                _ => None,
                            })
                        });
                    }
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
            }
        }
    }
    Ok(usage.frames())
}

/// One quantity from a series' points in the period (values as exact decimals of their
/// shortest float form).
fn combine(agg: Aggregate, points: &[(DateTime<Utc>, f64)]) -> Option<Decimal> {
    let dec = |v: f64| skymeter_rating::decimal::decimal_from_f64(v).ok();
    let values = || points.iter().filter_map(|(_, v)| dec(*v));
    match agg {
        Aggregate::Count => Some(Decimal::from(points.len())),
        Aggregate::Last => points.last().and_then(|(_, v)| dec(*v)),
        Aggregate::Max => values().max(),
        Aggregate::Min => values().min(),
        Aggregate::Sum => values().try_fold(Decimal::ZERO, |a, v| a.checked_add(v)),
        // The mean of the values that are numbers a decimal can hold (the sum skips the
        // others, so the count must too); none at all: no quantity.
        Aggregate::Avg => {
            let (sum, n) = values().try_fold((Decimal::ZERO, 0u64), |(a, n), v| {
                a.checked_add(v).map(|a| (a, n + 1))
            })?;
            (n > 0).then(|| sum.checked_div(Decimal::from(n))).flatten()
        }
    }
}

#[cfg(test)]
mod combine_tests {
    use super::*;

    fn at(v: f64) -> (DateTime<Utc>, f64) {
        (DateTime::<Utc>::UNIX_EPOCH, v)
    }

    #[test]
    fn avg_is_over_the_values_it_summed() {
        // 1e30 is beyond a 28-digit decimal: skipped by the sum, so not counted either.
        let pts = [at(1.0), at(1e30), at(3.0)];
        assert_eq!(combine(Aggregate::Avg, &pts), Some(Decimal::from(2)));
        assert_eq!(combine(Aggregate::Sum, &pts), Some(Decimal::from(4)));
        assert_eq!(combine(Aggregate::Count, &pts), Some(Decimal::from(3)));
        assert_eq!(combine(Aggregate::Avg, &[at(1e30)]), None);
        assert_eq!(combine(Aggregate::Avg, &[]), None);
    }
}
