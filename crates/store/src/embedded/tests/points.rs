//! Points: series, queries, downsampling, seal/compaction, retention, compression.

use super::*;

fn pq(metric: &str, start: i64, end: i64, step_s: Option<u64>, agg: Option<Stat>) -> PointsQuery {
    PointsQuery {
        series: SeriesQuery {
            metric: Some(metric.into()),
            ..Default::default()
        },
        start: ts(start),
        end: ts(end),
        step_s,
        agg,
    }
}

fn values(s: &EmbeddedStore, q: &PointsQuery) -> Vec<(i64, f64)> {
    let p = s.points(q).unwrap();
    assert_eq!(p.items.len(), 1);
    p.items[0]
        .points
        .iter()
        .map(|(t, v)| (t.timestamp(), *v))
        .collect()
}

#[test]
fn downsampling_is_exact_and_buckets_are_stamped_with_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = batch();
    // Points at 10..=120 every 10 s, value = ts / 10: 1, 2, ... 12.
    b.points = (1..=12)
        .map(|i| point("m", "h", ts(i * 10), i as f64))
        .collect();
    s.ingest(&b).unwrap();
    // Half in the head, half in a block: the answer must not care.
    s.flush().unwrap();
    let mut b = batch();
    b.points = (13..=18)
        .map(|i| point("m", "h", ts(i * 10), i as f64))
        .collect();
    s.ingest(&b).unwrap();

    let q = |step, agg| values(&s, &pq("m", 0, 1000, step, agg));
    // Buckets (0,60], (60,120], (120,180]: 1..6, 7..12, 13..18.
    assert_eq!(q(Some(60), None), [(60, 3.5), (120, 9.5), (180, 15.5)]);
    assert_eq!(
        q(Some(60), Some(Stat::Max)),
        [(60, 6.0), (120, 12.0), (180, 18.0)]
    );
    assert_eq!(
        q(Some(60), Some(Stat::Min)),
        [(60, 1.0), (120, 7.0), (180, 13.0)]
    );
    assert_eq!(
        q(Some(60), Some(Stat::Sum)),
        [(60, 21.0), (120, 57.0), (180, 93.0)]
    );
    assert_eq!(
        q(Some(60), Some(Stat::Count)),
        [(60, 6.0), (120, 6.0), (180, 6.0)]
    );
    assert_eq!(
        q(Some(60), Some(Stat::Last)),
        [(60, 6.0), (120, 12.0), (180, 18.0)]
    );
    assert_eq!(
        q(Some(60), Some(Stat::P50)),
        [(60, 3.0), (120, 9.0), (180, 15.0)]
    );
    assert_eq!(q(Some(100), None), [(100, 5.5), (200, 14.5)]);
    // A step equal to the points' own spacing changes nothing.
    assert_eq!(
        q(Some(10), None),
        (1..=18).map(|i| (i * 10, i as f64)).collect::<Vec<_>>()
    );
    // [start, end) on raw points, then bucketing.
    assert_eq!(
        values(&s, &pq("m", 30, 70, None, None)),
        [(30, 3.0), (40, 4.0), (50, 5.0), (60, 6.0)]
    );
    assert_eq!(
        values(&s, &pq("m", 30, 71, Some(60), None)),
        [(60, 4.5), (120, 7.0)]
    );
    assert!(matches!(
        s.points(&pq("m", 10, 10, None, None)),
        Err(StoreError::BadRequest(_))
    ));
    assert!(matches!(
        s.points(&pq("m", 0, 10, Some(0), None)),
        Err(StoreError::BadRequest(_))
    ));
}

