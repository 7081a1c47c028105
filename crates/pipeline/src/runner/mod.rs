//! Drives tasks: waits for each window, runs the collectors concurrently under their
//! timeouts, turns what they return into one batch (failures included, as `errors`), runs
//! the processors, hands the batch to every publisher, and keeps the self-metrics.
//!
//! Shutdown (SIGINT/SIGTERM, or the `shutdown` future) is noticed between runs: a run in
//! flight finishes and is published, then every processor and publisher is flushed.
//!
//! Before a task's first run, each collector warms up (`Collector::warm_up`) under the
//! task's `warm_up_timeout`, apart from the collection `timeout`: a first sample for rates,
//! client construction or a credential lookup never times out the first collection. Then
//! the task reads its window marks (see [`crate::windows`]) and fills the windows the agent
//! missed while it was down, oldest first, before its live schedule resumes.

use crate::clock::{Clock, TEST_CLOCK_ENV};
use crate::config::{CollectorEntry, Task};
pub use crate::outcome::{RunObserver, TaskEnd, TaskRunResult};
use crate::windows::{self, CollectorState, WindowMarks};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::FutureExt;
use skymeter_model::{Batch, CollectError, Window};
use skymeter_plugin_api::selfstats::SelfStats;
use skymeter_plugin_api::{CollectRequest, ErrorKind, Output, PluginError};
use std::time::Instant;
use tokio::sync::watch;

/// Totals over a whole `run`.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub runs: Vec<TaskRunResult>,
}

impl RunSummary {
    /// Whether anything failed outright (a collector produced nothing, or a publisher
    /// could not deliver): what `run --once` turns into exit status 1.
    pub fn has_failures(&self) -> bool {
        self.runs
            .iter()
            .any(|r| r.failed_collectors > 0 || r.failed_publishers > 0)
    }
}

/// Runs a set of tasks until they end or shutdown is asked.
pub struct Runner {
    pub agent_id: String,
    pub tasks: Vec<Task>,
}

impl Runner {
    /// Runs every task once, concurrently, over the window of the last complete period
    /// (after each collector's warm-up). Window marks are neither read nor written.
    pub async fn run_once(self) -> RunSummary {
        let clock = runner_clock();
        let agent_id = self.agent_id;
        let runs = join_all(self.tasks.into_iter().map(|mut task| {
            let agent_id = agent_id.clone();
            async move {
                let warm_up_errors = warm_up(&mut task).await;
                let (start, end) = task.schedule.first_window(clock.now());
                let window = Window { start, end };
                let parts = vec![Some(window); task.collectors.len()];
                let result = run_window(&agent_id, &mut task, window, &parts, warm_up_errors).await;
                flush_task(&agent_id, &mut task).await;
                result
            }
        }))
        .await;
        RunSummary { runs }
    }

    /// Runs every task on its schedule until `shutdown` turns true (or every task's `stop`
    /// has passed), then flushes. Each task first warms its collectors up, then fills the
    /// windows it missed while the agent was down (see [`crate::windows`]).
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> RunSummary {
        let agent_id = self.agent_id;
        let handles: Vec<_> = self
            .tasks
            .into_iter()
            .map(|task| {
                let agent_id = agent_id.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(task_loop(agent_id, task, shutdown))
            })
            .collect();
        let mut summary = RunSummary::default();
        for h in handles {
            match h.await {
                Ok(mut runs) => summary.runs.append(&mut runs),
                Err(e) => tracing::error!("a task loop panicked: {e}"),
            }
        }
        summary
    }
}

/// The clock of every task loop: the system clock unless the test-only
/// `SKYMETER_TEST_CLOCK` is set (see [`crate::clock`]).
fn runner_clock() -> Clock {
    static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    *CLOCK.get_or_init(|| match Clock::from_env() {
        Ok(c) => {
            if c.is_test_clock() {
                tracing::warn!(
                    "{TEST_CLOCK_ENV} is set: the runner's clock is a test clock (now {}); \
                     unset it outside tests",
                    c.now()
                );
            }
            c
        }
        Err(e) => {
            tracing::error!("{e}; using the system clock");
            Clock::system()
        }
    })
}

/// A record for the batch's `errors` that comes from the runner itself.
fn runner_error(plugin: &str, message: String, context: &[(&str, String)]) -> CollectError {
    let mut e = PluginError::new(ErrorKind::Other, message);
    for (k, v) in context {
        e = e.with(k, v.clone());
    }
    e.into_record(plugin, Utc::now())
}

