//! [`TimeRange`]: the one validated form of the times a request brings (an instant, a
//! span, or evaluation steps). Every outside time is checked here once, so that the
//! engine and the store compute with times and steps whose sums and products cannot
//! overflow an `i64`.

use crate::error::{QueryError, Result};

/// The earliest time a query may name: 0000-01-01T00:00:00Z, in ms since the epoch.
/// (RFC 3339 cannot write an earlier one, and the store keeps nothing before 1677.)
pub const MIN_TIME_MS: i64 = -62_167_219_200_000;
/// The latest time a query may name: 9999-12-31T23:59:59.999Z, in ms since the epoch.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
/// The longest duration a query may hold (a range, offset, step or subquery): the whole
/// span of [`MIN_TIME_MS`]..[`MAX_TIME_MS`]. With times and durations this size, the
/// engine's sums (time - offset - range - lookback, across nested subqueries bounded
/// by [`crate::Options::max_depth`]) stay far below `i64::MAX` (about 9.2 × 10^18).
pub const MAX_DURATION_MS: i64 = MAX_TIME_MS - MIN_TIME_MS;

/// The most points per series a range query may produce, as Prometheus' API.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Checks one time (ms since the epoch); `what` names it in the error.
pub fn check_time(what: &str, ms: i64) -> Result<i64> {
    if (MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(QueryError::bad_data(format!(
            "{what} {ms} ms since the epoch is outside the supported times, \
             0000-01-01T00:00:00Z ({MIN_TIME_MS}) to 9999-12-31T23:59:59.999Z ({MAX_TIME_MS})"
        )))
    }
}

/// Validated times: `start <= end`, both within [`MIN_TIME_MS`]..=[`MAX_TIME_MS`], and a
/// step > 0 that gives at most [`MAX_POINTS_PER_SERIES`] + 1 evaluation points (for an
/// instant or a plain span the step is 1 and only one point is evaluated: see
/// [`TimeRange::points`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    stepped: bool,
}

impl TimeRange {
    /// One evaluation time (an instant query's `time`).
    pub fn instant(t_ms: i64) -> Result<TimeRange> {
        check_time("time", t_ms)?;
        Ok(TimeRange {
            start_ms: t_ms,
            end_ms: t_ms,
            step_ms: 1,
            stepped: false,
        })
    }

    /// A span `[start, end]` without steps (series, labels, points and costs reads).
    pub fn span(start_ms: i64, end_ms: i64) -> Result<TimeRange> {
        check_time("start", start_ms)?;
        check_time("end", end_ms)?;
        if end_ms < start_ms {
            return Err(QueryError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        Ok(TimeRange {
            start_ms,
            end_ms,
            step_ms: 1,
            stepped: false,
        })
    }

    /// The steps `start, start + step, ..., <= end` of a range query, under Prometheus'
    /// rule: `(end - start) / step` at most [`MAX_POINTS_PER_SERIES`]. The messages are
    /// Prometheus' own (clients match on them).
    pub fn steps(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<TimeRange> {
        let span = Self::span(start_ms, end_ms)?;
        if step_ms <= 0 {
            return Err(QueryError::bad_data(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        // Both times are bounded, so the difference cannot overflow; checked anyway, as
        // the rule for every outside number.
        let points = end_ms
            .checked_sub(start_ms)
            .map(|d| d / step_ms)
            .ok_or_else(|| QueryError::bad_data("the time range is too long"))?;
        if points > MAX_POINTS_PER_SERIES {
            return Err(QueryError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        Ok(TimeRange {
            step_ms,
            stepped: true,
            ..span
        })
    }

    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// The step of a range query; 1 for an instant or a span.
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// How many times a query is evaluated over this range: 1 for an instant or a span,
    /// at most [`MAX_POINTS_PER_SERIES`] + 1 for steps.
    pub fn points(&self) -> usize {
        if self.stepped {
            ((self.end_ms - self.start_ms) / self.step_ms) as usize + 1
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_spans_are_bounded() {
        assert_eq!(TimeRange::instant(0).unwrap().points(), 1);
        let err = TimeRange::instant(MAX_TIME_MS + 1).unwrap_err();
        assert_eq!(
            err.message,
            "time 253402300800000 ms since the epoch is outside the supported times, \
             0000-01-01T00:00:00Z (-62167219200000) to 9999-12-31T23:59:59.999Z (253402300799999)"
        );
        assert_eq!(err.error_type(), "bad_data");
        let err = TimeRange::span(i64::MIN, 0).unwrap_err();
        assert!(
            err.message.starts_with("start -9223372036854775808 ms"),
            "{}",
            err.message
        );
        assert_eq!(
            TimeRange::span(5, 4).unwrap_err().message,
            "end timestamp must not be before start time"
        );
        let s = TimeRange::span(MIN_TIME_MS, MAX_TIME_MS).unwrap();
        assert_eq!(
            (s.start_ms(), s.end_ms(), s.points()),
            (MIN_TIME_MS, MAX_TIME_MS, 1)
        );
    }

    #[test]
    fn steps_follow_prometheus_rules() {
        let r = TimeRange::steps(0, 60_000, 15_000).unwrap();
        assert_eq!((r.points(), r.step_ms()), (5, 15_000));
        assert_eq!(TimeRange::steps(7, 7, 1).unwrap().points(), 1);
        assert_eq!(
            TimeRange::steps(0, 10, 0).unwrap_err().message,
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        );
        assert!(TimeRange::steps(0, 10, -1).is_err());
        // 11,000 intervals are allowed, 11,001 are not.
        assert_eq!(TimeRange::steps(0, 11_000, 1).unwrap().points(), 11_001);
        assert_eq!(
            TimeRange::steps(0, 11_001, 1).unwrap_err().message,
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        );
        // The request that once aborted the server: far outside the supported times.
        let err =
            TimeRange::steps(-9_100_000_000_000_000_000, 9_100_000_000_000_000_000, 1).unwrap_err();
        assert!(err.message.starts_with("start "), "{}", err.message);
        // The widest span with the longest step.
        let r = TimeRange::steps(MIN_TIME_MS, MAX_TIME_MS, i64::MAX).unwrap();
        assert_eq!(r.points(), 1);
    }
}
