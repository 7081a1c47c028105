//! The live side: reads `/proc`, `statvfs` and `uname`, and hands what it read to the
//! [`engine`](super::engine). One [`Worker`] lives as long as the collector and keeps its
//! buffers, so a collection allocates little beyond the points it returns.

use super::catalog::{Wants, M};
use super::config::Settings;
use super::engine::{self, Engine, FsStat, Sink, StatInfo};
use chrono::{DateTime, TimeZone, Utc};
use procfs::net::InterfaceDeviceStatus;
use procfs::{DiskStats, FromBufRead, FromRead, LoadAverage, Meminfo};
use skymeter_model::{Point, Resource, ResourceRef};
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one collection produced.
pub struct Collected {
    pub resource: Resource,
    pub points: Vec<Point>,
    pub errors: Vec<PluginError>,
}

struct Paths {
    stat: String,
    meminfo: String,
    diskstats: String,
    net_dev: String,
    loadavg: String,
    uptime: String,
    mounts: String,
}

/// Facts read once: they do not change while the machine runs.
struct Static {
    machine_id: Option<String>,
    os_release: Option<String>,
}

pub struct Worker {
    settings: Settings,
    step: Arc<Mutex<String>>,
    paths: Paths,
    engine: Engine,
    /// Every file is read into this one buffer and parsed before the next is read.
    buf: String,
    stat: StatInfo,
    dir_buf: Vec<u8>,
    /// Block device name → is a whole disk (cached lookups in /sys/block).
    whole_disks: HashMap<String, bool>,
    has_sys_block: bool,
    origin: Instant,
    fixed: Option<Static>,
    /// Capacity of the last collection's point list, to allocate the next one once.
    points_hint: usize,
}

fn read_into(buf: &mut String, path: &str) -> io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

fn file_error(path: &str, e: impl std::fmt::Display) -> PluginError {
    PluginError::new(
        ErrorKind::Other,
        format!("cannot read {path}: {e}; check that procfs is mounted there and readable"),
    )
    .with("file", path)
}

impl Worker {
    pub fn new(settings: Settings, step: Arc<Mutex<String>>) -> Worker {
        let p = &settings.proc_path;
        let paths = Paths {
            stat: format!("{p}/stat"),
            meminfo: format!("{p}/meminfo"),
            diskstats: format!("{p}/diskstats"),
            net_dev: format!("{p}/net/dev"),
            loadavg: format!("{p}/loadavg"),
            uptime: format!("{p}/uptime"),
            // Another procfs than ours belongs to another mount namespace: its init's
            // mounts are the host's.
            mounts: if p == "/proc" {
                "/proc/self/mounts".into()
            } else {
                format!("{p}/1/mounts")
            },
        };
        Worker {
            settings,
            step,
            paths,
            engine: Engine::default(),
            buf: String::with_capacity(16 * 1024),
            stat: StatInfo::default(),
            dir_buf: Vec::with_capacity(32 * 1024),
            whole_disks: HashMap::new(),
            has_sys_block: std::path::Path::new("/sys/block").is_dir(),
            origin: Instant::now(),
            fixed: None,
            points_hint: 64,
        }
    }

    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    fn set_step(&self, what: std::fmt::Arguments<'_>) {
        let mut s = self.step.lock().unwrap_or_else(|p| p.into_inner());
        s.clear();
        let _ = s.write_fmt(what);
    }

    /// Reads the counters once without emitting anything, so that the next collection
    /// has rates.
    pub fn prime(&mut self, wants: &Wants) {
        let dummy = std::sync::Arc::new(ResourceRef {
            provider: "host".into(),
            account: Default::default(),
            region: Default::default(),
            id: Default::default(),
        });
        let mut points = Vec::new();
        let mut errors = Vec::new();
        let mut sink = Sink {
            ts: Utc::now(),
            resource: &dummy,
            wants,
            points: &mut points,
        };
        if self.read_stat().is_ok() {
            let at = self.now();
            self.engine
                .cpu(&mut self.stat, at, self.settings.per_cpu, &mut sink);
        }
        self.counters(wants, &mut sink, &mut errors);
        self.engine.sweep();
    }

    fn read_stat(&mut self) -> Result<(), PluginError> {
        self.set_step(format_args!("reading {}", self.paths.stat));
        read_into(&mut self.buf, &self.paths.stat).map_err(|e| file_error(&self.paths.stat, e))?;
        engine::parse_stat(&self.buf, &mut self.stat).map_err(|e| file_error(&self.paths.stat, e))
    }