async fn task_loop(
    agent_id: String,
    task: Task,
    shutdown: watch::Receiver<bool>,
) -> Vec<TaskRunResult> {
    run_task(agent_id, task, shutdown).await.0
}

/// Runs one task on its schedule until `shutdown` turns true, its schedule or `count` ends,
/// or `max_failures` runs in a row failed; flushes it and says why it ended.
pub async fn run_task(
    agent_id: String,
    mut task: Task,
    mut shutdown: watch::Receiver<bool>,
) -> (Vec<TaskRunResult>, TaskEnd) {
    let clock = runner_clock();
    let mut results = Vec::new();
    let mut end = TaskEnd::Stopped;
    let mut failures_in_a_row = 0u32;
    // After each run: whether the task must end now (count, max failures).
    let mut over = |task: &Task, results: &[TaskRunResult], end: &mut TaskEnd| -> bool {
        let last = results.last().expect("called after a run");
        if last.failed_collectors > 0 || last.failed_publishers > 0 {
            failures_in_a_row += 1;
        } else {
            failures_in_a_row = 0;
        }
        if task.max_failures.is_some_and(|m| failures_in_a_row >= m) {
            tracing::error!(task = %task.name, "{failures_in_a_row} runs in a row failed (max_failures); the task is disabled until enabled again");
            *end = TaskEnd::Disabled;
            return true;
        }
        if task.max_runs.is_some_and(|m| results.len() as u64 >= m) {
            tracing::info!(task = %task.name, "ran its {} runs (count); done", results.len());
            *end = TaskEnd::CountReached;
            return true;
        }
        false
    };
    // Before `start`, wait for it.
    if let Some(start) = task.start {
        if let Ok(wait) = (start - clock.now()).to_std() {
            tracing::info!(task = %task.name, "waiting for the schedule's start at {start}");
            if sleep_or_shutdown(clock.real_wait(wait), &mut shutdown).await {
                flush_task(&agent_id, &mut task).await;
                return (results, end);
            }
        }
    }
    // Errors for the first batch: warm-up failures, damaged marks, unfilled gaps.
    let mut pending = warm_up(&mut task).await;
    let (mut marks, problems) = match &task.marks_dir {
        Some(dir) => WindowMarks::open(dir, &task.name),
        None => (WindowMarks::in_memory(), Vec::new()),
    };
    for p in problems {
        tracing::error!(task = %task.name, "{p}");
        pending.push(runner_error("agent", p, &[]));
    }
    let (live_start, _) = task.schedule.first_window(clock.now());
    let states: Vec<CollectorState<'_>> = task
        .collectors
        .iter()
        .map(|c| CollectorState {
            name: &c.name,
            plugin: c.plugin,
            reads_history: c.collector.reads_history(),
            catch_up: c.catch_up,
            mark: marks.get(&c.name),
        })
        .collect();
    let start_plan = windows::plan(&task.schedule, live_start, &states);
    // Per collector: the end of the time it has covered; nothing before it is collected
    // again (a restart within a period, or a clock that went backwards).
    let mut done_until: Vec<Option<DateTime<Utc>>> =
        states.iter().map(|s| s.mark.map(|m| m.end)).collect();
    drop(states);
    for gap in &start_plan.gaps {
        let name = task.collectors[gap.collector].name.clone();
        tracing::warn!(task = %task.name, collector = %name, "{}", gap.message);
        pending.push(runner_error(
            &name,
            gap.message.clone(),
            &[
                ("gap_from", gap.from.to_rfc3339()),
                ("gap_to", gap.to.to_rfc3339()),
            ],
        ));
    }
    if !start_plan.catch_up.is_empty() {
        let first = start_plan.catch_up[0].0.start;
        tracing::info!(
            task = %task.name,
            windows = start_plan.catch_up.len(),
            "catching up on the windows missed since {first}, oldest first"
        );
    }
    let mut save_failed = false;
    for (window, who) in start_plan.catch_up {
        if *shutdown.borrow() {
            // The marks saved so far tell the next start where to go on.
            break;
        }
        let parts: Vec<Option<Window>> = (0..task.collectors.len())
            .map(|i| who.contains(&i).then_some(window))
            .collect();
        let extra = std::mem::take(&mut pending);
        let mut result = run_window(&agent_id, &mut task, window, &parts, extra).await;
        result.catch_up = true;
        results.push(result);
        record_marks(
            &task,
            &mut marks,
            &parts,
            &mut done_until,
            &mut save_failed,
            &mut pending,
        );
        if over(&task, &results, &mut end) {
            flush_task(&agent_id, &mut task).await;
            return (results, end);
        }
    }

    let mut prev_end = live_start;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = clock.now();
        if task.stop.is_some_and(|stop| now >= stop) {
            tracing::info!(task = %task.name, "schedule stop reached");
            end = TaskEnd::ScheduleEnded;
            break;
        }
        let window = Window {
            start: prev_end,
            end: task.schedule.boundary_at_or_before(now).max(prev_end),
        };
        if window.end > window.start {
            let parts: Vec<Option<Window>> = done_until
                .iter()
                .map(|done| match done {
                    Some(d) if *d >= window.end => None,
                    Some(d) => Some(Window {
                        start: window.start.max(*d),
                        end: window.end,
                    }),
                    None => Some(window),
                })
                .collect();
            if parts.iter().any(Option::is_some) {
                let extra = std::mem::take(&mut pending);
                results.push(run_window(&agent_id, &mut task, window, &parts, extra).await);
                record_marks(
                    &task,
                    &mut marks,
                    &parts,
                    &mut done_until,
                    &mut save_failed,
                    &mut pending,
                );
                if over(&task, &results, &mut end) {
                    break;
                }
            } else {
                tracing::info!(
                    task = %task.name,
                    "window [{}, {}) was already collected before this start (a restart within the period, or a clock that went back); skipped",
                    window.start,
                    window.end
                );
            }
            prev_end = window.end;
        }
        let now = clock.now();
        let next = task.schedule.next_after(now);
        let wait = (next - now).to_std().unwrap_or_default();
        if sleep_or_shutdown(clock.real_wait(wait), &mut shutdown).await {
            break;
        }
    }
    flush_task(&agent_id, &mut task).await;
    (results, end)
}

