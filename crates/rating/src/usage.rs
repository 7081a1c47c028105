//! From usage items to frames, and from rated frames to cost lines.
//!
//! The server's rating job reads the store (resources and their hours of presence, a
//! metric's points) and hands each usage item to a [`UsageFrames`] with the scope it
//! belongs to and a way to read its attributes. Like CloudKitty's collectors, items are
//! grouped per scope and service by the service's `groupby` attributes, their raw
//! quantities summed; the conversion (`factor`, `offset`, `mutate`) is applied to each
//! group's sum, and the `metadata` attributes are the first ones seen in the group.
//!
//! After rating, [`cost_lines`] turns a frame into FOCUS cost lines (`x_source = rated`).

use crate::frame::{Attrs, DataFrame, DataPoint, Period};
use crate::service::ServiceDef;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use skymeter_model::{ChargeCategory, ChargeFrequency, Cost, CostSource, Labels};
use smol_str::SmolStr;
use std::collections::BTreeMap;

/// One group of usage under construction.
#[derive(Debug, Default)]
struct Group {
    qty: Decimal,
    metadata: Attrs,
}

/// The usage of one period, per scope, being grouped.
#[derive(Debug)]
pub struct UsageFrames<'a> {
    services: &'a [ServiceDef],
    period: Period,
    /// scope → service index → groupby values → group.
    scopes: BTreeMap<SmolStr, BTreeMap<usize, BTreeMap<Vec<SmolStr>, Group>>>,
}

impl<'a> UsageFrames<'a> {
    pub fn new(services: &'a [ServiceDef], begin: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        UsageFrames {
            services,
            period: Period { begin, end },
            scopes: BTreeMap::new(),
        }
    }

    /// Adds `qty` (in the source's unit, before conversion) of `services[service]` used by
    /// `scope`; `attr` reads the item's attributes (groupby and metadata). A missing
    /// groupby attribute groups as the empty string, as a missing key does in CloudKitty.
    pub fn add(
        &mut self,
        scope: &str,
        service: usize,
        qty: Decimal,
        attr: impl Fn(&str) -> Option<SmolStr>,
    ) {
        let def = &self.services[service];
        let key: Vec<SmolStr> = def
            .groupby
            .iter()
            .map(|k| attr(k).unwrap_or_default())
            .collect();
        let group = self
            .scopes
            .entry(SmolStr::new(scope))
            .or_default()
            .entry(service)
            .or_default()
            .entry(key)
            .or_default();
        group.qty = group.qty.checked_add(qty).unwrap_or(Decimal::MAX);
        for m in &def.metadata {
            if !group.metadata.contains_key(m.as_str()) {
                if let Some(v) = attr(m) {
                    group.metadata.insert(SmolStr::new(m), v);
                }
            }
        }
    }

    /// The scopes that have usage, each with its frame (points not yet priced).
    pub fn frames(self) -> BTreeMap<SmolStr, DataFrame> {
        let mut out = BTreeMap::new();
        for (scope, services) in self.scopes {
            let mut frame = DataFrame::new(self.period.begin, self.period.end);
            for (i, groups) in services {
                let def = &self.services[i];
                for (values, g) in groups {
                    let mut p = DataPoint::new(&def.unit, def.convert(g.qty));
                    for (k, v) in def.groupby.iter().zip(values) {
                        p.groupby.insert(SmolStr::new(k), v);
                    }
                    p.metadata = g.metadata;
                    frame.add_point(def.rated_name(), p);
                }
            }
            out.insert(scope, frame);
        }
        out
    }
}

/// Who the rated lines name where the usage does not say.
#[derive(Debug, Clone)]
pub struct LineDefaults {
    /// `BillingCurrency` of every rated line.
    pub currency: String,
    /// `InvoiceIssuerName`, and `ProviderName` of points without a `provider` attribute:
    /// the organisation that runs skymeter and charges its teams.
    pub issuer: String,
    /// The attribute scopes are drawn from (`account`, `tag:team`): when it is `account`, the
    /// scope is the lines' `SubAccountId`.
    pub scope_by: String,
}

