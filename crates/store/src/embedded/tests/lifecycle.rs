//! Series lifecycle: a series that retention empties leaves the series index, the
//! Prometheus index and the registry, and a restart does not bring it back; churning
//! labels keep the indexes at the size of the live set.

use super::*;
use crate::prom::{MatchOp, Matcher};
use std::sync::Arc;

/// Series per generation: pods with a per-generation `version` label.
const PODS: usize = 300;
/// Series per generation of a metric only that generation uses.
const ONLY: usize = 10;
/// Seconds between generations.
const GEN_S: i64 = 10_000;

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, value).unwrap()
}

fn pod_point(metric: &str, gen: i64, pod: usize, secs: i64) -> Point {
    let mut p = point(metric, &format!("pod-{gen}-{pod}"), ts(secs), pod as f64);
    let mut labels = Labels::new();
    labels.insert("version".into(), format!("v{gen}"));
    p.labels = labels.into();
    p
}

/// One generation: `PODS` pod series and `ONLY` series of a metric of its own, three
/// points each, a resource record per pod, and a point of the long-lived `node` series.
fn generation(gen: i64) -> Batch {
    let base = gen * GEN_S;
    let mut b = batch();
    for pod in 0..PODS {
        for k in 0..3 {
            b.points
                .push(pod_point("container.cpu", gen, pod, base + k * 60));
        }
        let mut r = resource(&format!("pod-{gen}-{pod}"), ts(base));
        r.tags.insert("team".into(), format!("t{}", pod % 7));
        b.resources.push(r);
    }
    for pod in 0..ONLY {
        b.points
            .push(pod_point(&format!("gen{gen}.only"), gen, pod, base));
    }
    b.points
        .push(point("node.cpu", "node", ts(base), gen as f64));
    b.resources.push(resource("node", ts(base)));
    b
}

/// The series matching one matcher, with every sample.
fn select_all(s: &EmbeddedStore, m: Matcher) -> Vec<crate::prom::Series> {
    s.prom_select(
        &[m],
        i64::MIN,
        i64::MAX,
        &crate::prom::SelectBudget::unlimited(),
    )
    .unwrap()
}

fn names(s: &EmbeddedStore) -> Vec<String> {
    s.prom_metrics()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect()
}

#[test]
fn churned_series_leave_every_index_and_a_restart_does_not_bring_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let live = PODS + ONLY + 1;
    let mut baseline = None;
    let mut max_id = 0;
    let mut s = open(dir.path());
    for gen in 0..6 {
        // Even generations start by sealing the previous one into a block; odd ones leave
        // it in the head, so retention empties series in both places, and the series of
        // the last generations are defined only by WAL records at the reopen below.
        if gen % 2 == 0 {
            s.flush().unwrap();
        }
        assert_eq!(s.ingest(&generation(gen)).unwrap(), IngestOutcome::Stored);
        max_id = max_id.max(*s.index_state().0.last().unwrap());
        if gen == 0 {
            continue;
        }
        let report = s.enforce_retention(ts(gen * GEN_S)).unwrap();
        assert_eq!(report.series, (PODS + ONLY) as u64, "gen {gen}: {report:?}");
        assert_eq!(report.points, (PODS * 3 + ONLY + 1) as u64, "gen {gen}");

        let (ids, sizes) = s.index_state();
        assert_eq!(ids.len(), live, "gen {gen}: series index");
        assert_eq!(s.stats().unwrap().series, live as u64);
        assert_eq!(
            (sizes.series, sizes.by_key),
            (live, live),
            "gen {gen}: {sizes:?}"
        );
        // Pages of ids: the live ids span at most this many pages (plus the long-lived
        // `node` series' first page); emptied pages are freed.
        assert!(sizes.pages <= live / 512 + 3, "gen {gen}: {sizes:?}");
        let sizes = crate::embedded::index::IndexSizes { pages: 0, ..sizes };
        // Every generation has the same shape, so from the first retention on the whole
        // label index has one size: postings, interned strings, resources and metric
        // names included.
        match &baseline {
            None => baseline = Some(sizes),
            Some(b) => assert_eq!(&sizes, b, "gen {gen}: the index grew"),
        }
        let old = format!("v{}", gen - 1);
        assert!(select_all(&s, eq("version", &old)).is_empty());
        assert!(s
            .prom_series(&[vec![eq("version", &old)]], i64::MIN, i64::MAX)
            .unwrap()
            .is_empty());
        let now = format!("v{gen}");
        assert_eq!(select_all(&s, eq("version", &now)).len(), PODS + ONLY);
        let metrics = names(&s);
        assert!(
            !metrics.contains(&format!("gen{}_only_percent", gen - 1)),
            "{metrics:?}"
        );
        assert!(
            metrics.contains(&format!("gen{gen}_only_percent")),
            "{metrics:?}"
        );
        let page = s
            .series(&SeriesQuery {
                labels: [("version".to_string(), old.clone())].into(),
                ..Default::default()
            })
            .unwrap();
        assert!(page.items.is_empty());
        // The long-lived series keeps its points of this generation only.
        assert_eq!(all_points(&s, "node.cpu"), [(ts(gen * GEN_S), gen as f64)]);
    }
    let before = s.index_state();
    drop(s);

    // Reopened: the registry in SQLite no longer has the removed series, and the WAL
    // records that defined generation 4 (removed) replay without bringing it back.
    s = open(dir.path());
    assert_eq!(s.index_state(), before);
    assert_eq!(s.stats().unwrap().series, live as u64);
    assert!(select_all(&s, eq("version", "v4")).is_empty());

    // Ids are not reused, even after the highest were removed and the WAL is gone.
    s.enforce_retention(ts(10 * GEN_S)).unwrap();
    s.flush().unwrap();
    assert_eq!(s.stats().unwrap().series, 0);
    drop(s);
    s = open(dir.path());
    s.ingest(&generation(11)).unwrap();
    let (ids, _) = s.index_state();
    assert!(
        ids[0] > max_id,
        "a new series took id {} ≤ {max_id}",
        ids[0]
    );
    assert_eq!(ids.len(), live);
    drop(s);
    let s = open(dir.path());
    assert_eq!(all_points(&s, "node.cpu"), [(ts(11 * GEN_S), 11.0)]);
    assert_eq!(select_all(&s, eq("version", "v11")).len(), PODS + ONLY);
}

