//! The metrics the collector emits ([`M`], with what the catalog says of each) and which of
//! them a task wants ([`Wants`]); the reader and the engine both go by these.

use skymeter_model::{Stat, Unit};
use skymeter_plugin_api::{MetricInfo, MetricSelection};

/// Every metric the collector emits. The enum's order is the order of [`M::ALL`], and the
/// index of the per-collection "wanted" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum M {
    CpuUtilization,
    CpuIowait,
    CpuSteal,
    MemoryTotal,
    MemoryUsed,
    MemoryAvailable,
    MemoryUsage,
    SwapTotal,
    SwapUsed,
    SwapUsage,
    FilesystemTotal,
    FilesystemUsed,
    FilesystemUsage,
    FilesystemInodesUsage,
    DiskReadIops,
    DiskWriteIops,
    DiskReadThroughput,
    DiskWriteThroughput,
    NetworkReceivedThroughput,
    NetworkSentThroughput,
    NetworkReceivedPps,
    NetworkSentPps,
    NetworkErrors,
    Load1m,
    Load5m,
    Load15m,
    ProcessCount,
    ProcessRunning,
    SystemUptime,
}

/// What the catalog says about one metric of [`M`].
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Def {
    pub name: &'static str,
    pub unit: Unit,
    pub stat: Stat,
    pub labels: &'static [&'static str],
    pub source: &'static str,
}

const FS_LABELS: &[&str] = &["mountpoint", "device", "fstype"];

impl M {
    pub const ALL: [M; 29] = [
        M::CpuUtilization,
        M::CpuIowait,
        M::CpuSteal,
        M::MemoryTotal,
        M::MemoryUsed,
        M::MemoryAvailable,
        M::MemoryUsage,
        M::SwapTotal,
        M::SwapUsed,
        M::SwapUsage,
        M::FilesystemTotal,
        M::FilesystemUsed,
        M::FilesystemUsage,
        M::FilesystemInodesUsage,
        M::DiskReadIops,
        M::DiskWriteIops,
        M::DiskReadThroughput,
        M::DiskWriteThroughput,
        M::NetworkReceivedThroughput,
        M::NetworkSentThroughput,
        M::NetworkReceivedPps,
        M::NetworkSentPps,
        M::NetworkErrors,
        M::Load1m,
        M::Load5m,
        M::Load15m,
        M::ProcessCount,
        M::ProcessRunning,
        M::SystemUptime,
    ];

