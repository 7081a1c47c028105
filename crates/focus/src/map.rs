//! A stored cost line → one FOCUS 1.2 row. Every rule that fills or corrects a column is
//! written here beside its code, and in `docs/focus.md`.

use crate::columns::Cell;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use skymeter_model::{ChargeCategory, ChargeClass, ChargeFrequency, Cost, FOCUS_VERSION};

/// FOCUS 1.2's allowed ServiceCategory values.
pub const SERVICE_CATEGORIES: [&str; 19] = [
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
];

/// The FOCUS ServiceCategory of a line's `ServiceCategory`: an allowed value in any case
/// (`compute` → `Compute`), a few common near-names (`Database` → `Databases`, `Network` →
/// `Networking`, `AI`/`Machine Learning` → `AI and Machine Learning`, `Management` /
/// `Monitoring` → `Management and Governance`, `IoT` → `Internet of Things`), and `Other`
/// for anything else or nothing, as FOCUS asks of a service without a suitable category.
pub fn focus_service_category(value: Option<&str>) -> &'static str {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return "Other";
    };
    if let Some(c) = SERVICE_CATEGORIES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(v))
    {
        return c;
    }
    match v.to_ascii_lowercase().as_str() {
        "database" | "db" => "Databases",
        "network" | "networks" | "cdn" => "Networking",
        "ai" | "ml" | "machine learning" | "ai/ml" | "gpu" => "AI and Machine Learning",
        "management" | "monitoring" | "governance" | "observability" => "Management and Governance",
        "iot" => "Internet of Things",
        "identity and access management" | "iam" => "Identity",
        _ => "Other",
    }
}

/// One FOCUS row, owned. [`Row::cells`] gives its values in [`crate::columns::COLUMNS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub billed_cost: f64,
    pub billing_account_id: String,
    pub billing_account_name: Option<String>,
    pub billing_currency: String,
    pub billing_period_end: DateTime<Utc>,
    pub billing_period_start: DateTime<Utc>,
    pub charge_category: &'static str,
    pub charge_class: Option<&'static str>,
    pub charge_description: String,
    pub charge_frequency: &'static str,
    pub charge_period_end: DateTime<Utc>,
    pub charge_period_start: DateTime<Utc>,
    pub consumed_quantity: Option<f64>,
    pub consumed_unit: Option<String>,
    pub contracted_cost: f64,
    pub contracted_unit_price: Option<f64>,
    pub effective_cost: f64,
    pub invoice_issuer_name: String,
    pub list_cost: f64,
    pub list_unit_price: Option<f64>,
    pub pricing_quantity: Option<f64>,
    pub pricing_unit: Option<String>,
    pub provider_name: String,
    pub publisher_name: String,
    pub region_id: Option<String>,
    pub resource_id: Option<String>,
    pub resource_type: Option<String>,
    pub service_category: &'static str,
    pub service_name: String,
    pub sku_id: Option<String>,
    pub sub_account_id: Option<String>,
    /// A JSON object; `None` when the line has no tags.
    pub tags: Option<String>,
    pub x_source: &'static str,
    pub x_price_date: Option<String>,
    pub x_focus_version: String,
}

fn opt(s: &Option<String>) -> Cell<'_> {
    match s {
        Some(s) => Cell::Str(s),
        None => Cell::Null,
    }
}

fn num(v: Option<f64>) -> Cell<'static> {
    v.map_or(Cell::Null, Cell::Num)
}

impl Row {
    /// The row's values, in [`crate::columns::COLUMNS`] order.
    pub fn cells(&self) -> [Cell<'_>; 35] {
        [
            Cell::Num(self.billed_cost),
            Cell::Str(&self.billing_account_id),
            opt(&self.billing_account_name),
            Cell::Str(&self.billing_currency),
            Cell::Time(self.billing_period_end),
            Cell::Time(self.billing_period_start),
            Cell::Str(self.charge_category),
            self.charge_class.map_or(Cell::Null, Cell::Str),
            Cell::Str(&self.charge_description),
            Cell::Str(self.charge_frequency),
            Cell::Time(self.charge_period_end),
            Cell::Time(self.charge_period_start),
            num(self.consumed_quantity),
            opt(&self.consumed_unit),
            Cell::Num(self.contracted_cost),
            num(self.contracted_unit_price),
            Cell::Num(self.effective_cost),
            Cell::Str(&self.invoice_issuer_name),
            Cell::Num(self.list_cost),
            num(self.list_unit_price),
            num(self.pricing_quantity),
            opt(&self.pricing_unit),
            Cell::Str(&self.provider_name),
            Cell::Str(&self.publisher_name),
            opt(&self.region_id),
            opt(&self.resource_id),
            opt(&self.resource_type),
            Cell::Str(self.service_category),
            Cell::Str(&self.service_name),
            opt(&self.sku_id),
            opt(&self.sub_account_id),
            opt(&self.tags),
            Cell::Str(self.x_source),
            opt(&self.x_price_date),
            Cell::Str(&self.x_focus_version),
        ]
    }
}

