//! The columns of a FOCUS export, in file order, and how their values are written.

/// The data type of a column, as FOCUS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// FOCUS Decimal: a Parquet `DOUBLE`, a plain decimal number in CSV.
    Decimal,
    /// FOCUS String.
    String,
    /// FOCUS Date/Time: a Parquet UTC timestamp (microseconds), `YYYY-MM-DDTHH:MM:SSZ` in CSV.
    DateTime,
    /// FOCUS Key-Value Format: a JSON object, as a string.
    KeyValue,
}

/// How FOCUS 1.2 ranks a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Mandatory,
    Conditional,
    Recommended,
    /// skymeter's own (`x_` prefix).
    Custom,
}

/// One column of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether FOCUS lets the column be null at all (its "Allows nulls").
    pub nullable: bool,
    pub level: Level,
}

const fn col(name: &'static str, kind: Kind, nullable: bool, level: Level) -> Column {
    Column {
        name,
        kind,
        nullable,
        level,
    }
}

use Kind::{DateTime as T, Decimal as D, KeyValue as J, String as S};
use Level::{Conditional as C, Custom as X, Mandatory as M, Recommended as R};

/// The columns of an export, in their order: FOCUS's first (alphabetical), then
/// skymeter's. [`Row::cells`] lists a row's values in the same order.
pub const COLUMNS: &[Column] = &[
    col("BilledCost", D, false, M),
    col("BillingAccountId", S, false, M),
    col("BillingAccountName", S, true, M),
    col("BillingCurrency", S, false, M),
    col("BillingPeriodEnd", T, false, M),
    col("BillingPeriodStart", T, false, M),
    col("ChargeCategory", S, false, M),
    col("ChargeClass", S, true, M),
    col("ChargeDescription", S, true, M),
    col("ChargeFrequency", S, false, R),
    col("ChargePeriodEnd", T, false, M),
    col("ChargePeriodStart", T, false, M),
    col("ConsumedQuantity", D, true, C),
    col("ConsumedUnit", S, true, C),
    col("ContractedCost", D, false, M),
    col("ContractedUnitPrice", D, true, C),
    col("EffectiveCost", D, false, M),
    col("InvoiceIssuerName", S, false, M),
    col("ListCost", D, false, M),
    col("ListUnitPrice", D, true, C),
    col("PricingQuantity", D, true, M),
    col("PricingUnit", S, true, M),
    col("ProviderName", S, false, M),
    col("PublisherName", S, false, M),
    col("RegionId", S, true, C),
    col("ResourceId", S, true, C),
    col("ResourceType", S, true, C),
    col("ServiceCategory", S, false, M),
    col("ServiceName", S, false, M),
    col("SkuId", S, true, C),
    col("SubAccountId", S, true, C),
    col("Tags", J, true, C),
    col("x_source", S, false, X),
    col("x_price_date", S, true, X),
    col("x_focus_version", S, false, X),
];

/// The 21 columns FOCUS 1.2 makes mandatory.
pub const MANDATORY: [&str; 21] = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
];

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Num(f64),
    Str(&'a str),
    Time(chrono::DateTime<chrono::Utc>),
}

/// The FOCUS Date/Time text of `t` (`2026-11-01T00:00:00Z`; sub-second times keep their
/// fraction, which ISO 8601 allows).
pub fn datetime_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The FOCUS Numeric Format text of `v`: plain decimal notation (no exponent, no `+`),
/// always with a decimal point so that readers that guess types from CSV (pandas) read a
/// Decimal column as decimals. `None` for a value that is not finite (written as null).
pub fn decimal_text(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    // `-0` reads as "a sign for zero": write 0.
    let v = if v == 0.0 { 0.0 } else { v };
    let mut s = format!("{v}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    Some(s)
}
