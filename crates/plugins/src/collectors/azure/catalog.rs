//! The Azure Monitor catalog: which platform metric of which resource type becomes which
//! normalized metric (DESIGN §3), and how its aggregations turn into values.
//!
//! Azure Monitor keeps VM platform metrics at a one-minute grain. Asked with a longer
//! `interval` (PT5M), `average`/`maximum`/`minimum` are over the one-minute values and
//! `total` is their sum. "Disk Read Bytes" and "Network In Total" are bytes per minute, so
//! avg/max/min ÷ 60 = bytes/s, and `sum` is the total bytes of the period (unit bytes).

use skymeter_model::Unit;

/// The resource types the collector knows; `services = [...]` picks among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Vm,
    Disk,
    Aks,
    Function,
    Sql,
    Storage,
    Snapshot,
    PublicIp,
    LoadBalancer,
    NatGateway,
}

impl Service {
    pub const ALL: [Service; 10] = [
        Service::Vm,
        Service::Disk,
        Service::Aks,
        Service::Function,
        Service::Sql,
        Service::Storage,
        Service::Snapshot,
        Service::PublicIp,
        Service::LoadBalancer,
        Service::NatGateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Vm => "vm",
            Service::Disk => "disk",
            Service::Aks => "aks",
            Service::Function => "function",
            Service::Sql => "sql",
            Service::Storage => "storage",
            Service::Snapshot => "snapshot",
            Service::PublicIp => "public_ip",
            Service::LoadBalancer => "load_balancer",
            Service::NatGateway => "nat_gateway",
        }
    }

    pub fn parse(s: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|v| v.name() == s)
    }

    /// The ARM resource type (also the metrics namespace).
    pub fn native_type(self) -> &'static str {
        match self {
            Service::Vm => "Microsoft.Compute/virtualMachines",
            Service::Disk => "Microsoft.Compute/disks",
            Service::Aks => "Microsoft.ContainerService/managedClusters",
            Service::Function => "Microsoft.Web/sites",
            Service::Sql => "Microsoft.Sql/servers/databases",
            Service::Storage => "Microsoft.Storage/storageAccounts",
            Service::Snapshot => "Microsoft.Compute/snapshots",
            Service::PublicIp => "Microsoft.Network/publicIPAddresses",
            Service::LoadBalancer => "Microsoft.Network/loadBalancers",
            Service::NatGateway => "Microsoft.Network/natGateways",
        }
    }

    /// The metrics `interval` this type is asked with: storage account capacity is
    /// published hourly only (PT1H), the others at the collector's period.
    pub fn fixed_interval(self) -> Option<i64> {
        match self {
            Service::Storage => Some(3600),
            _ => None,
        }
    }
}

/// How a metric's aggregations turn into normalized values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A level (Percentage CPU, cpu_percent, UsedCapacity): every stat asked, as is.
    Gauge,
    /// A total per one-minute sample (Disk Read Bytes, Network In Total): avg/max/min ÷ 60
    /// (per second); sum = the period's total in `sum_unit`; count as is.
    PerMinute,
    /// A count of events (FunctionExecutionCount, Transactions): only `total` means
    /// anything, so one aggregation whatever `stats` says, emitted as stat `sum`.
    Total,
    /// "Available Memory Bytes": emitted as `memory.available` (bytes) and as
    /// `memory.usage` (percent) = 100 × (1 − available ÷ the VM size's memory); usage avg
    /// comes from available avg, usage max from available min, usage min from available max.
    AvailableMemory,
}

#[derive(Debug, Clone, Copy)]
pub struct AzMetric {
    pub service: Service,
    /// The Azure Monitor metric name.
    pub azure: &'static str,
    /// The normalized name.
    pub name: &'static str,
    pub unit: Unit,
    /// Unit of `sum` for PerMinute metrics.
    pub sum_unit: Unit,
    pub shape: Shape,
    /// Split by the metric's `Direction` dimension (getBatch `filter=Direction eq '*'`):
    /// the normalized names of the `Out` and `In` series, which replace `name`.
    pub by_direction: Option<(&'static str, &'static str)>,
}

const fn m(
    service: Service,
    azure: &'static str,
    name: &'static str,
    unit: Unit,
    shape: Shape,
) -> AzMetric {
    AzMetric {
        service,
        azure,
        name,
        unit,
        sum_unit: unit,
        shape,
        by_direction: None,
    }
}

const fn per_minute(
    azure: &'static str,
    name: &'static str,
    unit: Unit,
    sum_unit: Unit,
) -> AzMetric {
    AzMetric {
        service: Service::Vm,
        azure,
        name,
        unit,
        sum_unit,
        shape: Shape::PerMinute,
        by_direction: None,
    }
}

