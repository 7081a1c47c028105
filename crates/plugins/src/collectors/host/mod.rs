//! `host`: the machine skymeter runs on, read straight from Linux `/proc` and `statvfs(2)`:
//! CPU, memory, swap, filesystems, disks, network, load, processes and uptime.
//!
//! It is meant to be cheap enough to leave running every 10 s next to the workload: each
//! `/proc` file is read once per collection into a reused buffer, only the files the task's
//! metric selection needs are read, processes are counted from the names in `/proc` without
//! opening any of them, and counters become rates against the previous collection's reading.
//!
//! The work is split in three so that everything but the system calls is testable with text
//! fixtures: [`engine`] turns parsed `/proc` contents into points (pure), [`read`] reads the
//! live files, and [`Host`] runs the two on a blocking thread (a `statvfs` of a dead NFS
//! mount can hang, and must not hang the async runtime with it).

// `ConfigError` is what the plugin API's `build` returns; boxing it here would not help.

use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Stat, Unit};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError,
    MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};
use std::time::Duration;

#[cfg(target_os = "linux")]
mod engine;
#[cfg(target_os = "linux")]
mod read;
#[cfg(all(test, target_os = "linux"))]
mod tests;

/// `host` settings. Every key is optional.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Resource id of the host. Defaults to the host name.
    #[serde(default)]
    pub id: Option<String>,
    /// Also emit `cpu.utilization` per logical CPU, with label `cpu` = "0", "1", …
    #[serde(default = "default_true")]
    pub per_cpu: bool,
    /// Rates need two readings. When a collection has no previous reading (the first one of
    /// a task, or `skymeter collect host`), the collector reads the counters, waits this
    /// long and reads them again, so that the first collection already has rates. In a
    /// running task this is the collector's warm-up, bounded by the task's
    /// `warm_up_timeout` rather than its collection `timeout`. "0s" skips the wait: the
    /// first collection then has no rates. At most "1m".
    #[serde(default = "default_warmup")]
    pub warmup: DurationStr,
    /// Filesystem types to leave out (globs). Setting this replaces the default list.
    #[serde(default = "default_fs_types_exclude")]
    pub fs_types_exclude: Vec<String>,
    /// Mount points to leave out (globs; `*` also matches `/`). Setting this replaces the
    /// default list.
    #[serde(default = "default_mountpoints_exclude")]
    pub mountpoints_exclude: Vec<String>,
    /// Block devices to report (globs on the name in /proc/diskstats, e.g. `["sd*", "nvme*"]`).
    /// Empty (the default): every whole disk, without partitions, `loop*`, `ram*`, `zram*`
    /// and `fd*`.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Network interfaces to leave out (globs). Setting this replaces the default `["lo"]`.
    #[serde(default = "default_interfaces_exclude")]
    pub interfaces_exclude: Vec<String>,
    /// Where procfs is mounted. In a container watching its host, mount the host's /proc
    /// somewhere (e.g. `/host/proc`) and point this at it; mounts are then read from
    /// `<proc_path>/1/mounts` (the host's init) instead of `/proc/self/mounts`.
    #[serde(default = "default_proc_path")]
    pub proc_path: String,
    /// Where the host's root filesystem is visible; filesystem sizes are read with `statvfs`
    /// on `<rootfs_path><mountpoint>`. For a container watching its host, e.g. `/host/root`.
    #[serde(default = "default_rootfs_path")]
    pub rootfs_path: String,
}

fn default_true() -> bool {
    true
}

