//! What the publishers that turn each batch into protobuf requests share (`remote_write`,
//! `otlp`): the requests are encoded once, at `publish`, and buffered together as one file
//! (so `publish` costs one fsync per batch, however many requests it makes); the buffer's
//! sender POSTs them in order.
//!
//! A batch too large for one request makes several. The sender remembers (in memory) which
//! of a batch's requests the receiver took, so a retry after an outage sends only the rest:
//! nothing is sent twice unless the agent restarts mid-batch (then the batch's requests go
//! again from its first; Prometheus-compatible receivers take a sample they already hold as
//! a no-op). A request the receiver refuses for good is reported (status, answer, what it
//! held) and skipped; the others still go, and the batch then moves to `rejected/` with the
//! report beside it, so the queue never blocks on data the receiver will not take.

use crate::common::delivery::{
    task_buffers, BufferConfig, Deliver, Delivery, Failure, Outcome, Terms,
};
use crate::common::http_post::{client_builder, error_chain, location, read_capped};
use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use skymeter_model::Batch;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ErrorKind, ExposeSecret, PluginError, Publisher,
    RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The first bytes of a buffered file of requests: the format and its version.
const MAGIC: &[u8; 4] = b"SKR1";
/// How much of a refusal's body goes into the log and the report.
const BODY_SNIPPET: usize = 300;
/// How much of an error answer is read.
const BODY_CAP: usize = 16 * 1024;

/// The requests of one batch as one buffered body: `SKR1`, then each request as its length
/// (4 bytes, little-endian) and its bytes.
pub fn frame(requests: &[Vec<u8>]) -> Vec<u8> {
    let len = 4 + requests.iter().map(|r| 4 + r.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    for r in requests {
        // A request is at most a few megabytes: `max_samples_per_send` bounds it.
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The requests of a buffered body, or why it cannot be read.
pub fn unframe(body: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a buffered list of requests (wrong header)")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("truncated request length")?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(format!(
                "truncated request: {len} bytes announced, {} left",
                tail.len()
            ));
        }
        let (req, tail) = tail.split_at(len);
        out.push(req);
        rest = tail;
    }
    Ok(out)
}

/// `basic_auth = { username, password }`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    /// A secret: write `"${TSDB_PASSWORD}"` rather than the password itself.
    #[schemars(with = "String")]
    pub password: SecretString,
}