    /// Disk and network counters, as the task wants them.
    fn counters(&mut self, wants: &Wants, sink: &mut Sink<'_>, errors: &mut Vec<PluginError>) {
        if wants.any(&[
            M::DiskReadIops,
            M::DiskWriteIops,
            M::DiskReadThroughput,
            M::DiskWriteThroughput,
        ]) {
            self.set_step(format_args!("reading {}", self.paths.diskstats));
            match read_into(&mut self.buf, &self.paths.diskstats)
                .map_err(|e| file_error(&self.paths.diskstats, e))
                .and_then(|()| {
                    DiskStats::from_buf_read(self.buf.as_bytes())
                        .map_err(|e| file_error(&self.paths.diskstats, e))
                }) {
                Ok(stats) => {
                    let at = self.now();
                    let (settings, cache, has_sys) =
                        (&self.settings, &mut self.whole_disks, self.has_sys_block);
                    if cache.len() > 4 * stats.0.len() + 64 {
                        cache.clear();
                    }
                    let mut is_whole = |name: &str| is_whole_disk(cache, has_sys, name);
                    let mut keep = |name: &str| engine::keep_disk(settings, name, &mut is_whole);
                    self.engine.disks(&stats, at, &mut keep, sink);
                }
                Err(e) => errors.push(e),
            }
        }
        if wants.any(&[
            M::NetworkReceivedThroughput,
            M::NetworkSentThroughput,
            M::NetworkReceivedPps,
            M::NetworkSentPps,
            M::NetworkErrors,
        ]) {
            self.set_step(format_args!("reading {}", self.paths.net_dev));
            match read_into(&mut self.buf, &self.paths.net_dev)
                .map_err(|e| file_error(&self.paths.net_dev, e))
                .and_then(|()| {
                    InterfaceDeviceStatus::from_buf_read(self.buf.as_bytes())
                        .map_err(|e| file_error(&self.paths.net_dev, e))
                }) {
                Ok(dev) => {
                    let at = self.now();
                    let exclude = &self.settings.interfaces_exclude;
                    let keep = |name: &str| !exclude.is_match(name);
                    self.engine.network(&dev, at, &keep, sink);
                }
                Err(e) => errors.push(e),
            }
        }
    }

    /// One full collection. Fails only when /proc/stat cannot be read (then nothing can).
    pub fn collect(&mut self, wants: &Wants, ts: DateTime<Utc>) -> Result<Collected, PluginError> {
        self.read_stat()?;
        let stat_at = self.now();
        let uname = rustix::system::uname();
        let hostname = uname.nodename().to_string_lossy().into_owned();
        let kernel = uname.release().to_string_lossy().into_owned();
        let id = self.settings.id.clone().unwrap_or_else(|| hostname.clone());
        let rref = std::sync::Arc::new(ResourceRef {
            provider: "host".into(),
            account: Default::default(),
            region: Default::default(),
            id: id.clone().into(),
        });
        let mut points = Vec::with_capacity(self.points_hint);
        let mut errors = Vec::new();
        let mut sink = Sink {
            ts,
            resource: &rref,
            wants,
            points: &mut points,
        };

        let btime = self.stat.btime;
        let cpus = self.stat.cpus.len();
        let running = self.stat.procs_running;
        self.engine
            .cpu(&mut self.stat, stat_at, self.settings.per_cpu, &mut sink);
        if let Some(r) = running {
            sink.push(M::ProcessRunning, 0, r as f64, Default::default());
        }

        // Memory is read even when no memory metric is wanted: the resource carries the total.
        self.set_step(format_args!("reading {}", self.paths.meminfo));
        let mut mem_total = None;
        match read_into(&mut self.buf, &self.paths.meminfo)
            .map_err(|e| file_error(&self.paths.meminfo, e))
            .and_then(|()| {
                Meminfo::from_buf_read(self.buf.as_bytes())
                    .map_err(|e| file_error(&self.paths.meminfo, e))
            }) {
            Ok(mi) => {
                mem_total = Some(mi.mem_total);
                engine::memory(&mi, &mut sink);
            }
            Err(e) => errors.push(e),
        }

        self.counters(wants, &mut sink, &mut errors);
        self.engine.sweep();

        if wants.any(&[M::Load1m, M::Load5m, M::Load15m]) {
            self.set_step(format_args!("reading {}", self.paths.loadavg));
            match read_into(&mut self.buf, &self.paths.loadavg)
                .map_err(|e| file_error(&self.paths.loadavg, e))
                .and_then(|()| {
                    LoadAverage::from_read(self.buf.as_bytes())
                        .map_err(|e| file_error(&self.paths.loadavg, e))
                }) {
                Ok(la) => engine::load(&la, &mut sink),
                Err(e) => errors.push(e),
            }
        }
        if wants.get(M::SystemUptime) {
            self.set_step(format_args!("reading {}", self.paths.uptime));
            match read_into(&mut self.buf, &self.paths.uptime)
                .map_err(|e| file_error(&self.paths.uptime, e))
                .and_then(|()| {
                    procfs::Uptime::from_read(self.buf.as_bytes())
                        .map_err(|e| file_error(&self.paths.uptime, e))
                }) {
                Ok(u) => sink.push(M::SystemUptime, 0, u.uptime, Default::default()),
                Err(e) => errors.push(e),
            }
        }
        if wants.get(M::ProcessCount) {
            self.set_step(format_args!("listing {}", self.settings.proc_path));
            match count_processes(&self.settings.proc_path, &mut self.dir_buf) {
                Ok(n) => sink.push(M::ProcessCount, 0, n as f64, Default::default()),
                Err(e) => errors.push(file_error(&self.settings.proc_path, e)),
            }
        }
        if wants.any(&[
            M::FilesystemTotal,
            M::FilesystemUsed,
            M::FilesystemUsage,
            M::FilesystemInodesUsage,
        ]) {
            self.filesystems(&mut sink, &mut errors);
        }

        self.set_step(format_args!("building the resource"));
        let fixed = self
            .fixed
            .get_or_insert_with(|| read_static(&self.settings.rootfs_path));
        let mut attributes = BTreeMap::new();
        attributes.insert("os".to_string(), "linux".into());
        if let Some(os) = &fixed.os_release {
            attributes.insert("os_release".to_string(), os.as_str().into());
        }
        attributes.insert("kernel".to_string(), kernel.into());
        attributes.insert("cpus".to_string(), cpus.into());
        if let Some(t) = mem_total {
            attributes.insert("memory_total".to_string(), t.into());
        }
        if let Some(b) = btime.and_then(|b| Utc.timestamp_opt(b as i64, 0).single()) {
            attributes.insert("boot_time".to_string(), b.to_rfc3339().into());
        }
        if let Some(m) = &fixed.machine_id {
            attributes.insert("machine_id".to_string(), m.as_str().into());
        }
        let resource = Resource {
            provider: "host".into(),
            account: Default::default(),
            region: Default::default(),
            kind: "host".into(),
            native_type: "linux".into(),
            id,
            name: hostname,
            tags: Default::default(),
            attributes,
            observed_at: Utc::now(),
        };
        self.points_hint = points.len().max(16);
        self.set_step(format_args!("idle"));
        Ok(Collected {
            resource,
            points,
            errors,
        })
    }

