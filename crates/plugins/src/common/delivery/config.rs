//! `buffer = { dir = "…", max_size = "1GB", when_full = "block" }`, the checks every
//! publisher with a buffer makes, and the settings it comes to.

use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_plugin_api::config::ByteSize;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{BuildContext, ConfigError, RawConfig};
use std::path::PathBuf;
use std::time::Duration;

/// A publisher's on-disk delivery buffer.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Where undelivered batches wait. Default: `<data_dir>/buffer/<task>/<publisher>` (the
    /// `server` publisher: `<data_dir>/buffer/<task>`), the task name with characters other
    /// than letters, digits, `-`, `_` and `.` turned into `_`.
    pub dir: Option<PathBuf>,
    /// Bound of the buffer (the batch files, compressed): `"1GB"`, `"500MiB"` or bytes.
    #[serde(default = "one_gigabyte")]
    pub max_size: ByteSize,
    /// What `publish` does when the buffer is full: `block` (wait for the sender to make
    /// room; the task pauses) or `drop_oldest` (delete the oldest batches, counted).
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            dir: None,
            max_size: one_gigabyte(),
            when_full: WhenFull::default(),
        }
    }
}

fn one_gigabyte() -> ByteSize {
    ByteSize(1_000_000_000)
}

/// What `publish` does when the buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait until the sender has delivered enough to make room.
    #[default]
    Block,
    /// Delete the oldest waiting batches (never the one being sent) and count them.
    DropOldest,
}

/// How messages name the publisher's side of the buffer: the plugin, what receives the
/// batches, and the config keys the user wrote (so that a hint names the key to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// The plugin's name, e.g. `server`.
    pub plugin: &'static str,
    /// What takes the batches, as a sentence says it: `the server`, `the receiver`.
    pub receiver: &'static str,
    /// The key of the buffer directory: `buffer.dir`, or an older spelling.
    pub dir_key: &'static str,
    /// The key of the bound: `buffer.max_size`, or an older spelling.
    pub max_size_key: &'static str,
}

impl Terms {
    /// The keys of `buffer = { … }`.
    pub const fn of_buffer_table(plugin: &'static str, receiver: &'static str) -> Terms {
        Terms {
            plugin,
            receiver,
            dir_key: "buffer.dir",
            max_size_key: "buffer.max_size",
        }
    }
}

/// Everything a buffer and its sender need, checked; building it touches nothing.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    pub dir: PathBuf,
    pub max_size: u64,
    pub when_full: WhenFull,
    /// The waits between tries (its `attempts` does not apply: delivery never gives up).
    pub retry: RetryPolicy,
    /// How long `flush` keeps delivering before it leaves the rest on disk.
    pub flush_wait: Duration,
    /// The task, for messages.
    pub task: String,
    pub terms: Terms,
}

impl BufferConfig {
    /// Checks the config (its keys named as `terms` spells them) and resolves the directory,
    /// `default_dir` when none is set.
    pub fn settings(
        self,
        raw: &RawConfig<'_>,
        terms: Terms,
        default_dir: PathBuf,
        retry: RetryPolicy,
        flush_wait: Duration,
        task: &str,
    ) -> Result<BufferSettings, ConfigError> {
        if self.max_size.0 == 0 {
            return Err(raw.error(terms.max_size_key, "must be more than 0, e.g. \"1GB\""));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(raw.error(
                terms.dir_key,
                format!("is empty; leave it out for {}", default_dir.display()),
            ));
        }
        check_retry_forever(raw, &retry, terms)?;
        Ok(BufferSettings {
            dir: self.dir.unwrap_or(default_dir),
            max_size: self.max_size.0,
            when_full: self.when_full,
            retry,
            flush_wait,
            task: task.to_string(),
            terms,
        })
    }
}

/// Delivery retries until the receiver takes or refuses a batch: `retry.attempts` has no
/// meaning there and is refused rather than silently ignored.
fn check_retry_forever(
    raw: &RawConfig<'_>,
    retry: &RetryPolicy,
    terms: Terms,
) -> Result<(), ConfigError> {
    if raw.span_of("retry.attempts") != raw.span_of("retry") {
        return Err(raw.error(
            "retry.attempts",
            format!(
                "does not apply here: a batch is retried until {} takes or rejects it; remove `attempts`",
                terms.receiver
            ),
        ));
    }
    if retry.initial.0.is_zero() || retry.max.0 < retry.initial.0 {
        return Err(raw.error(
            "retry",
            "`initial` must be more than 0 and `max` at least `initial`",
        ));
    }
    Ok(())
}

/// `<data_dir>/buffer/<task>`: where the buffers of a task's publishers live.
pub fn task_buffers(ctx: &BuildContext) -> PathBuf {
    ctx.data_dir.join("buffer").join(dir_name(&ctx.task))
}

/// A name (a task's) as one safe directory name: letters, digits, `-`, `_` and `.` stay,
/// anything else becomes `_`, and a leading `.` gets a `_` before it (so `..` cannot climb
/// out).
pub fn dir_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}
