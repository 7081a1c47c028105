//! What a publisher gives the shared sender: one try at handing one batch over, and what
//! the answer means for the batch.

use skymeter_plugin_api::async_trait;
use std::time::Duration;

/// One try at handing a buffered batch to the receiver. The sender calls it for the oldest
/// batch until the answer is [`Outcome::Delivered`] or [`Outcome::Rejected`]; it never gives
/// up on [`Outcome::Failed`].
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Where batches go, as messages show it (never with credentials).
    fn destination(&self) -> &str;

    /// Sends `body` (the buffered bytes, as `publish` gave them) of batch `batch_id`.
    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome;
}

/// What became of one try.
#[derive(Debug)]
pub enum Outcome {
    /// The receiver has the batch: its file is deleted.
    Delivered,
    /// The receiver will never take this batch: its file moves to `rejected/` with `report`
    /// beside it, and the next batch goes.
    Rejected {
        /// The receiver's short answer, e.g. `400 Bad Request`.
        answer: String,
        /// Why, for the log: the receiver's message, or what to do.
        reason: String,
        /// What goes beside the batch as `<file>.error.json`.
        report: serde_json::Value,
    },
    /// Worth trying again: the batch stays, the next try waits.
    Failed(Failure),
}

/// A call that did not work and is worth trying again.
#[derive(Debug)]
pub struct Failure {
    /// Names the call and the destination, says what to do; never carries a secret.
    pub message: String,
    /// The wait the receiver asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// A person must fix something (a token, the URL): logged as an error, not a warning.
    pub needs_action: bool,
}
