use super::catalog::M;
use super::engine::{self, Engine, FsStat, Sink, StatInfo};
use super::*;
use chrono::Utc;
use procfs::net::InterfaceDeviceStatus;
use procfs::{DiskStats, FromBufRead, FromRead, LoadAverage, Meminfo, MountEntry};
use skymeter_model::{Labels, Point, ResourceRef, Stat, Unit, Window};
use skymeter_plugin_api::config::Source;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------- helpers

fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = Source::new("host.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    f(&raw)
}

fn settings_of(text: &str) -> Settings {
    with_raw(text, |raw| settings(raw).expect("settings"))
}

fn rref() -> ResourceRef {
    ResourceRef {
        provider: "host".into(),
        account: Default::default(),
        region: Default::default(),
        id: "h1".into(),
    }
}

fn all() -> Wants {
    Wants::of(&MetricSelection::all())
}

/// Runs `f` with a sink that wants everything and returns what it pushed.
fn sunk(wants: &Wants, f: impl FnOnce(&mut Sink<'_>)) -> Vec<Point> {
    let r = std::sync::Arc::new(rref());
    let mut points = Vec::new();
    let mut sink = Sink {
        ts: "2026-01-01T00:00:10Z".parse().unwrap(),
        resource: &r,
        wants,
        points: &mut points,
    };
    f(&mut sink);
    points
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `(metric, labels, value, period_s)` of every point, for exact comparison.
fn summary(points: &[Point]) -> Vec<(String, Labels, f64, u32)> {
    points
        .iter()
        .map(|p| {
            (
                p.metric.to_string(),
                (*p.labels).clone(),
                p.value,
                p.period_s,
            )
        })
        .collect()
}

fn row(metric: &str, kv: &[(&str, &str)], value: f64, period: u32) -> (String, Labels, f64, u32) {
    (metric.to_string(), labels(kv), value, period)
}

// ---------------------------------------------------------------- fixtures

/// Two readings of /proc/stat 10 s apart. cpu1 is offline (its line is missing). Between
/// the two, the total line moves by user 40, nice 0, system 20, idle 120, iowait 10, irq 2,
/// softirq 3, steal 5 (= 200 ticks) and guest 30, which is inside `user` already.
const STAT_A: &str = "\
cpu  1000 100 500 8000 200 10 20 30 400 0
cpu0 600 50 250 4000 100 5 10 15 200 0
cpu2 400 50 250 4000 100 5 10 15 200 0
intr 123456 0 0
ctxt 987654
btime 1767225600
processes 4242
procs_running 3
procs_blocked 0
softirq 1 2 3
";

const STAT_B: &str = "\
cpu  1040 100 520 8120 210 12 23 35 430 0
cpu0 630 50 250 4070 100 5 10 15 215 0
cpu2 410 50 270 4050 110 7 13 20 215 0
intr 123999 0 0
ctxt 987999
btime 1767225600
processes 4250
procs_running 5
procs_blocked 1
softirq 1 2 3
";

const MEMINFO: &str = "\
MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:   12000000 kB
Buffers:          100000 kB
Cached:          8000000 kB
SwapCached:            0 kB
Active:          4000000 kB
Inactive:        6000000 kB
Active(anon):      27316 kB
Inactive(anon):   193388 kB
Active(file):    1096700 kB
Inactive(file):  1175028 kB
Unevictable:       11164 kB
Mlocked:            9524 kB
SwapTotal:       2000000 kB
SwapFree:        1500000 kB
Dirty:             61732 kB
Writeback:             0 kB
AnonPages:        162320 kB
Mapped:           119892 kB
Shmem:             69548 kB
KReclaimable:     185464 kB
Slab:             215772 kB
SReclaimable:     185464 kB
SUnreclaim:        30308 kB
KernelStack:        2212 kB
PageTables:         4156 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:    12341828 kB
Committed_AS:     991024 kB
VmallocTotal:   34359738367 kB
VmallocUsed:        6436 kB
VmallocChunk:          0 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
";

const DISKSTATS_A: &str = "\
   7       0 loop0 100 0 800 10 0 0 0 0 0 10 10 0 0 0 0
 259       0 nvme0n1 1000 10 40000 500 2000 20 80000 900 0 700 1400 0 0 0 0 0 0
 259       1 nvme0n1p1 900 10 36000 450 1900 20 76000 850 0 650 1300 0 0 0 0 0 0
 254       0 vda 5000 100 200000 2000 1000 50 40000 800 0 2500 2800 0 0 0 0 0 0
 254       1 vda1 4900 100 190000 1900 990 50 39000 790 0 2400 2700 0 0 0 0 0 0
 253       0 zram0 10 0 80 0 10 0 80 0 0 0 0 0 0 0 0
 252       0 dm-0 300 0 2400 30 600 0 4800 60 0 90 90 0 0 0 0
";

const DISKSTATS_B: &str = "\
   7       0 loop0 200 0 1600 20 0 0 0 0 0 20 20 0 0 0 0
 259       0 nvme0n1 1100 10 44000 550 2200 20 88000 990 0 770 1540 0 0 0 0 0 0
 259       1 nvme0n1p1 950 10 38000 475 2000 20 80000 895 0 680 1370 0 0 0 0 0 0
 254       0 vda 5500 100 220000 2200 1100 50 44000 880 0 2750 3080 0 0 0 0 0 0
 254       1 vda1 5300 100 206000 2060 1080 50 42600 860 0 2600 2920 0 0 0 0 0 0
 253       0 zram0 20 0 160 0 20 0 160 0 0 0 0 0 0 0 0
 252       0 dm-0 300 0 2400 30 600 0 4800 60 0 90 90 0 0 0 0
";

const NETDEV_A: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   51732     675    0    0    0     0          0         0    51732     675    0    0    0     0       0          0
  eth0: 1000000    1000    4    0    0     0          0         0   500000     500    1    0    0     0       0          0
docker0:      0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";

const NETDEV_B: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   91732    1675    0    0    0     0          0         0    91732    1675    0    0    0     0       0          0
  eth0: 2000000    2000    6    0    0     0          0         0   750000     750    4    0    0     0       0          0
docker0:    5120      10    0    0    0     0          0         0     1024       2    0    0    0     0       0          0
";

const MOUNTS: &str = "\
proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
/dev/vda1 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=1616840k,mode=755 0 0
/dev/vda2 /boot ext4 rw,relatime 0 0
/dev/vda1 /srv ext4 rw,relatime 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw,relatime,lowerdir=/x 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
nas:/export /mnt/nas nfs4 rw,relatime 0 0
/dev/sdb1 /mnt/my\\040disk xfs rw 0 0
/dev/loop3 /snap/core/1 squashfs ro 0 0
";

// ---------------------------------------------------------------- CPU

#[test]
fn stat_parses_cpu_numbers_btime_and_running() {
    let mut s = StatInfo::default();
    engine::parse_stat(STAT_A, &mut s).unwrap();
    assert_eq!(s.total.user, 1000);
    assert_eq!(s.total.steal, 30);
    assert_eq!(
        s.cpus.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [0, 2],
        "cpuN numbers are kept"
    );
    assert_eq!(s.btime, Some(1_767_225_600));
    assert_eq!(s.procs_running, Some(3));
    assert!(engine::parse_stat("intr 1\n", &mut s).is_err());
}

#[test]
fn two_stat_readings_give_exact_shares_without_double_counting_guest() {
    let wants = all();
    let mut eng = Engine::default();
    let mut cur = StatInfo::default();
    engine::parse_stat(STAT_A, &mut cur).unwrap();
    let first = sunk(&wants, |s| eng.cpu(&mut cur, 100.0, true, s));
    assert!(first.is_empty(), "no rates from one reading");
    assert!(eng.is_primed());

    engine::parse_stat(STAT_B, &mut cur).unwrap();
    let points = sunk(&wants, |s| eng.cpu(&mut cur, 110.0, true, s));
    // total: busy = 200 − 120 idle − 10 iowait = 70 of 200 ticks. Were guest counted again,
    // the total would be 230 ticks and the share 43.5 %.
    assert_eq!(
        summary(&points),
        [
            row("cpu.utilization", &[], 35.0, 10),
            row("cpu.iowait", &[], 5.0, 10),
            row("cpu.steal", &[], 2.5, 10),
            // cpu0: user 30 + idle 70 → 30 %; cpu2: 100 ticks of which idle 50 + iowait 10.
            row("cpu.utilization", &[("cpu", "0")], 30.0, 10),
            row("cpu.utilization", &[("cpu", "2")], 40.0, 10),
        ]
    );
    for p in &points {
        assert_eq!((p.unit, p.stat), (Unit::Percent, Stat::Avg));
        assert_eq!(p.resource.id, "h1");
    }

    // Without per_cpu only the totals; a reading with no elapsed tick gives nothing.
    engine::parse_stat(STAT_B, &mut cur).unwrap();
    let none = sunk(&wants, |s| eng.cpu(&mut cur, 120.0, false, s));
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn cpu_counters_that_step_back_do_not_go_negative() {
    let a = engine::Ticks {
        user: 100,
        idle: 100,
        iowait: 50,
        ..Default::default()
    };
    let b = engine::Ticks {
        user: 150,
        idle: 150,
        iowait: 40, // per-CPU iowait is known to step back
        ..Default::default()
    };
    let s = engine::cpu_shares(&a, &b).unwrap();
    assert_eq!((s.utilization, s.iowait, s.steal), (50.0, 0.0, 0.0));
    assert_eq!(engine::cpu_shares(&a, &a), None);
}

// ---------------------------------------------------------------- memory, load

#[test]
fn meminfo_gives_bytes_and_df_like_shares() {
    let mi = Meminfo::from_buf_read(MEMINFO.as_bytes()).unwrap();
    let points = sunk(&all(), |s| engine::memory(&mi, s));
    assert_eq!(
        summary(&points),
        [
            row("memory.total", &[], 16_384_000_000.0, 0),
            row("memory.used", &[], 4_096_000_000.0, 0),
            row("memory.available", &[], 12_288_000_000.0, 0),
            row("memory.usage", &[], 25.0, 0),
            row("swap.total", &[], 2_048_000_000.0, 0),
            row("swap.used", &[], 512_000_000.0, 0),
            row("swap.usage", &[], 25.0, 0),
        ]
    );
    assert!(points.iter().all(|p| p.stat == Stat::Last));

    let no_swap = MEMINFO
        .replace("SwapTotal:       2000000", "SwapTotal:             0")
        .replace("SwapFree:        1500000", "SwapFree:              0");
    let mi = Meminfo::from_buf_read(no_swap.as_bytes()).unwrap();
    let points = sunk(&all(), |s| engine::memory(&mi, s));
    let names: Vec<_> = points.iter().map(|p| p.metric.as_str()).collect();
    assert!(names.contains(&"swap.total") && !names.contains(&"swap.usage"));
}

#[test]
fn loadavg_keeps_its_two_decimals() {
    let la = LoadAverage::from_read("0.16 0.37 12.24 1/137 13052\n".as_bytes()).unwrap();
    let points = sunk(&all(), |s| engine::load(&la, s));
    assert_eq!(
        summary(&points),
        [
            row("load.1m", &[], 0.16, 0),
            row("load.5m", &[], 0.37, 0),
            row("load.15m", &[], 12.24, 0),
        ]
    );
    assert_eq!(points[0].unit, Unit::None);
}

// ---------------------------------------------------------------- disks

fn disk_rates(settings: &Settings) -> Vec<Point> {
    let whole = ["loop0", "nvme0n1", "vda", "zram0", "dm-0"];
    let mut is_whole = |n: &str| whole.contains(&n);
    let mut keep = |n: &str| engine::keep_disk(settings, n, &mut is_whole);
    let wants = all();
    let mut eng = Engine::default();
    let a = DiskStats::from_buf_read(DISKSTATS_A.as_bytes()).unwrap();
    assert!(sunk(&wants, |s| eng.disks(&a, 50.0, &mut keep, s)).is_empty());
    eng.sweep();
    let b = DiskStats::from_buf_read(DISKSTATS_B.as_bytes()).unwrap();
    sunk(&wants, |s| eng.disks(&b, 60.0, &mut keep, s))
}

#[test]
fn diskstats_rates_for_whole_disks_only() {
    let points = disk_rates(&settings_of(""));
    let d = |dev| [("device", dev)];
    assert_eq!(
        summary(&points),
        [
            // nvme0n1: +100 reads, +200 writes, +4000 / +8000 sectors in 10 s
            row("disk.read_iops", &d("nvme0n1"), 10.0, 10),
            row("disk.write_iops", &d("nvme0n1"), 20.0, 10),
            row("disk.read_throughput", &d("nvme0n1"), 204_800.0, 10),
            row("disk.write_throughput", &d("nvme0n1"), 409_600.0, 10),
            // vda: +500, +100, +20000 / +4000 sectors
            row("disk.read_iops", &d("vda"), 50.0, 10),
            row("disk.write_iops", &d("vda"), 10.0, 10),
            row("disk.read_throughput", &d("vda"), 1_024_000.0, 10),
            row("disk.write_throughput", &d("vda"), 204_800.0, 10),
            // dm-0 idle
            row("disk.read_iops", &d("dm-0"), 0.0, 10),
            row("disk.write_iops", &d("dm-0"), 0.0, 10),
            row("disk.read_throughput", &d("dm-0"), 0.0, 10),
            row("disk.write_throughput", &d("dm-0"), 0.0, 10),
        ]
    );
    assert!(points
        .iter()
        .all(|p| p.stat == Stat::Avg && p.unit == p.metric_unit()));
}

trait MetricUnit {
    fn metric_unit(&self) -> Unit;
}

impl MetricUnit for Point {
    fn metric_unit(&self) -> Unit {
        skymeter_model::catalog::lookup(&self.metric).unwrap().unit
    }
}

#[test]
fn device_globs_select_exactly_and_include_partitions() {
    let points = disk_rates(&settings_of("devices = [\"nvme*\", \"loop*\"]\n"));
    let mut devices: Vec<_> = points
        .iter()
        .filter(|p| p.metric == "disk.read_iops")
        .map(|p| (p.labels["device"].as_str(), p.value))
        .collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        devices,
        [("loop0", 10.0), ("nvme0n1", 10.0), ("nvme0n1p1", 5.0)]
    );
}

#[test]
fn partition_names_are_recognised_without_sysfs() {
    for p in ["sda1", "vdb12", "xvda1", "hdc3", "nvme0n1p1", "mmcblk0p2"] {
        assert!(engine::looks_like_partition(p), "{p}");
    }
    for d in [
        "sda", "vdb", "nvme0n1", "mmcblk0", "dm-0", "md0", "sr0", "xvdf",
    ] {
        assert!(!engine::looks_like_partition(d), "{d}");
    }
}

// ---------------------------------------------------------------- network

#[test]
fn net_dev_rates_skip_lo_and_sum_errors() {
    let settings = settings_of("");
    let keep = |n: &str| !settings.interfaces_exclude.is_match(n);
    let wants = all();
    let mut eng = Engine::default();
    let a = InterfaceDeviceStatus::from_buf_read(NETDEV_A.as_bytes()).unwrap();
    assert!(sunk(&wants, |s| eng.network(&a, 0.0, &keep, s)).is_empty());
    eng.sweep();
    let b = InterfaceDeviceStatus::from_buf_read(NETDEV_B.as_bytes()).unwrap();
    let points = sunk(&wants, |s| eng.network(&b, 5.0, &keep, s));
    let i = |n| [("interface", n)];
    assert_eq!(
        summary(&points),
        [
            row("network.received_throughput", &i("docker0"), 1024.0, 5),
            row("network.sent_throughput", &i("docker0"), 204.8, 5),
            row("network.received_pps", &i("docker0"), 2.0, 5),
            row("network.sent_pps", &i("docker0"), 0.4, 5),
            row("network.errors", &i("docker0"), 0.0, 5),
            row("network.received_throughput", &i("eth0"), 200_000.0, 5),
            row("network.sent_throughput", &i("eth0"), 50_000.0, 5),
            row("network.received_pps", &i("eth0"), 200.0, 5),
            row("network.sent_pps", &i("eth0"), 50.0, 5),
            // rx errs +2, tx errs +3
            row("network.errors", &i("eth0"), 1.0, 5),
        ]
    );
}

#[test]
fn only_wanted_metrics_are_emitted() {
    let wants = Wants::of(&MetricSelection::new(&["network.errors"]).unwrap());
    let keep = |_: &str| true;
    let mut eng = Engine::default();
    let a = InterfaceDeviceStatus::from_buf_read(NETDEV_A.as_bytes()).unwrap();
    sunk(&wants, |s| eng.network(&a, 0.0, &keep, s));
    let b = InterfaceDeviceStatus::from_buf_read(NETDEV_B.as_bytes()).unwrap();
    let points = sunk(&wants, |s| eng.network(&b, 10.0, &keep, s));
    assert_eq!(
        summary(&points),
        [
            row("network.errors", &[("interface", "docker0")], 0.0, 10),
            row("network.errors", &[("interface", "eth0")], 0.5, 10),
            row("network.errors", &[("interface", "lo")], 0.0, 10),
        ]
    );
}

// ---------------------------------------------------------------- filesystems

#[test]
fn mounts_are_filtered_deduplicated_and_measured_like_df() {
    let settings = settings_of("");
    let mut mounts = Vec::<MountEntry>::from_buf_read(MOUNTS.as_bytes()).unwrap();
    engine::unescape_mount_paths(&mut mounts);
    let fs = |blocks, bfree, bavail, files, ffree| FsStat {
        frsize: 4096,
        blocks,
        bfree,
        bavail,
        files,
        ffree,
    };
    let table: HashMap<&str, FsStat> = [
        // used 600 blocks, available to users 200 (100 reserved for root): df says 75 %.
        ("/", fs(1000, 400, 200, 1000, 900)),
        ("/boot", fs(256, 192, 192, 0, 0)),
        ("/mnt/my disk", fs(100, 100, 100, 10, 10)),
    ]
    .into();
    let mut asked = Vec::new();
    let mut statvfs = |mp: &str| {
        asked.push(mp.to_string());
        table.get(mp).copied().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied")
        })
    };
    let mut errors = Vec::new();
    let points = sunk(&all(), |s| {
        engine::filesystems(&settings, &mounts, &mut statvfs, s, &mut errors)
    });
    assert_eq!(
        asked,
        ["/", "/boot", "/mnt/nas", "/mnt/my disk"],
        "pseudo, tmpfs, squashfs, docker and bind mounts are skipped before statvfs"
    );
    let l = |mp: &str, dev: &str, t: &str| {
        labels(&[("mountpoint", mp), ("device", dev), ("fstype", t)])
    };
    let root = l("/", "/dev/vda1", "ext4");
    let boot = l("/boot", "/dev/vda2", "ext4");
    let mine = l("/mnt/my disk", "/dev/sdb1", "xfs");
    assert_eq!(
        summary(&points),
        [
            ("filesystem.total".into(), root.clone(), 4_096_000.0, 0),
            ("filesystem.used".into(), root.clone(), 2_457_600.0, 0),
            ("filesystem.usage".into(), root.clone(), 75.0, 0),
            ("filesystem.inodes_usage".into(), root, 10.0, 0),
            ("filesystem.total".into(), boot.clone(), 1_048_576.0, 0),
            ("filesystem.used".into(), boot.clone(), 262_144.0, 0),
            ("filesystem.usage".into(), boot, 25.0, 0),
            ("filesystem.total".into(), mine.clone(), 409_600.0, 0),
            ("filesystem.used".into(), mine.clone(), 0.0, 0),
            ("filesystem.usage".into(), mine.clone(), 0.0, 0),
            ("filesystem.inodes_usage".into(), mine, 0.0, 0),
        ]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].context["mountpoint"], "/mnt/nas");
    assert!(
        errors[0]
            .message
            .contains("statvfs of /mnt/nas failed: permission denied")
            && errors[0].message.contains("mountpoints_exclude"),
        "{}",
        errors[0]
    );
}

