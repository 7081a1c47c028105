//! The flat SKU tables (GCP, Azure) as the CLI and the findings see them: [`PriceTable`]
//! over a [`PriceList`], with a resource's monthly list price and its sizes from its cloud's
//! estimator and machine series. Apart from `cloud/prices.rs` because it reads each cloud's
//! pricing (`collectors/<cloud>/prices.rs`), which itself builds on `cloud/prices.rs`.

use crate::common::price_list::PriceList;
#[cfg(any(feature = "gcp", feature = "azure"))]
use crate::common::price_list::{text, Cloud, Estimator, PricedKind};
use skymeter_model::Resource;
use skymeter_plugin_api::prices::{PriceRow, PriceTable, SizeOption};
use std::collections::BTreeMap;

impl PriceTable for PriceList {
    fn date(&self) -> &str {
        &self.date
    }
    fn currency(&self) -> &str {
        &self.currency
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn regions(&self) -> Vec<String> {
        self.regions.keys().cloned().collect()
    }
    fn rows(&self, region: &str) -> Vec<PriceRow> {
        self.regions
            .get(region)
            .map(|prices| {
                prices
                    .iter()
                    .map(|(key, p)| PriceRow {
                        key: key.clone(),
                        usd: p.usd,
                        per: p.per.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    fn counts(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        PriceList::counts(self)
    }
    fn to_json(&self) -> String {
        PriceList::to_json(self)
    }
    fn retain_regions(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.regions.retain(|r, _| keep(r));
    }
    fn monthly_usd(&self, resource: &Resource) -> Option<f64> {
        monthly_usd(self, resource)
    }
    fn size_options(&self, resource: &Resource) -> Vec<SizeOption> {
        size_options(self, resource)
    }
}

/// The kinds [`monthly_usd`] prices (those of them the resource's cloud estimates).
pub const MONTHLY_KINDS: [&str; 6] = [
    "compute.instance",
    "storage.volume",
    "storage.snapshot",
    "network.public_ip",
    "network.load_balancer",
    "network.nat_gateway",
];

/// How the flat table of a resource's cloud prices it: its estimator's kinds and the
/// machine series it knows for rightsizing.
#[cfg(any(feature = "gcp", feature = "azure"))]
struct Pricing {
    cloud: Cloud,
    kinds: &'static [PricedKind],
    same_series: fn(&str) -> Vec<(String, f64, f64)>,
}

#[cfg(any(feature = "gcp", feature = "azure"))]
fn pricing(provider: &str) -> Option<Pricing> {
    match provider {
        #[cfg(feature = "gcp")]
        "gcp" => Some(Pricing {
            cloud: crate::collectors::gcp::prices::CLOUD,
            kinds: crate::collectors::gcp::prices::PRICED_KINDS,
            same_series: crate::collectors::gcp::prices::same_series,
        }),
        #[cfg(feature = "azure")]
        "azure" => Some(Pricing {
            cloud: crate::collectors::azure::prices::CLOUD,
            kinds: crate::collectors::azure::prices::PRICED_KINDS,
            same_series: crate::collectors::azure::prices::same_series,
        }),
        _ => None,
    }
}

/// What `resource` costs per month of [`HOURS_PER_MONTH`](skymeter_plugin_api::prices::HOURS_PER_MONTH)
/// hours at `table`'s list prices: the sum of the cost lines its cloud's estimator makes over
/// such a month (an instance's hours × its price or vCPU and memory prices, a volume's or
/// snapshot's GiB × its GiB-month price, an address, load balancer or NAT gateway's hours),
/// as the aws table does: an instance is priced as if it ran, whatever its state. `None`
/// when the table lacks a price it needs, when the estimator makes no line for it (Spot
/// VMs; a Basic Azure load balancer or a GCP address used by a forwarding rule, which cost
/// nothing; a resource without its size or type), or when its kind or cloud is not priced by
/// a flat table (GCP Cloud NAT: priced per VM using it).
pub fn monthly_usd(table: &PriceList, resource: &Resource) -> Option<f64> {
    if !MONTHLY_KINDS.contains(&resource.kind.as_str()) {
        return None;
    }
    #[cfg(any(feature = "gcp", feature = "azure"))]
    {
        let p = pricing(&resource.provider)?;
        if !p.kinds.iter().any(|(k, _)| *k == resource.kind) {
            return None;
        }
        let running;
        let resource = if resource.kind == "compute.instance" {
            let mut r = resource.clone();
            r.attributes
                .insert("state".into(), serde_json::json!("running"));
            running = r;
            &running
        } else {
            resource
        };
        let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let end =
            start + chrono::Duration::hours(skymeter_plugin_api::prices::HOURS_PER_MONTH as i64);
        let (costs, missing) = Estimator::by_kind(
            p.cloud,
            table,
            start,
            end,
            std::slice::from_ref(resource),
            p.kinds,
        );
        if !missing.is_empty() || costs.is_empty() {
            return None;
        }
        Some(costs.iter().map(|c| c.billed_cost).sum())
    }
    #[cfg(not(any(feature = "gcp", feature = "azure")))]
    {
        let _ = table;
        None
    }
}

/// The sizes a `compute.instance` could run as: every machine type (GCP) or VM size (Azure)
/// of its series that the table prices in its region, with vCPUs, memory and
/// [`monthly_usd`] as a running, on-demand instance on the same platform; cheapest first
/// (then by name). Its own type is among them. Empty for other kinds and unknown series.
pub fn size_options(table: &PriceList, resource: &Resource) -> Vec<SizeOption> {
    #[cfg(any(feature = "gcp", feature = "azure"))]
    {
        if resource.kind != "compute.instance" {
            return Vec::new();
        }
        let (Some(p), Some(ty)) = (pricing(&resource.provider), text(resource, "instance_type"))
        else {
            return Vec::new();
        };
        let mut out: Vec<SizeOption> = (p.same_series)(ty)
            .into_iter()
            .filter_map(|(name, vcpus, memory_mib)| {
                let mut r = resource.clone();
                let a = &mut r.attributes;
                a.insert("instance_type".into(), serde_json::json!(name));
                a.insert("vcpus".into(), serde_json::json!(vcpus));
                a.insert("memory_mib".into(), serde_json::json!(memory_mib));
                a.insert("state".into(), serde_json::json!("running"));
                a.remove("lifecycle");
                let monthly_usd = monthly_usd(table, &r).filter(|m| *m > 0.0)?;
                Some(SizeOption {
                    name,
                    vcpus,
                    memory_mib,
                    monthly_usd,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.monthly_usd
                .total_cmp(&b.monthly_usd)
                .then_with(|| a.name.cmp(&b.name))
        });
        out
    }
    #[cfg(not(any(feature = "gcp", feature = "azure")))]
    {
        let _ = (table, resource);
        Vec::new()
    }
}

#[cfg(all(test, feature = "gcp", feature = "azure"))]
mod tests {
    use super::*;
    use crate::collectors::{azure, gcp};

    fn resource(provider: &str, kind: &str, region: &str, attrs: serde_json::Value) -> Resource {
        serde_json::from_value(serde_json::json!({
            "provider": provider, "account": "a", "region": region, "id": "r-1",
            "kind": kind, "native_type": "t", "name": "r-1",
            "attributes": attrs, "observed_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap()
    }

    fn shipped(cloud: Cloud, text: &str) -> PriceList {
        PriceList::parse(cloud, text, "shipped").unwrap()
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.unwrap_or_else(|| panic!("no price, expected {b}"));
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn gcp_monthly_prices_from_the_shipped_table() {
        let t = shipped(gcp::prices::CLOUD, gcp::prices::SHIPPED);
        let t: &dyn PriceTable = &t;
        // n2-standard-4 in us-central1: (4 × 0.031611 + 16 × 0.004237) × 730.
        let vm = resource(
            "gcp",
            "compute.instance",
            "us-central1",
            serde_json::json!({"instance_type": "n2-standard-4", "vcpus": 4, "memory_mib": 16384, "state": "running"}),
        );
        close(t.monthly_usd(&vm), 141.79228);
        let mut stopped = vm.clone();
        stopped
            .attributes
            .insert("state".into(), serde_json::json!("stopped"));
        // A stopped instance is priced as if it ran; a Spot one has no list price.
        close(t.monthly_usd(&stopped), 141.79228);
        let mut spot = vm.clone();
        spot.attributes
            .insert("lifecycle".into(), serde_json::json!("spot"));
        assert_eq!(t.monthly_usd(&spot), None);
        // A 100 GiB pd-standard disk: 100 × 0.04.
        let disk = resource(
            "gcp",
            "storage.volume",
            "us-central1",
            serde_json::json!({"volume_type": "pd-standard", "size_gib": 100, "availability_zone": "us-central1-a"}),
        );
        close(t.monthly_usd(&disk), 4.0);
        // A 5.5 GiB standard snapshot in the `us` multi-region: 5.5 × 0.065; archive in a region: 2 × 0.019.
        let snap = resource(
            "gcp",
            "storage.snapshot",
            "us-central1",
            serde_json::json!({"size_gib": 5.5, "storage_tier": "standard", "storage_location": "us"}),
        );
        close(t.monthly_usd(&snap), 0.3575);
        let arch = resource(
            "gcp",
            "storage.snapshot",
            "us-central1",
            serde_json::json!({"size_gib": 2, "storage_tier": "archive", "storage_location": "us-central1"}),
        );
        close(t.monthly_usd(&arch), 0.038);
        // An unused static address: 0.01 × 730; in use by a VM: 0.005 × 730; by a forwarding rule: free.
        let ip = |assoc: bool, user: Option<&str>| {
            resource(
                "gcp",
                "network.public_ip",
                "us-central1",
                serde_json::json!({"associated": assoc, "attached_to": user}),
            )
        };
        close(t.monthly_usd(&ip(false, None)), 7.3);
        close(
            t.monthly_usd(&ip(true, Some("projects/p/zones/z/instances/vm"))),
            3.65,
        );
        // Used by a forwarding rule: no charge, no line, no monthly figure.
        assert_eq!(
            t.monthly_usd(&ip(true, Some("projects/p/regions/r/forwardingRules/f"))),
            None
        );
        // A forwarding rule: 0.025 × 730; global rules from the `global` row.
        let lb = resource(
            "gcp",
            "network.load_balancer",
            "us-central1",
            serde_json::json!({}),
        );
        close(t.monthly_usd(&lb), 18.25);
        let mut global = lb.clone();
        global.region = "global".into();
        close(t.monthly_usd(&global), 18.25);
        // Not priced: Cloud NAT (per VM using it), a region the table lacks, other kinds.
        let nat = resource(
            "gcp",
            "network.nat_gateway",
            "us-central1",
            serde_json::json!({}),
        );
        assert_eq!(t.monthly_usd(&nat), None);
        let mut far = lb.clone();
        far.region = "asia-east1".into();
        assert_eq!(t.monthly_usd(&far), None);
        let bucket = resource(
            "gcp",
            "storage.bucket",
            "us-central1",
            serde_json::json!({}),
        );
        assert_eq!(t.monthly_usd(&bucket), None);
    }

    #[test]
    fn azure_monthly_prices_from_the_shipped_table() {
        let t = shipped(azure::prices::CLOUD, azure::prices::SHIPPED);
        let t: &dyn PriceTable = &t;
        let r = |kind: &str, attrs: serde_json::Value| resource("azure", kind, "eastus", attrs);
        // Standard_D4s_v5 Linux: 0.192 × 730.
        close(
            t.monthly_usd(&r(
                "compute.instance",
                serde_json::json!({"instance_type": "Standard_D4s_v5", "state": "running", "platform": "linux"}),
            )),
            140.16,
        );
        // A 128 GiB Premium_LRS disk is a P10: 19.71 a month.
        close(
            t.monthly_usd(&r(
                "storage.volume",
                serde_json::json!({"volume_type": "Premium_LRS", "size_gib": 128}),
            )),
            19.71,
        );
        // A 128 GiB Standard_LRS snapshot: 128 × 0.05.
        close(
            t.monthly_usd(&r(
                "storage.snapshot",
                serde_json::json!({"sku": "Standard_LRS", "size_gib": 128}),
            )),
            6.4,
        );
        // A Standard static IP, associated or not: 0.005 × 730.
        close(
            t.monthly_usd(&r(
                "network.public_ip",
                serde_json::json!({"sku": "Standard", "allocation": "Static", "public_ip": "20.1.2.3", "associated": false}),
            )),
            3.65,
        );
        // A Standard load balancer with 7 rules: (0.025 + 2 × 0.01) × 730; Basic: free (no
        // line).
        close(
            t.monthly_usd(&r(
                "network.load_balancer",
                serde_json::json!({"sku": "Standard", "rules": 7}),
            )),
            32.85,
        );
        assert_eq!(
            t.monthly_usd(&r(
                "network.load_balancer",
                serde_json::json!({"sku": "Basic"}),
            )),
            None
        );
        // A NAT gateway: 0.045 × 730.
        close(
            t.monthly_usd(&r(
                "network.nat_gateway",
                serde_json::json!({"sku": "Standard"}),
            )),
            32.85,
        );
        // A Gateway load balancer is not estimated: no monthly figure.
        assert_eq!(
            t.monthly_usd(&r(
                "network.load_balancer",
                serde_json::json!({"sku": "Gateway", "rules": 1}),
            )),
            None
        );
        // A ZRS snapshot: no price in the table.
        assert_eq!(
            t.monthly_usd(&r(
                "storage.snapshot",
                serde_json::json!({"sku": "Standard_ZRS", "size_gib": 64}),
            )),
            None
        );
    }

    #[test]
    fn size_options_are_the_priced_sizes_of_the_series_cheapest_first() {
        let t = shipped(gcp::prices::CLOUD, gcp::prices::SHIPPED);
        let t: &dyn PriceTable = &t;
        let vm = resource(
            "gcp",
            "compute.instance",
            "us-central1",
            serde_json::json!({"instance_type": "n2-standard-8", "vcpus": 8, "memory_mib": 32768, "state": "running", "lifecycle": "spot"}),
        );
        let opts = t.size_options(&vm);
        assert_eq!(opts.len(), 10);
        assert_eq!(opts[0].name, "n2-standard-2");
        assert_eq!(opts[0].vcpus, 2.0);
        assert_eq!(opts[0].memory_mib, 8192.0);
        // (2 × 0.031611 + 8 × 0.004237) × 730 = 70.89614.
        assert!(
            (opts[0].monthly_usd - 70.89614).abs() < 1e-9,
            "{}",
            opts[0].monthly_usd
        );
        assert_eq!(opts[9].name, "n2-standard-128");
        assert!(opts
            .windows(2)
            .all(|w| w[0].monthly_usd <= w[1].monthly_usd));
        // In a region the table lacks, nothing is priced.
        let mut far = vm.clone();
        far.region = "asia-east1".into();
        assert!(t.size_options(&far).is_empty());

        let t = shipped(azure::prices::CLOUD, azure::prices::SHIPPED);
        let t: &dyn PriceTable = &t;
        let vm = resource(
            "azure",
            "compute.instance",
            "eastus",
            serde_json::json!({"instance_type": "Standard_D8s_v5", "state": "running", "platform": "linux"}),
        );
        let opts: Vec<(String, f64, f64, f64)> = t
            .size_options(&vm)
            .into_iter()
            .map(|o| (o.name, o.vcpus, o.memory_mib, o.monthly_usd))
            .collect();
        // The Dsv5 sizes the shipped eastus table prices (Linux), cheapest first.
        let want = [
            ("Standard_D2s_v5", 2.0, 8192.0, 70.08),
            ("Standard_D4s_v5", 4.0, 16384.0, 140.16),
            ("Standard_D8s_v5", 8.0, 32768.0, 280.32),
            ("Standard_D16s_v5", 16.0, 65536.0, 560.64),
            ("Standard_D32s_v5", 32.0, 131072.0, 1121.28),
        ];
        assert_eq!(opts.len(), want.len(), "{opts:?}");
        for (got, want) in opts.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1, got.2), (want.0, want.1, want.2));
            assert!((got.3 - want.3).abs() < 1e-9, "{got:?}");
        }
        // A Windows VM (no Windows prices for Dsv5 in the table) has no options; other kinds none.
        let mut win = vm.clone();
        win.attributes
            .insert("platform".into(), serde_json::json!("windows"));
        assert!(t.size_options(&win).is_empty());
        let disk = resource("azure", "storage.volume", "eastus", serde_json::json!({}));
        assert!(t.size_options(&disk).is_empty());
    }
}
