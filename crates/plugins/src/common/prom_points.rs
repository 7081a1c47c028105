//! Prometheus samples → skymeter readings, shared by the `prometheus` collector and the
//! `exec` collector's `prometheus` format.
//!
//! - Names stay Prometheus names (with an optional prefix); a counter's `_total` is dropped
//!   because its points are rates, not totals.
//! - gauges, untyped, info and stateset samples, summary quantiles → gauges (`Stat::Last`),
//!   unit inferred from the name suffix ([`unit_from_name`]).
//! - counters, histogram `_bucket`/`_count`/`_sum`, summary `_count`/`_sum` → per-second
//!   rates; `_sum` takes the family's unit per second (`_seconds` → ratio, `_bytes` →
//!   bytes/s), `_bucket` and `_count` are count/s.
//! - gauge histogram parts → gauges; OpenMetrics `_created` samples are skipped (they are
//!   timestamps, not measurements).
//! - Labels are kept as they are, `le` and `quantile` included.

use super::prom_text::{self, MetricType, ParseError, Sample, SampleKind};
use super::series::{rate_unit, Reading, ReadingKind};
use skymeter_model::{Labels, Stat, Unit};
use skymeter_plugin_api::MetricSelection;

/// The unit a Prometheus name's suffix says, following Prometheus' naming conventions.
///
/// | suffix | unit |
/// |---|---|
/// | `_bytes` | bytes |
/// | `_seconds` | s |
/// | `_ratio` | ratio |
/// | `_percent` | percent |
/// | `_celsius` | celsius |
/// | `_watts` | watts |
/// | `_joules` | joules |
/// | `_hertz` | hz |
/// | anything else | none |
pub fn unit_from_name(name: &str) -> Unit {
    const SUFFIXES: [(&str, Unit); 8] = [
        ("_bytes", Unit::Bytes),
        ("_seconds", Unit::Seconds),
        ("_ratio", Unit::Ratio),
        ("_percent", Unit::Percent),
        ("_celsius", Unit::Celsius),
        ("_watts", Unit::Watts),
        ("_joules", Unit::Joules),
        ("_hertz", Unit::Hertz),
    ];
    SUFFIXES
        .iter()
        .find(|(s, _)| name.ends_with(s))
        .map_or(Unit::None, |(_, u)| *u)
}

/// How samples become readings: prefix and name filters.
#[derive(Debug, Clone, Default)]
pub struct PromConvert {
    /// Put before every metric name (`app.` turns `http_requests_total` into
    /// `app.http_requests`).
    pub prefix: String,
    /// Globs on the exposed sample names (`node_cpu_*`); empty keeps all.
    pub include: MetricSelection,
    /// Globs on the exposed sample names; applied after `include`.
    pub exclude: Option<MetricSelection>,
}

/// What one body gave.
#[derive(Debug, Default)]
pub struct Converted {
    pub readings: Vec<Reading>,
    /// Every sample of the body, before any filter (Prometheus' `scrape_samples_scraped`).
    pub samples: usize,
}

impl PromConvert {
    /// Parses `body` and converts the samples that pass the filters and `wanted` (the task's
    /// metric selection, matched on the final skymeter name). A bad line rejects the body.
    pub fn convert(&self, body: &str, wanted: &MetricSelection) -> Result<Converted, ParseError> {
        let mut readings = Vec::new();
        let summary = prom_text::parse_each(body, |s| {
            if let Some(r) = self.reading(s, wanted) {
                readings.push(r);
            }
        })?;
        Ok(Converted {
            readings,
            samples: summary.samples,
        })
    }

