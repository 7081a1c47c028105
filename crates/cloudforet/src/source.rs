//! The skymeter server, read over its HTTP API: `GET /api/v1/resources` (every page) for
//! the inventory and the Prometheus-compatible `GET /api/v1/query` for the utilization.
//! Errors say which server and what to do, and never carry the token.

use crate::options::Secret;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Why the skymeter server could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// No connection, a timeout, or a 5xx.
    #[error("{0}")]
    Unavailable(String),
    /// 401: no token, or not one the server knows.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the token lacks the `read` scope.
    #[error("{0}")]
    PermissionDenied(String),
    /// Any other refusal, or an answer that is not what the API documents.
    #[error("{0}")]
    Failed(String),
}

/// One resource as `GET /api/v1/resources` lists it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Resource {
    pub key: String,
    pub provider: String,
    pub account: String,
    pub region: String,
    pub kind: String,
    pub native_type: String,
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub attributes: Map<String, Value>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Resource>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// One element of an instant vector: its labels and (finite) value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Server-side filters of the resource list (one value each; the plugin filters further).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceQuery<'a> {
    pub provider: Option<&'a str>,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub kind: Option<&'a str>,
}

/// A client of one skymeter server.
#[derive(Clone)]
pub struct Source {
    http: reqwest::Client,
    secret: Secret,
}

impl Source {
    pub fn new(secret: Secret) -> Source {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("skymeter-cloudforet/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client builds");
        Source { http, secret }
    }

    /// The server's base URL, for messages (no token in it).
    pub fn server(&self) -> &str {
        self.secret.url.as_str().trim_end_matches('/')
    }

    /// Checks that the server answers and the token may read: one resource of the list.
    pub async fn check(&self) -> Result<(), SourceError> {
        self.get("/api/v1/resources", &[("limit", "1".into())])
            .await
            .map(|_| ())
    }

    /// Every resource `q` selects, following `next_cursor` to the last page.
    pub async fn resources(&self, q: &ResourceQuery<'_>) -> Result<Vec<Resource>, SourceError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("limit", "1000".to_string())];
            for (k, v) in [
                ("provider", q.provider),
                ("account", q.account),
                ("region", q.region),
                ("kind", q.kind),
            ] {
                if let Some(v) = v {
                    params.push((k, v.to_string()));
                }
            }
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            let v = self.get("/api/v1/resources", &params).await?;
            let page: Page = serde_json::from_value(v).map_err(|e| {
                SourceError::Failed(format!(
                    "{}/api/v1/resources answered a page this plugin cannot read ({e}); is \
                     it a skymeter server?",
                    self.server()
                ))
            })?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Evaluates the PromQL `query` at `at`: the samples of its instant vector (non-finite
    /// values left out).
    pub async fn query(&self, query: &str, at: DateTime<Utc>) -> Result<Vec<Sample>, SourceError> {
        let v = self
            .get(
                "/api/v1/query",
                &[
                    ("query", query.to_string()),
                    ("time", at.timestamp().to_string()),
                ],
            )
            .await?;
        parse_vector(&v).map_err(|e| {
            SourceError::Failed(format!("{}/api/v1/query `{query}`: {e}", self.server()))
        })
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, SourceError> {
        let url = format!("{}{path}", self.server());
        let mut req = self.http.get(&url).query(params);
        if let Some(t) = &self.secret.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            SourceError::Unavailable(format!(
                "cannot reach the skymeter server at {}: {}; check secret_data.skymeter_url \
                 (or --server) and that the server runs",
                self.server(),
                self.redact(&chain(&e.without_url()))
            ))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            SourceError::Unavailable(format!(
                "{url}: the answer broke off: {}",
                self.redact(&chain(&e.without_url()))
            ))
        })?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return parsed.ok_or_else(|| {
                SourceError::Failed(format!("{url} answered something that is not JSON"))
            });
        }
        let said = parsed
            .as_ref()
            .and_then(|v| match &v["error"] {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("message").and_then(Value::as_str).map(String::from),
                _ => None,
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
        let said = self.redact(&said);
        Err(match status.as_u16() {
            401 => SourceError::Unauthenticated(format!(
                "the skymeter server at {} refused the token ({status}: {said}); give a \
                 token with the read scope in secret_data.token (or --token)",
                self.server()
            )),
            403 => SourceError::PermissionDenied(format!(
                "the skymeter server at {} refused the token ({status}: {said}); it needs \
                 the read scope (skymeter token create --name cloudforet --scope read)",
                self.server()
            )),
            s if s >= 500 => SourceError::Unavailable(format!("{url}: {status}: {said}")),
            _ => SourceError::Failed(format!("{url}: {status}: {said}")),
        })
    }

    /// `text` with the token, should it appear, replaced.
    fn redact(&self, text: &str) -> String {
        match &self.secret.token {
            Some(t) if !t.is_empty() => text.replace(t.as_str(), "[token]"),
            _ => text.to_string(),
        }
    }
}

/// An error with its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// The samples of a Prometheus `vector` answer.
pub fn parse_vector(v: &Value) -> Result<Vec<Sample>, String> {
    if v["status"] != "success" {
        return Err(format!(
            "the answer's status is {}, not success",
            v["status"]
        ));
    }
    let data = &v["data"];
    if data["resultType"] != "vector" {
        return Err(format!(
            "the answer is a {}, not an instant vector",
            data["resultType"]
        ));
    }
    let mut out = Vec::new();
    for s in data["result"].as_array().ok_or("no `result` list")? {
        let labels = s["metric"]
            .as_object()
            .ok_or("a sample without `metric` labels")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let value: f64 = s["value"][1]
            .as_str()
            .ok_or("a sample without a [time, \"value\"] pair")?
            .parse()
            .map_err(|e| format!("a sample's value is not a number: {e}"))?;
        if value.is_finite() {
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_parse_and_skip_non_finite_values() {
        let v = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"resource_id": "i-1", "stat": "avg"}, "value": [1.0, "12.5"]},
            {"metric": {"resource_id": "i-2", "stat": "avg"}, "value": [1.0, "NaN"]},
        ]}});
        let s = parse_vector(&v).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 12.5);
        assert_eq!(s[0].labels["resource_id"], "i-1");
        assert!(parse_vector(&json!({"status": "error"})).is_err());
        assert!(parse_vector(&json!({"status": "success",
            "data": {"resultType": "matrix", "result": []}}))
        .is_err());
    }
}
