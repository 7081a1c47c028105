//! Monthly budgets: `[[budget]]` in the server config, a monthly amount in USD over the
//! cost lines a scope selects, and thresholds on the month's actual spend and on its
//! forecast. [`evaluate`] turns a month's daily cost into a [`BudgetStatus`]: the spend so
//! far, the forecast for the whole month and the thresholds crossed, which the notifier
//! sends once each (budget, threshold, month).
//!
//! The forecast is the spend so far plus the mean daily cost of the last 7 complete days
//! times the days left in the month: a recent run rate, so that a change of spend shows in
//! the forecast within days, and complete days only, so that today's partial cost (or
//! yesterday's, while billing data lags) does not pull it down.

use chrono::{Datelike, Days, Months, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_model::{provider, Cost, Labels};
use std::collections::BTreeSet;

/// Complete days the run rate is the mean of.
pub const RATE_DAYS: u64 = 7;

/// Longest budget name: it is part of URLs, event ids and alert names.
const MAX_NAME_LEN: usize = 128;

/// Highest threshold percent accepted: beyond 10× the budget, a typo is likelier.
const MAX_PERCENT: f64 = 1000.0;

/// The `[[budget]]` entries of a config file, for reading them on their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    #[serde(default, rename = "budget")]
    pub budgets: Vec<BudgetConfig>,
}

/// One `[[budget]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Unique among the budgets; names the budget in the API, alerts and webhooks.
    pub name: String,
    /// The monthly amount, USD.
    pub amount: f64,
    /// Which cost lines count; empty: all of them.
    #[serde(default)]
    pub scope: BudgetScope,
    /// When to alert; default: 80 % and 100 % of the actual spend, 100 % of the forecast.
    #[serde(default = "default_thresholds")]
    pub thresholds: Vec<Threshold>,
}

/// The cost lines a budget counts: those matching every field given (AND); a field not
/// given matches every line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetScope {
    /// A provider id (`aws`, `gcp`, `azure`) or FOCUS `ProviderName`; any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// FOCUS `SubAccountId` (AWS account, GCP project, Azure subscription), exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// FOCUS `ServiceName` (`Amazon Elastic Compute Cloud`), any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Tags the line must carry with exactly these values.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub tags: Labels,
}

/// One alert level of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Percent of the amount (`80`, `100`, `120`).
    pub percent: f64,
    /// What is compared with it; default `actual`.
    #[serde(default)]
    pub on: ThresholdBasis,
}

/// What a threshold compares with the amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdBasis {
    /// The month's spend so far.
    #[default]
    Actual,
    /// The month's forecast spend.
    Forecast,
}

impl ThresholdBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdBasis::Actual => "actual",
            ThresholdBasis::Forecast => "forecast",
        }
    }
}

fn default_thresholds() -> Vec<Threshold> {
    vec![
        Threshold {
            percent: 80.0,
            on: ThresholdBasis::Actual,
        },
        Threshold {
            percent: 100.0,
            on: ThresholdBasis::Actual,
        },
        Threshold {
            percent: 100.0,
            on: ThresholdBasis::Forecast,
        },
    ]
}

/// A budget setting that cannot be used, with the budget and the field it is in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[[budget]] {budget}: `{field}` {message}")]
pub struct BudgetError {
    /// The budget's name in quotes, or its position (`#2`, from 1) when it has none.
    pub budget: String,
    /// The field, as written in the config (`amount`, `thresholds[1].percent`).
    pub field: String,
    pub message: String,
}

/// Checks every budget and that their names are unique; the error names the first
/// mistake's budget and field.
pub fn validate_budgets(budgets: &[BudgetConfig]) -> Result<(), BudgetError> {
    let mut names = BTreeSet::new();
    for (i, budget) in budgets.iter().enumerate() {
        let label = if budget.name.trim().is_empty() {
            format!("#{}", i + 1)
        } else {
            format!("{:?}", budget.name)
        };
        let err = |field: &str, message: String| BudgetError {
            budget: label.clone(),
            field: field.to_string(),
            message,
        };
        budget
            .validate()
            .map_err(|(field, message)| err(&field, message))?;
        if !names.insert(budget.name.as_str()) {
            return Err(err(
                "name",
                "is the name of an earlier budget; names must be unique".into(),
            ));
        }
    }
    Ok(())
}