#[test]
fn a_later_write_of_the_same_series_and_time_wins_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = |s: &EmbeddedStore, v: &[(i64, f64)]| {
        let mut b = batch();
        b.points = v.iter().map(|(t, x)| point("m", "h", ts(*t), *x)).collect();
        s.ingest(&b).unwrap();
    };
    {
        let s = open_with(dir.path(), |o| o.compaction_fan_in = 2);
        // Within one batch.
        ingest(&s, &[(60, 1.0), (120, 2.0), (60, 1.5)]);
        s.flush().unwrap();
        // Head over block.
        ingest(&s, &[(120, 2.5), (180, 3.0)]);
        assert_eq!(
            all_points(&s, "m").iter().map(|p| p.1).collect::<Vec<_>>(),
            [1.5, 2.5, 3.0]
        );
        // Newer block over older block, then through compaction.
        s.flush().unwrap();
        assert_eq!(
            all_points(&s, "m").iter().map(|p| p.1).collect::<Vec<_>>(),
            [1.5, 2.5, 3.0]
        );
        ingest(&s, &[(180, 3.5)]);
    }
    // And after replaying the WAL.
    let s = open(dir.path());
    assert_eq!(
        all_points(&s, "m").iter().map(|p| p.1).collect::<Vec<_>>(),
        [1.5, 2.5, 3.5]
    );
    s.flush().unwrap();
    assert_eq!(
        all_points(&s, "m").iter().map(|p| p.1).collect::<Vec<_>>(),
        [1.5, 2.5, 3.5]
    );
}

