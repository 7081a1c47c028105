//! What the publishers that POST batches over HTTP (`server`, `http`) share: the body they
//! send (the batch as gzip-compressed JSON), how much of an answer they read, how they word
//! a failed request, and the report kept beside a batch the receiver refused.

use chrono::Utc;
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::header::LOCATION;
use reqwest::Response;
use reqwest::Url;
use skymeter_model::Batch;
use skymeter_plugin_api::{ConfigError, ErrorKind, PluginError, RawConfig};
use std::io::Write;
use std::time::Duration;

/// The publisher's `url`, checked: absolute, `http` or `https`. `example` ends the message
/// of a URL that does not parse ("write …"). The URL is never quoted in errors: it could
/// carry credentials.
pub fn parse_url(raw: &RawConfig<'_>, text: &str, example: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text)
        .map_err(|e| raw.error("url", format!("not an absolute URL ({e}); {example}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(raw.error(
            "url",
            format!(
                "scheme `{}` is not supported; use http or https",
                url.scheme()
            ),
        ));
    }
    Ok(url)
}

/// An HTTP client for one publisher: `timeout` per request, connection and answer
/// included; redirects reported, not followed (a redirected POST would turn into a GET);
/// skymeter's `User-Agent`.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")))
}

/// The batch as gzip-compressed JSON: the request body, and what a delivery buffer holds.
pub fn gzip_json(batch: &Batch) -> Result<Vec<u8>, PluginError> {
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

/// The first `cap` bytes of an answer's body (error bodies listing every bad field can be
/// long; what a message or a report shows is enough).
pub async fn read_capped(resp: &mut Response, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(cap);
    buf
}

/// Where a redirect points, for the message (redirects are never followed: a redirected
/// POST would turn into a GET).
pub fn location(resp: &Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An error and its sources, `a: b: c`, skipping parts that repeat the one before.
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// What goes beside a refused batch in a delivery buffer's `rejected/`: the batch id, the
/// URL (as messages show it: no credentials), the status, when, and the receiver's answer
/// (its JSON when it is JSON, else its text).
pub fn rejection_report(batch_id: &str, url: &str, status: u16, body: &[u8]) -> serde_json::Value {
    let response = serde_json::from_slice::<serde_json::Value>(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
    serde_json::json!({
        "batch_id": batch_id,
        "url": url,
        "status": status,
        "rejected_at": Utc::now(),
        "response": response,
    })
}

/// The innermost cause of a request that could not be sent (connection refused, a DNS
/// failure, a TLS error), without the URL, which callers show in their own form.
pub fn send_cause(e: &reqwest::Error) -> String {
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        cause = e.to_string();
    }
    cause
}

/// What a collector says when a request could not be sent: a timeout (with `timeout_hint`),
/// a refused or failed connection (with `connect_hint`), or another cause; never the URL's
/// query (it may carry credentials): `shown_url` is the caller's safe form of it.
pub fn send_failure(
    e: reqwest::Error,
    shown_url: &str,
    timeout: std::time::Duration,
    timeout_hint: &str,
    connect_hint: &str,
) -> (skymeter_plugin_api::ErrorKind, String) {
    use skymeter_plugin_api::ErrorKind;
    if e.is_timeout() {
        return (
            ErrorKind::Timeout,
            format!(
                "no answer from {shown_url} within {}; {timeout_hint}",
                humantime::format_duration(timeout)
            ),
        );
    }
    let is_connect = e.is_connect();
    let cause = send_cause(&e.without_url());
    let message = if is_connect {
        format!("cannot connect to {shown_url}: {cause}; {connect_hint}")
    } else {
        format!("request to {shown_url} failed: {cause}")
    };
    (ErrorKind::Unavailable, message)
}

/// `url` without user and password: what messages and logs may show of it.
pub fn without_credentials(url: &reqwest::Url) -> reqwest::Url {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

/// `host:port` of a URL with a host (the scheme's port when none is written): the default
/// id of what the URL points at.
pub fn host_port(host: &str, url: &reqwest::Url) -> String {
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}