/// The normalized name of derived VM memory usage.
pub const MEMORY_USAGE: &str = "memory.usage";

pub const CATALOG: [AzMetric; 23] = [
    m(
        Service::Vm,
        "Percentage CPU",
        "cpu.utilization",
        Unit::Percent,
        Shape::Gauge,
    ),
    m(
        Service::Vm,
        "Available Memory Bytes",
        "memory.available",
        Unit::Bytes,
        Shape::AvailableMemory,
    ),
    m(
        Service::Vm,
        "Disk Read Operations/Sec",
        "disk.read_iops",
        Unit::CountPerSecond,
        Shape::Gauge,
    ),
    m(
        Service::Vm,
        "Disk Write Operations/Sec",
        "disk.write_iops",
        Unit::CountPerSecond,
        Shape::Gauge,
    ),
    per_minute(
        "Disk Read Bytes",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    per_minute(
        "Disk Write Bytes",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    per_minute(
        "Network In Total",
        "network.received_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    per_minute(
        "Network Out Total",
        "network.sent_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
    ),
    // Managed disks: the "Composite" metrics are already per second (averaged over the
    // one-minute samples); the names are "/sec", unlike the VM's "/Sec".
    m(
        Service::Disk,
        "Composite Disk Read Bytes/sec",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Shape::Gauge,
    ),
    m(
        Service::Disk,
        "Composite Disk Write Bytes/sec",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Shape::Gauge,
    ),
    m(
        Service::Disk,
        "Composite Disk Read Operations/sec",
        "disk.read_iops",
        Unit::CountPerSecond,
        Shape::Gauge,
    ),
    m(
        Service::Disk,
        "Composite Disk Write Operations/sec",
        "disk.write_iops",
        Unit::CountPerSecond,
        Shape::Gauge,
    ),
    m(
        Service::Sql,
        "cpu_percent",
        "cpu.utilization",
        Unit::Percent,
        Shape::Gauge,
    ),
    m(
        Service::Sql,
        "connection_successful",
        "database.connections",
        Unit::Count,
        Shape::Total,
    ),
    m(
        Service::Sql,
        "storage",
        "storage.size",
        Unit::Bytes,
        Shape::Gauge,
    ),
    m(
        Service::Storage,
        "UsedCapacity",
        "storage.size",
        Unit::Bytes,
        Shape::Gauge,
    ),
    m(
        Service::Storage,
        "Transactions",
        "storage.requests",
        Unit::Count,
        Shape::Total,
    ),
    m(
        Service::Function,
        "FunctionExecutionCount",
        "function.invocations",
        Unit::Count,
        Shape::Total,
    ),
    m(
        Service::Aks,
        "node_cpu_usage_percentage",
        "cpu.utilization",
        Unit::Percent,
        Shape::Gauge,
    ),
    m(
        Service::Aks,
        "node_memory_working_set_percentage",
        MEMORY_USAGE,
        Unit::Percent,
        Shape::Gauge,
    ),
    // Load balancers (Standard SKU: Basic ones have no Azure Monitor metrics): bytes and
    // packets processed in the period (aggregation Total).
    m(
        Service::LoadBalancer,
        "ByteCount",
        PROCESSED_BYTES,
        Unit::Bytes,
        Shape::Total,
    ),
    m(
        Service::LoadBalancer,
        "PacketCount",
        PROCESSED_PACKETS,
        Unit::Count,
        Shape::Total,
    ),
    // NAT gateways: bytes by direction, named as the aws and gcp collectors name NAT bytes.
    AzMetric {
        by_direction: Some((SENT_BYTES, RECEIVED_BYTES)),
        ..m(
            Service::NatGateway,
            "ByteCount",
            SENT_BYTES,
            Unit::Bytes,
            Shape::Total,
        )
    },
];

/// Bytes a NAT gateway sent out (its `Out` direction) in the period (stat `sum`).
pub const SENT_BYTES: &str = "network.sent_bytes";
/// Bytes a NAT gateway received back (its `In` direction) in the period (stat `sum`).
pub const RECEIVED_BYTES: &str = "network.received_bytes";

/// Bytes a load balancer processed in the period (stat `sum`).
pub const PROCESSED_BYTES: &str = "network.processed_bytes";
/// Packets a load balancer processed in the period (stat `sum`).
pub const PROCESSED_PACKETS: &str = "network.processed_packets";

/// The metrics of one resource type.
pub fn of(service: Service) -> impl Iterator<Item = &'static AzMetric> {
    CATALOG.iter().filter(move |m| m.service == service)
}
