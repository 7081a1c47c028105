//! A small price table for the findings' tests and benchmark: m5 sizes at us-east-1 list
//! prices, gp3 at 0.08/GiB-month, an address at 0.005/h and snapshots at 0.05/GiB-month.
//! Included by both with `#[path]` (a benchmark cannot reach `cfg(test)` code).

use skymeter_model::Resource;
use skymeter_plugin_api::prices::{PriceRow, PriceTable, SizeOption, HOURS_PER_MONTH};
use std::collections::BTreeMap;

pub struct Table;

pub const M5: [(&str, f64, f64, f64); 4] = [
    ("m5.large", 2.0, 8192.0, 0.096),
    ("m5.xlarge", 4.0, 16384.0, 0.192),
    ("m5.2xlarge", 8.0, 32768.0, 0.384),
    ("m5.4xlarge", 16.0, 65536.0, 0.768),
];

impl PriceTable for Table {
    fn date(&self) -> &str {
        "2026-12-01"
    }
    fn currency(&self) -> &str {
        "USD"
    }
    fn source(&self) -> &str {
        "skymeter-savings tests"
    }
    fn regions(&self) -> Vec<String> {
        vec!["us-east-1".into()]
    }
    fn rows(&self, _region: &str) -> Vec<PriceRow> {
        Vec::new()
    }
    fn counts(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        BTreeMap::new()
    }
    fn to_json(&self) -> String {
        String::new()
    }
    fn retain_regions(&mut self, _keep: &dyn Fn(&str) -> bool) {}
    fn monthly_usd(&self, r: &Resource) -> Option<f64> {
        let a = |n: &str| r.attributes.get(n);
        match r.kind.as_str() {
            "compute.instance" => {
                let ty = a("instance_type")?.as_str()?;
                M5.iter().find(|m| m.0 == ty).map(|m| m.3 * HOURS_PER_MONTH)
            }
            "storage.volume" => Some(a("size_gib")?.as_f64()? * 0.08),
            "storage.snapshot" => Some(a("size_gib")?.as_f64()? * 0.05),
            "network.public_ip" => Some(0.005 * HOURS_PER_MONTH),
            _ => None,
        }
    }
    fn size_options(&self, r: &Resource) -> Vec<SizeOption> {
        if r.kind != "compute.instance" {
            return Vec::new();
        }
        M5.iter()
            .map(|m| SizeOption {
                name: m.0.into(),
                vcpus: m.1,
                memory_mib: m.2,
                monthly_usd: m.3 * HOURS_PER_MONTH,
            })
            .collect()
    }
}
