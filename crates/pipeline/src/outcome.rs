//! What a task's runs come to: each run's result, why a task's loop ended, and the
//! observer a running agent hangs on a task. Apart from the runner so that a task's config
//! can carry its observer without the config and the runner depending on each other.

use skymeter_model::{Batch, Window};

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
    /// The run filled a window missed while the agent was down.
    pub catch_up: bool,
    /// The window the run covered.
    pub window: Option<Window>,
}

/// Why a task's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// Shutdown or stop was asked.
    Stopped,
    /// The schedule's `stop` passed.
    ScheduleEnded,
    /// The task ran its `count` runs.
    CountReached,
    /// `max_failures` runs in a row failed (snap disables the task then).
    Disabled,
}

/// Watches a task's runs (the agent API's task states and `watch` streams). Called on the
/// task's own loop: keep it quick, take copies only of what is needed.
pub trait RunObserver: Send + Sync {
    /// The batch as collected, before any processor ran.
    fn collected(&self, _batch: &Batch) {}
    /// The run is over, published or not.
    fn finished(&self, _result: &TaskRunResult) {}
}
