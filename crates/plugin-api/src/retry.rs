//! The one retry policy of skymeter's plugins: the cloud collectors' REST calls, the
//! publishers' sends and the server publisher's never-ending delivery all wait the same way —
//! exponential backoff with jitter, a `Retry-After` the other side sends honoured up to the
//! longest wait, and only errors that say they are worth retrying retried.
//!
//! Written here rather than with a retry crate: the loop needs the other side's
//! `Retry-After` of each failed try, and delivery needs the same waits without a limit of
//! tries; both are a few lines over [`RetryPolicy::wait`].

use crate::config::DurationStr;
use crate::traits::PluginError;
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// `retry = { attempts = 5, initial = "500ms", max = "30s" }` in a plugin's config.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: usize,
    /// Wait before the second try; doubles each time, with jitter.
    pub initial: DurationStr,
    /// Longest wait between two tries, a `Retry-After` included.
    pub max: DurationStr,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: DurationStr(Duration::from_millis(500)),
            max: DurationStr(Duration::from_secs(30)),
        }
    }
}

/// A failed try: the error, and the wait the other side asked for (`Retry-After`), if any.
#[derive(Debug)]
pub struct Failed {
    pub error: PluginError,
    pub retry_after: Option<Duration>,
}

impl From<PluginError> for Failed {
    fn from(error: PluginError) -> Self {
        Failed {
            error,
            retry_after: None,
        }
    }
}

/// How loudly [`RetryPolicy::run_logged`] reports a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryLog {
    /// A warning per retry: a publisher whose receiver fails is worth a line.
    Warn,
    /// Debug only: a cloud API throttling one call of thousands is routine.
    Debug,
}

impl RetryPolicy {
    /// A policy of `attempts` tries starting at `initial` and waiting at most `max`.
    pub fn new(attempts: usize, initial: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial: DurationStr(initial),
            max: DurationStr(max),
        }
    }

    /// The backoff after `failures` failed tries (1 = after the first): a random wait in
    /// [d/2, d], d = `initial` × 2^(failures−1) up to `max` — half of it jittered, so that
    /// clients that failed together spread out, and never shorter than half the backoff.
    pub fn backoff(&self, failures: u32) -> Duration {
        let d = self
            .initial
            .0
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max.0);
        let half = d / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    /// The wait before the next try after `failures` failed tries: the backoff, or the
    /// other side's `Retry-After` when it asks for longer, at most `max`.
    pub fn wait(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let asked = retry_after.unwrap_or_default().min(self.max.0);
        self.backoff(failures).max(asked)
    }

    /// Runs `op` until it succeeds, fails with an error that is not retryable, or has
    /// been tried `attempts` times; a warning names `what` before each retry.
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, PluginError>
    where
        E: Into<Failed>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_logged(RetryLog::Warn, what, op).await
    }

    /// [`run`](Self::run), logging each retry at `log`.
    pub async fn run_logged<T, E, F, Fut>(
        &self,
        log: RetryLog,
        what: &str,
        mut op: F,
    ) -> Result<T, PluginError>
    where
        E: Into<Failed>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut failures = 0u32;
        loop {
            let failed: Failed = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e.into(),
            };
            failures += 1;
            if !failed.error.is_retryable() || failures as usize >= self.attempts.max(1) {
                return Err(failed.error);
            }
            let wait = self.wait(failures, failed.retry_after);
            match log {
                RetryLog::Warn => {
                    tracing::warn!(target: "skymeter::retry", "{what} failed, retrying in {wait:?}: {}", failed.error)
                }
                RetryLog::Debug => {
                    tracing::debug!(target: "skymeter::retry", "{what} failed, retrying in {wait:?}: {}", failed.error)
                }
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::ErrorKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn quick(attempts: usize) -> RetryPolicy {
        RetryPolicy::new(attempts, Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn retries_retryable_errors_only() {
        let policy = quick(4);
        let calls = AtomicUsize::new(0);
        let ok = policy
            .run("op", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(PluginError::new(ErrorKind::Unavailable, "503"))
                } else {
                    Ok(n)
                }
            })
            .await
            .unwrap();
        assert_eq!(ok, 2);

        calls.store(0, Ordering::SeqCst);
        let err = policy
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(PluginError::new(ErrorKind::Auth, "401"))
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, calls.load(Ordering::SeqCst)),
            (ErrorKind::Auth, 1)
        );

        calls.store(0, Ordering::SeqCst);
        policy
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(PluginError::new(ErrorKind::Timeout, "slow"))
            })
            .await
            .unwrap_err();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "gives up after `attempts` tries"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_bounded() {
        let p = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(1));
        for failures in 1..30 {
            let d = p.backoff(failures);
            let full =
                Duration::from_millis(100 << (failures - 1).min(4)).min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "{failures}: {d:?} vs {full:?}");
        }
    }

    #[test]
    fn retry_after_wins_when_longer_up_to_max() {
        let p = RetryPolicy::new(3, Duration::from_millis(10), Duration::from_secs(5));
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(99))),
            Duration::from_secs(5)
        );
        assert!(p.wait(1, Some(Duration::ZERO)) <= Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_is_waited_before_the_next_try() {
        let p = RetryPolicy::new(2, Duration::from_millis(1), Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let start = tokio::time::Instant::now();
        p.run("op", || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(Failed {
                    error: PluginError::new(ErrorKind::Unavailable, "429"),
                    retry_after: Some(Duration::from_secs(7)),
                })
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(start.elapsed() >= Duration::from_secs(7));
    }
}
