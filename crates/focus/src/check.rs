//! A checker of FOCUS 1.2's column rules over an export, CSV or Parquet: the rules the
//! FinOps Foundation's validator of FOCUS 1.0 cannot check (1.2's allowed values,
//! nullability that depends on other columns, the 1.2 columns) besides the basic ones
//! (presence, types, formats). Written from the specification's text, independently of the
//! mapping ([`crate::map`]): its tables are its own, so a mistake in the exporter's is
//! caught rather than repeated.
//!
//! Each violation names the row (from 1, data rows only), the column and the rule.

use arrow_array::{Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, TimeUnit};
use std::collections::HashMap;
use std::fmt;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The data row, from 1; `None` for a rule about the whole file (a missing column).
    pub row: Option<usize>,
    pub column: String,
    pub rule: String,
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: usize,
    /// The first [`Report::KEEP`] violations.
    pub violations: Vec<Violation>,
    /// All of them.
    pub count: usize,
}

impl Report {
    pub const KEEP: usize = 50;

    pub fn ok(&self) -> bool {
        self.count == 0
    }

    fn add(&mut self, row: Option<usize>, column: &str, rule: impl Into<String>) {
        self.count += 1;
        if self.violations.len() < Self::KEEP {
            self.violations.push(Violation {
                row,
                column: column.to_string(),
                rule: rule.into(),
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} rows, {} violations", self.rows, self.count)?;
        for v in &self.violations {
            match v.row {
                Some(r) => writeln!(f, "  row {r}: {}: {}", v.column, v.rule)?,
                None => writeln!(f, "  file: {}: {}", v.column, v.rule)?,
            }
        }
        Ok(())
    }
}

/// FOCUS 1.2's mandatory columns (21).
const MANDATORY: [&str; 21] = [
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

/// Columns whose "Allows nulls" is False in 1.2 (checked when present).
const NOT_NULL: [&str; 17] = [
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
];

const DECIMALS: [&str; 9] = [
    "BilledCost",
    "ConsumedQuantity",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "ListCost",
    "ListUnitPrice",
    "PricingQuantity",
    "CommitmentDiscountQuantity",
];

const DATETIMES: [&str; 4] = [
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargePeriodEnd",
    "ChargePeriodStart",
];

/// Allowed values of FOCUS 1.2, by column.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "ChargeCategory",
        &["Usage", "Purchase", "Tax", "Credit", "Adjustment"],
    ),
    ("ChargeClass", &["Correction"]),
    ("ChargeFrequency", &["One-Time", "Recurring", "Usage-Based"]),
    (
        "ServiceCategory",
        &[
            "AI and Machine Learning",
            "Analytics",
            "Business Applications",
            "Compute",
            "Databases",
            "Developer Tools",
            "Multicloud",
            "Identity",
            "Integration",
            "Internet of Things",
            "Management and Governance",
            "Media",
            "Migration",
            "Mobile",
            "Networking",
            "Security",
            "Storage",
            "Web",
            "Other",
        ],
    ),
    (
        "PricingCategory",
        &["Standard", "Dynamic", "Committed", "Other"],
    ),
    ("CommitmentDiscountCategory", &["Spend", "Usage"]),
    ("CommitmentDiscountStatus", &["Used", "Unused"]),
    ("CapacityReservationStatus", &["Used", "Unused"]),
    ("x_source", &["billed", "estimated", "rated"]),
    ("x_focus_version", &["1.2"]),
];

/// Columns FOCUS 1.2 defines (besides these, a column must carry the `x_` prefix).
const FOCUS_COLUMNS: &[&str] = &[
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
];

/// Columns that, when present, must be null exactly when another is (1.2's "MUST be null
/// when X is null / MUST NOT be null when X is not null").
const NULL_TOGETHER: &[(&str, &str)] = &[
    ("PricingUnit", "PricingQuantity"),
    ("ConsumedUnit", "ConsumedQuantity"),
    ("ResourceType", "ResourceId"),
    ("RegionName", "RegionId"),
    ("SubAccountName", "SubAccountId"),
    ("SubAccountType", "SubAccountId"),
    ("BillingAccountType", "BillingAccountId"),
];

/// Columns that 1.2 wants null on Tax lines and not null on Usage and Purchase lines that
/// are not corrections.
const PRICED: [&str; 6] = [
    "PricingQuantity",
    "SkuId",
    "SkuPriceId",
    "PricingCategory",
    "ListUnitPrice",
    "ContractedUnitPrice",
];

/// Checks a CSV export (a header line, then rows; an empty field is null).
pub fn check_csv(input: impl std::io::Read) -> Result<Report, String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let header: Vec<String> = r
        .headers()
        .map_err(|e| format!("reading the CSV header: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut checker = Checker::new(header);
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("reading CSV row {}: {e}", i + 1))?;
        let row: Vec<Option<&str>> = rec.iter().map(|f| (!f.is_empty()).then_some(f)).collect();
        checker.row(&row, true);
    }
    Ok(checker.report)
}

