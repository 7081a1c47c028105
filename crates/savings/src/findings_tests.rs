//! The findings over a real embedded store and a small price table: a seeded fleet where
//! exactly the wasteful resources are found, with the right kind, size and money.

use super::*;
use crate::findings_read::SeriesSummary;
use chrono::TimeZone;
use skymeter_model::{Batch, Point, Resource, ResourceRef, Unit};
use skymeter_store::{EmbeddedOptions, EmbeddedStore};

use crate::test_prices::Table;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn resource(kind: &str, id: &str, attrs: serde_json::Value) -> Resource {
    Resource {
        provider: "aws".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        kind: kind.into(),
        native_type: String::new(),
        id: id.into(),
        name: id.into(),
        tags: Labels::new(),
        attributes: attrs
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        observed_at: now() - Duration::hours(1),
    }
}

/// 15 days of 5-minute points of `metric` for `r`: `value(i)` for the i-th period.
fn series(
    r: &Resource,
    metric: &str,
    unit: Unit,
    stat: Stat,
    value: impl Fn(usize) -> f64,
) -> Vec<Point> {
    let rr = std::sync::Arc::new(ResourceRef {
        provider: r.provider.as_str().into(),
        account: r.account.as_str().into(),
        region: r.region.as_str().into(),
        id: r.id.as_str().into(),
    });
    let n = 15 * 288;
    (0..n)
        .map(|i| Point {
            metric: metric.into(),
            unit,
            stat,
            period_s: 300,
            ts: now() - Duration::minutes(5 * (n - i) as i64) + Duration::minutes(5),
            value: value(i),
            resource: rr.clone(),
            labels: Default::default(),
        })
        .collect()
}

struct Fleet {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
}

/// One idle, one busy and one oversized m5.2xlarge, an unattached and an attached
/// volume, an unassociated and an associated address, an old and a new snapshot.
fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap();
    let instance = |id: &str| {
        resource(
            "compute.instance",
            id,
            serde_json::json!({"instance_type": "m5.2xlarge", "state": "running", "vcpus": 8, "memory_mib": 32768}),
        )
    };
    let idle = instance("i-idle");
    let busy = instance("i-busy");
    let big = instance("i-oversized");
    let mut first = Batch::new("agent", "aws", now() - Duration::days(16));
    for r in [&idle, &busy, &big] {
        let mut r = r.clone();
        r.observed_at = now() - Duration::days(16);
        first.resources.push(r);
    }
    store.ingest(&first).unwrap();

    let mut b = Batch::new("agent", "aws", now() - Duration::hours(1));
    b.resources = vec![
        idle.clone(),
        busy.clone(),
        big.clone(),
        resource(
            "storage.volume",
            "vol-free",
            serde_json::json!({"size_gib": 100, "volume_type": "gp3", "state": "available"}),
        ),
        resource(
            "storage.volume",
            "vol-used",
            serde_json::json!({"size_gib": 50, "volume_type": "gp3", "state": "in-use", "attached_to": "i-busy"}),
        ),
        resource(
            "network.public_ip",
            "eipalloc-free",
            serde_json::json!({"public_ip": "203.0.113.9", "associated": false}),
        ),
        resource(
            "network.public_ip",
            "eipalloc-used",
            serde_json::json!({"public_ip": "203.0.113.10", "associated": true, "attached_to": "i-busy"}),
        ),
        resource(
            "storage.snapshot",
            "snap-old",
            serde_json::json!({"size_gib": 40, "created": "2026-06-01T00:00:00Z"}),
        ),
        resource(
            "storage.snapshot",
            "snap-new",
            serde_json::json!({"size_gib": 40, "created": "2026-11-20T00:00:00Z"}),
        ),
    ];
    let pct = Unit::Percent;
    let bps = Unit::BytesPerSecond;
    // Idle: CPU ≤ 2 %, a trickle of network.
    b.points
        .extend(series(&idle, "cpu.utilization", pct, Stat::Max, |i| {
            1.0 + (i % 10) as f64 / 10.0
        }));
    b.points
        .extend(series(&idle, "cpu.utilization", pct, Stat::Avg, |_| 0.8));
    b.points.extend(series(
        &idle,
        "network.received_throughput",
        bps,
        Stat::Avg,
        |_| 300.0,
    ));
    b.points.extend(series(
        &idle,
        "network.sent_throughput",
        bps,
        Stat::Avg,
        |_| 200.0,
    ));
    // Busy: CPU up to 90 %, p95 above 60 %.
    b.points
        .extend(series(&busy, "cpu.utilization", pct, Stat::Max, |i| {
            40.0 + (i % 51) as f64
        }));
    b.points
        .extend(series(&busy, "cpu.utilization", pct, Stat::Avg, |i| {
            30.0 + (i % 41) as f64
        }));
    b.points.extend(series(
        &busy,
        "network.received_throughput",
        bps,
        Stat::Avg,
        |_| 2e6,
    ));
    // Oversized: p95 CPU 10 % (95 % of the periods at 10 % or less), peaks at 30 %.
    b.points
        .extend(series(&big, "cpu.utilization", pct, Stat::Max, |i| {
            if i % 100 == 0 {
                30.0
            } else {
                12.0
            }
        }));
    b.points
        .extend(series(&big, "cpu.utilization", pct, Stat::Avg, |i| {
            if i % 25 == 0 {
                25.0
            } else {
                10.0
            }
        }));
    b.points.extend(series(
        &big,
        "network.received_throughput",
        bps,
        Stat::Avg,
        |_| 5e5,
    ));
    store.ingest(&b).unwrap();
    Fleet { _dir: dir, store }
}

