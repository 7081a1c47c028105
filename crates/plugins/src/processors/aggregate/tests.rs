use super::*;
use crate::common::testing::{batch, config_err, point, resource, sample_entries, ts, with_raw};
use skymeter_model::Window;
use skymeter_plugin_api::BuildContext;

fn build_from(text: &str) -> Result<Box<dyn Processor>, ConfigError> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test")))
}

/// `metric{labels} stat period value @ts` for each point, to compare whole outputs.
fn shown(points: &[Point]) -> Vec<String> {
    points
        .iter()
        .map(|p| {
            let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{}/{}{{{}}} {} {} {} @{}",
                p.resource.id,
                p.metric,
                labels.join(","),
                p.stat,
                p.period_s,
                p.value,
                p.ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        })
        .collect()
}

fn run(agg: &mut dyn Processor, points: Vec<Point>) -> Batch {
    let mut b = batch(points);
    agg.process(&mut b);
    b
}

#[test]
fn windows_are_left_open_aligned_and_emitted_when_the_watermark_reaches_the_end() {
    let mut agg = build_from("window = \"1m\"").unwrap();
    let cpu = |v, at| point("cpu.utilization", v, at, &[]);

    let b = run(
        &mut *agg,
        vec![
            cpu(1.0, "2026-11-22T10:00:10Z"),
            cpu(5.0, "2026-11-22T10:00:30Z"),
        ],
    );
    assert_eq!(
        shown(&b.points),
        Vec::<String>::new(),
        "window still open, raw points dropped"
    );

    // ts = 10:01:00 is the end of its period: it belongs to (10:00, 10:01] and closes it.
    let b = run(&mut *agg, vec![cpu(3.0, "2026-11-22T10:01:00Z")]);
    assert_eq!(
        shown(&b.points),
        [
            "h1/cpu.utilization{} avg 60 3 @2026-11-22T10:01:00Z",
            "h1/cpu.utilization{} max 60 5 @2026-11-22T10:01:00Z",
        ]
    );

    // Just after the boundary: the next window, (10:01, 10:02].
    let b = run(&mut *agg, vec![cpu(7.0, "2026-11-22T10:01:00.500Z")]);
    assert!(b.points.is_empty());
    let b = run(&mut *agg, vec![cpu(9.0, "2026-11-22T10:01:59Z")]);
    assert!(b.points.is_empty());

    // flush emits the partial window with its nominal end.
    let mut last = batch(vec![]);
    agg.flush(&mut last);
    assert_eq!(
        shown(&last.points),
        [
            "h1/cpu.utilization{} avg 60 8 @2026-11-22T10:02:00Z",
            "h1/cpu.utilization{} max 60 9 @2026-11-22T10:02:00Z",
        ]
    );
    let mut again = batch(vec![]);
    agg.flush(&mut again);
    assert!(again.points.is_empty(), "flush empties the state");
}

#[test]
fn every_stat_per_series_in_window_then_series_order() {
    let mut agg =
        build_from("window = \"5m\"\nstats = [\"sum\", \"count\", \"min\", \"max\", \"avg\"]")
            .unwrap();
    let at = "2026-11-22T10:03:00Z";
    let mut other = point("disk.used", 10.0, at, &[("device", "sda")]);
    other.resource = resource("h2").into();
    let b = run(
        &mut *agg,
        vec![
            point("disk.used", 2.0, at, &[("device", "sdb")]),
            point("disk.used", 4.0, at, &[("device", "sda")]),
            other,
            point(
                "disk.used",
                -1.0,
                "2026-11-22T10:04:00Z",
                &[("device", "sda")],
            ),
            point(
                "disk.used",
                6.0,
                "2026-11-22T10:05:00Z",
                &[("device", "sda")],
            ),
        ],
    );
    // Everything is in (10:00, 10:05], closed by the point at 10:05:00 itself.
    assert_eq!(
        shown(&b.points),
        [
            "h1/disk.used{device=sda} sum 300 9 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sda} count 300 3 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sda} min 300 -1 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sda} max 300 6 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sda} avg 300 3 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sdb} sum 300 2 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sdb} count 300 1 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sdb} min 300 2 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sdb} max 300 2 @2026-11-22T10:05:00Z",
            "h1/disk.used{device=sdb} avg 300 2 @2026-11-22T10:05:00Z",
            "h2/disk.used{device=sda} sum 300 10 @2026-11-22T10:05:00Z",
            "h2/disk.used{device=sda} count 300 1 @2026-11-22T10:05:00Z",
            "h2/disk.used{device=sda} min 300 10 @2026-11-22T10:05:00Z",
            "h2/disk.used{device=sda} max 300 10 @2026-11-22T10:05:00Z",
            "h2/disk.used{device=sda} avg 300 10 @2026-11-22T10:05:00Z",
        ]
    );
    assert!(b.points.iter().all(|p| p.unit == Unit::Percent));
}