    fn reading(&self, s: &Sample<'_, '_>, wanted: &MetricSelection) -> Option<Reading> {
        if !self.include.matches(s.name) || self.exclude.as_ref().is_some_and(|e| e.matches(s.name))
        {
            return None;
        }
        let gauge = |unit| ReadingKind::Gauge {
            unit,
            stat: Stat::Last,
        };
        let counter = |base| ReadingKind::Counter {
            rate_unit: rate_unit(base),
        };
        use MetricType as T;
        use SampleKind as K;
        let (name, kind) = match (s.family_type, s.kind) {
            (_, K::Created) => return None,
            (T::Counter, _) => {
                let name = s.name.strip_suffix("_total").unwrap_or(s.name);
                (name, counter(unit_from_name(name)))
            }
            (T::Histogram | T::Summary, K::Bucket | K::Count) => (s.name, counter(Unit::Count)),
            (T::Histogram | T::Summary, K::Sum) => (s.name, counter(unit_from_name(s.family))),
            (T::Summary | T::Histogram, _) => (s.name, gauge(unit_from_name(s.family))),
            (T::GaugeHistogram, K::Bucket | K::Count) => (s.name, gauge(Unit::Count)),
            (T::GaugeHistogram, _) => (s.name, gauge(unit_from_name(s.family))),
            (T::Gauge | T::Untyped | T::Info | T::StateSet, _) => {
                (s.name, gauge(unit_from_name(s.name)))
            }
        };
        let metric = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}{name}", self.prefix)
        };
        if !wanted.matches(&metric) {
            return None;
        }
        let labels: Labels = s
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        Some(Reading {
            metric,
            labels,
            value: s.value,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_map_to_gauges_and_counters_with_units() {
        let body = "\
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device=\"eth0\"} 100
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 5
# TYPE requests counter
requests_total 7
requests_created 1.7e9
# TYPE node_memory_MemFree_bytes gauge
node_memory_MemFree_bytes 2048
# TYPE lat_seconds histogram
lat_seconds_bucket{le=\"+Inf\"} 3
lat_seconds_sum 1.5
lat_seconds_count 3
# TYPE rpc_bytes summary
rpc_bytes{quantile=\"0.5\"} 10
rpc_bytes_sum 30
rpc_bytes_count 3
# TYPE q gaugehistogram
q_bucket{le=\"1\"} 4
q_gsum 2
temp_celsius 40
total_things_total 9
";
        let conv = PromConvert {
            prefix: "p.".into(),
            ..Default::default()
        };
        let c = conv.convert(body, &MetricSelection::all()).unwrap();
        assert_eq!(c.samples, 15);
        let g = |u| ReadingKind::Gauge {
            unit: u,
            stat: Stat::Last,
        };
        let r = |u| ReadingKind::Counter { rate_unit: u };
        let got: Vec<(&str, ReadingKind)> = c
            .readings
            .iter()
            .map(|r| (r.metric.as_str(), r.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("p.node_network_receive_bytes", r(Unit::BytesPerSecond)),
                ("p.process_cpu_seconds", r(Unit::Ratio)),
                ("p.requests", r(Unit::CountPerSecond)),
                ("p.node_memory_MemFree_bytes", g(Unit::Bytes)),
                ("p.lat_seconds_bucket", r(Unit::CountPerSecond)),
                ("p.lat_seconds_sum", r(Unit::Ratio)),
                ("p.lat_seconds_count", r(Unit::CountPerSecond)),
                ("p.rpc_bytes", g(Unit::Bytes)),
                ("p.rpc_bytes_sum", r(Unit::BytesPerSecond)),
                ("p.rpc_bytes_count", r(Unit::CountPerSecond)),
                ("p.q_bucket", g(Unit::Count)),
                ("p.q_gsum", g(Unit::None)),
                ("p.temp_celsius", g(Unit::Celsius)),
                ("p.total_things_total", g(Unit::None)),
            ]
        );
        assert_eq!(c.readings[0].labels["device"], "eth0");
        assert_eq!(c.readings[4].labels["le"], "+Inf");
        assert_eq!(c.readings[7].labels["quantile"], "0.5");
    }

    #[test]
    fn include_and_exclude_match_exposed_names_and_wanted_the_final_ones() {
        let body = "a_total 1\nb_bytes 2\nb_other 3\ngo_x 4\n";
        let conv = PromConvert {
            prefix: String::new(),
            include: MetricSelection::new(&["a_*", "b_*"]).unwrap(),
            exclude: Some(MetricSelection::new(&["b_o*"]).unwrap()),
        };
        let names = |wanted: &MetricSelection| -> Vec<String> {
            conv.convert(body, wanted)
                .unwrap()
                .readings
                .into_iter()
                .map(|r| r.metric)
                .collect()
        };
        assert_eq!(names(&MetricSelection::all()), ["a_total", "b_bytes"]);
        assert_eq!(names(&MetricSelection::new(&["b_*"]).unwrap()), ["b_bytes"]);
        assert_eq!(
            [
                unit_from_name("x_hertz"),
                unit_from_name("x_ratio"),
                unit_from_name("x_percent"),
                unit_from_name("x_watts"),
                unit_from_name("x_joules"),
                unit_from_name("x_seconds"),
                unit_from_name("x_bytesx"),
            ],
            [
                Unit::Hertz,
                Unit::Ratio,
                Unit::Percent,
                Unit::Watts,
                Unit::Joules,
                Unit::Seconds,
                Unit::None
            ]
        );
    }
}
