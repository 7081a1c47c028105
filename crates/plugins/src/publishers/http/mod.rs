//! `http`: POSTs each batch as gzip-compressed JSON to an HTTP endpoint (a skymeter server,
//! a webhook, any collector that takes JSON).
//!
//! Without `buffer`, `publish` sends inline, retrying what is worth retrying with the shared
//! [`RetryPolicy`] (honouring `Retry-After`), and fails when the tries run out. With
//! `buffer = { … }`, `publish` writes the batch to the publishers' shared on-disk buffer
//! ([`crate::common::delivery`]) and returns; the buffer's sender POSTs it until the
//! receiver takes it, moving a batch it refuses (4xx but 401, 403, 404, 408 and 429) to
//! `rejected/`.

use crate::common::delivery::{
    task_buffers, BufferConfig, Deliver, Delivery, Failure, Outcome, Terms,
};
use crate::common::http_post::{
    client_builder, error_chain, gzip_json, location, parse_url, read_capped, rejection_report,
};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
};
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::Batch;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::{Failed, RetryPolicy};
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ErrorKind, ExposeSecret, PluginDescription,
    PluginError, PluginKind, Publisher, PublisherFactory, RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// `http` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to POST batches: an absolute `http://` or `https://` URL.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`. A secret: write `"${SKYMETER_TOKEN}"` or
    /// `"${file:/run/secrets/token}"` rather than the token itself.
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// Extra request headers; values are secrets (API keys often travel in headers).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SecretString>,
    /// Time allowed for one request, connection and response included.
    #[serde(default = "ten_seconds")]
    pub timeout: DurationStr,
    /// Retries of connection errors, timeouts, 429 and 5xx. With `buffer`, `attempts` does
    /// not apply: a batch is retried until the receiver takes or refuses it.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Deliver through an on-disk buffer: `{ dir = "…", max_size = "1GB", when_full =
    /// "block" }` (`buffer = {}` for the defaults; directory
    /// `<data_dir>/buffer/<task>/http`). Without it, batches are sent inline and a batch
    /// the receiver does not take within `retry.attempts` is lost.
    pub buffer: Option<BufferConfig>,
}

fn ten_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

/// How much of an error response's body goes into the error message.
const BODY_SNIPPET: usize = 200;
/// How much of an error response's body is read (and kept beside a rejected batch).
const BODY_CAP: usize = 64 * 1024;
/// With a buffer, `flush` at shutdown keeps delivering for this many request timeouts.
const FLUSH_TIMEOUTS: u32 = 3;

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "http",
            kind: PluginKind::Publisher,
            summary: "POSTs each batch as gzip-compressed JSON to a URL, with retries; optionally through a durable on-disk buffer",
            config_schema: PluginDescription::schema_of::<HttpConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: HttpConfig = raw.decode()?;
    let url = parse_url(
        raw,
        &cfg.url,
        "write e.g. \"https://skymeter.example.com/api/v1/batches\"",
    )?;
    if cfg.timeout.0.is_zero() {
        return Err(raw.error("timeout", "must be more than 0"));
    }
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    for (name, value) in &cfg.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| raw.error("headers", format!("`{name}` is not a valid header name")))?;
        if name == CONTENT_TYPE || name == CONTENT_ENCODING {
            return Err(raw.error(
                "headers",
                format!("`{name}` is set by the publisher (gzip-compressed JSON); remove it"),
            ));
        }
        if name == AUTHORIZATION && cfg.token.is_some() {
            return Err(raw.error(
                "headers",
                "`authorization` and `token` both set the Authorization header; keep one",
            ));
        }
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            raw.error("headers", format!("the value of `{name}` has characters a header cannot carry (control characters, non-ASCII)"))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    if let Some(token) = &cfg.token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| raw.error("token", "the token has characters a header cannot carry (control characters, non-ASCII)"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let client = client_builder(cfg.timeout.0)
        .build()
        .map_err(|e| raw.error("url", format!("cannot set up the HTTP client: {e}")))?;
    let poster = Arc::new(Poster {
        client,
        shown_url: shown(&url),
        url,
        headers,
        timeout: cfg.timeout.0,
    });
    let delivery = match cfg.buffer {
        Some(buffer) => {
            let settings = buffer.settings(
                raw,
                Terms::of_buffer_table("http", "the receiver"),
                task_buffers(ctx).join("http"),
                cfg.retry,
                cfg.timeout.0 * FLUSH_TIMEOUTS,
                &ctx.task,
            )?;
            Some(Delivery::new(settings, poster.clone()))
        }
        None => None,
    };
    Ok(Box::new(HttpPublisher {
        poster,
        retry: cfg.retry,
        delivery,
    }))
}

