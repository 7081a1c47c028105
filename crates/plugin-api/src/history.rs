//! Helpers for collectors that read history (see [`crate::Collector::reads_history`]).

use chrono::{DateTime, Utc};

/// The number of whole UTC days, today included, that a billing read must cover so that it
/// reaches back to `window_start` as well as the `days` a collector reads on every run.
///
/// Billing APIs revise recent days, so billed collectors re-read the last `days` days on
/// each run and the store replaces the lines it already has. When the runner fills a window
/// the agent missed (a catch-up after downtime), that window may start before those days:
/// reading back to its first day fills the gap, and re-reading days already stored is
/// harmless because cost lines are upserted. Never less than `days` nor than 1; at most
/// `max_days` (the API's own limit, e.g. 31 days for Azure Cost Management).
pub fn billed_days_covering(
    now: DateTime<Utc>,
    window_start: DateTime<Utc>,
    days: u32,
    max_days: u32,
) -> u32 {
    let today = now.date_naive();
    let first = window_start.date_naive();
    let back = (today - first).num_days().max(0);
    let need = u32::try_from(back.saturating_add(1)).unwrap_or(u32::MAX);
    need.max(days).max(1).min(max_days.max(days).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_recent_window_keeps_the_configured_days() {
        let now = at("2026-12-06T18:00:00Z");
        assert_eq!(
            billed_days_covering(now, at("2026-12-06T17:00:00Z"), 3, 31),
            3
        );
        assert_eq!(
            billed_days_covering(now, at("2026-12-06T17:00:00Z"), 0, 31),
            1
        );
    }

    #[test]
    fn an_old_window_reaches_back_to_its_first_day() {
        let now = at("2026-12-06T18:00:00Z");
        // Dec 1 .. Dec 6 inclusive: 6 days.
        assert_eq!(
            billed_days_covering(now, at("2026-12-01T23:00:00Z"), 3, 31),
            6
        );
        // Capped at the API's limit.
        assert_eq!(
            billed_days_covering(now, at("2026-01-01T00:00:00Z"), 3, 31),
            31
        );
        // A window in the future (clock skew) never shrinks the read.
        assert_eq!(
            billed_days_covering(now, at("2026-12-08T00:00:00Z"), 3, 31),
            3
        );
    }
}
