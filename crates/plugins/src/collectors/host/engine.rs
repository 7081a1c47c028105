//! From `/proc` contents to points, without touching the live system: every function here
//! takes text or parsed structs plus the monotonic time of the reading, so the tests can
//! feed fixtures and assert exact values.

use super::catalog::{Wants, M};
use super::config::Settings;
use chrono::{DateTime, Utc};
use procfs::net::{DeviceStatus, InterfaceDeviceStatus};
use procfs::{DiskStats, LoadAverage, Meminfo, MountEntry};
use skymeter_model::{Labels, Point, ResourceRef};
use skymeter_plugin_api::rate::CounterRates;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::HashSet;

/// `/proc/diskstats` counts sectors of 512 bytes whatever the device's own sector size.
const SECTOR: u64 = 512;

/// CPU time in clock ticks, from one `cpu` line of `/proc/stat`.
///
/// `guest` and `guest_nice` are not kept: the kernel already counts guest time inside `user`
/// and `nice`, so adding them again would count it twice. Time a VM on this host spent
/// running is therefore busy time (in `user`), as it should be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// What this collector needs from `/proc/stat`.
///
/// Parsed by hand rather than with `procfs::KernelStats`, which drops the number of each
/// `cpuN` line: with some CPUs offline the lines skip numbers, and per-core points labelled
/// by position would be labelled wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatInfo {
    pub total: Ticks,
    /// `(N of cpuN, ticks)`, in file order (ascending N).
    pub cpus: Vec<(u32, Ticks)>,
    pub btime: Option<u64>,
    pub procs_running: Option<u64>,
}

/// Parses `/proc/stat` into `out`, reusing its buffers.
pub fn parse_stat(text: &str, out: &mut StatInfo) -> Result<(), String> {
    out.cpus.clear();
    out.btime = None;
    out.procs_running = None;
    let mut saw_total = false;
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(key) = f.next() else { continue };
        if let Some(n) = key.strip_prefix("cpu") {
            let mut next = || -> u64 { f.next().and_then(|v| v.parse().ok()).unwrap_or(0) };
            let t = Ticks {
                user: next(),
                nice: next(),
                system: next(),
                idle: next(),
                iowait: next(),
                irq: next(),
                softirq: next(),
                steal: next(),
            };
            if n.is_empty() {
                out.total = t;
                saw_total = true;
            } else if let Ok(n) = n.parse() {
                out.cpus.push((n, t));
            }
        } else if key == "btime" {
            out.btime = f.next().and_then(|v| v.parse().ok());
        } else if key == "procs_running" {
            out.procs_running = f.next().and_then(|v| v.parse().ok());
        }
    }
    if saw_total {
        Ok(())
    } else {
        Err("no `cpu` line".into())
    }
}

/// CPU shares over the ticks between two readings, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShares {
    pub utilization: f64,
    pub iowait: f64,
    pub steal: f64,
}

/// `None` when no tick elapsed (a CPU that was offline, or two reads within one tick).
///
/// Each field's delta saturates at 0: per-CPU `iowait` is known to step backwards, and a
/// CPU that went offline and came back restarts its counters.
pub fn cpu_shares(prev: &Ticks, cur: &Ticks) -> Option<CpuShares> {
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let user = d(prev.user, cur.user);
    let nice = d(prev.nice, cur.nice);
    let system = d(prev.system, cur.system);
    let idle = d(prev.idle, cur.idle);
    let iowait = d(prev.iowait, cur.iowait);
    let irq = d(prev.irq, cur.irq);
    let softirq = d(prev.softirq, cur.softirq);
    let steal = d(prev.steal, cur.steal);
    let total = user + nice + system + idle + iowait + irq + softirq + steal;
    if total == 0 {
        return None;
    }
    let total = total as f64;
    // Multiply before dividing, so that round shares come out exact.
    let pct = |x: u64| (100.0 * x as f64 / total).clamp(0.0, 100.0);
    Some(CpuShares {
        utilization: pct(total as u64 - idle - iowait),
        iowait: pct(iowait),
        steal: pct(steal),
    })
}

/// One filesystem's `statvfs` numbers that matter here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStat {
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

