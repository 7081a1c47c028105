//! `nats`: publishes each batch to a NATS JetStream stream, one message per batch, for
//! agents whose servers consume the stream (`skymeter server --consume nats://…`) or for any
//! other JetStream consumer.
//!
//! Delivery goes through the publishers' shared on-disk buffer
//! ([`crate::common::delivery`]): `publish` writes the batch to disk (gzip JSON, the very
//! body the `server` publisher POSTs) and returns; the buffer's sender publishes the oldest
//! batch's bytes as they are to `<subject>.<agent id>` and counts it delivered only on
//! JetStream's PubAck, i.e. once the stream has stored it. The message carries
//! `Nats-Msg-Id: <batch_id>`, so a resend whose PubAck was lost is dropped by the stream's
//! duplicate window (and, past the window, by the server's batch-id dedupe).
//!
//! One connection is kept open and shared by the tries: the client reconnects by itself
//! after an outage, and the buffer keeps the batches meanwhile.

use crate::common::delivery::{BufferConfig, BufferedPublisher, Deliver, Failure, Outcome, Terms};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::{ConnectOptions, ServerAddr};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ExposeSecret, PluginDescription, PluginKind, Publisher,
    PublisherFactory, RawConfig, SecretString,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// `nats` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS server(s): `"nats://HOST:PORT"` (port 4222 when left out), or a list of a
    /// cluster's servers; the client connects to one and fails over to the others.
    pub url: Urls,
    /// The JetStream stream the batches go to.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The subject prefix: each batch is published on `<subject>.<agent id>`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Create the stream when it is missing: file storage, subjects `<subject>.>`, limits
    /// retention with `max_age = 7d`, a 2-minute duplicate window (the JetStream default).
    #[serde(default = "yes")]
    pub create_stream: bool,
    /// A token (`authorization { token: … }` on the server). A secret: `"${NATS_TOKEN}"`.
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    pub username: Option<String>,
    /// A secret: write `"${NATS_PASSWORD}"` rather than the password itself.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A `.creds` file (a user JWT and its NKey seed), as `nsc` writes it.
    pub creds_file: Option<PathBuf>,
    /// Time allowed for connecting, and for the stream's PubAck of one batch.
    #[serde(default = "ten_seconds")]
    pub timeout: DurationStr,
    /// The waits between tries (`attempts` does not apply: a batch is never given up on).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The on-disk buffer (always on): `{ dir, max_size = "1GB", when_full = "block" }`;
    /// default directory `<data_dir>/buffer/<task>/nats`.
    #[serde(default)]
    pub buffer: BufferConfig,
}

/// `url = "nats://a:4222"` or `url = ["nats://a:4222", "nats://b:4222"]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

fn default_stream() -> String {
    "SKYMETER".into()
}

fn default_subject() -> String {
    "skymeter.batches".into()
}

fn yes() -> bool {
    true
}

fn ten_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

/// How long a stream created by the publisher keeps a message.
const CREATED_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "nats",
            kind: PluginKind::Publisher,
            summary: "Publishes each batch to a NATS JetStream stream (one message per batch, counted on the stream's PubAck, deduplicated by batch id) through a durable on-disk buffer",
            config_schema: PluginDescription::schema_of::<NatsConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: NatsConfig = raw.decode()?;
    let urls = match &cfg.url {
        Urls::One(u) => vec![u.clone()],
        Urls::Many(us) => us.clone(),
    };
    if urls.is_empty() {
        return Err(raw.error(
            "url",
            "give at least one server, e.g. \"nats://127.0.0.1:4222\"",
        ));
    }
    let servers = urls
        .iter()
        .map(|u| parse_server(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| raw.error("url", m))?;
    check_stream_name(&cfg.stream).map_err(|m| raw.error("stream", m))?;
    check_subject(&cfg.subject).map_err(|m| raw.error("subject", m))?;
    if cfg.timeout.0.is_zero() {
        return Err(raw.error("timeout", "must be more than 0"));
    }
    let login = login(&cfg).map_err(|(key, m)| raw.error(key, m))?;
    let target = Arc::new(Stream {
        shown: urls.join(","),
        servers,
        login,
        name: format!("skymeter agent {}", ctx.agent_id),
        stream: cfg.stream.clone(),
        subject: format!("{}.{}", cfg.subject, subject_token(&ctx.agent_id)),
        subjects: format!("{}.>", cfg.subject),
        create_stream: cfg.create_stream,
        timeout: cfg.timeout.0,
        link: Mutex::new(None),
    });
    Ok(Box::new(BufferedPublisher::configured(
        raw,
        ctx,
        Terms::of_buffer_table("nats", "the NATS stream"),
        cfg.buffer,
        cfg.retry,
        cfg.timeout.0,
        target,
    )?))
}

