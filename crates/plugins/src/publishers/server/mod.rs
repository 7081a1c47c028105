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
//! The buffer and its sender are the publishers' shared delivery
//! ([`crate::common::delivery`]); this folder holds what is the server's own: `client.rs`
//! (the HTTP calls and what each answer means) and `agent.rs` (registration and heartbeats).

mod agent;
mod client;

use crate::common::delivery::{self, Buffer, BufferConfig, Delivery, Terms, WhenFull};
use crate::common::http_post::{gzip_json as encode, parse_url};
use client::Client;
use reqwest::header::HeaderValue;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::Batch;
use skymeter_plugin_api::config::{ByteSize, DurationStr};
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ExposeSecret, PluginDescription, PluginError,
    PluginKind, Publisher, PublisherFactory, RawConfig, SecretString,
};
use std::collections::BTreeMap;
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
    /// The on-disk buffer: `{ dir = "…", max_size = "1GB", when_full = "block" }`. Default
    /// directory: `<data_dir>/buffer/<task>`.
    pub buffer: Option<BufferConfig>,
    /// Older spelling of `buffer.dir` (still read; not together with `buffer`).
    pub buffer_dir: Option<PathBuf>,
    /// Older spelling of `buffer.max_size` (still read; not together with `buffer`).
    pub max_buffer_size: Option<ByteSize>,
    /// Older spelling of `buffer.when_full` (still read; not together with `buffer`).
    pub when_full: Option<WhenFull>,
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

impl ServerConfig {
    /// `buffer = { … }`, or the older top-level keys, and how messages name them: as the
    /// user wrote them (the table's keys when neither is written).
    fn buffer(&mut self, raw: &RawConfig<'_>) -> Result<(BufferConfig, Terms), ConfigError> {
        let table = Terms::of_buffer_table("server", "the server");
        let older = [
            ("buffer_dir", self.buffer_dir.is_some(), table.dir_key),
            (
                "max_buffer_size",
                self.max_buffer_size.is_some(),
                table.max_size_key,
            ),
            ("when_full", self.when_full.is_some(), "buffer.when_full"),
        ];
        let Some((older_key, _, new_key)) = older.into_iter().find(|(_, set, _)| *set) else {
            return Ok((self.buffer.take().unwrap_or_default(), table));
        };
        if self.buffer.is_some() {
            return Err(raw.error(
                older_key,
                format!("`{older_key}` is the older spelling of `{new_key}`; with `buffer = {{ … }}` write `{new_key}` there"),
            ));
        }
        let defaults = BufferConfig::default();
        let buffer = BufferConfig {
            dir: self.buffer_dir.take(),
            max_size: self.max_buffer_size.unwrap_or(defaults.max_size),
            when_full: self.when_full.unwrap_or(defaults.when_full),
        };
        let terms = Terms {
            dir_key: "buffer_dir",
            max_size_key: "max_buffer_size",
            ..table
        };
        Ok((buffer, terms))
    }
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
    let settings = settings(raw, ctx)?;
    Ok(Box::new(ServerPublisher {
        delivery: Delivery::new(settings.buffer, settings.client.clone()),
        client: settings.client,
        agent: settings.agent,
        link: None,
    }))
}

/// Decodes and checks the config; touches neither the disk nor the network.
fn settings(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Settings, ConfigError> {
    let mut cfg: ServerConfig = raw.decode()?;
    let (buffer, terms) = cfg.buffer(raw)?;
    let url = parse_url(
        raw,
        &cfg.url,
        "write the server's base URL, e.g. \"http://127.0.0.1:8080\"",
    )?;
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
    let buffer = buffer.settings(
        raw,
        terms,
        delivery::task_buffers(ctx),
        cfg.retry,
        cfg.timeout.0 * FLUSH_TIMEOUTS,
        &ctx.task,
    )?;
    if cfg.labels.keys().any(|k| k.is_empty()) {
        return Err(raw.error(
            "labels",
            "a label name is empty; write `{ env = \"prod\" }`",
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
    let agent = agent::AgentInfo {
        id: ctx.agent_id.clone(),
        task: skymeter_model::api::AgentTask {
            name: ctx.task.clone(),
            interval_s: ctx.interval.map_or(0, |d| d.as_secs_f64().round() as u64),
        },
        labels: cfg.labels,
        heartbeat_interval: cfg.heartbeat_interval.0,
        retry: cfg.retry,
    };
    Ok(Settings {
        client: Arc::new(client),
        agent,
        buffer,
    })
}

/// What a publisher was built with.
struct Settings {
    client: Arc<Client>,
    agent: agent::AgentInfo,
    buffer: delivery::BufferSettings,
}

/// The publisher: its buffer (opened by the first `publish` or `flush`) and, from then on,
/// its part in the agent's link to the server.
pub struct ServerPublisher {
    client: Arc<Client>,
    agent: agent::AgentInfo,
    delivery: Delivery<Client>,
    link: Option<Arc<agent::Link>>,
}

impl ServerPublisher {
    /// Opens the buffer (which starts its sender) and joins the agent's registration.
    async fn start(&mut self) -> Result<Arc<Buffer>, PluginError> {
        let buffer = self.delivery.open().await?.clone();
        if self.link.is_none() {
            self.link = Some(agent::join(&self.client, &self.agent, &buffer));
        }
        Ok(buffer)
    }
}

#[async_trait]
impl Publisher for ServerPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let body = encode(batch)?;
        let buffer = self.start().await?;
        buffer.push(&batch.batch_id.to_string(), body).await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        if self.delivery.has_work() {
            self.start().await?.flush().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
