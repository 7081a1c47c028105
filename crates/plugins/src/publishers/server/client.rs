//! The HTTP side: the three API calls and what each answer means for the batch.
//!
//! | ingest answer | meaning |
//! |---|---|
//! | 2xx with an ingest receipt for the batch | delivered (`duplicate = true` too) |
//! | 400, 422 | the batch is invalid: rejected, never retried |
//! | 409 | the server holds other content under this batch_id: rejected, never retried |
//! | 413 | the batch is too large for the server: rejected (see the README) |
//! | 401, 403 | auth problem: kept, retried, logged as an error |
//! | 404, 3xx, other 4xx, 2xx without a receipt | `url` is not a skymeter server: kept, retried, error |
//! | 408, 429, 5xx, connection errors, timeouts | kept, retried (honouring `Retry-After`) |

use crate::common::delivery::{Deliver, Failure, Outcome};
use crate::common::http_post::{
    client_builder, error_chain, location, read_capped, rejection_report,
};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use skymeter_model::api::{AgentRegistration, ApiErrorBody, Heartbeat, IngestResponse};
use skymeter_plugin_api::async_trait;
use std::time::Duration;

/// How much of an answer is read: error bodies with every bad field can be long.
const BODY_CAP: usize = 64 * 1024;
/// How much of a body that is not the API's error JSON a message shows.
const SNIPPET: usize = 200;
/// How many bad fields of an `invalid_batch` answer a message lists.
const FIELDS_SHOWN: usize = 5;

pub(super) struct Client {
    http: reqwest::Client,
    /// The server's base URL, path ending in `/`.
    base: Url,
    has_token: bool,
    timeout: Duration,
}

/// Whether the server knows the agent a heartbeat came from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Known {
    Yes,
    /// 404: register again.
    No,
}

impl Client {
    /// `auth` is the `Authorization` header value, marked sensitive.
    pub fn new(
        mut base: Url,
        auth: Option<HeaderValue>,
        timeout: Duration,
    ) -> Result<Client, reqwest::Error> {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut headers = HeaderMap::new();
        let has_token = auth.is_some();
        if let Some(v) = auth {
            headers.insert(AUTHORIZATION, v);
        }
        let http = client_builder(timeout).default_headers(headers).build()?;
        Ok(Client {
            http,
            base,
            has_token,
            timeout,
        })
    }

    /// The base URL as messages show it (it has no credentials: `build` refuses those).
    pub fn shown(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        u
    }

