//! What is rated, defined as CloudKitty's `metrics.yml` defines a metric: the unit, how
//! the collected quantity is converted (`factor`, `offset`, then `mutate`), the attributes
//! points are grouped by and carry, and the name the rating rules know it by.

use crate::decimal::parse_decimal;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// CloudKitty's `mutate`, applied after `factor` and `offset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mutate {
    /// The quantity as converted.
    #[default]
    None,
    /// Rounded up to a whole number.
    Ceil,
    /// Rounded down to a whole number.
    Floor,
    /// 1 when the quantity is not 0, else 0 (e.g. "was this instance up").
    #[serde(rename = "NUMBOOL")]
    NumBool,
    /// 1 when the quantity is 0, else 0.
    #[serde(rename = "NOTNUMBOOL")]
    NotNumBool,
    /// The quantity looked up in `mutate_map`; 0 when it is not there.
    Map,
}

/// One rated service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDef {
    /// The metric (or resource kind) the usage comes from.
    pub metric: String,
    /// The name rating rules use for it; the metric's name when not set.
    pub alt_name: Option<String>,
    pub unit: String,
    pub factor: Ratio,
    pub offset: Decimal,
    pub mutate: Mutate,
    /// For `mutate = MAP`: converted quantity → the quantity to rate.
    pub mutate_map: BTreeMap<Decimal, Decimal>,
    /// Attributes points are grouped by (one point per distinct combination).
    pub groupby: Vec<String>,
    /// Attributes carried along (the first value seen in the group).
    pub metadata: Vec<String>,
    pub description: Option<String>,
    /// Where the server's rating job reads this service's usage. `None`: the service is
    /// priced only from usage given to it (quotes, the CloudKitty API).
    pub usage: Option<Usage>,
    /// FOCUS `ServiceCategory` of the rated cost lines (`Compute`, `Storage`, …); `Other`
    /// when not set.
    pub category: Option<String>,
}

/// Where the usage of a rated service comes from in the store (skymeter's counterpart of
/// CloudKitty's collector settings). Either way, usage is grouped per scope and period,
/// then by the service's `groupby` attributes, quantities summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Usage {
    /// The resources of an inventory kind (`compute.instance`, `storage.volume`): each one's
    /// hours of presence in the period, times a numeric attribute when given (a volume's
    /// `size_gib` makes GiB-hours).
    Resources {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attribute: Option<String>,
    },
    /// A metric's points in the period, combined per series (resource and labels).
    Metric {
        metric: String,
        #[serde(default)]
        aggregate: Aggregate,
    },
}

/// How a metric's points in a period make one quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    #[default]
    Avg,
    Sum,
    Max,
    Min,
    /// The latest point.
    Last,
    /// How many points there were.
    Count,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Avg => "avg",
            Aggregate::Sum => "sum",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Last => "last",
            Aggregate::Count => "count",
        }
    }
}

impl ServiceDef {
    pub fn new(metric: &str, unit: &str) -> ServiceDef {
        ServiceDef {
            metric: metric.to_string(),
            alt_name: None,
            unit: unit.to_string(),
            factor: Ratio::ONE,
            offset: Decimal::ZERO,
            mutate: Mutate::None,
            mutate_map: BTreeMap::new(),
            groupby: Vec::new(),
            metadata: Vec::new(),
            description: None,
            usage: None,
            category: None,
        }
    }

    /// The name the frame and the hashmap services know this service by.
    pub fn rated_name(&self) -> &str {
        self.alt_name.as_deref().unwrap_or(&self.metric)
    }

    /// CloudKitty's conversion: `qty × factor + offset`, then `mutate`. Saturates instead
    /// of failing on a quantity past 7.9e28 (no usage is that large).
    pub fn convert(&self, qty: Decimal) -> Decimal {
        let converted = self
            .factor
            .apply(qty)
            .and_then(|v| v.checked_add(self.offset))
            .unwrap_or(if qty.is_sign_negative() {
                Decimal::MIN
            } else {
                Decimal::MAX
            });
        match self.mutate {
            Mutate::None => converted,
            Mutate::Ceil => converted.ceil(),
            Mutate::Floor => converted.floor(),
            Mutate::NumBool => bool_qty(!converted.is_zero()),
            Mutate::NotNumBool => bool_qty(converted.is_zero()),
            Mutate::Map => self
                .mutate_map
                .get(&converted.normalize())
                .copied()
                .unwrap_or(Decimal::ZERO),
        }
    }
}