fn prices() -> Prices {
    BTreeMap::from([("aws".to_string(), Arc::new(Table) as Arc<dyn PriceTable>)])
}

#[test]
fn exactly_the_wasteful_resources_are_found_with_their_money() {
    let f = fleet();
    let found = compute(&f.store, &prices(), &FindingsConfig::default(), now()).unwrap();
    let got: Vec<(&str, FindingKind, Option<f64>, Option<&str>)> = found
        .iter()
        .map(|f| {
            (
                f.resource.id.as_str(),
                f.kind,
                f.monthly_usd,
                f.recommended_type.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            // 0.384 × 730
            ("i-idle", FindingKind::Idle, Some(280.32), None),
            // (0.384 − 0.096) × 730: 8 vCPU × 10 % × 1.25 = 1 vCPU fits m5.large
            (
                "i-oversized",
                FindingKind::Rightsizing,
                Some(210.24),
                Some("m5.large")
            ),
            // 100 GiB × 0.08
            ("vol-free", FindingKind::Orphaned, Some(8.0), None),
            ("eipalloc-free", FindingKind::Orphaned, Some(3.65), None),
            // 40 GiB × 0.05
            ("snap-old", FindingKind::Orphaned, Some(2.0), None),
        ],
        "{found:#?}"
    );
    let idle = &found[0];
    assert_eq!(idle.id, "idle/aws/123456789012/us-east-1/i-idle");
    assert!(
        idle.reason.contains("CPU peaked at 1.9 %"),
        "{}",
        idle.reason
    );
    assert_eq!(idle.evidence.series.len(), 2);
    assert_eq!(idle.evidence.series[0].metric, "cpu.utilization");
    assert_eq!(idle.evidence.series[0].summary, "max");
    assert_eq!(idle.evidence.series[1].value, 500.0);
    let big = &found[1];
    assert_eq!(big.current_monthly_usd, Some(280.32));
    assert_eq!(big.evidence.facts["needed_vcpus"], 1.0);
    assert!(
        big.notes.iter().any(|n| n.contains("memory not measured")),
        "{:?}",
        big.notes
    );
    let totals = Totals::of(&found);
    assert_eq!(totals.count, 5);
    assert_eq!(totals.monthly_usd, 504.21);
    assert_eq!(totals.by_kind["orphaned"].count, 3);
}

#[test]
fn a_short_history_is_not_called_idle_and_exclusions_hold() {
    let f = fleet();
    // 20 days back: the series (15 days) do not cover the window.
    let cfg = FindingsConfig {
        idle: IdleConfig {
            days: 20,
            ..Default::default()
        },
        rightsizing: RightsizingConfig {
            days: 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let found = compute(&f.store, &prices(), &cfg, now()).unwrap();
    assert!(
        found.iter().all(|f| f.kind == FindingKind::Orphaned),
        "{found:#?}"
    );
    // A tag exclusion removes a resource; memory measured changes the recommendation.
    let mut b = Batch::new("agent", "aws", now() - Duration::minutes(30));
    let mut vol = resource(
        "storage.volume",
        "vol-free",
        serde_json::json!({"size_gib": 100, "volume_type": "gp3", "state": "available"}),
    );
    vol.tags.insert("keep".into(), "yes".into());
    vol.observed_at = now() - Duration::minutes(30);
    b.resources.push(vol);
    let big = resource(
        "compute.instance",
        "i-oversized",
        serde_json::json!({"instance_type": "m5.2xlarge", "state": "running", "vcpus": 8, "memory_mib": 32768}),
    );
    // 30 % of 32 GiB × 1.25 = 12 GiB: m5.xlarge (16 GiB), not m5.large.
    b.points.extend(series(
        &big,
        "memory.usage",
        Unit::Percent,
        Stat::Max,
        |_| 30.0,
    ));
    f.store.ingest(&b).unwrap();
    let cfg = FindingsConfig {
        exclude: vec![TagMatch {
            tag: "keep".into(),
            value: Some("yes".into()),
        }],
        ..Default::default()
    };
    let found = compute(&f.store, &prices(), &cfg, now()).unwrap();
    assert!(
        !found.iter().any(|f| f.resource.id == "vol-free"),
        "{found:#?}"
    );
    let big = found
        .iter()
        .find(|f| f.resource.id == "i-oversized")
        .unwrap();
    assert_eq!(big.recommended_type.as_deref(), Some("m5.xlarge"));
    assert_eq!(big.monthly_usd, Some(140.16)); // (0.384 − 0.192) × 730
    assert!(big.notes.is_empty(), "{:?}", big.notes);
}

#[test]
fn unknown_prices_are_reported_without_money() {
    let f = fleet();
    let found = compute(&f.store, &Prices::new(), &FindingsConfig::default(), now()).unwrap();
    // Without a table: no rightsizing (nothing to size against), the rest without amounts.
    let kinds: Vec<_> = found
        .iter()
        .map(|f| (f.resource.id.as_str(), f.monthly_usd))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("i-idle", None),
            ("eipalloc-free", None),
            ("snap-old", None),
            ("vol-free", None)
        ]
    );
    assert!(
        found[0].notes[0].contains("no list price"),
        "{:?}",
        found[0].notes
    );
}

#[test]
fn config_mistakes_name_the_field() {
    let mut cfg = FindingsConfig::default();
    cfg.rightsizing.percentile = 0.0;
    assert!(cfg
        .validate()
        .unwrap_err()
        .contains("rightsizing.percentile"));
    let mut cfg = FindingsConfig::default();
    cfg.idle.days = 0;
    assert!(cfg.validate().unwrap_err().contains("idle.days"));
    let parsed: Result<FindingsConfig, _> = toml::from_str("[idle]\ncpu_percnt = 3\n");
    assert!(parsed.unwrap_err().to_string().contains("cpu_percnt"));
}

#[test]
fn percentiles_are_nearest_rank() {
    use crate::findings_read::percentile;
    let v: Vec<f64> = (1..=20).map(f64::from).rev().collect();
    assert_eq!(percentile(&v, 95.0), 19.0);
    assert_eq!(percentile(&v, 100.0), 20.0);
    assert_eq!(percentile(&v, 50.0), 10.0);
    assert_eq!(percentile(&[], 50.0), 0.0);
    // Against the definition (sort, take rank ⌈p/100 × n⌉), on sizes, orders and values
    // that exercise both ways of finding it: ties, negatives, −0.0, infinities, NaN.
    let by_sorting = |v: &[f64], p: f64| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
        s[rank.clamp(1, s.len()) - 1]
    };
    let mut seed = 12u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for n in [1usize, 2, 3, 7, 20, 100, 4032] {
        for shape in 0..5 {
            let v: Vec<f64> = (0..n)
                .map(|i| match shape {
                    0 => (next() % 1000) as f64 / 10.0,
                    1 => i as f64,
                    2 => (n - i) as f64,
                    3 => (next() % 5) as f64 - 2.0,
                    _ => [
                        f64::NAN,
                        -0.0,
                        0.0,
                        f64::INFINITY,
                        f64::NEG_INFINITY,
                        -1.5,
                        3.25,
                    ][(next() % 7) as usize],
                })
                .collect();
            for p in [1.0, 50.0, 75.0, 90.0, 95.0, 99.0, 100.0] {
                assert_eq!(
                    percentile(&v, p).to_bits(),
                    by_sorting(&v, p).to_bits(),
                    "n {n} shape {shape} p {p}"
                );
            }
        }
    }
    let t0 = now();
    let points: Vec<_> = v
        .iter()
        .enumerate()
        .map(|(i, x)| (t0 + Duration::minutes(i as i64), *x))
        .collect();
    let s = SeriesSummary::of(Stat::Avg, &points, Some(95.0)).unwrap();
    assert_eq!(
        (s.max, s.sum, s.percentile, s.points),
        (20.0, 210.0, 19.0, 20)
    );
}

