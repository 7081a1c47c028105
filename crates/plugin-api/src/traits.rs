use crate::selection::MetricSelection;
use skymeter_model::{Batch, CollectError, Cost, Labels, Point, Resource, Window};
use std::fmt;

/// What a collection is asked to cover.
#[derive(Debug, Clone)]
pub struct CollectRequest {
    /// The half-open window `[start, end)`. Successive runs of a task get adjacent windows.
    pub window: Window,
    /// Which metrics the task wants; a collector may skip work for the others.
    pub metrics: MetricSelection,
    /// The task's name, for messages.
    pub task: String,
}

/// Where a collector puts what it found. Errors pushed here are partial failures: the
/// collection goes on and the batch carries them.
#[derive(Debug, Default)]
pub struct Output {
    pub resources: Vec<Resource>,
    pub points: Vec<Point>,
    pub costs: Vec<Cost>,
    pub errors: Vec<PluginError>,
}

/// Broad classes of failure, so that callers can decide to retry and users what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The plugin's config is wrong.
    Config,
    /// Credentials missing, wrong or expired.
    Auth,
    /// Credentials fine, permission missing.
    Permission,
    /// The source could not be reached or answered 5xx; worth retrying.
    Unavailable,
    /// The source was reached but answered something we cannot read.
    BadResponse,
    Timeout,
    Other,
}

/// An error from a plugin. The message says what failed and what to do; `context` says
/// where (url, command, account, region, api). Never carries a secret.
#[derive(Debug, Clone)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
    pub context: Labels,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
            context: Labels::new(),
        }
    }

    /// Adds one `key=value` of context.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.insert(key.to_string(), value.into());
        self
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// The form carried in a batch's `errors`.
    pub fn into_record(self, plugin: &str, at: chrono::DateTime<chrono::Utc>) -> CollectError {
        CollectError {
            plugin: plugin.to_string(),
            message: self.message,
            context: self.context,
            at,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.context.is_empty() {
            let ctx: Vec<String> = self
                .context
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " ({})", ctx.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}

/// A source of resources, points and costs.
///
/// The runner owns one instance per task entry and never runs two collections of the same
/// instance at once, so `&mut self` state (previous counter values, caches) needs no lock.
#[async_trait::async_trait]
pub trait Collector: Send {
    /// Checks config and credentials by talking to the source, without collecting.
    async fn verify(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    /// Gets ready for the first collection: whatever has to happen once before data can be
    /// read (a first sample that rates are computed against, building API clients, looking
    /// up credentials). The runner calls it once, before the first `collect`, under its own
    /// bound (the task's `warm_up_timeout`), so that a slow start never counts against the
    /// first collection's `timeout`. A collector that needs nothing keeps the default.
    ///
    /// An `Err` is reported in the first batch's `errors`; collection goes on regardless
    /// (`collect` must still work, doing what it can without the warm-up).
    async fn warm_up(&mut self, _metrics: &MetricSelection) -> Result<(), PluginError> {
        Ok(())
    }

    /// Whether `collect` can read a window in the past as well as the newest one: the
    /// source keeps history (CloudWatch, Azure Monitor, Cloud Monitoring, billing APIs) and
    /// the collector derives everything it emits from `req.window`. The runner then fills
    /// windows the agent missed while it was down (up to the task's `catch_up`). Collectors
    /// that read the present (a host's counters, a scrape, a command) keep the default
    /// `false`; a gap in their data is reported in the batch's `errors` instead.
    fn reads_history(&self) -> bool {
        false
    }

    /// Collects for `req.window`. Return `Err` when nothing could be collected; push to
    /// `out.errors` when part failed and the rest is good.
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError>;
}

/// Transforms batches between collection and publishing. No I/O.
pub trait Processor: Send {
    fn process(&mut self, batch: &mut Batch);

    /// Called once at shutdown, with an empty batch to put anything held back into
    /// (a partially filled aggregation window).
    fn flush(&mut self, _batch: &mut Batch) {}
}

/// A destination for batches.
#[async_trait::async_trait]
pub trait Publisher: Send {
    /// Delivers one batch. Retries that are worth doing happen inside; an `Err` means the
    /// batch was not delivered.
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError>;

    /// Makes everything published so far durable (called at shutdown).
    async fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}