/// Where points go: stamps them with the collection's time and resource, and drops the
/// metrics the task did not ask for.
pub struct Sink<'a> {
    pub ts: DateTime<Utc>,
    pub resource: &'a std::sync::Arc<ResourceRef>,
    pub wants: &'a Wants,
    pub points: &'a mut Vec<Point>,
}

impl Sink<'_> {
    pub fn wants(&self, m: M) -> bool {
        self.wants.get(m)
    }

    /// `period_s` is 0 for gauges; for rates the seconds between the two readings.
    pub fn push(&mut self, m: M, period_s: u32, value: f64, labels: Labels) {
        if !self.wants(m) || !value.is_finite() {
            return;
        }
        let d = m.def();
        self.points.push(Point {
            metric: d.name.to_string().into(),
            unit: d.unit,
            stat: d.stat,
            period_s,
            ts: self.ts,
            value,
            resource: self.resource.clone(),
            labels: labels.into(),
        });
    }
}

fn label(k: &str, v: &str) -> Labels {
    let mut l = Labels::new();
    l.insert(k.to_string(), v.to_string());
    l
}

/// The seconds a rate was computed over, as `period_s` wants them: rounded, at least 1.
pub fn period(elapsed_s: f64) -> u32 {
    elapsed_s.round().clamp(1.0, u32::MAX as f64) as u32
}

/// Counters kept between collections, by kind and device / interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ctr {
    DiskReads,
    DiskWrites,
    DiskReadBytes,
    DiskWriteBytes,
    NetRxBytes,
    NetTxBytes,
    NetRxPackets,
    NetTxPackets,
    NetErrors,
}

/// A disk metric, its counter, and how to read it from a /proc/diskstats line.
type DiskField = (M, Ctr, fn(&procfs::DiskStat) -> u64);
/// A network metric, its counter, and how to read it from a /proc/net/dev line.
type NetField = (M, Ctr, fn(&DeviceStatus) -> u64);

/// The state that turns successive readings into rates.
#[derive(Debug, Default)]
pub struct Engine {
    /// The previous `/proc/stat` and when it was read; swapped with the current one after
    /// each reading so that both buffers are reused.
    cpu_prev: StatInfo,
    cpu_prev_at: Option<f64>,
    rates: CounterRates<(Ctr, String)>,
    disk_prev_at: Option<f64>,
    net_prev_at: Option<f64>,
}

impl Engine {
    /// Whether a previous CPU reading exists (rates can be computed from the next one).
    #[cfg(test)]
    pub fn is_primed(&self) -> bool {
        self.cpu_prev_at.is_some()
    }

    /// CPU shares since the previous reading, then keeps `cur` as the previous one (`cur`
    /// gets the old buffer back, to parse the next reading into).
    pub fn cpu(&mut self, cur: &mut StatInfo, at: f64, per_cpu: bool, sink: &mut Sink<'_>) {
        if let Some(prev_at) = self.cpu_prev_at {
            let p = period(at - prev_at);
            if let Some(s) = cpu_shares(&self.cpu_prev.total, &cur.total) {
                sink.push(M::CpuUtilization, p, s.utilization, Labels::new());
                sink.push(M::CpuIowait, p, s.iowait, Labels::new());
                sink.push(M::CpuSteal, p, s.steal, Labels::new());
            }
            if per_cpu && sink.wants(M::CpuUtilization) {
                for (n, t) in &cur.cpus {
                    let Ok(i) = self.cpu_prev.cpus.binary_search_by_key(n, |(m, _)| *m) else {
                        continue;
                    };
                    if let Some(s) = cpu_shares(&self.cpu_prev.cpus[i].1, t) {
                        sink.push(
                            M::CpuUtilization,
                            p,
                            s.utilization,
                            label("cpu", &n.to_string()),
                        );
                    }
                }
            }
        }
        std::mem::swap(&mut self.cpu_prev, cur);
        self.cpu_prev_at = Some(at);
    }

    fn rate(&mut self, c: Ctr, name: &str, value: u64, at: f64) -> Option<f64> {
        self.rates.update((c, name.to_string()), value as f64, at)
    }

