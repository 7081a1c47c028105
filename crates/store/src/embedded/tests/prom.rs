//! The Prometheus view: labels, the label index (all four matcher kinds, label changes),
//! sample reads across head and blocks, and agreement with the generic implementation.

use super::*;
use crate::prom::{series_labels, Labels, MatchOp, Matcher, ResourceLabels};
use crate::store::generic_select;

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(op, name, value).unwrap()
}

fn eq(name: &str, value: &str) -> Matcher {
    m(name, MatchOp::Equal, value)
}

const CPU: &str = "cpu_utilization_percent";

fn aws(id: &str, region: &str) -> ResourceRef {
    ResourceRef {
        provider: "aws".into(),
        account: "111".into(),
        region: region.into(),
        id: id.into(),
    }
}

fn pt(metric: &str, r: &ResourceRef, stat: Stat, secs: i64, value: f64) -> Point {
    Point {
        metric: metric.into(),
        unit: Unit::Percent,
        stat,
        period_s: 60,
        ts: ts(secs),
        value,
        resource: r.clone().into(),
        labels: Default::default(),
    }
}

fn res(r: &ResourceRef, name: &str, env: &str, at: i64) -> Resource {
    Resource {
        provider: r.provider.to_string(),
        account: r.account.to_string(),
        region: r.region.to_string(),
        kind: "compute.instance".into(),
        native_type: "AWS::EC2::Instance".into(),
        id: r.id.to_string(),
        name: name.into(),
        tags: [("env".to_string(), env.to_string())].into_iter().collect(),
        attributes: Default::default(),
        observed_at: ts(at),
    }
}

/// Four instances in two regions (i-1, i-2 in us-east-1; i-3, i-4 in eu-west-1), avg and
/// max CPU, a disk metric with a point label on i-1; resource records for i-1..i-3 only.
fn seed(s: &EmbeddedStore) -> Vec<ResourceRef> {
    let rs = vec![
        aws("i-1", "us-east-1"),
        aws("i-2", "us-east-1"),
        aws("i-3", "eu-west-1"),
        aws("i-4", "eu-west-1"),
    ];
    let mut b = batch();
    b.resources = vec![
        res(&rs[0], "web-1", "prod", 1000),
        res(&rs[1], "web-2", "dev", 1000),
        res(&rs[2], "db-1", "prod", 1000),
    ];
    for (k, r) in rs.iter().enumerate() {
        for i in 0..10 {
            let t = 60 * (i + 1);
            b.points.push(pt(
                "cpu.utilization",
                r,
                Stat::Avg,
                t,
                (k * 10) as f64 + i as f64,
            ));
            b.points.push(pt(
                "cpu.utilization",
                r,
                Stat::Max,
                t,
                (k * 10) as f64 + i as f64 + 0.5,
            ));
        }
    }
    let mut disk = pt("disk.read_iops", &rs[0], Stat::Avg, 60, 7.0);
    disk.unit = Unit::CountPerSecond;
    disk.labels.insert("device".into(), "sda".into());
    b.points.push(disk);
    s.ingest(&b).unwrap();
    rs
}

fn select(s: &EmbeddedStore, ms: &[Matcher]) -> Vec<String> {
    s.prom_select(
        ms,
        i64::MIN,
        i64::MAX,
        &crate::prom::SelectBudget::unlimited(),
    )
    .unwrap()
    .iter()
    .map(|x| {
        format!(
            "{}/{}",
            x.labels.get("resource_id").unwrap_or("-"),
            x.labels.get("stat").unwrap_or("-")
        )
    })
    .collect()
}