/// Checks a Parquet export: the column types (Decimal → floating point, String → UTF-8,
/// Date/Time → a UTC timestamp), then the same rules as CSV over the values (an empty
/// string is a violation here: FOCUS says null).
pub fn check_parquet<R: parquet::file::reader::ChunkReader + 'static>(
    input: R,
) -> Result<Report, String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(input)
        .map_err(|e| format!("opening the Parquet file: {e}"))?
        .build()
        .map_err(|e| format!("reading the Parquet file: {e}"))?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut checker = Checker::new(header.clone());
    for f in schema.fields() {
        let name = f.name().as_str();
        let ok = if DECIMALS.contains(&name) {
            matches!(f.data_type(), DataType::Float64 | DataType::Decimal128(..))
        } else if DATETIMES.contains(&name) {
            matches!(f.data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC" || tz.as_ref() == "+00:00")
        } else {
            matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8)
        };
        if !ok {
            checker
                .report
                .add(None, name, format!("wrong type {}", f.data_type()));
        }
    }
    for batch in reader {
        let batch = batch.map_err(|e| format!("reading a Parquet row group: {e}"))?;
        let cols = texts(&batch)?;
        for i in 0..batch.num_rows() {
            let row: Vec<Option<&str>> = cols.iter().map(|c| c[i].as_deref()).collect();
            checker.row(&row, false);
        }
    }
    Ok(checker.report)
}

/// A batch's columns as the text CSV would carry.
fn texts(batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut out = Vec::new();
    for (f, a) in batch.schema().fields().iter().zip(batch.columns()) {
        let n = a.len();
        let col: Vec<Option<String>> = match f.data_type() {
            DataType::Float64 => {
                let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
                (0..n)
                    .map(|i| a.is_valid(i).then(|| format!("{}", a.value(i))))
                    .collect()
            }
            DataType::Utf8 => {
                let a = a.as_any().downcast_ref::<StringArray>().unwrap();
                (0..n)
                    .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                    .collect()
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                let a = a
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .unwrap();
                (0..n)
                    .map(|i| {
                        a.is_valid(i).then(|| {
                            chrono::DateTime::from_timestamp_micros(a.value(i))
                                .map(crate::columns::datetime_text)
                                .unwrap_or_else(|| "out of range".into())
                        })
                    })
                    .collect()
            }
            other => return Err(format!("column {}: type {other} not read", f.name())),
        };
        out.push(col);
    }
    Ok(out)
}

struct Checker {
    header: Vec<String>,
    at: HashMap<String, usize>,
    report: Report,
}