    /// Disk rates for the devices `keep` accepts.
    pub fn disks(
        &mut self,
        stats: &DiskStats,
        at: f64,
        keep: &mut dyn FnMut(&str) -> bool,
        sink: &mut Sink<'_>,
    ) {
        let p = self.disk_prev_at.map(|t| period(at - t));
        let fields: [DiskField; 4] = [
            (M::DiskReadIops, Ctr::DiskReads, |d| d.reads),
            (M::DiskWriteIops, Ctr::DiskWrites, |d| d.writes),
            (M::DiskReadThroughput, Ctr::DiskReadBytes, |d| {
                d.sectors_read.saturating_mul(SECTOR)
            }),
            (M::DiskWriteThroughput, Ctr::DiskWriteBytes, |d| {
                d.sectors_written.saturating_mul(SECTOR)
            }),
        ];
        for d in &stats.0 {
            if !keep(&d.name) {
                continue;
            }
            for (m, c, get) in fields {
                if !sink.wants(m) {
                    continue;
                }
                if let (Some(r), Some(p)) = (self.rate(c, &d.name, get(d), at), p) {
                    sink.push(m, p, r, label("device", &d.name));
                }
            }
        }
        self.disk_prev_at = Some(at);
    }

    /// Network rates for the interfaces `keep` accepts, in name order.
    pub fn network(
        &mut self,
        dev: &InterfaceDeviceStatus,
        at: f64,
        keep: &dyn Fn(&str) -> bool,
        sink: &mut Sink<'_>,
    ) {
        let p = self.net_prev_at.map(|t| period(at - t));
        let mut names: Vec<&String> = dev.0.keys().filter(|n| keep(n)).collect();
        names.sort_unstable();
        let fields: [NetField; 5] = [
            (M::NetworkReceivedThroughput, Ctr::NetRxBytes, |d| {
                d.recv_bytes
            }),
            (M::NetworkSentThroughput, Ctr::NetTxBytes, |d| d.sent_bytes),
            (M::NetworkReceivedPps, Ctr::NetRxPackets, |d| d.recv_packets),
            (M::NetworkSentPps, Ctr::NetTxPackets, |d| d.sent_packets),
            (M::NetworkErrors, Ctr::NetErrors, |d| {
                d.recv_errs + d.sent_errs
            }),
        ];
        for name in names {
            let d = &dev.0[name];
            for (m, c, get) in fields {
                if !sink.wants(m) {
                    continue;
                }
                if let (Some(r), Some(p)) = (self.rate(c, name, get(d), at), p) {
                    sink.push(m, p, r, label("interface", name));
                }
            }
        }
        self.net_prev_at = Some(at);
    }

    /// Forgets counters that were not read this collection (devices that went away).
    pub fn sweep(&mut self) {
        self.rates.sweep();
    }
}

/// Memory and swap gauges. procfs has already turned /proc/meminfo's kB (KiB) into bytes.
pub fn memory(mi: &Meminfo, sink: &mut Sink<'_>) {
    let total = mi.mem_total;
    // MemAvailable exists since Linux 3.14; before, free + buffers + page cache is the
    // usual estimate.
    let available = mi
        .mem_available
        .unwrap_or(mi.mem_free + mi.buffers + mi.cached);
    let used = total.saturating_sub(available);
    sink.push(M::MemoryTotal, 0, total as f64, Labels::new());
    sink.push(M::MemoryUsed, 0, used as f64, Labels::new());
    sink.push(M::MemoryAvailable, 0, available as f64, Labels::new());
    if total > 0 {
        sink.push(
            M::MemoryUsage,
            0,
            100.0 * used as f64 / total as f64,
            Labels::new(),
        );
    }
    let swap_total = mi.swap_total;
    let swap_used = swap_total.saturating_sub(mi.swap_free);
    sink.push(M::SwapTotal, 0, swap_total as f64, Labels::new());
    sink.push(M::SwapUsed, 0, swap_used as f64, Labels::new());
    if swap_total > 0 {
        sink.push(
            M::SwapUsage,
            0,
            100.0 * swap_used as f64 / swap_total as f64,
            Labels::new(),
        );
    }
}

/// Load averages. /proc/loadavg has two decimals; procfs reads them as `f32`, so they are
/// rounded back to two decimals rather than reported as 0.1599999964.
pub fn load(la: &LoadAverage, sink: &mut Sink<'_>) {
    let r = |x: f32| (f64::from(x) * 100.0).round() / 100.0;
    sink.push(M::Load1m, 0, r(la.one), Labels::new());
    sink.push(M::Load5m, 0, r(la.five), Labels::new());
    sink.push(M::Load15m, 0, r(la.fifteen), Labels::new());
}

