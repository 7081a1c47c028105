//! The sender: one tokio task per buffer that drains it, oldest first, through the
//! publisher's [`Deliver`], and never gives up on a batch. It runs until the buffer is
//! dropped. Its waits ([`Backoff`]) and its quiet failure log ([`FailureLog`]) serve the
//! `server` publisher's registration and heartbeats too.

use super::config::Terms;
use super::deliver::{Deliver, Failure, Outcome};
use super::queue::Queue;
use skymeter_plugin_api::retry::RetryPolicy;
use std::sync::Arc;
use std::time::Duration;

/// The longest `Retry-After` honoured; a longer one is taken as this (a receiver asking for
/// hours is more likely misconfigured than meant).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(600);

/// The waits of tries that never stop: the policy's backoff after each failure since the
/// last success, or a longer `Retry-After` (up to 10 minutes, beyond the policy's `max`: a
/// server asking for minutes is heeded, one asking for hours is taken as misconfigured).
/// (`RetryPolicy::run` gives up after `attempts`, which delivery must not do.)
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    pub fn new(p: &RetryPolicy) -> Backoff {
        Backoff {
            policy: *p,
            failures: 0,
        }
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed tries since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait before the next try; a longer `Retry-After` wins (up to 10 minutes).
    pub fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let backoff = self.policy.backoff(self.failures);
        backoff.max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP))
    }
}

pub fn show(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
}

/// How often a failure that keeps repeating is logged again at its level.
const REPEAT_LOG_EVERY: Duration = Duration::from_secs(300);

/// Logs failed calls without flooding: a failure is logged (an error when a person must act,
/// a warning when waiting helps) when it first happens, when its message changes, and every
/// 5 minutes while it repeats; the tries in between are logged at debug level.
#[derive(Default)]
pub struct FailureLog {
    last: Option<(String, tokio::time::Instant)>,
    repeats: u32,
}

impl FailureLog {
    pub fn failed(&mut self, task: &str, f: &Failure, then: &str) {
        let now = tokio::time::Instant::now();
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(m, at)| *m == f.message && now.duration_since(*at) < REPEAT_LOG_EVERY);
        if repeat {
            self.repeats += 1;
            tracing::debug!(target: "skymeter::delivery", task, "{}; {then}", f.message);
            return;
        }
        let again = if self.repeats > 0 {
            format!(
                " ({} more failed tries since it was last logged)",
                self.repeats
            )
        } else {
            String::new()
        };
        if f.needs_action {
            tracing::error!(target: "skymeter::delivery", task, "{}; {then}{again}", f.message);
        } else {
            tracing::warn!(target: "skymeter::delivery", task, "{}; {then}{again}", f.message);
        }
        self.last = Some((f.message.clone(), now));
        self.repeats = 0;
    }

    /// The call worked: the next failure is news again.
    pub fn ok(&mut self) {
        self.last = None;
        self.repeats = 0;
    }
}

/// Runs [`drain`], and runs it again if it panics. Release builds unwind (the server needs
/// that to answer a panicking request with 500), so a panic in a spawned task no longer
/// stops the process: without this, delivery would end silently while the agent collects
/// on. The batch being sent stays in the buffer; aborting this task aborts the drain.
pub async fn supervise<D: Deliver>(
    queue: Arc<Queue>,
    deliver: Arc<D>,
    retry: RetryPolicy,
    task: String,
    terms: Terms,
) {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    loop {
        let running = tokio::spawn(drain(
            queue.clone(),
            deliver.clone(),
            retry,
            task.clone(),
            terms,
        ));
        let _abort_with_us = AbortOnDrop(running.abort_handle());
        match running.await {
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let what = skymeter_plugin_api::panic_message(&*payload);
                tracing::error!(target: "skymeter::delivery", task, "the sender failed ({what}; a bug: please report it); starting it again in 1s, the buffered batches stay");
                queue.end_attempt();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Returned or cancelled: the publisher is going away.
            _ => return,
        }
    }
}

async fn drain<D: Deliver>(
    queue: Arc<Queue>,
    deliver: Arc<D>,
    retry: RetryPolicy,
    task: String,
    terms: Terms,
) {
    let mut backoff = Backoff::new(&retry);
    let mut failures = FailureLog::default();
    let receiver = terms.receiver;
    loop {
        let Some(entry) = queue.begin_next() else {
            queue.pushed.notified().await;
            continue;
        };
        let body = match queue.read(&entry).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Deleted by hand: nothing to send.
                queue.done(&entry).await;
                continue;
            }
            Err(e) => {
                queue.end_attempt();
                let wait = backoff.next(None);
                tracing::error!(target: "skymeter::delivery", task, "cannot read buffered batch {}: {e}; retrying in {}", queue.dir.join(entry.file_name()).display(), show(wait));
                pause(&queue, wait).await;
                continue;
            }
        };
        match deliver.deliver(body, &entry.batch_id).await {
            Outcome::Delivered => {
                queue.done(&entry).await;
                if backoff.failures() > 0 {
                    tracing::info!(target: "skymeter::delivery", task, "delivering to {} again after {} failed tries; {} batch(es) waiting", deliver.destination(), backoff.failures(), queue.len());
                }
                backoff.reset();
                failures.ok();
                tracing::debug!(target: "skymeter::delivery", task, "delivered batch {} to {}", entry.batch_id, deliver.destination());
            }
            Outcome::Rejected {
                answer,
                reason,
                report,
            } => match queue.reject(&entry, report).await {
                Ok(path) => tracing::error!(
                    target: "skymeter::delivery", task,
                    "{receiver} rejected batch {} ({answer}): {reason}; it is not retried: moved to {} with {receiver}'s answer beside it",
                    entry.batch_id, path.display()
                ),
                Err(e) => {
                    let wait = backoff.next(None);
                    tracing::error!(target: "skymeter::delivery", task, "{receiver} rejected batch {} ({answer}): {reason}; {e}; retrying in {}", entry.batch_id, show(wait));
                    pause(&queue, wait).await;
                }
            },
            Outcome::Failed(f) => {
                queue.end_attempt();
                let wait = backoff.next(f.retry_after);
                failures.failed(
                    &task,
                    &f,
                    &format!(
                        "{} batch(es) stay buffered; next try in {}",
                        queue.len(),
                        show(wait)
                    ),
                );
                pause(&queue, wait).await;
            }
        }
    }
}

/// Sleeps `wait`, or less when `flush` asks for a try now.
async fn pause(queue: &Queue, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = queue.kick.notified() => {}
    }
}