fn default_warmup() -> DurationStr {
    DurationStr(Duration::from_secs(1))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Pseudo and read-only image filesystems: they have no meaningful size, or are always full.
pub const DEFAULT_FS_TYPES_EXCLUDE: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.lxcfs",
    "fuse.portal",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Kernel trees and the per-container mounts of container runtimes (each container's
/// overlay would otherwise repeat the size of the disk under it).
pub const DEFAULT_MOUNTPOINTS_EXCLUDE: &[&str] = &[
    "/proc",
    "/proc/*",
    "/sys",
    "/sys/*",
    "/dev",
    "/dev/*",
    "/run/credentials/*",
    "/var/lib/docker/*",
    "/var/lib/containers/storage/*",
    "/var/lib/kubelet/*",
    "/run/containerd/*",
    "/run/docker/*",
];

fn default_fs_types_exclude() -> Vec<String> {
    strings(DEFAULT_FS_TYPES_EXCLUDE)
}

fn default_mountpoints_exclude() -> Vec<String> {
    strings(DEFAULT_MOUNTPOINTS_EXCLUDE)
}

fn default_interfaces_exclude() -> Vec<String> {
    strings(&["lo"])
}

fn default_proc_path() -> String {
    "/proc".into()
}

fn default_rootfs_path() -> String {
    "/".into()
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "host",
            kind: PluginKind::Collector,
            summary: "this Linux machine from /proc and statvfs: CPU, memory, swap, filesystems, disks, network, load, processes, uptime",
            config_schema: PluginDescription::schema_of::<HostConfig>,
            metrics,
        },
        build,
    }
}

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

fn metrics() -> Vec<MetricInfo> {
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

/// The config, checked and compiled.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Settings {
    pub id: Option<String>,
    pub per_cpu: bool,
    pub warmup: Duration,
    pub fs_types_exclude: GlobSet,
    pub mountpoints_exclude: GlobSet,
    /// `None`: whole disks minus the default exclusions.
    pub devices: Option<GlobSet>,
    pub interfaces_exclude: GlobSet,
    pub proc_path: String,
    pub rootfs_path: String,
}

fn globs(raw: &RawConfig<'_>, key: &str, patterns: &[String]) -> Result<GlobSet, ConfigError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g = Glob::new(p).map_err(|e| {
            raw.error(
                key,
                format!("bad glob `{p}` in `{key}`: {e}; write e.g. \"/mnt/*\""),
            )
        })?;
        b.add(g);
    }
    b.build()
        .map_err(|e| raw.error(key, format!("bad globs in `{key}`: {e}")))
}

pub(crate) fn settings(raw: &RawConfig<'_>) -> Result<Settings, ConfigError> {
    let cfg: HostConfig = raw.decode()?;
    if let Some(id) = &cfg.id {
        if id.trim().is_empty() {
            return Err(raw.error(
                "id",
                "`id` is empty; remove it to use the host name, or give a name",
            ));
        }
    }
    if cfg.warmup.0 > Duration::from_secs(60) {
        return Err(raw.error(
            "warmup",
            "`warmup` is longer than 1m; the first collection would wait that long, use e.g. \"1s\"",
        ));
    }
    for (key, path) in [
        ("proc_path", &cfg.proc_path),
        ("rootfs_path", &cfg.rootfs_path),
    ] {
        if !path.starts_with('/') {
            return Err(raw.error(
                key,
                format!("`{key}` must be an absolute path, such as \"/host/proc\""),
            ));
        }
    }
    Ok(Settings {
        id: cfg.id,
        per_cpu: cfg.per_cpu,
        warmup: cfg.warmup.0,
        fs_types_exclude: globs(raw, "fs_types_exclude", &cfg.fs_types_exclude)?,
        mountpoints_exclude: globs(raw, "mountpoints_exclude", &cfg.mountpoints_exclude)?,
        devices: if cfg.devices.is_empty() {
            None
        } else {
            Some(globs(raw, "devices", &cfg.devices)?)
        },
        interfaces_exclude: globs(raw, "interfaces_exclude", &cfg.interfaces_exclude)?,
        proc_path: cfg.proc_path.trim_end_matches('/').to_string(),
        rootfs_path: cfg.rootfs_path.trim_end_matches('/').to_string(),
    })
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let settings = settings(raw)?;
    Ok(Box::new(Host::new(settings)))
}

