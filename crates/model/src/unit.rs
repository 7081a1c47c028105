//! Units and statistics: closed sets, so that every point says exactly what it measures.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The unit of a point's value. A closed set keeps data from different sources comparable;
/// a plugin maps whatever its source reports onto one of these.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Unit {
    /// 0–100.
    #[serde(rename = "percent")]
    Percent,
    /// 0–1.
    #[serde(rename = "ratio")]
    Ratio,
    #[serde(rename = "bytes")]
    Bytes,
    #[serde(rename = "bytes/s")]
    BytesPerSecond,
    #[serde(rename = "bits/s")]
    BitsPerSecond,
    #[serde(rename = "count")]
    Count,
    #[serde(rename = "count/s")]
    CountPerSecond,
    #[serde(rename = "ms")]
    Milliseconds,
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "hz")]
    Hertz,
    #[serde(rename = "celsius")]
    Celsius,
    #[serde(rename = "watts")]
    Watts,
    #[serde(rename = "joules")]
    Joules,
    /// US dollars.
    #[serde(rename = "usd")]
    Usd,
    /// A dimensionless number that is not a count (a load average, a score).
    #[serde(rename = "none")]
    None,
}

impl Unit {
    pub const ALL: [Unit; 15] = [
        Unit::Percent,
        Unit::Ratio,
        Unit::Bytes,
        Unit::BytesPerSecond,
        Unit::BitsPerSecond,
        Unit::Count,
        Unit::CountPerSecond,
        Unit::Milliseconds,
        Unit::Seconds,
        Unit::Hertz,
        Unit::Celsius,
        Unit::Watts,
        Unit::Joules,
        Unit::Usd,
        Unit::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Percent => "percent",
            Unit::Ratio => "ratio",
            Unit::Bytes => "bytes",
            Unit::BytesPerSecond => "bytes/s",
            Unit::BitsPerSecond => "bits/s",
            Unit::Count => "count",
            Unit::CountPerSecond => "count/s",
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::Hertz => "hz",
            Unit::Celsius => "celsius",
            Unit::Watts => "watts",
            Unit::Joules => "joules",
            Unit::Usd => "usd",
            Unit::None => "none",
        }
    }

    /// The unit of this quantity's rate of change per second, where one exists
    /// (a counter of bytes becomes bytes/s).
    pub fn per_second(self) -> Option<Unit> {
        match self {
            Unit::Bytes => Some(Unit::BytesPerSecond),
            Unit::Count | Unit::None => Some(Unit::CountPerSecond),
            // seconds per second: the fraction of time spent.
            Unit::Seconds => Some(Unit::Ratio),
            Unit::Joules => Some(Unit::Watts),
            _ => None,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a unit or stat name that is not in the closed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub allowed: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} `{}`; use one of: {}",
            self.what,
            self.given,
            self.allowed.join(", ")
        )
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for Unit {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Unit::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "unit",
                given: s.to_string(),
                allowed: Unit::ALL.iter().map(|u| u.as_str()).collect(),
            })
    }
}

/// How a point's value summarises the samples of its period.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Avg,
    Max,
    Min,
    Sum,
    Count,
    /// The value observed at `ts` (a gauge read once).
    Last,
    P50,
    P95,
    P99,
}

impl Stat {
    pub const ALL: [Stat; 9] = [
        Stat::Avg,
        Stat::Max,
        Stat::Min,
        Stat::Sum,
        Stat::Count,
        Stat::Last,
        Stat::P50,
        Stat::P95,
        Stat::P99,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Avg => "avg",
            Stat::Max => "max",
            Stat::Min => "min",
            Stat::Sum => "sum",
            Stat::Count => "count",
            Stat::Last => "last",
            Stat::P50 => "p50",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stat {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stat::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "stat",
                given: s.to_string(),
                allowed: Stat::ALL.iter().map(|u| u.as_str()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_round_trip_through_serde_and_from_str() {
        for unit in Unit::ALL {
            let json = serde_json::to_string(&unit).unwrap();
            assert_eq!(json, format!("\"{}\"", unit.as_str()));
            assert_eq!(unit.as_str().parse::<Unit>().unwrap(), unit);
        }
        for stat in Stat::ALL {
            let json = serde_json::to_string(&stat).unwrap();
            assert_eq!(json, format!("\"{}\"", stat.as_str()));
        }
        let err = "furlongs".parse::<Unit>().unwrap_err().to_string();
        assert!(err.contains("furlongs") && err.contains("bytes/s"), "{err}");
    }
}
