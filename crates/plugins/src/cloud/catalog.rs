//! `skymeter metrics` rows of a cloud's metric catalog: a normalized metric may come from
//! several native metrics (one per resource kind), listed once with all its sources.

use skymeter_model::{Stat, Unit};
use skymeter_plugin_api::MetricInfo;

/// What a cloud says of one normalized metric, from its catalog entries.
pub struct CatalogRow {
    pub unit: Unit,
    pub stats: Vec<Stat>,
    /// Labels that tell its series apart.
    pub labels: Vec<&'static str>,
    /// The native metrics it is read from, in the cloud's words.
    pub source: String,
}

/// One [`MetricInfo`] per metric name of `entries`, in catalog order; `row` describes a
/// name from every entry that has it; the description comes from the normalized catalog.
pub fn metric_infos<T>(
    entries: &[T],
    name_of: impl Fn(&T) -> &'static str,
    row: impl Fn(&'static str, &[&T]) -> CatalogRow,
) -> Vec<MetricInfo> {
    let mut names: Vec<&'static str> = Vec::new();
    for e in entries {
        let n = name_of(e);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let same: Vec<&T> = entries.iter().filter(|e| name_of(e) == name).collect();
            let r = row(name, &same);
            MetricInfo {
                name: name.into(),
                unit: r.unit,
                stats: r.stats,
                labels: r.labels,
                source: r.source,
                description: skymeter_model::catalog::lookup(name)
                    .map(|c| c.description.to_string())
                    .unwrap_or_default(),
            }
        })
        .collect()
}