#[test]
fn labels_come_from_key_point_and_resource() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    seed(&s);
    let got = s
        .prom_select(
            &[eq("__name__", "disk_read_iops_per_second")],
            0,
            10_000_000,
            &crate::prom::SelectBudget::unlimited(),
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].labels.to_string(),
        r#"{__name__="disk_read_iops_per_second", account="111", device="sda", kind="compute.instance", provider="aws", region="us-east-1", resource_id="i-1", resource_name="web-1", stat="avg", tag_env="prod"}"#
    );
    assert_eq!(&*got[0].timestamps, &[60_000]);
    assert_eq!(&*got[0].values, &[7.0]);
    // i-4 has no resource record: no kind, name or tags.
    let got = s
        .prom_select(
            &[eq("resource_id", "i-4"), eq("stat", "avg")],
            0,
            i64::MAX,
            &crate::prom::SelectBudget::unlimited(),
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels.get("kind"), None);
    assert_eq!(got[0].labels.get("tag_env"), None);
    assert_eq!(
        s.prom_metrics()
            .unwrap()
            .iter()
            .map(|m| format!("{} {} {}", m.name, m.metric, m.unit.as_str()))
            .collect::<Vec<_>>(),
        [
            "cpu_utilization_percent cpu.utilization percent",
            "disk_read_iops_per_second disk.read_iops count/s"
        ]
    );
}

#[test]
fn all_four_matcher_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    seed(&s);
    let name = eq("__name__", CPU);
    let avg = eq("stat", "avg");
    // = (and results in label order, pair by pair: i-4 has no `kind`, so its next label
    // `provider` sorts after the others' `kind`)
    assert_eq!(
        select(&s, &[name.clone(), avg.clone()]),
        ["i-3/avg", "i-1/avg", "i-2/avg", "i-4/avg"]
    );
    assert_eq!(
        select(&s, &[name.clone(), eq("region", "nowhere")]),
        Vec::<String>::new()
    );
    // !=
    assert_eq!(
        select(
            &s,
            &[
                name.clone(),
                avg.clone(),
                m("region", MatchOp::NotEqual, "eu-west-1")
            ]
        ),
        ["i-1/avg", "i-2/avg"]
    );
    // =~ : a literal alternation (looked up) and a real regex (run over the values)
    assert_eq!(
        select(
            &s,
            &[
                avg.clone(),
                m("resource_id", MatchOp::RegexMatch, "i-2|i-4|i-9")
            ]
        ),
        ["i-2/avg", "i-4/avg"]
    );
    assert_eq!(
        select(
            &s,
            &[
                name.clone(),
                m("resource_name", MatchOp::RegexMatch, "web-.*"),
                avg.clone()
            ]
        ),
        ["i-1/avg", "i-2/avg"]
    );
    // !~ , which also keeps series without the label (i-4 has no tag_env)
    assert_eq!(
        select(
            &s,
            &[
                name.clone(),
                avg.clone(),
                m("tag_env", MatchOp::RegexNoMatch, "pro.*")
            ]
        ),
        ["i-2/avg", "i-4/avg"]
    );
    // ="" selects series without the label; !="" those with it
    assert_eq!(
        select(&s, &[name.clone(), avg.clone(), eq("kind", "")]),
        ["i-4/avg"]
    );
    assert_eq!(
        select(
            &s,
            &[name.clone(), avg.clone(), m("kind", MatchOp::NotEqual, "")]
        ),
        ["i-3/avg", "i-1/avg", "i-2/avg"]
    );
    // A name matched by regex, no equality at all.
    assert_eq!(
        select(&s, &[m("__name__", MatchOp::RegexMatch, "disk_.*")]),
        ["i-1/avg"]
    );
    // No matcher that rejects "": every series, then filtered.
    assert_eq!(
        select(
            &s,
            &[
                m("stat", MatchOp::NotEqual, "avg"),
                m("region", MatchOp::RegexNoMatch, "us-.*")
            ]
        ),
        ["i-3/max", "i-4/max"]
    );
}

