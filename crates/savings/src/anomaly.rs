//! Daily cost anomalies of one cost group (a service in an account, an account, …): the
//! days whose cost left the group's weekly pattern by more than its usual noise, each told
//! apart as a one-off `spike` or a `level_shift` the cost stays at, with the resources that
//! drove it.
//!
//! The baseline of a day is built from the days before it only, so that a day is judged
//! exactly as it was when it was the newest one (the server re-runs this every day):
//!
//! - weekday factors `f_w`: the median cost of each weekday over the last `season_days`
//!   days, divided by the mean of the seven medians (so the factors average 1);
//! - deseasonalized values `y_d = x_d / f_w(d)` over the last `level_days` days;
//! - level `L = median(y_d)`; spread `s = 1.4826 × median(|y_d − L|)` (the MAD, scaled so
//!   that it estimates the standard deviation of normal noise);
//! - expected cost `E_t = L × f_w(t)`, robust sigma `σ_t = k_t × max(s × f_w(t),
//!   min_spread_fraction × E_t, 0.01)`, where `k_t = sqrt(1 + π/2 × (1/n_w + 1/n_L +
//!   1/n_S))` widens it for the baseline's own estimation error (`n_w` days of that weekday,
//!   `n_L` days in the level, `n_S` days since a level shift of the last `level_days`; π/2
//!   is the variance of a median over that of a mean): about 1.1 to 1.5;
//! - the day is anomalous when `|x_t − E_t| > threshold × σ_t` and `|x_t − E_t| ≥
//!   min_amount`.
//!
//! Medians and the MAD keep one bad day from moving the baseline; the days found to be
//! spikes are left out of later levels and spreads all the same, so that a spike cannot
//! widen the spread for the next four weeks. A weekday with only two days of history that
//! disagree (the larger more than 1.5 × the smaller and at least `min_amount` apart: one of
//! them may be an anomaly of the warm-up) is not judged until it has a third day. A level shift is reported once, on its first day; the
//! days before it are then scaled to the new level (the history keeps its weekly shape and
//! its noise), so the days after the shift are judged against the new level at once; the
//! scale is re-estimated each day from all the days since the shift.

use chrono::{Datelike, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `1.4826 × MAD` factor: the MAD of normal noise is 0.6745 σ.
const MAD_TO_SIGMA: f64 = 1.4826;

/// The smallest robust sigma in USD, so that a perfectly flat series (spread 0) does not
/// make every change infinitely significant and every score stays finite.
const MIN_SIGMA_USD: f64 = 0.01;

/// How anomalies are found; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Robust sigmas a day's cost must leave its expected cost by (default 3.5).
    pub threshold: f64,
    /// USD a day's cost must leave its expected cost by, whatever the sigmas (default 1),
    /// so that a group costing cents never alerts.
    pub min_amount: f64,
    /// The robust sigma is never taken below this fraction of the expected cost (default
    /// 0.02): a very steady group would otherwise alert on changes nobody acts on.
    pub min_spread_fraction: f64,
    /// Days of history a group needs before its first day is judged (default 14: two of
    /// each weekday, the fewest a weekday median can stand on).
    pub warmup_days: usize,
    /// Days the level and the spread are taken over (default 28).
    pub level_days: usize,
    /// Days the weekday factors are taken over (default 56).
    pub season_days: usize,
    /// Days after an anomalous day that decide between a spike and a level shift (default
    /// 3): a level shift when all of them stay off the old baseline in the same direction.
    pub confirm_days: usize,
    /// What a cost group is, by dimensions of the cost lines (default `provider`,
    /// `account`, `service`; any of those and `region`, `category`; empty: the whole
    /// spend as one group).
    pub group_by: Vec<String>,
    /// Days of daily cost the server reads for each evaluation (default 90): the weekday
    /// factors and the level of the newest days need `season_days` + `level_days` of it.
    pub history_days: usize,
    /// Anomalies of this many last days are current (default 7): the webhook posts them and
    /// the `cost_anomaly_*` series carry them. Older ones are listed by the API only, so a
    /// first start does not post a quarter of history.
    pub recent_days: usize,
    /// Resources named as each anomaly's drivers, at most (default 5; 0: none).
    pub drivers: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            threshold: 3.5,
            min_amount: 1.0,
            min_spread_fraction: 0.02,
            warmup_days: 14,
            level_days: 28,
            season_days: 56,
            confirm_days: 3,
            group_by: vec!["provider".into(), "account".into(), "service".into()],
            history_days: 90,
            recent_days: 7,
            drivers: 5,
        }
    }
}

