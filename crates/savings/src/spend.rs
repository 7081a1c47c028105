//! Daily spend as budgets and anomalies read it: USD per cost group and UTC day, one view of
//! each day's money.
//!
//! The store can hold the same money three times: the bill's lines (`billed`), the
//! collectors' estimates from price tables (`estimated`) and the rating engine's prices
//! (`rated`). Adding them up would count a day two or three times, so for each provider,
//! account and day one source counts: **billed** when the bill has that account's day,
//! else **estimated**, else **rated**. Billing data lags a day or two; until it arrives the
//! estimate stands in for it, and the day switches to the bill once the bill has it.
//!
//! Amounts are `BilledCost` (what the invoice charges). Only USD lines count: budgets and
//! the anomaly thresholds are in USD, and no exchange rate is applied; lines in other
//! currencies are counted in [`DailySpend::other_currency_lines`] so a caller can say so.

use chrono::{Days, NaiveDate, NaiveTime};
use skymeter_model::{provider, Cost, CostSource};
use skymeter_store::{CostQuery, Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// A cost group: its value of each dimension grouped by (`provider` as the provider id:
/// `aws`, `gcp`, `azure`).
pub type Group = BTreeMap<String, String>;

/// The dimensions spend can be grouped by.
pub const DIMENSIONS: [&str; 6] = [
    "provider", "account", "service", "region", "category", "resource",
];

/// The source that counts for each (provider id, account, day).
#[derive(Debug, Default, Clone)]
pub struct SourceChoice(HashMap<(String, String, NaiveDate), u8>);

/// Billed before estimated before rated.
fn rank(source: &str) -> u8 {
    match source {
        "billed" => 0,
        "estimated" => 1,
        _ => 2,
    }
}

fn rank_of(source: CostSource) -> u8 {
    match source {
        CostSource::Billed => 0,
        CostSource::Estimated => 1,
        CostSource::Rated => 2,
    }
}

impl SourceChoice {
    fn offer(&mut self, provider: String, account: String, day: NaiveDate, source: &str) {
        let r = rank(source);
        self.0
            .entry((provider, account, day))
            .and_modify(|best| *best = (*best).min(r))
            .or_insert(r);
    }

    fn counts(&self, provider: &str, account: &str, day: NaiveDate, source: &str) -> bool {
        self.0
            .get(&(provider.to_string(), account.to_string(), day))
            .is_some_and(|best| *best == rank(source))
    }

    /// Whether a stored cost line is of the source that counts for its account's day.
    pub fn counts_line(&self, line: &Cost) -> bool {
        let day = line.charge_period_start.date_naive();
        let key = (
            provider::slug(&line.provider_name),
            line.sub_account_id.clone().unwrap_or_default(),
            day,
        );
        self.0
            .get(&key)
            .is_some_and(|best| *best == rank_of(line.x_source))
    }
}

/// USD per group and day over a window, and which source counted for each account's day.
#[derive(Debug, Default, Clone)]
pub struct DailySpend {
    pub groups: BTreeMap<Group, BTreeMap<NaiveDate, f64>>,
    pub sources: SourceChoice,
    /// Lines left out because their currency is not USD.
    pub other_currency_lines: u64,
}

impl DailySpend {
    /// Each group's days as `(day, USD)` pairs, oldest first.
    pub fn series(&self, group: &Group) -> Vec<(NaiveDate, f64)> {
        self.groups
            .get(group)
            .map(|days| days.iter().map(|(d, a)| (*d, *a)).collect())
            .unwrap_or_default()
    }
}

/// Midnight UTC of `day`.
pub fn start_of(day: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The spend of the days `from` through `through` (charge periods starting in them),
/// grouped by `dims` (names of [`DIMENSIONS`]; empty: one group).
pub fn daily(
    store: &dyn Store,
    from: NaiveDate,
    through: NaiveDate,
    dims: &[String],
) -> Result<DailySpend, StoreError> {
    for d in dims {
        if !DIMENSIONS.contains(&d.as_str()) {
            return Err(StoreError::BadRequest(format!(
                "cannot group spend by `{d}`; use {}",
                DIMENSIONS.join(", ")
            )));
        }
    }
    let mut group_by: Vec<String> = ["provider", "account", "day", "source", "currency"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for d in dims {
        if !group_by.contains(d) {
            group_by.push(d.clone());
        }
    }
    let rows = store.costs(&CostQuery {
        start: Some(start_of(from)),
        end: Some(start_of(through + Days::new(1))),
        group_by,
        ..Default::default()
    })?;
    let mut out = DailySpend::default();
    // (provider id, account, day, source, group, USD) of each USD row.
    let mut usd = Vec::with_capacity(rows.len());
    for row in rows {
        let get = |k: &str| row.group.get(k).cloned().unwrap_or_default();
        if !row.currency.eq_ignore_ascii_case("USD") {
            out.other_currency_lines += row.lines;
            continue;
        }
        let Ok(day) = NaiveDate::parse_from_str(&get("day"), "%Y-%m-%d") else {
            continue;
        };
        let provider_id = provider::slug(&get("provider"));
        let account = get("account");
        let source = get("source");
        out.sources
            .offer(provider_id.clone(), account.clone(), day, &source);
        let group: Group = dims
            .iter()
            .map(|d| {
                let v = if d == "provider" {
                    provider_id.clone()
                } else {
                    get(d)
                };
                (d.clone(), v)
            })
            .collect();
        let amount = if row.billed_cost.is_finite() {
            row.billed_cost
        } else {
            0.0
        };
        usd.push((provider_id, account, day, source, group, amount));
    }
    for (provider_id, account, day, source, group, amount) in usd {
        if out.sources.counts(&provider_id, &account, day, &source) {
            *out.groups.entry(group).or_default().entry(day).or_default() += amount;
        }
    }
    Ok(out)
}

/// Every stored cost line whose charge period starts in the days `from` through `through`,
/// to `each` (for what the grouping query cannot select, such as tags), in no particular
/// order.
pub fn each_line(
    store: &dyn Store,
    from: NaiveDate,
    through: NaiveDate,
    mut each: impl FnMut(&Cost),
) -> Result<(), StoreError> {
    store.for_each_cost_line(start_of(from), start_of(through + Days::new(1)), &mut each)
}