    pub fn def(self) -> Def {
        use Stat::{Avg, Last};
        let d = |name, unit, stat, labels, source| Def {
            name,
            unit,
            stat,
            labels,
            source,
        };
        match self {
            M::CpuUtilization => d(
                "cpu.utilization",
                Unit::Percent,
                Avg,
                &["cpu"],
                "/proc/stat: 100 × (1 − (idle + iowait) / total) over the ticks since the last reading",
            ),
            M::CpuIowait => d(
                "cpu.iowait",
                Unit::Percent,
                Avg,
                &[],
                "/proc/stat: 100 × iowait / total ticks",
            ),
            M::CpuSteal => d(
                "cpu.steal",
                Unit::Percent,
                Avg,
                &[],
                "/proc/stat: 100 × steal / total ticks",
            ),
            M::MemoryTotal => d(
                "memory.total",
                Unit::Bytes,
                Last,
                &[],
                "/proc/meminfo MemTotal",
            ),
            M::MemoryUsed => d(
                "memory.used",
                Unit::Bytes,
                Last,
                &[],
                "/proc/meminfo MemTotal − MemAvailable",
            ),
            M::MemoryAvailable => d(
                "memory.available",
                Unit::Bytes,
                Last,
                &[],
                "/proc/meminfo MemAvailable",
            ),
            M::MemoryUsage => d(
                "memory.usage",
                Unit::Percent,
                Last,
                &[],
                "/proc/meminfo: 100 × (MemTotal − MemAvailable) / MemTotal",
            ),
            M::SwapTotal => d(
                "swap.total",
                Unit::Bytes,
                Last,
                &[],
                "/proc/meminfo SwapTotal",
            ),
            M::SwapUsed => d(
                "swap.used",
                Unit::Bytes,
                Last,
                &[],
                "/proc/meminfo SwapTotal − SwapFree",
            ),
            M::SwapUsage => d(
                "swap.usage",
                Unit::Percent,
                Last,
                &[],
                "/proc/meminfo: 100 × (SwapTotal − SwapFree) / SwapTotal; absent without swap",
            ),
            M::FilesystemTotal => d(
                "filesystem.total",
                Unit::Bytes,
                Last,
                FS_LABELS,
                "statvfs f_blocks × f_frsize, mounts from /proc/self/mounts",
            ),
            M::FilesystemUsed => d(
                "filesystem.used",
                Unit::Bytes,
                Last,
                FS_LABELS,
                "statvfs (f_blocks − f_bfree) × f_frsize",
            ),
            M::FilesystemUsage => d(
                "filesystem.usage",
                Unit::Percent,
                Last,
                FS_LABELS,
                "statvfs, as df: 100 × used / (used + f_bavail × f_frsize)",
            ),
            M::FilesystemInodesUsage => d(
                "filesystem.inodes_usage",
                Unit::Percent,
                Last,
                FS_LABELS,
                "statvfs: 100 × (f_files − f_ffree) / f_files; absent when f_files is 0",
            ),
            M::DiskReadIops => d(
                "disk.read_iops",
                Unit::CountPerSecond,
                Avg,
                &["device"],
                "/proc/diskstats reads completed, per second",
            ),
            M::DiskWriteIops => d(
                "disk.write_iops",
                Unit::CountPerSecond,
                Avg,
                &["device"],
                "/proc/diskstats writes completed, per second",
            ),
            M::DiskReadThroughput => d(
                "disk.read_throughput",
                Unit::BytesPerSecond,
                Avg,
                &["device"],
                "/proc/diskstats sectors read × 512, per second",
            ),
            M::DiskWriteThroughput => d(
                "disk.write_throughput",
                Unit::BytesPerSecond,
                Avg,
                &["device"],
                "/proc/diskstats sectors written × 512, per second",
            ),
            M::NetworkReceivedThroughput => d(
                "network.received_throughput",
                Unit::BytesPerSecond,
                Avg,
                &["interface"],
                "/proc/net/dev receive bytes, per second",
            ),
            M::NetworkSentThroughput => d(
                "network.sent_throughput",
                Unit::BytesPerSecond,
                Avg,
                &["interface"],
                "/proc/net/dev transmit bytes, per second",
            ),
            M::NetworkReceivedPps => d(
                "network.received_pps",
                Unit::CountPerSecond,
                Avg,
                &["interface"],
                "/proc/net/dev receive packets, per second",
            ),
            M::NetworkSentPps => d(
                "network.sent_pps",
                Unit::CountPerSecond,
                Avg,
                &["interface"],
                "/proc/net/dev transmit packets, per second",
            ),
            M::NetworkErrors => d(
                "network.errors",
                Unit::CountPerSecond,
                Avg,
                &["interface"],
                "/proc/net/dev receive errs + transmit errs, per second",
            ),
            M::Load1m => d("load.1m", Unit::None, Last, &[], "/proc/loadavg field 1"),
            M::Load5m => d("load.5m", Unit::None, Last, &[], "/proc/loadavg field 2"),
            M::Load15m => d("load.15m", Unit::None, Last, &[], "/proc/loadavg field 3"),
            M::ProcessCount => d(
                "process.count",
                Unit::Count,
                Last,
                &[],
                "number of numeric directories in /proc",
            ),
            M::ProcessRunning => d(
                "process.running",
                Unit::Count,
                Last,
                &[],
                "/proc/stat procs_running (runnable threads)",
            ),
            M::SystemUptime => d(
                "system.uptime",
                Unit::Seconds,
                Last,
                &[],
                "/proc/uptime field 1",
            ),
        }
    }
}

/// The catalog rows of the plugin's description, one per metric of [`M::ALL`].
pub(super) fn metrics() -> Vec<MetricInfo> {
    M::ALL
        .iter()
        .map(|m| {
            let d = m.def();
            MetricInfo::normalized(d.name, &[d.stat], d.labels, d.source)
        })
        .collect()
}

/// Which of [`M::ALL`] the task asked for, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wants([bool; M::ALL.len()]);

impl Wants {
    pub fn of(sel: &MetricSelection) -> Wants {
        let mut w = [false; M::ALL.len()];
        for (i, m) in M::ALL.iter().enumerate() {
            w[i] = sel.matches(m.def().name);
        }
        Wants(w)
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn get(&self, m: M) -> bool {
        self.0[m as usize]
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn any(&self, ms: &[M]) -> bool {
        ms.iter().any(|m| self.get(*m))
    }
}