/// The dimensions an anomaly group may be made of.
pub const GROUP_DIMENSIONS: [&str; 5] = ["provider", "account", "service", "region", "category"];

/// A setting of [`AnomalyConfig`] out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("anomaly setting `{field}`: {message}")]
pub struct AnomalyConfigError {
    pub field: &'static str,
    pub message: String,
}

impl AnomalyConfig {
    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), AnomalyConfigError> {
        let err = |field, message: String| Err(AnomalyConfigError { field, message });
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return err(
                "threshold",
                format!(
                    "must be a positive number of robust sigmas, got {}",
                    self.threshold
                ),
            );
        }
        if !(self.min_amount.is_finite() && self.min_amount >= 0.0) {
            return err(
                "min_amount",
                format!(
                    "must be zero or a positive number of USD, got {}",
                    self.min_amount
                ),
            );
        }
        if !(self.min_spread_fraction.is_finite() && (0.0..1.0).contains(&self.min_spread_fraction))
        {
            return err(
                "min_spread_fraction",
                format!(
                    "must be at least 0 and below 1, got {}",
                    self.min_spread_fraction
                ),
            );
        }
        for (field, days) in [
            ("warmup_days", self.warmup_days),
            ("level_days", self.level_days),
            ("season_days", self.season_days),
        ] {
            if days < 7 {
                return err(
                    field,
                    format!("must be at least 7 days (one of each weekday), got {days}"),
                );
            }
        }
        if self.confirm_days == 0 {
            return err("confirm_days", "must be at least 1 day".to_string());
        }
        for (i, d) in self.group_by.iter().enumerate() {
            if !GROUP_DIMENSIONS.contains(&d.as_str()) {
                return err(
                    "group_by",
                    format!("has `{d}`; use any of {}", GROUP_DIMENSIONS.join(", ")),
                );
            }
            if self.group_by[..i].contains(d) {
                return err("group_by", format!("has `{d}` twice"));
            }
        }
        let least = self.warmup_days + self.confirm_days;
        if self.history_days < least || self.history_days > 3660 {
            return err(
                "history_days",
                format!(
                    "must be from warmup_days + confirm_days ({least}) to 3660 days, got {}",
                    self.history_days
                ),
            );
        }
        if self.recent_days == 0 || self.recent_days > self.history_days {
            return err(
                "recent_days",
                format!(
                    "must be from 1 to history_days ({}), got {}",
                    self.history_days, self.recent_days
                ),
            );
        }
        if self.drivers > 100 {
            return err(
                "drivers",
                format!("must be at most 100, got {}", self.drivers),
            );
        }
        Ok(())
    }
}

/// A spike or a level shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// One day (or a few) off the baseline, then back to it.
    Spike,
    /// The first day of a new level the following days stay at.
    LevelShift,
}

/// Which way the cost left its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    fn sign(self) -> f64 {
        match self {
            Direction::Up => 1.0,
            Direction::Down => -1.0,
        }
    }
}

/// One anomalous day of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Anomaly {
    pub day: NaiveDate,
    pub kind: AnomalyKind,
    /// The day is among the last ones of the series and the days after it are too few to
    /// tell a spike from a level shift: reported as a spike until they are there.
    pub provisional: bool,
    /// The day's cost, USD.
    pub actual: f64,
    /// The baseline's cost for the day, USD.
    pub expected: f64,
    /// `actual − expected`, USD (negative for a drop).
    pub size: f64,
    /// `|size|` in robust sigmas.
    pub score: f64,
    pub direction: Direction,
}

