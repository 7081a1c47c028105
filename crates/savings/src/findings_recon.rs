//! The `reconciliation` finding: where the estimate (the collectors' inventory × the price
//! table, cost lines of source `estimated`) and the bill (source `billed`) disagree, per
//! provider, account and service, with the days compared and the resources that explain
//! the gap.
//!
//! Only days that have both billed and estimated `Usage` lines are compared: the bill lags
//! the estimate by a day or more, and a day the bill has not reached would otherwise read
//! as "everything estimated was never billed". Taxes, credits, purchases and adjustments
//! are not compared (no estimate covers them); `rated` lines are another thing again.
//!
//! The store is read twice: once per (group, source, day) to find the groups whose gap
//! crosses the thresholds, then per resource only for those groups' compared days, one
//! query per run of days over which the same groups are compared, so that memory holds a
//! run's resources and never the window's resource-days of the whole fleet.

use crate::finding::{
    cents, Evidence, Facts, Finding, FindingKind, FindingResource, GapCause, GapDay, GapDriver,
    SpendGroup, DAYS_PER_MONTH,
};
use crate::spend::start_of;
use chrono::{DateTime, Days, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_store::{CostGroup, CostQuery, Store, StoreError};
use std::collections::BTreeMap;

/// `[findings.reconciliation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReconciliationConfig {
    /// Whole UTC days compared, the last one being the day before `at` (default 30).
    pub days: u32,
    /// A group's total gap (its absolute value) under this many USD is not reported
    /// (default 1).
    pub min_gap_usd: f64,
    /// Nor a gap under this percent of the group's billed total (default 5).
    pub min_gap_percent: f64,
    /// Resources listed per finding, largest |billed − estimated| first (default 10).
    pub top_resources: u32,
}

impl Default for ReconciliationConfig {
    fn default() -> Self {
        ReconciliationConfig {
            days: 30,
            min_gap_usd: 1.0,
            min_gap_percent: 5.0,
            top_resources: 10,
        }
    }
}

impl ReconciliationConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("min_gap_usd", self.min_gap_usd),
            ("min_gap_percent", self.min_gap_percent),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "findings.reconciliation.{name} must be a number ≥ 0, not {v}"
                ));
            }
        }
        if self.days == 0 || self.days > 400 {
            return Err(format!(
                "findings.reconciliation.days must be 1 to 400 days, not {}",
                self.days
            ));
        }
        if self.top_resources > 1000 {
            return Err(format!(
                "findings.reconciliation.top_resources must be 0 to 1000, not {}",
                self.top_resources
            ));
        }
        Ok(())
    }
}

/// Billed and estimated amounts and line counts (a day or a resource).
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    billed: f64,
    billed_lines: u64,
    estimated: f64,
    estimated_lines: u64,
}

impl Pair {
    fn add(&mut self, billed: bool, g: &CostGroup) {
        let amount = if g.billed_cost.is_finite() {
            g.billed_cost
        } else {
            0.0
        };
        if billed {
            self.billed += amount;
            self.billed_lines += g.lines;
        } else {
            self.estimated += amount;
            self.estimated_lines += g.lines;
        }
    }
}

/// The group and the side (`true`: billed) of a cost row, `None` for rows not compared
/// (other categories and sources).
fn side_of(g: &CostGroup) -> Option<(SpendGroup, bool)> {
    let get = |k: &str| g.group.get(k).map(String::as_str).unwrap_or("");
    if get("category") != "Usage" {
        return None;
    }
    let billed = match get("source") {
        "billed" => true,
        "estimated" => false,
        _ => return None,
    };
    Some((
        SpendGroup {
            provider: skymeter_model::provider::slug(get("provider")),
            account: get("account").to_string(),
            service: get("service").to_string(),
            currency: g.currency.clone(),
        },
        billed,
    ))
}

/// A group whose gap crossed the thresholds, before its resources are read.
struct Candidate {
    group: SpendGroup,
    days: Vec<GapDay>,
    estimated_only: Vec<NaiveDate>,
    billed_only: Vec<NaiveDate>,
    billed: f64,
    estimated: f64,
    gap: f64,
    /// Mean of the daily |gap| × [`DAYS_PER_MONTH`].
    monthly: f64,
    resources: BTreeMap<String, (String, Pair)>,
}