#[test]
fn a_series_with_points_left_in_range_stays() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = batch();
    b.points = vec![point("m", "a", ts(100), 1.0), point("m", "a", ts(300), 2.0)];
    b.points.push(point("m", "b", ts(100), 3.0));
    s.ingest(&b).unwrap();
    s.flush().unwrap();
    let report = s.enforce_retention(ts(200)).unwrap();
    assert_eq!((report.points, report.series), (2, 1));
    let (ids, sizes) = s.index_state();
    assert_eq!((ids.len(), sizes.series), (1, 1));
    assert_eq!(
        select_all(&s, eq("resource_id", "a"))[0].values.as_ref(),
        [2.0]
    );
    assert!(select_all(&s, eq("resource_id", "b")).is_empty());
    // A removed series that comes back is a new series, with the new points only.
    let mut b = batch();
    b.points = vec![point("m", "b", ts(400), 4.0)];
    s.ingest(&b).unwrap();
    assert_eq!(s.stats().unwrap().series, 2);
    drop(s);
    let s = open(dir.path());
    let got = select_all(&s, eq("resource_id", "b"));
    assert_eq!(got[0].values.as_ref(), [4.0]);
}

#[test]
fn retention_beside_ingest_loses_no_point_and_no_series() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open_with(dir.path(), |o| o.head_max_points = 2_000));
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for k in 0..200i64 {
                let mut b = batch();
                // New series every batch, some existing ones too, all at recent times.
                b.points = (0..20)
                    .map(|j| {
                        point(
                            "w",
                            &format!("r{}", (k * 20 + j) % 1000),
                            ts(1_000_000 + k),
                            1.0,
                        )
                    })
                    .collect();
                s.ingest(&b).unwrap();
            }
        })
    };
    // Old data, emptied again and again while the writer runs.
    for round in 0..40i64 {
        let mut b = batch();
        b.points = (0..20)
            .map(|j| point("old", &format!("o{round}-{j}"), ts(1000 + round), 1.0))
            .collect();
        s.ingest(&b).unwrap();
        s.enforce_retention(ts(500_000)).unwrap();
        let _ = s
            .prom_series(&[vec![eq("provider", "host")]], i64::MIN, i64::MAX)
            .unwrap();
    }
    writer.join().unwrap();
    s.enforce_retention(ts(500_000)).unwrap();
    let check = |s: &EmbeddedStore| {
        assert_eq!(s.stats().unwrap().series, 1000);
        assert_eq!(s.stats().unwrap().points, 200 * 20);
        assert_eq!(select_all(s, eq("__name__", "w_percent")).len(), 1000);
    };
    check(&s);
    drop(s);
    let s = open(dir.path());
    check(&s);
}