/// The baseline a day is judged against, from the days before it.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    /// Weekday factors, Monday first; they average 1.
    factors: [f64; 7],
    /// Deseasonalized level.
    level: f64,
    /// Deseasonalized robust spread.
    spread: f64,
    /// Weekdays whose factor stands on too little to judge a day by (see
    /// [`Pass::baseline`]).
    unsure: [bool; 7],
    /// Per weekday, how much wider than the spread a day's deviation is expected to be
    /// because the baseline itself is estimated: `sqrt(1 + π/2 × (1/n_w + 1/n_L + 1/n_S))`
    /// with `n_w` the days of that weekday, `n_L` the days of the level and `n_S` the days
    /// since the last level shift (π/2: the variance of a median over that of a mean).
    widening: [f64; 7],
}

impl Baseline {
    fn expected(&self, day: NaiveDate) -> f64 {
        self.level * self.factor(day)
    }

    fn factor(&self, day: NaiveDate) -> f64 {
        self.factors[day.weekday().num_days_from_monday() as usize]
    }

    fn sigma(&self, day: NaiveDate, config: &AnomalyConfig) -> f64 {
        let widening = self.widening[day.weekday().num_days_from_monday() as usize];
        (self.spread * self.factor(day))
            .max(config.min_spread_fraction * self.expected(day))
            .max(MIN_SIGMA_USD)
            * widening
    }

    /// `actual − expected` when it is anomalous for `day`, with its score.
    fn deviation(&self, day: NaiveDate, actual: f64, config: &AnomalyConfig) -> Option<(f64, f64)> {
        let size = actual - self.expected(day);
        let sigma = self.sigma(day, config);
        (size.abs() > config.threshold * sigma && size.abs() >= config.min_amount)
            .then_some((size, size.abs() / sigma))
    }
}

/// The group's days from its first cost on, one per day.
struct Daily {
    days: Vec<NaiveDate>,
    cost: Vec<f64>,
}

impl Daily {
    /// Days with several entries are summed; days missing between two entries cost 0; the
    /// days before the first non-zero cost are before the group existed and are dropped.
    fn from_series(series: &[(NaiveDate, f64)]) -> Daily {
        let mut by_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
        for &(day, amount) in series {
            // A NaN or infinite amount is a broken record, not a cost.
            let amount = if amount.is_finite() { amount } else { 0.0 };
            *by_day.entry(day).or_default() += amount;
        }
        let (Some(first), Some(last)) = (
            by_day.iter().find(|(_, a)| **a != 0.0).map(|(d, _)| *d),
            by_day.keys().next_back().copied(),
        ) else {
            return Daily {
                days: vec![],
                cost: vec![],
            };
        };
        let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
        let cost = days
            .iter()
            .map(|d| by_day.get(d).copied().unwrap_or(0.0))
            .collect();
        Daily { days, cost }
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The state of a pass over a group's days.
struct Pass<'a> {
    daily: &'a Daily,
    config: &'a AnomalyConfig,
    /// Multiplies each day's cost before it enters a baseline: level shifts scale the days
    /// before them to the new level ([`Pass::rescale`]).
    scale: Vec<f64>,
    /// The level shifts found so far, oldest first.
    shifts: Vec<Shift>,
    /// Days found to be spikes, kept out of later levels and spreads. They stay in the
    /// weekday medians, which have several days each and so shrug one off: leaving them
    /// out there would let a weekday factor spoiled in the warm-up (two days each) flag
    /// every later day of that weekday, each flag keeping the spoiled factor alive.
    excluded: Vec<bool>,
    /// The first day baselines read: a shift away from a level of zero has no ratio to
    /// scale the past by, and the history starts again from it.
    origin: usize,
}

/// A level shift, as the baseline of its first day saw it.
struct Shift {
    at: usize,
    factors: [f64; 7],
    /// The deseasonalized level before the shift.
    old_level: f64,
}

impl Pass<'_> {
    /// Scales the days before each level shift by the ratio of the new level to the old
    /// one, for the baseline of day `t`. The new level is the median deseasonalized cost
    /// of the days from the shift up to `t` (up to the next shift), and at least of the
    /// shift day and the days that confirmed it: re-estimated each day, so that the
    /// estimate from the first few days (a few percent off with ordinary noise) does not
    /// bias the next four weeks.
    fn rescale(&mut self, t: usize) {
        let n = self.daily.days.len();
        let mut ratios = Vec::with_capacity(self.shifts.len());
        for (i, shift) in self.shifts.iter().enumerate() {
            let segment_end = self.shifts.get(i + 1).map_or(n, |next| next.at);
            let until = t
                .max(shift.at + self.config.confirm_days + 1)
                .min(segment_end);
            let mut levels: Vec<f64> = (shift.at..until)
                .filter(|d| !self.excluded[*d])
                .filter_map(|d| {
                    let f =
                        shift.factors[self.daily.days[d].weekday().num_days_from_monday() as usize];
                    (f > 0.0).then(|| self.daily.cost[d] / f)
                })
                .collect();
            ratios.push(median(&mut levels).unwrap_or(0.0) / shift.old_level);
        }
        // A day's scale is the product of the ratios of the shifts after it.
        let mut factor = 1.0;
        let mut next = self.shifts.len();
        for d in (0..t).rev() {
            while next > 0 && self.shifts[next - 1].at > d {
                next -= 1;
                factor *= ratios[next];
            }
            self.scale[d] = factor;
        }
    }