impl BudgetConfig {
    /// This budget's own checks: the field and what is wrong with it.
    fn validate(&self) -> Result<(), (String, String)> {
        let field = |f: &str, m: String| Err((f.to_string(), m));
        if self.name.trim().is_empty() {
            return field(
                "name",
                "is missing or empty; every budget needs a name".into(),
            );
        }
        if self.name.trim() != self.name || self.name.chars().any(char::is_control) {
            return field(
                "name",
                "has leading or trailing spaces or a control character".into(),
            );
        }
        if self.name.len() > MAX_NAME_LEN {
            return field("name", format!("is longer than {MAX_NAME_LEN} bytes"));
        }
        if !(self.amount.is_finite() && self.amount > 0.0) {
            return field(
                "amount",
                format!(
                    "must be a positive number of USD per month, got {}",
                    self.amount
                ),
            );
        }
        for (key, value) in [
            ("scope.provider", &self.scope.provider),
            ("scope.account", &self.scope.account),
            ("scope.service", &self.scope.service),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return field(key, "is empty; leave it out to match every value".into());
            }
        }
        if self.scope.tags.keys().any(|k| k.trim().is_empty()) {
            return field("scope.tags", "has an empty tag key".into());
        }
        let mut seen = Vec::new();
        for (i, t) in self.thresholds.iter().enumerate() {
            if !(t.percent.is_finite() && t.percent > 0.0 && t.percent <= MAX_PERCENT) {
                return field(
                    &format!("thresholds[{i}].percent"),
                    format!(
                        "must be above 0 and at most {MAX_PERCENT}, got {}",
                        t.percent
                    ),
                );
            }
            if seen.contains(&(t.percent, t.on)) {
                return field(
                    &format!("thresholds[{i}]"),
                    format!("repeats {} % on {}", t.percent, t.on.as_str()),
                );
            }
            seen.push((t.percent, t.on));
        }
        Ok(())
    }
}

impl BudgetScope {
    /// Whether a cost line with these columns counts: the provider by id or name in any
    /// case, the account exactly, the service in any case, each tag exactly.
    pub fn matches(
        &self,
        provider_name: &str,
        account: Option<&str>,
        service: &str,
        tags: &Labels,
    ) -> bool {
        self.provider
            .as_deref()
            .is_none_or(|p| provider::slug(p) == provider::slug(provider_name))
            && self.account.as_deref().is_none_or(|a| account == Some(a))
            && self
                .service
                .as_deref()
                .is_none_or(|s| s.trim().eq_ignore_ascii_case(service.trim()))
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }

    /// [`matches`](Self::matches) for a stored cost line.
    pub fn matches_cost(&self, cost: &Cost) -> bool {
        self.matches(
            &cost.provider_name,
            cost.sub_account_id.as_deref(),
            &cost.service_name,
            &cost.tags,
        )
    }
}

/// A threshold and whether the month crossed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdStatus {
    pub percent: f64,
    pub on: ThresholdBasis,
    /// `amount × percent / 100`, USD.
    pub limit: f64,
    /// The actual (or forecast) spend is at or above the limit. Never true for a forecast
    /// threshold while there is no forecast.
    pub crossed: bool,
}

