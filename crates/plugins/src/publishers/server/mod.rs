//! `server`: delivers batches to a skymeter server without ever losing one.
//!
//! `publish` only writes the batch, gzip-compressed, to an on-disk buffer (one file per
//! batch, fsynced, renamed into place) and returns; a background sender drains the buffer
//! in order to `POST /api/v1/ingest` and deletes each file once the server has it. A batch
//! leaves the buffer only when the server stored it (or already had it: the server dedupes
//! on `batch_id`), when the server rejected it as invalid (it moves to `rejected/`), or when
//! `when_full = "drop_oldest"` makes room. Delivery is at-least-once; with the server's
//! dedupe, storage is exactly-once.
//!
//! Besides batches, the publisher registers the agent with the server and sends heartbeats
//! (shared by every `server` publisher of the agent that talks to the same URL, see
//! [`agent`]). Nothing starts before the first `publish` or `flush`: building the publisher
//! (`skymeter validate`) neither touches the disk nor the network.
//!
//! Files: `queue.rs` (the on-disk buffer), `client.rs` (HTTP and what each answer means),
//! `sender.rs` (the drain loop), `agent.rs` (registration and heartbeats).

mod agent;
mod client;
mod queue;
mod sender;

use client::Client;
use flate2::write::GzEncoder;
use flate2::Compression;
use queue::Queue;
use reqwest::header::HeaderValue;
use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::Batch;
use skymeter_plugin_api::config::{ByteSize, DurationStr};
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ErrorKind, ExposeSecret, PluginDescription,
    PluginError, PluginKind, Publisher, PublisherFactory, RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `server` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Base URL of the skymeter server, e.g. `http://127.0.0.1:8080` (the API lives under
    /// `/api/v1` below it).
    pub url: String,
    /// Agent token, sent as `Authorization: Bearer <token>`. A secret: write
    /// `"${SKYMETER_TOKEN}"` or `"${file:/run/secrets/skymeter_token}"`.
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// Time allowed for one request, connection and response included. `flush` at
    /// shutdown keeps trying for 3 × this.
    #[serde(default = "ten_seconds")]
    pub timeout: DurationStr,
    /// Where undelivered batches wait. Default: `<data_dir>/buffer/<task>`.
    pub buffer_dir: Option<PathBuf>,
    /// Bound of the buffer (compressed batch files): `"1GB"`, `"500MiB"` or bytes.
    #[serde(default = "one_gigabyte")]
    pub max_buffer_size: ByteSize,
    /// What `publish` does when the buffer is full: `block` (wait for the sender to make
    /// room; the task pauses) or `drop_oldest` (delete the oldest batches, counted).
    #[serde(default)]
    pub when_full: WhenFull,
    /// Time between heartbeats; the server marks the agent late after 2 and offline after
    /// 5 missed ones. At least 1s.
    #[serde(default = "thirty_seconds")]
    pub heartbeat_interval: DurationStr,
    /// Labels of the agent, sent at registration (`{ env = "prod", dc = "par1" }`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Backoff between tries: `initial` doubles up to `max`, with jitter. `attempts` does
    /// not apply: a batch is retried until it is delivered or rejected.
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn ten_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

fn thirty_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(30))
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

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "server",
            kind: PluginKind::Publisher,
            summary: "delivers batches to a skymeter server through a durable on-disk buffer; registers the agent and sends heartbeats",
            config_schema: PluginDescription::schema_of::<ServerConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

/// `flush` at shutdown keeps delivering for this many request timeouts.
const FLUSH_TIMEOUTS: u32 = 3;

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    Ok(Box::new(ServerPublisher {
        settings: Arc::new(settings(raw, ctx)?),
        running: None,
    }))
}