    /// The baseline for day `t` from the days before it, if `t` is past the warm-up.
    fn baseline(&self, t: usize) -> Option<Baseline> {
        if t < self.origin + self.config.warmup_days {
            return None;
        }
        let since = |len: usize| t.saturating_sub(len).max(self.origin)..t;
        let weekday = |d: usize| self.daily.days[d].weekday().num_days_from_monday() as usize;
        let value = |d: usize| self.daily.cost[d] * self.scale[d];

        let mut by_weekday: [Vec<f64>; 7] = Default::default();
        for d in since(self.config.season_days) {
            by_weekday[weekday(d)].push(value(d));
        }
        // With fewer than three days a weekday's median cannot outvote an anomaly among
        // them: when its two days disagree (by more than half and more than `min_amount`),
        // which one is normal is unknown, and that weekday is not judged until its third.
        let unsure = by_weekday.each_ref().map(|v| match v.as_slice() {
            [a, b] => {
                let (lo, hi) = (a.min(*b), a.max(*b));
                hi - lo >= self.config.min_amount && hi > 1.5 * lo
            }
            short => short.len() < 2,
        });
        let weekday_days = by_weekday.each_ref().map(Vec::len);
        let mut all: Vec<f64> = by_weekday.iter().flatten().copied().collect();
        let overall = median(&mut all)?;
        // A weekday without a day (a series shorter than a week after a restart) takes
        // the overall median.
        let medians = by_weekday.map(|mut v| median(&mut v).unwrap_or(overall));
        let mean = medians.iter().sum::<f64>() / 7.0;
        let factors = if mean > 0.0 {
            medians.map(|m| m / mean)
        } else {
            [1.0; 7]
        };

        let mut deseasonalized: Vec<f64> = since(self.config.level_days)
            .filter(|d| !self.excluded[*d] && factors[weekday(*d)] > 0.0)
            .map(|d| value(d) / factors[weekday(d)])
            .collect();
        let level = median(&mut deseasonalized).unwrap_or(0.0);
        let mut residuals: Vec<f64> = deseasonalized.iter().map(|y| (y - level).abs()).collect();
        let spread = MAD_TO_SIGMA * median(&mut residuals).unwrap_or(0.0);

        let since_shift = self
            .shifts
            .last()
            .map(|s| t.max(s.at + self.config.confirm_days + 1) - s.at)
            .filter(|n| *n < self.config.level_days);
        let level_uncertainty =
            1.0 / deseasonalized.len().max(1) as f64 + since_shift.map_or(0.0, |n| 1.0 / n as f64);
        let widening = weekday_days.map(|n| {
            (1.0 + std::f64::consts::FRAC_PI_2 * (1.0 / n.max(1) as f64 + level_uncertainty)).sqrt()
        });
        Some(Baseline {
            factors,
            level,
            spread,
            unsure,
            widening,
        })
    }
}

