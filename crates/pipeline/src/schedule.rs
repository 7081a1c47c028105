//! When a task runs and which window each run covers.
//!
//! Windows are half-open `[start, end)` and adjacent: run n+1 starts where run n ended, so
//! successive runs cover time with no gap and no overlap. For `every = P` the window ends
//! are multiples of P since the Unix epoch, so agents on different machines agree on
//! buckets and the series stay regular (which the store compresses best). When a run
//! overruns, the next window simply starts at the previous end and reaches the latest
//! boundary: longer, never missing time.

use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

/// A task's schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every period, aligned to multiples of the period.
    Every(Duration),
    /// At the fire times of a cron expression (seconds field first).
    Cron {
        expr: String,
        schedule: Box<cron::Schedule>,
    },
}

/// How a schedule reads to a person: `every 10s`, ``cron `0 */5 * * * *` ``.
pub fn describe(s: &Schedule) -> String {
    match s {
        Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
        Schedule::Cron { expr, .. } => format!("cron `{expr}`"),
    }
}

impl Schedule {
    /// The nominal length of one window (the cron's current gap for cron schedules).
    pub fn period_at(&self, at: DateTime<Utc>) -> Duration {
        match self {
            Schedule::Every(p) => *p,
            Schedule::Cron { schedule, .. } => {
                let mut it = schedule.after(&at);
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(60)),
                    _ => Duration::from_secs(60),
                }
            }
        }
    }

    /// The latest window boundary at or before `now`.
    pub fn boundary_at_or_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(p) => floor(now, *p),
            Schedule::Cron { .. } => {
                // cron only iterates forwards: step back one period and walk up to `now`.
                let period = chrono::Duration::from_std(self.period_at(now))
                    .unwrap_or(chrono::Duration::minutes(1));
                let mut t = self.next_after(now - period - period);
                let mut last = t;
                while t <= now {
                    last = t;
                    t = self.next_after(t);
                }
                last
            }
        }
    }

    /// The first boundary strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(p) => {
                floor(t, *p) + chrono::Duration::from_std(*p).expect("period fits")
            }
            Schedule::Cron { schedule, .. } => schedule
                .after(&t)
                .next()
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The window of the first run at `now`: the last complete period before now.
    pub fn first_window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = self.boundary_at_or_before(now);
        let period =
            chrono::Duration::from_std(self.period_at(end)).unwrap_or(chrono::Duration::minutes(1));
        (end - period, end)
    }
}

/// `t` rounded down to a multiple of `period` since the Unix epoch.
pub fn floor(t: DateTime<Utc>, period: Duration) -> DateTime<Utc> {
    let p = period.as_millis().max(1) as i64;
    let ms = t.timestamp_millis();
    Utc.timestamp_millis_opt(ms - ms.rem_euclid(p))
        .single()
        .expect("in range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_windows_are_aligned_and_adjacent() {
        let s = Schedule::Every(Duration::from_secs(30));
        let (start, end) = s.first_window(at("2026-11-22T10:00:47.300Z"));
        assert_eq!(
            (start, end),
            (at("2026-11-22T10:00:00Z"), at("2026-11-22T10:00:30Z"))
        );
        let next = s.next_after(at("2026-11-22T10:00:47.300Z"));
        assert_eq!(next, at("2026-11-22T10:01:00Z"));
        // An overrun past two boundaries: the next window reaches the latest boundary.
        assert_eq!(
            s.boundary_at_or_before(at("2026-11-22T10:01:31Z")),
            at("2026-11-22T10:01:30Z")
        );
    }

    #[test]
    fn cron_windows_follow_fire_times() {
        let expr = "0 */5 * * * *";
        let s = Schedule::Cron {
            expr: expr.into(),
            schedule: Box::new(cron::Schedule::from_str(expr).unwrap()),
        };
        assert_eq!(
            s.next_after(at("2026-11-22T10:02:00Z")),
            at("2026-11-22T10:05:00Z")
        );
        assert_eq!(
            s.boundary_at_or_before(at("2026-11-22T10:07:10Z")),
            at("2026-11-22T10:05:00Z")
        );
        assert_eq!(
            s.boundary_at_or_before(at("2026-11-22T10:05:00Z")),
            at("2026-11-22T10:05:00Z")
        );
        let (start, end) = s.first_window(at("2026-11-22T10:07:10Z"));
        assert_eq!(
            (start, end),
            (at("2026-11-22T10:00:00Z"), at("2026-11-22T10:05:00Z"))
        );
        assert_eq!(
            s.period_at(at("2026-11-22T10:07:10Z")),
            Duration::from_secs(300)
        );
    }
}
