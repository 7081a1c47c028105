//! The OpenFinOps `GenericTelemetryAgent`'s post (`metrics.collectors.system_metrics`) as
//! a `host` resource, keyed like skymeter's host collector (provider `host`, id = host
//! name), and the catalog's host metrics.
//!
//! The agent's disk and network figures are counters since boot: from the second post of a
//! host on, their rates over the time between the two posts are the catalog's
//! `disk.*_throughput`, `disk.*_iops`, `network.*` (stat avg, period = that time), as the
//! host collector computes them; a counter that went back (a reboot) makes no rate. The
//! previous post's counters are kept in memory ([`Counters`]): after a server restart, rates
//! start again from the second post. `memory.used` is total − available (the catalog's
//! definition), not psutil's `used`. Filesystem figures are the agent's, for `/`.

use super::records::{attributes, num, text, Records};
use serde_json::Value;
use skymeter_model::{Labels, Stat, Unit};
use std::collections::HashMap;
use std::sync::Mutex;

/// One post's counters: its data timestamp (Unix seconds), counter name → value.
type Reading = (f64, HashMap<&'static str, f64>);

/// The counters of each host's last post.
#[derive(Default)]
pub struct Counters(Mutex<HashMap<String, Reading>>);

/// Counter field (under `data`) → the rate metric it makes.
const RATES: &[(&str, &str, &str, Unit)] = &[
    (
        "disk",
        "read_bytes",
        "disk.read_throughput",
        Unit::BytesPerSecond,
    ),
    (
        "disk",
        "write_bytes",
        "disk.write_throughput",
        Unit::BytesPerSecond,
    ),
    ("disk", "read_count", "disk.read_iops", Unit::CountPerSecond),
    (
        "disk",
        "write_count",
        "disk.write_iops",
        Unit::CountPerSecond,
    ),
    (
        "network",
        "bytes_recv",
        "network.received_throughput",
        Unit::BytesPerSecond,
    ),
    (
        "network",
        "bytes_sent",
        "network.sent_throughput",
        Unit::BytesPerSecond,
    ),
    (
        "network",
        "packets_recv",
        "network.received_pps",
        Unit::CountPerSecond,
    ),
    (
        "network",
        "packets_sent",
        "network.sent_pps",
        Unit::CountPerSecond,
    ),
    (
        "network",
        "errors_in",
        "network.errors",
        Unit::CountPerSecond,
    ),
    (
        "network",
        "errors_out",
        "network.errors",
        Unit::CountPerSecond,
    ),
];

pub fn map(body: &Value, counters: &Counters, out: &mut Records) {
    let metrics = &body["metrics"];
    let Some(host) = text(metrics.get("hostname")) else {
        out.error(
            "openfinops/generic",
            "the generic agent's post names no host (`metrics.hostname`)".into(),
            &[],
        );
        return;
    };
    let collectors = metrics.get("collectors").and_then(Value::as_object);
    for (name, c) in collectors.into_iter().flatten() {
        if let Some(e) = text(c.get("error")).or_else(|| text(c["data"].get("error"))) {
            out.error(
                "openfinops/generic",
                format!("the generic agent's collector `{name}` failed: {e}"),
                &[("collector", name), ("host", &host)],
            );
        }
    }
    let data = &metrics["collectors"]["system_metrics"]["data"];
    if !data.is_object() || data.get("error").is_some() {
        return;
    }
    let (cpu, mem, disk) = (&data["cpu"], &data["memory"], &data["disk"]);
    let mut attrs = attributes(
        data.as_object().expect("checked above"),
        &[("environment", "environment")],
    );
    for (key, v) in [
        ("vcpus", cpu.get("count")),
        ("memory_bytes", mem.get("total_bytes")),
        ("cpu_mhz", cpu["frequency"].get("current")),
        ("environment", metrics.get("environment")),
        ("openfinops_agent_id", body.get("agent_id")),
    ] {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            attrs.insert(key.into(), v.clone());
        }
    }
    let r = out.resource(
        "host",
        "",
        "",
        "host",
        "linux",
        &host,
        &host,
        Labels::new(),
        attrs,
    );
    let p = |out: &mut Records, metric: &str, unit: Unit, stat: Stat, v: Option<f64>| {
        out.point(&r, metric, unit, stat, 0, v, Labels::new())
    };
    // psutil.cpu_percent(interval=1): the average of the second before the post.
    out.point(
        &r,
        "cpu.utilization",
        Unit::Percent,
        Stat::Avg,
        1,
        num(cpu.get("usage_percent")),
        Labels::new(),
    );
    let total = num(mem.get("total_bytes"));
    let available = num(mem.get("available_bytes"));
    p(
        out,
        "memory.usage",
        Unit::Percent,
        Stat::Last,
        num(mem.get("usage_percent")),
    );
    p(out, "memory.total", Unit::Bytes, Stat::Last, total);
    p(out, "memory.available", Unit::Bytes, Stat::Last, available);
    p(
        out,
        "memory.used",
        Unit::Bytes,
        Stat::Last,
        total.zip(available).map(|(t, a)| t - a),
    );
    p(
        out,
        "swap.total",
        Unit::Bytes,
        Stat::Last,
        num(mem.get("swap_total")),
    );
    p(
        out,
        "swap.used",
        Unit::Bytes,
        Stat::Last,
        num(mem.get("swap_used")),
    );
    p(
        out,
        "swap.usage",
        Unit::Percent,
        Stat::Last,
        num(mem.get("swap_percent")),
    );
    let root: Labels = [("mountpoint".to_string(), "/".to_string())].into();
    for (metric, unit, key) in [
        ("filesystem.total", Unit::Bytes, "total_bytes"),
        ("filesystem.used", Unit::Bytes, "used_bytes"),
        ("filesystem.usage", Unit::Percent, "usage_percent"),
    ] {
        out.point(
            &r,
            metric,
            unit,
            Stat::Last,
            0,
            num(disk.get(key)),
            root.clone(),
        );
    }
    p(
        out,
        "process.count",
        Unit::Count,
        Stat::Last,
        num(data["processes"].get("count")),
    );
    if let Some(load) = data.get("load_average").and_then(Value::as_array) {
        for (metric, v) in ["load.1m", "load.5m", "load.15m"].iter().zip(load) {
            p(out, metric, Unit::None, Stat::Last, num(Some(v)));
        }
    }
    // Counters: the disk ones sit under `disk.io`, the network ones under `network`.
    let Some(now) = num(data.get("timestamp")) else {
        return;
    };
    let current: HashMap<&'static str, f64> = RATES
        .iter()
        .filter_map(|(group, field, _, _)| {
            let holder = if *group == "disk" {
                &data["disk"]["io"]
            } else {
                &data["network"]
            };
            num(holder.get(*field)).map(|v| (*field, v))
        })
        .collect();
    let previous = {
        let mut last = counters.0.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(host.clone(), (now, current.clone()))
    };
    let Some((then, before)) = previous else {
        return;
    };
    let dt = now - then;
    if dt.is_nan() || dt <= 0.0 {
        return;
    }
    let mut sums: Vec<(&str, Unit, f64)> = Vec::new();
    for (_, field, metric, unit) in RATES {
        let (Some(a), Some(b)) = (before.get(field), current.get(field)) else {
            continue;
        };
        if b < a {
            continue; // the counter was reset (a reboot)
        }
        let rate = (b - a) / dt;
        match sums.iter_mut().find(|(m, _, _)| m == metric) {
            Some(s) => s.2 += rate,
            None => sums.push((metric, *unit, rate)),
        }
    }
    for (metric, unit, rate) in sums {
        out.point(
            &r,
            metric,
            unit,
            Stat::Avg,
            dt.round().max(1.0) as u32,
            Some(rate),
            Labels::new(),
        );
    }
}
