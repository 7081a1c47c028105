//! The `host` configuration: the keys a task writes ([`HostConfig`], with their defaults)
//! and what they become once checked and their globs compiled ([`Settings`]).

use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::{ConfigError, RawConfig};
use std::time::Duration;

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