/// The request headers of a publisher: the fixed ones (`fixed`: the protocol's, which the
/// user may not override), the user's `headers` (values are secrets, marked sensitive so
/// they never show in debug output) and `Authorization` from `bearer_token` or `basic_auth`.
pub fn request_headers(
    raw: &RawConfig<'_>,
    fixed: &[(HeaderName, &'static str)],
    extra: &BTreeMap<String, SecretString>,
    bearer_token: Option<&SecretString>,
    basic_auth: Option<&BasicAuth>,
) -> Result<HeaderMap, ConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in fixed {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
    let auth_keys = usize::from(bearer_token.is_some()) + usize::from(basic_auth.is_some());
    if auth_keys > 1 {
        return Err(raw.error(
            "bearer_token",
            "`bearer_token` and `basic_auth` both set the Authorization header; keep one",
        ));
    }
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| raw.error("headers", format!("`{name}` is not a valid header name")))?;
        if fixed.iter().any(|(f, _)| *f == name) {
            return Err(raw.error(
                "headers",
                format!("`{name}` is set by the publisher (the protocol fixes it); remove it"),
            ));
        }
        if name == AUTHORIZATION && auth_keys > 0 {
            return Err(raw.error(
                "headers",
                "`authorization` and `bearer_token`/`basic_auth` both set the Authorization header; keep one",
            ));
        }
        let value = sensitive(value.expose_secret()).ok_or_else(|| {
            raw.error("headers", format!("the value of `{name}` has characters a header cannot carry (control characters, non-ASCII)"))
        })?;
        headers.insert(name, value);
    }
    if let Some(token) = bearer_token {
        let value = sensitive(&format!("Bearer {}", token.expose_secret())).ok_or_else(|| {
            raw.error(
                "bearer_token",
                "the token has characters a header cannot carry (control characters, non-ASCII)",
            )
        })?;
        headers.insert(AUTHORIZATION, value);
    }
    if let Some(basic) = basic_auth {
        use base64::Engine;
        let pair = format!("{}:{}", basic.username, basic.password.expose_secret());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let value = sensitive(&format!("Basic {encoded}")).ok_or_else(|| {
            raw.error(
                "basic_auth",
                "the username has characters a header cannot carry",
            )
        })?;
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

fn sensitive(v: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(v).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// What an answer other than 2xx means, as the publisher's protocol says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again later (the receiver is down, overloaded or asks to wait).
    Retry,
    /// Try again later, but a person must fix something first (the URL, the credentials):
    /// logged as an error; the batches wait rather than be thrown away.
    Fix(&'static str),
    /// The receiver will never take this request: report it and go on.
    Refused,
}

/// The encoding of a batch into requests and the description of a refused request, per
/// protocol.
pub trait Protocol: Send + Sync + 'static {
    /// The batch as request bodies (already compressed as the wire wants them); none when
    /// the batch has nothing for the receiver.
    fn encode(&self, batch: &Batch) -> Result<Vec<Vec<u8>>, PluginError>;
    /// What a non-2xx status means.
    fn verdict(&self, status: StatusCode) -> Verdict;
    /// What a refused request held, for the report and the log (e.g. its first series).
    fn describe(&self, request: &[u8]) -> String;
    /// What to warn about in a 2xx answer's body (OTLP's partial success), if anything.
    fn taken(&self, _answer: &[u8]) -> Option<String> {
        None
    }
}

/// The POSTs of one publisher: one client (a connection pool) for its lifetime.
pub struct Poster<P: Protocol> {
    pub protocol: P,
    pub client: reqwest::Client,
    pub url: Url,
    /// The URL without credentials or query: what messages show.
    pub shown_url: String,
    /// Includes secrets, marked sensitive.
    pub headers: HeaderMap,
    pub timeout: Duration,
    /// The batch being delivered: how many of its requests the receiver has taken, and the
    /// refusals so far.
    progress: Mutex<Option<Progress>>,
}

struct Progress {
    batch_id: String,
    next: usize,
    refused: Vec<serde_json::Value>,
}

/// One POST that did not work.
enum NotTaken {
    Failed(Failure),
    Refused { status: StatusCode, body: Vec<u8> },
}

impl<P: Protocol> Poster<P> {
    pub fn new(
        protocol: P,
        client: reqwest::Client,
        url: Url,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Self {
        let mut shown = crate::common::http_post::without_credentials(&url);
        shown.set_query(None);
        shown.set_fragment(None);
        Poster {
            protocol,
            client,
            shown_url: shown.to_string(),
            url,
            headers,
            timeout,
            progress: Mutex::new(None),
        }
    }

    async fn post(&self, body: &[u8]) -> Result<(), NotTaken> {
        let sent = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.to_vec())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(NotTaken::Failed(self.request_failure(e))),
        };
        let status = resp.status();
        if status.is_success() {
            let answer = read_capped(&mut resp, BODY_CAP).await;
            if let Some(warning) = self.protocol.taken(&answer) {
                tracing::warn!(target: "skymeter::delivery", "POST {}: {warning}", self.shown_url);
            }
            return Ok(());
        }
        let retry_after = crate::common::retry_after::retry_after(resp.headers());
        let redirect = location(&resp).filter(|_| status.is_redirection());
        let body = read_capped(&mut resp, BODY_CAP).await;
        let fail = |needs_action: bool, hint: &str| {
            let mut message = format!("POST {} answered {status}", self.shown_url);
            if let Some(to) = &redirect {
                message.push_str(&format!(" (redirect to {to})"));
            }
            let snippet = snippet(&body);
            if !snippet.is_empty() {
                message.push_str(&format!(": {snippet}"));
            }
            message.push_str(&format!("; {hint}"));
            NotTaken::Failed(Failure {
                message,
                retry_after,
                needs_action,
            })
        };
        Err(match self.protocol.verdict(status) {
            Verdict::Retry => fail(false, "retrying"),
            Verdict::Fix(hint) => fail(true, hint),
            Verdict::Refused => NotTaken::Refused { status, body },
        })
    }

    fn request_failure(&self, e: reqwest::Error) -> Failure {
        // The URL may carry credentials; messages show `shown_url` instead.
        let e = e.without_url();
        let message = if e.is_timeout() {
            format!(
                "POST {} timed out after {}; raise `timeout` or check the receiver",
                self.shown_url,
                humantime::format_duration(self.timeout)
            )
        } else if e.is_connect() {
            format!(
                "cannot connect to {}: {}; check `url` and that the receiver is up",
                self.shown_url,
                error_chain(&e)
            )
        } else {
            format!("POST {} failed: {}", self.shown_url, error_chain(&e))
        };
        Failure {
            message,
            retry_after: None,
            needs_action: false,
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Option<Progress>> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first bytes of an answer's body, as a message shows them.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(BODY_SNIPPET)])
        .trim()
        .to_string()
}

#[async_trait]
impl<P: Protocol> Deliver for Poster<P> {
    fn destination(&self) -> &str {
        &self.shown_url
    }

    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        let requests = match unframe(&body) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Rejected {
                    answer: "unreadable batch".into(),
                    reason: format!("the buffered requests cannot be read back ({e})"),
                    report: serde_json::json!({"batch_id": batch_id, "error": e}),
                }
            }
        };
        let (mut next, mut refused) = match self.progress().take() {
            Some(p) if p.batch_id == batch_id => (p.next, p.refused),
            _ => (0, Vec::new()),
        };
        while next < requests.len() {
            match self.post(requests[next]).await {
                Ok(()) => {}
                Err(NotTaken::Failed(f)) => {
                    *self.progress() = Some(Progress {
                        batch_id: batch_id.to_string(),
                        next,
                        refused,
                    });
                    return Outcome::Failed(f);
                }
                Err(NotTaken::Refused { status, body }) => {
                    let held = self.protocol.describe(requests[next]);
                    tracing::error!(
                        target: "skymeter::delivery",
                        "{} refused request {} of {} of batch {batch_id} ({status}): {}; it held {held}; it is not retried, the batch's other requests go on",
                        self.shown_url, next + 1, requests.len(), snippet(&body)
                    );
                    refused.push(serde_json::json!({
                        "request": next + 1,
                        "status": status.as_u16(),
                        "response": String::from_utf8_lossy(&body),
                        "held": held,
                    }));
                }
            }
            next += 1;
        }
        if refused.is_empty() {
            return Outcome::Delivered;
        }
        let first = &refused[0];
        Outcome::Rejected {
            answer: format!(
                "{} of {} request(s) refused, the first with status {}",
                refused.len(),
                requests.len(),
                first["status"]
            ),
            reason: format!(
                "{}; the other requests were delivered",
                snippet(first["response"].as_str().unwrap_or_default().as_bytes())
            ),
            report: serde_json::json!({
                "batch_id": batch_id,
                "url": self.shown_url,
                "rejected_at": Utc::now(),
                "requests": requests.len(),
                "refused": refused,
            }),
        }
    }
}

