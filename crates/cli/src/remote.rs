//! What the commands that talk to a running server share: where it is and the token
//! (`--server`, `--token`, or `SKYMETER_SERVER`, `SKYMETER_TOKEN`), and a JSON call.

use crate::output::{FAILURE, USAGE};
use clap::Args;
use std::process::ExitCode;

/// Where a command that talks to a running server finds it, and its token.
#[derive(Debug, Args)]
pub struct ServerOpts {
    /// The server's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "SKYMETER_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// An API token (the `read` scope to read; `admin` to change, as `rating rerate`).
    #[arg(long, env = "SKYMETER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// One call to the server's API; the JSON answer, or the exit code after saying why not
/// (2 when the server refused the request as wrong, 1 for anything else).
pub async fn call(
    opts: &ServerOpts,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ExitCode> {
    let endpoint = Endpoint {
        base: &opts.server,
        token: opts.token.as_deref(),
        what: "the server",
        where_flag: "--server or SKYMETER_SERVER",
        token_flag: "--token or SKYMETER_TOKEN",
    };
    request(&endpoint, method, path, body.map_or(Body::None, Body::Json)).await
}

/// Where an API is and how to say so in errors (the server's, or an agent's).
pub struct Endpoint<'a> {
    pub base: &'a str,
    pub token: Option<&'a str>,
    /// `the server`, `the agent`.
    pub what: &'a str,
    /// The flags that set the address and the token, for hints.
    pub where_flag: &'a str,
    pub token_flag: &'a str,
}

/// A request body.
pub enum Body {
    None,
    Json(serde_json::Value),
    Text {
        content_type: &'static str,
        text: String,
    },
}

/// One call to an API that answers JSON, errors as `{"error": {"message"}}`.
pub async fn request(
    ep: &Endpoint<'_>,
    method: reqwest::Method,
    path: &str,
    body: Body,
) -> Result<serde_json::Value, ExitCode> {
    let url = format!("{}{path}", ep.base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| {
            eprintln!("error: cannot build an HTTP client: {e}");
            ExitCode::from(FAILURE)
        })?;
    let mut req = client.request(method.clone(), &url);
    if let Some(t) = ep.token {
        req = req.bearer_auth(t);
    }
    req = match body {
        Body::None => req,
        Body::Json(b) => req.json(&b),
        Body::Text { content_type, text } => req
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(text),
    };
    let resp = req.send().await.map_err(|e| {
        eprintln!(
            "error: {method} {url}: {e}; is {} running there? ({})",
            ep.what, ep.where_flag
        );
        ExitCode::from(FAILURE)
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        eprintln!(
            "error: {method} {url}: {status}, not a JSON answer: {}",
            text.trim()
        );
        ExitCode::from(FAILURE)
    })?;
    if status.is_success() {
        return Ok(value);
    }
    let message = value["error"]["message"].as_str().unwrap_or(text.trim());
    eprintln!("error: {method} {url}: {status}: {message}");
    if status == 401 || status == 403 {
        eprintln!("give a token with the needed scope: {}", ep.token_flag);
    }
    Err(ExitCode::from(if status == 400 { USAGE } else { FAILURE }))
}

/// `GET path`, through [`call`].
pub async fn get(opts: &ServerOpts, path: &str) -> Result<serde_json::Value, ExitCode> {
    call(opts, reqwest::Method::GET, path, None).await
}