/// `nats://host[:port]` (or `tls://`) → the client's address; credentials in the URL are
/// refused, they belong in the secret keys.
pub fn parse_server(url: &str) -> Result<ServerAddr, String> {
    let example = "write e.g. \"nats://127.0.0.1:4222\"";
    match url.split_once("://") {
        Some(("nats" | "tls", _)) => {}
        _ => return Err(format!("`{url}` is not a NATS URL; {example}")),
    }
    let addr: ServerAddr = url
        .parse()
        .map_err(|e| format!("`{url}` is not a NATS URL ({e}); {example}"))?;
    if addr.has_user_pass() || url.contains('@') {
        return Err(format!(
            "`{url}` carries credentials; remove them and use `token`, `username`/`password` or `creds_file`"
        ));
    }
    Ok(addr)
}

/// JetStream stream names: no whitespace, `.`, `*`, `>`, path separators.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
    {
        return Err(format!(
            "`{name}` is not a stream name: use letters, digits, `-` and `_`, e.g. \"SKYMETER\""
        ));
    }
    Ok(())
}

/// A literal subject: dot-separated tokens, none empty, no wildcards or whitespace.
fn check_subject(subject: &str) -> Result<(), String> {
    let bad = subject.is_empty()
        || subject.split('.').any(|t| {
            t.is_empty()
                || t.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>'))
        });
    if bad {
        return Err(format!(
            "`{subject}` is not a subject prefix: dot-separated words without `*`, `>` or spaces, e.g. \"skymeter.batches\""
        ));
    }
    Ok(())
}

