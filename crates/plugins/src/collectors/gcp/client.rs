//! The GCP calls: an OAuth2 access token from Application Default Credentials (gcp_auth),
//! the cloud driver's REST client (every request counted; 429, 5xx and connection errors
//! retried by the collector's retry policy, `Retry-After` honoured), `pageToken` paging, and
//! Google's error answers turned into errors that say what to do.
//!
//! Hand-written rather than generated clients: Google ships no maintained Rust client for
//! Compute, Monitoring, GKE, Cloud Functions, Cloud SQL Admin and BigQuery that can all be
//! pointed at one local endpoint, and the collector needs only a handful of GET/POST calls
//! with the same paging (`pageToken`/`nextPageToken`) and error shape (`{"error": {...}}`).

use super::calls::ApiCalls;
use crate::cloud::rest::{RestCall, RestClient};
use serde::de::DeserializeOwned;
use serde_json::Value;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::sync::Arc;

/// The OAuth2 scope asked for: read-only access to every API the collector calls
/// (`cloud-platform.read-only` does not cover BigQuery jobs.query, which creates a job).
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Which call is made: the API method (self-accounting, errors), the IAM permission it needs
/// and a predefined role that grants it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub api: &'static str,
    pub permission: &'static str,
    pub role: &'static str,
}

impl RestCall for Call {
    fn api(&self) -> &'static str {
        self.api
    }

    fn status_error(&self, status: u16, body: &str, tries: u32) -> PluginError {
        let (message, reason) = google_error(body);
        status_error(self, status, tries, &message, &reason)
    }
}

/// Where access tokens come from.
pub type TokenSource = Arc<dyn gcp_auth::TokenProvider>;

pub struct Api {
    rest: RestClient,
    /// `endpoint_url`: replaces the scheme and host of every API (tests, private endpoints).
    base: Option<String>,
    tokens: TokenSource,
}

impl Api {
    pub fn new(
        http: reqwest::Client,
        base: Option<String>,
        tokens: TokenSource,
        calls: Arc<ApiCalls>,
        retry: RetryPolicy,
    ) -> Api {
        Api {
            rest: RestClient::new(http, calls, retry, "GCP"),
            base: base.map(|b| b.trim_end_matches('/').to_string()),
            tokens,
        }
    }

    /// Where this client's access tokens come from.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// `https://{host}{path}`, or `{endpoint_url}{path}` when overridden.
    pub fn url(&self, host: &str, path: &str) -> String {
        match &self.base {
            Some(b) => format!("{b}{path}"),
            None => format!("https://{host}{path}"),
        }
    }

    async fn token(&self, call: &Call) -> Result<Arc<gcp_auth::Token>, PluginError> {
        self.tokens.token(&[SCOPE]).await.map_err(|e| {
            PluginError::new(
                ErrorKind::Auth,
                format!(
                    "{}: could not get an access token ({}): check `credentials_file`, GOOGLE_APPLICATION_CREDENTIALS (a service-account key whose token_uri is reachable), `gcloud auth application-default login`, or the metadata server",
                    call.api,
                    skymeter_plugin_api::error_chain(&e)
                ),
            )
            .with("api", call.api)
        })
    }

    /// GET `url` with `query`, as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        call: &Call,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<T, PluginError> {
        let token = self.token(call).await?;
        self.rest
            .json(call, Some(token.as_str()), |http| {
                http.get(url).query(query)
            })
            .await
    }

    /// POST `body` as JSON to `url`, as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        call: &Call,
        url: &str,
        body: &Value,
    ) -> Result<T, PluginError> {
        let token = self.token(call).await?;
        self.rest
            .json(call, Some(token.as_str()), |http| http.post(url).json(body))
            .await
    }

    /// Every page of a list: `query` plus `pageToken` until the answer has no
    /// `nextPageToken`; `each` gets every page.
    pub async fn pages<T: DeserializeOwned + Paged>(
        &self,
        call: &Call,
        url: &str,
        query: &[(&str, String)],
        mut each: impl FnMut(T),
    ) -> Result<(), PluginError> {
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            if let Some(t) = token.take() {
                q.push(("pageToken", t));
            }
            let page: T = self.get(call, url, &q).await?;
            let next = page.next_page_token().map(str::to_string);
            each(page);
            match next {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(()),
            }
        }
    }
}

