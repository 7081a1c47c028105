use super::*;
use crate::config::{ProcessorEntry, PublisherEntry};
use crate::schedule::Schedule;
use skymeter_model::{Point, ResourceRef, Stat, Unit};
use skymeter_plugin_api::{async_trait, Collector, MetricSelection, Processor, Publisher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Fixed(f64);
#[async_trait]
impl Collector for Fixed {
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        out.points.push(Point {
            metric: "x.value".into(),
            unit: Unit::Count,
            stat: Stat::Last,
            period_s: 0,
            ts: req.window.end,
            value: self.0,
            resource: ResourceRef {
                provider: "custom".into(),
                account: Default::default(),
                region: Default::default(),
                id: "r".into(),
            }
            .into(),
            labels: Default::default(),
        });
        Ok(())
    }
}

struct Failing;
#[async_trait]
impl Collector for Failing {
    async fn collect(&mut self, _: &CollectRequest, _: &mut Output) -> Result<(), PluginError> {
        Err(PluginError::new(ErrorKind::Auth, "bad token; set TOKEN")
            .with("url", "http://127.0.0.1:1"))
    }
}

struct Slow;
#[async_trait]
impl Collector for Slow {
    async fn collect(&mut self, _: &CollectRequest, _: &mut Output) -> Result<(), PluginError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Batch>>>, Arc<Mutex<u32>>);
#[async_trait]
impl Publisher for Capture {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        self.0.lock().unwrap().push(batch.clone());
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), PluginError> {
        *self.1.lock().unwrap() += 1;
        Ok(())
    }
}

/// Holds every point back until flush, like an aggregation window that never closed.
struct HoldBack(Vec<skymeter_model::Point>);
impl Processor for HoldBack {
    fn process(&mut self, batch: &mut Batch) {
        self.0.append(&mut batch.points);
    }
    fn flush(&mut self, batch: &mut Batch) {
        batch.points.append(&mut self.0);
    }
}

/// Doubles every value it sees.
struct Double;
impl Processor for Double {
    fn process(&mut self, batch: &mut Batch) {
        batch.points.iter_mut().for_each(|p| p.value *= 2.0);
    }
}

fn entry(name: &str, c: Box<dyn Collector>, timeout_ms: u64) -> CollectorEntry {
    CollectorEntry {
        name: name.into(),
        plugin: "test",
        timeout: Duration::from_millis(timeout_ms),
        catch_up: Duration::from_secs(3600),
        collector: c,
    }
}

fn task(collectors: Vec<CollectorEntry>, cap: &Capture, every_ms: u64) -> Task {
    Task {
        name: "t".into(),
        schedule: Schedule::Every(Duration::from_millis(every_ms)),
        warm_up_timeout: Duration::from_secs(60),
        marks_dir: None,
        start: None,
        stop: None,
        metrics: MetricSelection::all(),
        collectors,
        processors: Vec::new(),
        publishers: vec![PublisherEntry {
            name: "capture".into(),
            publisher: Box::new(cap.clone()),
        }],
        branches: Vec::new(),
        max_runs: None,
        max_failures: None,
        observer: None,
    }
}

#[tokio::test]
async fn a_failing_or_slow_collector_is_reported_and_the_others_go_on() {
    let cap = Capture::default();
    let t = task(
        vec![
            entry("good", Box::new(Fixed(5.0)), 1000),
            entry("bad", Box::new(Failing), 1000),
            entry("slow", Box::new(Slow), 100),
        ],
        &cap,
        1000,
    );
    let started = Instant::now();
    let summary = Runner {
        agent_id: "a".into(),
        tasks: vec![t],
    }
    .run_once()
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the slow collector was cut at its timeout"
    );
    let batches = cap.0.lock().unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.points.len(), 1);
    assert_eq!(b.points[0].value, 5.0);
    let errs: Vec<(&str, &str)> = b
        .errors
        .iter()
        .map(|e| (e.plugin.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0], ("bad", "bad token; set TOKEN"));
    assert_eq!(b.errors[0].context["url"], "http://127.0.0.1:1");
    assert_eq!(errs[1].0, "slow");
    assert!(
        errs[1].1.starts_with("collection timed out after 100ms"),
        "{errs:?}"
    );
    assert_eq!(summary.runs[0].failed_collectors, 2);
    assert!(summary.has_failures());
    assert_eq!(*cap.1.lock().unwrap(), 1, "publishers flushed once");
    b.validate().unwrap();
}

