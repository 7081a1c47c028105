//! Budgets and cost anomalies over a store: what the server evaluates every few minutes,
//! serves at `/api/v1/budgets` and `/api/v1/anomalies`, writes as series for PromQL and
//! Grafana, and posts to the webhook.
//!
//! Spend is read as [`crate::spend`] reads it (one source per account and day, USD,
//! `BilledCost`). Anomalies judge complete days only: today's cost is still arriving, and
//! judging it would flag every morning as a drop.

use crate::anomaly::{self, AnomalyConfig};
use crate::budget::{self, BudgetConfig, BudgetScope, BudgetStatus, RATE_DAYS};
use crate::notify::{budget_events, AnomalyAlert, Event, SentLog};
use crate::spend::{self, Group};
use chrono::{DateTime, Days, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_model::{Batch, Labels, Point, Resource, ResourceRef, SmolStr, Stat, Unit};
use skymeter_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A budget's status with the scope it counts, as `/api/v1/budgets` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetReport {
    #[serde(flatten)]
    pub status: BudgetStatus,
    pub scope: BudgetScope,
}

/// Every budget's status on `today` (its month through `today`, and the 7 days before the
/// month for a steady forecast in the month's first week).
pub fn budget_reports(
    store: &dyn Store,
    budgets: &[BudgetConfig],
    today: NaiveDate,
) -> Result<Vec<BudgetReport>, StoreError> {
    if budgets.is_empty() {
        return Ok(Vec::new());
    }
    let (month_start, _) = budget::month_of(today);
    let from = month_start - Days::new(RATE_DAYS);
    let dims: Vec<String> = ["provider", "account", "service"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let spend = spend::daily(store, from, today, &dims)?;
    let mut daily: Vec<BTreeMap<NaiveDate, f64>> = vec![BTreeMap::new(); budgets.len()];
    // Scopes without tags are summed from the grouped spend; scopes with tags need the
    // lines themselves (the grouping query has no tags), read once for all of them.
    for (i, b) in budgets.iter().enumerate() {
        if !b.scope.tags.is_empty() {
            continue;
        }
        for (group, days) in &spend.groups {
            let get = |k: &str| group.get(k).map(String::as_str).unwrap_or("");
            if b.scope.matches(
                get("provider"),
                Some(get("account")),
                get("service"),
                &Labels::new(),
            ) {
                for (d, a) in days {
                    *daily[i].entry(*d).or_default() += a;
                }
            }
        }
    }
    if budgets.iter().any(|b| !b.scope.tags.is_empty()) {
        spend::each_line(store, from, today, |line| {
            if !line.billing_currency.eq_ignore_ascii_case("USD")
                || !spend.sources.counts_line(line)
                || !line.billed_cost.is_finite()
            {
                return;
            }
            for (i, b) in budgets.iter().enumerate() {
                if !b.scope.tags.is_empty() && b.scope.matches_cost(line) {
                    *daily[i]
                        .entry(line.charge_period_start.date_naive())
                        .or_default() += line.billed_cost;
                }
            }
        })?;
    }
    Ok(budgets
        .iter()
        .zip(daily)
        .map(|(b, days)| {
            let days: Vec<(NaiveDate, f64)> = days.into_iter().collect();
            BudgetReport {
                status: budget::evaluate(b, &days, today),
                scope: b.scope.clone(),
            }
        })
        .collect())
}

/// The anomalies of every cost group over the `history_days` complete days before `today`,
/// newest day first (then largest size), each with its drivers.
pub fn anomalies(
    store: &dyn Store,
    config: &AnomalyConfig,
    today: NaiveDate,
) -> Result<Vec<AnomalyAlert>, StoreError> {
    let through = today - Days::new(1);
    let from = today - Days::new(config.history_days as u64);
    let spend = spend::daily(store, from, through, &config.group_by)?;
    // The newest day any group has cost: billing data that lags makes it yesterday's
    // yesterday, and a group is judged up to it, not up to a day nothing has arrived for
    // yet (that would flag every group as dropping to zero).
    let Some(newest) = spend
        .groups
        .values()
        .filter_map(|d| d.keys().next_back())
        .max()
        .copied()
    else {
        return Ok(Vec::new());
    };
    let mut found: Vec<AnomalyAlert> = Vec::new();
    for group in spend.groups.keys() {
        // Days without cost between the first and the last count as 0 (detect fills
        // them); the series runs to the newest day so that a group that stopped while the
        // others go on is seen to drop.
        let mut series = spend.series(group);
        if series.last().is_some_and(|(d, _)| *d < newest) {
            series.push((newest, 0.0));
        }
        for a in anomaly::detect(&series, config) {
            found.push(AnomalyAlert {
                group: group.clone(),
                anomaly: a,
                drivers: Vec::new(),
            });
        }
    }
    if config.drivers > 0 && !found.is_empty() {
        add_drivers(store, config, &mut found)?;
    }
    found.sort_by(|a, b| {
        b.anomaly
            .day
            .cmp(&a.anomaly.day)
            .then(b.anomaly.size.abs().total_cmp(&a.anomaly.size.abs()))
            .then_with(|| a.group.cmp(&b.group))
    });
    Ok(found)
}

/// Each anomaly's drivers, from one read of the anomalous days' window by resource.
fn add_drivers(
    store: &dyn Store,
    config: &AnomalyConfig,
    found: &mut [AnomalyAlert],
) -> Result<(), StoreError> {
    let first = found
        .iter()
        .map(|a| a.anomaly.day)
        .min()
        .expect("not empty");
    let last = found
        .iter()
        .map(|a| a.anomaly.day)
        .max()
        .expect("not empty");
    let from = first - Days::new(config.level_days as u64);
    let mut dims = config.group_by.clone();
    dims.push("resource".into());
    let spend = spend::daily(store, from, last, &dims)?;
    // group -> resource -> days
    let mut by_group: BTreeMap<Group, BTreeMap<String, Vec<(NaiveDate, f64)>>> = BTreeMap::new();
    for (key, days) in &spend.groups {
        let mut group = key.clone();
        let resource = group.remove("resource").unwrap_or_default();
        if resource.is_empty() {
            continue; // lines naming no resource (support, tax) drive nothing nameable
        }
        by_group
            .entry(group)
            .or_default()
            .insert(resource, days.iter().map(|(d, a)| (*d, *a)).collect());
    }
    for a in found.iter_mut() {
        if let Some(resources) = by_group.get(&a.group) {
            a.drivers = anomaly::drivers(
                resources,
                a.anomaly.day,
                a.anomaly.direction,
                config,
                config.drivers,
            );
        }
    }
    Ok(())
}

/// Whether an anomaly's day is among the `recent_days` before `today`.
pub fn is_recent(a: &AnomalyAlert, config: &AnomalyConfig, today: NaiveDate) -> bool {
    a.anomaly.day >= today - Days::new(config.recent_days as u64)
}

/// The events of one evaluation: a budget event per threshold crossed this month, an
/// anomaly event per recent anomaly. The notifier drops the ones sent before.
pub fn events(
    budgets: &[BudgetConfig],
    reports: &[BudgetReport],
    anomalies: &[AnomalyAlert],
    config: &AnomalyConfig,
    today: NaiveDate,
) -> Vec<Event> {
    let mut out = Vec::new();
    for (b, r) in budgets.iter().zip(reports) {
        out.extend(budget_events(b, &r.status));
    }
    for a in anomalies.iter().filter(|a| is_recent(a, config, today)) {
        out.push(Event::Anomaly { anomaly: a.clone() });
    }
    out
}

/// The provider of the series of budgets and findings totals.
pub const PROVIDER: &str = "skymeter";

/// The findings of one kind, as the series carry them.
#[derive(Debug, Clone, PartialEq)]
pub struct KindTotal {
    pub kind: String,
    pub count: u64,
    pub monthly_usd: f64,
}

/// The batch of series one evaluation writes, stamped `now`:
///
/// | point | Prometheus name | resource | labels | value |
/// |---|---|---|---|---|
/// | `budget.amount` | `budget_amount_usd` | `skymeter` / `budget` / the budget's name | | the monthly amount |
/// | `budget.actual` | `budget_actual_usd` | 〃 | | the month's spend so far |
/// | `budget.forecast` | `budget_forecast_usd` | 〃 | | the month's forecast (absent without one) |
/// | `budget.crossed` | `budget_crossed` | 〃 | `threshold`, `on` | 1 when crossed, else 0 |
/// | `cost.anomaly` | `cost_anomaly_usd` | the group's provider / account / region, id = the group | `service`, `category` when grouped | size (actual − expected) of the group's latest recent anomaly |
/// | `cost.anomaly.score` | `cost_anomaly_score` | 〃 | 〃 | its robust sigmas |
/// | `findings.monthly` | `findings_monthly_usd` | `skymeter` / `findings` / `findings` | `finding_kind` | money per month of that kind's findings |
/// | `findings.count` | `findings_count` | 〃 | `finding_kind` | how many |
///
/// The anomaly series exist only while the group has a recent anomaly: an alert on them
/// fires when one appears and resolves when it ages out of `recent_days`.
pub fn series_batch(
    now: DateTime<Utc>,
    reports: &[BudgetReport],
    anomalies: &[AnomalyAlert],
    config: &AnomalyConfig,
    findings: Option<&[KindTotal]>,
) -> Batch {
    let mut batch = Batch::new("skymeter-server", "savings", now);
    let today = now.date_naive();
    let point =
        |resource: &Arc<ResourceRef>, metric: &str, unit: Unit, value: f64, labels: Labels| Point {
            metric: SmolStr::new(metric),
            unit,
            stat: Stat::Last,
            period_s: 0,
            ts: now,
            value,
            resource: resource.clone(),
            labels: labels.into(),
        };
    let own = |kind: &str, id: &str, name: &str, batch: &mut Batch| {
        batch.resources.push(Resource {
            provider: PROVIDER.into(),
            account: String::new(),
            region: String::new(),
            kind: kind.into(),
            native_type: format!("skymeter.{kind}"),
            id: id.into(),
            name: name.into(),
            tags: Default::default(),
            attributes: Default::default(),
            observed_at: now,
        });
        Arc::new(ResourceRef {
            provider: SmolStr::new(PROVIDER),
            account: SmolStr::default(),
            region: SmolStr::default(),
            id: SmolStr::new(id),
        })
    };
    for r in reports {
        let s = &r.status;
        let res = own("budget", &s.name, &s.name, &mut batch);
        batch.points.push(point(
            &res,
            "budget.amount",
            Unit::Usd,
            s.amount,
            Labels::new(),
        ));
        batch.points.push(point(
            &res,
            "budget.actual",
            Unit::Usd,
            s.actual,
            Labels::new(),
        ));
        if let Some(f) = s.forecast {
            batch
                .points
                .push(point(&res, "budget.forecast", Unit::Usd, f, Labels::new()));
        }
        for t in &s.thresholds {
            let labels = Labels::from([
                ("threshold".to_string(), trim_number(t.percent)),
                ("on".to_string(), t.on.as_str().to_string()),
            ]);
            let crossed = if t.crossed { 1.0 } else { 0.0 };
            batch
                .points
                .push(point(&res, "budget.crossed", Unit::None, crossed, labels));
        }
    }
    // The latest recent anomaly of each group (the list is newest first).
    let mut seen: Vec<&Group> = Vec::new();
    for a in anomalies.iter().filter(|a| is_recent(a, config, today)) {
        if seen.contains(&&a.group) {
            continue;
        }
        seen.push(&a.group);
        let get = |k: &str| a.group.get(k).cloned().unwrap_or_default();
        let id = if a.group.is_empty() {
            "total".to_string()
        } else {
            // In `group_by`'s order: `aws/111111111111/Amazon Elastic Compute Cloud`.
            config
                .group_by
                .iter()
                .filter_map(|d| a.group.get(d).map(String::as_str))
                .collect::<Vec<_>>()
                .join("/")
        };
        let provider = get("provider");
        let res = Arc::new(ResourceRef {
            provider: SmolStr::new(if provider.is_empty() {
                PROVIDER
            } else {
                &provider
            }),
            account: SmolStr::new(get("account")),
            region: SmolStr::new(get("region")),
            id: SmolStr::new(id),
        });
        let labels: Labels = a
            .group
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "service" | "category"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        batch.points.push(point(
            &res,
            "cost.anomaly",
            Unit::Usd,
            a.anomaly.size,
            labels.clone(),
        ));
        batch.points.push(point(
            &res,
            "cost.anomaly.score",
            Unit::None,
            a.anomaly.score,
            labels,
        ));
    }
    if let Some(kinds) = findings {
        let res = own("findings", "findings", "findings", &mut batch);
        for k in kinds {
            let labels = Labels::from([("finding_kind".to_string(), k.kind.clone())]);
            batch.points.push(point(
                &res,
                "findings.monthly",
                Unit::Usd,
                k.monthly_usd,
                labels.clone(),
            ));
            batch.points.push(point(
                &res,
                "findings.count",
                Unit::Count,
                k.count as f64,
                labels,
            ));
        }
    }
    batch
}

/// `80` for 80.0, `12.5` for 12.5: a threshold as a label value.
fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A [`SentLog`] in the store's server state, so that a restarted server does not post an
/// event again. A store that cannot be read counts the event as not sent (it may be posted
/// twice; its id lets the receiver drop it) and says so in the log.
pub struct StoreSentLog(pub Arc<dyn Store>);

impl StoreSentLog {
    fn key(id: &str) -> String {
        format!("webhook.sent.{id}")
    }
}

impl SentLog for StoreSentLog {
    fn seen(&self, id: &str) -> bool {
        match self.0.server_state(&Self::key(id)) {
            Ok(v) => v.is_some(),
            Err(e) => {
                tracing::warn!(event = id, error = %e, "cannot read whether a webhook event was sent; sending it");
                false
            }
        }
    }

    fn mark(&self, id: &str) {
        if let Err(e) = self
            .0
            .put_server_state(&Self::key(id), &Utc::now().to_rfc3339())
        {
            tracing::warn!(event = id, error = %e, "cannot record a webhook event as sent; it may be sent again");
        }
    }
}