/// A page of a list that has a `nextPageToken`.
pub trait Paged {
    fn next_page_token(&self) -> Option<&str>;
}

impl Paged for Value {
    fn next_page_token(&self) -> Option<&str> {
        self.get("nextPageToken").and_then(Value::as_str)
    }
}

/// `error.message` and the first `error.errors[].reason` / `error.details[].reason` of a
/// Google API error body (`{"error": {"code": 403, "message": "...", "status": "...", ...}}`).
fn google_error(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let message = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let reason = e["errors"][0]["reason"]
        .as_str()
        .or_else(|| {
            e["details"].as_array().and_then(|d| {
                d.iter()
                    .find_map(|x| x.get("reason").and_then(Value::as_str))
            })
        })
        .or_else(|| e["status"].as_str())
        .unwrap_or("")
        .to_string();
    (message, reason)
}

fn status_error(call: &Call, code: u16, attempts: u32, message: &str, reason: &str) -> PluginError {
    let api = call.api;
    let (kind, text) = match code {
        401 => (
            ErrorKind::Auth,
            format!("{api}: GCP rejected the access token (401): check `credentials_file`, GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`"),
        ),
        403 if reason == "SERVICE_DISABLED" || reason == "accessNotConfigured" => (
            ErrorKind::Permission,
            format!("{api} was denied (403): the API is not enabled in the project; enable it (`gcloud services enable`) or leave the project out"),
        ),
        403 => (
            ErrorKind::Permission,
            format!(
                "{api} was denied (403): grant the permission {} (e.g. the role {}) to the credentials skymeter uses",
                call.permission, call.role
            ),
        ),
        429 => (
            ErrorKind::Unavailable,
            format!("{api} stayed throttled (429) after {attempts} attempts: lower max_concurrency or run less often"),
        ),
        // INVALID_ARGUMENT / FAILED_PRECONDITION: the request as configured cannot be served
        // (a project id, metric type or filter from the config; GCP's message says which).
        400 => (
            ErrorKind::Config,
            format!("{api} refused the request as invalid (400): check the project id and the metric types and filters in the config"),
        ),
        404 => (ErrorKind::Other, format!("{api}: not found (404): check the project id")),
        c if c >= 500 => (
            ErrorKind::Unavailable,
            format!("{api} failed with {c} after {attempts} attempts"),
        ),
        c => (ErrorKind::Other, format!("{api} failed ({c})")),
    };
    let text = if message.is_empty() {
        text
    } else {
        format!("{text}: {message}")
    };
    PluginError::new(kind, text).with("api", api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_reads_message_and_reason() {
        let body = r#"{"error":{"code":403,"message":"Permission 'compute.instances.list' denied","errors":[{"message":"x","domain":"global","reason":"forbidden"}],"status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            google_error(body),
            (
                "Permission 'compute.instances.list' denied".to_string(),
                "forbidden".to_string()
            )
        );
        let body = r#"{"error":{"code":403,"message":"API disabled","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED"}]}}"#;
        assert_eq!(google_error(body).1, "SERVICE_DISABLED");
    }

    #[test]
    fn an_invalid_request_is_a_config_error_with_googles_message() {
        let call = Call {
            api: "monitoring.timeSeries.list",
            permission: "monitoring.timeSeries.list",
            role: "roles/monitoring.viewer",
        };
        let body = r#"{"error":{"code":400,"message":"Field aggregation.perSeriesAligner had an invalid value","status":"INVALID_ARGUMENT"}}"#;
        let e = call.status_error(400, body, 1);
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("invalid (400)"), "{}", e.message);
        assert!(e.message.contains("perSeriesAligner"), "{}", e.message);
    }
}
