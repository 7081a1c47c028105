//! Cost lines for the tests over a real store: one day of USD usage of one resource.

use chrono::NaiveDate;
use skymeter_model::{ChargeCategory, Cost, CostSource};

/// A day's USD usage line of `resource` (none when empty) of `service` in `account`,
/// us-east-1, from `source`.
pub fn usd_line(
    on: NaiveDate,
    account: &str,
    service: &str,
    resource: &str,
    source: CostSource,
    usd: f64,
) -> Cost {
    let start = crate::spend::start_of(on);
    Cost {
        billed_cost: usd,
        effective_cost: usd,
        billing_currency: "USD".into(),
        charge_period_start: start,
        charge_period_end: start + chrono::Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: service.into(),
        sub_account_id: Some(account.into()),
        region_id: Some("us-east-1".into()),
        resource_id: (!resource.is_empty()).then(|| resource.to_string()),
        x_source: source,
        ..Cost::default()
    }
}
