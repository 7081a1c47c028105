//! The one mapping from skymeter names to Prometheus names, used by every Prometheus-facing
//! surface (query API, remote-write, exposition) so they all agree.
//!
//! - metric: dots and other invalid characters become `_`, then the unit suffix is appended
//!   unless the name already ends with it: `cpu.utilization` + `percent` →
//!   `cpu_utilization_percent`; `network.received_throughput` + `bytes/s` →
//!   `network_received_throughput_bytes_per_second`.
//! - labels: `provider, account, region, kind, resource_id, resource_name, stat`, the point's
//!   own labels, and resource tags as `tag_<key>` (invalid characters become `_`).

use crate::{Labels, Resource, ResourceRef, Stat, Unit};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The labels every series gets from its key and resource (the first six from the key), in
/// this order; any other label of a series is the point's own or a `tag_<key>`.
pub const SERIES_LABELS: [&str; 8] = [
    "__name__",
    "provider",
    "account",
    "region",
    "resource_id",
    "stat",
    "kind",
    "resource_name",
];

/// The suffix a unit adds to a Prometheus metric name (empty for plain counts).
pub fn unit_suffix(unit: Unit) -> &'static str {
    match unit {
        Unit::Percent => "percent",
        Unit::Ratio => "ratio",
        Unit::Bytes => "bytes",
        Unit::BytesPerSecond => "bytes_per_second",
        Unit::BitsPerSecond => "bits_per_second",
        Unit::Count => "",
        Unit::CountPerSecond => "per_second",
        Unit::Milliseconds => "milliseconds",
        Unit::Seconds => "seconds",
        Unit::Hertz => "hertz",
        Unit::Celsius => "celsius",
        Unit::Watts => "watts",
        Unit::Joules => "joules",
        Unit::Usd => "usd",
        Unit::None => "",
    }
}

/// Replaces every character Prometheus does not allow in a name with `_`.
pub fn sanitize(name: &str, allow_colon: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// The Prometheus metric name of a skymeter metric with the given unit.
pub fn metric_name(metric: &str, unit: Unit) -> String {
    let mut name = sanitize(metric, true);
    let suffix = unit_suffix(unit);
    if !suffix.is_empty() && !name.ends_with(suffix) {
        name.push('_');
        name.push_str(suffix);
    }
    name
}

/// The Prometheus label name of a resource tag.
pub fn tag_label(key: &str) -> String {
    format!("tag_{}", sanitize(key, false))
}

/// What the labels of a series take from its resource's latest record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceLabels {
    pub kind: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

impl ResourceLabels {
    pub fn of(r: &Resource) -> Self {
        ResourceLabels {
            kind: r.kind.clone(),
            name: r.name.clone(),
            tags: r.tags.clone().into_iter().collect(),
        }
    }
}

/// What identifies a series: a point's metric, unit, stat, resource and labels.
#[derive(Debug, Clone, Copy)]
pub struct SeriesId<'a> {
    pub metric: &'a str,
    pub unit: Unit,
    pub stat: Stat,
    pub resource: &'a ResourceRef,
    pub labels: &'a Labels,
}

impl<'a> SeriesId<'a> {
    pub fn of(p: &'a crate::Point) -> Self {
        SeriesId {
            metric: &p.metric,
            unit: p.unit,
            stat: p.stat,
            resource: &p.resource,
            labels: &p.labels,
        }
    }
}

/// The Prometheus labels of a series, sorted by name, each name once, no empty value: what
/// skymeter's query API shows and what the `remote_write` publisher sends, so that a
/// dashboard reads the same series from either. `resource` is the resource's latest record
/// (its kind, name and tags), when known.
///
/// A point label named like one of [`SERIES_LABELS`] (or starting with `__`) is renamed
/// `exported_<name>`; a tag label colliding with a point label loses to it.
pub fn series_labels(id: SeriesId<'_>, resource: Option<&ResourceLabels>) -> Vec<(String, String)> {
    series_label_refs(id, resource)
        .into_iter()
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

/// [`series_labels`], borrowing what it can: for encoders that write the labels out at once
/// (the `remote_write` publisher), a few allocations per series instead of two per label.
pub fn series_label_refs<'a>(
    id: SeriesId<'a>,
    resource: Option<&'a ResourceLabels>,
) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let r = id.resource;
    let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> =
        Vec::with_capacity(10 + id.labels.len() + resource.map_or(0, |x| x.tags.len()));
    // Tags, then point labels, then the fixed labels: on a collision the later pair wins.
    if let Some(res) = resource {
        for (k, v) in &res.tags {
            pairs.push((tag_label(k).into(), v.as_str().into()));
        }
    }
    for (k, v) in id.labels.iter() {
        let mut name = sanitize(k, false);
        if SERIES_LABELS.contains(&name.as_str()) || name.starts_with("__") {
            name = format!("exported_{}", name.trim_start_matches('_'));
        }
        pairs.push((name.into(), v.as_str().into()));
    }
    if let Some(res) = resource {
        pairs.push(("kind".into(), res.kind.as_str().into()));
        pairs.push(("resource_name".into(), res.name.as_str().into()));
    }
    pairs.push(("__name__".into(), metric_name(id.metric, id.unit).into()));
    pairs.push(("provider".into(), r.provider.as_str().into()));
    pairs.push(("account".into(), r.account.as_str().into()));
    pairs.push(("region".into(), r.region.as_str().into()));
    pairs.push(("resource_id".into(), r.id.as_str().into()));
    pairs.push(("stat".into(), id.stat.as_str().into()));
    // A stable sort keeps the push order among equal names, so the last one is kept.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match kept.last_mut() {
            Some(prev) if prev.0 == pair.0 => *prev = pair,
            _ => kept.push(pair),
        }
    }
    kept.retain(|(_, v)| !v.is_empty());
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_mapping() {
        assert_eq!(
            metric_name("cpu.utilization", Unit::Percent),
            "cpu_utilization_percent"
        );
        assert_eq!(
            metric_name("network.received_throughput", Unit::BytesPerSecond),
            "network_received_throughput_bytes_per_second"
        );
        assert_eq!(metric_name("process.count", Unit::Count), "process_count");
        assert_eq!(
            metric_name("node_memory_bytes", Unit::Bytes),
            "node_memory_bytes"
        );
        assert_eq!(metric_name("1weird-name", Unit::None), "_1weird_name");
        assert_eq!(tag_label("cost-center"), "tag_cost_center");
    }
}
