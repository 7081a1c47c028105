//! A flat list-price table and the cost lines computed from it, shared by the gcp and azure
//! collectors' estimated costs.
//!
//! The AWS table (`collectors/aws/prices`) is typed per service because the Price List API
//! is queried per attribute; Google's Cloud Billing Catalog and Azure's Retail Prices API
//! both answer with flat SKU lists, so their tables are flat too: region → price key →
//! (USD, unit). The key says what the price is for (`gce/n2/vcpu`, `vm/Standard_D2s_v3/linux`),
//! in a form each collector documents in its README.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skymeter_model::{ChargeCategory, Cost, CostSource, Resource};
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Hours in the month that monthly quantities (GiB-month, disk-month) are priced against,
/// as both Google and Azure price them.
pub use skymeter_plugin_api::prices::HOURS_PER_MONTH;

/// One list price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPrice {
    /// USD per `per`.
    pub usd: f64,
    /// The unit priced: `hour`, `GiB-hour`, `GiB-month`, `month`.
    pub per: String,
}

/// On-demand list prices of one cloud, per region. Serialized as JSON (the shipped
/// `prices.json` of a collector, `<data_dir>/prices/<cloud>.json`).
/// A price that is not in the table is absent, never zero or guessed: the estimate reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    /// `YYYY-MM-DD`: when the prices were read. Cost lines carry it as `x_price_date`.
    pub date: String,
    /// Always `USD`.
    pub currency: String,
    /// Where the prices come from.
    pub source: String,
    /// Region (`us-central1`, `westeurope`) → price key → price.
    #[serde(default)]
    pub regions: BTreeMap<String, BTreeMap<String, ListPrice>>,
}

/// Which cloud a table is for: names the files, the messages and the update command.
#[derive(Debug, Clone, Copy)]
pub struct Cloud {
    /// `gcp`, `azure`: the file name under `<data_dir>/prices/` and the CLI subcommand.
    pub id: &'static str,
    /// `GCP`, `Azure`: in messages.
    pub display: &'static str,
    /// The FOCUS ProviderName of cost lines.
    pub provider_name: &'static str,
}

impl Cloud {
    /// Where `prices update` writes and `load` looks: `<data_dir>/prices/<id>.json`.
    pub fn default_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("prices").join(format!("{}.json", self.id))
    }

    fn update_command(&self, region: &str) -> String {
        format!("skymeter prices {} update --regions {region}", self.id)
    }
}

impl PriceList {
    /// A table from JSON text (`origin` names it in errors), checked.
    pub fn parse(cloud: Cloud, text: &str, origin: &str) -> Result<PriceList, PluginError> {
        let table: PriceList = serde_json::from_str(text).map_err(|e| {
            PluginError::new(
                ErrorKind::Config,
                format!(
                    "the {} price table {origin} is not a price table: {e}; write a new one with `skymeter prices {} update --output {origin}`",
                    cloud.display, cloud.id
                ),
            )
            .with("file", origin)
        })?;
        table.validate().map_err(|what| {
            PluginError::new(
                ErrorKind::Config,
                format!(
                    "the {} price table {origin} is wrong: {what}",
                    cloud.display
                ),
            )
            .with("file", origin)
        })?;
        Ok(table)
    }