#[tokio::test]
async fn scheduled_runs_cover_adjacent_windows_and_shutdown_flushes() {
    let cap = Capture::default();
    let mut t = task(vec![entry("good", Box::new(Fixed(1.0)), 1000)], &cap, 200);
    t.processors = vec![
        ProcessorEntry {
            name: "hold".into(),
            processor: Box::new(HoldBack(Vec::new())),
        },
        ProcessorEntry {
            name: "double".into(),
            processor: Box::new(Double),
        },
    ];
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(
        Runner {
            agent_id: "a".into(),
            tasks: vec![t],
        }
        .run(rx),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops promptly")
        .unwrap();
    assert!(summary.runs.len() >= 4, "{} runs", summary.runs.len());
    let batches = cap.0.lock().unwrap();
    let windows: Vec<Window> = batches.iter().filter_map(|b| b.window).collect();
    assert_eq!(windows.len(), summary.runs.len());
    for w in windows.windows(2) {
        assert_eq!(w[0].end, w[1].start, "no gap, no overlap");
    }
    for w in &windows {
        assert_eq!(
            w.end.timestamp_subsec_millis() % 200,
            0,
            "aligned to the period"
        );
    }
    // Every held-back point comes out at shutdown, through the processors after `hold`.
    let last = batches.last().unwrap();
    assert_eq!(last.points.len(), summary.runs.len());
    assert!(last.points.iter().all(|p| p.value == 2.0));
    assert_eq!(*cap.1.lock().unwrap(), 1);
}

#[tokio::test]
async fn non_finite_values_are_dropped_with_an_error() {
    let cap = Capture::default();
    let t = task(
        vec![entry("nan", Box::new(Fixed(f64::NAN)), 1000)],
        &cap,
        1000,
    );
    Runner {
        agent_id: "a".into(),
        tasks: vec![t],
    }
    .run_once()
    .await;
    let b = &cap.0.lock().unwrap()[0];
    assert!(b.points.is_empty());
    assert!(
        b.errors[0].message.contains("1 values that are not finite"),
        "{:?}",
        b.errors
    );
}

/// Warms up for longer than the collection timeout, like the host collector's first sample
/// on a 1 s schedule; its collections are quick.
struct SlowWarmUp {
    warmed: bool,
}
#[async_trait]
impl Collector for SlowWarmUp {
    async fn warm_up(&mut self, _: &MetricSelection) -> Result<(), PluginError> {
        tokio::time::sleep(Duration::from_millis(600)).await;
        self.warmed = true;
        Ok(())
    }
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        assert!(self.warmed, "collect after warm-up");
        Fixed(1.0).collect(req, out).await
    }
}

#[tokio::test]
async fn a_warm_up_longer_than_the_timeout_does_not_time_out_the_first_run() {
    let cap = Capture::default();
    let t = task(
        vec![entry("warm", Box::new(SlowWarmUp { warmed: false }), 200)],
        &cap,
        200,
    );
    let summary = run_for(t, 1300).await;
    assert!(summary.runs.len() >= 2, "{} runs", summary.runs.len());
    let batches = cap.0.lock().unwrap();
    assert_eq!(batches[0].points.len(), 1, "the first run has its point");
    for b in batches.iter() {
        assert!(b.errors.is_empty(), "{:?}", b.errors);
    }
}

