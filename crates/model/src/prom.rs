//! The one mapping from skymeter names to Prometheus names, used by every Prometheus-facing
//! surface (query API, remote-write, exposition) so they all agree.
//!
//! - metric: dots and other invalid characters become `_`, then the unit suffix is appended
//!   unless the name already ends with it: `cpu.utilization` + `percent` →
//!   `cpu_utilization_percent`; `network.received_throughput` + `bytes/s` →
//!   `network_received_throughput_bytes_per_second`.
//! - labels: `provider, account, region, kind, resource_id, resource_name, stat`, the point's
//!   own labels, and resource tags as `tag_<key>` (invalid characters become `_`).

use crate::Unit;

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