/// Decodes and checks the config; touches neither the disk nor the network.
fn settings(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Settings, ConfigError> {
    let cfg: ServerConfig = raw.decode()?;
    // The URL is never quoted in errors: it could carry credentials.
    let url = Url::parse(&cfg.url).map_err(|e| {
        raw.error(
            "url",
            format!("not an absolute URL ({e}); write the server's base URL, e.g. \"http://127.0.0.1:8080\""),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(raw.error(
            "url",
            format!(
                "scheme `{}` is not supported; use http or https",
                url.scheme()
            ),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(raw.error(
            "url",
            "the URL carries credentials; remove them and put the agent token in `token`",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(raw.error(
            "url",
            "give the server's base URL, without `?query` or `#fragment`",
        ));
    }
    if url.path().trim_end_matches('/').ends_with("/api/v1") || url.path().contains("/api/v1/") {
        return Err(raw.error(
            "url",
            "give the server's base URL, without `/api/v1/…` (the publisher adds the API paths)",
        ));
    }
    if cfg.timeout.0.is_zero() {
        return Err(raw.error("timeout", "must be more than 0"));
    }
    if cfg.heartbeat_interval.0 < Duration::from_secs(1) {
        return Err(raw.error("heartbeat_interval", "must be at least 1s"));
    }
    if cfg.max_buffer_size.0 == 0 {
        return Err(raw.error("max_buffer_size", "must be more than 0, e.g. \"1GB\""));
    }
    if raw.span_of("retry.attempts") != raw.span_of("retry") {
        return Err(raw.error(
            "retry.attempts",
            "does not apply here: a batch is retried until the server takes or rejects it; remove `attempts`",
        ));
    }
    if cfg.retry.initial.0.is_zero() || cfg.retry.max.0 < cfg.retry.initial.0 {
        return Err(raw.error(
            "retry",
            "`initial` must be more than 0 and `max` at least `initial`",
        ));
    }
    if cfg.labels.keys().any(|k| k.is_empty()) {
        return Err(raw.error(
            "labels",
            "a label name is empty; write `{ env = \"prod\" }`",
        ));
    }
    if cfg
        .buffer_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(raw.error(
            "buffer_dir",
            "is empty; leave it out for <data_dir>/buffer/<task>",
        ));
    }
    // `token = "${SKYMETER_TOKEN:-}"` with the variable unset means no token.
    let auth = match cfg.token.as_ref().filter(|t| !t.expose_secret().is_empty()) {
        Some(token) => {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| raw.error("token", "the token has characters a header cannot carry (control characters, non-ASCII)"))?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let client = Client::new(url, auth, cfg.timeout.0)
        .map_err(|e| raw.error("url", format!("cannot set up the HTTP client: {e}")))?;
    let buffer_dir = cfg.buffer_dir.unwrap_or_else(|| {
        ctx.data_dir
            .join("buffer")
            .join(dir_name_of_task(&ctx.task))
    });
    let agent = agent::AgentInfo {
        id: ctx.agent_id.clone(),
        task: skymeter_model::api::AgentTask {
            name: ctx.task.clone(),
            interval_s: ctx.interval.map_or(0, |d| d.as_secs_f64().round() as u64),
        },
        labels: cfg.labels,
        heartbeat_interval: cfg.heartbeat_interval.0,
    };
    Ok(Settings {
        client: Arc::new(client),
        task: ctx.task.clone(),
        agent,
        buffer_dir,
        max_buffer: cfg.max_buffer_size.0,
        when_full: cfg.when_full,
        retry: cfg.retry,
        flush_wait: cfg.timeout.0 * FLUSH_TIMEOUTS,
    })
}

/// A task name as one safe directory name: letters, digits, `-`, `_` and `.` stay, anything
/// else becomes `_`, and a leading `.` gets a `_` before it (so `..` cannot climb out).
fn dir_name_of_task(task: &str) -> String {
    let mut s: String = task
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

/// What a publisher was built with.
struct Settings {
    client: Arc<Client>,
    task: String,
    agent: agent::AgentInfo,
    buffer_dir: PathBuf,
    max_buffer: u64,
    when_full: WhenFull,
    retry: RetryPolicy,
    flush_wait: Duration,
}

/// The publisher. `running` is set up by the first `publish` or `flush`.
pub struct ServerPublisher {
    settings: Arc<Settings>,
    running: Option<Running>,
}

/// The open buffer, its sender task and the agent's link to the server.
struct Running {
    queue: Arc<Queue>,
    sender: tokio::task::JoinHandle<()>,
    _agent: Arc<agent::Link>,
    /// Held, not read: the buffer directory's lock, released when the publisher goes.
    _lock: std::fs::File,
}

impl Drop for Running {
    fn drop(&mut self) {
        // What was not delivered stays on disk for the next start.
        self.sender.abort();
    }
}

impl ServerPublisher {
    async fn start(&mut self) -> Result<&Running, PluginError> {
        if self.running.is_none() {
            let s = &self.settings;
            let (queue, lock) = Queue::open(s.buffer_dir.clone()).await?;
            let n = queue.len();
            if n > 0 {
                tracing::info!(
                    target: "skymeter::server",
                    task = %s.task,
                    "{n} batch(es) left from a previous run in {} are sent first",
                    s.buffer_dir.display()
                );
            }
            let agent = agent::join(&s.client, &s.agent, &s.retry, &queue);
            let sender = tokio::spawn(sender::supervise(
                queue.clone(),
                s.client.clone(),
                s.retry,
                s.task.clone(),
            ));
            self.running = Some(Running {
                queue,
                sender,
                _agent: agent,
                _lock: lock,
            });
        }
        Ok(self.running.as_ref().expect("just set"))
    }
}

/// The batch as gzip-compressed JSON: what the buffer holds and the request body.
fn encode(batch: &Batch) -> Result<Vec<u8>, PluginError> {
    let json = serde_json::to_vec(batch).map_err(|e| {
        PluginError::new(
            ErrorKind::Other,
            format!("cannot encode the batch as JSON: {e}"),
        )
    })?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
    gz.write_all(&json)
        .and_then(|()| gz.finish())
        .map_err(|e| PluginError::new(ErrorKind::Other, format!("cannot compress the batch: {e}")))
}

#[async_trait]
impl Publisher for ServerPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let settings = self.settings.clone();
        let queue = self.start().await?.queue.clone();
        let body = encode(batch)?;
        let size = body.len() as u64;
        match settings.when_full {
            WhenFull::Block => {
                if !queue.fits(size, settings.max_buffer) {
                    tracing::warn!(
                        target: "skymeter::server",
                        task = %settings.task,
                        "buffer {} is full ({} batch(es), {} of {} bytes); waiting for the server to take some before accepting more (when_full = \"block\")",
                        settings.buffer_dir.display(), queue.len(), queue.bytes(), settings.max_buffer
                    );
                    queue.wait_for_room(size, settings.max_buffer).await;
                }
            }
            WhenFull::DropOldest => {
                let dropped = queue.drop_oldest(size, settings.max_buffer).await;
                if dropped > 0 {
                    tracing::warn!(
                        target: "skymeter::server",
                        task = %settings.task,
                        "buffer {} is full: dropped the {dropped} oldest undelivered batch(es) ({} dropped since start); the server is not keeping up or unreachable",
                        settings.buffer_dir.display(), queue.dropped()
                    );
                }
            }
        }
        queue.push(&batch.batch_id.to_string(), body).await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        if self.running.is_none() && !queue::has_batches(&self.settings.buffer_dir) {
            // Nothing published and nothing left from before: no need to start anything.
            return Ok(());
        }
        let settings = self.settings.clone();
        let queue = self.start().await?.queue.clone();
        queue.kick.notify_one();
        let left = queue
            .wait_until_empty(tokio::time::Instant::now() + settings.flush_wait)
            .await;
        if left > 0 {
            tracing::warn!(
                target: "skymeter::server",
                task = %settings.task,
                "{left} undelivered batch(es) stay in {} and are sent when the agent starts again",
                settings.buffer_dir.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