/// After a run: the collectors that ran completed their windows; keep that durably.
fn record_marks(
    task: &Task,
    marks: &mut WindowMarks,
    parts: &[Option<Window>],
    done_until: &mut [Option<DateTime<Utc>>],
    save_failed: &mut bool,
    pending: &mut Vec<CollectError>,
) {
    let done: Vec<(&str, Window)> = task
        .collectors
        .iter()
        .zip(parts)
        .filter_map(|(c, p)| p.map(|w| (c.name.as_str(), w)))
        .collect();
    for (slot, p) in done_until.iter_mut().zip(parts) {
        if let Some(w) = p {
            *slot = Some(slot.map_or(w.end, |d| d.max(w.end)));
        }
    }
    if let Err(e) = marks.record(done) {
        let file = task
            .marks_dir
            .as_ref()
            .map(|d| WindowMarks::file_of(d, &task.name).display().to_string())
            .unwrap_or_default();
        let msg = format!(
            "cannot save the window marks to {file} ({e}); a restart will not know which \
             windows were collected. Make the data dir writable"
        );
        tracing::error!(task = %task.name, "{msg}");
        // Once in a batch, not on every run.
        if !*save_failed {
            pending.push(runner_error("agent", msg, &[]));
        }
        *save_failed = true;
    } else {
        *save_failed = false;
    }
}

/// Runs every collector's warm-up concurrently, each bounded by the task's
/// `warm_up_timeout`; returns what failed, for the first batch.
async fn warm_up(task: &mut Task) -> Vec<CollectError> {
    let bound = task.warm_up_timeout;
    let metrics = task.metrics.clone();
    let task_name = task.name.clone();
    let outcomes = join_all(task.collectors.iter_mut().map(|c| {
        let metrics = &metrics;
        async move {
            let started = Instant::now();
            let r = tokio::time::timeout(bound, c.collector.warm_up(metrics)).await;
            (c.name.clone(), started.elapsed(), r)
        }
    }))
    .await;
    let mut errors = Vec::new();
    for (name, took, r) in outcomes {
        let err = match r {
            Ok(Ok(())) => {
                tracing::debug!(task = %task_name, collector = %name, "warmed up in {took:?}");
                continue;
            }
            Ok(Err(e)) => PluginError {
                message: format!(
                    "warm-up failed: {}; the first collection goes on without it",
                    e.message
                ),
                ..e
            },
            Err(_) => PluginError::new(
                ErrorKind::Timeout,
                format!(
                    "warm-up took longer than `warm_up_timeout` ({}); the first collection goes \
                     on without it. Raise `warm_up_timeout` on the task",
                    humantime::format_duration(bound)
                ),
            ),
        };
        tracing::warn!(task = %task_name, collector = %name, "{err}");
        errors.push(err.into_record(&name, Utc::now()));
    }
    errors
}