#[tokio::test]
async fn a_warm_up_over_its_own_bound_is_reported_and_collection_goes_on() {
    let cap = Capture::default();
    let mut t = task(
        vec![entry("warm", Box::new(SlowWarmUp { warmed: true }), 1000)],
        &cap,
        1000,
    );
    t.warm_up_timeout = Duration::from_millis(100);
    Runner {
        agent_id: "a".into(),
        tasks: vec![t],
    }
    .run_once()
    .await;
    let b = &cap.0.lock().unwrap()[0];
    assert_eq!(b.points.len(), 1);
    assert_eq!(b.errors.len(), 1);
    assert_eq!(b.errors[0].plugin, "warm");
    assert!(
        b.errors[0]
            .message
            .starts_with("warm-up took longer than `warm_up_timeout` (100ms)"),
        "{:?}",
        b.errors
    );
}

/// A collector whose source keeps history.
struct History;
#[async_trait]
impl Collector for History {
    fn reads_history(&self) -> bool {
        true
    }
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        Fixed(1.0).collect(req, out).await
    }
}

async fn run_for(t: Task, ms: u64) -> RunSummary {
    run_while(t, Duration::from_millis(ms), || true).await
}

/// Runs `t` while `go_on()` holds, at most `within`.
async fn run_while(t: Task, within: Duration, go_on: impl Fn() -> bool) -> RunSummary {
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(
        Runner {
            agent_id: "a".into(),
            tasks: vec![t],
        }
        .run(rx),
    );
    let deadline = tokio::time::Instant::now() + within;
    while go_on() && tokio::time::Instant::now() < deadline {
        let left = deadline - tokio::time::Instant::now();
        tokio::time::sleep(left.min(Duration::from_millis(20))).await;
    }
    tx.send(true).unwrap();
    handle.await.unwrap()
}

#[tokio::test]
async fn a_restart_fills_the_missed_windows_once_and_reports_the_unfillable_gap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = Capture::default();
    let make = |cap: &Capture| {
        let mut t = task(
            vec![
                entry("history", Box::new(History), 1000),
                entry("present", Box::new(Fixed(2.0)), 1000),
            ],
            cap,
            200,
        );
        t.marks_dir = Some(dir.path().to_path_buf());
        t
    };
    let first = run_for(make(&cap), 700).await;
    assert!(first.runs.iter().all(|r| !r.catch_up));
    let first_batches = cap.0.lock().unwrap().len();
    // Down for at least three periods.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let second = run_for(make(&cap), 700).await;
    let caught_up = second.runs.iter().filter(|r| r.catch_up).count();
    assert!(
        caught_up >= 3,
        "{caught_up} catch-up runs: {:?}",
        second.runs
    );
    assert!(
        second.runs[..caught_up].iter().all(|r| r.catch_up),
        "catch-up first"
    );

    let batches = cap.0.lock().unwrap();
    // Every window of `history`, over both runs: adjacent, none twice, none missing.
    let history: Vec<Window> = batches
        .iter()
        .filter(|b| b.points.iter().any(|p| p.value == 1.0))
        .map(|b| b.window.unwrap())
        .collect();
    assert!(history.len() >= 6, "{history:?}");
    for pair in history.windows(2) {
        assert_eq!(
            pair[0].end, pair[1].start,
            "no gap, no overlap, in order: {history:?}"
        );
    }
    // `present` cannot fill the gap: one error, in the first batch after the restart.
    let gap_errors: Vec<_> = batches
        .iter()
        .flat_map(|b| b.errors.iter())
        .filter(|e| e.plugin == "present")
        .collect();
    assert_eq!(gap_errors.len(), 1, "{gap_errors:?}");
    assert!(batches[first_batches]
        .errors
        .iter()
        .any(|e| e.plugin == "present"));
    let e = gap_errors[0];
    assert!(
        e.message.contains("reads only the present"),
        "{}",
        e.message
    );
    let from: chrono::DateTime<Utc> = e.context["gap_from"].parse().unwrap();
    let to: chrono::DateTime<Utc> = e.context["gap_to"].parse().unwrap();
    assert!((to - from).num_milliseconds() >= 600, "{from} .. {to}");
    // `present` has no point inside the gap, and none twice.
    let mut present: Vec<_> = batches
        .iter()
        .flat_map(|b| b.points.iter().filter(|p| p.value == 2.0).map(|p| p.ts))
        .collect();
    let n = present.len();
    present.dedup();
    assert_eq!(present.len(), n);
    assert!(present.iter().all(|ts| *ts <= from || *ts > to));
}