#[test]
fn a_series_that_stops_reporting_is_emitted_by_the_global_watermark() {
    let mut agg = build_from("window = \"1m\"\nstats = [\"max\"]").unwrap();
    let b = run(
        &mut *agg,
        vec![
            point("a", 1.0, "2026-11-22T10:00:20Z", &[]),
            point("b", 2.0, "2026-11-22T10:00:20Z", &[]),
        ],
    );
    assert!(b.points.is_empty());
    // Only `b` reports again, two windows later: `a`'s window goes out all the same, and so
    // does `b`'s, while `b`'s new window stays open.
    let b = run(
        &mut *agg,
        vec![point("b", 3.0, "2026-11-22T10:02:30Z", &[])],
    );
    assert_eq!(
        shown(&b.points),
        [
            "h1/a{} max 60 1 @2026-11-22T10:01:00Z",
            "h1/b{} max 60 2 @2026-11-22T10:01:00Z",
        ]
    );
}

#[test]
fn the_batch_window_end_advances_the_watermark() {
    let mut agg = build_from("window = \"1m\"\nstats = [\"count\"]").unwrap();
    run(
        &mut *agg,
        vec![point("a", 1.0, "2026-11-22T10:00:20Z", &[])],
    );
    // A collection that found nothing, covering up to 10:01:10.
    let mut empty = batch(vec![]);
    empty.window = Some(Window {
        start: ts("2026-11-22T10:01:00Z"),
        end: ts("2026-11-22T10:01:10Z"),
    });
    agg.process(&mut empty);
    assert_eq!(
        shown(&empty.points),
        ["h1/a{} count 60 1 @2026-11-22T10:01:00Z"]
    );
}

#[test]
fn only_selected_metrics_are_aggregated_and_originals_can_be_kept() {
    let mut agg = build_from(
        "window = \"1m\"\nmetrics = [\"cpu.*\"]\ndrop_original = false\nstats = [\"avg\"]",
    )
    .unwrap();
    let b = run(
        &mut *agg,
        vec![
            point("cpu.utilization", 4.0, "2026-11-22T10:00:30Z", &[]),
            point("mem.used", 1.0, "2026-11-22T10:00:30Z", &[]),
            point("cpu.utilization", 8.0, "2026-11-22T10:01:00Z", &[]),
        ],
    );
    assert_eq!(
        shown(&b.points),
        [
            "h1/cpu.utilization{} last 0 4 @2026-11-22T10:00:30Z",
            "h1/mem.used{} last 0 1 @2026-11-22T10:00:30Z",
            "h1/cpu.utilization{} last 0 8 @2026-11-22T10:01:00Z",
            "h1/cpu.utilization{} avg 60 6 @2026-11-22T10:01:00Z",
        ]
    );

    let mut dropping = build_from("window = \"1m\"\nmetrics = [\"cpu.*\"]").unwrap();
    let b = run(
        &mut *dropping,
        vec![
            point("cpu.utilization", 4.0, "2026-11-22T10:00:30Z", &[]),
            point("mem.used", 1.0, "2026-11-22T10:00:30Z", &[]),
        ],
    );
    assert_eq!(
        shown(&b.points),
        ["h1/mem.used{} last 0 1 @2026-11-22T10:00:30Z"]
    );
}

#[test]
fn late_points_are_reported_and_not_aggregated() {
    let mut agg = build_from("window = \"1m\"\nstats = [\"count\"]").unwrap();
    run(
        &mut *agg,
        vec![point("a", 1.0, "2026-11-22T10:01:00Z", &[])],
    );
    let b = run(
        &mut *agg,
        vec![
            point("a", 1.0, "2026-11-22T10:00:40Z", &[]),
            point("a", 1.0, "2026-11-22T10:00:50Z", &[]),
            point("a", 1.0, "2026-11-22T10:01:30Z", &[]),
        ],
    );
    assert!(b.points.is_empty());
    assert_eq!(b.errors.len(), 1);
    assert_eq!(b.errors[0].plugin, "aggregate");
    assert_eq!(
        b.errors[0].message,
        "2 point(s) arrived after their 60s window had been emitted and were dropped \
         (first: `a` at 2026-11-22T10:00:40Z); timestamps went backwards: check the source's \
         clock or give late sources their own task"
    );
    let mut last = batch(vec![]);
    agg.flush(&mut last);
    assert_eq!(
        shown(&last.points),
        ["h1/a{} count 60 1 @2026-11-22T10:02:00Z"]
    );
}

#[test]
fn config_errors() {
    for (text, want) in [
        ("window = \"1500ms\"", "whole number of seconds"),
        ("window = \"0s\"", "whole number of seconds"),
        (
            "window = \"1m\"\nstats = [\"p95\"]",
            "`p95` cannot be computed",
        ),
        (
            "window = \"1m\"\nstats = [\"avg\", \"avg\"]",
            "`avg` is listed twice",
        ),
        ("window = \"1m\"\nstats = []", "no stats"),
        (
            "window = \"1m\"\nstats = [\"median\"]",
            "unknown variant `median`",
        ),
        ("stats = [\"avg\"]", "missing field `window`"),
    ] {
        let e = config_err(build_from(text));
        assert!(e.message.contains(want), "{text}: {e}");
    }
}

#[test]
fn sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "process", "aggregate") {
        build_from(&entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}