/// Sleeps; returns true when shutdown was asked first.
async fn sleep_or_shutdown(
    wait: std::time::Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.wait_for(|v| *v) => true,
    }
}

/// One run of one task over `window`, every collector included: collect, process, publish.
pub async fn run_task_once(agent_id: &str, task: &mut Task, window: Window) -> TaskRunResult {
    let parts = vec![Some(window); task.collectors.len()];
    run_window(agent_id, task, window, &parts, Vec::new()).await
}

/// One run of one task over `window`: the collectors with `Some` in `parts` collect their
/// window (the task's, or the part of it not yet collected), the batch gets `extra_errors`
/// first, then processors and publishers run.
async fn run_window(
    agent_id: &str,
    task: &mut Task,
    window: Window,
    parts: &[Option<Window>],
    extra_errors: Vec<CollectError>,
) -> TaskRunResult {
    let started = Instant::now();
    let collected_at = Utc::now();
    let metrics = task.metrics.clone();
    let task_name = task.name.clone();
    let outputs = join_all(
        task.collectors
            .iter_mut()
            .zip(parts)
            .filter_map(|(c, part)| part.map(|w| (c, w)))
            .map(|(c, w)| {
                let req = CollectRequest {
                    window: w,
                    metrics: metrics.clone(),
                    task: task_name.clone(),
                };
                let task_name = &task_name;
                async move { collect_one(task_name, c, &req).await }
            }),
    )
    .await;

    let mut batch = Batch::new(agent_id, &task.name, collected_at);
    batch.window = Some(window);
    batch.errors = extra_errors;
    let mut result = TaskRunResult {
        task: task.name.clone(),
        window: Some(window),
        ..Default::default()
    };
    for (name, outcome) in outputs {
        match outcome {
            Ok(mut out) => {
                drop_non_finite(&name, &mut out);
                batch.resources.append(&mut out.resources);
                batch.points.append(&mut out.points);
                batch.costs.append(&mut out.costs);
                batch.errors.extend(
                    out.errors
                        .into_iter()
                        .map(|e| e.into_record(&name, collected_at)),
                );
            }
            Err(e) => {
                result.failed_collectors += 1;
                batch.errors.push(e.into_record(&name, collected_at));
            }
        }
    }
    if let Some(o) = &task.observer {
        o.collected(&batch);
    }
    // Each extra branch works on its own copy of what was collected.
    let mut branch_batches: Vec<Batch> = task.branches.iter().map(|_| batch.clone()).collect();
    process(&mut task.processors, &mut batch, collected_at);
    result.resources = batch.resources.len();
    result.points = batch.points.len();
    result.costs = batch.costs.len();
    result.collect_errors = batch.errors.len();
    for e in &batch.errors {
        tracing::warn!(task = %task.name, plugin = %e.plugin, "collection error: {}{}", e.message, fmt_context(&e.context));
    }
    result.failed_publishers = publish(&task.name, &mut task.publishers, &batch).await;
    for (branch, b) in task.branches.iter_mut().zip(&mut branch_batches) {
        process(&mut branch.processors, b, collected_at);
        result.failed_publishers += publish(&task.name, &mut branch.publishers, b).await;
    }
    tracing::info!(
        task = %task.name,
        window_start = %window.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        window_end = %window.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        resources = result.resources,
        points = result.points,
        costs = result.costs,
        errors = result.collect_errors,
        duration_ms = started.elapsed().as_millis() as u64,
        "run finished"
    );
    if let Some(o) = &task.observer {
        o.finished(&result);
    }
    result
}

/// Runs a batch through processors in order. A processor's panic (a bug) leaves the batch
/// as far as it got, says so in the batch, and the run goes on to publish.
fn process(
    processors: &mut [crate::config::ProcessorEntry],
    batch: &mut Batch,
    collected_at: DateTime<Utc>,
) {
    for p in processors {
        if let Err(panic) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.processor.process(batch)))
        {
            let e = panicked(&p.name, "processing", &*panic);
            batch.errors.push(e.into_record(&p.name, collected_at));
        }
    }
}

fn fmt_context(ctx: &skymeter_model::Labels) -> String {
    if ctx.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = ctx.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" ({})", parts.join(", "))
}

