//! The data a rating module reads and prices: CloudKitty's dataframe. One frame holds the
//! usage of one scope over one rating period, per service (the metric's name, or its
//! `alt_name`), as a list of points; each point has a volume (unit, quantity), a price, and
//! the attributes it was grouped by (`groupby`) or carries (`metadata`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::collections::BTreeMap;

/// Attribute name → value. CloudKitty allows any JSON value; skymeter's labels and
/// attributes are strings, and the hashmap module compares values as strings anyway.
/// Small strings are stored inline (`SmolStr`), so that matching a point's attributes reads
/// one map node, not a heap block per key and value: rating is bound by memory reads.
pub type Attrs = BTreeMap<SmolStr, SmolStr>;

/// How much of a service was used, in which unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub unit: String,
    pub qty: Decimal,
}

/// The price the modules have put on a point so far (modules add to it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub price: Decimal,
}

/// One rated (or not yet rated) usage item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPoint {
    pub vol: Volume,
    #[serde(default)]
    pub rating: Rating,
    #[serde(default)]
    pub groupby: Attrs,
    #[serde(default)]
    pub metadata: Attrs,
}

impl DataPoint {
    pub fn new(unit: &str, qty: Decimal) -> DataPoint {
        DataPoint {
            vol: Volume {
                unit: unit.to_string(),
                qty,
            },
            rating: Rating::default(),
            groupby: Attrs::new(),
            metadata: Attrs::new(),
        }
    }

    pub fn with_groupby(mut self, key: &str, value: &str) -> DataPoint {
        self.groupby.insert(key.into(), value.into());
        self
    }

    pub fn with_metadata(mut self, key: &str, value: &str) -> DataPoint {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// CloudKitty's `desc`: metadata and groupby in one view, groupby winning where both
    /// have a key. What hashmap fields match against.
    pub fn desc(&self, key: &str) -> Option<&str> {
        self.groupby
            .get(key)
            .or_else(|| self.metadata.get(key))
            .map(SmolStr::as_str)
    }
}

/// The usage of one rating period, by service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFrame {
    pub period: Period,
    /// Service name → its points. Sorted by name, as CloudKitty builds its frames.
    pub usage: BTreeMap<String, Vec<DataPoint>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl DataFrame {
    pub fn new(begin: DateTime<Utc>, end: DateTime<Utc>) -> DataFrame {
        DataFrame {
            period: Period { begin, end },
            usage: BTreeMap::new(),
        }
    }

    pub fn add_point(&mut self, service: &str, point: DataPoint) {
        self.usage
            .entry(service.to_string())
            .or_default()
            .push(point);
    }

    /// Every point with its service, service by service.
    pub fn points(&self) -> impl Iterator<Item = (&str, &DataPoint)> {
        self.usage
            .iter()
            .flat_map(|(s, ps)| ps.iter().map(move |p| (s.as_str(), p)))
    }

    pub fn len(&self) -> usize {
        self.usage.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sum of every point's price.
    pub fn total(&self) -> Decimal {
        self.points().map(|(_, p)| p.rating.price).sum()
    }
}
