use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn every(secs: u64) -> Schedule {
    Schedule::Every(Duration::from_secs(secs))
}

fn w(start: &str, end: &str) -> Window {
    Window {
        start: at(start),
        end: at(end),
    }
}

fn state<'a>(
    name: &'a str,
    history: bool,
    catch_up_s: u64,
    mark: Option<Window>,
) -> CollectorState<'a> {
    CollectorState {
        name,
        plugin: if history { "aws" } else { "host" },
        reads_history: history,
        catch_up: Duration::from_secs(catch_up_s),
        mark,
    }
}

#[test]
fn marks_survive_a_reopen_and_a_leftover_temp_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, problems) = WindowMarks::open(dir.path(), "cloud/prod");
    assert!(problems.is_empty());
    assert_eq!(m.get("aws"), None);
    m.record([("aws", w("2026-12-06T10:00:00Z", "2026-12-06T10:01:00Z"))])
        .unwrap();
    m.record([
        ("aws", w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z")),
        ("host", w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z")),
    ])
    .unwrap();
    let file = WindowMarks::file_of(dir.path(), "cloud/prod");
    assert!(file.ends_with("windows/cloud%2Fprod.jsonl"), "{file:?}");
    // What a kill -9 in the middle of a save leaves: a half-written temp file.
    std::fs::write(
        file.with_extension("jsonl.tmp"),
        "{\"collector\":\"aws\",\"sta",
    )
    .unwrap();
    let (m2, problems) = WindowMarks::open(dir.path(), "cloud/prod");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        m2.get("aws"),
        Some(w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"))
    );
    assert_eq!(
        m2.get("host"),
        Some(w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"))
    );
    // Another task has its own file.
    let (other, _) = WindowMarks::open(dir.path(), "cloud_prod");
    assert_eq!(other.get("aws"), None);
}

#[test]
fn a_mark_never_moves_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, _) = WindowMarks::open(dir.path(), "t");
    m.record([("aws", w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"))])
        .unwrap();
    m.record([("aws", w("2026-12-06T09:00:00Z", "2026-12-06T09:01:00Z"))])
        .unwrap();
    let (m, _) = WindowMarks::open(dir.path(), "t");
    assert_eq!(m.get("aws").unwrap().end, at("2026-12-06T10:02:00Z"));
}

#[test]
fn a_damaged_file_is_reported_by_line_kept_aside_and_its_good_lines_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = WindowMarks::file_of(dir.path(), "t");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        concat!(
            "{\"collector\":\"aws\",\"start\":\"2026-12-06T10:00:00Z\",\"end\":\"2026-12-06T10:01:00Z\"}\n",
            "\u{0}\u{0}garbage\n",
            "{\"collector\":\"gcp\",\"start\":\"2026-12-06T10:01:00Z\",\"end\":\"2026-12-06T10:00:00Z\"}\n",
        ),
    )
    .unwrap();
    let (mut m, problems) = WindowMarks::open(dir.path(), "t");
    let all = problems.join("\n");
    assert!(
        all.contains(&format!("{}:2: not a window mark", file.display())),
        "{all}"
    );
    assert!(all.contains(":3: the window mark of `gcp` ends"), "{all}");
    assert!(all.contains("kept as"), "{all}");
    // The readable line is not lost; the damaged ones start afresh.
    assert_eq!(
        m.get("aws"),
        Some(w("2026-12-06T10:00:00Z", "2026-12-06T10:01:00Z"))
    );
    assert_eq!(m.get("gcp"), None);
    let aside: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The next save writes a clean file that reopens without problems.
    m.record([("gcp", w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"))])
        .unwrap();
    let (m, problems) = WindowMarks::open(dir.path(), "t");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(m.get("aws").unwrap().end, at("2026-12-06T10:01:00Z"));
    assert_eq!(m.get("gcp").unwrap().end, at("2026-12-06T10:02:00Z"));
}

#[test]
fn an_unreadable_file_is_a_clear_problem_and_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = WindowMarks::file_of(dir.path(), "t");
    // A directory where the file should be: reading it fails.
    std::fs::create_dir_all(&file).unwrap();
    let (m, problems) = WindowMarks::open(dir.path(), "t");
    assert_eq!(m.get("aws"), None);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("cannot read the window marks"),
        "{problems:?}"
    );
    assert!(
        problems[0].contains(&file.display().to_string()),
        "{problems:?}"
    );
}

#[test]
fn a_first_start_plans_nothing() {
    let p = plan(
        &every(60),
        at("2026-12-06T10:00:00Z"),
        &[
            state("aws", true, 86400, None),
            state("host", false, 86400, None),
        ],
    );
    assert_eq!(p, StartPlan::default());
}

#[test]
fn downtime_is_filled_oldest_first_for_history_readers_and_reported_for_the_others() {
    // Last completed window ended 10:02; the first live window starts at 10:05.
    let mark = Some(w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"));
    let p = plan(
        &every(60),
        at("2026-12-06T10:05:00Z"),
        &[
            state("aws", true, 86400, mark),
            state("host", false, 86400, mark),
        ],
    );
    let windows: Vec<(Window, Vec<usize>)> = vec![
        (w("2026-12-06T10:02:00Z", "2026-12-06T10:03:00Z"), vec![0]),
        (w("2026-12-06T10:03:00Z", "2026-12-06T10:04:00Z"), vec![0]),
        (w("2026-12-06T10:04:00Z", "2026-12-06T10:05:00Z"), vec![0]),
    ];
    assert_eq!(p.catch_up, windows);
    assert_eq!(p.gaps.len(), 1);
    let g = &p.gaps[0];
    assert_eq!(
        (g.collector, g.from, g.to),
        (1, at("2026-12-06T10:02:00Z"), at("2026-12-06T10:05:00Z"))
    );
    assert!(
        g.message
            .contains("[2026-12-06T10:02:00Z, 2026-12-06T10:05:00Z)"),
        "{}",
        g.message
    );
    assert!(
        g.message
            .contains("`host` collector reads only the present"),
        "{}",
        g.message
    );
}

#[test]
fn a_restart_within_a_period_or_a_clock_gone_back_plans_nothing() {
    // Restart mid-window: the last window [10:00, 10:01) completed; now is 10:01:30, so the
    // first live window is [10:00, 10:01) again: already done, not a gap.
    let mark = Some(w("2026-12-06T10:00:00Z", "2026-12-06T10:01:00Z"));
    let p = plan(
        &every(60),
        at("2026-12-06T10:00:00Z"),
        &[
            state("aws", true, 86400, mark),
            state("host", false, 86400, mark),
        ],
    );
    assert_eq!(p, StartPlan::default());
    // The clock went back an hour: nothing to fill, nothing missing.
    let p = plan(
        &every(60),
        at("2026-12-06T09:00:00Z"),
        &[
            state("aws", true, 86400, mark),
            state("host", false, 86400, mark),
        ],
    );
    assert_eq!(p, StartPlan::default());
}

#[test]
fn catch_up_is_limited_and_the_rest_is_a_gap() {
    let mark = Some(w("2026-12-06T06:59:00Z", "2026-12-06T07:00:00Z"));
    // Down three hours, catch_up one hour: 60 windows filled, two hours reported.
    let p = plan(
        &every(60),
        at("2026-12-06T10:00:00Z"),
        &[state("aws", true, 3600, mark)],
    );
    assert_eq!(p.catch_up.len(), 60);
    assert_eq!(p.catch_up[0].0.start, at("2026-12-06T09:00:00Z"));
    assert_eq!(p.catch_up[59].0.end, at("2026-12-06T10:00:00Z"));
    for pair in p.catch_up.windows(2) {
        assert_eq!(pair[0].0.end, pair[1].0.start);
    }
    assert_eq!(p.gaps.len(), 1);
    assert_eq!(
        (p.gaps[0].from, p.gaps[0].to),
        (at("2026-12-06T07:00:00Z"), at("2026-12-06T09:00:00Z"))
    );
    assert!(
        p.gaps[0].message.contains("longer than `catch_up` (1h)"),
        "{}",
        p.gaps[0].message
    );
    // A limit that is not a multiple of the period starts at the next boundary.
    let p = plan(
        &every(60),
        at("2026-12-06T10:00:00Z"),
        &[state("aws", true, 90, mark)],
    );
    assert_eq!(p.catch_up.len(), 1);
    assert_eq!(
        p.catch_up[0].0,
        w("2026-12-06T09:59:00Z", "2026-12-06T10:00:00Z")
    );
    assert_eq!(p.gaps[0].to, at("2026-12-06T09:59:00Z"));
    // catch_up = 0 turns it off: all of it is a gap.
    let p = plan(
        &every(60),
        at("2026-12-06T10:00:00Z"),
        &[state("aws", true, 0, mark)],
    );
    assert!(p.catch_up.is_empty());
    assert!(
        p.gaps[0].message.contains("catch-up is off"),
        "{}",
        p.gaps[0].message
    );
}

#[test]
fn collectors_with_different_marks_share_the_windows_they_both_missed() {
    let p = plan(
        &every(60),
        at("2026-12-06T10:03:00Z"),
        &[
            state(
                "a",
                true,
                86400,
                Some(w("2026-12-06T10:00:00Z", "2026-12-06T10:01:00Z")),
            ),
            state(
                "b",
                true,
                86400,
                Some(w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z")),
            ),
        ],
    );
    assert_eq!(
        p.catch_up,
        vec![
            (w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"), vec![0]),
            (
                w("2026-12-06T10:02:00Z", "2026-12-06T10:03:00Z"),
                vec![0, 1]
            ),
        ]
    );
}

#[test]
fn a_long_gap_of_a_short_period_is_filled_in_at_most_the_run_limit() {
    let s = Schedule::Every(Duration::from_secs(1));
    let from = at("2026-12-05T10:00:00Z");
    let to = at("2026-12-06T10:00:00Z");
    let ws = windows_between(&s, from, to);
    assert!(ws.len() <= MAX_CATCH_UP_RUNS, "{}", ws.len());
    assert_eq!(ws.first().unwrap().start, from);
    assert_eq!(ws.last().unwrap().end, to);
    for pair in ws.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "no gap, no overlap");
    }
    for x in &ws {
        assert_eq!(x.end.timestamp_subsec_millis(), 0, "on a boundary");
    }
    // A window that starts off the schedule (its period changed) ends at the next boundary.
    let ws = windows_between(
        &every(60),
        at("2026-12-06T10:00:30Z"),
        at("2026-12-06T10:02:00Z"),
    );
    assert_eq!(
        ws,
        vec![
            w("2026-12-06T10:00:30Z", "2026-12-06T10:01:00Z"),
            w("2026-12-06T10:01:00Z", "2026-12-06T10:02:00Z"),
        ]
    );
}