#[test]
fn series_are_listed_with_filters_extents_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = batch();
    for h in 0..5 {
        for (m, stat) in [
            ("cpu.utilization", Stat::Avg),
            ("cpu.utilization", Stat::Max),
            ("disk.read_iops", Stat::Avg),
        ] {
            for i in 0..3 {
                let mut p = point(m, &format!("h{h}"), ts(600 + i * 60 + h), 1.0);
                p.stat = stat;
                if m == "disk.read_iops" {
                    p.labels.insert(
                        "device".into(),
                        format!("sd{}", (b'a' + (i as u8 % 2)) as char),
                    );
                }
                b.points.push(p);
            }
        }
    }
    s.ingest(&b).unwrap();
    s.flush().unwrap();
    let list = |q: SeriesQuery| s.series(&q).unwrap();
    let all = list(SeriesQuery::default());
    assert_eq!(all.items.len(), 5 * 4); // 2 cpu + 2 disk (by device) per host
    let cpu = list(SeriesQuery {
        metric: Some("cpu.*".into()),
        stat: Some(Stat::Max),
        ..Default::default()
    });
    assert_eq!(cpu.items.len(), 5);
    assert_eq!(
        (
            cpu.items[0].first_ts,
            cpu.items[0].last_ts,
            cpu.items[0].points
        ),
        (ts(600), ts(720), 3)
    );
    let one = list(SeriesQuery {
        resource: Some("host/acct//h3".into()),
        labels: [("device".into(), "sdb".into())].into(),
        ..Default::default()
    });
    assert_eq!(one.items.len(), 1);
    assert_eq!(
        (one.items[0].key.metric.as_str(), one.items[0].points),
        ("disk.read_iops", 1)
    );
    assert!(list(SeriesQuery {
        provider: Some("aws".into()),
        ..Default::default()
    })
    .items
    .is_empty());

    // Pages of 3 walk all 20 exactly once.
    let mut q = SeriesQuery {
        page: PageQuery {
            limit: Some(3),
            cursor: None,
        },
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let p = list(q.clone());
        seen.extend(p.items.into_iter().map(|i| i.key));
        match p.next_cursor {
            Some(c) => q.page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    assert_eq!(
        seen.iter().collect::<std::collections::HashSet<_>>().len(),
        20
    );
    let bad = SeriesQuery {
        page: PageQuery {
            limit: None,
            cursor: Some("nonsense".into()),
        },
        ..Default::default()
    };
    assert!(matches!(s.series(&bad), Err(StoreError::BadRequest(_))));

    // Points pages by series too.
    let mut q = pq("cpu.utilization", 0, 10_000, None, None);
    q.series.page.limit = Some(4);
    let p1 = s.points(&q).unwrap();
    assert_eq!(p1.items.len(), 4);
    q.series.page.cursor = p1.next_cursor;
    let mut n = 4;
    loop {
        let p = s.points(&q).unwrap();
        n += p.items.len();
        assert!(p.items.iter().all(|i| i.points.len() == 3));
        match p.next_cursor {
            Some(c) => q.series.page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(n, 10);
}

/// A regular 60 s series with 2-decimal values, like a CPU gauge: a slow wave plus noise.
fn gauge(series: usize, i: usize) -> f64 {
    let mut x = (series as u64 * 1_000_003 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let noise = (x % 1000) as f64 / 100.0 - 5.0;
    let v = 50.0 + 30.0 * ((i as f64) / 50.0 + series as f64).sin() + noise;
    (v * 100.0).round() / 100.0
}

#[test]
fn regular_two_decimal_series_take_at_most_two_bytes_a_point() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (n_series, n_points, per_batch) = (200, 1000, 10);
    for chunk in 0..n_points / per_batch {
        let mut b = batch();
        for i in chunk * per_batch..(chunk + 1) * per_batch {
            for sr in 0..n_series {
                b.points.push(point(
                    "cpu.utilization",
                    &format!("host-{sr:04}"),
                    ts(1_700_000_040 + i as i64 * 60),
                    gauge(sr, i),
                ));
            }
        }
        s.ingest(&b).unwrap();
    }
    s.flush().unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.point_block_points, (n_series * n_points) as u64);
    let bpp = st.point_block_bytes as f64 / st.point_block_points as f64;
    eprintln!(
        "{n_series} series x {n_points} points: {} bytes, {bpp:.3} bytes/point",
        st.point_block_bytes
    );
    assert!(bpp <= 2.0, "{bpp} bytes per point");
    // And the values come back exactly.
    let p = s
        .points(&PointsQuery {
            series: SeriesQuery {
                resource: Some("host/acct//host-0042".into()),
                ..Default::default()
            },
            start: ts(0),
            end: ts(2_000_000_000),
            step_s: None,
            agg: None,
        })
        .unwrap();
    let got: Vec<f64> = p.items[0].points.iter().map(|x| x.1).collect();
    assert_eq!(got, (0..n_points).map(|i| gauge(42, i)).collect::<Vec<_>>());
}

#[test]
fn compaction_merges_blocks_into_longer_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(dir.path(), |o| o.compaction_fan_in = 4);
    let mut bytes_per_point = Vec::new();
    for round in 0..16i64 {
        let mut b = batch();
        for sr in 0..20 {
            for i in 0..50 {
                let k = (round * 50 + i) as usize;
                b.points.push(point(
                    "g",
                    &format!("h{sr}"),
                    ts(1_700_000_040 + k as i64 * 60),
                    gauge(sr, k),
                ));
            }
        }
        s.ingest(&b).unwrap();
        s.flush().unwrap();
        let st = s.stats().unwrap();
        bytes_per_point.push(st.point_block_bytes as f64 / st.point_block_points as f64);
    }
    let blocks: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .collect();
    assert_eq!(blocks.len(), 1, "16 seals, fan-in 4: one level-2 block");
    assert!(
        bytes_per_point[15] < bytes_per_point[0] * 0.8,
        "{bytes_per_point:?}"
    );
    let st = s.stats().unwrap();
    assert_eq!(st.point_block_points, 16 * 50 * 20);
    drop(s);
    let s = open(dir.path());
    let p = s.points(&pq("g", 0, 2_000_000_000, None, None)).unwrap();
    assert_eq!(p.items.len(), 20);
    assert!(p.items.iter().all(|i| i.points.len() == 800));
}

#[test]
fn retention_drops_old_points_costs_and_resources() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let ingest = |from: i64, to: i64| {
        let mut b = batch();
        b.points = (from..to)
            .map(|i| point("m", "h", ts(i * 60), i as f64))
            .collect();
        s.ingest(&b).unwrap();
    };
    ingest(0, 10); // block 1: all old
    s.flush().unwrap();
    ingest(10, 30); // block 2: straddles the cut at 20 * 60
    s.flush().unwrap();
    ingest(15, 25); // head: straddles too (rewrites 15..25 with the same values)
    let mut b = batch();
    b.resources = vec![resource("old", ts(100)), resource("new", ts(5000))];
    b.costs = vec![
        cost(1.0, "USD", "EC2", ts(0)),
        cost(2.0, "USD", "EC2", ts(2000)),
    ];
    b.costs[0].charge_period_end = ts(1200); // ends exactly at the cut: dropped
    s.ingest(&b).unwrap();

    let report = s.enforce_retention(ts(20 * 60)).unwrap();
    assert_eq!(report.points, 10 + 10 + 5);
    assert_eq!((report.costs, report.resources), (1, 1));
    let got: Vec<i64> = all_points(&s, "m")
        .iter()
        .map(|p| p.0.timestamp() / 60)
        .collect();
    assert_eq!(got, (20..30).collect::<Vec<_>>());
    assert!(s.resource("host/acct//old").unwrap().is_none());
    assert!(s.resource("host/acct//new").unwrap().is_some());
    assert_eq!(s.stats().unwrap().costs, 1);
    drop(s);
    let s = open(dir.path());
    assert_eq!(
        s.stats().unwrap().point_block_points,
        10,
        "the rewritten block replaced the old one on disk"
    );
    let got: Vec<i64> = all_points(&s, "m")
        .iter()
        .map(|p| p.0.timestamp() / 60)
        .collect();
    assert_eq!(
        got,
        (20..30).collect::<Vec<_>>(),
        "the WAL replay does not bring dropped head points back"
    );
}