/// A budget's month as of a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetStatus {
    pub name: String,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The day evaluated (its cost counted as far as it is known).
    pub as_of: NaiveDate,
    /// The monthly amount, USD.
    pub amount: f64,
    /// Spend from the first of the month through `as_of`, USD.
    pub actual: f64,
    /// `actual` as a percent of `amount`.
    pub percent_actual: f64,
    /// The mean daily cost of the complete days the forecast reads, USD; absent when
    /// there is none (the first of the month without the previous days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_rate: Option<f64>,
    /// How many complete days `daily_rate` is the mean of (0 to 7).
    pub rate_days: u32,
    /// `actual + daily_rate × days left after as_of`, USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// `forecast` as a percent of `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_forecast: Option<f64>,
    pub days_in_month: u32,
    pub thresholds: Vec<ThresholdStatus>,
}

impl BudgetStatus {
    /// The thresholds crossed.
    pub fn crossed(&self) -> impl Iterator<Item = &ThresholdStatus> {
        self.thresholds.iter().filter(|t| t.crossed)
    }
}

/// The first day of `day`'s month and the number of days in it.
pub fn month_of(day: NaiveDate) -> (NaiveDate, u32) {
    let first = day.with_day(1).expect("every month has a first day");
    let next = first + Months::new(1);
    (first, (next - first).num_days() as u32)
}