/// The collector. On Linux it owns a [`read::Worker`] (buffers, previous readings) behind a
/// mutex that a blocking thread locks for the duration of one collection.
pub struct Host {
    #[cfg(target_os = "linux")]
    worker: std::sync::Arc<std::sync::Mutex<read::Worker>>,
    /// What the worker is doing right now, to name a stuck `statvfs` in the error.
    #[cfg(target_os = "linux")]
    step: std::sync::Arc<std::sync::Mutex<String>>,
    #[cfg(target_os = "linux")]
    warmup: Duration,
    /// Whether a collection has run, so the worker holds previous readings.
    #[cfg(target_os = "linux")]
    primed: bool,
    /// Whether the runner called `warm_up`: then `collect` never waits itself (a one-shot
    /// `skymeter collect host` has no warm-up step and waits inside its collection).
    #[cfg(target_os = "linux")]
    warm_up_done: bool,
    /// The last selection's patterns and what they want, so the globs run once per task.
    wants: Option<(Vec<String>, Wants)>,
}

impl Host {
    #[cfg(target_os = "linux")]
    pub(crate) fn new(settings: Settings) -> Host {
        let step = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        Host {
            warmup: settings.warmup,
            worker: std::sync::Arc::new(std::sync::Mutex::new(read::Worker::new(
                settings,
                step.clone(),
            ))),
            step,
            primed: false,
            warm_up_done: false,
            wants: None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new(_settings: Settings) -> Host {
        Host { wants: None }
    }

    fn wants(&mut self, sel: &MetricSelection) -> Wants {
        match &self.wants {
            Some((p, w)) if p.as_slice() == sel.patterns() => *w,
            _ => {
                let w = Wants::of(sel);
                self.wants = Some((sel.patterns().to_vec(), w));
                w
            }
        }
    }

    /// Runs `f` on the worker in a blocking thread. If the previous collection still holds
    /// the worker (a `statvfs` that never returned), says which step is stuck.
    #[cfg(target_os = "linux")]
    async fn on_worker<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut read::Worker) -> T + Send + 'static,
    ) -> Result<T, PluginError> {
        use skymeter_plugin_api::ErrorKind;
        use std::sync::TryLockError;
        let worker = self.worker.clone();
        let step = self.step.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = match worker.try_lock() {
                Ok(w) => w,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    let step = step.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    return Err(PluginError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the previous host collection has not finished; it is stuck at {step}. \
                             A network filesystem that does not answer is the usual cause: \
                             leave it out with `mountpoints_exclude` or `fs_types_exclude`"
                        ),
                    ));
                }
            };
            Ok(f(&mut w))
        })
        .await
        .map_err(|e| {
            PluginError::new(
                ErrorKind::Other,
                format!("the host collection thread failed: {e}"),
            )
        })?
    }
}

#[async_trait]
impl Collector for Host {
    /// Takes the first reading of the counters and waits `warmup`, so that the first
    /// collection already has rates; the runner bounds this apart from the collection's
    /// `timeout` (a 1 s warm-up on a 1 s schedule used to time out every first run).
    #[cfg(target_os = "linux")]
    async fn warm_up(&mut self, metrics: &MetricSelection) -> Result<(), PluginError> {
        // Set first: if the runner's bound cuts the wait short, `collect` must not wait again.
        self.warm_up_done = true;
        if self.primed || self.warmup.is_zero() {
            return Ok(());
        }
        let wants = self.wants(metrics);
        self.on_worker(move |w| w.prime(&wants)).await?;
        tokio::time::sleep(self.warmup).await;
        Ok(())
    }

    #[cfg(target_os = "linux")]
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let wants = self.wants(&req.metrics);
        if !self.primed && !self.warm_up_done && !self.warmup.is_zero() {
            self.on_worker(move |w| w.prime(&wants)).await?;
            tokio::time::sleep(self.warmup).await;
        }
        let ts = req.window.end;
        let got = self.on_worker(move |w| w.collect(&wants, ts)).await??;
        self.primed = true;
        out.resources.push(got.resource);
        out.points.extend(got.points);
        out.errors.extend(got.errors);
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    async fn collect(
        &mut self,
        req: &CollectRequest,
        _out: &mut Output,
    ) -> Result<(), PluginError> {
        let _ = self.wants(&req.metrics);
        Err(PluginError::new(
            skymeter_plugin_api::ErrorKind::Config,
            format!(
                "the host collector supports Linux only (this is {}); remove it from the task, \
                 or collect this machine with the `exec` or `prometheus` collector",
                std::env::consts::OS
            ),
        ))
    }
}
