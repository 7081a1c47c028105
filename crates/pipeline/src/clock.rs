//! The runner's clock: the system clock, or — for tests only — a clock that runs faster.
//!
//! Cloud collectors work in whole minutes (CloudWatch periods are multiples of 60 s), so a
//! test of "the agent was down for three windows" would take many minutes on the real
//! clock. `SKYMETER_TEST_CLOCK=<virtual>@<real>x<speed>` (two RFC 3339 instants and a
//! factor, e.g. `2026-12-06T10:00:00Z@2026-12-06T18:30:00Z x60` without the space) makes
//! the runner believe that at real time `<real>` it was `<virtual>`, and that its time runs
//! `<speed>` times faster than the real one. Both runs of an agent given the same value
//! agree on the time, so downtime between them counts `<speed>` times over.
//!
//! Only the runner's scheduling (window boundaries, waits, the window marks) uses it;
//! collectors keep reading the system clock. It is not for production: the agent logs a
//! warning when it is set.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The environment variable of the test clock.
pub const TEST_CLOCK_ENV: &str = "SKYMETER_TEST_CLOCK";

/// Reads the time for the runner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    scaled: Option<Scaled>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Scaled {
    virtual_anchor: DateTime<Utc>,
    real_anchor: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Clock {
        Clock { scaled: None }
    }

    /// The clock `SKYMETER_TEST_CLOCK` describes, else the system clock. A value that does
    /// not parse is an error that says the expected form.
    pub fn from_env() -> Result<Clock, String> {
        match std::env::var(TEST_CLOCK_ENV) {
            Ok(v) if !v.trim().is_empty() => Clock::parse(v.trim()),
            _ => Ok(Clock::system()),
        }
    }

    /// Parses `<virtual>@<real>x<speed>`.
    pub fn parse(spec: &str) -> Result<Clock, String> {
        let bad = |why: &str| {
            format!(
                "{TEST_CLOCK_ENV}=`{spec}`: {why}; write <virtual time>@<real time>x<speed>, \
                 e.g. 2026-12-06T10:00:00Z@2026-12-06T18:30:00Zx60 (or unset it)"
            )
        };
        let (virt, rest) = spec.split_once('@').ok_or_else(|| bad("no `@`"))?;
        let (real, speed) = rest.rsplit_once('x').ok_or_else(|| bad("no `x<speed>`"))?;
        let parse_time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad(&format!("`{s}` is not an RFC 3339 time ({e})")))
        };
        let speed: f64 = speed
            .parse()
            .map_err(|_| bad(&format!("`{speed}` is not a number")))?;
        if !(speed.is_finite() && (0.001..=10_000.0).contains(&speed)) {
            return Err(bad("the speed must be between 0.001 and 10000"));
        }
        Ok(Clock {
            scaled: Some(Scaled {
                virtual_anchor: parse_time(virt)?,
                real_anchor: parse_time(real)?,
                speed,
            }),
        })
    }

    /// Whether this is the test clock.
    pub fn is_test_clock(&self) -> bool {
        self.scaled.is_some()
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        let real = Utc::now();
        match self.scaled {
            None => real,
            Some(s) => {
                let elapsed_ms = (real - s.real_anchor).num_milliseconds() as f64 * s.speed;
                s.virtual_anchor + chrono::Duration::milliseconds(elapsed_ms as i64)
            }
        }
    }

    /// How long to really wait for `d` of this clock's time to pass.
    pub fn real_wait(&self, d: Duration) -> Duration {
        match self.scaled {
            None => d,
            Some(s) => d.div_f64(s.speed),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_runs_faster_from_its_anchor() {
        let real_anchor = Utc::now() - chrono::Duration::seconds(10);
        let spec = format!(
            "2026-01-01T00:00:00Z@{}x60",
            real_anchor.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let c = Clock::parse(&spec).unwrap();
        let now = c.now();
        // 10 real seconds at 60× are 10 minutes (and a little for the test's own time).
        let since = now - "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert!(
            (600..=660).contains(&since.num_seconds()),
            "{since:?} after the anchor"
        );
        assert_eq!(c.real_wait(Duration::from_secs(60)), Duration::from_secs(1));
        assert!(c.is_test_clock());
    }

    #[test]
    fn bad_specs_say_the_expected_form() {
        for spec in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z@2026-01-01T00:00:00Z",
            "yesterday@2026-01-01T00:00:00Zx60",
            "2026-01-01T00:00:00Z@2026-01-01T00:00:00Zx0",
            "2026-01-01T00:00:00Z@2026-01-01T00:00:00Zxfast",
        ] {
            let e = Clock::parse(spec).unwrap_err();
            assert!(e.contains("SKYMETER_TEST_CLOCK"), "{e}");
            assert!(e.contains("<virtual time>@<real time>x<speed>"), "{e}");
        }
        assert_eq!(
            Clock::system().real_wait(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