async fn collect_one(
    task: &str,
    c: &mut CollectorEntry,
    req: &CollectRequest,
) -> (String, Result<Output, PluginError>) {
    let started = Instant::now();
    let mut out = Output::default();
    // A panic in a plugin is a bug in it; it must not end the task (the spawned task loop
    // would stop collecting for good while the agent runs on). It becomes this run's
    // failure, reported in the batch, and the next run calls the collector again.
    let collect = std::panic::AssertUnwindSafe(c.collector.collect(req, &mut out)).catch_unwind();
    let res = match tokio::time::timeout(c.timeout, collect).await {
        Ok(Ok(Ok(()))) => Ok(out),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(panic)) => Err(panicked(&c.name, "collecting", &*panic)),
        Err(_) => Err(PluginError::new(
            ErrorKind::Timeout,
            format!(
                "collection timed out after {}; raise `timeout` on the task or the collect entry, or collect less",
                humantime::format_duration(c.timeout)
            ),
        )),
    };
    let secs = started.elapsed().as_secs_f64();
    SelfStats::global().record(task, &c.name, |k| {
        k.runs += 1;
        k.duration_last_s = secs;
        k.duration_total_s += secs;
        match &res {
            Ok(out) => {
                k.resources += out.resources.len() as u64;
                k.points += out.points.len() as u64;
                k.costs += out.costs.len() as u64;
                k.errors += out.errors.len() as u64;
            }
            Err(_) => k.errors += 1,
        }
    });
    (c.name.clone(), res)
}

/// The error that stands for a plugin's panic: its message, and that it is a bug.
fn panicked(plugin: &str, doing: &str, panic: &(dyn std::any::Any + Send)) -> PluginError {
    let what = skymeter_plugin_api::panic_message(panic);
    tracing::error!(plugin, "the plugin panicked while {doing}: {what}");
    PluginError::new(
        ErrorKind::Other,
        format!(
            "the plugin panicked while {doing} ({what}); this is a bug in the plugin, please \
             report it; the next run tries again"
        ),
    )
}

/// A point that is not a finite number cannot be stored or compared: drop it and say so.
fn drop_non_finite(plugin: &str, out: &mut Output) {
    let before = out.points.len();
    out.points.retain(|p| p.value.is_finite());
    let dropped = before - out.points.len();
    if dropped > 0 {
        out.errors.push(PluginError::new(
            ErrorKind::BadResponse,
            format!("{plugin} produced {dropped} values that are not finite numbers (NaN or infinite); they were dropped"),
        ));
    }
}

/// Hands the batch to every publisher concurrently; returns how many failed.
async fn publish(
    task: &str,
    publishers: &mut [crate::config::PublisherEntry],
    batch: &Batch,
) -> usize {
    let results = join_all(publishers.iter_mut().map(|p| async move {
        // As for collectors: a publisher's panic fails this batch's delivery there only.
        let r = match std::panic::AssertUnwindSafe(p.publisher.publish(batch))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(panic) => Err(panicked(&p.name, "publishing", &*panic)),
        };
        (p.name.clone(), r)
    }))
    .await;
    let mut failed = 0;
    for (name, r) in results {
        if let Err(e) = r {
            failed += 1;
            tracing::error!(task, publisher = %name, "could not publish batch {}: {e}", batch.batch_id);
            SelfStats::global().record(task, &name, |k| k.errors += 1);
        }
    }
    failed
}

/// At shutdown: lets processors emit what they hold, publishes that, flushes publishers;
/// for the task's own branch and every extra one.
async fn flush_task(agent_id: &str, task: &mut Task) {
    let name = task.name.clone();
    flush_branch(agent_id, &name, &mut task.processors, &mut task.publishers).await;
    for b in &mut task.branches {
        flush_branch(agent_id, &name, &mut b.processors, &mut b.publishers).await;
    }
}

async fn flush_branch(
    agent_id: &str,
    task: &str,
    processors: &mut [crate::config::ProcessorEntry],
    publishers: &mut [crate::config::PublisherEntry],
) {
    // What processor i holds back passes through processors i+1.. like any other record.
    let mut batch = Batch::new(agent_id, task, Utc::now());
    for p in processors.iter_mut() {
        p.processor.process(&mut batch);
        p.processor.flush(&mut batch);
    }
    if !batch.is_empty() {
        publish(task, publishers, &batch).await;
    }
    for p in publishers.iter_mut() {
        if let Err(e) = p.publisher.flush().await {
            tracing::error!(task, publisher = %p.name, "flush failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
