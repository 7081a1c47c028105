//! The shared table of normalized metric names.
//!
//! Every plugin maps its native names onto these, so that `cpu.utilization` means the same
//! thing for an EC2 instance, a GCE VM, an Azure VM and a host. A plugin may emit metrics that
//! are not here (a Prometheus scrape keeps the target's own names); those are "native".

use crate::Unit;

/// One normalized metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: Unit,
    pub description: &'static str,
}

const fn m(name: &'static str, unit: Unit, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        description,
    }
}

/// The normalized catalog. Order is the order of `docs/format.md`.
pub const NORMALIZED: &[MetricDef] = &[
    // compute (instances and hosts)
    m(
        "cpu.utilization",
        Unit::Percent,
        "Share of CPU time not idle, over the period (per core with label `cpu`).",
    ),
    m(
        "cpu.iowait",
        Unit::Percent,
        "Share of CPU time waiting for I/O.",
    ),
    m(
        "cpu.steal",
        Unit::Percent,
        "Share of CPU time stolen by the hypervisor.",
    ),
    m(
        "memory.usage",
        Unit::Percent,
        "Memory in use, as a share of total (total minus available).",
    ),
    m(
        "memory.used",
        Unit::Bytes,
        "Memory in use (total minus available).",
    ),
    m(
        "memory.available",
        Unit::Bytes,
        "Memory available for new work without swapping.",
    ),
    m("memory.total", Unit::Bytes, "Installed memory."),
    m(
        "memory.freeable",
        Unit::Bytes,
        "Memory a managed database can free (RDS FreeableMemory).",
    ),
    m(
        "swap.usage",
        Unit::Percent,
        "Swap in use, as a share of swap total.",
    ),
    m("swap.used", Unit::Bytes, "Swap in use."),
    m("swap.total", Unit::Bytes, "Swap configured."),
    m(
        "disk.read_iops",
        Unit::CountPerSecond,
        "Read operations per second.",
    ),
    m(
        "disk.write_iops",
        Unit::CountPerSecond,
        "Write operations per second.",
    ),
    m(
        "disk.read_throughput",
        Unit::BytesPerSecond,
        "Bytes read per second.",
    ),
    m(
        "disk.write_throughput",
        Unit::BytesPerSecond,
        "Bytes written per second.",
    ),
    m(
        "filesystem.used",
        Unit::Bytes,
        "Bytes used on a filesystem (label `mountpoint`).",
    ),
    m("filesystem.total", Unit::Bytes, "Size of a filesystem."),
    m(
        "filesystem.usage",
        Unit::Percent,
        "Share of a filesystem in use, as `df` reports it.",
    ),
    m(
        "filesystem.inodes_usage",
        Unit::Percent,
        "Share of a filesystem's inodes in use.",
    ),
    m(
        "network.received_throughput",
        Unit::BytesPerSecond,
        "Bytes received per second.",
    ),
    m(
        "network.sent_throughput",
        Unit::BytesPerSecond,
        "Bytes sent per second.",
    ),
    m(
        "network.received_pps",
        Unit::CountPerSecond,
        "Packets received per second.",
    ),
    m(
        "network.sent_pps",
        Unit::CountPerSecond,
        "Packets sent per second.",
    ),
    m(
        "network.errors",
        Unit::CountPerSecond,
        "Receive and transmit errors per second.",
    ),
    // network services (NAT gateways, load balancers): totals per period
    m(
        "network.sent_bytes",
        Unit::Bytes,
        "Bytes sent in the period (a NAT gateway: to the destination).",
    ),
    m(
        "network.received_bytes",
        Unit::Bytes,
        "Bytes received in the period (a NAT gateway: from the source).",
    ),
    m(
        "network.processed_bytes",
        Unit::Bytes,
        "Bytes a load balancer processed in the period.",
    ),
    m(
        "network.processed_packets",
        Unit::Count,
        "Packets a load balancer processed in the period.",
    ),
    m(
        "network.connections",
        Unit::Count,
        "Connections open at once.",
    ),
    m(
        "lb.requests",
        Unit::Count,
        "Requests a load balancer served in the period.",
    ),
    m(
        "lb.new_connections",
        Unit::Count,
        "Connections (flows) a load balancer opened in the period.",
    ),
    m("load.1m", Unit::None, "Load average over 1 minute."),
    m("load.5m", Unit::None, "Load average over 5 minutes."),
    m("load.15m", Unit::None, "Load average over 15 minutes."),
    m("process.count", Unit::Count, "Processes that exist."),
    m(
        "process.running",
        Unit::Count,
        "Processes runnable or running.",
    ),
    m("system.uptime", Unit::Seconds, "Time since boot."),
    // databases
    m(
        "database.connections",
        Unit::Count,
        "Open client connections.",
    ),
    // functions
    m(
        "function.invocations",
        Unit::Count,
        "Invocations in the period.",
    ),
    m(
        "function.duration",
        Unit::Milliseconds,
        "Run time of an invocation.",
    ),
    m(
        "function.errors",
        Unit::Count,
        "Invocations that failed in the period.",
    ),
    m(
        "function.throttles",
        Unit::Count,
        "Invocations throttled in the period.",
    ),
    // storage
    m("storage.size", Unit::Bytes, "Bytes stored."),
    m("storage.objects", Unit::Count, "Objects stored."),
    // accelerators
    m(
        "gpu.utilization",
        Unit::Percent,
        "Share of time a GPU was busy.",
    ),
    m("gpu.memory.used", Unit::Bytes, "GPU memory in use."),
    m("gpu.temperature", Unit::Celsius, "GPU temperature."),
    m("gpu.power", Unit::Watts, "GPU power draw."),
];

/// Looks a normalized metric up by name.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    NORMALIZED.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_valid() {
        let mut names: Vec<_> = NORMALIZED.iter().map(|d| d.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate catalog entry");
        for n in names {
            assert!(crate::is_valid_metric_name(n), "{n}");
            assert_eq!(n, n.to_ascii_lowercase());
        }
        assert_eq!(lookup("cpu.utilization").unwrap().unit, Unit::Percent);
    }
}
