//! The Prometheus labels of a stored series (the table in the module's documentation), and
//! helpers over label sets that every backend's Prometheus view uses.

use crate::types::SeriesKey;
use skymeter_model::prom::SeriesId;
use skymeter_model::Unit;
use skymeter_promql::{Labels, Matcher};
use std::collections::BTreeSet;

/// The labels every series gets from its key and resource; a point label of one of these
/// names is renamed `exported_<name>`.
pub const RESERVED: [&str; 8] = skymeter_model::prom::SERIES_LABELS;

pub use skymeter_model::prom::ResourceLabels;

/// The Prometheus labels of a stored series: [`skymeter_model::prom::series_labels`], the
/// one mapping the `remote_write` publisher also sends.
pub fn series_labels(key: &SeriesKey, resource: Option<&ResourceLabels>) -> Labels {
    let id = SeriesId {
        metric: &key.metric,
        unit: key.unit,
        stat: key.stat,
        resource: &key.resource,
        labels: &key.labels,
    };
    let pairs = skymeter_model::prom::series_labels(id, resource);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    Labels::from_sorted_pairs(&refs)
}

/// A metric name as the store knows it: for `/api/v1/metadata`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromMetric {
    /// `cpu_utilization_percent`
    pub name: String,
    /// `cpu.utilization`
    pub metric: String,
    pub unit: Unit,
}

/// Whether any of `selectors` (each a conjunction of matchers) matches; no selectors
/// matches everything.
pub fn matches_any(selectors: &[Vec<Matcher>], labels: &Labels) -> bool {
    selectors.is_empty()
        || selectors
            .iter()
            .any(|s| skymeter_promql::matches_all(s, labels))
}

/// Label names of a list of label sets, sorted and unique.
pub fn label_names_of<'a>(sets: impl IntoIterator<Item = &'a Labels>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for l in sets {
        for (n, _) in l.iter() {
            if !names.contains(n) {
                names.insert(n.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// Values of one label over a list of label sets, sorted and unique.
pub fn label_values_of<'a>(name: &str, sets: impl IntoIterator<Item = &'a Labels>) -> Vec<String> {
    let mut values = BTreeSet::new();
    for l in sets {
        if let Some(v) = l.get(name) {
            if !values.contains(v) {
                values.insert(v.to_string());
            }
        }
    }
    values.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skymeter_model::{ResourceRef, Stat};

    fn key(labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            metric: "cpu.utilization".into(),
            unit: Unit::Percent,
            stat: Stat::Max,
            resource: ResourceRef {
                provider: "aws".into(),
                account: "123".into(),
                region: "".into(),
                id: "i-1".into(),
            },
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn labels_follow_the_mapping_and_collisions_are_exported() {
        let res = ResourceLabels {
            kind: "compute.instance".into(),
            name: "web".into(),
            tags: [("cost-center".to_string(), "42".to_string())].into(),
        };
        let l = series_labels(
            &key(&[("cpu", "3"), ("region", "x"), ("__y", "z"), ("empty", "")]),
            Some(&res),
        );
        assert_eq!(
            l.to_string(),
            r#"{__name__="cpu_utilization_percent", account="123", cpu="3", exported_region="x", exported_y="z", kind="compute.instance", provider="aws", resource_id="i-1", resource_name="web", stat="max", tag_cost_center="42"}"#
        );
        // No resource record: no kind, name or tags; the empty region is absent.
        let l = series_labels(&key(&[]), None);
        assert_eq!(l.get("region"), None);
        assert_eq!(l.get("kind"), None);
        assert_eq!(l.len(), 5);
    }
}
