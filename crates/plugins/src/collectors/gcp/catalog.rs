//! The Cloud Monitoring catalog: which metric type of which monitored resource becomes which
//! normalized metric (DESIGN §3), with which aligners, and how values are scaled.

use skymeter_model::{Stat, Unit};

/// The resources metrics are asked for, and the monitored-resource type they report under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `gce_instance`, series keyed by `resource.labels.instance_id`.
    Instance,
    /// `cloudsql_database`, keyed by `resource.labels.database_id` (`project:instance`).
    Sql,
    /// `cloud_function` (1st-gen functions), keyed by `resource.labels.region` +
    /// `function_name`.
    Function,
    /// `cloud_run_revision`: 2nd-gen functions report as the Cloud Run service they run on,
    /// keyed by `resource.labels.location` + `service_name`.
    RunRevision,
    /// `gcs_bucket`, keyed by `resource.labels.bucket_name`.
    Bucket,
    /// `https_lb_rule`: the forwarding rules of external Application (HTTP(S)) load
    /// balancers, keyed by `resource.labels.region` (`global` for global ones) +
    /// `forwarding_rule_name`.
    HttpsLbRule,
    /// `nat_gateway`: Cloud NAT gateways, keyed by `resource.labels.region` + `router_id` +
    /// `gateway_name`.
    NatGateway,
}

impl Target {
    pub fn resource_type(self) -> &'static str {
        match self {
            Target::Instance => "gce_instance",
            Target::Sql => "cloudsql_database",
            Target::Function => "cloud_function",
            Target::RunRevision => "cloud_run_revision",
            Target::Bucket => "gcs_bucket",
            Target::HttpsLbRule => "https_lb_rule",
            Target::NatGateway => "nat_gateway",
        }
    }

    /// The resource labels that name one resource (the `groupByFields` of a reduced query).
    pub fn key_labels(self) -> &'static [&'static str] {
        match self {
            Target::Instance => &["instance_id"],
            Target::Sql => &["database_id"],
            Target::Function => &["region", "function_name"],
            Target::RunRevision => &["location", "service_name"],
            Target::Bucket => &["bucket_name"],
            Target::HttpsLbRule => &["region", "forwarding_rule_name"],
            Target::NatGateway => &["region", "router_id", "gateway_name"],
        }
    }

    /// The resource kind (record `kind`) it applies to.
    pub fn kind(self) -> &'static str {
        match self {
            Target::Instance => "compute.instance",
            Target::Sql => "database.instance",
            Target::Function | Target::RunRevision => "function",
            Target::Bucket => "storage.bucket",
            Target::HttpsLbRule => "network.load_balancer",
            Target::NatGateway => "network.nat_gateway",
        }
    }

    /// Whether `r`'s metrics come from this target: 2nd-gen functions (`environment`
    /// GEN_2, with the Cloud Run `service_name` they run on) from `cloud_run_revision`, the
    /// others from `cloud_function`.
    pub fn applies_to(self, r: &skymeter_model::Resource) -> bool {
        let gen2 = || {
            r.attributes.get("environment").and_then(|v| v.as_str()) == Some("GEN_2")
                && r.attributes.contains_key("service_name")
        };
        let text = |k: &str| r.attributes.get(k).and_then(|v| v.as_str());
        r.kind == self.kind()
            && match self {
                Target::Function => !gen2(),
                Target::RunRevision => gen2(),
                // Only external Application load balancers report as https_lb_rule.
                Target::HttpsLbRule => {
                    text("lb_type") == Some("application") && text("scheme") == Some("external")
                }
                _ => true,
            }
    }
}

/// The aligner of a p95 of a numeric (INT64/DOUBLE) metric: no alignment, the raw samples.
///
/// Cloud Monitoring's `ALIGN_PERCENTILE_*` aligners are "valid for GAUGE and DELTA metrics
/// with distribution values" only (the `Aggregation.Aligner` reference): asked of cpu,
/// memory, disk, network or Cloud SQL metrics they answer 400 INVALID_ARGUMENT. So p95 of
/// these is computed here: one `ALIGN_NONE` call (still one paged call per metric type and
/// stat, no `alignmentPeriod`, no reducer — ALIGN_NONE is "not valid if cross-series
/// reduction is requested") returns every sample of the window, and the collector takes the
/// nearest-rank 95th percentile of each resource's samples per alignment period (see
/// `metrics::nearest_rank`). The answer is larger (every sample instead of one point per
/// period) but the call count is the same.
pub const RAW: &str = "ALIGN_NONE";