#[tokio::test]
async fn without_marks_nothing_is_caught_up() {
    let cap = Capture::default();
    let t = task(vec![entry("history", Box::new(History), 1000)], &cap, 200);
    let s = run_for(t, 500).await;
    assert!(s.runs.iter().all(|r| !r.catch_up));
}

#[tokio::test]
async fn windows_up_to_a_mark_ahead_of_the_clock_are_not_collected_again() {
    // The last run (before a restart, with a clock since set back) completed windows up to
    // `ahead`, which is still in the future now.
    let dir = tempfile::tempdir().unwrap();
    let ahead = crate::schedule::floor(Utc::now(), Duration::from_millis(200))
        + chrono::Duration::milliseconds(800);
    let (mut marks, _) = crate::windows::WindowMarks::open(dir.path(), "t");
    marks
        .record([(
            "history",
            Window {
                start: ahead - chrono::Duration::milliseconds(200),
                end: ahead,
            },
        )])
        .unwrap();
    let cap = Capture::default();
    let mut t = task(
        vec![
            entry("history", Box::new(History), 1000),
            entry("present", Box::new(Fixed(2.0)), 1000),
        ],
        &cap,
        200,
    );
    t.marks_dir = Some(dir.path().to_path_buf());
    let s = run_for(t, 1700).await;
    assert!(s.runs.iter().all(|r| !r.catch_up));
    let batches = cap.0.lock().unwrap();
    let history: Vec<_> = batches
        .iter()
        .flat_map(|b| b.points.iter().filter(|p| p.value == 1.0).map(|p| p.ts))
        .collect();
    assert!(!history.is_empty(), "collection resumes after the mark");
    assert!(
        history.iter().all(|ts| *ts > ahead),
        "{history:?} vs {ahead}"
    );
    // The collector without a mark is not held back.
    let present = batches
        .iter()
        .flat_map(|b| b.points.iter().filter(|p| p.value == 2.0))
        .filter(|p| p.ts <= ahead)
        .count();
    assert!(present >= 2, "{present}");
    assert!(batches.iter().all(|b| b.errors.is_empty()));
}

/// Panics on its first collection, then works: a bug in one run of a plugin.
struct PanicsOnce {
    runs: usize,
}
#[async_trait]
impl Collector for PanicsOnce {
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        self.runs += 1;
        if self.runs == 1 {
            panic!("index out of bounds in a plugin");
        }
        Fixed(1.0).collect(req, out).await
    }
}

#[tokio::test]
async fn a_collector_that_panics_fails_that_run_only_and_the_task_goes_on() {
    let cap = Capture::default();
    let t = task(
        vec![
            entry("buggy", Box::new(PanicsOnce { runs: 0 }), 1000),
            entry("fine", Box::new(Fixed(2.0)), 1000),
        ],
        &cap,
        200,
    );
    // A panic that ended the task loop would leave no run after the first.
    // (Until the second batch: a loaded machine printing the panic's backtrace can take far
    // longer than the task's interval per run.)
    let summary = run_while(t, Duration::from_secs(20), || {
        cap.0.lock().unwrap().len() < 2
    })
    .await;
    assert!(summary.runs.len() >= 2, "{} runs", summary.runs.len());
    let batches = cap.0.lock().unwrap();
    // The first batch: the other collector's point, and the panic as an error.
    assert_eq!(batches[0].points.len(), 1);
    assert_eq!(batches[0].errors.len(), 1, "{:?}", batches[0].errors);
    assert_eq!(batches[0].errors[0].plugin, "buggy");
    assert!(
        batches[0].errors[0]
            .message
            .contains("panicked while collecting (index out of bounds in a plugin)"),
        "{:?}",
        batches[0].errors
    );
    // Later runs: both collectors' points, no error.
    assert_eq!(batches[1].points.len(), 2, "{:?}", batches[1]);
    assert!(batches[1].errors.is_empty());
}
