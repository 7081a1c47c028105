//! Builders of model records for tests: short to write, with the values most tests do not
//! care about filled in.

use chrono::{DateTime, Duration, Utc};
use skymeter_model::{Batch, Point, ResourceRef, Stat};

/// An RFC 3339 time: `t("2026-01-01T00:00:00Z")`.
pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The reference of host `id` in account `lab`.
pub fn host(id: &str) -> ResourceRef {
    ResourceRef {
        provider: "host".into(),
        account: "lab".into(),
        region: Default::default(),
        id: id.into(),
    }
}

/// A percent point of `r` over 60 s, without labels.
pub fn point(metric: &str, stat: Stat, ts: DateTime<Utc>, value: f64, r: &ResourceRef) -> Point {
    Point {
        metric: metric.into(),
        unit: skymeter_model::Unit::Percent,
        stat,
        period_s: 60,
        ts,
        value,
        resource: r.clone().into(),
        labels: Default::default(),
    }
}

/// A batch of `n` points of one host, one minute apart, ending now.
pub fn batch(n: usize) -> Batch {
    let now = Utc::now();
    let mut b = Batch::new("agent-1", "host", now);
    let r = host("h1");
    b.points = (0..n)
        .map(|i| {
            point(
                "cpu.utilization",
                Stat::Avg,
                now - Duration::minutes(i as i64),
                i as f64,
                &r,
            )
        })
        .collect();
    b
}