    /// Reads and checks a table file.
    pub fn from_file(cloud: Cloud, path: &Path) -> Result<PriceList, PluginError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PluginError::new(
                ErrorKind::Config,
                format!("cannot read the {} price table {shown}: {e}", cloud.display),
            )
            .with("file", shown.clone())
        })?;
        PriceList::parse(cloud, &text, &shown)
    }

    /// The table to use: `explicit` when given, else `<data_dir>/prices/<cloud>.json` when it
    /// exists, else `shipped` (the collector's embedded table).
    pub fn load(
        cloud: Cloud,
        explicit: Option<&Path>,
        data_dir: &Path,
        shipped: &str,
    ) -> Result<PriceList, PluginError> {
        if let Some(p) = explicit {
            return PriceList::from_file(cloud, p);
        }
        let fetched = cloud.default_path(data_dir);
        if fetched.exists() {
            return PriceList::from_file(cloud, &fetched);
        }
        PriceList::parse(cloud, shipped, "shipped with skymeter")
    }

    /// What serde cannot check: the date's form, the currency, and that every price is a
    /// finite number ≥ 0 with a unit. Says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if chrono::NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").is_err() {
            return Err(format!("`date` is \"{}\", not YYYY-MM-DD", self.date));
        }
        if self.currency != "USD" {
            return Err(format!(
                "`currency` is \"{}\"; skymeter's tables are in USD",
                self.currency
            ));
        }
        for (region, prices) in &self.regions {
            for (key, p) in prices {
                if !(p.usd.is_finite() && p.usd >= 0.0) {
                    return Err(format!(
                        "`regions.{region}.{key}.usd` is {}, not a price (a finite number ≥ 0)",
                        p.usd
                    ));
                }
                if p.per.is_empty() {
                    return Err(format!("`regions.{region}.{key}.per` is empty"));
                }
            }
        }
        Ok(())
    }

    /// Prices per region and per key prefix (the part before the first `/`).
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        self.regions
            .iter()
            .map(|(region, prices)| {
                let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
                for key in prices.keys() {
                    let kind = key.split('/').next().unwrap_or(key);
                    *by_kind.entry(kind.to_string()).or_default() += 1;
                }
                (region.clone(), by_kind)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.regions.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pretty JSON, keys in order, ending with a newline: the file format.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Builds the estimated cost lines of one collection over `[start, end)` from a table, and
/// collects one error per price the table lacks (per region and key, however many resources
/// need it).
pub struct Estimator<'a> {
    cloud: Cloud,
    table: &'a PriceList,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The window's length in hours.
    pub hours: f64,
    pub costs: Vec<Cost>,
    missing: BTreeMap<(String, String), PluginError>,
}

/// One priced component of a resource.
pub struct Line<'r> {
    pub resource: &'r Resource,
    /// FOCUS ServiceName (`Compute Engine`, `Virtual Machines`).
    pub service: &'static str,
    /// FOCUS ServiceCategory (`Compute`, `Storage`).
    pub category: &'static str,
    /// The price's key in the table; the SkuId is `region/key`.
    pub key: String,
    /// In the price's unit (`per`).
    pub quantity: f64,
    /// The FOCUS PricingUnit shown on the line (`Hours`, `GiB-Months`).
    pub unit: &'static str,
}

/// How one resource kind is priced: the kind (`compute.instance`) and the function that
/// charges (or reports the missing prices of) one resource of it.
pub type PricedKind = (&'static str, fn(&mut Estimator<'_>, &Resource));