#[test]
fn resource_changes_relabel_series_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let rs = seed(&s);
        // i-2 becomes prod and is renamed; an older observation of i-1 changes nothing.
        let mut b = batch();
        b.resources = vec![
            res(&rs[1], "web-2b", "prod", 2000),
            res(&rs[0], "old", "x", 10),
        ];
        s.ingest(&b).unwrap();
        let prod = [
            eq("__name__", CPU),
            eq("stat", "avg"),
            eq("tag_env", "prod"),
        ];
        assert_eq!(select(&s, &prod), ["i-3/avg", "i-1/avg", "i-2/avg"]);
        assert_eq!(select(&s, &[eq("tag_env", "dev")]), Vec::<String>::new());
        assert_eq!(
            select(&s, &[eq("resource_name", "web-2b"), eq("stat", "max")]),
            ["i-2/max"]
        );
        assert_eq!(
            select(&s, &[eq("resource_name", "old")]),
            Vec::<String>::new()
        );
        // A resource record for i-4 arrives: its series gain kind, name and tags.
        let mut b = batch();
        b.resources = vec![res(&rs[3], "db-2", "dev", 3000)];
        s.ingest(&b).unwrap();
        assert_eq!(select(&s, &[eq("tag_env", "dev")]), ["i-4/avg", "i-4/max"]);
        s.flush().unwrap();
    }
    // Reopened: the index is rebuilt from SQLite and the series registry.
    let s = open(dir.path());
    assert_eq!(select(&s, &[eq("tag_env", "dev")]), ["i-4/avg", "i-4/max"]);
    assert_eq!(
        select(&s, &[eq("resource_name", "web-2b"), eq("stat", "max")]),
        ["i-2/max"]
    );
    // Retention deletes resources not seen since: their labels go; series with points
    // left stay, the others leave the index.
    let mut b = batch();
    b.points = vec![
        pt(
            "cpu.utilization",
            &aws("i-1", "us-east-1"),
            Stat::Avg,
            3000,
            1.0,
        ),
        pt(
            "cpu.utilization",
            &aws("i-4", "eu-west-1"),
            Stat::Avg,
            3000,
            2.0,
        ),
        pt(
            "cpu.utilization",
            &aws("i-4", "eu-west-1"),
            Stat::Max,
            3000,
            3.0,
        ),
    ];
    s.ingest(&b).unwrap();
    let report = s.enforce_retention(ts(2500)).unwrap();
    assert_eq!(report.series, 9 - 3);
    assert_eq!(select(&s, &[eq("tag_env", "prod")]), Vec::<String>::new());
    assert_eq!(select(&s, &[eq("tag_env", "dev")]), ["i-4/avg", "i-4/max"]);
    assert_eq!(select(&s, &[eq("resource_id", "i-1")]), ["i-1/avg"]);
    assert_eq!(
        select(&s, &[eq("resource_id", "i-2")]),
        Vec::<String>::new()
    );
}