#[test]
fn fs_type_list_replaces_the_default() {
    let settings = settings_of("fs_types_exclude = [\"ext4\"]\nmountpoints_exclude = []\n");
    let mounts = Vec::<MountEntry>::from_buf_read(MOUNTS.as_bytes()).unwrap();
    let mut asked = Vec::new();
    let mut statvfs = |mp: &str| {
        asked.push(mp.to_string());
        Ok(FsStat::default())
    };
    let mut errors = Vec::new();
    sunk(&all(), |s| {
        engine::filesystems(&settings, &mounts, &mut statvfs, s, &mut errors)
    });
    assert!(asked.contains(&"/proc".to_string()) && asked.contains(&"/run".to_string()));
    assert!(!asked.contains(&"/".to_string()) && !asked.contains(&"/boot".to_string()));
    assert!(errors.is_empty());
}

// ---------------------------------------------------------------- config, catalog

#[test]
fn config_mistakes_are_located() {
    let err = with_raw("per_cpu = true\ndevices = [\"sd[\"]\n", |raw| {
        settings(raw).err().unwrap()
    });
    assert_eq!((err.line, err.key.as_deref()), (Some(2), Some("devices")));
    assert!(err.message.contains("bad glob `sd[`"), "{err}");

    let err = with_raw("warmup = \"5m\"\n", |raw| settings(raw).err().unwrap());
    assert_eq!(err.line, Some(1));
    assert!(err.message.contains("longer than 1m"), "{err}");

    let err = with_raw("proc_path = \"host/proc\"\n", |raw| {
        settings(raw).err().unwrap()
    });
    assert!(err.message.contains("absolute path"), "{err}");

    let err = with_raw("percpu = false\n", |raw| settings(raw).err().unwrap());
    assert!(err.message.contains("unknown field `percpu`"), "{err}");
}