    fn filesystems(&mut self, sink: &mut Sink<'_>, errors: &mut Vec<PluginError>) {
        let path = &self.paths.mounts;
        self.set_step(format_args!("reading {path}"));
        let mut mounts = match read_into(&mut self.buf, path)
            .map_err(|e| file_error(path, e))
            .and_then(|()| {
                Vec::<procfs::MountEntry>::from_buf_read(self.buf.as_bytes())
                    .map_err(|e| file_error(path, e))
            }) {
            Ok(m) => m,
            Err(e) => return errors.push(e),
        };
        engine::unescape_mount_paths(&mut mounts);
        let rootfs = &self.settings.rootfs_path;
        let step = &self.step;
        let mut full = String::new();
        let mut statvfs = |mountpoint: &str| -> io::Result<FsStat> {
            full.clear();
            full.push_str(rootfs);
            full.push_str(mountpoint);
            {
                let mut s = step.lock().unwrap_or_else(|p| p.into_inner());
                s.clear();
                let _ = write!(s, "statvfs of {full}");
            }
            let st = rustix::fs::statvfs(full.as_str())?;
            Ok(FsStat {
                frsize: st.f_frsize,
                blocks: st.f_blocks,
                bfree: st.f_bfree,
                bavail: st.f_bavail,
                files: st.f_files,
                ffree: st.f_ffree,
            })
        };
        engine::filesystems(&self.settings, &mounts, &mut statvfs, sink, errors);
    }
}

/// Whether `name` is a whole disk: listed in /sys/block (partitions live one level down),
/// or, on systems without /sys, not named like a partition. Cached per name.
fn is_whole_disk(cache: &mut HashMap<String, bool>, has_sys_block: bool, name: &str) -> bool {
    if let Some(w) = cache.get(name) {
        return *w;
    }
    let whole = if has_sys_block {
        std::path::Path::new("/sys/block").join(name).exists()
    } else {
        !engine::looks_like_partition(name)
    };
    cache.insert(name.to_string(), whole);
    whole
}

/// Counts the numeric entries of procfs: one per process (threads live under each
/// process's `task/`). Reads the directory with `getdents64` into a reused buffer and never
/// opens an entry, so a thousand processes cost a few system calls.
fn count_processes(proc_path: &str, buf: &mut Vec<u8>) -> io::Result<u64> {
    use rustix::fs::{openat, Mode, OFlags, RawDir, CWD};
    let fd = openat(
        CWD,
        proc_path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut n = 0;
    let mut dir = RawDir::new(&fd, buf.spare_capacity_mut());
    while let Some(entry) = dir.next() {
        let entry = entry?;
        if entry
            .file_name()
            .to_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_digit())
        {
            n += 1;
        }
    }
    Ok(n)
}

fn read_static(rootfs: &str) -> Static {
    let read = |p: &str| std::fs::read_to_string(format!("{rootfs}{p}")).ok();
    let machine_id = read("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let os_release = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .and_then(|text| pretty_name(&text));
    Static {
        machine_id,
        os_release,
    }
}

/// `PRETTY_NAME` of an os-release file, unquoted.
pub(super) fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l.strip_prefix("PRETTY_NAME=")?.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}