/// The URL without credentials, query or fragment: safe for messages and logs.
fn shown(url: &Url) -> String {
    let mut u = crate::common::http_post::without_credentials(url);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The publisher: sends inline, or through its buffer when it has one.
pub struct HttpPublisher {
    poster: Arc<Poster>,
    /// The tries of an inline send.
    retry: RetryPolicy,
    delivery: Option<Delivery<Poster>>,
}

/// One client (connection pool) for the publisher's lifetime, and the request it makes.
struct Poster {
    client: reqwest::Client,
    url: Url,
    shown_url: String,
    /// Includes the secrets, marked sensitive.
    headers: HeaderMap,
    timeout: Duration,
}

/// A POST that did not deliver: the error for an inline send, and what a buffered
/// delivery needs to tell a refusal from a failure worth retrying.
struct NotTaken {
    error: PluginError,
    /// None: no answer (connection error, timeout).
    status: Option<StatusCode>,
    retry_after: Option<Duration>,
    /// The start of the answer's body.
    body: Vec<u8>,
}

impl Poster {
    async fn post(&self, body: Vec<u8>) -> Result<(), NotTaken> {
        let mut resp = match self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                return Err(NotTaken {
                    error: self.request_error(e),
                    status: None,
                    retry_after: None,
                    body: Vec::new(),
                })
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = crate::common::retry_after::retry_after(resp.headers());
        let location = location(&resp);
        let head = read_capped(&mut resp, BODY_CAP).await;
        let snippet = snippet(&head);
        let (kind, hint) = classify(status);
        let mut message = format!("POST {} answered {status}", self.shown_url);
        if let Some(to) = location.filter(|_| status.is_redirection()) {
            message.push_str(&format!(" (redirect to {to})"));
        }
        if !snippet.is_empty() {
            message.push_str(&format!(": {snippet}"));
        }
        message.push_str(&format!("; {hint}"));
        let error = PluginError::new(kind, message)
            .with("url", self.shown_url.clone())
            .with("status", status.as_u16().to_string());
        Err(NotTaken {
            error,
            status: Some(status),
            retry_after,
            body: head,
        })
    }

    fn request_error(&self, e: reqwest::Error) -> PluginError {
        // The URL may carry credentials; messages show `shown_url` instead.
        let e = e.without_url();
        let (kind, what) = if e.is_timeout() {
            (
                ErrorKind::Timeout,
                format!(
                    "POST {} timed out after {}; raise `timeout` or check the receiver",
                    self.shown_url,
                    humantime::format_duration(self.timeout)
                ),
            )
        } else if e.is_connect() {
            (
                ErrorKind::Unavailable,
                format!(
                    "cannot connect to {}: {}; check the URL and that the receiver is up",
                    self.shown_url,
                    error_chain(&e)
                ),
            )
        } else {
            (
                ErrorKind::Unavailable,
                format!("POST {} failed: {}", self.shown_url, error_chain(&e)),
            )
        };
        PluginError::new(kind, what).with("url", self.shown_url.clone())
    }
}

/// The first bytes of an answer's body, as a message shows them.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(BODY_SNIPPET)])
        .trim()
        .to_string()
}

/// Whether a status is worth retrying, and what to tell the user.
fn classify(status: StatusCode) -> (ErrorKind, &'static str) {
    match status.as_u16() {
        429 => (
            ErrorKind::Unavailable,
            "the receiver asks to slow down; retrying",
        ),
        500..=599 => (ErrorKind::Unavailable, "the receiver failed; retrying"),
        401 => (
            ErrorKind::Auth,
            "check `token` (or the auth header in `headers`)",
        ),
        403 => (
            ErrorKind::Permission,
            "the credentials are not allowed to write there",
        ),
        300..=399 => (ErrorKind::Config, "set `url` to the final address"),
        404 => (
            ErrorKind::BadResponse,
            "nothing takes batches at `url`; check it",
        ),
        _ => (
            ErrorKind::BadResponse,
            "the receiver rejected the batch; check `url` and what it accepts",
        ),
    }
}

/// Whether a refused buffered batch can never be delivered: a 4xx other than those that
/// say to wait (408, 429) or that point at a mistake in the config a person fixes (401,
/// 403: the credentials; 404: the URL) — those keep the batches, as the `server` publisher
/// does, rather than move every batch to `rejected/` until the fix.
fn refused_for_good(status: StatusCode) -> bool {
    status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 404 | 408 | 429)
}

#[async_trait]
impl Deliver for Poster {
    fn destination(&self) -> &str {
        &self.shown_url
    }

    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        let Err(not) = self.post(body).await else {
            return Outcome::Delivered;
        };
        match not.status {
            Some(status) if refused_for_good(status) => Outcome::Rejected {
                answer: status.to_string(),
                reason: snippet(&not.body),
                report: rejection_report(batch_id, &self.shown_url, status.as_u16(), &not.body),
            },
            status => Outcome::Failed(Failure {
                // A person must act on anything but no answer, "wait" or a failing receiver.
                needs_action: status
                    .is_some_and(|s| !(s.is_server_error() || matches!(s.as_u16(), 408 | 429))),
                message: not.error.message,
                retry_after: not.retry_after,
            }),
        }
    }
}

#[async_trait]
impl Publisher for HttpPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let body = gzip_json(batch)?;
        if let Some(delivery) = &mut self.delivery {
            return delivery.publish(&batch.batch_id.to_string(), body).await;
        }
        let poster = &*self.poster;
        let body = &body;
        self.retry
            .run(&format!("POST {}", poster.shown_url), || async move {
                poster.post(body.clone()).await.map_err(|not| Failed {
                    error: not.error,
                    retry_after: not.retry_after,
                })
            })
            .await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        match &mut self.delivery {
            Some(delivery) => delivery.flush().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