fn bool_qty(b: bool) -> Decimal {
    if b {
        Decimal::ONE
    } else {
        Decimal::ZERO
    }
}

/// A `factor`: a number or a fraction (`"1/1073741824"` turns bytes into GiB). Kept as a
/// fraction and applied as `qty × num ÷ den`, so that 2³¹ bytes make exactly 2 GiB where
/// multiplying by a rounded 1/2³⁰ would not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    pub num: Decimal,
    pub den: Decimal,
}

impl Ratio {
    pub const ONE: Ratio = Ratio {
        num: Decimal::ONE,
        den: Decimal::ONE,
    };

    pub fn whole(num: Decimal) -> Ratio {
        Ratio {
            num,
            den: Decimal::ONE,
        }
    }

    /// `qty × num ÷ den`; `None` on overflow.
    pub fn apply(&self, qty: Decimal) -> Option<Decimal> {
        let product = qty.checked_mul(self.num)?;
        if self.den == Decimal::ONE {
            Some(product)
        } else {
            product.checked_div(self.den)
        }
    }
}

/// A `factor` as CloudKitty accepts it: a number, or a fraction `"1/3600"`.
pub fn parse_factor(text: &str) -> Result<Ratio, String> {
    match text.split_once('/') {
        Some((num, den)) => {
            let num = parse_decimal(num.trim())?;
            let den = parse_decimal(den.trim())?;
            if den.is_zero() {
                return Err(format!("`{text}` divides by zero"));
            }
            Ok(Ratio { num, den })
        }
        None => parse_decimal(text).map(Ratio::whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    #[test]
    fn converts_with_factor_offset_then_mutates() {
        let mut s = ServiceDef::new("image.size", "MiB");
        s.factor = parse_factor("1/1048576").unwrap();
        assert_eq!(s.convert(d("2097152")), d("2"));
        s.factor = parse_factor("1/1073741824").unwrap();
        assert_eq!(s.convert(d("2147483648")), d("2"));
        s.factor = Ratio::ONE;
        s.offset = d("0.5");
        s.mutate = Mutate::Ceil;
        assert_eq!(s.convert(d("1.2")), d("2"));
        s.mutate = Mutate::Floor;
        assert_eq!(s.convert(d("1.2")), d("1"));
        s.offset = d("0");
        s.mutate = Mutate::NumBool;
        assert_eq!(s.convert(d("0.3")), d("1"));
        assert_eq!(s.convert(d("0")), d("0"));
        s.mutate = Mutate::NotNumBool;
        assert_eq!(s.convert(d("0.3")), d("0"));
        assert_eq!(s.convert(d("0")), d("1"));
        s.mutate = Mutate::Map;
        s.mutate_map.insert(d("1"), d("10"));
        s.mutate_map.insert(d("2"), d("25"));
        assert_eq!(s.convert(d("2.000")), d("25"));
        assert_eq!(s.convert(d("3")), d("0"));
    }

    #[test]
    fn fractions_and_bad_factors() {
        assert_eq!(parse_factor("1/4").unwrap().apply(d("1")), Some(d("0.25")));
        assert_eq!(parse_factor("2.5").unwrap(), Ratio::whole(d("2.5")));
        assert!(parse_factor("1/0").unwrap_err().contains("divides by zero"));
        assert!(parse_factor("one").is_err());
    }

    #[test]
    fn rated_name_is_alt_name_when_set() {
        let mut s = ServiceDef::new("cpu", "instance");
        assert_eq!(s.rated_name(), "cpu");
        s.alt_name = Some("instance".into());
        assert_eq!(s.rated_name(), "instance");
    }
}