#[test]
fn samples_merge_blocks_and_head_in_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let r = aws("i-1", "us-east-1");
    let mut b = batch();
    b.points = (1..=5)
        .map(|i| pt("cpu.utilization", &r, Stat::Avg, i * 60, i as f64))
        .collect();
    s.ingest(&b).unwrap();
    s.flush().unwrap();
    // Into the head: a rewrite of 180 s (later write wins), and 360 s with 1.5 ms past it.
    let mut b = batch();
    let mut late = pt("cpu.utilization", &r, Stat::Avg, 360, 6.0);
    late.ts += chrono::Duration::microseconds(1500);
    b.points = vec![pt("cpu.utilization", &r, Stat::Avg, 180, 33.0), late];
    s.ingest(&b).unwrap();
    let get = |start, end| {
        let v = s
            .prom_select(
                &[eq("__name__", CPU)],
                start,
                end,
                &crate::prom::SelectBudget::unlimited(),
            )
            .unwrap();
        assert_eq!(v.len(), 1);
        let v = &v[0];
        // Samples outside the range may come along: keep those inside to compare.
        v.timestamps
            .iter()
            .zip(v.values.iter())
            .filter(|(t, _)| **t >= start && **t <= end)
            .map(|(t, v)| (*t, *v))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        get(0, 1_000_000),
        [
            (60_000, 1.0),
            (120_000, 2.0),
            (180_000, 33.0),
            (240_000, 4.0),
            (300_000, 5.0),
            (360_001, 6.0)
        ]
    );
    // Both ends inclusive.
    assert_eq!(
        get(120_000, 240_000),
        [(120_000, 2.0), (180_000, 33.0), (240_000, 4.0)]
    );
    // From the block only (the cache's copy is handed out whole).
    let v = s
        .prom_select(
            &[eq("__name__", CPU)],
            60_000,
            120_000,
            &crate::prom::SelectBudget::unlimited(),
        )
        .unwrap();
    assert!(v[0].timestamps.contains(&60_000) && v[0].timestamps.contains(&120_000));
    // Outside any data: the series is there, without samples in range.
    assert_eq!(get(10_000_000, 20_000_000), []);
    // Same answers from a cold cache, and after everything is sealed and compacted.
    s.clear_query_cache();
    assert_eq!(
        get(120_000, 240_000),
        [(120_000, 2.0), (180_000, 33.0), (240_000, 4.0)]
    );
    s.flush().unwrap();
    assert_eq!(get(120_000, 400_000).len(), 5);
    assert_eq!(get(180_000, 180_000), [(180_000, 33.0)]);
}

#[test]
fn series_labels_and_values_honour_matchers_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    seed(&s);
    let all = s.prom_series(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(all.len(), 9);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted");
    // Two selectors: their union.
    let two = s
        .prom_series(
            &[
                vec![eq("resource_id", "i-3"), eq("stat", "avg")],
                vec![eq("device", "sda")],
            ],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(two.len(), 2);
    // The disk series has one sample at 60 s: not in [120 s, 1 h].
    let later = s
        .prom_series(&[vec![eq("resource_id", "i-1")]], 120_000, 3_600_000)
        .unwrap();
    assert_eq!(later.len(), 2);
    assert_eq!(s.prom_series(&[], 700_000, 800_000).unwrap().len(), 0);
    assert_eq!(
        s.prom_label_names(&[vec![eq("resource_id", "i-4")]], i64::MIN, i64::MAX)
            .unwrap(),
        [
            "__name__",
            "account",
            "provider",
            "region",
            "resource_id",
            "stat"
        ]
    );
    assert_eq!(
        s.prom_label_values("resource_name", &[], i64::MIN, i64::MAX)
            .unwrap(),
        ["db-1", "web-1", "web-2"]
    );
    assert_eq!(
        s.prom_label_values("__name__", &[], 0, 60_000).unwrap(),
        [CPU, "disk_read_iops_per_second"]
    );
}

/// The index against the generic implementation (every series read through the paged
/// API and filtered by the matchers one by one): same series, same samples.
#[test]
fn index_agrees_with_the_generic_scan() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let rs = seed(&s);
    s.flush().unwrap();
    let mut b = batch();
    b.points = vec![pt("cpu.utilization", &rs[2], Stat::Avg, 700, 1.25)];
    b.resources = vec![res(&rs[3], "db-2", "prod", 5000)];
    s.ingest(&b).unwrap();
    let sets: Vec<Vec<Matcher>> = vec![
        vec![eq("__name__", CPU)],
        vec![eq("tag_env", "prod"), m("stat", MatchOp::NotEqual, "max")],
        vec![
            m("region", MatchOp::RegexMatch, "eu-.*|us-east-1"),
            eq("stat", "max"),
        ],
        vec![
            m("resource_id", MatchOp::RegexNoMatch, "i-[12]"),
            m("__name__", MatchOp::RegexMatch, ".+"),
        ],
        vec![eq("device", ""), eq("resource_id", "i-1")],
        vec![m("resource_name", MatchOp::RegexMatch, "")],
    ];
    for ms in &sets {
        for (start, end) in [(i64::MIN, i64::MAX), (120_000, 400_000), (650_000, 700_000)] {
            let ours = s
                .prom_select(ms, start, end, &crate::prom::SelectBudget::unlimited())
                .unwrap();
            let generic =
                generic_select(&s, ms, start, end, &crate::prom::SelectBudget::unlimited())
                    .unwrap();
            let view = |v: &[crate::prom::Series]| -> Vec<(Labels, Vec<(i64, u64)>)> {
                v.iter()
                    .map(|x| {
                        let pts = x
                            .timestamps
                            .iter()
                            .zip(x.values.iter())
                            .filter(|(t, _)| **t >= start && **t <= end)
                            .map(|(t, v)| (*t, v.to_bits()))
                            .collect();
                        (x.labels.clone(), pts)
                    })
                    .collect()
            };
            assert_eq!(view(&ours), view(&generic), "{ms:?} [{start}, {end}]");
        }
    }
}

