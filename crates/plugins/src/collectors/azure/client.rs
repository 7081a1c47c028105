//! ARM, Azure Monitor and Cost Management calls: a bearer token per audience, every page
//! (`nextLink`), sent through the cloud driver's REST client (429 honoured with
//! `Retry-After` or Cost Management's own throttling headers, 5xx and connection errors
//! retried, all by the collection's retry policy); 401 and 403 turned into errors that say
//! what to fix.
//!
//! Hand-written over reqwest + serde: the `azure_mgmt_*` crates are no longer maintained
//! (the unofficial-SDK era ended; the new official Rust SDK has no management-plane crates
//! for Compute, Monitor or Cost Management), and these are a handful of plain JSON calls.

use super::calls::{self, ApiCalls};
use crate::cloud::rest::{RestCall, RestClient};
use azure_core::credentials::TokenCredential;
use serde_json::Value;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::sync::Arc;
use std::time::Duration;

/// What a call needs to be allowed: the RBAC action and the built-in role that grants it.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub action: &'static str,
    pub role: &'static str,
}

pub const READER: &str = "Reader";
pub const MONITORING_READER: &str = "Monitoring Reader";
pub const COST_READER: &str = "Cost Management Reader";

/// The wait a throttled answer asks for: `Retry-After`, or for Cost Management, which
/// throttles per query-processing unit, entity, tenant and client type, the longest of its
/// `x-ms-ratelimit-microsoft.costmanagement-*-retry-after` headers.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(d) = crate::common::retry_after::retry_after(headers) {
        return Some(d);
    }
    let now = chrono::Utc::now();
    headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            n.starts_with("x-ms-ratelimit-microsoft.costmanagement-") && n.ends_with("-retry-after")
        })
        .filter_map(|(_, v)| crate::common::retry_after::parse(v.to_str().ok()?, now))
        .max()
}

/// One Azure call: its API name and the permission it needs.
struct AzureCall {
    api: &'static str,
    needs: Needs,
}

impl RestCall for AzureCall {
    fn api(&self) -> &'static str {
        self.api
    }

    fn status_error(&self, status: u16, body: &str, tries: u32) -> PluginError {
        status_error(self.api, self.needs, status, body, tries)
    }

    fn retry_after(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        retry_after(headers)
    }
}

pub struct Client {
    rest: RestClient,
    cred: Arc<dyn TokenCredential>,
    /// Which credential, for messages.
    cred_name: String,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        cred: Arc<dyn TokenCredential>,
        cred_name: String,
        calls: Arc<ApiCalls>,
        retry: RetryPolicy,
    ) -> Client {
        Client {
            rest: RestClient::new(http, calls, retry, "Azure"),
            cred,
            cred_name,
        }
    }

    /// The calls of this collection per API.
    pub fn calls(&self) -> &Arc<ApiCalls> {
        self.rest.calls()
    }

    /// A token for `scope` (azure_identity caches it until shortly before it expires; the
    /// token endpoint is counted only when it is really called, seen as a new token).
    pub async fn token(&self, scope: &str) -> Result<String, PluginError> {
        let t = self.cred.get_token(&[scope], None).await.map_err(|e| {
            PluginError::new(
                ErrorKind::Auth,
                format!(
                    "could not get an Azure token ({}) for {scope}: {e}. Check tenant_id/client_id/client_secret (or AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET), `az login`, or the managed identity",
                    self.cred_name
                ),
            )
            .with("api", calls::TOKEN)
        })?;
        Ok(t.token.secret().to_string())
    }

    /// One call, retried by the collection's policy; the JSON answer, or `Value::Null` for a
    /// success without a body (`204 No Content`: the Cost Management query answers that when
    /// there are no rows).
    pub async fn send(
        &self,
        api: &'static str,
        needs: Needs,
        scope: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, PluginError> {
        let token = self.token(scope).await?;
        let call = AzureCall { api, needs };
        self.rest
            .json(&call, Some(&token), |http| {
                let req = http.request(method.clone(), url);
                match body {
                    Some(b) => req.json(b),
                    None => req,
                }
            })
            .await
    }

    /// Every item of an ARM list: `value` of each page, following `nextLink`.
    pub async fn list_all(
        &self,
        api: &'static str,
        needs: Needs,
        scope: &str,
        url: &str,
    ) -> Result<Vec<Value>, PluginError> {
        let mut out = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(u) = next.take() {
            let mut page = self
                .send(api, needs, scope, reqwest::Method::GET, &u, None)
                .await?;
            if let Some(Value::Array(items)) = page.get_mut("value").map(Value::take) {
                out.extend(items);
            }
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
        Ok(out)
    }
}

/// An Azure error answer as a `PluginError`: the `error.code` and `error.message` of the
/// ARM error shape, and what to do.
pub fn status_error(api: &str, needs: Needs, status: u16, body: &str, tries: u32) -> PluginError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = match (code, message) {
        ("", "") => String::new(),
        ("", m) => format!(": {m}"),
        (c, "") => format!(" ({c})"),
        (c, m) => format!(" ({c}): {m}"),
    };
    let (kind, what) = match status {
        401 => (
            ErrorKind::Auth,
            format!("{api} was refused: Azure rejected the token (401){detail}. Check the tenant and the credentials (tenant_id/client_id/client_secret, AZURE_* variables, `az login`)"),
        ),
        403 => (
            ErrorKind::Permission,
            format!(
                "{api} was denied (403){detail}. Grant the role \"{}\" (action {}) to the identity skymeter uses, on the subscription",
                needs.role, needs.action
            ),
        ),
        429 => (
            ErrorKind::Unavailable,
            format!("{api} stayed throttled (429) after {tries} tries{detail}: lower max_concurrency or collect less often"),
        ),
        s if s >= 500 => (
            ErrorKind::Unavailable,
            format!("{api} failed with HTTP {s} after {tries} tries{detail}"),
        ),
        s => (ErrorKind::BadResponse, format!("{api} failed with HTTP {s}{detail}")),
    };
    PluginError::new(kind, what).with("api", api)
}
