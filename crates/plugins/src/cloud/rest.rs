//! One REST client for the clouds called over plain HTTPS + JSON (GCP and Azure today; a
//! provider to come uses it too): a bearer token, every try counted per API, 429 and 5xx
//! and connection errors retried by the collector's [`RetryPolicy`] (jitter, `Retry-After`,
//! attempts), a `204 No Content` read as no body, and the cloud's error answers turned into
//! errors that say what to do by the call itself ([`RestCall`]).
//!
//! AWS is not called through it: the official SDK has its own client and retry (configured
//! from the same `max_attempts` and `backoff` keys).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::retry::{Failed, RetryLog, RetryPolicy};
use skymeter_plugin_api::{error_chain, ErrorKind, PluginError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One kind of call a provider makes: its API name (counted, named in every error) and what
/// its cloud's error answers mean.
pub trait RestCall: Send + Sync {
    /// The API method, as counted in `<cloud>.api_calls{api}`
    /// (`compute.instances.aggregatedList`).
    fn api(&self) -> &'static str;

    /// The error for an answer with `status` (not 2xx) and `body` after `tries` tries: the
    /// cloud's own message and what to do (the permission or role to grant, the API to
    /// enable…). 429 and 5xx must be `ErrorKind::Unavailable` (they are retried).
    fn status_error(&self, status: u16, body: &str, tries: u32) -> PluginError;

    /// The wait a throttled answer asks for: `Retry-After` unless the cloud has its own
    /// headers.
    fn retry_after(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        crate::common::retry_after::retry_after(headers)
    }
}

/// A provider's client over one `reqwest::Client` (one connection pool per collection).
pub struct RestClient {
    http: reqwest::Client,
    calls: Arc<ApiCallCounts>,
    retry: RetryPolicy,
    /// The cloud as messages name it ("GCP", "Azure").
    cloud: &'static str,
}

impl RestClient {
    pub fn new(
        http: reqwest::Client,
        calls: Arc<ApiCallCounts>,
        retry: RetryPolicy,
        cloud: &'static str,
    ) -> RestClient {
        RestClient {
            http,
            calls,
            retry,
            cloud,
        }
    }

    /// The counts of calls made through this client (and the token calls the provider
    /// counts itself).
    pub fn calls(&self) -> &Arc<ApiCallCounts> {
        &self.calls
    }

    /// Sends the request `build` makes with `token` as its bearer (none for a public API),
    /// trying again as the policy says; the body of the success, or `None` for
    /// `204 No Content`.
    pub async fn send(
        &self,
        call: &impl RestCall,
        token: Option<&str>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Option<Bytes>, PluginError> {
        let api = call.api();
        let tries = AtomicU32::new(0);
        let (tries, build) = (&tries, &build);
        self.retry
            .run_logged(RetryLog::Debug, api, || async move {
                let n = tries.fetch_add(1, Ordering::Relaxed) + 1;
                self.calls.count(api);
                let mut request =
                    build(&self.http).header(reqwest::header::ACCEPT, "application/json");
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| self.transport_error(api, n, &e))?;
                let status = response.status();
                if status == reqwest::StatusCode::NO_CONTENT {
                    return Ok(None);
                }
                if status.is_success() {
                    return response
                        .bytes()
                        .await
                        .map(Some)
                        .map_err(|e| self.transport_error(api, n, &e));
                }
                let retry_after = call.retry_after(response.headers());
                let body = response.text().await.unwrap_or_default();
                Err(Failed {
                    error: call
                        .status_error(status.as_u16(), &body, n)
                        .with("api", api),
                    retry_after,
                })
            })
            .await
    }

    /// [`send`](Self::send), the answer decoded as `T` (a `204` decodes as JSON `null`:
    /// `Value::Null`, `None`, or an error for a type that needs content).
    pub async fn json<T: DeserializeOwned>(
        &self,
        call: &impl RestCall,
        token: Option<&str>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<T, PluginError> {
        let body = self.send(call, token, build).await?;
        let bytes: &[u8] = body.as_deref().unwrap_or(b"null");
        serde_json::from_slice(bytes).map_err(|e| {
            PluginError::new(
                ErrorKind::BadResponse,
                format!(
                    "{} answered JSON that is not the documented shape: {e}",
                    call.api()
                ),
            )
            .with("api", call.api())
        })
    }

    /// A try that got no answer: a timeout or a connection that failed (both retried).
    fn transport_error(&self, api: &str, tries: u32, e: &reqwest::Error) -> Failed {
        let (kind, what) = if e.is_timeout() {
            (ErrorKind::Timeout, "timed out".to_string())
        } else {
            (
                ErrorKind::Unavailable,
                format!("could not reach {}", self.cloud),
            )
        };
        PluginError::new(
            kind,
            format!("{api}: {what} after {tries} tries: {}", error_chain(e)),
        )
        .with("api", api)
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::get;
    use std::sync::atomic::AtomicUsize;

    struct Probe;

    impl RestCall for Probe {
        fn api(&self) -> &'static str {
            "probe.get"
        }
        fn status_error(&self, status: u16, body: &str, tries: u32) -> PluginError {
            let kind = if status == 429 || status >= 500 {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Permission
            };
            PluginError::new(kind, format!("{status} after {tries}: {body}"))
        }
    }

    /// A server whose n-th answer is `answers[n]` (the last repeats), counting requests.
    async fn serve(
        answers: Vec<(u16, Option<&'static str>, &'static str)>,
    ) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().route(
            "/x",
            get(move || {
                let h = h.clone();
                let answers = answers.clone();
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
                    let (status, retry_after, body) = answers[n];
                    let mut r = axum::response::Response::new(axum::body::Body::from(body));
                    *r.status_mut() = StatusCode::from_u16(status).unwrap();
                    if let Some(ra) = retry_after {
                        r.headers_mut().insert("retry-after", ra.parse().unwrap());
                    }
                    r
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    fn client(attempts: usize) -> RestClient {
        RestClient::new(
            reqwest::Client::new(),
            Arc::new(ApiCallCounts::default()),
            RetryPolicy::new(attempts, Duration::from_millis(1), Duration::from_secs(2)),
            "Test",
        )
    }

    #[tokio::test]
    async fn retries_429_and_5xx_then_reads_the_answer_counting_every_try() {
        let (url, hits) = serve(vec![
            (429, Some("0"), ""),
            (503, None, ""),
            (200, None, r#"{"ok":true}"#),
        ])
        .await;
        let c = client(3);
        let v: serde_json::Value = c.json(&Probe, Some("t"), |h| h.get(&url)).await.unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(c.calls().get("probe.get"), 3);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_with_the_calls_own_error() {
        let (url, hits) = serve(vec![(429, None, "slow down")]).await;
        let e = client(2)
            .send(&Probe, Some("t"), |h| h.get(&url))
            .await
            .unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(e.message, "429 after 2: slow down");
        assert_eq!(e.context.get("api").map(String::as_str), Some("probe.get"));
    }

    #[tokio::test]
    async fn does_not_retry_what_retrying_cannot_fix() {
        let (url, hits) = serve(vec![(403, None, "no")]).await;
        let e = client(5)
            .send(&Probe, Some("t"), |h| h.get(&url))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, hits.load(Ordering::SeqCst)),
            (ErrorKind::Permission, 1)
        );
    }

    #[tokio::test]
    async fn no_content_is_no_body() {
        let (url, _) = serve(vec![(204, None, "")]).await;
        let c = client(1);
        assert_eq!(
            c.send(&Probe, Some("t"), |h| h.get(&url)).await.unwrap(),
            None
        );
        let v: serde_json::Value = c.json(&Probe, Some("t"), |h| h.get(&url)).await.unwrap();
        assert!(v.is_null());
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_then_reported() {
        let port = skymeter_testkit::net::free_port();
        let url = format!("http://127.0.0.1:{port}/x");
        let c = client(2);
        let e = c
            .send(&Probe, Some("t"), |h| h.get(&url))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(
            e.message
                .starts_with("probe.get: could not reach Test after 2 tries"),
            "{}",
            e.message
        );
        assert_eq!(c.calls().get("probe.get"), 2);
    }
}