/// How a metric's aligners turn into values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A GAUGE level (utilization, connections): avg/max/min/sum/count their aligner as is;
    /// p95 = the nearest-rank 95th percentile of the period's raw samples ([`RAW`]).
    Gauge,
    /// A DELTA count sampled every `sample_interval` (bytes, packets, ops): avg = ALIGN_RATE
    /// (per second over the alignment period); max/min = ALIGN_MAX/MIN of the per-sample
    /// deltas ÷ `sample_interval` (per second); p95 = the nearest-rank 95th percentile of the
    /// period's raw per-sample deltas ([`RAW`]; a resource's series — one per disk or
    /// interface — added up per sample time first) ÷ `sample_interval`; sum = ALIGN_SUM (the
    /// period's total, `sum_unit`); count = ALIGN_COUNT (samples).
    Counter,
    /// A DELTA count of events (function executions): one ALIGN_SUM query whatever `stats`
    /// says, emitted as stat `sum`.
    Total,
    /// A DELTA distribution (execution times): avg = ALIGN_DELTA, read as the `mean` of the
    /// period's merged `distributionValue` (ALIGN_MEAN is valid for numeric values only; for
    /// a DELTA distribution ALIGN_DELTA keeps the value a distribution — the period's
    /// requests in one histogram — whose `mean` is the request-weighted mean the API itself
    /// computes, so no bucket estimate is involved); p95 = ALIGN_PERCENTILE_95 (valid for
    /// distributions, estimated by Monitoring from the histogram buckets). Other stats are
    /// not asked.
    Distribution,
    /// A slowly changing level (bucket size, object count): one ALIGN_MEAN query, stat `avg`.
    Level,
}

/// One Cloud Monitoring metric of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct GcpMetric {
    pub target: Target,
    /// The metric type, e.g. `compute.googleapis.com/instance/cpu/utilization`.
    pub metric_type: &'static str,
    /// The normalized name.
    pub name: &'static str,
    pub unit: Unit,
    /// Unit of `sum` for counters (the total over the period).
    pub sum_unit: Unit,
    pub shape: Shape,
    /// Multiplier from the native unit (ratio → percent: 100; ns → ms: 1e-6).
    pub scale: f64,
    /// Added to the filter (` AND metric.labels.state = "used"`).
    pub extra_filter: &'static str,
    /// Several series per resource (one per disk, interface, status, storage class): summed
    /// with `crossSeriesReducer = REDUCE_SUM` grouped by the target's key labels.
    pub reduce: bool,
    /// The native unit, for the README and `skymeter metrics`.
    pub native_unit: &'static str,
    /// For a reduced Distribution: the series (one per revision and response code) are
    /// merged per resource with `ALIGN_DELTA` and the reducer of the stat (`REDUCE_MEAN`,
    /// `REDUCE_PERCENTILE_95`), which weighs every request alike.
    /// Seconds after a period ends before Cloud Monitoring shows its data, when that is more
    /// than a collector's `delay` may be: the query's window is moved back to it.
    pub min_delay_s: i64,
    /// The `direction` label of its points (`in`, `out`) when two metric types give the two
    /// directions of one normalized metric; empty: none.
    pub direction: &'static str,
}

const fn m(
    target: Target,
    metric_type: &'static str,
    name: &'static str,
    unit: Unit,
    shape: Shape,
    scale: f64,
    native_unit: &'static str,
) -> GcpMetric {
    GcpMetric {
        target,
        metric_type,
        name,
        unit,
        sum_unit: unit,
        shape,
        scale,
        extra_filter: "",
        reduce: false,
        native_unit,
        min_delay_s: 0,
        direction: "",
    }
}

/// Requests answered by a load balancer in the period (stat `sum`).
pub const LB_REQUESTS: &str = "lb.requests";
/// Bytes a load balancer or NAT gateway processed in the period (stat `sum`), per
/// `direction`.
pub const PROCESSED_BYTES: &str = "network.processed_bytes";