#[test]
fn every_metric_is_in_the_catalog_with_the_same_unit() {
    let infos = metrics();
    assert_eq!(infos.len(), M::ALL.len());
    for (i, m) in M::ALL.iter().enumerate() {
        assert_eq!(*m as usize, i, "M::ALL is in declaration order");
        let d = m.def();
        let cat = skymeter_model::catalog::lookup(d.name).expect(d.name);
        assert_eq!(cat.unit, d.unit, "{}", d.name);
        assert!(!d.source.is_empty(), "{}", d.name);
    }
}

#[test]
fn os_release_pretty_name() {
    let text =
        "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
    assert_eq!(
        read::pretty_name(text).as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!(read::pretty_name("ID=x\n"), None);
}

// ---------------------------------------------------------------- the reader, on fixture files

/// A fake procfs: the reader's paths, counting and parsing, with exact values.
#[tokio::test]
async fn reads_a_procfs_tree_given_as_proc_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("net")).unwrap();
    std::fs::create_dir_all(p.join("1")).unwrap();
    for pid in ["42", "4242", "self-not-a-pid", "sys"] {
        std::fs::create_dir_all(p.join(pid)).unwrap();
    }
    std::fs::write(p.join("stat"), STAT_A).unwrap();
    std::fs::write(p.join("meminfo"), MEMINFO).unwrap();
    std::fs::write(p.join("net/dev"), NETDEV_A).unwrap();
    std::fs::write(p.join("loadavg"), "1.50 0.37 0.24 2/137 13052\n").unwrap();
    std::fs::write(p.join("uptime"), "12345.67 20000.00\n").unwrap();
    // The mounts of "the host" are read from <proc_path>/1/mounts; none are kept here.
    std::fs::write(p.join("1/mounts"), "proc /proc proc rw 0 0\n").unwrap();
    // no diskstats: a partial error, the rest goes on.

    let toml = format!(
        "proc_path = \"{}\"\nid = \"web-1\"\nwarmup = \"0s\"\n",
        p.display()
    );
    let mut host = with_raw(&toml, |raw| Host::new(settings(raw).unwrap()));
    let end = Utc::now();
    let req = CollectRequest {
        window: Window {
            start: end - chrono::Duration::seconds(10),
            end,
        },
        metrics: MetricSelection::all(),
        task: "t".into(),
    };
    let mut out = Output::default();
    host.collect(&req, &mut out).await.unwrap();
    let got = |m: &str| {
        out.points
            .iter()
            .find(|x| x.metric == m && x.labels.is_empty())
            .map(|x| x.value)
    };
    assert_eq!(got("cpu.utilization"), None, "warmup 0s: no rates yet");
    assert_eq!(got("process.count"), Some(3.0), "1, 42, 4242");
    assert_eq!(got("process.running"), Some(3.0));
    assert_eq!(got("load.1m"), Some(1.5));
    assert_eq!(got("system.uptime"), Some(12345.67));
    assert_eq!(got("memory.total"), Some(16_384_000_000.0));
    assert!(out
        .points
        .iter()
        .all(|x| x.ts == end && x.resource.id == "web-1"));
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(out.errors[0].context["file"].ends_with("/diskstats"));

    let r = &out.resources[0];
    assert_eq!(
        (
            r.provider.as_str(),
            r.kind.as_str(),
            r.native_type.as_str(),
            r.id.as_str()
        ),
        ("host", "host", "linux", "web-1")
    );
    assert_eq!(r.attributes["cpus"], 2);
    assert_eq!(r.attributes["memory_total"], 16_384_000_000u64);
    assert_eq!(r.attributes["boot_time"], "2026-01-01T00:00:00+00:00");

    // Second collection: the CPU now has a previous reading.
    std::fs::write(p.join("stat"), STAT_B).unwrap();
    std::fs::write(p.join("net/dev"), NETDEV_B).unwrap();
    let mut out = Output::default();
    host.collect(&req, &mut out).await.unwrap();
    let got = |m: &str| {
        out.points
            .iter()
            .find(|x| x.metric == m && x.labels.is_empty())
            .map(|x| x.value)
    };
    assert_eq!(got("cpu.utilization"), Some(35.0));
    assert_eq!(got("cpu.steal"), Some(2.5));
    assert_eq!(got("process.running"), Some(5.0));
    assert!(out
        .points
        .iter()
        .any(|x| x.metric == "network.received_pps" && x.labels["interface"] == "eth0"));

    // A selection reads only what it needs: no diskstats error for a CPU-only task.
    // (200 more idle ticks on the total line: 0 % busy.)
    let stat_c = STAT_B.replace("cpu  1040 100 520 8120", "cpu  1040 100 520 8320");
    std::fs::write(p.join("stat"), stat_c).unwrap();
    let mut cpu_only = req.clone();
    cpu_only.metrics = MetricSelection::new(&["cpu.*"]).unwrap();
    let mut out = Output::default();
    host.collect(&cpu_only, &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let got: Vec<(&str, f64)> = out
        .points
        .iter()
        .map(|x| (x.metric.as_str(), x.value))
        .collect();
    assert_eq!(
        got,
        [
            ("cpu.utilization", 0.0),
            ("cpu.iowait", 0.0),
            ("cpu.steal", 0.0)
        ]
    );
}