impl<'a> Estimator<'a> {
    pub fn new(
        cloud: Cloud,
        table: &'a PriceList,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Estimator<'a> {
        Estimator {
            cloud,
            table,
            start,
            end,
            hours: (end - start).num_milliseconds().max(0) as f64 / 3_600_000.0,
            costs: Vec::new(),
            missing: BTreeMap::new(),
        }
    }

    /// The window in months of [`HOURS_PER_MONTH`].
    pub fn months(&self) -> f64 {
        self.hours / HOURS_PER_MONTH
    }

    /// The price of `key` in `region`, if the table has it.
    pub fn price(&self, region: &str, key: &str) -> Option<f64> {
        self.table.regions.get(region)?.get(key).map(|p| p.usd)
    }

    /// Estimates every resource of the table's cloud with `price_one` (which charges or
    /// reports each priced part of it): the cost lines and the errors.
    pub fn each(
        cloud: Cloud,
        table: &PriceList,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resources: &[Resource],
        mut price_one: impl FnMut(&mut Estimator<'_>, &Resource),
    ) -> (Vec<Cost>, Vec<PluginError>) {
        let mut est = Estimator::new(cloud, table, start, end);
        for r in resources.iter().filter(|r| r.provider == cloud.id) {
            price_one(&mut est, r);
        }
        est.finish()
    }

    /// Estimates every resource of the table's cloud whose kind is in `kinds`, with that
    /// kind's pricing function; other kinds are not estimated.
    pub fn by_kind(
        cloud: Cloud,
        table: &PriceList,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resources: &[Resource],
        kinds: &[PricedKind],
    ) -> (Vec<Cost>, Vec<PluginError>) {
        Estimator::each(cloud, table, start, end, resources, |est, r| {
            if let Some((_, price)) = kinds.iter().find(|(kind, _)| *kind == r.kind.as_str()) {
                price(est, r);
            }
        })
    }

    /// Charges `resource` for every hour of the window at `key`'s hourly price (an
    /// instance, a cluster fee); `what` names a missing price.
    pub fn hourly(
        &mut self,
        resource: &Resource,
        service: &'static str,
        key: String,
        what: impl FnOnce() -> String,
    ) {
        let hours = self.hours;
        self.charge(
            Line {
                resource,
                service,
                category: "Compute",
                key,
                quantity: hours,
                unit: "Hours",
            },
            what,
        );
    }

    /// Pushes the line at its table price, or reports the missing price (`what` says in
    /// words what is missing, e.g. "no N2 vCPU price").
    pub fn charge(&mut self, line: Line<'_>, what: impl FnOnce() -> String) {
        let region = line.resource.region.as_str();
        match self.price(region, &line.key) {
            Some(price) => self.push(line, price),
            None => {
                let region = region.to_string();
                let key = line.key.clone();
                let date = &self.table.date;
                let what = if self.table.regions.contains_key(&region) {
                    what()
                } else {
                    format!("no prices for region {region} at all")
                };
                let message = format!(
                    "the {} price table of {date} has {what}: costs that need it are not estimated; run `{}`",
                    self.cloud.display,
                    self.cloud.update_command(&region)
                );
                self.report(&region, &key, message);
            }
        }
    }

    /// Records something that cannot be estimated (whatever the table's date), once per
    /// (region, key).
    pub fn report(&mut self, region: &str, key: &str, message: String) {
        self.missing
            .entry((region.to_string(), key.to_string()))
            .or_insert_with(|| {
                PluginError::new(ErrorKind::Config, message)
                    .with("region", region)
                    .with("price", key)
            });
    }

    fn push(&mut self, l: Line<'_>, price: f64) {
        self.costs.push(estimated_line(
            EstimatedLine {
                provider_name: self.cloud.provider_name,
                currency: &self.table.currency,
                price_date: &self.table.date,
                start: self.start,
                end: self.end,
            },
            l.resource,
            l.service,
            l.category,
            &l.key,
            l.quantity,
            l.unit,
            price,
        ));
    }

    /// The cost lines and the errors, missing prices first by region and key.
    pub fn finish(self) -> (Vec<Cost>, Vec<PluginError>) {
        (self.costs, self.missing.into_values().collect())
    }
}

/// What every estimated line of one table and window shares.
#[derive(Debug, Clone, Copy)]
pub struct EstimatedLine<'a> {
    pub provider_name: &'a str,
    pub currency: &'a str,
    /// The table's date, `x_price_date`.
    pub price_date: &'a str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One FOCUS cost line of `resource` at list price: `quantity` × `price`, SkuId
/// `region/key`, `x_source = "estimated"` (the aws, gcp and azure estimates all use it).
#[allow(clippy::too_many_arguments)]
pub fn estimated_line(
    of: EstimatedLine<'_>,
    r: &Resource,
    service: &str,
    category: &str,
    key: &str,
    quantity: f64,
    unit: &str,
    price: f64,
) -> Cost {
    let cost = price * quantity;
    Cost {
        billed_cost: cost,
        effective_cost: cost,
        list_cost: Some(cost),
        billing_currency: of.currency.to_string(),
        charge_period_start: of.start,
        charge_period_end: of.end,
        charge_category: ChargeCategory::Usage,
        provider_name: of.provider_name.into(),
        service_name: service.into(),
        service_category: Some(category.into()),
        sub_account_id: (!r.account.is_empty()).then(|| r.account.clone()),
        region_id: (!r.region.is_empty()).then(|| r.region.clone()),
        resource_id: Some(r.id.clone()),
        resource_type: Some(r.native_type.clone()),
        sku_id: Some(format!("{}/{key}", r.region)),
        pricing_quantity: Some(quantity),
        pricing_unit: Some(unit.into()),
        consumed_quantity: Some(quantity),
        consumed_unit: Some(unit.into()),
        tags: r.tags.clone(),
        x_source: CostSource::Estimated,
        x_price_date: Some(of.price_date.to_string()),
        ..Default::default()
    }
}

/// The table in `slot`, loaded there first when it is empty (`explicit`, else
/// `<data_dir>/prices/<cloud>.json`, else `shipped`). A failed load leaves the slot empty,
/// so the next collection tries again.
pub fn load_once(
    slot: &mut Option<std::sync::Arc<PriceList>>,
    cloud: Cloud,
    explicit: Option<&str>,
    data_dir: &Path,
    shipped: &str,
) -> Result<std::sync::Arc<PriceList>, PluginError> {
    if let Some(t) = slot {
        return Ok(t.clone());
    }
    let t = std::sync::Arc::new(PriceList::load(
        cloud,
        explicit.map(Path::new),
        data_dir,
        shipped,
    )?);
    *slot = Some(t.clone());
    Ok(t)
}

/// A resource attribute as text.
pub fn text<'r>(r: &'r Resource, key: &str) -> Option<&'r str> {
    r.attributes.get(key).and_then(|v| v.as_str())
}