#[test]
fn points_survive_reopen_from_blocks_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let mut b = batch();
        b.points = (0..100)
            .map(|i| point("m", "h", ts(i), i as f64 * 0.5))
            .collect();
        s.ingest(&b).unwrap();
        s.flush().unwrap();
        let mut b = batch();
        b.points = (100..150)
            .map(|i| point("m", "h", ts(i), i as f64 * 0.5))
            .collect();
        s.ingest(&b).unwrap();
    }
    let s = open(dir.path());
    let got = all_points(&s, "m");
    assert_eq!(got.len(), 150);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (t, v))| t.timestamp() == i as i64 && *v == i as f64 * 0.5));
    let st = s.stats().unwrap();
    assert_eq!((st.points, st.point_block_points, st.series), (150, 100, 1));
}

/// A page reads at most `max_points` raw points: it ends before the series that would
/// pass the limit and the cursor resumes there; a series over the limit alone is refused
/// with a message that names the setting. Every point is read exactly once over the pages.
#[test]
fn a_points_page_stops_at_its_point_budget_and_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = batch();
    for r in ["a", "b", "c"] {
        b.points
            .extend((1..=10).map(|i| point("m", r, ts(i * 10), i as f64)));
    }
    s.ingest(&b).unwrap();
    // Part in a block, part in the head.
    s.flush().unwrap();
    let mut b = batch();
    b.points = (11..=12)
        .map(|i| point("m", "c", ts(i * 10), 0.0))
        .collect();
    s.ingest(&b).unwrap();

    let mut q = pq("m", 0, 1000, None, None);
    let mut pages = Vec::new();
    loop {
        let p = s.points_limited(&q, 25).unwrap();
        pages.push(
            p.items
                .iter()
                .map(|sp| (sp.key.resource.id.to_string(), sp.points.len()))
                .collect::<Vec<_>>(),
        );
        match p.next_cursor {
            Some(c) => q.series.page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            vec![("a".to_string(), 10), ("b".to_string(), 10)],
            vec![("c".to_string(), 12)]
        ]
    );

    let err = s
        .points_limited(&pq("m", 0, 1000, None, None), 5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than 5 points") && err.contains("max_samples"),
        "{err}"
    );
    // Without a budget (the `Store::points` of library users) every series comes at once.
    assert_eq!(
        s.points(&pq("m", 0, 1000, None, None)).unwrap().items.len(),
        3
    );
}