/// The spend the reconciliation compares, as of `at`: the `cfg.days` whole UTC days before
/// `at`'s day by provider, account, service, category, source and day. Asked for by the
/// caller together with its other groupings (one read of the lines).
pub(super) fn spend_query(cfg: &ReconciliationConfig, at: DateTime<Utc>) -> CostQuery {
    let end_day = at.date_naive();
    let start_day = end_day - Days::new(cfg.days.into());
    CostQuery {
        start: Some(start_of(start_day)),
        end: Some(start_of(end_day)),
        group_by: [
            "provider", "account", "service", "category", "source", "day",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        ..Default::default()
    }
}

/// The reconciliation findings as of `at` from `rows`, the answer to [`spend_query`].
pub(super) fn reconciliation(
    store: &dyn Store,
    cfg: &ReconciliationConfig,
    at: DateTime<Utc>,
    rows: Vec<CostGroup>,
) -> Result<Vec<Finding>, StoreError> {
    let end_day = at.date_naive();
    let start_day = end_day - Days::new(cfg.days.into());
    let (start, end) = (start_of(start_day), start_of(end_day));
    let group_by = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    let mut by_group: BTreeMap<SpendGroup, BTreeMap<NaiveDate, Pair>> = BTreeMap::new();
    for g in &rows {
        let Some((key, billed)) = side_of(g) else {
            continue;
        };
        let Some(day) = g
            .group
            .get("day")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        by_group
            .entry(key)
            .or_default()
            .entry(day)
            .or_default()
            .add(billed, g);
    }
    drop(rows);

    let mut candidates: Vec<Candidate> = Vec::new();
    for (group, days) in by_group {
        let mut c = Candidate {
            group,
            days: Vec::new(),
            estimated_only: Vec::new(),
            billed_only: Vec::new(),
            billed: 0.0,
            estimated: 0.0,
            gap: 0.0,
            monthly: 0.0,
            resources: BTreeMap::new(),
        };
        let mut abs_gaps = 0.0;
        for (day, p) in days {
            match (p.billed_lines > 0, p.estimated_lines > 0) {
                (true, true) => {
                    let gap = p.billed - p.estimated;
                    c.billed += p.billed;
                    c.estimated += p.estimated;
                    c.gap += gap;
                    abs_gaps += gap.abs();
                    c.days.push(GapDay {
                        day,
                        billed: cents(p.billed),
                        estimated: cents(p.estimated),
                        gap: cents(gap),
                    });
                }
                (false, true) => c.estimated_only.push(day),
                _ => c.billed_only.push(day),
            }
        }
        if c.days.is_empty() {
            continue;
        }
        let gap = c.gap.abs();
        let percent_ok = c.billed <= 0.0 || gap / c.billed * 100.0 >= cfg.min_gap_percent;
        // In cents, as shown: a gap of 0.999… is the 1.00 it prints as.
        if cents(gap) < cfg.min_gap_usd || !percent_ok || cents(gap) == 0.0 {
            continue;
        }
        c.monthly = abs_gaps / c.days.len() as f64 * DAYS_PER_MONTH;
        candidates.push(c);
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }

    // Runs of consecutive days over which the same candidates are compared: one query
    // per run, each row credited to the run's candidates only.
    let mut compared: BTreeMap<NaiveDate, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        for d in &c.days {
            compared.entry(d.day).or_default().push(i);
        }
    }
    let mut runs: Vec<(NaiveDate, NaiveDate, Vec<usize>)> = Vec::new();
    for (day, who) in compared {
        match runs.last_mut() {
            Some((_, last, w)) if *last + Days::new(1) == day && *w == who => *last = day,
            _ => runs.push((day, day, who)),
        }
    }
    let index: BTreeMap<SpendGroup, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.group.clone(), i))
        .collect();
    for (first, last, who) in runs {
        let rows = store.costs(&CostQuery {
            start: Some(start_of(first)),
            end: Some(start_of(last + Days::new(1))),
            group_by: group_by(&[
                "provider", "account", "service", "category", "source", "region", "resource",
            ]),
            ..Default::default()
        })?;
        for g in &rows {
            let Some((key, billed)) = side_of(g) else {
                continue;
            };
            let Some(&i) = index.get(&key).filter(|i| who.contains(*i)) else {
                continue;
            };
            let get = |k: &str| g.group.get(k).cloned().unwrap_or_default();
            let entry = candidates[i]
                .resources
                .entry(get("resource"))
                .or_insert_with(|| (String::new(), Pair::default()));
            if entry.0.is_empty() {
                entry.0 = get("region");
            }
            entry.1.add(billed, g);
        }
    }

    let mut out = Vec::new();
    for c in candidates {
        out.push(finding(store, cfg, start, end, c)?);
    }
    Ok(out)
}