/// The cost lines of a rated frame of `scope`: one per point, `x_source = rated`, the
/// period as the charge period, the price as billed, effective, list and contracted cost
/// (rating knows one price). Columns come from the point's attributes: `id` →
/// `ResourceId`, `region` → `RegionId`, `account` (or the scope) → `SubAccountId`,
/// `provider` → `ProviderName` when it names a cloud (its FOCUS name), else the issuer; every groupby and metadata attribute is
/// also a tag, so that lines can be grouped by any of them. `SkuId` is the service and the
/// point's groupby values (`instance|flavor=m5.large|id=i-1`): it makes each point's line
/// its own key, so rating a period again replaces its lines instead of adding to them.
pub fn cost_lines(
    frame: &DataFrame,
    scope: &str,
    services: &[ServiceDef],
    d: &LineDefaults,
) -> Vec<Cost> {
    let mut out = Vec::with_capacity(frame.len());
    for (service, p) in frame.points() {
        let def = services.iter().find(|s| s.rated_name() == service);
        let price = p.rating.price.to_f64().unwrap_or(0.0);
        // A cloud's FOCUS name (`aws` → `Amazon Web Services`); usage of anything else
        // (hosts, custom sources) is provided by whoever runs it: the issuer.
        let provider = p
            .desc("provider")
            .and_then(skymeter_model::provider::by_name)
            .map_or(d.issuer.as_str(), |p| p.focus_name)
            .to_string();
        let mut line = Cost::billed(
            &provider,
            ChargeCategory::Usage,
            price,
            price,
            d.currency.clone(),
            frame.period.begin,
            frame.period.end,
            service.to_string(),
        );
        line.x_source = CostSource::Rated;
        line.list_cost = Some(price);
        line.contracted_cost = Some(price);
        line.charge_frequency = Some(ChargeFrequency::UsageBased);
        line.invoice_issuer_name = Some(d.issuer.clone());
        line.service_category = Some(
            def.and_then(|s| s.category.clone())
                .unwrap_or_else(|| "Other".to_string()),
        );
        line.sub_account_id = match p.desc("account") {
            Some(a) => Some(a.to_string()),
            None if d.scope_by == "account" && !scope.is_empty() => Some(scope.to_string()),
            None => None,
        };
        line.region_id = p.desc("region").map(str::to_string);
        line.resource_id = p.desc("id").map(str::to_string);
        line.resource_type = p.desc("kind").map(str::to_string);
        let mut sku = service.to_string();
        for (k, v) in &p.groupby {
            sku.push('|');
            sku.push_str(k);
            sku.push('=');
            sku.push_str(v);
        }
        line.sku_id = Some(sku);
        let qty = p.vol.qty.to_f64();
        line.pricing_quantity = qty;
        line.pricing_unit = Some(p.vol.unit.clone());
        line.consumed_quantity = qty;
        line.consumed_unit = Some(p.vol.unit.clone());
        line.charge_description = Some(match def.and_then(|s| s.description.as_deref()) {
            Some(desc) => format!("{desc} ({scope})"),
            None => format!("{service} rated for {scope}"),
        });
        let mut tags = Labels::new();
        for (k, v) in p.metadata.iter().chain(&p.groupby) {
            tags.insert(k.to_string(), v.to_string());
        }
        if !scope.is_empty() {
            tags.insert("rating_scope".to_string(), scope.to_string());
        }
        line.tags = tags;
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Mutate, Usage};
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn instance_service() -> ServiceDef {
        let mut s = ServiceDef::new("instance", "instance");
        s.usage = Some(Usage::Resources {
            kind: "compute.instance".into(),
            attribute: None,
        });
        s.groupby = vec!["flavor".into()];
        s.metadata = vec!["image".into(), "provider".into()];
        s.mutate = Mutate::Ceil;
        s.category = Some("Compute".into());
        s
    }

    #[test]
    fn items_group_by_scope_and_groupby_then_convert_the_sum() {
        let services = [instance_service()];
        let mut u = UsageFrames::new(&services, t(10), t(11));
        let attrs = |flavor: &'static str, image: &'static str| {
            move |k: &str| match k {
                "flavor" => Some(SmolStr::new(flavor)),
                "image" => Some(SmolStr::new(image)),
                _ => None,
            }
        };
        // Two half hours of m5.large in team-a sum to 1 (then CEIL keeps 1); 0.25 of a
        // t3.micro rounds up to 1; team-b's usage is its own frame.
        u.add("team-a", 0, dec("0.5"), attrs("m5.large", "linux"));
        u.add("team-a", 0, dec("0.5"), attrs("m5.large", "windows"));
        u.add("team-a", 0, dec("0.25"), attrs("t3.micro", "linux"));
        u.add("team-b", 0, dec("2"), attrs("m5.large", "linux"));
        let frames = u.frames();
        assert_eq!(frames.len(), 2);
        let a = &frames["team-a"];
        assert_eq!(a.period.begin, t(10));
        let pts = &a.usage["instance"];
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].desc("flavor"), Some("m5.large"));
        assert_eq!(pts[0].vol.qty, dec("1"));
        // Metadata: the first value seen in the group.
        assert_eq!(pts[0].desc("image"), Some("linux"));
        assert_eq!(pts[1].vol.qty, dec("1"));
        assert_eq!(frames["team-b"].usage["instance"][0].vol.qty, dec("2"));
    }

    #[test]
    fn rated_points_become_keyed_focus_lines() {
        let services = [instance_service()];
        let mut frame = DataFrame::new(t(10), t(11));
        let mut p = DataPoint::new("instance", dec("3"))
            .with_groupby("flavor", "m5.large")
            .with_metadata("provider", "aws");
        p.rating.price = dec("0.288");
        frame.add_point("instance", p.clone());
        p.groupby.insert("flavor".into(), "t3.micro".into());
        p.metadata.clear();
        frame.add_point("instance", p);
        let d = LineDefaults {
            currency: "EUR".into(),
            issuer: "Platform team".into(),
            scope_by: "account".into(),
        };
        let lines = cost_lines(&frame, "team-a", &services, &d);
        assert_eq!(lines.len(), 2);
        let l = &lines[0];
        assert_eq!(l.x_source, CostSource::Rated);
        assert_eq!(l.billed_cost, 0.288);
        assert_eq!(l.effective_cost, 0.288);
        assert_eq!(l.list_cost, Some(0.288));
        assert_eq!(l.contracted_cost, Some(0.288));
        assert_eq!(l.billing_currency, "EUR");
        assert_eq!((l.charge_period_start, l.charge_period_end), (t(10), t(11)));
        assert_eq!(l.provider_name, "Amazon Web Services");
        assert_eq!(l.invoice_issuer_name.as_deref(), Some("Platform team"));
        assert_eq!(l.service_category.as_deref(), Some("Compute"));
        assert_eq!(l.sub_account_id.as_deref(), Some("team-a"));
        assert_eq!(l.pricing_quantity, Some(3.0));
        assert_eq!(l.charge_frequency, Some(ChargeFrequency::UsageBased));
        assert_eq!(l.sku_id.as_deref(), Some("instance|flavor=m5.large"));
        assert_eq!(l.tags["flavor"], "m5.large");
        assert_eq!(l.tags["rating_scope"], "team-a");
        // No provider attribute: the issuer; a different groupby value: a different key.
        assert_eq!(lines[1].provider_name, "Platform team");
        assert_eq!(lines[1].sku_id.as_deref(), Some("instance|flavor=t3.micro"));
        let mut b = skymeter_model::Batch::new("a", "t", t(12));
        b.costs = lines;
        b.validate().unwrap();
    }
}