/// The publisher: `publish` encodes the batch into its requests and buffers them.
pub struct RequestsPublisher<P: Protocol> {
    poster: Arc<Poster<P>>,
    delivery: Delivery<Poster<P>>,
}

impl<P: Protocol> RequestsPublisher<P> {
    pub fn new(poster: Arc<Poster<P>>, delivery: Delivery<Poster<P>>) -> Self {
        RequestsPublisher { poster, delivery }
    }
}

#[async_trait]
impl<P: Protocol> Publisher for RequestsPublisher<P> {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let requests = self.poster.protocol.encode(batch)?;
        if requests.is_empty() {
            return Ok(());
        }
        self.delivery
            .publish(&batch.batch_id.to_string(), frame(&requests))
            .await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        self.delivery.flush().await
    }
}

/// Where and how a publisher of requests sends, as its config says (checked by its
/// `build`, but for `timeout`, checked here).
pub struct Endpoint {
    pub url: Url,
    /// The protocol's headers and the user's (see [`request_headers`]).
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub buffer: BufferConfig,
}

/// A publisher of `protocol`'s requests to `endpoint`, through a buffer in
/// `<data_dir>/buffer/<task>/<plugin>` by default; `flush` at shutdown keeps delivering for
/// three timeouts. Builds the HTTP client; touches neither the disk nor the network.
pub fn build_publisher<P: Protocol>(
    raw: &RawConfig<'_>,
    ctx: &BuildContext,
    terms: Terms,
    protocol: P,
    endpoint: Endpoint,
) -> Result<Box<dyn Publisher>, ConfigError> {
    if endpoint.timeout.is_zero() {
        return Err(raw.error("timeout", "must be more than 0"));
    }
    let client = client_builder(endpoint.timeout)
        .build()
        .map_err(|e| raw.error("url", format!("cannot set up the HTTP client: {e}")))?;
    let poster = Arc::new(Poster::new(
        protocol,
        client,
        endpoint.url,
        endpoint.headers,
        endpoint.timeout,
    ));
    let settings = endpoint.buffer.settings(
        raw,
        terms,
        task_buffers(ctx).join(terms.plugin),
        endpoint.retry,
        endpoint.timeout * 3,
        &ctx.task,
    )?;
    Ok(Box::new(RequestsPublisher::new(
        poster.clone(),
        Delivery::new(settings, poster),
    )))
}

/// An encoding error, as `publish` reports it.
pub fn encode_error(what: impl std::fmt::Display) -> PluginError {
    PluginError::new(ErrorKind::Other, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_refuses_damage() {
        let reqs = vec![b"abc".to_vec(), Vec::new(), vec![7u8; 1000]];
        let body = frame(&reqs);
        let back = unframe(&body).unwrap();
        assert_eq!(back, reqs.iter().map(|r| r.as_slice()).collect::<Vec<_>>());
        assert!(unframe(b"JSON{}").is_err());
        assert!(unframe(&body[..body.len() - 1]).is_err());
        assert_eq!(unframe(MAGIC).unwrap().len(), 0);
    }
}