#[tokio::test]
async fn a_missing_proc_stat_fails_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("proc_path = \"{}\"\n", dir.path().display());
    let mut host = with_raw(&toml, |raw| Host::new(settings(raw).unwrap()));
    let end = Utc::now();
    let req = CollectRequest {
        window: Window { start: end, end },
        metrics: MetricSelection::all(),
        task: "t".into(),
    };
    let err = host
        .collect(&req, &mut Output::default())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("cannot read") && err.context["file"].ends_with("/stat"),
        "{err}"
    );
}

// ---------------------------------------------------------------- the live machine

fn meminfo_total_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn numeric_proc_dirs() -> i64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .count() as i64
}

#[tokio::test]
async fn collects_the_live_machine() {
    let raw_text = "warmup = \"300ms\"\n";
    let mut col = with_raw(raw_text, |raw| {
        (factory().build)(raw, &BuildContext::one_shot("test")).unwrap()
    });
    let mut last = Output::default();
    for _ in 0..2 {
        let end = Utc::now();
        let req = CollectRequest {
            window: Window {
                start: end - chrono::Duration::seconds(10),
                end,
            },
            metrics: MetricSelection::all(),
            task: "live".into(),
        };
        last = Output::default();
        col.collect(&req, &mut last).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = last;
    let mut names: Vec<&str> = out.points.iter().map(|p| p.metric.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    assert!(
        names.contains(&"cpu.utilization"),
        "rates after warmup: {names:?}"
    );
    for p in &out.points {
        assert!(p.value.is_finite(), "{p:?}");
        assert!(
            skymeter_model::catalog::lookup(&p.metric).is_some(),
            "{}",
            p.metric
        );
    }
    let one = |m: &str| {
        out.points
            .iter()
            .find(|p| p.metric == m && p.labels.is_empty())
            .unwrap_or_else(|| panic!("no {m}"))
            .value
    };
    assert_eq!(one("memory.total"), (meminfo_total_kib() * 1024) as f64);
    let procs = one("process.count") as i64;
    assert!((procs - numeric_proc_dirs()).abs() <= 50, "{procs}");
    let loadavg: f64 = std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((one("load.1m") - loadavg).abs() <= 0.5);
    let util = one("cpu.utilization");
    assert!((0.0..=100.0).contains(&util), "{util}");

    assert_eq!(out.resources.len(), 1);
    let r = &out.resources[0];
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        (r.id.as_str(), r.name.as_str()),
        (hostname.as_str(), hostname.as_str())
    );
    assert_eq!(r.attributes["memory_total"], meminfo_total_kib() * 1024);
    assert!(out
        .points
        .iter()
        .all(|p| p.resource == r.reference().into()));
}

// ---------------------------------------------------------------- sample

/// The first collect entry of `sample.toml`, as the pipeline would hand it over.
fn sample_entry() -> String {
    let doc: toml::Table = toml::from_str(include_str!("sample.toml")).unwrap();
    let task = &doc["task"].as_array().unwrap()[0];
    let mut entry = task["collect"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    assert_eq!(entry["plugin"].as_str(), Some("host"));
    for k in ["plugin", "name", "timeout"] {
        entry.remove(k);
    }
    toml::to_string(&entry).unwrap()
}

#[test]
fn builds_from_its_sample() {
    with_raw(&sample_entry(), |raw| {
        (factory().build)(raw, &BuildContext::one_shot("test")).unwrap();
    });
}
