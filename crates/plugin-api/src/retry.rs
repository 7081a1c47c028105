//! The one retry helper publishers and collectors share: exponential backoff with full
//! jitter, retrying only errors that say they are worth retrying.

use crate::config::DurationStr;
use crate::traits::PluginError;
use backon::{ExponentialBuilder, Retryable};
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
    /// Longest wait between two tries.
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

impl RetryPolicy {
    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial.0)
            .with_max_delay(self.max.0)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or runs out of tries.
    /// `what` names the operation in the warning logged before each retry.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, PluginError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PluginError>>,
    {
        op.retry(self.builder())
            .sleep(tokio::time::sleep)
            .when(PluginError::is_retryable)
            .notify(|e: &PluginError, wait: Duration| {
                tracing::warn!(target: "skymeter::retry", "{what} failed, retrying in {wait:?}: {e}");
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::ErrorKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn retries_retryable_errors_only() {
        let policy = RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(1).into(),
            max: Duration::from_millis(2).into(),
        };
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
}