    pub async fn register(&self, reg: &AgentRegistration) -> Result<(), Failure> {
        let url = self.endpoint(&["api", "v1", "agents", "register"]);
        let what = format!("POST {url}");
        let mut resp = self
            .http
            .post(url)
            .json(reg)
            .send()
            .await
            .map_err(|e| self.request_failure(&what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let (retry_after, location) = (
            crate::common::retry_after::retry_after(resp.headers()),
            location(&resp),
        );
        let text = read_capped(&mut resp, BODY_CAP).await;
        Err(self.status_failure(&what, status, retry_after, location, &text))
    }

    pub async fn heartbeat(&self, agent_id: &str, hb: &Heartbeat) -> Result<Known, Failure> {
        let url = self.endpoint(&["api", "v1", "agents", agent_id, "heartbeat"]);
        let what = format!("POST {url}");
        let mut resp = self
            .http
            .post(url)
            .json(hb)
            .send()
            .await
            .map_err(|e| self.request_failure(&what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Known::Yes);
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(Known::No);
        }
        let (retry_after, location) = (
            crate::common::retry_after::retry_after(resp.headers()),
            location(&resp),
        );
        let text = read_capped(&mut resp, BODY_CAP).await;
        Err(self.status_failure(&what, status, retry_after, location, &text))
    }

    fn status_failure(
        &self,
        what: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        location: Option<String>,
        body: &[u8],
    ) -> Failure {
        let (needs_action, hint) = match status.as_u16() {
            401 if self.has_token => (true, "the server did not accept the token set in `token` (not shown here); set `token` to an agent token of this server, e.g. token = \"${SKYMETER_TOKEN}\", and restart the agent"),
            401 => (true, "no `token` is set and the server wants one; add token = \"${SKYMETER_TOKEN}\" with an agent token of this server and restart the agent"),
            403 => (true, "the token set in `token` (not shown here) is valid but not allowed to do this; use an agent token and restart the agent"),
            404 => (true, "check that `url` is the base URL of a skymeter server (without /api/v1)"),
            300..=399 => (true, "redirects are not followed; set `url` to the server's final address"),
            408 | 429 => (false, "the server asks to slow down"),
            500..=599 => (false, "the server failed"),
            _ => (true, "unexpected answer; check that `url` is the base URL of a skymeter server"),
        };
        let mut message = format!("{what} answered {status}");
        if let Some(to) = location.filter(|_| status.is_redirection()) {
            message.push_str(&format!(" (redirect to {to})"));
        }
        let detail = describe_error_body(body);
        if !detail.is_empty() {
            message.push_str(&format!(": {detail}"));
        }
        message.push_str(&format!("; {hint}"));
        Failure {
            message,
            retry_after,
            needs_action,
        }
    }

    fn request_failure(&self, what: &str, e: reqwest::Error) -> Failure {
        let e = e.without_url();
        let message = if e.is_timeout() {
            format!(
                "{what} timed out after {}; raise `timeout` or check the server",
                humantime::format_duration(self.timeout)
            )
        } else if e.is_connect() {
            format!(
                "cannot connect to {}: {}; check `url` and that the server is up",
                self.shown(),
                error_chain(&e)
            )
        } else {
            format!("{what} failed: {}", error_chain(&e))
        };
        Failure {
            message,
            retry_after: None,
            needs_action: false,
        }
    }
}

/// The API's error JSON as `code: message (path: problem, …)`, else the start of the body.
fn describe_error_body(body: &[u8]) -> String {
    if let Ok(b) = serde_json::from_slice::<ApiErrorBody>(body) {
        let mut s = format!("{}: {}", b.error.code, b.error.message);
        if !b.error.fields.is_empty() {
            let shown: Vec<String> = b
                .error
                .fields
                .iter()
                .take(FIELDS_SHOWN)
                .map(|f| f.to_string())
                .collect();
            let more = b.error.fields.len().saturating_sub(FIELDS_SHOWN);
            s.push_str(&format!(" ({}", shown.join(", ")));
            if more > 0 {
                s.push_str(&format!(", and {more} more"));
            }
            s.push(')');
        }
        return s;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]);
    text.trim().to_string()
}

#[async_trait]
impl Deliver for Client {
    fn destination(&self) -> &str {
        self.shown()
    }

    /// `POST /api/v1/ingest`; see the table above for what each answer means.
    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        let url = self.endpoint(&["api", "v1", "ingest"]);
        let what = format!("POST {url}");
        let size = body.len();
        let resp = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(self.request_failure(&what, e)),
        };
        let status = resp.status();
        let retry_after = crate::common::retry_after::retry_after(resp.headers());
        let location = location(&resp);
        let text = read_capped(&mut resp, BODY_CAP).await;
        if status.is_success() {
            return match serde_json::from_slice::<IngestResponse>(&text) {
                Ok(r) if r.batch_id.to_string() == batch_id => {
                    if r.duplicate {
                        tracing::debug!(target: "skymeter::server", "the server already had batch {batch_id} (a resend): stored once");
                    }
                    Outcome::Delivered
                }
                Ok(r) => Outcome::Failed(Failure {
                    message: format!("{what} answered {status} for batch {} instead of {batch_id}; is `url` a skymeter server?", r.batch_id),
                    retry_after: None,
                    needs_action: true,
                }),
                Err(_) => Outcome::Failed(Failure {
                    message: format!(
                        "{what} answered {status} without an ingest receipt, so the batch may not be stored; check that `url` is the base URL of a skymeter server"
                    ),
                    retry_after: None,
                    needs_action: true,
                }),
            };
        }
        match status.as_u16() {
            400 | 409 | 413 | 422 => {
                let mut detail = describe_error_body(&text);
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    detail.push_str(&format!(
                        "; the batch is {size} bytes compressed: raise the server's body limit or make the task's batches smaller (fewer resources or metrics per task). A batch is not split: its parts would need new batch ids and the server could not dedupe them"
                    ));
                }
                Outcome::Rejected {
                    answer: status.to_string(),
                    reason: detail,
                    report: rejection_report(batch_id, url.as_str(), status.as_u16(), &text),
                }
            }
            _ => Outcome::Failed(self.status_failure(&what, status, retry_after, location, &text)),
        }
    }
}