fn is_decimal(s: &str) -> bool {
    // FOCUS Numeric Format: an integer, a decimal, or E notation; a `-` only for negatives.
    let (m, e) = match s.split_once(['E', 'e']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let m = m.strip_prefix('-').unwrap_or(m);
    let mantissa = match m.split_once('.') {
        Some((i, f)) => digits(i) && digits(f),
        None => digits(m),
    };
    let exponent = e.is_none_or(|e| digits(e.strip_prefix('-').unwrap_or(e)));
    mantissa && exponent
}

fn is_datetime(s: &str) -> bool {
    // `YYYY-MM-DDTHH:mm:ssZ` (a fraction of a second allowed), and a real time.
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

impl Checker {
    fn new(header: Vec<String>) -> Checker {
        let mut report = Report::default();
        let mut at = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if at.insert(h.clone(), i).is_some() {
                report.add(None, h, "column appears twice");
            }
        }
        for m in MANDATORY {
            if !at.contains_key(m) {
                report.add(None, m, "mandatory column missing");
            }
        }
        let mut custom_seen = false;
        for h in &header {
            let focus = FOCUS_COLUMNS.contains(&h.as_str());
            if !focus && !h.starts_with("x_") {
                report.add(
                    None,
                    h,
                    "not a FOCUS 1.2 column, and custom columns need a prefix (x_)",
                );
            }
            if focus && custom_seen {
                report.add(None, h, "FOCUS columns come before custom columns");
            }
            custom_seen |= !focus;
        }
        Checker { header, at, report }
    }

    fn row(&mut self, row: &[Option<&str>], from_csv: bool) {
        self.report.rows += 1;
        let n = Some(self.report.rows);
        if row.len() != self.header.len() {
            self.report.add(
                n,
                "*",
                "row has a different number of fields than the header",
            );
            return;
        }
        let get = |c: &str| -> Option<&str> { self.at.get(c).and_then(|i| row[*i]) };
        let has = |c: &str| self.at.contains_key(c);
        let mut out: Vec<(String, String)> = Vec::new();
        let mut bad = |c: &str, rule: String| out.push((c.to_string(), rule));

        for (i, v) in row.iter().enumerate() {
            if !from_csv && *v == Some("") {
                bad(&self.header[i], "empty string (FOCUS: use null)".into());
            }
        }
        for c in NOT_NULL {
            if has(c) && get(c).is_none() {
                bad(c, "must not be null".into());
            }
        }
        for c in DECIMALS {
            if let Some(v) = get(c) {
                if !is_decimal(v) {
                    bad(c, format!("`{v}` is not in FOCUS Numeric Format"));
                }
            }
        }
        for c in DATETIMES {
            if let Some(v) = get(c) {
                if !is_datetime(v) {
                    bad(c, format!("`{v}` is not a UTC ISO 8601 date/time"));
                }
            }
        }
        for (c, allowed) in ALLOWED {
            if let Some(v) = get(c) {
                if !allowed.contains(&v) {
                    bad(c, format!("`{v}` is not an allowed value"));
                }
            }
        }
        if let Some(v) = get("BillingCurrency") {
            if !(v.len() == 3 && v.bytes().all(|b| b.is_ascii_uppercase())) {
                bad("BillingCurrency", format!("`{v}` is not an ISO 4217 code"));
            }
        }
        if let Some(v) = get("Tags") {
            match serde_json::from_str::<serde_json::Value>(v) {
                Ok(serde_json::Value::Object(m)) => {
                    if m.values().any(|x| x.is_object() || x.is_array()) {
                        bad("Tags", "a tag value is an object or an array".into());
                    }
                }
                _ => bad("Tags", "not a JSON object".into()),
            }
        }

        let category = get("ChargeCategory").unwrap_or("");
        let correction = get("ChargeClass") == Some("Correction");
        let priced = matches!(category, "Usage" | "Purchase") && !correction;
        if category == "Purchase" && get("ChargeFrequency") == Some("Usage-Based") {
            bad(
                "ChargeFrequency",
                "must not be Usage-Based on a Purchase".into(),
            );
        }
        for c in PRICED {
            if !has(c) {
                continue;
            }
            if category == "Tax" && get(c).is_some() {
                bad(c, "must be null when ChargeCategory is Tax".into());
            }
            if priced && get(c).is_none() {
                bad(
                    c,
                    "must not be null on a Usage or Purchase charge that is not a correction"
                        .into(),
                );
            }
        }
        if has("ConsumedQuantity") {
            if category != "Usage" && get("ConsumedQuantity").is_some() {
                bad(
                    "ConsumedQuantity",
                    "must be null unless ChargeCategory is Usage".into(),
                );
            }
            let unused = get("CommitmentDiscountStatus") == Some("Unused");
            if category == "Usage" && !correction && !unused && get("ConsumedQuantity").is_none() {
                bad(
                    "ConsumedQuantity",
                    "must not be null on a Usage charge".into(),
                );
            }
        }
        for (a, b) in NULL_TOGETHER {
            if has(a) && has(b) && get(a).is_some() != get(b).is_some() {
                bad(a, format!("must be null exactly when {b} is null"));
            }
        }
        let num = |c: &str| get(c).and_then(|v| v.parse::<f64>().ok());
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        if category == "Credit" {
            for (c, price) in [
                ("ListCost", "ListUnitPrice"),
                ("ContractedCost", "ContractedUnitPrice"),
            ] {
                if get(price).is_none() {
                    if let (Some(v), Some(billed)) = (num(c), num("BilledCost")) {
                        if !close(v, billed) {
                            bad(c, "must match BilledCost on a Credit".into());
                        }
                    }
                }
            }
        }
        for (price, cost) in [
            ("ListUnitPrice", "ListCost"),
            ("ContractedUnitPrice", "ContractedCost"),
        ] {
            if let Some(p) = num(price) {
                if p < 0.0 {
                    bad(price, "must not be negative".into());
                }
                if let (Some(q), Some(c)) = (num("PricingQuantity"), num(cost)) {
                    if !correction && !close(p * q, c) {
                        bad(price, format!("× PricingQuantity must match {cost}"));
                    }
                }
            }
        }
        let time = |c: &str| get(c).and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok());
        if let (Some(s), Some(e)) = (time("BillingPeriodStart"), time("BillingPeriodEnd")) {
            if s >= e {
                bad(
                    "BillingPeriodEnd",
                    "must be after BillingPeriodStart".into(),
                );
            }
        }
        if let (Some(s), Some(e)) = (time("ChargePeriodStart"), time("ChargePeriodEnd")) {
            if s > e {
                bad(
                    "ChargePeriodEnd",
                    "must not be before ChargePeriodStart".into(),
                );
            }
        }
        for (c, rule) in out {
            self.report.add(n, &c, rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_datetime_formats() {
        for ok in ["0", "1.5", "-2.25", "1E3", "1.5E-7"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", "+1", "1/2", "$1", "1,000", "1.", ".5", "NaN", "inf"] {
            assert!(!is_decimal(bad), "{bad}");
        }
        assert!(is_datetime("2026-11-01T00:00:00Z"));
        assert!(is_datetime("2026-11-01T00:00:00.5Z"));
        assert!(!is_datetime("2026-11-01 00:00:00Z"));
        assert!(!is_datetime("2026-11-01T00:00:00+01:00"));
        assert!(!is_datetime("2026-13-01T00:00:00Z"));
    }

    #[test]
    fn a_bad_file_is_caught_rule_by_rule() {
        let csv = "BilledCost,ChargeCategory,ChargeClass,ServiceCategory,PricingQuantity,PricingUnit,SkuId,Custom\n\
                   1.0,Tax,Fixed,Computing,1.0,,x,\n";
        let r = check_csv(csv.as_bytes()).unwrap();
        let rules: Vec<String> = r
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.column, v.rule))
            .collect();
        let has = |s: &str| rules.iter().any(|r| r.contains(s));
        assert!(has("BillingAccountId: mandatory column missing"), "{r}");
        assert!(has("Custom: not a FOCUS 1.2 column"), "{r}");
        assert!(has("ChargeClass: `Fixed` is not an allowed value"), "{r}");
        assert!(
            has("ServiceCategory: `Computing` is not an allowed value"),
            "{r}"
        );
        assert!(
            has("PricingQuantity: must be null when ChargeCategory is Tax"),
            "{r}"
        );
        assert!(has("SkuId: must be null when ChargeCategory is Tax"), "{r}");
        assert!(
            has("PricingUnit: must be null exactly when PricingQuantity is null"),
            "{r}"
        );
    }

    #[test]
    fn unit_price_rules() {
        let head = "ChargeCategory,ChargeClass,BilledCost,ListCost,ContractedCost,PricingQuantity,ListUnitPrice,ContractedUnitPrice\n";
        let rules = |rows: &str| -> Vec<String> {
            let r = check_csv(format!("{head}{rows}").as_bytes()).unwrap();
            r.violations
                .iter()
                .filter(|v| v.column != "*" && v.row.is_some())
                .map(|v| format!("{} {}: {}", v.row.unwrap(), v.column, v.rule))
                .collect()
        };
        // Consistent rows: prices × quantity make the costs; a correction may differ; a
        // Credit without unit prices matches BilledCost; Tax and Adjustment go without.
        let ok = "Usage,,6.0,6.0,4.5,3.0,2.0,1.5\n\
                  Purchase,,1.0,1.0,1.0,1.0,1.0,1.0\n\
                  Usage,Correction,5.0,5.0,5.0,1.0,2.0,\n\
                  Credit,,-1.0,-1.0,-1.0,,,\n\
                  Tax,,0.5,0.5,0.5,,,\n\
                  Adjustment,,1.0,1.0,1.0,,,\n";
        assert_eq!(rules(ok), Vec::<String>::new());
        let bad = rules(
            "Usage,,6.0,6.0,6.0,3.0,,2.0\n\
             Tax,,0.5,0.5,0.5,,0.5,\n\
             Usage,,6.0,6.0,6.0,3.0,2.5,2.0\n\
             Usage,,-6.0,-6.0,-6.0,3.0,-2.0,-2.0\n",
        );
        let has = |s: &str| bad.iter().any(|r| r == s);
        assert!(
            has("1 ListUnitPrice: must not be null on a Usage or Purchase charge that is not a correction"),
            "{bad:?}"
        );
        assert!(
            has("2 ListUnitPrice: must be null when ChargeCategory is Tax"),
            "{bad:?}"
        );
        assert!(
            has("3 ListUnitPrice: × PricingQuantity must match ListCost"),
            "{bad:?}"
        );
        assert!(
            has("4 ContractedUnitPrice: must not be negative"),
            "{bad:?}"
        );
        assert!(
            !bad.iter().any(|r| r.starts_with("3 ContractedUnitPrice")),
            "{bad:?}"
        );
    }
}