/// The anomalous days of one group's daily cost, oldest first.
///
/// `series` is the group's cost per day (USD), in any order; several entries of one day are
/// summed. The group exists from its first non-zero day to the series' last day, and a day
/// missing in between cost 0 (a caller that knows the group still exists today and had no
/// cost passes today with 0). No day is judged before `warmup_days` days of history.
///
/// A day is a `level_shift` when each of the `confirm_days` days after it stays off the
/// old baseline in the same direction (anomalous by the same test), a `spike` when one of
/// them is back. When fewer days follow (the end of the series) and all of them stay off,
/// the class is not known yet: the day is reported as a spike with `provisional: true`, and
/// so is each following day still off the baseline; a later run with more days settles it.
pub fn detect(series: &[(NaiveDate, f64)], config: &AnomalyConfig) -> Vec<Anomaly> {
    let daily = Daily::from_series(series);
    let n = daily.days.len();
    let mut pass = Pass {
        daily: &daily,
        config,
        scale: vec![1.0; n],
        shifts: Vec::new(),
        excluded: vec![false; n],
        origin: 0,
    };
    let mut found = Vec::new();
    for t in 0..n {
        if !pass.shifts.is_empty() {
            pass.rescale(t);
        }
        let Some(baseline) = pass.baseline(t) else {
            continue;
        };
        let day = daily.days[t];
        if baseline.unsure[day.weekday().num_days_from_monday() as usize] {
            continue;
        }
        let actual = daily.cost[t];
        let Some((size, score)) = baseline.deviation(day, actual, config) else {
            continue;
        };
        let direction = if size > 0.0 {
            Direction::Up
        } else {
            Direction::Down
        };
        let following = (t + 1..n).take(config.confirm_days);
        let following_len = following.len();
        let stays = following.clone().all(|d| {
            baseline
                .deviation(daily.days[d], daily.cost[d], config)
                .is_some_and(|(s, _)| s * direction.sign() > 0.0)
        });
        let (kind, provisional) = if !stays {
            (AnomalyKind::Spike, false)
        } else if following_len < config.confirm_days {
            (AnomalyKind::Spike, true)
        } else {
            (AnomalyKind::LevelShift, false)
        };
        match kind {
            AnomalyKind::Spike => pass.excluded[t] = true,
            AnomalyKind::LevelShift => {
                if baseline.level > 0.0 {
                    pass.shifts.push(Shift {
                        at: t,
                        factors: baseline.factors,
                        old_level: baseline.level,
                    });
                } else {
                    pass.origin = t;
                }
            }
        }
        found.push(Anomaly {
            day,
            kind,
            provisional,
            actual,
            expected: baseline.expected(day),
            size,
            score,
            direction,
        });
    }
    found
}

/// A resource that drove an anomaly: how far its cost on the day was from its own
/// baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Driver {
    pub resource: String,
    /// Its cost on the day, USD.
    pub actual: f64,
    /// Its median daily cost over the `level_days` days before the day, USD.
    pub baseline: f64,
    /// `actual − baseline`, USD.
    pub delta: f64,
}