/// The calendar month (UTC) holding `t`: `[first of the month, first of the next)`.
fn month_of(t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = |y: i32, m: u32| {
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .expect("the first of a month at midnight UTC exists")
    };
    let (y, m) = (t.year(), t.month());
    let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (first(y, m), first(next.0, next.1))
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The FOCUS row of a stored cost line. The rules, column by column (FOCUS's MUSTs that
/// decide them in brackets):
///
/// - **BilledCost, EffectiveCost, BillingCurrency, ChargePeriodStart/End, ChargeCategory,
///   ProviderName, ServiceName**: as stored (the record requires them).
/// - **ListCost** ← the line's; absent: BilledCost (a line priced at what was billed has
///   no known discount). **ContractedCost** ← the line's; absent: BilledCost. On a
///   `Credit` line both are BilledCost whatever the line says [a charge unrelated to other
///   charges MUST match BilledCost].
/// - **BillingAccountId** ← the line's; absent: SubAccountId; absent too: the provider's
///   slug (`aws`, `host`), one account for all the provider's lines [MUST NOT be null].
///   **BillingAccountName** ← the line's, else null [nullable].
/// - **BillingPeriodStart/End** ← the calendar month (UTC) of ChargePeriodStart.
/// - **ChargeClass** ← `Correction` when the line says so, else null.
/// - **ChargeDescription** ← the line's; absent: written from the service, SKU, resource,
///   region and source (`Amazon EC2 · SKU t3.micro · resource i-0abc · us-east-1
///   (estimated)`).
/// - **ChargeFrequency** ← the line's, except `Usage-Based` on a `Purchase` (→ `One-Time`)
///   [MUST NOT be Usage-Based when Purchase]; absent: `Usage-Based` for `Usage`, `One-Time`
///   for the other categories.
/// - **PricingQuantity/PricingUnit** ← the line's; absent: ConsumedQuantity/ConsumedUnit;
///   absent too on a `Usage` or `Purchase` line that is not a correction: `1` `Units` (the
///   line priced as one unit) [MUST NOT be null there]. Both null on `Tax` lines [MUST be
///   null] and together [PricingUnit null exactly when PricingQuantity is].
/// - **ListUnitPrice / ContractedUnitPrice** ← ListCost / PricingQuantity and
///   ContractedCost / PricingQuantity on a `Usage` or `Purchase` line that is not a
///   correction [MUST NOT be null there; unit price × PricingQuantity MUST match the cost];
///   null on every other line [MUST be null on Tax, MAY be null on the rest], and where no
///   non-negative quotient exists (a zero quantity, a negative cost) [non-negative].
/// - **ConsumedQuantity/ConsumedUnit** ← the line's, else the pricing quantity and unit, on
///   `Usage` lines only [MUST be null when not Usage, not null on Usage].
/// - **PublisherName, InvoiceIssuerName** ← the line's; absent: ProviderName.
/// - **ServiceCategory** ← [`focus_service_category`] of the line's (`Other` when none)
///   [one of the allowed values].
/// - **SkuId** ← the line's; absent on a `Usage` or `Purchase` line that is not a
///   correction: ServiceName (a service-level line: the service is what was sold) [MUST NOT
///   be null there]; null on `Tax` lines [MUST be null].
/// - **ResourceType** ← the line's; absent while ResourceId is set: ServiceName [not null
///   when ResourceId is not]; null when ResourceId is null [MUST be null then].
/// - **RegionId, ResourceId, SubAccountId** ← the line's (empty text → null).
/// - **Tags** ← the line's tags as a JSON object of strings; null when it has none.
/// - **x_source, x_price_date, x_focus_version** ← the line's.
pub fn map(c: &Cost) -> Row {
    let category = c.charge_category;
    let category_name = match category {
        ChargeCategory::Usage => "Usage",
        ChargeCategory::Purchase => "Purchase",
        ChargeCategory::Tax => "Tax",
        ChargeCategory::Credit => "Credit",
        ChargeCategory::Adjustment => "Adjustment",
    };
    let correction = matches!(c.charge_class, Some(ChargeClass::Correction));
    let priced =
        matches!(category, ChargeCategory::Usage | ChargeCategory::Purchase) && !correction;
    let is_tax = category == ChargeCategory::Tax;
    let is_usage = category == ChargeCategory::Usage;

    let sub_account_id = non_empty(&c.sub_account_id);
    let region_id = non_empty(&c.region_id);
    let resource_id = non_empty(&c.resource_id);
    let slug = skymeter_model::provider::slug(&c.provider_name);
    let billing_account_id = non_empty(&c.billing_account_id)
        .or_else(|| sub_account_id.clone())
        .unwrap_or_else(|| slug.clone());

    let (billing_period_start, billing_period_end) = month_of(c.charge_period_start);

    // Quantities: the line's own pricing pair, else its consumed pair (a pair only when both
    // halves are there), else one unit where FOCUS needs a quantity.
    let pair =
        |q: Option<f64>, u: &Option<String>| match (q.filter(|q| q.is_finite()), non_empty(u)) {
            (Some(q), Some(u)) => Some((q, u)),
            _ => None,
        };
    let own_pricing = pair(c.pricing_quantity, &c.pricing_unit);
    let own_consumed = pair(c.consumed_quantity, &c.consumed_unit);
    let pricing = if is_tax {
        None
    } else {
        own_pricing
            .clone()
            .or_else(|| own_consumed.clone())
            .or_else(|| priced.then(|| (1.0, "Units".to_string())))
    };
    let consumed = if is_usage {
        own_consumed.or_else(|| pricing.clone())
    } else {
        None
    };

    let credit = category == ChargeCategory::Credit;
    let list_cost = match c.list_cost.filter(|v| v.is_finite()) {
        Some(v) if !credit => v,
        _ => c.billed_cost,
    };
    let contracted_cost = match c.contracted_cost.filter(|v| v.is_finite()) {
        Some(v) if !credit => v,
        _ => c.billed_cost,
    };

    // Unit prices: only where FOCUS wants them (Usage and Purchase that are not
    // corrections; null on Tax, MAY be null on the rest), and only as what the row's own
    // columns make them: FOCUS's `ListUnitPrice × PricingQuantity = ListCost` (and
    // `ContractedUnitPrice × PricingQuantity = ContractedCost`) leaves one value, the cost
    // over the quantity. No value meets the rules when the quantity is zero or the quotient
    // is negative (a unit price is non-negative): null then, a gap the checker reports.
    let pricing_quantity = pricing.as_ref().map(|p| p.0);
    let unit_price = |cost: f64| -> Option<f64> {
        let q = pricing_quantity.filter(|q| priced && *q != 0.0)?;
        let p = cost / q;
        // `+ 0.0` turns a -0 into 0.
        (p.is_finite() && p >= 0.0).then_some(p + 0.0)
    };

    let charge_frequency = match (c.charge_frequency, category) {
        (Some(ChargeFrequency::UsageBased), ChargeCategory::Purchase) => "One-Time",
        (Some(ChargeFrequency::UsageBased), _) => "Usage-Based",
        (Some(ChargeFrequency::Recurring), _) => "Recurring",
        (Some(ChargeFrequency::OneTime), _) => "One-Time",
        (None, ChargeCategory::Usage) => "Usage-Based",
        (None, _) => "One-Time",
    };

    let sku_id = if is_tax {
        None
    } else {
        non_empty(&c.sku_id).or_else(|| priced.then(|| c.service_name.clone()))
    };
    let resource_type = resource_id
        .as_ref()
        .map(|_| non_empty(&c.resource_type).unwrap_or_else(|| c.service_name.clone()));

    let charge_description = non_empty(&c.charge_description).unwrap_or_else(|| {
        let mut d = c.service_name.clone();
        if let Some(s) = non_empty(&c.sku_id) {
            d += &format!(" · SKU {s}");
        }
        if let Some(r) = &resource_id {
            d += &format!(" · resource {r}");
        }
        if let Some(r) = &region_id {
            d += &format!(" · {r}");
        }
        if category != ChargeCategory::Usage {
            d += &format!(" · {category_name}");
        }
        d += &format!(" ({})", c.x_source.as_str());
        d
    });

    let tags = (!c.tags.is_empty())
        .then(|| serde_json::to_string(&c.tags).expect("string maps serialize"));

    Row {
        billed_cost: c.billed_cost,
        billing_account_id,
        billing_account_name: non_empty(&c.billing_account_name),
        billing_currency: c.billing_currency.clone(),
        billing_period_end,
        billing_period_start,
        charge_category: category_name,
        charge_class: correction.then_some("Correction"),
        charge_description,
        charge_frequency,
        charge_period_end: c.charge_period_end,
        charge_period_start: c.charge_period_start,
        consumed_quantity: consumed.as_ref().map(|p| p.0),
        consumed_unit: consumed.map(|p| p.1),
        contracted_cost,
        contracted_unit_price: unit_price(contracted_cost),
        effective_cost: c.effective_cost,
        invoice_issuer_name: non_empty(&c.invoice_issuer_name)
            .unwrap_or_else(|| c.provider_name.clone()),
        list_cost,
        list_unit_price: unit_price(list_cost),
        pricing_quantity: pricing.as_ref().map(|p| p.0),
        pricing_unit: pricing.map(|p| p.1),
        provider_name: c.provider_name.clone(),
        publisher_name: non_empty(&c.publisher_name).unwrap_or_else(|| c.provider_name.clone()),
        region_id,
        resource_id,
        resource_type,
        service_category: focus_service_category(c.service_category.as_deref()),
        service_name: c.service_name.clone(),
        sku_id,
        sub_account_id,
        tags,
        x_source: c.x_source.as_str(),
        x_price_date: non_empty(&c.x_price_date),
        x_focus_version: if c.x_focus_version.is_empty() {
            FOCUS_VERSION.to_string()
        } else {
            c.x_focus_version.clone()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skymeter_model::CostSource;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn line(category: ChargeCategory) -> Cost {
        Cost::billed(
            "Amazon Web Services",
            category,
            2.5,
            2.0,
            "USD".into(),
            t("2026-11-30T23:00:00Z"),
            t("2026-12-01T00:00:00Z"),
            "Amazon Elastic Compute Cloud - Compute".into(),
        )
    }

    #[test]
    fn a_bare_billed_usage_line_gets_every_mandatory_column() {
        let r = map(&line(ChargeCategory::Usage));
        assert_eq!(r.billing_account_id, "aws");
        assert_eq!(r.billing_period_start, t("2026-11-01T00:00:00Z"));
        assert_eq!(r.billing_period_end, t("2026-12-01T00:00:00Z"));
        assert_eq!((r.list_cost, r.contracted_cost), (2.5, 2.5));
        assert_eq!(r.pricing_quantity, Some(1.0));
        // One unit at the line's cost.
        assert_eq!(
            (r.list_unit_price, r.contracted_unit_price),
            (Some(2.5), Some(2.5))
        );
        assert_eq!(r.pricing_unit.as_deref(), Some("Units"));
        assert_eq!(r.consumed_quantity, Some(1.0));
        assert_eq!(r.publisher_name, "Amazon Web Services");
        assert_eq!(r.invoice_issuer_name, "Amazon Web Services");
        assert_eq!(r.service_category, "Other");
        assert_eq!(r.charge_frequency, "Usage-Based");
        assert_eq!(r.charge_class, None);
        assert_eq!(
            r.sku_id.as_deref(),
            Some("Amazon Elastic Compute Cloud - Compute")
        );
        assert_eq!(
            r.charge_description,
            "Amazon Elastic Compute Cloud - Compute (billed)"
        );
        assert_eq!(r.tags, None);
        assert_eq!(r.x_focus_version, "1.2");
    }

    #[test]
    fn what_the_line_knows_wins() {
        let mut c = Cost {
            list_cost: Some(3.0),
            contracted_cost: Some(2.75),
            billing_account_id: Some("payer-1".into()),
            billing_account_name: Some("Payer".into()),
            sub_account_id: Some("123456789012".into()),
            region_id: Some("us-east-1".into()),
            resource_id: Some("i-0abc".into()),
            resource_type: Some("Virtual Machine".into()),
            sku_id: Some("t3.micro".into()),
            pricing_quantity: Some(24.0),
            pricing_unit: Some("Hours".into()),
            consumed_quantity: Some(24.0),
            consumed_unit: Some("Hours".into()),
            service_category: Some("compute".into()),
            publisher_name: Some("Seller".into()),
            charge_frequency: Some(ChargeFrequency::UsageBased),
            x_source: CostSource::Estimated,
            x_price_date: Some("2026-11-01".into()),
            ..line(ChargeCategory::Usage)
        };
        c.tags.insert("env".into(), "prod".into());
        let r = map(&c);
        assert_eq!(r.billing_account_id, "payer-1");
        assert_eq!(r.billing_account_name.as_deref(), Some("Payer"));
        assert_eq!((r.list_cost, r.contracted_cost), (3.0, 2.75));
        assert_eq!(r.pricing_quantity, Some(24.0));
        assert_eq!(r.pricing_unit.as_deref(), Some("Hours"));
        assert_eq!(r.list_unit_price, Some(3.0 / 24.0));
        assert_eq!(r.contracted_unit_price, Some(2.75 / 24.0));
        assert_eq!(r.service_category, "Compute");
        assert_eq!(r.publisher_name, "Seller");
        assert_eq!(r.sku_id.as_deref(), Some("t3.micro"));
        assert_eq!(r.tags.as_deref(), Some(r#"{"env":"prod"}"#));
        assert_eq!(r.x_source, "estimated");
        assert_eq!(r.x_price_date.as_deref(), Some("2026-11-01"));
        assert_eq!(
            r.charge_description,
            "Amazon Elastic Compute Cloud - Compute · SKU t3.micro · resource i-0abc · us-east-1 (estimated)"
        );
    }

    #[test]
    fn billing_account_falls_back_to_the_sub_account() {
        let c = Cost {
            sub_account_id: Some("proj-1".into()),
            ..line(ChargeCategory::Usage)
        };
        assert_eq!(map(&c).billing_account_id, "proj-1");
    }

    #[test]
    fn tax_lines_have_no_quantity_nor_sku() {
        let c = Cost {
            pricing_quantity: Some(1.0),
            pricing_unit: Some("Units".into()),
            sku_id: Some("tax".into()),
            consumed_quantity: Some(1.0),
            consumed_unit: Some("Units".into()),
            ..line(ChargeCategory::Tax)
        };
        let r = map(&c);
        assert_eq!((r.pricing_quantity, r.pricing_unit), (None, None));
        assert_eq!((r.consumed_quantity, r.consumed_unit), (None, None));
        assert_eq!(r.sku_id, None);
        assert_eq!((r.list_unit_price, r.contracted_unit_price), (None, None));
        assert_eq!(r.charge_frequency, "One-Time");
    }

    #[test]
    fn purchases_are_never_usage_based_and_consume_nothing() {
        let c = Cost {
            charge_frequency: Some(ChargeFrequency::UsageBased),
            consumed_quantity: Some(5.0),
            consumed_unit: Some("Hours".into()),
            ..line(ChargeCategory::Purchase)
        };
        let r = map(&c);
        assert_eq!(r.charge_frequency, "One-Time");
        assert_eq!((r.consumed_quantity, r.consumed_unit), (None, None));
        // The consumed pair still prices the purchase.
        assert_eq!(r.pricing_quantity, Some(5.0));
    }

    #[test]
    fn credits_match_billed_cost_and_corrections_are_classed() {
        let c = Cost {
            billed_cost: -1.0,
            effective_cost: -1.0,
            list_cost: Some(-2.0),
            ..line(ChargeCategory::Credit)
        };
        let r = map(&c);
        assert_eq!((r.list_cost, r.contracted_cost), (-1.0, -1.0));
        assert_eq!(r.pricing_quantity, None);
        assert_eq!(r.sku_id, None);
        assert_eq!((r.list_unit_price, r.contracted_unit_price), (None, None));
        let c = Cost {
            charge_class: Some(ChargeClass::Correction),
            ..line(ChargeCategory::Usage)
        };
        let r = map(&c);
        assert_eq!(r.charge_class, Some("Correction"));
        assert_eq!(r.pricing_quantity, None);
        assert_eq!((r.list_unit_price, r.contracted_unit_price), (None, None));
        // A correction keeps its quantity but needs no unit price [discrepancies MAY exist].
        let c = Cost {
            charge_class: Some(ChargeClass::Correction),
            pricing_quantity: Some(2.0),
            pricing_unit: Some("Hours".into()),
            ..line(ChargeCategory::Usage)
        };
        assert_eq!(map(&c).list_unit_price, None);
    }

    #[test]
    fn unit_prices_are_the_costs_over_the_pricing_quantity() {
        let c = Cost {
            list_cost: Some(10.0),
            contracted_cost: Some(8.0),
            pricing_quantity: Some(4.0),
            pricing_unit: Some("GiB-Hours".into()),
            ..line(ChargeCategory::Purchase)
        };
        let r = map(&c);
        assert_eq!(r.list_unit_price, Some(2.5));
        assert_eq!(r.contracted_unit_price, Some(2.0));
        // Only the consumed pair: it prices the line, and so the unit prices.
        let c = Cost {
            consumed_quantity: Some(5.0),
            consumed_unit: Some("Hours".into()),
            ..line(ChargeCategory::Usage)
        };
        assert_eq!(map(&c).list_unit_price, Some(0.5));
        // No non-negative price times the quantity makes the cost: null, never a guess.
        for (q, cost) in [(0.0, 2.5), (0.0, 0.0), (2.0, -1.0)] {
            let c = Cost {
                billed_cost: cost,
                effective_cost: cost,
                pricing_quantity: Some(q),
                pricing_unit: Some("Hours".into()),
                ..line(ChargeCategory::Usage)
            };
            let r = map(&c);
            assert_eq!((r.list_unit_price, r.contracted_unit_price), (None, None));
        }
        // A negative quantity and cost (a usage reversal) price at a positive unit price.
        let c = Cost {
            billed_cost: -3.0,
            effective_cost: -3.0,
            pricing_quantity: Some(-2.0),
            pricing_unit: Some("Hours".into()),
            ..line(ChargeCategory::Usage)
        };
        assert_eq!(map(&c).list_unit_price, Some(1.5));
        // Adjustments MAY go without.
        assert_eq!(map(&line(ChargeCategory::Adjustment)).list_unit_price, None);
    }

    #[test]
    fn resource_type_goes_with_resource_id() {
        let c = Cost {
            resource_id: Some("vol-1".into()),
            ..line(ChargeCategory::Usage)
        };
        assert_eq!(
            map(&c).resource_type.as_deref(),
            Some("Amazon Elastic Compute Cloud - Compute")
        );
        let c = Cost {
            resource_type: Some("Volume".into()),
            ..line(ChargeCategory::Usage)
        };
        assert_eq!(map(&c).resource_type, None);
    }

    #[test]
    fn service_categories_map_to_allowed_values() {
        assert_eq!(focus_service_category(Some("Databases")), "Databases");
        assert_eq!(focus_service_category(Some("database")), "Databases");
        assert_eq!(focus_service_category(Some("Network")), "Networking");
        assert_eq!(
            focus_service_category(Some("GPU")),
            "AI and Machine Learning"
        );
        assert_eq!(focus_service_category(Some("Quantum")), "Other");
        assert_eq!(focus_service_category(None), "Other");
        for c in SERVICE_CATEGORIES {
            assert_eq!(focus_service_category(Some(c)), c);
        }
    }

    #[test]
    fn billing_period_is_the_utc_calendar_month() {
        assert_eq!(
            month_of(t("2026-12-31T23:59:59Z")),
            (t("2026-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            month_of(t("2024-02-29T12:00:00Z")),
            (t("2024-02-01T00:00:00Z"), t("2024-03-01T00:00:00Z"))
        );
    }

    #[test]
    fn cells_follow_the_column_table() {
        let r = map(&line(ChargeCategory::Usage));
        let cells = r.cells();
        assert_eq!(cells.len(), crate::columns::COLUMNS.len());
        for (cell, col) in cells.iter().zip(crate::columns::COLUMNS) {
            match (cell, col.kind) {
                (Cell::Null, _) => assert!(col.nullable, "{}", col.name),
                (Cell::Num(_), crate::columns::Kind::Decimal)
                | (Cell::Time(_), crate::columns::Kind::DateTime)
                | (Cell::Str(_), crate::columns::Kind::String | crate::columns::Kind::KeyValue) => {
                }
                other => panic!("{}: {other:?}", col.name),
            }
        }
        for m in crate::columns::MANDATORY {
            assert!(crate::columns::COLUMNS.iter().any(|c| c.name == m), "{m}");
        }
    }
}
