//! The CloudWatch catalog: which CloudWatch metric of which resource kind becomes which
//! normalized metric (DESIGN §3), and how its statistics turn into values.

use skymeter_model::Unit;

/// How a CloudWatch metric's statistics turn into normalized values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A level (CPUUtilization, FreeableMemory, Duration): every statistic asked, as is.
    Gauge,
    /// A count per sample (EC2 bytes, packets, ops): avg = Sum / period, max/min/p95 = the
    /// statistic / sample interval (a per-second rate), sum = the total in the period.
    Counter,
    /// A count of events (Lambda Invocations): only `Sum` means anything (every sample is
    /// 1), so one query whatever `stats` says, emitted as stat `sum`.
    Total,
    /// A daily level (S3 storage): one `Average` query at a period of one day, emitted as
    /// stat `avg` with `period_s` 86400.
    Daily,
    /// A level of which only the peak is wanted (NAT gateway ActiveConnectionCount): one
    /// `Maximum` query whatever `stats` says, emitted as stat `max`.
    Peak,
}

/// The AWS services the collector knows; `services = [...]` picks among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ec2,
    Ebs,
    Rds,
    Lambda,
    S3,
    Eks,
    /// EBS snapshots owned by the account.
    Snapshots,
    /// Elastic IP addresses.
    Eips,
    /// NAT gateways.
    Nat,
    /// ELBv2 load balancers (application, network, gateway).
    Elb,
}

impl Service {
    pub const ALL: [Service; 10] = [
        Service::Ec2,
        Service::Ebs,
        Service::Rds,
        Service::Lambda,
        Service::S3,
        Service::Eks,
        Service::Snapshots,
        Service::Eips,
        Service::Nat,
        Service::Elb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Ebs => "ebs",
            Service::Rds => "rds",
            Service::Lambda => "lambda",
            Service::S3 => "s3",
            Service::Eks => "eks",
            Service::Snapshots => "snapshots",
            Service::Eips => "eips",
            Service::Nat => "nat",
            Service::Elb => "elb",
        }
    }

    pub fn parse(s: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// One CloudWatch metric of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct CwMetric {
    /// Which resources it is asked for.
    pub service: Service,
    pub namespace: &'static str,
    /// The CloudWatch metric name.
    pub cloudwatch: &'static str,
    /// The normalized name.
    pub name: &'static str,
    pub unit: Unit,
    /// Unit of `sum` for counters (the total over the period).
    pub sum_unit: Unit,
    pub shape: Shape,
    /// The dimension that names the resource (`InstanceId`, `DBInstanceIdentifier`, …).
    /// Empty for metrics whose dimensions are discovered with ListMetrics (CWAgent).
    pub dimension: &'static str,
    /// Dimensions every query of this metric adds (S3 `StorageType`).
    pub fixed: &'static [(&'static str, &'static str)],
    /// `source` label: `ebs` or `instance_store` for EC2 disk metrics.
    pub source: Option<&'static str>,
}

const fn metric(
    service: Service,
    namespace: &'static str,
    dimension: &'static str,
    cloudwatch: &'static str,
    name: &'static str,
    unit: Unit,
    shape: Shape,
) -> CwMetric {
    CwMetric {
        service,
        namespace,
        cloudwatch,
        name,
        unit,
        sum_unit: unit,
        shape,
        dimension,
        fixed: &[],
        source: None,
    }
}

const fn ec2_gauge(cw: &'static str, name: &'static str, unit: Unit) -> CwMetric {
    metric(
        Service::Ec2,
        "AWS/EC2",
        "InstanceId",
        cw,
        name,
        unit,
        Shape::Gauge,
    )
}

const fn ec2_counter(
    cw: &'static str,
    name: &'static str,
    unit: Unit,
    sum_unit: Unit,
    source: Option<&'static str>,
) -> CwMetric {
    let mut m = metric(
        Service::Ec2,
        "AWS/EC2",
        "InstanceId",
        cw,
        name,
        unit,
        Shape::Counter,
    );
    m.sum_unit = sum_unit;
    m.source = source;
    m
}

const fn rds(cw: &'static str, name: &'static str, unit: Unit) -> CwMetric {
    metric(
        Service::Rds,
        "AWS/RDS",
        "DBInstanceIdentifier",
        cw,
        name,
        unit,
        Shape::Gauge,
    )
}

const fn lambda(cw: &'static str, name: &'static str, unit: Unit, shape: Shape) -> CwMetric {
    metric(
        Service::Lambda,
        "AWS/Lambda",
        "FunctionName",
        cw,
        name,
        unit,
        shape,
    )
}

const fn s3(
    cw: &'static str,
    name: &'static str,
    unit: Unit,
    storage_type: &'static [(&'static str, &'static str)],
) -> CwMetric {
    let mut m = metric(
        Service::S3,
        "AWS/S3",
        "BucketName",
        cw,
        name,
        unit,
        Shape::Daily,
    );
    m.fixed = storage_type;
    m
}

/// The CWAgent memory metric, asked only for instances that publish it (found with
/// ListMetrics, whose answer also gives the dimensions the agent was configured with).
pub const CWAGENT_MEMORY: CwMetric = CwMetric {
    service: Service::Ec2,
    namespace: "CWAgent",
    cloudwatch: "mem_used_percent",
    name: "memory.usage",
    unit: Unit::Percent,
    sum_unit: Unit::Percent,
    shape: Shape::Gauge,
    dimension: "",
    fixed: &[],
    source: None,
};

const fn nat(cw: &'static str, name: &'static str, unit: Unit, shape: Shape) -> CwMetric {
    metric(
        Service::Nat,
        "AWS/NATGateway",
        "NatGatewayId",
        cw,
        name,
        unit,
        shape,
    )
}