#[test]
fn the_label_mapping_is_the_one_of_the_model() {
    let key = SeriesKey {
        metric: "network.received_throughput".into(),
        unit: Unit::BytesPerSecond,
        stat: Stat::Avg,
        resource: aws("i-1", "r"),
        labels: Labels::default()
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    };
    let l = series_labels(&key, Some(&ResourceLabels::default()));
    assert_eq!(
        l.metric_name(),
        Some("network_received_throughput_bytes_per_second")
    );
}

/// Many series (past the size where filters switch from label checks to posting-list
/// differences), pseudo-random labels and matchers: the index selects exactly what
/// checking every series' labels selects.
#[test]
fn index_agrees_with_brute_force_on_many_series() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut rng = 7u64;
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let regions = ["us-east-1", "us-west-2", "eu-west-1", ""];
    let envs = ["prod", "dev", "test"];
    let mut b = batch();
    for i in 0..900 {
        let r = aws(&format!("i-{i:04}"), regions[next(4) as usize]);
        if next(3) > 0 {
            b.resources.push(res(
                &r,
                &format!("n{}", next(50)),
                envs[next(3) as usize],
                100,
            ));
        }
        let stat = if next(2) == 0 { Stat::Avg } else { Stat::Max };
        let mut p = pt("cpu.utilization", &r, stat, 60, i as f64);
        if next(5) == 0 {
            p.labels.insert("cpu".into(), next(4).to_string());
        }
        b.points.push(p);
    }
    s.ingest(&b).unwrap();
    // Sealed into a block: selects read chunks (hundreds at once, so decoded in parallel).
    s.flush().unwrap();
    let all = s.prom_series(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(all.len(), 900);
    let ops = [
        MatchOp::Equal,
        MatchOp::NotEqual,
        MatchOp::RegexMatch,
        MatchOp::RegexNoMatch,
    ];
    let names = ["region", "tag_env", "stat", "cpu", "resource_name", "kind"];
    let values = [
        "us-east-1",
        "prod",
        "avg",
        "2",
        "n1.*",
        "",
        "eu-.*|us-west-2",
        "dev|test",
        ".+",
        "n4",
    ];
    for round in 0..400 {
        if round % 50 == 0 {
            s.clear_query_cache();
        }
        let ms: Vec<Matcher> = (0..1 + next(3))
            .map(|_| {
                m(
                    names[next(names.len() as u64) as usize],
                    ops[next(4) as usize],
                    values[next(values.len() as u64) as usize],
                )
            })
            .collect();
        let want: Vec<&Labels> = all
            .iter()
            .filter(|l| skymeter_promql::matches_all(&ms, l))
            .collect();
        let got = s
            .prom_select(
                &ms,
                i64::MIN,
                i64::MAX,
                &crate::prom::SelectBudget::unlimited(),
            )
            .unwrap();
        for x in &got {
            let i: f64 = x.labels.get("resource_id").unwrap()[2..].parse().unwrap();
            assert_eq!((&*x.timestamps, &*x.values), (&[60_000][..], &[i][..]));
        }
        let got: Vec<&Labels> = got.iter().map(|x| &x.labels).collect();
        assert_eq!(got, want, "{ms:?}");
    }
}