/// The finding of a candidate: its drivers looked up in the inventory.
fn finding(
    store: &dyn Store,
    cfg: &ReconciliationConfig,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    c: Candidate,
) -> Result<Finding, StoreError> {
    let g = &c.group;
    let mut drivers: Vec<(String, String, Pair, f64)> = c
        .resources
        .into_iter()
        .map(|(resource, (region, p))| {
            let delta = p.billed - p.estimated;
            (resource, region, p, delta)
        })
        .filter(|d| cents(d.3) != 0.0)
        .collect();
    drivers.sort_by(|a, b| b.3.abs().total_cmp(&a.3.abs()).then_with(|| a.0.cmp(&b.0)));
    let unitemized = drivers
        .iter()
        .find(|d| d.0.is_empty())
        .map(|d| d.2.billed)
        .unwrap_or(0.0);
    drivers.truncate(cfg.top_resources as usize);
    let mut listed = Vec::with_capacity(drivers.len());
    for (resource, region, p, delta) in drivers {
        let found = if resource.is_empty() {
            None
        } else {
            let key = format!("{}/{}/{}/{}", g.provider, g.account, region, resource);
            store.resource(&key)?
        };
        let cause = match (p.billed_lines > 0, p.estimated_lines > 0) {
            (true, false) => GapCause::NotEstimated,
            (false, true) => GapCause::NotBilled,
            _ => GapCause::PricedDifferently,
        };
        let why = match (cause, &found) {
            (GapCause::NotEstimated, _) if resource.is_empty() => {
                "billed without a resource id: the bill is not itemized by resource".to_string()
            }
            (GapCause::NotEstimated, Some(r)) => format!(
                "billed, never estimated: in the inventory as {}, so its price is missing from the table",
                r.resource.kind
            ),
            (GapCause::NotEstimated, None) => {
                "billed, never estimated: not in the inventory (not collected)".to_string()
            }
            (GapCause::NotBilled, _) => {
                "estimated, never billed (billed under another id, deleted before billing, or free)"
                    .to_string()
            }
            (GapCause::PricedDifferently, _) => format!(
                "billed {} {} against an estimate of {}: priced differently",
                money(p.billed),
                g.currency,
                money(p.estimated)
            ),
        };
        listed.push(GapDriver {
            resource,
            region,
            key: found.as_ref().map(|r| r.key.clone()),
            kind: found.as_ref().map(|r| r.resource.kind.clone()),
            name: found.as_ref().map(|r| r.resource.name.clone()),
            billed: cents(p.billed),
            estimated: cents(p.estimated),
            delta: cents(delta),
            cause,
            why,
        });
    }

    let percent = (c.billed > 0.0).then(|| (c.gap / c.billed * 1000.0).round() / 10.0);
    let usd = g.currency == "USD";
    let mut notes = Vec::new();
    if !usd {
        notes.push(format!(
            "amounts are in {}; no USD amount per month is given",
            g.currency
        ));
    }
    if unitemized != 0.0 {
        notes.push(format!(
            "{} {} of the bill names no resource: the resources listed explain only the itemized part",
            money(unitemized),
            g.currency
        ));
    }
    if !c.estimated_only.is_empty() {
        notes.push(format!(
            "{} day(s) with estimated lines only (the bill lags) are not compared",
            c.estimated_only.len()
        ));
    }
    let days = c.days.len();
    let id_tail = if usd {
        String::new()
    } else {
        format!("/{}", g.currency)
    };
    let day_list = |ds: &[NaiveDate]| -> serde_json::Value {
        ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().into()
    };
    Ok(Finding {
        id: format!(
            "{}/{}/{}/{}{id_tail}",
            FindingKind::Reconciliation.name(),
            g.provider,
            g.account,
            g.service
        ),
        kind: FindingKind::Reconciliation,
        reason: format!(
            "billed {} vs estimated {} {} over {days} day(s): the estimate is {} {} {}{}",
            money(c.billed),
            money(c.estimated),
            g.currency,
            money(c.gap.abs()),
            g.currency,
            if c.gap > 0.0 { "under" } else { "over" },
            match percent {
                Some(p) => format!(" ({:.1} % of the bill)", p.abs()),
                None => String::new(),
            }
        ),
        action: if c.gap > 0.0 {
            "reconcile: collect or price what the bill has and the estimate lacks".to_string()
        } else {
            "reconcile: check what the estimate has and the bill lacks".to_string()
        },
        // Not one resource: the group stands in the resource's place, with no key.
        resource: FindingResource {
            key: String::new(),
            provider: g.provider.clone(),
            account: g.account.clone(),
            region: String::new(),
            kind: "billing.service".into(),
            id: g.service.clone(),
            name: g.service.clone(),
            tags: Default::default(),
        },
        group: Some(g.clone()),
        monthly_usd: usd.then(|| cents(c.monthly)),
        current_monthly_usd: None,
        recommended_type: None,
        evidence: Evidence {
            start: Some(start),
            end: Some(end),
            series: Vec::new(),
            facts: Facts::from([
                ("billed".to_string(), cents(c.billed).into()),
                ("estimated".to_string(), cents(c.estimated).into()),
                ("gap".to_string(), cents(c.gap).into()),
                ("gap_percent".to_string(), percent.into()),
                ("currency".to_string(), g.currency.clone().into()),
                ("days_compared".to_string(), days.into()),
                (
                    "days_estimated_only".to_string(),
                    day_list(&c.estimated_only),
                ),
                ("days_billed_only".to_string(), day_list(&c.billed_only)),
            ]),
            days: c.days,
        },
        drivers: listed,
        notes,
    })
}

fn money(v: f64) -> String {
    format!("{:.2}", cents(v))
}

#[cfg(test)]
#[path = "findings_recon_tests.rs"]
mod tests;