/// Every series `scan_points` hands over, as (resource id, [(ts s, value)]), sorted.
fn scanned(
    s: &EmbeddedStore,
    metric: &str,
    start: i64,
    end: i64,
    want: Option<&str>,
) -> Vec<(String, Vec<(i64, f64)>)> {
    let got = std::sync::Mutex::new(Vec::new());
    let only = |k: &SeriesKey| want.is_none_or(|w| &*k.resource.id == w);
    s.scan_points(
        &SeriesScan {
            series: SeriesQuery {
                metric: Some(metric.into()),
                ..Default::default()
            },
            start: ts(start),
            end: ts(end),
            want: Some(&only),
        },
        &|key, t, v| {
            assert!(t.windows(2).all(|w| w[0] < w[1]), "ascending and unique");
            let points = t
                .iter()
                .zip(v)
                .map(|(t, v)| (t / 1_000_000_000, *v))
                .collect();
            got.lock()
                .unwrap()
                .push((key.resource.id.to_string(), points));
        },
    )
    .unwrap();
    let mut got = got.into_inner().unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

#[test]
fn a_scan_hands_over_what_points_answers_from_head_blocks_and_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(dir.path(), |o| o.compaction_fan_in = 2);
    let ingest = |v: &[(&str, i64, f64)]| {
        let mut b = batch();
        b.points = v
            .iter()
            .map(|(r, t, x)| point("m", r, ts(*t), *x))
            .collect();
        s.ingest(&b).unwrap();
    };
    // 3,000 series (more than one batch of the scan, so several threads and batches), one
    // compacted chunk each; then for h-7 a second block that rewrites a point, and points
    // in the head; h-8 only in the head.
    let many: Vec<(String, i64, f64)> = (0..3000)
        .flat_map(|i| (1..=5).map(move |k| (format!("h-{i}"), k * 60, (i * 10 + k) as f64)))
        .collect();
    let refs: Vec<(&str, i64, f64)> = many.iter().map(|(r, t, x)| (r.as_str(), *t, *x)).collect();
    ingest(&refs);
    s.flush().unwrap();
    ingest(&[("h-7", 120, 99.0), ("h-7", 600, 6.0)]);
    s.flush().unwrap();
    ingest(&[("h-7", 180, 77.0), ("h-7", 660, 7.0), ("h-3000", 60, 1.0)]);

    let all = scanned(&s, "m", 0, 4_000_000_000, None);
    assert_eq!(all.len(), 3001);
    let h7 = all.iter().find(|(r, _)| r == "h-7").unwrap();
    assert_eq!(
        h7.1,
        [
            (60, 71.0),
            (120, 99.0),
            (180, 77.0),
            (240, 74.0),
            (300, 75.0),
            (600, 6.0),
            (660, 7.0)
        ]
    );
    // The same as `points` for every series, range edges included ([start, end)).
    for (start, end) in [(0, 4_000_000_000), (120, 300), (121, 600)] {
        let by_points: Vec<(String, Vec<(i64, f64)>)> = {
            let mut q = pq("m", start, end, None, None);
            q.series.page.limit = Some(PageQuery::MAX_LIMIT);
            let mut out = Vec::new();
            loop {
                let page = s.points(&q).unwrap();
                out.extend(page.items.into_iter().map(|p| {
                    let pts = p.points.iter().map(|(t, v)| (t.timestamp(), *v)).collect();
                    (p.key.resource.id.to_string(), pts)
                }));
                match page.next_cursor {
                    Some(c) => q.series.page.cursor = Some(c),
                    None => break,
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out.retain(|(_, p): &(String, Vec<(i64, f64)>)| !p.is_empty());
            out
        };
        assert_eq!(
            scanned(&s, "m", start, end, None),
            by_points,
            "[{start}, {end})"
        );
    }
    // `want` picks series; nothing outside the range; other metrics not at all.
    assert_eq!(
        scanned(&s, "m", 0, 4_000_000_000, Some("h-3000")),
        [("h-3000".to_string(), vec![(60, 1.0)])]
    );
    assert!(scanned(&s, "m", 1000, 2000, None).is_empty());
    assert!(scanned(&s, "other", 0, 4_000_000_000, None).is_empty());
}

#[test]
fn buckets_end_at_multiples_of_the_step_without_overflow() {
    use crate::embedded::tsdb::bucket_end;
    assert_eq!(bucket_end(3600, 3600), 3600);
    assert_eq!(bucket_end(3601, 3600), 7200);
    assert_eq!(bucket_end(1, 3600), 3600);
    assert_eq!(bucket_end(0, 3600), 0);
    assert_eq!(bucket_end(-1, 3600), 0);
    assert_eq!(bucket_end(-3601, 3600), -3600);
    assert_eq!(bucket_end(i64::MAX, 3600), i64::MAX);
    assert_eq!(bucket_end(i64::MIN, 1_000_000_000), i64::MIN + 854_775_808);
}

/// (resource id, (first s, last s, points, max)) of every series, sorted: from
/// `scan_extents`, or from `scan_points` when `decoded`.
#[allow(clippy::type_complexity)]
fn extents(
    s: &EmbeddedStore,
    start: i64,
    end: i64,
    decoded: bool,
) -> Vec<(String, (i64, i64, u64, f64))> {
    let scan = SeriesScan {
        series: SeriesQuery {
            metric: Some("m".into()),
            ..Default::default()
        },
        start: ts(start),
        end: ts(end),
        want: None,
    };
    let got = std::sync::Mutex::new(Vec::new());
    let put = |key: &SeriesKey, e: SeriesExtent| {
        let e = (
            e.first_ns / 1_000_000_000,
            e.last_ns / 1_000_000_000,
            e.points,
            e.max,
        );
        got.lock().unwrap().push((key.resource.id.to_string(), e));
    };
    if decoded {
        s.scan_points(&scan, &|key, t, v| {
            let max = v.iter().copied().fold(f64::NAN, f64::max);
            let extent = SeriesExtent {
                first_ns: t[0],
                last_ns: t[t.len() - 1],
                points: t.len() as u64,
                max,
            };
            put(key, extent)
        })
        .unwrap();
    } else {
        s.scan_extents(&scan, &put).unwrap();
    }
    let mut got = got.into_inner().unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

/// Rewrites every block of the store at `dir` in the version 1 format (no values' range).
fn downgrade_blocks(dir: &Path) {
    use crate::embedded::block::{Block, BlockWriter};
    let blocks = dir.join("blocks");
    for entry in std::fs::read_dir(&blocks).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "blk") {
            continue;
        }
        let old = Block::open(&path).unwrap();
        let mut w = BlockWriter::create(&blocks, old.id).unwrap().version_1();
        for c in &old.chunks {
            w.add_raw(*c, &old.read_raw(c).unwrap()).unwrap();
        }
        let new = w
            .finish(old.level, old.min_seq, old.max_seq, &old.sources)
            .unwrap();
        assert!(new.chunks.iter().all(|c| c.value_range.is_none()));
    }
}

#[test]
fn extents_come_from_the_index_where_exact_and_equal_the_points_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let ranges = [
        (0, 4_000_000_000),
        (60, 600),
        (120, 300),
        (61, 241),
        (3000, 4000),
    ];
    {
        let s = open_with(dir.path(), |o| o.compaction_fan_in = 2);
        let ingest = |v: &[(&str, i64, f64)]| {
            let mut b = batch();
            b.points = v
                .iter()
                .map(|(r, t, x)| point("m", r, ts(*t), *x))
                .collect();
            s.ingest(&b).unwrap();
        };
        // a: one chunk; b: a later block rewrites its peak down (the older chunk's range
        // must not be believed); c: points in the head too; d: NaN among values, e: only NaN.
        ingest(&[
            ("a", 60, 1.0),
            ("a", 120, 9.0),
            ("a", 180, 3.0),
            ("b", 60, 1.0),
            ("b", 120, 50.0),
            ("b", 180, 2.0),
            ("c", 60, 4.0),
            ("d", 60, f64::NAN),
            ("d", 120, 5.0),
            ("e", 60, f64::NAN),
        ]);
        s.flush().unwrap();
        ingest(&[("b", 120, 0.5)]);
        s.flush().unwrap();
        ingest(&[("c", 240, 8.0)]);
        for (start, end) in ranges {
            let (quick, slow) = (
                extents(&s, start, end, false),
                extents(&s, start, end, true),
            );
            assert_eq!(
                format!("{quick:?}"),
                format!("{slow:?}"),
                "[{start}, {end})"
            );
        }
        let all = extents(&s, 0, 4_000_000_000, false);
        assert_eq!(all[0], ("a".to_string(), (60, 180, 3, 9.0)));
        assert_eq!(all[1], ("b".to_string(), (60, 180, 3, 2.0)));
        assert_eq!(all[2], ("c".to_string(), (60, 240, 2, 8.0)));
        assert_eq!(all[3].1 .3, 5.0);
        assert!(all[4].1 .3.is_nan());
        s.flush().unwrap();
    }
    // Several blocks (no compaction): the chunks a range holds whole answer from the index,
    // the ones it cuts are decoded; the same answers as the points.
    {
        let dir = tempfile::tempdir().unwrap();
        let s = open_with(dir.path(), |o| o.max_level = 0);
        for part in 0..3i64 {
            let mut b = batch();
            b.points = (0..3)
                .map(|k| {
                    let at = 60 + part * 180 + k * 60;
                    point("m", "g", ts(at), (at % 7) as f64 + part as f64)
                })
                .collect();
            s.ingest(&b).unwrap();
            s.flush().unwrap();
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("blocks"))
                .unwrap()
                .count(),
            3
        );
        for (start, end) in [
            (0, 1000),
            (61, 1000),
            (0, 300),
            (120, 421),
            (241, 361),
            (300, 301),
        ] {
            let (quick, slow) = (
                extents(&s, start, end, false),
                extents(&s, start, end, true),
            );
            assert_eq!(
                format!("{quick:?}"),
                format!("{slow:?}"),
                "[{start}, {end})"
            );
        }
    }
    // Blocks of the version 1 format (no values' range) are decoded, with the same answers.
    let before: Vec<String> = ranges
        .iter()
        .map(|(a, b)| format!("{:?}", extents(&open(dir.path()), *a, *b, true)))
        .collect();
    downgrade_blocks(dir.path());
    let s = open(dir.path());
    for ((start, end), want) in ranges.iter().zip(&before) {
        assert_eq!(&format!("{:?}", extents(&s, *start, *end, false)), want);
    }
    // Compaction rewrites them in the current format: the same answers, from the index.
    s.flush().unwrap();
    drop(s);
    for entry in std::fs::read_dir(dir.path().join("blocks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "blk") {
            let b = crate::embedded::block::Block::open(&path).unwrap();
            assert_eq!(b.version, 2, "{}", path.display());
            assert!(b.chunks.iter().all(|c| c.value_range.is_some()));
        }
    }
    let s = open(dir.path());
    for ((start, end), want) in ranges.iter().zip(&before) {
        assert_eq!(&format!("{:?}", extents(&s, *start, *end, false)), want);
    }
}