/// Whether a block device is reported. With `devices` globs, exactly the matching names;
/// without, whole disks (`is_whole_disk`) that are not loop, RAM or floppy devices.
pub fn keep_disk(
    settings: &Settings,
    name: &str,
    is_whole_disk: &mut dyn FnMut(&str) -> bool,
) -> bool {
    match &settings.devices {
        Some(globs) => globs.is_match(name),
        None => {
            !["loop", "ram", "zram", "fd"]
                .iter()
                .any(|p| name.starts_with(p))
                && is_whole_disk(name)
        }
    }
}

/// Guesses from the name whether a block device is a partition, for systems without
/// `/sys/block` (the authoritative list of whole disks): `sda1`, `vdb2`, `xvda1`, `hdc3`,
/// `nvme0n1p1`, `mmcblk0p2`.
pub fn looks_like_partition(name: &str) -> bool {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return false;
    }
    let stem = &name[..name.len() - digits];
    for prefix in ["sd", "vd", "xvd", "hd"] {
        if let Some(letters) = stem.strip_prefix(prefix) {
            return !letters.is_empty() && letters.bytes().all(|b| b.is_ascii_lowercase());
        }
    }
    // nvme0n1p1, mmcblk0p1: a `p` right after a digit.
    stem.strip_suffix('p')
        .is_some_and(|s| s.ends_with(|c: char| c.is_ascii_digit()))
}

/// Filesystem gauges for the mounts the settings keep, one series per device.
///
/// A device mounted twice (bind mounts) is reported at its first mount point; mounts whose
/// device is not a path (`overlay`, `server:/export`) are each their own filesystem.
/// `statvfs` failures become partial errors naming the mount point.
pub fn filesystems(
    settings: &Settings,
    mounts: &[MountEntry],
    statvfs: &mut dyn FnMut(&str) -> std::io::Result<FsStat>,
    sink: &mut Sink<'_>,
    errors: &mut Vec<PluginError>,
) {
    let mut seen: HashSet<&str> = HashSet::new();
    for m in mounts {
        if settings.fs_types_exclude.is_match(&m.fs_vfstype)
            || settings.mountpoints_exclude.is_match(&m.fs_file)
        {
            continue;
        }
        if m.fs_spec.starts_with('/') && !seen.insert(&m.fs_spec) {
            continue;
        }
        let st = match statvfs(&m.fs_file) {
            Ok(st) => st,
            Err(e) => {
                errors.push(
                    PluginError::new(
                        ErrorKind::Other,
                        format!(
                            "statvfs of {} failed: {e}; leave it out with `mountpoints_exclude` \
                             if it is not worth watching",
                            m.fs_file
                        ),
                    )
                    .with("mountpoint", m.fs_file.as_str()),
                );
                continue;
            }
        };
        if st.blocks == 0 {
            continue; // a pseudo filesystem that slipped through the type list
        }
        let total = st.blocks * st.frsize;
        let used = (st.blocks.saturating_sub(st.bfree)) * st.frsize;
        let avail = st.bavail * st.frsize;
        let labels = || {
            let mut l = Labels::new();
            l.insert("mountpoint".into(), m.fs_file.clone());
            l.insert("device".into(), m.fs_spec.clone());
            l.insert("fstype".into(), m.fs_vfstype.clone());
            l
        };
        sink.push(M::FilesystemTotal, 0, total as f64, labels());
        sink.push(M::FilesystemUsed, 0, used as f64, labels());
        if used + avail > 0 {
            sink.push(
                M::FilesystemUsage,
                0,
                100.0 * used as f64 / (used + avail) as f64,
                labels(),
            );
        }
        if st.files > 0 {
            sink.push(
                M::FilesystemInodesUsage,
                0,
                100.0 * st.files.saturating_sub(st.ffree) as f64 / st.files as f64,
                labels(),
            );
        }
    }
}

/// `/proc/mounts` writes a space in a path as `\040`; procfs undoes the other escapes but
/// not this one.
pub fn unescape_mount_paths(mounts: &mut [MountEntry]) {
    for m in mounts {
        for s in [&mut m.fs_file, &mut m.fs_spec] {
            if s.contains("\\040") {
                *s = s.replace("\\040", " ");
            }
        }
    }
}