/// The agent id as one subject token: characters other than letters, digits, `-` and `_`
/// become `_` (a `.` would split it into two tokens, `*` and `>` are wildcards).
pub fn subject_token(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

/// How the client logs in.
#[derive(Debug)]
enum Login {
    None,
    Token(SecretString),
    UserPassword(String, SecretString),
    CredsFile(PathBuf),
}

fn login(cfg: &NatsConfig) -> Result<Login, (&'static str, String)> {
    let ways = [
        cfg.token.is_some(),
        cfg.username.is_some(),
        cfg.creds_file.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        let key = if cfg.creds_file.is_some() {
            "creds_file"
        } else {
            "token"
        };
        return Err((
            key,
            "give one way to log in: `token`, `username`/`password` or `creds_file`".into(),
        ));
    }
    if cfg.password.is_some() && cfg.username.is_none() {
        return Err(("password", "a password needs a `username`".into()));
    }
    Ok(if let Some(t) = &cfg.token {
        Login::Token(t.clone())
    } else if let Some(u) = &cfg.username {
        let p = cfg
            .password
            .clone()
            .unwrap_or_else(|| SecretString::from(String::new()));
        Login::UserPassword(u.clone(), p)
    } else if let Some(f) = &cfg.creds_file {
        Login::CredsFile(f.clone())
    } else {
        Login::None
    })
}

/// The open connection and whether the stream was checked on it.
struct Link {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream_ready: bool,
}

/// Where batches go and how to connect.
struct Stream {
    servers: Vec<ServerAddr>,
    /// The URLs as configured, for messages (never with credentials: refused in URLs).
    shown: String,
    login: Login,
    /// The client's name, as the server's monitoring shows it.
    name: String,
    stream: String,
    /// `<prefix>.<agent id>`.
    subject: String,
    /// `<prefix>.>`: the subjects of a stream the publisher creates.
    subjects: String,
    create_stream: bool,
    timeout: Duration,
    link: Mutex<Option<Link>>,
}

fn fail(message: String, needs_action: bool) -> Failure {
    Failure {
        message,
        retry_after: None,
        needs_action,
    }
}

impl Stream {
    async fn connect(&self) -> Result<Link, Failure> {
        let options =
            match &self.login {
                Login::None => ConnectOptions::new(),
                Login::Token(t) => ConnectOptions::with_token(t.expose_secret().to_string()),
                Login::UserPassword(u, p) => {
                    ConnectOptions::with_user_and_password(u.clone(), p.expose_secret().to_string())
                }
                Login::CredsFile(path) => ConnectOptions::with_credentials_file(path)
                    .await
                    .map_err(|e| {
                        fail(
                            format!(
                                "cannot read the NATS credentials file {} (`creds_file`): {e}",
                                path.display()
                            ),
                            true,
                        )
                    })?,
            };
        let client = options
            .name(&self.name)
            .connection_timeout(self.timeout)
            .connect(self.servers.clone())
            .await
            .map_err(|e| {
                let auth = matches!(
                    e.kind(),
                    async_nats::ConnectErrorKind::AuthorizationViolation
                        | async_nats::ConnectErrorKind::Authentication
                );
                let hint = if auth {
                    "; check `token`, `username`/`password` or `creds_file`"
                } else {
                    ""
                };
                fail(
                    format!("cannot connect to NATS {}: {e}{hint}", self.shown),
                    auth,
                )
            })?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(self.timeout)
            .build(client.clone());
        Ok(Link {
            client,
            js,
            stream_ready: false,
        })
    }

    /// Makes sure the stream exists when `create_stream` asks for it.
    async fn ensure_stream(&self, link: &mut Link) -> Result<(), Failure> {
        if link.stream_ready || !self.create_stream {
            return Ok(());
        }
        link.js
            .get_or_create_stream(StreamConfig {
                name: self.stream.clone(),
                subjects: vec![self.subjects.clone()],
                storage: StorageType::File,
                max_age: CREATED_MAX_AGE,
                duplicate_window: Duration::from_secs(120),
                description: Some("skymeter batches (created by the nats publisher)".into()),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                fail(
                    format!(
                        "cannot find or create the JetStream stream `{}` on {}: {e}; check that JetStream is enabled (`nats-server -js`) and the user may create streams, or create it yourself and set `create_stream = false`",
                        self.stream, self.shown
                    ),
                    true,
                )
            })?;
        link.stream_ready = true;
        Ok(())
    }

    async fn send(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        let mut guard = self.link.lock().await;
        if guard.is_none() {
            match self.connect().await {
                Ok(l) => *guard = Some(l),
                Err(f) => return Outcome::Failed(f),
            }
        }
        let link = guard.as_mut().expect("just connected");
        if let Err(f) = self.ensure_stream(link).await {
            return Outcome::Failed(f);
        }
        let size = body.len();
        let max_payload = link.client.server_info().max_payload;
        let message = PublishMessage::build()
            .payload(body.into())
            .message_id(batch_id)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .expected_stream(&self.stream);
        let acked = match link.js.send_publish(self.subject.clone(), message).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(_) => Outcome::Delivered,
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => Outcome::Rejected {
                answer: "too large".into(),
                reason: format!(
                    "the batch is {size} bytes (gzip), more than the NATS server's max_payload of {max_payload} bytes; raise `max_payload` in the server's config or collect less per batch (fewer collectors or a shorter schedule)"
                ),
                report: serde_json::json!({"batch_id": batch_id, "bytes": size, "max_payload": max_payload}),
            },
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => Outcome::Failed(fail(
                format!(
                    "no JetStream stream takes subject `{}` on {}{}",
                    self.subject,
                    self.shown,
                    if self.create_stream {
                        ""
                    } else {
                        "; create the stream or set `create_stream = true`"
                    }
                ),
                true,
            )),
            Err(e) => {
                // The stream may be gone and back (recreated without us): check it again.
                link.stream_ready = false;
                Outcome::Failed(fail(
                    format!(
                        "publishing batch {batch_id} to stream `{}` on {}: {e}",
                        self.stream, self.shown
                    ),
                    false,
                ))
            }
        }
    }
}

#[async_trait]
impl Deliver for Stream {
    fn destination(&self) -> &str {
        &self.shown
    }

    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        self.send(body, batch_id).await
    }
}

#[cfg(test)]
mod tests;