/// A budget's status on `today` from the daily cost of its scope.
///
/// `daily` is the scope's cost per day (USD, any order, several entries of a day summed).
/// `actual` sums the days of `today`'s month through `today`; days after `today` are
/// ignored. The run rate is the mean of the [`RATE_DAYS`] days before `today` (today is
/// not complete), a day without an entry costing 0; it reaches into the previous month
/// only when `daily` holds days of it (pass the 7 days before the month for a steady
/// forecast in the month's first week), otherwise it is the mean of the month's complete
/// days so far, and on the first of the month, without them, there is no rate and no
/// forecast (forecast thresholds are then not crossed). On the last day of the month the
/// forecast is the actual spend.
pub fn evaluate(
    budget: &BudgetConfig,
    daily: &[(NaiveDate, f64)],
    today: NaiveDate,
) -> BudgetStatus {
    let (month_start, days_in_month) = month_of(today);
    let amount_on = |from: NaiveDate, through: NaiveDate| -> f64 {
        daily
            .iter()
            .filter(|(d, a)| *d >= from && *d <= through && a.is_finite())
            .map(|(_, a)| a)
            .sum::<f64>()
            // An empty sum is -0.0 in Rust; a budget with no spend has spent 0.
            + 0.0
    };
    let actual = amount_on(month_start, today);

    let earliest = daily
        .iter()
        .map(|(d, _)| *d)
        .min()
        .map_or(month_start, |d| d.min(month_start));
    let rate_start = (today - Days::new(RATE_DAYS)).max(earliest);
    let rate_days = (today - rate_start).num_days().max(0) as u32;
    let daily_rate =
        (rate_days > 0).then(|| amount_on(rate_start, today - Days::new(1)) / f64::from(rate_days));
    let days_left = days_in_month - today.day();
    let forecast = daily_rate.map(|rate| actual + rate * f64::from(days_left));

    let percent = |v: f64| v / budget.amount * 100.0;
    let thresholds = budget
        .thresholds
        .iter()
        .map(|t| {
            let limit = budget.amount * t.percent / 100.0;
            let value = match t.on {
                ThresholdBasis::Actual => Some(actual),
                ThresholdBasis::Forecast => forecast,
            };
            ThresholdStatus {
                percent: t.percent,
                on: t.on,
                limit,
                // A relative tolerance, so that a spend equal to the limit but for
                // rounding in the last bits counts as reaching it.
                crossed: value.is_some_and(|v| v >= limit * (1.0 - 1e-12)),
            }
        })
        .collect();
    BudgetStatus {
        name: budget.name.clone(),
        month: month_start.format("%Y-%m").to_string(),
        as_of: today,
        amount: budget.amount,
        actual,
        percent_actual: percent(actual),
        daily_rate,
        rate_days,
        forecast,
        percent_forecast: forecast.map(percent),
        days_in_month,
        thresholds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn budget(amount: f64) -> BudgetConfig {
        BudgetConfig {
            name: "eng".into(),
            amount,
            scope: BudgetScope::default(),
            thresholds: default_thresholds(),
        }
    }

    /// `per_day` on every day from `from` through `through`.
    fn flat(from: NaiveDate, through: NaiveDate, per_day: f64) -> Vec<(NaiveDate, f64)> {
        from.iter_days()
            .take_while(|d| *d <= through)
            .map(|d| (d, per_day))
            .collect()
    }

    fn crossed(status: &BudgetStatus) -> Vec<(f64, ThresholdBasis)> {
        status.crossed().map(|t| (t.percent, t.on)).collect()
    }

    #[test]
    fn reads_the_toml_with_its_defaults() {
        let config: BudgetsConfig = toml::from_str(
            r#"
            [[budget]]
            name = "eng-aws"
            amount = 5000
            scope = { provider = "aws", account = "123456789012", tags = { team = "eng" } }
            thresholds = [{ percent = 50 }, { percent = 90, on = "forecast" }]

            [[budget]]
            name = "all"
            amount = 20000.5
            "#,
        )
        .unwrap();
        assert_eq!(config.budgets.len(), 2);
        let eng = &config.budgets[0];
        assert_eq!(eng.scope.provider.as_deref(), Some("aws"));
        assert_eq!(eng.scope.tags.get("team").map(String::as_str), Some("eng"));
        assert_eq!(
            eng.thresholds,
            vec![
                Threshold {
                    percent: 50.0,
                    on: ThresholdBasis::Actual
                },
                Threshold {
                    percent: 90.0,
                    on: ThresholdBasis::Forecast
                }
            ]
        );
        assert_eq!(config.budgets[1].thresholds, default_thresholds());
        assert_eq!(config.budgets[1].scope, BudgetScope::default());
        validate_budgets(&config.budgets).unwrap();

        let unknown =
            toml::from_str::<BudgetsConfig>("[[budget]]\nname = \"x\"\namount = 1\nlimit = 3\n");
        assert!(unknown.unwrap_err().to_string().contains("limit"));
        let bad_on = toml::from_str::<BudgetsConfig>(
            "[[budget]]\nname = \"x\"\namount = 1\nthresholds = [{ percent = 80, on = \"billed\" }]\n",
        );
        assert!(bad_on.unwrap_err().to_string().contains("billed"));
    }

    #[test]
    fn validation_names_the_budget_and_the_field() {
        let check = |edit: &dyn Fn(&mut BudgetConfig)| {
            let mut b = budget(100.0);
            edit(&mut b);
            let mut first = budget(5.0);
            first.name = "first".into();
            validate_budgets(&[first, b]).unwrap_err()
        };
        let e = check(&|b| b.amount = 0.0);
        assert_eq!((e.budget.as_str(), e.field.as_str()), ("\"eng\"", "amount"));
        assert!(
            e.to_string()
                .starts_with("[[budget]] \"eng\": `amount` must be a positive"),
            "{e}"
        );
        let e = check(&|b| b.amount = f64::NAN);
        assert_eq!(e.field, "amount");
        let e = check(&|b| b.name = " ".into());
        assert_eq!((e.budget.as_str(), e.field.as_str()), ("#2", "name"));
        let e = check(&|b| b.name = "first".into());
        assert_eq!((e.budget.as_str(), e.field.as_str()), ("\"first\"", "name"));
        assert!(e.message.contains("unique"), "{e}");
        let e = check(&|b| b.thresholds[1].percent = -5.0);
        assert_eq!(e.field, "thresholds[1].percent");
        let e = check(&|b| {
            b.thresholds.push(Threshold {
                percent: 80.0,
                on: ThresholdBasis::Actual,
            })
        });
        assert_eq!(e.field, "thresholds[3]");
        let e = check(&|b| b.scope.service = Some("".into()));
        assert_eq!(e.field, "scope.service");
        let e = check(&|b| {
            b.scope.tags.insert("".into(), "x".into());
        });
        assert_eq!(e.field, "scope.tags");
        let e = check(&|b| b.name = "a\nb".into());
        assert_eq!(e.field, "name");
    }

    #[test]
    fn scope_matches_every_field_given() {
        let tags: Labels = [
            ("team".to_string(), "eng".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]
        .into();
        let scope = BudgetScope {
            provider: Some("AWS".into()),
            account: Some("123".into()),
            service: Some("amazon elastic compute cloud".into()),
            tags: [("team".to_string(), "eng".to_string())].into(),
        };
        assert!(scope.matches(
            "Amazon Web Services",
            Some("123"),
            "Amazon Elastic Compute Cloud",
            &tags
        ));
        assert!(!scope.matches(
            "Google Cloud",
            Some("123"),
            "Amazon Elastic Compute Cloud",
            &tags
        ));
        assert!(!scope.matches(
            "Amazon Web Services",
            Some("456"),
            "Amazon Elastic Compute Cloud",
            &tags
        ));
        assert!(!scope.matches(
            "Amazon Web Services",
            None,
            "Amazon Elastic Compute Cloud",
            &tags
        ));
        assert!(!scope.matches("Amazon Web Services", Some("123"), "Amazon S3", &tags));
        assert!(!scope.matches(
            "Amazon Web Services",
            Some("123"),
            "Amazon Elastic Compute Cloud",
            &Labels::new()
        ));
        assert!(BudgetScope::default().matches("Microsoft", None, "Storage", &Labels::new()));
    }

    #[test]
    fn mid_month_actual_forecast_and_crossings() {
        // 100 a day through the 15th of a 30-day month, budget 3000: half spent, forecast
        // exactly the amount.
        let status = evaluate(
            &budget(3000.0),
            &flat(ymd(2026, 6, 1), ymd(2026, 6, 15), 100.0),
            ymd(2026, 6, 15),
        );
        assert_eq!(status.month, "2026-06");
        assert_eq!(status.days_in_month, 30);
        assert_eq!(status.actual, 1500.0);
        assert_eq!(status.percent_actual, 50.0);
        assert_eq!((status.daily_rate, status.rate_days), (Some(100.0), 7));
        assert_eq!(status.forecast, Some(3000.0));
        assert_eq!(status.percent_forecast, Some(100.0));
        assert_eq!(crossed(&status), vec![(100.0, ThresholdBasis::Forecast)]);

        // At 2500 spent on the 25th: 80 % actual crossed as well.
        let status = evaluate(
            &budget(3000.0),
            &flat(ymd(2026, 6, 1), ymd(2026, 6, 25), 100.0),
            ymd(2026, 6, 25),
        );
        assert_eq!(status.actual, 2500.0);
        assert_eq!(
            crossed(&status),
            vec![
                (80.0, ThresholdBasis::Actual),
                (100.0, ThresholdBasis::Forecast)
            ]
        );
    }

    #[test]
    fn the_rate_is_the_last_seven_complete_days() {
        // 10 a day for two weeks, then 50 a day: the rate follows the recent week, and
        // today's (partial) cost counts in the actual spend only.
        let mut daily = flat(ymd(2026, 6, 1), ymd(2026, 6, 14), 10.0);
        daily.extend(flat(ymd(2026, 6, 15), ymd(2026, 6, 21), 50.0));
        daily.push((ymd(2026, 6, 22), 3.0));
        daily.push((ymd(2026, 6, 23), 999.0)); // after today: ignored
        let status = evaluate(&budget(1000.0), &daily, ymd(2026, 6, 22));
        assert_eq!(status.actual, 140.0 + 350.0 + 3.0);
        assert_eq!(status.daily_rate, Some(50.0));
        assert_eq!(status.forecast, Some(493.0 + 50.0 * 8.0));
        // A day without an entry in the window cost 0.
        daily.retain(|(d, _)| *d != ymd(2026, 6, 18));
        let status = evaluate(&budget(1000.0), &daily, ymd(2026, 6, 22));
        assert_eq!(status.daily_rate, Some(300.0 / 7.0));
    }

    #[test]
    fn first_days_of_the_month() {
        // The 1st without earlier days: no rate, no forecast, forecast thresholds not
        // crossed even though today's spend alone is over the amount.
        let status = evaluate(&budget(100.0), &[(ymd(2026, 3, 1), 150.0)], ymd(2026, 3, 1));
        assert_eq!(
            (status.forecast, status.daily_rate, status.rate_days),
            (None, None, 0)
        );
        assert_eq!(
            crossed(&status),
            vec![
                (80.0, ThresholdBasis::Actual),
                (100.0, ThresholdBasis::Actual)
            ]
        );
        // The 3rd: the rate is the mean of the two complete days of the month.
        let daily = [
            (ymd(2026, 3, 1), 10.0),
            (ymd(2026, 3, 2), 20.0),
            (ymd(2026, 3, 3), 1.0),
        ];
        let status = evaluate(&budget(1000.0), &daily, ymd(2026, 3, 3));
        assert_eq!((status.daily_rate, status.rate_days), (Some(15.0), 2));
        assert_eq!(status.forecast, Some(31.0 + 15.0 * 28.0));
        // With the previous month's last days passed, the rate is a full week; they do not
        // count in the actual spend.
        let mut daily = flat(ymd(2026, 2, 20), ymd(2026, 2, 28), 40.0);
        daily.push((ymd(2026, 3, 1), 40.0));
        let status = evaluate(&budget(1000.0), &daily, ymd(2026, 3, 1));
        assert_eq!(status.actual, 40.0);
        assert_eq!((status.daily_rate, status.rate_days), (Some(40.0), 7));
        assert_eq!(status.forecast, Some(40.0 + 40.0 * 30.0));
    }

    #[test]
    fn no_data_is_zero_spend() {
        let status = evaluate(&budget(100.0), &[], ymd(2026, 7, 10));
        assert_eq!(
            (status.actual, status.forecast, status.rate_days),
            (0.0, Some(0.0), 7)
        );
        // 0, not -0 (which == 0 but prints and serializes as "-0.0").
        assert!(status.actual.is_sign_positive());
        assert!(status.forecast.unwrap().is_sign_positive());
        assert_eq!(crossed(&status), vec![]);
    }

    #[test]
    fn february_and_the_turn_of_the_year() {
        assert_eq!(month_of(ymd(2027, 2, 10)), (ymd(2027, 2, 1), 28));
        assert_eq!(month_of(ymd(2028, 2, 29)), (ymd(2028, 2, 1), 29));
        assert_eq!(month_of(ymd(2026, 12, 31)), (ymd(2026, 12, 1), 31));
        // 28 days of 100 in February 2027: on the 28th, forecast = actual = 2800.
        let daily = flat(ymd(2027, 2, 1), ymd(2027, 2, 28), 100.0);
        let status = evaluate(&budget(2800.0), &daily, ymd(2027, 2, 28));
        assert_eq!((status.actual, status.forecast), (2800.0, Some(2800.0)));
        assert_eq!(status.crossed().count(), 3);
        // The 14th of a leap February: 15 days left.
        let daily = flat(ymd(2028, 2, 1), ymd(2028, 2, 14), 100.0);
        let status = evaluate(&budget(5000.0), &daily, ymd(2028, 2, 14));
        assert_eq!(status.forecast, Some(1400.0 + 1500.0));
        // New Year's Day: December's spend is not January's; its last week is the rate.
        let daily = flat(ymd(2026, 12, 1), ymd(2027, 1, 1), 10.0);
        let status = evaluate(&budget(1000.0), &daily, ymd(2027, 1, 1));
        assert_eq!(status.month, "2027-01");
        assert_eq!(status.actual, 10.0);
        assert_eq!(status.forecast, Some(310.0));
    }
}
