//! Drives tasks: waits for each window, runs the collectors concurrently under their
//! timeouts, turns what they return into one batch (failures included, as `errors`), runs
//! the processors, hands the batch to every publisher, and keeps the self-metrics.
//!
//! Shutdown (SIGINT/SIGTERM, or the `shutdown` future) is noticed between runs: a run in
//! flight finishes and is published, then every processor and publisher is flushed.

use crate::config::{CollectorEntry, Task};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use skymeter_model::{Batch, Window};
use skymeter_plugin::selfstats::SelfStats;
use skymeter_plugin::{CollectRequest, ErrorKind, Output, PluginError};
use std::time::Instant;
use tokio::sync::watch;

/// What one run of a task did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRunResult {
    pub task: String,
    pub resources: usize,
    pub points: usize,
    pub costs: usize,
    /// Errors carried in the batch (collector failures, partial or whole).
    pub collect_errors: usize,
    /// Collectors that returned nothing at all (failed or timed out).
    pub failed_collectors: usize,
    /// Publishers that could not deliver the batch.
    pub failed_publishers: usize,
}

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
    /// Runs every task once, concurrently, over the window of the last complete period.
    pub async fn run_once(self) -> RunSummary {
        let now = Utc::now();
        let agent_id = self.agent_id;
        let runs = join_all(self.tasks.into_iter().map(|mut task| {
            let agent_id = agent_id.clone();
            async move {
                let (start, end) = task.schedule.first_window(now);
                let result = run_task_once(&agent_id, &mut task, Window { start, end }).await;
                flush_task(&agent_id, &mut task).await;
                result
            }
        }))
        .await;
        RunSummary { runs }
    }

    /// Runs every task on its schedule until `shutdown` turns true (or every task's `stop`
    /// has passed), then flushes.
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

async fn task_loop(
    agent_id: String,
    mut task: Task,
    mut shutdown: watch::Receiver<bool>,
) -> Vec<TaskRunResult> {
    let mut results = Vec::new();
    let mut prev_end: Option<DateTime<Utc>> = None;
    // Before `start`, wait for it.
    if let Some(start) = task.start {
        if let Ok(wait) = (start - Utc::now()).to_std() {
            tracing::info!(task = %task.name, "waiting for the schedule's start at {start}");
            if sleep_or_shutdown(wait, &mut shutdown).await {
                flush_task(&agent_id, &mut task).await;
                return results;
            }
        }
    }
    loop {
        let now = Utc::now();
        if task.stop.is_some_and(|stop| now >= stop) {
            tracing::info!(task = %task.name, "schedule stop reached");
            break;
        }
        let window = match prev_end {
            None => {
                let (start, end) = task.schedule.first_window(now);
                Window { start, end }
            }
            Some(prev) => Window {
                start: prev,
                end: task.schedule.boundary_at_or_before(now).max(prev),
            },
        };
        if window.end > window.start {
            results.push(run_task_once(&agent_id, &mut task, window).await);
            prev_end = Some(window.end);
        }
        let next = task.schedule.next_after(Utc::now());
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        if sleep_or_shutdown(wait, &mut shutdown).await {
            break;
        }
    }
    flush_task(&agent_id, &mut task).await;
    results
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

/// One run of one task over `window`: collect, process, publish.
pub async fn run_task_once(agent_id: &str, task: &mut Task, window: Window) -> TaskRunResult {
    let started = Instant::now();
    let collected_at = Utc::now();
    let req = CollectRequest {
        window,
        metrics: task.metrics.clone(),
        task: task.name.clone(),
    };
    let outputs = join_all(
        task.collectors
            .iter_mut()
            .map(|c| collect_one(&task.name, c, &req)),
    )
    .await;

    let mut batch = Batch::new(agent_id, &task.name, collected_at);
    batch.window = Some(window);
    let mut result = TaskRunResult {
        task: task.name.clone(),
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
    for p in &mut task.processors {
        p.processor.process(&mut batch);
    }
    result.resources = batch.resources.len();
    result.points = batch.points.len();
    result.costs = batch.costs.len();
    result.collect_errors = batch.errors.len();
    for e in &batch.errors {
        tracing::warn!(task = %task.name, plugin = %e.plugin, "collection error: {}{}", e.message, fmt_context(&e.context));
    }
    result.failed_publishers = publish(&task.name, &mut task.publishers, &batch).await;
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
    result
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
    let res = match tokio::time::timeout(c.timeout, c.collector.collect(req, &mut out)).await {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(e),
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
        let r = p.publisher.publish(batch).await;
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

/// At shutdown: lets processors emit what they hold, publishes that, flushes publishers.
async fn flush_task(agent_id: &str, task: &mut Task) {
    // What processor i holds back passes through processors i+1.. like any other record.
    let mut batch = Batch::new(agent_id, &task.name, Utc::now());
    for p in &mut task.processors {
        p.processor.process(&mut batch);
        p.processor.flush(&mut batch);
    }
    if !batch.is_empty() {
        publish(&task.name, &mut task.publishers, &batch).await;
    }
    for p in &mut task.publishers {
        if let Err(e) = p.publisher.flush().await {
            tracing::error!(task = %task.name, publisher = %p.name, "flush failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