/// A resource attribute as a number (numbers, or numeric text).
pub fn number(r: &Resource, key: &str) -> Option<f64> {
    match r.attributes.get(key)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUD: Cloud = Cloud {
        id: "gcp",
        display: "GCP",
        provider_name: "Google Cloud",
    };

    fn table() -> PriceList {
        PriceList::parse(
            CLOUD,
            r#"{"date":"2026-11-01","currency":"USD","source":"test",
                "regions":{"r1":{"a/b":{"usd":0.5,"per":"hour"}}}}"#,
            "t.json",
        )
        .unwrap()
    }

    fn resource(region: &str) -> Resource {
        serde_json::from_value(serde_json::json!({
            "provider": "gcp", "account": "p", "region": region, "id": "i-1",
            "kind": "compute.instance", "native_type": "compute.googleapis.com/Instance",
            "name": "i-1", "tags": {"team": "a"}, "observed_at": "2026-11-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn bad_tables_name_the_field() {
        let e = PriceList::parse(
            CLOUD,
            r#"{"date":"2026-11-01","currency":"USD","source":"s","regions":{"r":{"k":{"usd":-1,"per":"hour"}}}}"#,
            "x.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`regions.r.k.usd` is -1"), "{e}");
        let e = PriceList::parse(
            CLOUD,
            r#"{"date":"1 Nov","currency":"USD","source":"s"}"#,
            "x.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not YYYY-MM-DD"), "{e}");
        let e = PriceList::parse(CLOUD, "{", "x.json").unwrap_err();
        assert!(
            e.to_string()
                .contains("skymeter prices gcp update --output x.json"),
            "{e}"
        );
    }

    #[test]
    fn lines_and_missing_prices() {
        let t = table();
        let start = "2026-11-01T00:00:00Z".parse().unwrap();
        let end = "2026-11-01T02:00:00Z".parse().unwrap();
        let mut est = Estimator::new(CLOUD, &t, start, end);
        let (r1, r2) = (resource("r1"), resource("r2"));
        for r in [&r1, &r1, &r2] {
            est.charge(
                Line {
                    resource: r,
                    service: "Compute Engine",
                    category: "Compute",
                    key: "a/b".into(),
                    quantity: est.hours,
                    unit: "Hours",
                },
                || "no a/b price".into(),
            );
        }
        est.charge(
            Line {
                resource: &r1,
                service: "Compute Engine",
                category: "Compute",
                key: "a/c".into(),
                quantity: 1.0,
                unit: "Hours",
            },
            || "no a/c price".into(),
        );
        let (costs, missing) = est.finish();
        assert_eq!(costs.len(), 2);
        assert_eq!(costs[0].billed_cost, 1.0);
        assert_eq!(costs[0].sku_id.as_deref(), Some("r1/a/b"));
        assert_eq!(costs[0].provider_name, "Google Cloud");
        assert_eq!(costs[0].x_price_date.as_deref(), Some("2026-11-01"));
        assert_eq!(costs[0].tags.get("team").map(String::as_str), Some("a"));
        let msgs: Vec<String> = missing.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].contains("has no a/c price"), "{msgs:?}");
        assert!(
            msgs[1].contains("no prices for region r2 at all")
                && msgs[1].contains("skymeter prices gcp update --regions r2"),
            "{msgs:?}"
        );
    }
}
