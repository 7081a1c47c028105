//! `http`: POSTs each batch as gzip-compressed JSON to an HTTP endpoint (a skymeter server,
//! a webhook, any collector that takes JSON), retrying what is worth retrying with the
//! shared [`RetryPolicy`] and honouring `Retry-After`.

use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION,
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
use std::io::Write;
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
    /// Retries of connection errors, timeouts, 429 and 5xx.
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn ten_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

/// How much of an error response's body goes into the error message.
const BODY_SNIPPET: usize = 200;

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "http",
            kind: PluginKind::Publisher,
            summary: "POSTs each batch as gzip-compressed JSON to a URL, with retries",
            config_schema: PluginDescription::schema_of::<HttpConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: HttpConfig = raw.decode()?;
    // The URL may carry credentials: errors about it never quote it.
    let url = Url::parse(&cfg.url)
        .map_err(|e| raw.error("url", format!("not an absolute URL ({e}); write e.g. \"https://skymeter.example.com/api/v1/batches\"")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(raw.error(
            "url",
            format!(
                "scheme `{}` is not supported; use http or https",
                url.scheme()
            ),
        ));
    }
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
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout.0)
        // A redirected POST would turn into a GET: report redirects instead of following them.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| raw.error("url", format!("cannot set up the HTTP client: {e}")))?;
    Ok(Box::new(HttpPublisher {
        client,
        shown_url: shown(&url),
        url,
        headers,
        timeout: cfg.timeout.0,
        retry: cfg.retry,
    }))
}

/// The URL without credentials, query or fragment: safe for messages and logs.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The publisher: one client (connection pool) for its lifetime.
pub struct HttpPublisher {
    client: reqwest::Client,
    url: Url,
    shown_url: String,
    /// Includes the secrets, marked sensitive.
    headers: HeaderMap,
    timeout: Duration,
    retry: RetryPolicy,
}

impl HttpPublisher {
    async fn send(&self, body: Vec<u8>) -> Result<(), Failed> {
        let fail = |error: PluginError| Failed::from(error);
        let mut resp = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| fail(self.request_error(e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = crate::common::retry_after::retry_after(resp.headers());
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Read only what the message shows.
        let mut head = Vec::new();
        while head.len() < BODY_SNIPPET {
            match resp.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
        head.truncate(BODY_SNIPPET);
        let snippet = String::from_utf8_lossy(&head).trim().to_string();
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
        Err(Failed { error, retry_after })
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
                    chain(&e)
                ),
            )
        } else {
            (
                ErrorKind::Unavailable,
                format!("POST {} failed: {}", self.shown_url, chain(&e)),
            )
        };
        PluginError::new(kind, what).with("url", self.shown_url.clone())
    }
}

/// An error and its sources, `a: b: c`, skipping parts that repeat the one before.
fn chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p: &String| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
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
        _ => (
            ErrorKind::BadResponse,
            "the receiver rejected the batch; check `url` and what it accepts",
        ),
    }
}

/// The batch as gzip-compressed JSON.
pub fn encode(batch: &Batch) -> Result<Vec<u8>, PluginError> {
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
impl Publisher for HttpPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let body = encode(batch)?;
        let this = &*self;
        let body = &body;
        this.retry
            .run(&format!("POST {}", this.shown_url), || async move {
                this.send(body.clone()).await
            })
            .await
    }
}

#[cfg(test)]
mod tests;