/// Bytes a NAT gateway sent to destinations in the period (stat `sum`).
pub const SENT_BYTES: &str = "network.sent_bytes";
/// Bytes a NAT gateway received back in the period (stat `sum`).
pub const RECEIVED_BYTES: &str = "network.received_bytes";

/// A DELTA count emitted as its period's total (stat `sum`), summed per resource.
const fn total(
    target: Target,
    metric_type: &'static str,
    name: &'static str,
    unit: Unit,
    direction: &'static str,
) -> GcpMetric {
    GcpMetric {
        reduce: true,
        direction,
        ..m(
            target,
            metric_type,
            name,
            unit,
            Shape::Total,
            1.0,
            "1 (DELTA INT64)",
        )
    }
}

const fn counter(
    metric_type: &'static str,
    name: &'static str,
    unit: Unit,
    sum_unit: Unit,
) -> GcpMetric {
    GcpMetric {
        sum_unit,
        reduce: true,
        ..m(
            Target::Instance,
            metric_type,
            name,
            unit,
            Shape::Counter,
            1.0,
            "1 (DELTA)",
        )
    }
}

pub const CATALOG: [GcpMetric; 24] = [
    m(
        Target::Instance,
        "compute.googleapis.com/instance/cpu/utilization",
        "cpu.utilization",
        Unit::Percent,
        Shape::Gauge,
        100.0,
        "10^2.% (ratio 0–1)",
    ),
    GcpMetric {
        extra_filter: " AND metric.labels.state = \"used\"",
        ..m(
            Target::Instance,
            "agent.googleapis.com/memory/percent_used",
            "memory.usage",
            Unit::Percent,
            Shape::Gauge,
            1.0,
            "% (Ops Agent)",
        )
    },
    counter(
        "compute.googleapis.com/instance/disk/read_ops_count",
        "disk.read_iops",
        Unit::CountPerSecond,
        Unit::Count,
    ),
    counter(
        "compute.googleapis.com/instance/disk/write_ops_count",
        "disk.write_iops",
        Unit::CountPerSecond,
        Unit::Count,
    ),
    counter(
        "compute.googleapis.com/instance/disk/read_bytes_count",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    counter(
        "compute.googleapis.com/instance/disk/write_bytes_count",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    counter(
        "compute.googleapis.com/instance/network/received_bytes_count",
        "network.received_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    counter(
        "compute.googleapis.com/instance/network/sent_bytes_count",
        "network.sent_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    counter(
        "compute.googleapis.com/instance/network/received_packets_count",
        "network.received_pps",
        Unit::CountPerSecond,
        Unit::Count,
    ),
    counter(
        "compute.googleapis.com/instance/network/sent_packets_count",
        "network.sent_pps",
        Unit::CountPerSecond,
        Unit::Count,
    ),
    m(
        Target::Sql,
        "cloudsql.googleapis.com/database/cpu/utilization",
        "cpu.utilization",
        Unit::Percent,
        Shape::Gauge,
        100.0,
        "10^2.% (ratio 0–1)",
    ),
    m(
        Target::Sql,
        "cloudsql.googleapis.com/database/memory/utilization",
        "memory.usage",
        Unit::Percent,
        Shape::Gauge,
        100.0,
        "10^2.% (ratio 0–1)",
    ),
    m(
        Target::Sql,
        "cloudsql.googleapis.com/database/network/connections",
        "database.connections",
        Unit::Count,
        Shape::Gauge,
        1.0,
        "1",
    ),
    GcpMetric {
        reduce: true,
        ..m(
            Target::Function,
            "cloudfunctions.googleapis.com/function/execution_count",
            "function.invocations",
            Unit::Count,
            Shape::Total,
            1.0,
            "1 (DELTA)",
        )
    },
    GcpMetric {
        extra_filter: " AND metric.labels.status = \"ok\"",
        ..m(
            Target::Function,
            "cloudfunctions.googleapis.com/function/execution_times",
            "function.duration",
            Unit::Milliseconds,
            Shape::Distribution,
            1e-6,
            "ns (DELTA distribution)",
        )
    },
    GcpMetric {
        reduce: true,
        ..m(
            Target::RunRevision,
            "run.googleapis.com/request_count",
            "function.invocations",
            Unit::Count,
            Shape::Total,
            1.0,
            "1 (DELTA)",
        )
    },
    GcpMetric {
        reduce: true,
        ..m(
            Target::RunRevision,
            "run.googleapis.com/request_latencies",
            "function.duration",
            Unit::Milliseconds,
            Shape::Distribution,
            1.0,
            "ms (DELTA distribution)",
        )
    },
    GcpMetric {
        reduce: true,
        // Sampled every 300 s but "not visible for up to 690 seconds" (Cloud Monitoring's
        // metric list): a 300 s delay would ask for periods that are still empty.
        min_delay_s: 900,
        ..m(
            Target::Bucket,
            "storage.googleapis.com/storage/total_bytes",
            "storage.size",
            Unit::Bytes,
            Shape::Level,
            1.0,
            "By",
        )
    },
    GcpMetric {
        reduce: true,
        // Sampled every 300 s but "not visible for up to 690 seconds" (Cloud Monitoring's
        // metric list): a 300 s delay would ask for periods that are still empty.
        min_delay_s: 900,
        ..m(
            Target::Bucket,
            "storage.googleapis.com/storage/object_count",
            "storage.objects",
            Unit::Count,
            Shape::Level,
            1.0,
            "1",
        )
    },
    // External Application load balancers: requests, and bytes in (requests) and out
    // (responses), per forwarding rule; Cloud NAT: bytes sent and received (the names the
    // aws collector gives NAT gateway bytes).
    // DELTA INT64 counts, one ALIGN_SUM call each, summed over the series of a resource
    // (one per backend, response code, protocol…).
    total(
        Target::HttpsLbRule,
        "loadbalancing.googleapis.com/https/request_count",
        LB_REQUESTS,
        Unit::Count,
        "",
    ),
    total(
        Target::HttpsLbRule,
        "loadbalancing.googleapis.com/https/request_bytes_count",
        PROCESSED_BYTES,
        Unit::Bytes,
        "in",
    ),
    total(
        Target::HttpsLbRule,
        "loadbalancing.googleapis.com/https/response_bytes_count",
        PROCESSED_BYTES,
        Unit::Bytes,
        "out",
    ),
    total(
        Target::NatGateway,
        "router.googleapis.com/nat/sent_bytes_count",
        SENT_BYTES,
        Unit::Bytes,
        "",
    ),
    total(
        Target::NatGateway,
        "router.googleapis.com/nat/received_bytes_count",
        RECEIVED_BYTES,
        Unit::Bytes,
        "",
    ),
];

/// The aligners asked for `stats` (in config order): (aligner, record stat). Empty when the
/// shape has none of them.
pub fn aligners(shape: Shape, stats: &[Stat]) -> Vec<(&'static str, Stat)> {
    match shape {
        Shape::Total => vec![("ALIGN_SUM", Stat::Sum)],
        Shape::Level => vec![("ALIGN_MEAN", Stat::Avg)],
        Shape::Distribution => stats
            .iter()
            .filter_map(|s| match s {
                // Not ALIGN_MEAN: numeric values only (see Shape::Distribution).
                Stat::Avg => Some(("ALIGN_DELTA", Stat::Avg)),
                Stat::P95 => Some(("ALIGN_PERCENTILE_95", Stat::P95)),
                _ => None,
            })
            .collect(),
        Shape::Gauge | Shape::Counter => stats
            .iter()
            .filter_map(|s| {
                let a = match (shape, s) {
                    (Shape::Counter, Stat::Avg) => "ALIGN_RATE",
                    (_, Stat::Avg) => "ALIGN_MEAN",
                    (_, Stat::Max) => "ALIGN_MAX",
                    (_, Stat::Min) => "ALIGN_MIN",
                    (_, Stat::Sum) => "ALIGN_SUM",
                    (_, Stat::Count) => "ALIGN_COUNT",
                    // Not ALIGN_PERCENTILE_95: distributions only (see RAW).
                    (_, Stat::P95) => RAW,
                    _ => return None,
                };
                Some((a, *s))
            })
            .collect(),
    }
}

/// The value and unit a point of `m` aligned with `stat` becomes, from the native value.
pub fn convert(m: &GcpMetric, stat: Stat, native: f64, sample_interval: f64) -> (f64, Unit) {
    match (m.shape, stat) {
        (_, Stat::Count) => (native, Unit::Count),
        (Shape::Counter, Stat::Sum) => (native * m.scale, m.sum_unit),
        (Shape::Counter, Stat::Max | Stat::Min | Stat::P95) => {
            (native * m.scale / sample_interval, m.unit)
        }
        _ => (native * m.scale, m.unit),
    }
}

/// The stats `skymeter metrics` lists for a shape.
pub fn stats_of(shape: Shape) -> Vec<Stat> {
    match shape {
        Shape::Total => vec![Stat::Sum],
        Shape::Level => vec![Stat::Avg],
        Shape::Distribution => vec![Stat::Avg, Stat::P95],
        _ => crate::cloud::EVERY_STAT.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligners_follow_the_shape() {
        let s = [Stat::Avg, Stat::Max];
        assert_eq!(
            aligners(Shape::Gauge, &s),
            vec![("ALIGN_MEAN", Stat::Avg), ("ALIGN_MAX", Stat::Max)]
        );
        assert_eq!(
            aligners(Shape::Counter, &s),
            vec![("ALIGN_RATE", Stat::Avg), ("ALIGN_MAX", Stat::Max)]
        );
        assert_eq!(aligners(Shape::Total, &s), vec![("ALIGN_SUM", Stat::Sum)]);
        assert_eq!(
            aligners(Shape::Distribution, &[Stat::Max, Stat::P95]),
            vec![("ALIGN_PERCENTILE_95", Stat::P95)]
        );
        // A distribution's avg is its ALIGN_DELTA `mean`, never ALIGN_MEAN (numeric only).
        assert_eq!(
            aligners(Shape::Distribution, &[Stat::Avg, Stat::P95]),
            vec![
                ("ALIGN_DELTA", Stat::Avg),
                ("ALIGN_PERCENTILE_95", Stat::P95)
            ]
        );
        // p95 of numeric metrics: raw samples, never ALIGN_PERCENTILE_95 (distributions only).
        assert_eq!(
            aligners(Shape::Counter, &[Stat::P95]),
            vec![("ALIGN_NONE", Stat::P95)]
        );
        let all = [
            Stat::Avg,
            Stat::Max,
            Stat::Min,
            Stat::Sum,
            Stat::Count,
            Stat::P95,
        ];
        let names: Vec<&str> = aligners(Shape::Gauge, &all).iter().map(|a| a.0).collect();
        assert_eq!(
            names,
            [
                "ALIGN_MEAN",
                "ALIGN_MAX",
                "ALIGN_MIN",
                "ALIGN_SUM",
                "ALIGN_COUNT",
                "ALIGN_NONE"
            ]
        );
    }

    #[test]
    fn conversions() {
        let cpu = &CATALOG[0];
        assert_eq!(convert(cpu, Stat::Avg, 0.25, 60.0), (25.0, Unit::Percent));
        let rx = CATALOG
            .iter()
            .find(|m| m.name == "network.received_throughput")
            .unwrap();
        // ALIGN_RATE is per second already.
        assert_eq!(
            convert(rx, Stat::Avg, 1000.0, 60.0),
            (1000.0, Unit::BytesPerSecond)
        );
        // ALIGN_MAX is the largest 60 s delta.
        assert_eq!(
            convert(rx, Stat::Max, 6000.0, 60.0),
            (100.0, Unit::BytesPerSecond)
        );
        assert_eq!(convert(rx, Stat::Sum, 6000.0, 60.0), (6000.0, Unit::Bytes));
        let d = CATALOG
            .iter()
            .find(|m| m.name == "function.duration")
            .unwrap();
        assert_eq!(
            convert(d, Stat::Avg, 2_500_000.0, 60.0),
            (2.5, Unit::Milliseconds)
        );
    }

    #[test]
    fn every_name_is_in_the_design_catalog() {
        for m in CATALOG.iter() {
            assert!(
                skymeter_model::catalog::lookup(m.name).is_some(),
                "{} is not a normalized name",
                m.name
            );
        }
    }
}