/// An instance whose `max` series peaks high is not idle however low its `avg` series
/// stays (the peaks are screened from the store's index, the quiet ones read in full), one
/// with an `avg` series only is judged on it, from the head and from blocks alike; the
/// evidence is the hourly peaks.
#[test]
fn a_peak_in_the_max_series_keeps_an_instance_from_being_idle() {
    let f = fleet();
    let spiky = resource(
        "compute.instance",
        "i-spiky",
        serde_json::json!({"instance_type": "m5.2xlarge", "state": "running", "vcpus": 8, "memory_mib": 32768}),
    );
    let mut b = Batch::new("test", "aws", now());
    b.points.extend(series(
        &spiky,
        "cpu.utilization",
        Unit::Percent,
        Stat::Max,
        |i| {
            if i % 288 == 100 {
                60.0
            } else {
                1.5
            }
        },
    ));
    b.points.extend(series(
        &spiky,
        "cpu.utilization",
        Unit::Percent,
        Stat::Avg,
        |_| 1.0,
    ));
    b.resources.push(spiky);
    // And one with an `avg` series only: judged on it.
    let quiet = resource(
        "compute.instance",
        "i-avg-only",
        serde_json::json!({"instance_type": "m5.2xlarge", "state": "running", "vcpus": 8, "memory_mib": 32768}),
    );
    b.points.extend(series(
        &quiet,
        "cpu.utilization",
        Unit::Percent,
        Stat::Avg,
        |i| 0.5 + (i % 3) as f64 / 10.0,
    ));
    b.resources.push(quiet);
    f.store.ingest(&b).unwrap();
    for flushed in [false, true] {
        if flushed {
            f.store.flush().unwrap();
        }
        let found = compute(&f.store, &prices(), &FindingsConfig::default(), now()).unwrap();
        let spiky: Vec<FindingKind> = found
            .iter()
            .filter(|f| f.resource.id == "i-spiky")
            .map(|f| f.kind)
            .collect();
        assert_eq!(spiky, [FindingKind::Rightsizing], "flushed: {flushed}");
        let idle: Vec<&Finding> = found
            .iter()
            .filter(|f| f.kind == FindingKind::Idle)
            .collect();
        let ids: Vec<&str> = idle.iter().map(|f| f.resource.id.as_str()).collect();
        assert_eq!(ids, ["i-avg-only", "i-idle"], "flushed: {flushed}");
        let avg = &idle[0].evidence.series[0];
        assert_eq!((avg.stat, avg.value, avg.points), (Stat::Avg, 0.7, 14 * 24));
        let cpu = &idle[1].evidence.series[0];
        assert_eq!((cpu.stat, cpu.value, cpu.points), (Stat::Max, 1.9, 14 * 24));
        assert_eq!(
            cpu.first_ts,
            now() - Duration::days(14) + Duration::hours(1)
        );
        assert_eq!(cpu.last_ts, now());
    }
}

#[test]
fn facts_are_a_map_in_name_order() {
    use crate::finding::Facts;
    use serde_json::json;
    let mut facts = Facts::from([
        ("state".to_string(), json!("stopped")),
        ("size_gib".to_string(), json!(100)),
        ("state".to_string(), json!("available")),
    ]);
    assert_eq!(
        facts.len(),
        2,
        "a later value of a name replaces the earlier"
    );
    assert_eq!(facts["state"], "available");
    assert_eq!(facts.insert("attached_to".into(), json!(null)), None);
    assert_eq!(
        facts.insert("size_gib".into(), json!(200)),
        Some(json!(100))
    );
    assert_eq!(facts.get("missing"), None);
    let text = serde_json::to_string(&facts).unwrap();
    assert_eq!(
        text,
        r#"{"attached_to":null,"size_gib":200,"state":"available"}"#
    );
    let back: Facts = serde_json::from_str(&text).unwrap();
    assert_eq!(back, facts);
    let names: Vec<&str> = facts.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["attached_to", "size_gib", "state"]);
    assert!(std::panic::catch_unwind(|| facts["nope"].clone()).is_err());
}