/// The select's budget: series counted from the index before samples are read, samples
/// in range counted while read (from blocks and head), the deadline watched; the generic
/// implementation keeps the same budget.
#[test]
fn select_stays_within_its_budget() {
    use crate::prom::SelectBudget;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    seed(&s); // 8 CPU series of 10 samples each, 60 s apart
    s.flush().unwrap();
    let cpu = [eq("__name__", CPU)];
    let budget = |series: usize, samples: usize| SelectBudget {
        max_series: 100,
        series_left: series,
        max_samples: 1000,
        samples_left: samples,
        ..SelectBudget::unlimited()
    };
    let all = (i64::MIN, i64::MAX);
    for (name, r) in [
        (
            "embedded",
            s.prom_select(&cpu, all.0, all.1, &budget(7, 1000)),
        ),
        (
            "generic",
            generic_select(&s, &cpu, all.0, all.1, &budget(7, 1000)),
        ),
    ] {
        let e = r.unwrap_err();
        assert_eq!(
            (e.error_type(), e.limit, e.message.as_str()),
            (
                "execution",
                Some(skymeter_promql::Limit::MaxSeries),
                "query would select more than 100 series (limit max_series); narrow the \
                 selectors or the time range"
            ),
            "{name}"
        );
    }
    assert_eq!(
        s.prom_select(&cpu, all.0, all.1, &budget(8, 80))
            .unwrap()
            .len(),
        8
    );
    for (name, r) in [
        (
            "embedded",
            s.prom_select(&cpu, all.0, all.1, &budget(8, 79)),
        ),
        (
            "generic",
            generic_select(&s, &cpu, all.0, all.1, &budget(8, 79)),
        ),
    ] {
        let e = r.unwrap_err();
        assert_eq!(e.limit, Some(skymeter_promql::Limit::MaxSamples), "{name}");
        assert!(
            e.message.contains("more than 1000, limit max_samples"),
            "{}",
            e.message
        );
    }
    // Only samples in the range count: 2 per series from 120 s to 180 s.
    let v = s
        .prom_select(&cpu, 120_000, 180_000, &budget(8, 16))
        .unwrap();
    assert_eq!(v.len(), 8);
    assert!(s
        .prom_select(&cpu, 120_000, 180_000, &budget(8, 15))
        .is_err());
    // Head samples count as well.
    let mut b = batch();
    b.points = (11..=20)
        .map(|i| {
            pt(
                "cpu.utilization",
                &aws("i-1", "us-east-1"),
                Stat::Avg,
                60 * i,
                1.0,
            )
        })
        .collect();
    s.ingest(&b).unwrap();
    let late = (660_000, 1_200_000);
    s.prom_select(&cpu, late.0, late.1, &budget(8, 10)).unwrap();
    let e = s
        .prom_select(&cpu, late.0, late.1, &budget(8, 9))
        .unwrap_err();
    assert_eq!(e.limit, Some(skymeter_promql::Limit::MaxSamples));
    // A passed deadline stops the select.
    let past = SelectBudget {
        deadline: Some(std::time::Instant::now()),
        timeout: Some(std::time::Duration::from_millis(5)),
        ..SelectBudget::unlimited()
    };
    std::thread::sleep(std::time::Duration::from_millis(2));
    let e = s.prom_select(&cpu, all.0, all.1, &past).unwrap_err();
    assert_eq!(
        (e.error_type(), e.message.as_str()),
        (
            "timeout",
            "query timed out in selecting series (limit timeout = 5ms)"
        )
    );
}