/// The resources of a group whose cost on `day` moved most in `direction` from their own
/// baseline (their median daily cost over the `level_days` days before it, a missing day
/// costing 0, so a resource new on the day has a baseline of 0), at most `top` of them,
/// largest move first. Resources that moved the other way or not at all are not drivers.
pub fn drivers(
    resources: &BTreeMap<String, Vec<(NaiveDate, f64)>>,
    day: NaiveDate,
    direction: Direction,
    config: &AnomalyConfig,
    top: usize,
) -> Vec<Driver> {
    let window_start = day - chrono::Days::new(config.level_days as u64);
    let mut found: Vec<Driver> = resources
        .iter()
        .map(|(resource, series)| {
            let mut actual = 0.0;
            let mut window: BTreeMap<NaiveDate, f64> = BTreeMap::new();
            for &(d, amount) in series {
                let amount = if amount.is_finite() { amount } else { 0.0 };
                if d == day {
                    actual += amount;
                } else if d >= window_start && d < day {
                    *window.entry(d).or_default() += amount;
                }
            }
            let mut values: Vec<f64> = window_start
                .iter_days()
                .take(config.level_days)
                .map(|d| window.get(&d).copied().unwrap_or(0.0))
                .collect();
            let baseline = median(&mut values).unwrap_or(0.0);
            Driver {
                resource: resource.clone(),
                actual,
                baseline,
                delta: actual - baseline,
            }
        })
        .filter(|d| d.delta * direction.sign() > 0.0)
        .collect();
    found.sort_by(|a, b| {
        (b.delta * direction.sign())
            .total_cmp(&(a.delta * direction.sign()))
            .then_with(|| a.resource.cmp(&b.resource))
    });
    found.truncate(top);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u64) -> NaiveDate {
        // A Monday, so that day n's weekday is n % 7 (0 = Monday).
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() + chrono::Days::new(n)
    }

    /// splitmix64: a tiny seeded generator, so that the noise is the same on every run.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_unit(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A factor in [1 − amplitude, 1 + amplitude].
        fn noise(&mut self, amplitude: f64) -> f64 {
            1.0 + amplitude * (2.0 * self.next_unit() - 1.0)
        }
    }

    /// `days` days of weekly cost (weekdays `weekday_cost`, weekends 40 % of it) with ±3 %
    /// noise.
    fn weekly(days: u64, weekday_cost: f64, seed: u64) -> Vec<(NaiveDate, f64)> {
        let mut rng = SplitMix(seed);
        (0..days)
            .map(|n| {
                let base = if n % 7 >= 5 {
                    0.4 * weekday_cost
                } else {
                    weekday_cost
                };
                (day(n), base * rng.noise(0.03))
            })
            .collect()
    }

    fn summary(found: &[Anomaly]) -> Vec<(NaiveDate, AnomalyKind, Direction, bool)> {
        found
            .iter()
            .map(|a| (a.day, a.kind, a.direction, a.provisional))
            .collect()
    }

    #[test]
    fn finds_exactly_the_injected_spike_and_level_shift() {
        for seed in [1, 7, 42, 2026, 31337] {
            let mut series = weekly(60, 120.0, seed);
            series[35].1 *= 3.0;
            for (_, cost) in &mut series[45..] {
                *cost *= 1.6;
            }
            let found = detect(&series, &AnomalyConfig::default());
            assert_eq!(
                summary(&found),
                vec![
                    (day(35), AnomalyKind::Spike, Direction::Up, false),
                    (day(45), AnomalyKind::LevelShift, Direction::Up, false),
                ],
                "seed {seed}: {found:#?}"
            );
            let spike = &found[0];
            assert_eq!(spike.actual, series[35].1);
            assert!((spike.size - (spike.actual - spike.expected)).abs() < 1e-9);
            // Day 35 is a Friday: a weekday, expected near 120.
            assert!((spike.expected - 120.0).abs() < 6.0, "{spike:?}");
            assert!(spike.score > 3.5);
            let shift = &found[1];
            assert!(
                (shift.actual / shift.expected - 1.6).abs() < 0.1,
                "{shift:?}"
            );
        }
    }

    #[test]
    fn the_same_across_seeds_and_days() {
        // The must-show above with other noise and other days: no seed or weekday may
        // turn up an extra day or miss one.
        let mut wrong = vec![];
        for seed in 0..40u64 {
            for spike_day in [30usize, 33, 34, 36] {
                for shift_day in [42usize, 44, 46, 47, 48] {
                    let mut series = weekly(60, 120.0, seed);
                    series[spike_day].1 *= 3.0;
                    for (_, cost) in &mut series[shift_day..] {
                        *cost *= 1.6;
                    }
                    let found = summary(&detect(&series, &AnomalyConfig::default()));
                    let want = vec![
                        (
                            day(spike_day as u64),
                            AnomalyKind::Spike,
                            Direction::Up,
                            false,
                        ),
                        (
                            day(shift_day as u64),
                            AnomalyKind::LevelShift,
                            Direction::Up,
                            false,
                        ),
                    ];
                    if found != want {
                        wrong.push((seed, spike_day, shift_day, found));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} wrong: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }

    #[test]
    fn the_clean_series_has_no_anomaly() {
        for seed in 0..20 {
            assert_eq!(
                detect(&weekly(120, 80.0, seed), &AnomalyConfig::default()),
                vec![]
            );
        }
    }

    #[test]
    fn a_downward_spike_and_a_downward_shift() {
        let mut series = weekly(60, 200.0, 3);
        series[30].1 *= 0.3;
        for (_, cost) in &mut series[50..] {
            *cost *= 0.5;
        }
        let found = detect(&series, &AnomalyConfig::default());
        assert_eq!(
            summary(&found),
            vec![
                (day(30), AnomalyKind::Spike, Direction::Down, false),
                (day(50), AnomalyKind::LevelShift, Direction::Down, false),
            ]
        );
        assert!(found[0].size < 0.0);
    }

    #[test]
    fn an_all_zero_series_and_an_empty_one_have_none() {
        let zeros: Vec<_> = (0..60).map(|n| (day(n), 0.0)).collect();
        assert_eq!(detect(&zeros, &AnomalyConfig::default()), vec![]);
        assert_eq!(detect(&[], &AnomalyConfig::default()), vec![]);
    }

    #[test]
    fn nothing_is_judged_during_the_warm_up() {
        let mut series = weekly(14, 100.0, 5);
        series[10].1 *= 5.0;
        assert_eq!(detect(&series, &AnomalyConfig::default()), vec![]);
        // The fifteenth day is the first one judged.
        let mut series = weekly(20, 100.0, 5);
        series[14].1 *= 5.0;
        assert_eq!(
            summary(&detect(&series, &AnomalyConfig::default())),
            vec![(day(14), AnomalyKind::Spike, Direction::Up, false)]
        );
    }

    #[test]
    fn the_last_days_are_provisional_until_the_following_days_decide() {
        let mut series = weekly(40, 100.0, 9);
        for (_, cost) in &mut series[38..] {
            *cost *= 2.0;
        }
        // Days 38 and 39 are both off and nothing follows: both provisional spikes.
        assert_eq!(
            summary(&detect(&series, &AnomalyConfig::default())),
            vec![
                (day(38), AnomalyKind::Spike, Direction::Up, true),
                (day(39), AnomalyKind::Spike, Direction::Up, true),
            ]
        );
        // Two more days at the new level settle it: one level shift on day 38.
        let mut longer = weekly(42, 100.0, 9);
        for (_, cost) in &mut longer[38..] {
            *cost *= 2.0;
        }
        assert_eq!(
            summary(&detect(&longer, &AnomalyConfig::default())),
            vec![(day(38), AnomalyKind::LevelShift, Direction::Up, false)]
        );
        // A last-but-one day followed by a normal day is a spike for sure.
        let mut series = weekly(40, 100.0, 9);
        series[38].1 *= 2.0;
        assert_eq!(
            summary(&detect(&series, &AnomalyConfig::default())),
            vec![(day(38), AnomalyKind::Spike, Direction::Up, false)]
        );
    }

    #[test]
    fn missing_days_cost_zero() {
        // A dev account that costs nothing at weekends: its weekend days are simply absent,
        // and the weekday factors learn the zeros.
        let weekdays_only: Vec<_> = weekly(70, 50.0, 11)
            .into_iter()
            .enumerate()
            .filter(|(n, _)| n % 7 < 5)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(detect(&weekdays_only, &AnomalyConfig::default()), vec![]);
        // A weekday missing in the middle is a day without cost: a drop.
        let holed: Vec<_> = weekly(40, 50.0, 11)
            .into_iter()
            .enumerate()
            .filter(|(n, _)| *n != 30)
            .map(|(_, e)| e)
            .collect();
        let found = detect(&holed, &AnomalyConfig::default());
        assert_eq!(
            summary(&found),
            vec![(day(30), AnomalyKind::Spike, Direction::Down, false)]
        );
        assert_eq!(found[0].actual, 0.0);
    }

    #[test]
    fn a_group_that_starts_mid_way_warms_up_from_its_first_cost() {
        // Zeros before the group existed, then 40 days of cost: the warm-up counts from the
        // first cost, not from the series' start, and the start itself is no anomaly.
        let mut series: Vec<_> = (0..20).map(|n| (day(n), 0.0)).collect();
        let costs = weekly(60, 30.0, 13);
        series.extend(costs[20..].iter().copied());
        assert_eq!(detect(&series, &AnomalyConfig::default()), vec![]);
        series[45].1 *= 4.0;
        assert_eq!(
            summary(&detect(&series, &AnomalyConfig::default())),
            vec![(day(45), AnomalyKind::Spike, Direction::Up, false)]
        );
        // A spike 10 days after the first cost is still in the warm-up.
        let mut early = series.clone();
        early[45].1 /= 4.0;
        early[30].1 *= 4.0;
        assert_eq!(detect(&early, &AnomalyConfig::default()), vec![]);
    }

    #[test]
    fn a_group_that_stops_and_starts_again() {
        // Cost drops to nothing from day 40 (the fleet was deleted), then comes back on
        // day 60: one downward shift, one upward shift, and a fresh warm-up after it.
        let mut series = weekly(90, 100.0, 23);
        for (_, cost) in &mut series[40..60] {
            *cost = 0.0;
        }
        let found = detect(&series, &AnomalyConfig::default());
        assert_eq!(
            summary(&found),
            vec![
                (day(40), AnomalyKind::LevelShift, Direction::Down, false),
                (day(60), AnomalyKind::LevelShift, Direction::Up, false),
            ]
        );
        assert_eq!(found[0].actual, 0.0);
        // After the restart the group warms up again: a spike 5 days in is not judged,
        // one 20 days in is.
        let mut early = series.clone();
        early[65].1 *= 3.0;
        assert_eq!(detect(&early, &AnomalyConfig::default()).len(), 2);
        series[80].1 *= 3.0;
        assert_eq!(
            summary(&detect(&series, &AnomalyConfig::default()))[2],
            (day(80), AnomalyKind::Spike, Direction::Up, false)
        );
    }

    #[test]
    fn cents_never_alert() {
        // A group of a few cents a day, tripling: far beyond 3.5 sigmas, under the floor.
        let mut series = weekly(40, 0.05, 17);
        series[30].1 *= 3.0;
        assert_eq!(detect(&series, &AnomalyConfig::default()), vec![]);
        let config = AnomalyConfig {
            min_amount: 0.0,
            ..AnomalyConfig::default()
        };
        assert_eq!(detect(&series, &config).len(), 1);
    }

    #[test]
    fn duplicate_entries_of_a_day_are_summed_and_order_does_not_matter() {
        let mut series = weekly(40, 100.0, 19);
        series[33].1 *= 3.0;
        let expected = detect(&series, &AnomalyConfig::default());
        let mut split: Vec<_> = series
            .iter()
            .flat_map(|&(d, c)| [(d, c / 2.0), (d, c / 2.0)])
            .collect();
        split.reverse();
        assert_eq!(
            summary(&detect(&split, &AnomalyConfig::default())),
            summary(&expected)
        );
    }

    #[test]
    fn config_validation_names_the_setting() {
        assert_eq!(AnomalyConfig::default().validate(), Ok(()));
        let bad = AnomalyConfig {
            threshold: 0.0,
            ..AnomalyConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "threshold");
        let bad = AnomalyConfig {
            warmup_days: 3,
            ..AnomalyConfig::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.field, "warmup_days");
        assert!(err.to_string().contains("at least 7"), "{err}");
    }

    #[test]
    fn drivers_are_the_resources_that_moved_most_in_the_direction() {
        let d = day(40);
        let steady =
            |cost: f64| -> Vec<(NaiveDate, f64)> { (0..=40).map(|n| (day(n), cost)).collect() };
        let mut resources = BTreeMap::new();
        resources.insert("i-steady".to_string(), steady(10.0));
        let mut jumped = steady(20.0);
        jumped[40].1 = 95.0;
        resources.insert("i-jumped".to_string(), jumped);
        let mut rose = steady(5.0);
        rose[40].1 = 15.0;
        resources.insert("vol-rose".to_string(), rose);
        resources.insert("i-new".to_string(), vec![(d, 30.0)]);
        let mut fell = steady(8.0);
        fell[40].1 = 1.0;
        resources.insert("i-fell".to_string(), fell);

        let up = drivers(&resources, d, Direction::Up, &AnomalyConfig::default(), 2);
        assert_eq!(
            up,
            vec![
                Driver {
                    resource: "i-jumped".into(),
                    actual: 95.0,
                    baseline: 20.0,
                    delta: 75.0
                },
                Driver {
                    resource: "i-new".into(),
                    actual: 30.0,
                    baseline: 0.0,
                    delta: 30.0
                },
            ]
        );
        let down = drivers(&resources, d, Direction::Down, &AnomalyConfig::default(), 5);
        assert_eq!(down.len(), 1);
        assert_eq!((down[0].resource.as_str(), down[0].delta), ("i-fell", -7.0));
    }
}