/// An ELBv2 metric; the `LoadBalancer` dimension is the ARN's suffix (`app/name/id`).
const fn elb(
    namespace: &'static str,
    cw: &'static str,
    name: &'static str,
    unit: Unit,
) -> CwMetric {
    metric(
        Service::Elb,
        namespace,
        "LoadBalancer",
        cw,
        name,
        unit,
        Shape::Total,
    )
}

/// The CloudWatch namespace of application load balancers' metrics.
pub const ALB_NAMESPACE: &str = "AWS/ApplicationELB";
/// The CloudWatch namespace of network load balancers' metrics.
pub const NLB_NAMESPACE: &str = "AWS/NetworkELB";

const STANDARD_STORAGE: &[(&str, &str)] = &[("StorageType", "StandardStorage")];
const ALL_STORAGE_TYPES: &[(&str, &str)] = &[("StorageType", "AllStorageTypes")];

/// Every metric the collector asks CloudWatch for. EC2 Disk* (instance store) and EBS*
/// (EBS volumes, Nitro) map to the same names with a `source` label, so a dashboard can sum
/// both or pick one. RDS ReadIOPS/WriteIOPS are already per second. NAT gateway bytes and
/// load balancer counts are totals per period (stat `sum`).
pub const CATALOG: [CwMetric; 32] = [
    ec2_gauge("CPUUtilization", "cpu.utilization", Unit::Percent),
    ec2_counter(
        "NetworkIn",
        "network.received_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        None,
    ),
    ec2_counter(
        "NetworkOut",
        "network.sent_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        None,
    ),
    ec2_counter(
        "NetworkPacketsIn",
        "network.received_pps",
        Unit::CountPerSecond,
        Unit::Count,
        None,
    ),
    ec2_counter(
        "NetworkPacketsOut",
        "network.sent_pps",
        Unit::CountPerSecond,
        Unit::Count,
        None,
    ),
    ec2_counter(
        "DiskReadOps",
        "disk.read_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("instance_store"),
    ),
    ec2_counter(
        "DiskWriteOps",
        "disk.write_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("instance_store"),
    ),
    ec2_counter(
        "DiskReadBytes",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("instance_store"),
    ),
    ec2_counter(
        "DiskWriteBytes",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("instance_store"),
    ),
    ec2_counter(
        "EBSReadOps",
        "disk.read_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("ebs"),
    ),
    ec2_counter(
        "EBSWriteOps",
        "disk.write_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("ebs"),
    ),
    ec2_counter(
        "EBSReadBytes",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("ebs"),
    ),
    ec2_counter(
        "EBSWriteBytes",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("ebs"),
    ),
    CWAGENT_MEMORY,
    rds("CPUUtilization", "cpu.utilization", Unit::Percent),
    rds("FreeableMemory", "memory.freeable", Unit::Bytes),
    rds("DatabaseConnections", "database.connections", Unit::Count),
    rds("ReadIOPS", "disk.read_iops", Unit::CountPerSecond),
    rds("WriteIOPS", "disk.write_iops", Unit::CountPerSecond),
    lambda(
        "Invocations",
        "function.invocations",
        Unit::Count,
        Shape::Total,
    ),
    lambda(
        "Duration",
        "function.duration",
        Unit::Milliseconds,
        Shape::Gauge,
    ),
    lambda("Errors", "function.errors", Unit::Count, Shape::Total),
    lambda("Throttles", "function.throttles", Unit::Count, Shape::Total),
    s3(
        "BucketSizeBytes",
        "storage.size",
        Unit::Bytes,
        STANDARD_STORAGE,
    ),
    s3(
        "NumberOfObjects",
        "storage.objects",
        Unit::Count,
        ALL_STORAGE_TYPES,
    ),
    nat(
        "BytesOutToDestination",
        "network.sent_bytes",
        Unit::Bytes,
        Shape::Total,
    ),
    nat(
        "BytesInFromSource",
        "network.received_bytes",
        Unit::Bytes,
        Shape::Total,
    ),
    nat(
        "ActiveConnectionCount",
        "network.connections",
        Unit::Count,
        Shape::Peak,
    ),
    elb(ALB_NAMESPACE, "RequestCount", "lb.requests", Unit::Count),
    elb(
        ALB_NAMESPACE,
        "ProcessedBytes",
        "network.processed_bytes",
        Unit::Bytes,
    ),
    elb(
        NLB_NAMESPACE,
        "NewFlowCount",
        "lb.new_connections",
        Unit::Count,
    ),
    elb(
        NLB_NAMESPACE,
        "ProcessedBytes",
        "network.processed_bytes",
        Unit::Bytes,
    ),
];

/// What the metrics of this catalog that the shared normalized catalog lacks mean.
pub fn own_description(name: &str) -> Option<&'static str> {
    Some(match name {
        "network.sent_bytes" => "Bytes sent in the period (NAT gateway: to destinations).",
        "network.received_bytes" => "Bytes received in the period (NAT gateway: from sources).",
        "network.connections" => "Concurrent active connections (the period's peak).",
        "network.processed_bytes" => "Bytes a load balancer processed in the period.",
        "lb.requests" => "Requests a load balancer received in the period.",
        "lb.new_connections" => "New connections (flows) a load balancer opened in the period.",
        _ => return None,
    })
}

/// The catalog entries of one service.
pub fn of(service: Service) -> impl Iterator<Item = &'static CwMetric> {
    CATALOG.iter().filter(move |m| m.service == service)
}

/// The EC2 CloudWatch names `ec2_metrics` accepts.
pub fn ec2_names() -> Vec<&'static str> {
    of(Service::Ec2).map(|m| m.cloudwatch).collect()
}
